"""SLAYER's CUBA neuron dynamics as one compiled loop over time steps (numba), forward and backward.

lava-dl runs the CUBA dynamics on the CPU as a Python loop over time steps with a dozen tensor operations per step,
twice (current, then voltage), and computes the gradient of the decays even when they are not learnt. Here one
numba kernel walks each neuron's time steps once, with the same integer fixed-point arithmetic, so spikes and
voltages are bit-identical to lava-dl's (what makes Lava match the twin); the backward pass is lava-dl's: the
surrogate spike derivative, then the voltage and current leaky integrators run backwards in time (their gradient
ignores the reset, as lava-dl's does). The kernels run in the calling thread: a numba thread pool beside torch's
OpenMP threads kept a second thread spinning on a core (measured: as much CPU as the training thread itself)."""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from lava.lib.dl.slayer.neuron import cuba
from lava.lib.dl.slayer.utils import quantize

DECAY_BITS = 12  # Loihi's decays are 12-bit fractions: state <- state * (4096 - decay) >> 12, rounded toward zero


@njit(cache=True)
def _forward(z, i_keep, v_keep, s_scale, reset_at, spike_at, spikes, voltage):
    """z: (neurons, steps) float32 synaptic input. Mirrors lava-dl's _li_dynamics_fwd twice and Spike.forward:
    the states are int64 scaled by s_scale; voltages are reported as float32 state / s_scale."""
    scale = np.float32(s_scale)
    for m in range(z.shape[0]):
        u = np.int64(0)
        v = np.int64(0)
        for t in range(z.shape[1]):
            p = u * i_keep
            u = ((p >> DECAY_BITS) if p > 0 else -((-p) >> DECAY_BITS)) + np.int64(scale * z[m, t])
            current = np.float32(u) / scale
            q = v * v_keep
            v = ((q >> DECAY_BITS) if q > 0 else -((-q) >> DECAY_BITS)) + np.int64(scale * current)
            volt = np.float32(v) / scale
            voltage[m, t] = volt
            spikes[m, t] = np.float32(1.0) if volt >= spike_at else np.float32(0.0)
            if np.float32(v) >= reset_at:  # lava-dl compares the integer state with threshold * s_scale in float32
                v = 0


@njit(cache=True)
def _backward(grad, voltage, threshold, tau, scale, v_keep, i_keep, out):
    """lava-dl's surrogate (scale / 2 / tau * exp(-|v - threshold| / tau)) times the incoming gradient, through the
    voltage integrator and then the current integrator, backwards in time (all float32, as lava-dl)."""
    half = scale / np.float32(2.0) / tau
    for m in range(grad.shape[0]):
        gv = np.float32(0.0)
        gi = np.float32(0.0)
        for t in range(grad.shape[1] - 1, -1, -1):
            d = half * np.exp(-np.abs(voltage[m, t] - threshold) / tau) * grad[m, t]
            gv = v_keep * gv + d
            gi = i_keep * gi + gv
            out[m, t] = gi


def dynamics(z: torch.Tensor, i_decay: int, v_decay: int, neuron: cuba.Neuron) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and (pre-reset) voltages of `neuron` for synaptic input z (..., steps), as lava-dl computes them;
    i_decay and v_decay are the quantized decays (out of 4096)."""
    steps = z.shape[-1]
    flat = z.detach().contiguous().reshape(-1, steps).numpy()
    spikes, voltage = np.empty_like(flat), np.empty_like(flat)
    threshold = neuron.threshold + neuron.threshold_eps  # what lava-dl's spike and reset compare against
    _forward(flat, (1 << DECAY_BITS) - i_decay, (1 << DECAY_BITS) - v_decay, neuron.s_scale,
             np.float32(threshold * neuron.s_scale), np.float32(threshold), spikes, voltage)
    return torch.from_numpy(spikes).reshape(z.shape), torch.from_numpy(voltage).reshape(z.shape)


class _CubaDynamics(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, i_decay: int, v_decay: int, neuron: "FusedNeuron"):
        spikes, voltage = dynamics(z, i_decay, v_decay, neuron)
        ctx.save_for_backward(voltage)
        ctx.params = (np.float32(neuron.threshold + neuron.threshold_eps),
                      np.float32(neuron.tau_rho * cuba.TAU_RHO_MULT),
                      np.float32(neuron.scale_rho * cuba.SCALE_RHO_MULT),
                      np.float32(1 - v_decay / (1 << DECAY_BITS)), np.float32(1 - i_decay / (1 << DECAY_BITS)))
        return spikes

    @staticmethod
    def backward(ctx, grad):
        (voltage,) = ctx.saved_tensors
        steps = grad.shape[-1]
        flat = grad.contiguous().reshape(-1, steps).numpy()
        out = np.empty_like(flat)
        _backward(flat, voltage.reshape(-1, steps).numpy(), *ctx.params, out)
        return torch.from_numpy(out).reshape(grad.shape), None, None, None


class FusedNeuron(cuba.Neuron):
    """lava-dl's CUBA neuron whose forward runs the fused kernel where it applies (CPU, float32, fixed decays,
    no norm, binary non-persistent spikes) and lava-dl's own code elsewhere (CUDA, learnt decays, ...).
    Parameters, buffers, export and Loihi parameters are lava-dl's: it adds no state."""

    def fused(self, x: torch.Tensor) -> bool:
        return (not x.is_cuda and x.dtype == torch.float32 and not self.requires_grad and self.shared_param
                and self.norm is None and not self.graded_spike and not self.persistent_state and not self.debug
                and x.dim() >= 3)

    def forward(self, input):
        if not self.fused(input):
            return super().forward(input)
        if self.shape is None:  # as lava-dl's dynamics(): the neuron takes its shape from the first input
            self.shape = input.shape[1:-1]
            self.num_neurons = int(np.prod(self.shape))
        elif input.shape[1:-1] != self.shape:
            raise AssertionError(f"Input tensor shape ({input.shape}) does not match with Neuron shape ({self.shape}).")
        i_decay = int(quantize(self.current_decay).item())
        v_decay = int(quantize(self.voltage_decay).item())
        spikes = _CubaDynamics.apply(input, i_decay, v_decay, self)
        return self.drop(spikes) if self.drop is not None else spikes
