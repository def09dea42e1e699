"""What a run costs: synapses, spikes, synaptic operations (SynOps), neuron updates and energy proxies.

SynOps of a layer = every presynaptic spike x that neuron's surviving fan-out (non-zero weights in the
file), so pruning lowers it directly. Every neuron updates once per time step."""

from __future__ import annotations

import math

import numpy as np

from .hw import Target
from .netx_file import Layer, NetFile


def _fan_out_sum(layer: Layer, pre_counts: np.ndarray) -> float:
    """Sum over presynaptic neurons of (spike count x surviving fan-out)."""
    nz = layer.weight != 0
    if layer.type == "dense":
        return float(pre_counts.reshape(-1) @ nz.sum(axis=0))
    c = layer.conv
    import torch  # here, not at import: the budget CLI answers bad input before torch loads

    out = torch.nn.functional.conv2d(torch.from_numpy(pre_counts[None].astype(np.float64)),
                                     torch.from_numpy(nz.astype(np.float64)), stride=c["stride"],
                                     padding=c["padding"], dilation=c["dilation"], groups=c["groups"])
    return float(out.sum())


def connections(layer: Layer, input_shape: tuple[int, ...]) -> int:
    """Physical connections: synapses for dense; for conv every (input, output) pair a kernel weight links."""
    if layer.type == "dense":
        return layer.synapses
    return int(round(_fan_out_sum(layer, np.ones(input_shape))))


def dense_macs(layer: Layer, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of the same layer as a dense ANN, once per inference. For a convolution only the taps
    that land on the input count, not those on its zero padding."""
    if layer.type == "dense":
        return layer.possible
    full = Layer(layer.index, layer.type, layer.shape, np.ones_like(layer.weight), layer.conv)
    return connections(full, input_shape)


def layer_inputs(net: NetFile) -> list[tuple[int, ...]]:
    shapes, current = [], net.input_shape
    for layer in net.weighted:
        shapes.append(current)
        current = layer.shape
    return shapes


def measure(net: NetFile, inputs: np.ndarray, layer_spikes: list[np.ndarray], drain: dict | None = None) -> dict:
    """Per-sample averages over the samples given. `inputs` (N, P, H, W, T); `layer_spikes` per weighted layer
    (N, *shape, T), as SLAYER lays them out. `drain` (from a Lava run): the extra steps Lava runs per sample
    outside the T compared ones and each layer's spike counts per neuron there, summed over the samples; their
    spikes, synaptic operations and neuron updates are counted apart (the hardware spends them too)."""
    n, steps = inputs.shape[0], inputs.shape[-1]
    pre = [inputs] + layer_spikes[:-1]
    drain_pre = [None] + list(drain["counts"][:-1]) if drain else [None] * len(layer_spikes)
    rows = []
    for i, (layer, in_shape, x, y) in enumerate(zip(net.weighted, layer_inputs(net), pre, layer_spikes)):
        counts = x.reshape(n, *in_shape, steps).sum(axis=(0, -1)).astype(np.float64)
        row = {
            "name": layer.name, "type": layer.type, "neurons": layer.neurons,
            "synapses": layer.synapses, "possible": layer.possible,
            "connections": connections(layer, in_shape),
            "input_spikes": float(x.sum()) / n, "spikes": float(y.sum()) / n,
            "synops": _fan_out_sum(layer, counts) / n,
            "neuron_updates": layer.neurons * steps,
            "dense_macs": dense_macs(layer, in_shape),
        }
        if drain:
            before = drain_pre[i]
            row["drain_spikes"] = float(drain["counts"][i].sum()) / n
            row["drain_synops"] = (_fan_out_sum(layer, before.reshape(in_shape).astype(np.float64)) / n
                                   if before is not None else 0.0)
            row["drain_neuron_updates"] = layer.neurons * drain["steps"]
        rows.append(row)
    keys = ["neurons", "synapses", "possible", "connections", "spikes", "synops", "neuron_updates", "dense_macs"]
    keys += ["drain_spikes", "drain_synops", "drain_neuron_updates"] if drain else []
    total = {k: sum(r[k] for r in rows) for k in keys}
    return {"samples": n, "steps": steps, "drain_steps": drain["steps"] if drain else 0, "layers": rows,
            "total": total}


def neurobench(m: dict, file_bytes: int) -> dict:
    """The same measurements under NeuroBench's metric names and conventions (per sample). NeuroBench's Dense
    counts every connection at every time step; our `dense_macs` is one ANN inference: both are kept, named apart.
    Effective_MACs is 0: every input is a binary spike, so every operation is an accumulate. MembraneUpdates counts
    every neuron at every compared time step (drain steps apart, in the drain section)."""
    t, steps = m["total"], m["steps"]
    full = sum(r["dense_macs"] for r in m["layers"])  # every physical connection once
    return {
        "Footprint": {"model_net_bytes": file_bytes, "dense_float32_parameter_bytes": 4 * t["possible"]},
        "ConnectionSparsity": 1 - t["synapses"] / t["possible"],
        "ActivationSparsity": 1 - t["spikes"] / (t["neurons"] * steps),
        "SynapticOperations": {"Effective_MACs": 0.0, "Effective_ACs": t["synops"], "Dense": full * steps},
        "MembraneUpdates": t["neuron_updates"],
        "not_NeuroBench": {"dense_ann_macs_one_inference": t["dense_macs"]},
    }


def energy(m: dict, target: Target) -> dict:
    """Energy per sample in µJ for one target; None where the target's numbers are unpublished."""
    t = m["total"]
    out = {"target": target.name, "key": target.key, "sources": {k: v["source"] for k, v in target.energy.items()
                                                                   if v["value"] is not None}}
    if target.kind == "cmos":
        ac, mac = target.pj("ac"), target.pj("mac")
        out["snn_uJ"] = t["synops"] * ac * 1e-6
        out["ann_dense_uJ"] = t["dense_macs"] * mac * 1e-6
        out["gain_vs_ann"] = out["ann_dense_uJ"] / out["snn_uJ"] if out["snn_uJ"] else math.inf
        return out
    syn, active, inactive = (target.pj(k) for k in ("synaptic_op", "neuron_update_active", "neuron_update_inactive"))
    if None in (syn, active, inactive):
        out["snn_uJ"] = None
        out["note"] = target.notes
        return out
    # a neuron-step with a spike counts as an active update, every other one as inactive (a proxy)
    spikes = t["spikes"]
    out["synops_uJ"] = t["synops"] * syn * 1e-6
    out["neurons_uJ"] = (spikes * active + (t["neuron_updates"] - spikes) * inactive) * 1e-6
    out["snn_uJ"] = out["synops_uJ"] + out["neurons_uJ"]
    return out
