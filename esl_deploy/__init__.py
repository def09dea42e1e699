"""Run exported ESL-SNN networks on Lava and account for what they cost on neuromorphic chips."""
