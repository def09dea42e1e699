"""Faster CPU implementations of SLAYER's CUBA blocks, installed on a built network (`--kernels auto`).

`install` swaps the class of each lava-dl CUBA neuron for `FusedNeuron` and of a first dense synapse for
`BinaryInputDense` (as torch.nn.utils.parametrize swaps a module's class): parameters, buffers, hooks and export stay
lava-dl's, and each falls back to lava-dl's own code where it does not apply (CUDA, learnt decays, ...). A dense or
conv block's one-step delay moves into its neuron (`FusedNeuron.delay_shift`): the block's output is unchanged.
`adam` is the trainer's optimizer: torch's Adam, or with `auto` the same steps without square roots of zero
(kernels.optim). `--kernels slayer` leaves lava-dl's and torch's code in place, for comparison and as a fallback."""

from __future__ import annotations

import torch

from ..config import KERNELS


def install(blocks: list[torch.nn.Module], kernels: str = "auto") -> None:
    if kernels not in KERNELS:
        raise ValueError(f"unknown kernels {kernels!r}; choose one of {', '.join(KERNELS)}")
    if kernels == "slayer":
        return
    from lava.lib.dl.slayer import neuron, synapse
    from lava.lib.dl.slayer.block import base

    from .cuba import FusedNeuron
    from .synapse import BinaryInputDense, quantum

    for block in blocks:
        if type(getattr(block, "neuron", None)) is neuron.cuba.Neuron:
            block.neuron.__class__ = FusedNeuron
            if (isinstance(block, (base.AbstractDense, base.AbstractConv)) and block.delay_shift is True
                    and not block.neuron.persistent_state):  # the neuron's kernel writes its spikes a step late
                block.delay_shift, block.neuron.delay_shift = False, True
    first = blocks[0] if blocks else None
    if type(getattr(first, "synapse", None)) is synapse.Dense:  # its input is the data's spikes: no gradient needed
        first.synapse.__class__ = BinaryInputDense
        first.synapse.weight_step = quantum(first)


def adam(parameters, lr: float, kernels: str = "auto") -> torch.optim.Optimizer:
    """The trainer's optimizer: torch's Adam with `slayer`, ours (the same results, faster on sparse nets) else."""
    if kernels == "slayer":
        return torch.optim.Adam(parameters, lr=lr)
    from .optim import Adam

    return Adam(parameters, lr=lr)
