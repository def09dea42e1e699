"""The PyTorch (SLAYER) twin of a netx file: the same blocks, weights and neuron parameters, built from
the file alone, so that Lava's output can be compared with SLAYER's spike for spike."""

from __future__ import annotations

import torch
import lava.lib.dl.slayer as slayer

from esl_train.kernels import install as install_kernels
from esl_train.models import SpikingNet

from .netx_file import DECAY_SCALE, W_SCALE, NetFile


def neuron_params(neuron: dict) -> dict:
    return {
        "threshold": int(neuron["vThMant"]) / W_SCALE,
        "current_decay": int(neuron["iDecay"]) / DECAY_SCALE,
        "voltage_decay": int(neuron["vDecay"]) / DECAY_SCALE,
        "requires_grad": False,
    }


def build_twin(net: NetFile, kernels: str = "auto") -> SpikingNet:
    """The twin; `kernels` picks the CPU implementation (esl_train.kernels): the same spikes either way."""
    cuba = slayer.block.cuba
    blocks = []
    first = net.weighted[0]
    for layer in net.layers:
        if layer.type == "flatten":
            blocks.append(cuba.Flatten())
            continue
        params = neuron_params(layer.neuron)
        w = torch.from_numpy(layer.weight.astype("float32")) / W_SCALE
        if layer.type == "dense":
            block = cuba.Dense(params, w.shape[1], w.shape[0])
        else:
            c = layer.conv
            block = cuba.Conv(params, w.shape[1] * c["groups"], w.shape[0], tuple(w.shape[2:]), stride=c["stride"],
                              padding=c["padding"], dilation=c["dilation"], groups=c["groups"])
        block.synapse.weight.data.copy_(w.reshape(block.synapse.weight.shape))
        blocks.append(block)
    install_kernels(blocks, kernels)
    arch = "mlp" if first.type == "dense" else "conv"
    twin = SpikingNet(arch, blocks, net.input_shape)
    return twin.eval()
