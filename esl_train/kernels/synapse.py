"""The first dense synapse, whose input is the data's binary spikes: an exact 8-bit forward.

SLAYER's dense synapse is a float Conv3d over (samples, inputs, 1, 1, steps). Here its input is spikes (0 or 1) and
its weight, after the block's 8-bit quantization hook, is an integer in [-128, 127] times a power-of-two step, so
every sum is an integer times that step, well inside float32's exact range: oneDNN's u8 x s8 GEMM (VNNI or AMX on
x86) gives SLAYER's output bit for bit at a fraction of its cost. The weight gradient is SLAYER's own (the same
convolution_backward on the same float tensors), so training stays bit-identical. Spikes are known to be binary by
their dtype (the data sets' batches are bool); float input, CUDA, or a CPU without oneDNN's int8 GEMM take SLAYER's
path."""

from __future__ import annotations

import functools
import math

import torch

from lava.lib.dl.slayer import synapse


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


class _Int8Dense(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, step: float, module):
        """x: (N, inputs, T) bool; weight: the quantized (outputs, inputs, 1, 1, 1). Returns (N, outputs, T)."""
        n, c, t = x.shape
        rows = x.transpose(1, 2).contiguous().view(torch.uint8).reshape(n * t, c)
        k = torch.round(weight.detach().reshape(weight.shape[0], c) / step).to(torch.int8)
        out = _gemm(rows, torch.ops.onednn.qlinear_prepack(k, None), torch.full((k.shape[0],), step))
        ctx.save_for_backward(x, weight)
        ctx.module = module
        return out.view(n, t, -1).transpose(1, 2).contiguous()

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        m = ctx.module
        n, c, t = x.shape
        _, grad_weight, _ = torch.ops.aten.convolution_backward(
            grad.reshape(n, -1, 1, 1, t), x.float().reshape(n, c, 1, 1, t), weight, None, m.stride, m.padding,
            m.dilation, False, [0, 0, 0], m.groups, [False, True, False])
        return None, grad_weight, None, None


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
        return _Int8Dense.apply(input, self._pre_hook_fx(self.weight), self.weight_step, self)
