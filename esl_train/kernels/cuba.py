"""SLAYER's CUBA neuron dynamics as one compiled loop over time steps (numba), forward and backward.

lava-dl runs the CUBA dynamics on the CPU as a Python loop over time steps with a dozen tensor operations per step,
twice (current, then voltage), and computes the gradient of the decays even when they are not learnt. Here a numba
kernel advances blocks of neurons through the time steps together, with the same integer fixed-point arithmetic, so
spikes and voltages are bit-identical to lava-dl's (what makes Lava match the twin). The backward pass is lava-dl's:
the surrogate spike derivative (torch's vectorized exp, as lava-dl computes it), then the voltage and current leaky
integrators run backwards in time (their gradient ignores the reset, as lava-dl's does). The kernels run in the
calling thread: a numba thread pool beside torch's OpenMP threads kept a second thread spinning on a core
(measured: as much CPU as the training thread itself)."""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit

from lava.lib.dl.slayer.axon.delay import delay
from lava.lib.dl.slayer.neuron import cuba
from lava.lib.dl.slayer.neuron.dropout import Dropout
from lava.lib.dl.slayer.utils import quantize

DECAY_BITS = 12  # Loihi's decays are 12-bit fractions: state <- state * (4096 - decay) >> 12, rounded toward zero
BLOCK = 64  # neurons advanced together through time: the loop over them is what the compiler vectorizes


@njit(cache=True)
def _gather(src, m0, nb, block):
    """block[t, j] = src[m0 + j, t]: nb neurons' steps copied time-major, for the vectorized loop over neurons."""
    for j in range(nb):
        for t in range(src.shape[1]):
            block[t, j] = src[m0 + j, t]


@njit(cache=True)
def _scatter(block, m0, nb, dst, shift, gain):
    """The inverse of _gather, `shift` steps later: dst[m0 + j, t + shift] = block[t, j] (times gain[m0 + j] unless
    gain is None), zeros before."""
    steps = dst.shape[1]
    for j in range(nb):
        for t in range(min(shift, steps)):
            dst[m0 + j, t] = 0
        if gain is None:
            for t in range(steps - shift):
                dst[m0 + j, t + shift] = block[t, j]
        else:
            for t in range(steps - shift):
                dst[m0 + j, t + shift] = block[t, j] * gain[m0 + j]


@njit(cache=True)
def _forward(z, i_keep, v_keep, s_scale, reset_at, spike_at, shift, gain, spikes, voltage):
    """z: (neurons, steps) float32 synaptic input. Mirrors lava-dl's _li_dynamics_fwd twice and Spike.forward:
    the states are int64 scaled by s_scale; voltages are reported as float32 state / s_scale, spikes times gain
    (dropout's, or None) and `shift` steps late (lava-dl's block delay, 0 or 1). Each block of neurons is copied
    time-major, advanced one step at a time with branch-free arithmetic (vectorized across the block), and copied
    back."""
    neurons, steps = z.shape
    scale = np.float32(s_scale)
    zt = np.empty((steps, BLOCK), np.float32)  # a block's input, spikes and voltages, time-major
    st, vt = np.empty_like(zt), np.empty_like(zt)
    u, v = np.empty(BLOCK, np.int64), np.empty(BLOCK, np.int64)
    for m0 in range(0, neurons, BLOCK):
        nb = min(BLOCK, neurons - m0)
        _gather(z, m0, nb, zt)
        u[:] = 0
        v[:] = 0
        for t in range(steps):
            for j in range(nb):
                p = u[j] * i_keep
                uj = ((p >> DECAY_BITS) if p > 0 else -((-p) >> DECAY_BITS)) + np.int64(scale * zt[t, j])
                u[j] = uj
                q = v[j] * v_keep
                current = np.float32(uj) / scale
                vj = ((q >> DECAY_BITS) if q > 0 else -((-q) >> DECAY_BITS)) + np.int64(scale * current)
                volt = np.float32(vj) / scale
                vt[t, j] = volt
                st[t, j] = np.float32(1.0) if volt >= spike_at else np.float32(0.0)
                # lava-dl compares the integer state with threshold * s_scale in float32
                v[j] = 0 if np.float32(vj) >= reset_at else vj
        _scatter(st, m0, nb, spikes, shift, gain)
        _scatter(vt, m0, nb, voltage, 0, None)


@njit(cache=True)
def _integrate_backward(factor, grad, gain, shift, v_keep, i_keep, out):
    """lava-dl's backward from the surrogate on: d = factor (the spike derivative) times the incoming gradient
    `shift` steps later (the block delay's backward; 0 past the end) times gain (dropout's backward, first, or None),
    then the voltage and the current leaky integrator backwards in time (lava-dl's _li_dynamics_bwd twice); blocked
    and vectorized as _forward."""
    neurons, steps = factor.shape
    dt = np.empty((steps, BLOCK), np.float32)
    gv, gi = np.empty(BLOCK, np.float32), np.empty(BLOCK, np.float32)
    for m0 in range(0, neurons, BLOCK):
        nb = min(BLOCK, neurons - m0)
        for j in range(nb):
            if gain is None:
                for t in range(steps - shift):
                    dt[t, j] = factor[m0 + j, t] * grad[m0 + j, t + shift]
            else:
                for t in range(steps - shift):
                    dt[t, j] = factor[m0 + j, t] * (grad[m0 + j, t + shift] * gain[m0 + j])
            for t in range(max(steps - shift, 0), steps):
                dt[t, j] = 0
        gv[:] = 0
        gi[:] = 0
        for t in range(steps - 1, -1, -1):
            for j in range(nb):
                gv[j] = v_keep * gv[j] + dt[t, j]
                gi[j] = i_keep * gi[j] + gv[j]
                dt[t, j] = gi[j]
        _scatter(dt, m0, nb, out, 0, None)


def spike_derivative(voltage: torch.Tensor, threshold, tau, scale) -> torch.Tensor:
    """lava-dl's spike derivative, scale / 2 / tau * exp(-|v - threshold| / tau), in its order of operations (torch's
    vectorized exp, as lava-dl computes it). The exponent is clamped at -87, where exp's result leaves float32's
    normal range: there lava-dl's factor is below 1.2e-38 and ours 1.6e-38, and exp on such arguments runs a path
    about 50 times slower (measured here: far-from-threshold voltages are common)."""
    d = (voltage - threshold).abs_().neg_().div_(tau).clamp_(min=-87.0).exp_()
    return d.mul_(scale / 2 / tau)


def dynamics(z: torch.Tensor, i_decay: int, v_decay: int, neuron: cuba.Neuron, shift: int = 0,
             gain: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and (pre-reset) voltages of `neuron` for synaptic input z (..., steps), as lava-dl computes them;
    i_decay and v_decay are the quantized decays (out of 4096); spikes come times `gain` (one factor per sample and
    neuron), if given, and `shift` steps late (0 or 1)."""
    steps = z.shape[-1]
    flat = z.detach().contiguous().reshape(-1, steps).numpy()
    spikes, voltage = np.empty_like(flat), np.empty_like(flat)
    threshold = neuron.threshold + neuron.threshold_eps  # what lava-dl's spike and reset compare against
    _forward(flat, (1 << DECAY_BITS) - i_decay, (1 << DECAY_BITS) - v_decay, neuron.s_scale,
             np.float32(threshold * neuron.s_scale), np.float32(threshold), shift,
             None if gain is None else gain.reshape(-1).numpy(), spikes, voltage)
    return torch.from_numpy(spikes).reshape(z.shape), torch.from_numpy(voltage).reshape(z.shape)


class _CubaDynamics(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, i_decay: int, v_decay: int, neuron: "FusedNeuron", shift: int, gain):
        spikes, voltage = dynamics(z, i_decay, v_decay, neuron, shift, gain)
        ctx.save_for_backward(voltage)
        ctx.shift, ctx.gain = shift, None if gain is None else gain.reshape(-1).numpy()
        ctx.spike = (np.float32(neuron.threshold + neuron.threshold_eps),
                     np.float32(neuron.tau_rho * cuba.TAU_RHO_MULT), np.float32(neuron.scale_rho * cuba.SCALE_RHO_MULT))
        ctx.keep = (np.float32(1 - v_decay / (1 << DECAY_BITS)), np.float32(1 - i_decay / (1 << DECAY_BITS)))
        return spikes

    @staticmethod
    def backward(ctx, grad):
        (voltage,) = ctx.saved_tensors
        steps = grad.shape[-1]
        factor = spike_derivative(voltage, *(torch.tensor(p) for p in ctx.spike)).reshape(-1, steps).numpy()
        out = np.empty_like(factor)
        _integrate_backward(factor, grad.contiguous().reshape(-1, steps).numpy(), ctx.gain, ctx.shift, *ctx.keep,
                            out)
        return torch.from_numpy(out).reshape(grad.shape), None, None, None, None, None


class FusedNeuron(cuba.Neuron):
    """lava-dl's CUBA neuron whose forward runs the fused kernel where it applies (CPU, float32, fixed decays,
    no norm, binary non-persistent spikes) and lava-dl's own code elsewhere (CUDA, learnt decays, ...).
    Parameters, buffers, export and Loihi parameters are lava-dl's: it adds no state. With `delay_shift` (set by
    `install`, which clears the block's) it also applies the block's one-step delay: the kernel writes its spikes a
    step late, saving lava-dl's shifted copy forward and backward (dropout, constant over time, commutes with it).
    lava-dl's Dropout (it drops a neuron for all steps) has its factors multiply the spikes inside the kernel too,
    forward and backward, where torch's broadcast over steps was slow; any other dropout runs after the kernel."""

    delay_shift = False

    def fused(self, x: torch.Tensor) -> bool:
        return (not x.is_cuda and x.dtype == torch.float32 and not self.requires_grad and self.shared_param
                and self.norm is None and not self.graded_spike and not self.persistent_state and not self.debug
                and x.dim() >= 3)

    def forward(self, input):
        if not self.fused(input):
            spikes = super().forward(input)
        elif self.drop is None or type(self.drop) is Dropout:  # all in the kernel
            return self._fused(input, int(self.delay_shift), self.drop)
        else:  # any other dropout: after the kernel, before the delay, in lava-dl's order
            spikes = self.drop(self._fused(input, 0, None))
        return delay(spikes, 1) if self.delay_shift else spikes

    def _fused(self, input: torch.Tensor, shift: int, drop: Dropout | None) -> torch.Tensor:
        if self.shape is None:  # as lava-dl's dynamics(): the neuron takes its shape from the first input
            self.shape = input.shape[1:-1]
            self.num_neurons = int(np.prod(self.shape))
        elif input.shape[1:-1] != self.shape:
            raise AssertionError(f"Input tensor shape ({input.shape}) does not match with Neuron shape ({self.shape}).")
        i_decay = int(quantize(self.current_decay).item())
        v_decay = int(quantize(self.voltage_decay).item())
        gain = None  # Dropout's factor per neuron, drawn by its own code from the same random stream as on spikes
        if drop is not None and drop.training:
            ones = torch.ones(input.shape[0], math.prod(input.shape[1:-1]), 1, dtype=input.dtype)
            gain = drop(ones).reshape(ones.shape[:2])
        return _CubaDynamics.apply(input, i_decay, v_decay, self, shift, gain)
