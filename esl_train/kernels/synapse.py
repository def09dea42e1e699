"""A spike-driven dense synapse for the first layer, whose input is the data's binary, sparse spikes.

SLAYER's dense synapse is a Conv3d: its forward and weight gradient cost the full (samples x steps) x inputs x
outputs product whatever the input holds. Here both walk the input once and touch a weight row only where an input
spiked, so they cost in proportion to the spikes. That wins below a break-even input density measured by
bench/train_speed.py; above it (or on CUDA, or where the input needs a gradient) SLAYER's Conv3d runs."""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from lava.lib.dl.slayer import synapse


# Input density (non-zero entries / all) below which the spike-driven path is faster than SLAYER's Conv3d on a CPU
# (forward plus weight gradient, default MLP, batch 128, T=20, one thread: 0.89 of its time at 0.05, 1.05 at 0.08;
# bench/train_speed.py, docs/benchmarks.md).
BREAK_EVEN = 0.07
_SAMPLE = 4099  # the density is estimated from every _SAMPLE-th entry (a prime: no alignment with the layout)


@njit(cache=True)
def _forward(x, wt, out):
    """out[n, t, :] = sum over inputs i of x[n, i, t] * wt[i, :], visiting only non-zero x."""
    for n in range(x.shape[0]):
        for i in range(x.shape[1]):
            for t in range(x.shape[2]):
                v = x[n, i, t]
                if v != 0:
                    for o in range(wt.shape[1]):
                        out[n, t, o] += v * wt[i, o]


@njit(cache=True)
def _weight_grad(x, grad, out):
    """out[i, :] = sum over samples n and steps t of x[n, i, t] * grad[n, t, :], visiting only non-zero x."""
    for i in range(x.shape[1]):
        for n in range(x.shape[0]):
            for t in range(x.shape[2]):
                v = x[n, i, t]
                if v != 0:
                    for o in range(grad.shape[2]):
                        out[i, o] += v * grad[n, t, o]


class _SpikeDense(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight):
        """x: (N, inputs, T) without gradient; weight: (outputs, inputs). Returns (N, outputs, T)."""
        x = x.detach().contiguous()
        out = np.zeros((x.shape[0], x.shape[2], weight.shape[0]), np.float32)
        _forward(x.numpy(), weight.detach().t().contiguous().numpy(), out)
        ctx.save_for_backward(x)
        return torch.from_numpy(out).permute(0, 2, 1)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        out = np.zeros((x.shape[1], grad.shape[1]), np.float32)
        _weight_grad(x.numpy(), grad.permute(0, 2, 1).contiguous().numpy(), out)
        return None, torch.from_numpy(out).t()


def input_density(x: torch.Tensor) -> float:
    """The share of non-zero entries, estimated from a strided sample (exact for small inputs)."""
    flat = x.reshape(-1)
    sample = flat[::_SAMPLE] if flat.numel() > 64 * _SAMPLE else flat
    return float(torch.count_nonzero(sample)) / max(sample.numel(), 1)


class SpikeDrivenDense(synapse.Dense):
    """SLAYER's dense synapse (same weight, hooks and export) whose forward is spike-driven where that is faster."""

    def spike_driven(self, x: torch.Tensor) -> bool:
        return (not x.is_cuda and x.dtype == torch.float32 and x.dim() == 3 and not x.requires_grad
                and self.bias is None and not self.complex and not self.weight_norm_enabled
                and input_density(x) < BREAK_EVEN)

    def forward(self, input):
        if not self.spike_driven(input):
            return super().forward(input)
        weight = self.weight if self._pre_hook_fx is None else self._pre_hook_fx(self.weight)
        return _SpikeDense.apply(input, weight.reshape(weight.shape[0], -1))
