"""A synapse that has been on chip stays on chip: its weight never quantizes back to zero.

SLAYER trains through its 8-bit weight quantizer (`neuron.quantize_8bit`, steps of 2/64, straight-through gradient)
and export writes that quantizer's output, so an active synapse whose weight sits in the quantizer's dead zone
(|w| < 1/64) costs a place in the mask but is absent from model.net: at --density 0.1 about a fifth of the budget.
With `keep_quantum` the evolver marks each active synapse whose weight has quantized to a non-zero value since it
was grown (or since the start) as *on chip*, and wraps the synapse's quantizer so that an on-chip weight inside the
dead zone becomes one quantization step with its own sign, in training and at export alike; the float weight
underneath still moves freely and may change sign. Synapses not yet on chip are the evolver's free budget: they
are dropped first at the next update. Mapping every non-zero weight to a step at once (new synapses and a quarter
of the initial first layer included) was measured to cost 2 points on validation (docs/tuning.md)."""

from __future__ import annotations

import torch


def smallest_step(quantize, descale: bool, like: torch.Tensor) -> torch.Tensor:
    """The quantizer's smallest positive output, found by probing it (scale and step are its own business)."""
    probe = torch.linspace(0, 1, 4097, dtype=like.dtype, device=like.device)[1:]
    out = quantize(probe, descale=descale)
    return out[out > 0].min()


def keep_quantum(quantize, on_chip):
    """`quantize` with its dead zone mapped to ± one step where `on_chip()` (a bool tensor shaped like the weight)
    is set; the gradient stays quantize's."""
    steps: dict = {}

    def quantize_keep(weight: torch.Tensor, descale: bool = False) -> torch.Tensor:
        q = quantize(weight, descale=descale)
        key = (descale, weight.device, weight.dtype)
        if key not in steps:
            steps[key] = smallest_step(quantize, descale, weight)
        lost = (q == 0) & (weight != 0) & on_chip()
        return q + torch.where(lost, torch.sign(weight.detach()) * steps[key], torch.zeros_like(q))

    return quantize_keep
