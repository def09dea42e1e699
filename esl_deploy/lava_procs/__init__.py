"""Lava processes of our own, in a folder of their own: Lava imports every module beside a process when it
searches for its process models."""
