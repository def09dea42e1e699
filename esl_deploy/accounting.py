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


def dense_macs(layer: Layer) -> int:
    """Multiply-accumulates of the same layer as a dense ANN, once per inference."""
    if layer.type == "dense":
        return layer.possible
    return int(np.prod(layer.shape) * np.prod(layer.weight.shape[1:]))


def layer_inputs(net: NetFile) -> list[tuple[int, ...]]:
    shapes, current = [], net.input_shape
    for layer in net.weighted:
        shapes.append(current)
        current = layer.shape
    return shapes


def measure(net: NetFile, inputs: np.ndarray, layer_spikes: list[np.ndarray]) -> dict:
    """Per-sample averages over the samples given. `inputs` (N, P, H, W, T); `layer_spikes` per weighted layer
    (N, *shape, T), as SLAYER lays them out."""
    n, steps = inputs.shape[0], inputs.shape[-1]
    pre = [inputs] + layer_spikes[:-1]
    rows = []
    for layer, in_shape, x, y in zip(net.weighted, layer_inputs(net), pre, layer_spikes):
        counts = x.reshape(n, *in_shape, steps).sum(axis=(0, -1)).astype(np.float64)
        rows.append({
            "name": layer.name, "type": layer.type, "neurons": layer.neurons,
            "synapses": layer.synapses, "possible": layer.possible,
            "connections": connections(layer, in_shape),
            "input_spikes": float(x.sum()) / n, "spikes": float(y.sum()) / n,
            "synops": _fan_out_sum(layer, counts) / n,
            "neuron_updates": layer.neurons * steps,
            "dense_macs": dense_macs(layer),
        })
    total = {k: sum(r[k] for r in rows) for k in ("neurons", "synapses", "possible", "connections", "spikes",
                                                    "synops", "neuron_updates", "dense_macs")}
    return {"samples": n, "steps": steps, "layers": rows, "total": total}


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
