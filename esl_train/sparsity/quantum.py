"""Every synapse the mask keeps is a synapse on chip: a weight that is not zero never quantizes to zero.

SLAYER trains through its 8-bit weight quantizer (`neuron.quantize_8bit`, steps of 2/64, straight-through gradient)
and export writes that quantizer's output, so an active synapse whose weight sits in the quantizer's dead zone
(|w| < 1/64) costs a place in the mask but is absent from model.net: at --density 0.1 about a quarter of the
budget. `keep_quantum` wraps a synapse's quantizer so that such a weight becomes one quantization step with its own
sign, in training and at export alike. The float weight underneath still moves freely (and may change sign); only
exact zeros (pruned synapses, synapses grown this step) stay zero."""

from __future__ import annotations

import torch


def smallest_step(quantize, descale: bool, like: torch.Tensor) -> torch.Tensor:
    """The quantizer's smallest positive output, found by probing it (scale and step are its own business)."""
    probe = torch.linspace(0, 1, 4097, dtype=like.dtype, device=like.device)[1:]
    out = quantize(probe, descale=descale)
    return out[out > 0].min()


def keep_quantum(quantize):
    """`quantize` with its dead zone mapped to ± one step for non-zero inputs; the gradient stays quantize's."""
    steps: dict = {}

    def quantize_keep(weight: torch.Tensor, descale: bool = False) -> torch.Tensor:
        q = quantize(weight, descale=descale)
        key = (descale, weight.device, weight.dtype)
        if key not in steps:
            steps[key] = smallest_step(quantize, descale, weight)
        lost = (q == 0) & (weight != 0)
        return q + torch.where(lost, torch.sign(weight.detach()) * steps[key], torch.zeros_like(q))

    quantize_keep.wrapped = quantize
    return quantize_keep
