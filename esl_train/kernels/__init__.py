"""Faster CPU implementations of SLAYER's CUBA blocks, installed on a built network (`--kernels auto`).

`install` swaps the class of each lava-dl CUBA neuron for `FusedNeuron` and of a first dense synapse for
`BinaryInputDense` (as torch.nn.utils.parametrize swaps a module's class): parameters, buffers, hooks and export stay
lava-dl's, and each falls back to lava-dl's own code where it does not apply (CUDA, learnt decays, ...).
`--kernels slayer` leaves lava-dl's code in place, for comparison and as a fallback."""

from __future__ import annotations

import torch

from ..config import KERNELS


def install(blocks: list[torch.nn.Module], kernels: str = "auto") -> None:
    if kernels not in KERNELS:
        raise ValueError(f"unknown kernels {kernels!r}; choose one of {', '.join(KERNELS)}")
    if kernels == "slayer":
        return
    from lava.lib.dl.slayer import neuron, synapse

    from .cuba import FusedNeuron
    from .synapse import BinaryInputDense, quantum

    for block in blocks:
        if type(getattr(block, "neuron", None)) is neuron.cuba.Neuron:
            block.neuron.__class__ = FusedNeuron
    first = blocks[0] if blocks else None
    if type(getattr(first, "synapse", None)) is synapse.Dense:  # its input is the data's spikes: no gradient needed
        first.synapse.__class__ = BinaryInputDense
        first.synapse.weight_step = quantum(first)
