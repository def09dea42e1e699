"""The first dense synapse, whose input is the data's binary spikes: an exact 8-bit forward, a spike-driven backward.

SLAYER's dense synapse is a float Conv3d over (samples, inputs, 1, 1, steps). Here its input is spikes (0 or 1) and
its weight, after the block's 8-bit quantization hook, is an integer in [-128, 127] times a power-of-two step, so
every sum is an integer times that step, well inside float32's exact range: oneDNN's u8 x s8 GEMM (VNNI or AMX on
x86) gives SLAYER's output bit for bit at a fraction of its cost. The weight gradient is a sum over the sample-steps
at which each input spiked: where few inputs spike (digits-bench: a tenth) it is computed from the spikes alone, each
one adding its outputs' gradients to its input's row (cost in proportion to spikes); where many do, as one float32
GEMM on the same bytes. Both equal SLAYER's Conv3d weight gradient within float rounding (the order of the sum
differs), and both are deterministic. Spikes are known to be binary by their dtype (the data sets' batches are
bool); float input, CUDA, or a CPU without oneDNN's int8 GEMM take SLAYER's path."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from numba import njit

from lava.lib.dl.slayer import synapse

# Input spike fraction below which the spike-driven weight gradient beats the float32 GEMM on this project's CPUs
# (docs/benchmarks.md, section weight-gradient: measured by bench/train_speed.py --weight-gradient).
SPIKE_DRIVEN_BELOW = 0.15


def _gemm(rows: torch.Tensor, packed: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """rows (M, K) uint8 times the prepacked int8 weight (N, K), transposed, times `step` per output: (M, N) float."""
    zero = torch.zeros(step.shape[0], dtype=torch.long)
    return torch.ops.onednn.qlinear_pointwise(rows, 1.0, 0, packed, step, zero, None, 1.0, 0, torch.float32, "none",
                                              [], "")


@functools.cache
def int8_gemm_available() -> bool:
    """Whether this torch build has oneDNN's int8 GEMM with float output, and it is exact here (checked once)."""
    try:
        rows = torch.tensor([[1, 0, 1], [0, 1, 1]], dtype=torch.uint8)
        weight = torch.tensor([[127, -128, 3], [-5, 7, -128]], dtype=torch.int8)
        out = _gemm(rows, torch.ops.onednn.qlinear_prepack(weight, None), torch.full((2,), 0.5))
        return torch.equal(out, torch.tensor([[65.0, -66.5], [-62.5, -60.5]]))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def quantum(block: torch.nn.Module) -> float | None:
    """The step of a block's synaptic weights where its hook is the neuron's 8-bit quantization with a power-of-two
    step (integers in [-128, 127] times it), else None."""
    neuron = getattr(block, "neuron", None)
    hook = getattr(block.synapse, "_pre_hook_fx", None)
    if neuron is None or hook is None or hook != getattr(neuron, "quantize_8bit", None):
        return None
    step = 2 / neuron.w_scale
    return step if math.log2(step).is_integer() else None


@njit(cache=True)
def _count(rows):
    total = 0
    for r in range(rows.shape[0]):
        for i in range(rows.shape[1]):
            total += rows[r, i]
    return total


@njit(cache=True)
def _spike_driven_grad(rows, grad, out):
    """out[i] += grad[r] for every sample-step r at which input i spiked. rows: (R, inputs) bytes 0/1;
    grad: (R, outputs) float32; out: (inputs, outputs) float32, zeroed. Each row's spiking inputs are listed
    first (branch-free), then their accumulators take the row's gradient."""
    spiking = np.empty(rows.shape[1], np.int64)
    for r in range(rows.shape[0]):
        row = rows[r]
        n = 0
        for i in range(rows.shape[1]):
            spiking[n] = i
            n += row[i]
        g = grad[r]
        for k in range(n):
            acc = out[spiking[k]]
            for o in range(g.shape[0]):
                acc[o] += g[o]


def weight_gradient(rows: torch.Tensor, grad_rows: torch.Tensor,
                    spike_driven_below: float = SPIKE_DRIVEN_BELOW) -> torch.Tensor:
    """d loss / d weight (outputs, inputs) of a dense synapse from its binary input rows (R, inputs) uint8 and the
    gradient of its output rows (R, outputs) float32: spike-driven below an input spike fraction of
    `spike_driven_below` (1 or 0 force a path, for the benchmark and tests), else a GEMM."""
    spikes = rows.numpy()
    if _count(spikes) < spike_driven_below * rows.numel():
        out = np.zeros((rows.shape[1], grad_rows.shape[1]), np.float32)
        _spike_driven_grad(spikes, grad_rows.contiguous().numpy(), out)
        return torch.from_numpy(out).t()
    return grad_rows.t() @ rows.float()


class _Int8Dense(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, step: float):
        """x: (N, inputs, T) bool; weight: the quantized (outputs, inputs, 1, 1, 1). Returns (N, outputs, T)."""
        n, c, t = x.shape
        rows = x.transpose(1, 2).contiguous().view(torch.uint8).reshape(n * t, c)
        k = torch.round(weight.detach().reshape(weight.shape[0], c) / step).to(torch.int8)
        out = _gemm(rows, torch.ops.onednn.qlinear_prepack(k, None), torch.full((k.shape[0],), step))
        ctx.save_for_backward(rows)
        ctx.weight_shape = weight.shape
        return out.view(n, t, -1).transpose(1, 2).contiguous()

    @staticmethod
    def backward(ctx, grad):
        (rows,) = ctx.saved_tensors
        grad_rows = grad.transpose(1, 2).reshape(rows.shape[0], grad.shape[1])  # (samples x steps, outputs)
        return None, weight_gradient(rows, grad_rows).reshape(ctx.weight_shape), None, None


class BinaryInputDense(synapse.Dense):
    """SLAYER's dense synapse (same weight, hooks and export) that reads bool spikes, with an exact 8-bit forward."""

    reads_bool = True
    weight_step: float | None = None  # the weight quantum, set by esl_train.kernels.install

    def int8(self, x: torch.Tensor) -> bool:
        return (x.dtype == torch.bool and not x.is_cuda and x.dim() == 3 and self.weight_step is not None
                and self.bias is None and not self.complex and not self.weight_norm_enabled and self.groups == 1
                and int8_gemm_available())

    def forward(self, input):
        if not self.int8(input):
            return super().forward(input.float() if input.dtype == torch.bool else input)
        return _Int8Dense.apply(input, self._pre_hook_fx(self.weight), self.weight_step)
