"""Spiking networks built from lava-dl SLAYER CUBA blocks, each block exportable to netx by itself.

The models know nothing of sparsity: the mask evolver attaches to their synapse weights from outside.
Only layer types that netx can build are used (dense, conv, flatten); convolutions downsample by
stride, since netx has no pooling layer."""

from __future__ import annotations

import torch
import lava.lib.dl.slayer as slayer

from .config import ARCHS
from .export import layer_name
from .kernels import install as install_kernels

# CUBA LIF parameters from lava-dl's N-MNIST tutorial; decays fixed (not learnt) so export is exact.
NEURON = {
    "threshold": 1.25,
    "current_decay": 0.25,
    "voltage_decay": 0.03,
    "tau_grad": 0.03,
    "scale_grad": 3,
    "requires_grad": False,
}


class SpikingNet(torch.nn.Module):
    """A stack of SLAYER blocks; input spikes are (N, P, H, W, T), output spikes (N, classes, T)."""

    def __init__(self, arch: str, blocks: list[torch.nn.Module], input_shape: tuple[int, int, int]):
        super().__init__()
        self.arch = arch
        self.input_shape = tuple(input_shape)
        self.blocks = torch.nn.ModuleList(blocks)

    def forward(self, spikes: torch.Tensor, record: bool = False):
        """Output spikes; with `record`, also every layer's spikes (for spike counts and Lava comparisons). Spikes
        may be bool (the data sets' batches) or float."""
        x = spikes.flatten(1, 3) if self.arch == "mlp" else spikes
        if x.dtype == torch.bool and not getattr(self.blocks[0].synapse, "reads_bool", False):
            x = x.to(torch.float32, memory_format=torch.contiguous_format)  # batches lie time-major (BoolSpikes)
        layers = []
        for block in self.blocks:
            x = block(x)
            if record and hasattr(block, "neuron"):
                layers.append(x)
        return (x, layers) if record else x

    def weighted_blocks(self) -> dict[str, torch.nn.Module]:
        """Blocks with a synapse, named by their index in the exported file (entry 0 there is the input)."""
        return {layer_name(i): b for i, b in enumerate(self.blocks, start=1) if hasattr(b, "synapse")}


def build(arch: str, input_shape: tuple[int, int, int], num_classes: int, hidden: int = 128,
          dropout: float = 0.05, weight_scale: float = 2.0, kernels: str = "auto") -> SpikingNet:
    """The network; `kernels` picks the CPU implementation of its blocks (esl_train.kernels), not what it computes."""
    p, h, w = input_shape
    drop = {**NEURON, "dropout": slayer.neuron.Dropout(p=dropout)} if dropout > 0 else NEURON
    cuba = slayer.block.cuba
    if arch == "mlp":
        blocks = [
            cuba.Dense(drop, p * h * w, hidden, weight_scale=weight_scale),
            cuba.Dense(NEURON, hidden, num_classes, weight_scale=weight_scale),
        ]
    elif arch == "conv":
        c1 = max(4, hidden // 16)  # --hidden sets the width: 128 -> 8 and 16 channels
        c2 = 2 * c1
        h2, w2 = (h + 3) // 4, (w + 3) // 4  # two stride-2 convolutions with padding 1
        blocks = [
            cuba.Conv(drop, p, c1, 3, stride=2, padding=1, weight_scale=weight_scale),
            cuba.Conv(drop, c1, c2, 3, stride=2, padding=1, weight_scale=weight_scale),
            cuba.Flatten(),
            cuba.Dense(NEURON, c2 * h2 * w2, num_classes, weight_scale=weight_scale),
        ]
    else:
        raise ValueError(f"unknown arch {arch!r}; choose one of {ARCHS}")
    install_kernels(blocks, kernels)
    return SpikingNet(arch, blocks, input_shape)
