"""`python -m esl_deploy.nir export|import`: our networks to and from NIR, the Neuromorphic Intermediate
Representation that snnTorch, Norse, SpikingJelly, Sinabs, Rockpool and several chips read and write.

The reading of Loihi's CUBA neuron (docs/interop.md), forward Euler at a time step dt:
    tau_syn = dt*4096/iDecay   tau_mem = dt*4096/vDecay   w_in = 4096/iDecay   r = 4096/vDecay
    v_threshold = vThMant/64   weights = file weights/64  v_leak = v_reset = 0
so that I[t] = (1 - iDecay/4096) I[t-1] + W s[t] and v[t] = (1 - vDecay/4096) v[t-1] + I[t], as on Loihi. NIR
stores no dt: export writes it, the exact Loihi integers and our run metadata into the graph's metadata, so
model.net -> NIR -> model.net is lossless. NIR has no per-layer delay; Loihi (and the SLAYER twin) delay each
layer's output by one step: an importer that wants the same rasters shifts every layer's output by one step
(metadata `layer_delay_steps`).

Import takes feed-forward chains of Linear / Affine (zero bias) / Conv2d (zero bias) / Flatten with CubaLIF, LIF
or IF neurons, quantizes to Loihi's 8-bit weights and writes our netx layout, which `esl_deploy.run` runs in Lava
and checks against the twin. What Loihi's netx layers cannot run is refused with the node and the reason."""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esl_train.cli import HelpFormatter, Parser, check_input_file, check_output_file, main_wrapper
from esl_train import memory
from esl_train.errors import UsageError, first_line

from .netx_file import DECAY_SCALE, W_SCALE, Layer, NetFile

LAYER_DELAY_STEPS = 1  # Loihi / Lava / SLAYER's delay_shift: one step per layer
MAX_WEIGHT = 254  # Loihi's 8-bit weight mantissa with SLAYER's step of 2: even integers in [-256, 254]
MAX_THRESHOLD = 2**17 - 1  # vThMant is 17 bits
SYNAPSES = ("Linear", "Affine", "Conv2d")
NEURONS = ("CubaLIF", "LIF", "IF")
REFUSED = {
    "AvgPool2d": "pooling, which our netx layers do not run; use a strided convolution instead",
    "SumPool2d": "pooling, which our netx layers do not run; use a strided convolution instead",
    "Conv1d": "a 1-D convolution; only Conv2d maps onto netx conv layers",
    "Delay": "per-neuron axonal delays, which a netx file does not hold",
    "Scale": "a per-neuron gain with no neuron after it; fold it into the weights before export",
    "Threshold": "a threshold without neuron state, which Loihi's CUBA neuron cannot express",
    "LI": "a non-spiking (leaky integrator) readout; Loihi layers here end in spiking neurons",
    "CubaLI": "a non-spiking (leaky integrator) readout; Loihi layers here end in spiking neurons",
    "I": "a non-spiking integrator readout; Loihi layers here end in spiking neurons",
    "NIRGraph": "a subgraph (snnTorch and others write recurrent layers this way); only feed-forward chains run here",
}


# ---------------------------------------------------------------------------------------------------- export

def _cuba_node(layer: Layer, dt: float):
    import nir

    n = layer.neuron
    i_decay, v_decay, v_th = int(n["iDecay"]), int(n["vDecay"]), int(n["vThMant"])
    for key, value in (("iDecay", i_decay), ("vDecay", v_decay)):
        if value == 0:
            raise UsageError(f"{layer.name}: {key} is 0 (no decay), which has no finite time constant in NIR's "
                             "CubaLIF; such a network cannot be exported")
    full = lambda v: np.full(layer.shape, v, dtype=np.float64)  # noqa: E731
    meta = {"iDecay": i_decay, "vDecay": v_decay, "vThMant": v_th, "refDelay": int(n.get("refDelay", 1)),
            "gradedSpike": int(bool(n.get("gradedSpike", False)))}
    return nir.CubaLIF(tau_syn=full(dt * DECAY_SCALE / i_decay), tau_mem=full(dt * DECAY_SCALE / v_decay),
                       r=full(DECAY_SCALE / v_decay), v_leak=full(0.0), v_threshold=full(v_th / W_SCALE),
                       v_reset=full(0.0), w_in=full(DECAY_SCALE / i_decay), metadata=meta)


def _flatten(shape: tuple):
    """Flatten counted from the end (-len(shape) .. -1): valid NIR, whose types have no batch dimension, and the same
    module where nirtorch hands the dims to torch.nn.Flatten, which counts the batch (snnTorch, Norse load it as is)."""
    import nir

    return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=-len(shape), end_dim=-1)


def to_nir(net: NetFile, dt: float):
    """The NIR graph of a checked netx network: Input, [Flatten], (Linear | Conv2d | Flatten, CubaLIF)..., Output."""
    import nir

    shape = tuple(net.input_shape)
    nodes = {"input": nir.Input(input_type={"input": np.array(shape)})}
    if net.layers[0].type == "dense":  # our MLP flattens its (P, H, W) input before the first layer
        nodes["flatten"] = _flatten(shape)
        shape = (int(np.prod(shape)),)
    for layer in net.layers:
        if layer.type == "flatten":
            nodes[f"flatten{layer.index}"] = _flatten(shape)
        elif layer.type == "dense":
            nodes[f"linear{layer.index}"] = nir.Linear(weight=layer.weight.astype(np.float32) / W_SCALE)
        else:
            c = layer.conv
            w = layer.weight.astype(np.float32) / W_SCALE
            nodes[f"conv{layer.index}"] = nir.Conv2d(
                input_shape=tuple(shape[1:]), weight=w, stride=c["stride"], padding=c["padding"],
                dilation=c["dilation"], groups=c["groups"], bias=np.zeros(w.shape[0], np.float32))
        if layer.weight is not None:
            nodes[f"cuba{layer.index}"] = _cuba_node(layer, dt)
        shape = layer.shape
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    names = list(nodes)
    metadata = {"source": "esl-snn", "dt": float(dt), "layer_delay_steps": LAYER_DELAY_STEPS,
                "weight_scale": W_SCALE, "decay_scale": DECAY_SCALE, "esl_snn": json.dumps(net.meta)}
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), metadata=metadata)


def export(model: str | Path, out: str | Path, dt: float = 1e-3) -> str:
    from esl_train.atomic import atomic_path

    from . import netx_file
    import nir

    graph = to_nir(netx_file.read(model), dt)
    buf = io.BytesIO()  # HDF5 crashes on a failed write (a full disk) at exit: build in memory, write plain bytes
    nir.write(buf, graph)
    with atomic_path(out) as tmp:
        Path(tmp).write_bytes(buf.getvalue())
    kinds = [type(n).__name__ for n in graph.nodes.values()]
    return f"{out}: NIR graph of {len(kinds)} nodes ({' -> '.join(kinds)}), dt {dt:g} s"


# ---------------------------------------------------------------------------------------------------- import

@dataclass
class Imported:
    """A NIR layer as Loihi integers, and what the quantization did to it."""
    layer: Layer
    nodes: str  # "linear1 + lif1"
    scale: float  # weights and threshold were multiplied by this to fill the 8-bit range (1: kept as they were)
    rounded_to_zero: int  # non-zero weights that quantized to 0
    dt: str  # where dt came from


def _back_edge(succ: dict[str, list[str]]) -> tuple[str, str] | None:
    """An edge that closes a cycle, if there is one (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in succ:
        stack = [(root, iter(succ[root]))]
        state.setdefault(root, 1)
        if state[root] == 2:
            continue
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                return node, child
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(succ[child])))
    return None


def _chain(path: Path) -> list[tuple[str, str]]:
    """(name, type) from input to output, read from the raw file; refuses anything but one feed-forward chain."""
    import h5py

    with h5py.File(path, "r") as f:
        if "node" not in f or "nodes" not in f["node"] or "edges" not in f["node"]:
            raise UsageError(f"{path} is an HDF5 file but not a NIR graph (no node/nodes and node/edges); pass a "
                             "file written by nir.write")
        types = {}
        for name, g in f["node"]["nodes"].items():
            if "type" not in g:
                raise UsageError(f"{path}: node {name} has no type; the file is damaged or not NIR")
            t = g["type"][()]
            types[name] = t.decode() if isinstance(t, bytes) else str(t)
        edges = [tuple(e.decode() if isinstance(e, bytes) else str(e) for e in pair) for pair in f["node"]["edges"][()]]
    for a, b in edges:
        for n in (a, b):
            if n not in types:
                raise UsageError(f"{path}: edge {a} -> {b} names node {n}, which the graph does not have")
    succ: dict[str, list[str]] = {n: [] for n in types}
    pred: dict[str, list[str]] = {n: [] for n in types}
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)
    for name, t in types.items():
        if t in REFUSED:
            raise UsageError(f"{path}: node {name} ({t}) is {REFUSED[t]}")
        if t not in (*SYNAPSES, *NEURONS, "Flatten", "Input", "Output"):
            raise UsageError(f"{path}: node {name} has type {t}, which this importer does not know; supported: "
                             f"{', '.join((*SYNAPSES, *NEURONS, 'Flatten'))}")
    inputs = [n for n, t in types.items() if t == "Input"]
    outputs = [n for n, t in types.items() if t == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise UsageError(f"{path} has {len(inputs)} Input and {len(outputs)} Output nodes; a network here has one "
                         "of each")
    loop = _back_edge(succ)
    if loop:
        raise UsageError(f"{path}: edge {loop[0]} -> {loop[1]} closes a loop (a recurrent connection), which our "
                         "netx layers cannot run; only feed-forward graphs are imported")
    order, seen, node = [], set(), inputs[0]
    while True:
        order.append(node)
        seen.add(node)
        if node == outputs[0]:
            break
        if len(succ[node]) != 1:
            what = "leads nowhere" if not succ[node] else f"feeds {len(succ[node])} nodes (a branch)"
            raise UsageError(f"{path}: node {node} {what}; only a chain from input to output runs here")
        nxt = succ[node][0]
        if len(pred[nxt]) != 1:
            raise UsageError(f"{path}: node {nxt} has {len(pred[nxt])} inputs ({', '.join(pred[nxt])}); only a "
                             "chain from input to output runs here")
        node = nxt
    stray = [n for n in types if n not in seen]
    if stray:
        raise UsageError(f"{path}: node {stray[0]} is not on the path from input to output (a loop or a side "
                         "branch); only a chain runs here")
    return [(n, types[n]) for n in order]


POSITIVE = ("tau", "tau_syn", "tau_mem", "r", "w_in", "v_threshold")  # time constants, gains, threshold


def _uniform(node_name: str, field: str, value, size: int) -> float:
    try:
        a = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise UsageError(f"node {node_name}: {field} is not a number array; write the graph again with nir") from None
    if a.size not in (1, size):
        raise UsageError(f"node {node_name}: {field} has {a.size} values for {size} neurons")
    if not np.all(np.isfinite(a)):
        raise UsageError(f"node {node_name}: {field} holds NaN or inf; the graph's neuron parameters are broken, "
                         "export it again from a trained network")
    if field in POSITIVE and not np.all(a > 0):
        raise UsageError(f"node {node_name}: {field} must be positive, got {a.min():g}; the graph's neuron parameters "
                         "are broken, export it again from a trained network")
    if not np.allclose(a, a[0], rtol=1e-6, atol=0):
        raise UsageError(f"node {node_name}: per-neuron {field} (from {a.min():g} to {a.max():g}); Loihi's CUBA "
                         "layers share one value per layer")
    return float(a[0])


def _decay(node_name: str, field: str, fraction: float) -> int:
    """dt/tau as a 12-bit decay; refuses tau < dt, which forward Euler cannot take."""
    if not 0 <= fraction <= 1 + 1e-9:
        raise UsageError(f"node {node_name}: {field} is shorter than the time step (dt/{field} = {fraction:g}); "
                         "pass a smaller --dt")
    return int(round(DECAY_SCALE * min(fraction, 1.0)))


def _neuron(name: str, node, size: int, dt: float | None):
    """Loihi integers (iDecay, vDecay), the gain from the synapse output to v, threshold, and where dt came from."""
    t = type(node).__name__
    get = lambda field: _uniform(name, field, getattr(node, field), size)  # noqa: E731
    if get("v_reset") != 0:
        raise UsageError(f"node {name}: non-zero reset (v_reset = {get('v_reset'):g}); Loihi's CUBA neuron resets to 0")
    if t != "IF" and get("v_leak") != 0:
        raise UsageError(f"node {name}: leak towards v_leak = {get('v_leak'):g}; Loihi's CUBA neuron leaks towards 0 "
                         "(a bias), which netx layers here do not hold")
    theta = get("v_threshold")
    if t == "IF":  # v[t] = v[t-1] + r I[t]: no time constant, no dt
        return DECAY_SCALE, 0, get("r"), theta, "not needed (IF)"
    if t == "LIF":  # the synaptic current is the weighted input of this step: iDecay 4096
        tau, r = get("tau"), get("r")
        step, source = (dt, "given") if dt else (tau / r, "tau/r")
        return DECAY_SCALE, _decay(name, "tau", step / tau), r * step / tau, theta, source
    tau_syn, tau_mem, r, w_in = get("tau_syn"), get("tau_mem"), get("r"), get("w_in")
    step, source = (dt, "given") if dt else (tau_syn / w_in, "tau_syn/w_in")
    gain = (w_in * step / tau_syn) * (r * step / tau_mem)  # both stages of Euler's update, folded into the weights
    return _decay(name, "tau_syn", step / tau_syn), _decay(name, "tau_mem", step / tau_mem), gain, theta, source


def _quantize(name: str, w: np.ndarray, theta: float) -> tuple[np.ndarray, int, float, int]:
    """Integer weights, vThMant, the scale applied, and how many weights rounded to zero.

    Weights already on Loihi's grid (even multiples of 1/64 in range, as our exports are) are kept exactly; others
    are scaled, together with the threshold, so that the largest weight uses the whole 8-bit range: spikes do not
    change under a common scale of weights and threshold, and the rounding error is smallest."""
    x = w * W_SCALE
    on_grid = (np.array_equal(x, 2 * np.round(x / 2)) and np.abs(x).max(initial=0) <= MAX_WEIGHT
               and float(theta * W_SCALE).is_integer())
    peak = np.abs(x).max(initial=0)
    if peak == 0:
        raise UsageError(f"node {name}: every weight is zero, which netx cannot build")
    scale = 1.0 if on_grid else MAX_WEIGHT / peak
    q = np.clip(2 * np.round(x * scale / 2), -MAX_WEIGHT - 2, MAX_WEIGHT)
    v_th = int(round(theta * W_SCALE * scale))
    if not 1 <= v_th <= MAX_THRESHOLD:
        raise UsageError(f"node {name}: threshold {theta:g} becomes vThMant {v_th} after scaling weights to 8 bits, "
                         f"outside Loihi's 1..{MAX_THRESHOLD}")
    return q.astype(np.int16), v_th, scale, int(np.count_nonzero((q == 0) & (w != 0)))


def read_graph(path: str | Path):
    """The NIR graph in `path` and its chain, or a one-line UsageError."""
    import h5py
    import nir

    path = check_input_file(path, "pass a .nir file", "pass a .nir file written by nir.write")
    if not h5py.is_hdf5(path):
        raise UsageError(f"{path} is not an HDF5 file, so it is not a NIR graph; pass a file written by nir.write")
    chain = _chain(path)
    try:
        graph = nir.read(path, type_check=False)  # shapes are checked below, layer by layer, with clearer words
    except Exception as e:  # nir raises bare ValueError/KeyError/AssertionError on malformed nodes
        raise UsageError(f"{path} is not a readable NIR graph ({type(e).__name__}: {e})") from None
    return graph, chain


def _padding(name: str, node, kernel: tuple[int, int]) -> tuple[int, int]:
    p = node.padding
    if isinstance(p, (bytes, str)):
        p = p.decode() if isinstance(p, bytes) else p
        if p == "valid":
            return (0, 0)
        if p == "same" and all(k % 2 for k in kernel) and np.all(np.asarray(node.stride) == 1):
            return tuple((k - 1) // 2 for k in kernel)
        raise UsageError(f"node {name}: padding {p!r} with kernel {kernel} and stride {node.stride} has no "
                         "symmetric integer padding")
    return tuple(int(v) for v in np.broadcast_to(np.asarray(p), (2,)))


def from_nir(graph, chain: list[tuple[str, str]], dt: float | None = None) -> tuple[tuple, list[Imported]]:
    """The input shape and the layers, as Loihi integers."""
    given = "--dt" if dt else "graph metadata" if "dt" in graph.metadata else None
    if given == "graph metadata":
        try:
            dt = float(graph.metadata["dt"])
        except (TypeError, ValueError):
            dt = float("nan")
        if not (np.isfinite(dt) and dt > 0):
            raise UsageError(f"the graph's metadata dt is {graph.metadata['dt']!r}, not a positive number of seconds; "
                             "pass --dt")
    source = graph.nodes[chain[0][0]].input_type["input"]
    input_shape = tuple(int(s) for s in np.atleast_1d(source))
    shape, out, pending = input_shape, [], None
    index = 1
    for name, t in chain[1:-1]:
        node = graph.nodes[name]
        if t == "Flatten":
            if pending:
                raise UsageError(f"node {name} (Flatten) sits between synapse node {pending[0]} and its neuron")
            if out and len(shape) > 1:  # after a conv layer: a netx flatten layer; before the first layer: the input
                out.append(Imported(Layer(index, "flatten", (int(np.prod(shape)),)), name, 1.0, 0, ""))
                index += 1
            shape = (int(np.prod(shape)),)
        elif t in SYNAPSES:
            if pending:
                raise UsageError(f"nodes {pending[0]} and {name} are two synapse nodes in a row; a Loihi layer is one "
                                 "synapse node and one neuron node")
            bias = getattr(node, "bias", None)
            if bias is not None and np.any(np.asarray(bias) != 0):
                raise UsageError(f"node {name} ({t}) has a non-zero bias, which Loihi's netx layers here do not "
                                 "hold; retrain without bias")
            w = np.asarray(node.weight, dtype=np.float64)
            if not np.all(np.isfinite(w)):
                raise UsageError(f"node {name}: {int(np.size(w) - np.isfinite(w).sum())} weights are NaN or inf; "
                                 "export the graph again from a network that trained without diverging")
            if t == "Conv2d":
                if w.ndim != 4 or len(shape) != 3 or shape[0] != w.shape[1] * int(node.groups):
                    raise UsageError(f"node {name}: conv weight {w.shape} does not fit its input {shape}")
            elif w.ndim != 2 or w.shape[1] != int(np.prod(shape)):
                raise UsageError(f"node {name}: weight {w.shape} takes {w.shape[-1]} inputs but the node before "
                                 f"gives {int(np.prod(shape))}")
            pending = (name, t, node, w)
        elif t in NEURONS:
            if not pending:
                raise UsageError(f"node {name} ({t}) has no synapse node before it; a Loihi layer is one synapse "
                                 "node and one neuron node")
            syn_name, syn_t, syn, w = pending
            if syn_t == "Conv2d":
                conv = {"stride": tuple(int(v) for v in np.broadcast_to(np.asarray(syn.stride), (2,))),
                        "dilation": tuple(int(v) for v in np.broadcast_to(np.asarray(syn.dilation), (2,))),
                        "padding": _padding(syn_name, syn, tuple(w.shape[2:])), "groups": int(syn.groups)}
                h, wd = ((shape[1 + i] + 2 * conv["padding"][i] - conv["dilation"][i] * (w.shape[2 + i] - 1) - 1)
                         // conv["stride"][i] + 1 for i in range(2))
                neuron_shape = (w.shape[0], h, wd)
            else:
                conv, neuron_shape = {}, (w.shape[0],)
            i_decay, v_decay, gain, theta, dt_source = _neuron(name, node, int(np.prod(neuron_shape)), dt)
            dt_source = f"{dt:g} s from {given}" if given and dt_source == "given" else dt_source
            gain = 1.0 if abs(gain - 1) < 1e-9 else gain  # our own exports: one, up to float rounding of dt*4096/iDecay
            q, v_th, scale, zeros = _quantize(syn_name, w * gain, theta)
            neuron = {"iDecay": i_decay, "vDecay": v_decay, "vThMant": v_th}
            layer = Layer(index, "conv" if conv else "dense", neuron_shape, q, conv=conv, neuron=neuron)
            out.append(Imported(layer, f"{syn_name} + {name}", scale, zeros, dt_source))
            index += 1
            shape, pending = neuron_shape, None
    if pending:
        raise UsageError(f"synapse node {pending[0]} has no neuron node after it (a non-spiking readout); Loihi "
                         "layers here end in spiking neurons")
    if not out or all(i.layer.weight is None for i in out):
        raise UsageError("the graph has no synapse and neuron layer")
    if len(input_shape) == 1:
        input_shape = (input_shape[0], 1, 1)
    if len(input_shape) != 3:
        raise UsageError(f"the input shape {input_shape} is neither (N,) nor (C, H, W)")
    return input_shape, out


def import_(src: str | Path, out: str | Path, dt: float | None, dataset: str | None, steps: int | None) -> list[str]:
    from esl_train.export import export_netx
    from esl_train.quiet import import_lava_dl

    graph, chain = read_graph(src)
    input_shape, imported = from_nir(graph, chain, dt)
    layers = [i.layer for i in imported]
    meta = {"source": f"nir:{Path(src).name}", "input_shape": list(input_shape), "num_classes": layers[-1].neurons}
    if "esl_snn" in graph.metadata:
        try:
            meta = json.loads(graph.metadata["esl_snn"])
        except (TypeError, ValueError) as e:
            raise UsageError(f"{src}: the graph's metadata esl_snn is not valid JSON ({first_line(e)}); remove that "
                             "entry or write it with json.dumps") from None
        if not isinstance(meta, dict):
            raise UsageError(f"{src}: the graph's metadata esl_snn is not a JSON object; remove that entry")
    if dataset is not None and int(np.prod(memory.input_shape(dataset))) != int(np.prod(input_shape)):
        raise UsageError(f"--dataset {dataset} gives inputs of shape {memory.input_shape(dataset)}, but the graph's "
                         f"input is {tuple(input_shape)}; pass the data set the network was made for")
    if steps is not None:
        memory.check_rasters(1, steps, int(np.prod(input_shape)), sum(layer.neurons for layer in layers),
                             f"--steps {steps}", "pass the time steps per sample the network runs for (e.g. 8-100)")
    meta.update({k: v for k, v in (("dataset", dataset), ("steps", steps)) if v is not None})
    import_lava_dl()
    from .twin import build_twin

    net = NetFile(Path(out), input_shape, layers, meta)
    export_netx(build_twin(net), out, meta)  # SLAYER blocks write themselves: the same layout as a trained model
    lines = []
    for i in imported:
        if i.layer.weight is None:
            lines.append(f"{i.layer.name} flatten ({i.nodes})")
            continue
        n = i.layer.neuron
        kept = "kept exactly" if i.scale == 1 else f"scaled x{i.scale:.4g} with the threshold to fill 8 bits"
        lines.append(f"{i.layer.name} {i.layer.type} {i.layer.weight.shape} from {i.nodes}: weights {kept}, "
                     f"{i.rounded_to_zero} of {np.count_nonzero(i.layer.weight) + i.rounded_to_zero} non-zero "
                     f"weights rounded to zero; iDecay {n['iDecay']}, vDecay {n['vDecay']}, vThMant {n['vThMant']} "
                     f"(dt: {i.dt})")
    return lines


# ---------------------------------------------------------------------------------------------------- CLI

def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m esl_deploy.nir", description=__doc__.splitlines()[0], allow_abbrev=False,
               formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    e = sub.add_parser("export", help="model.net -> model.nir", formatter_class=HelpFormatter)
    e.add_argument("model", help="netx file (model.net from esl_train)")
    e.add_argument("out", help="the .nir file to write")
    e.add_argument("--dt", type=float, default=1e-3, help="seconds per time step, for NIR's time constants "
                                                           "(snnTorch's importer assumes 1e-4)")
    e.add_argument("--force", action="store_true", help="replace the output file if it exists")
    i = sub.add_parser("import", help="model.nir -> model.net (Loihi integers, netx layout)",
                       formatter_class=HelpFormatter)
    i.add_argument("nir_file", help="NIR graph (HDF5) from nir.write, e.g. snnTorch's export_to_nir")
    i.add_argument("out", help="the netx file to write (run it with python -m esl_deploy.run)")
    i.add_argument("--dt", type=float, help="seconds per time step (default: the graph's metadata dt, else the "
                                            "dt at which the graph's input gains are one: tau_syn/w_in or tau/r)")
    i.add_argument("--dataset", help="data set the network takes (written to the file for esl_deploy.run)")
    i.add_argument("--steps", type=int, help="time steps per sample (written to the file for esl_deploy.run)")
    i.add_argument("--force", action="store_true", help="replace the output file if it exists")
    return p


def _main(argv) -> int:
    args = parser().parse_args(argv)
    if args.dt is not None and not (np.isfinite(args.dt) and args.dt > 0):
        raise UsageError(f"--dt must be a positive number of seconds, got {args.dt:g}")
    if args.command == "export":
        check_output_file(args.out, "out", source=args.model, force=args.force)
        print(export(args.model, args.out, args.dt))
        return 0
    from esl_train.config import DATASETS

    if args.dataset is not None and args.dataset not in DATASETS:
        raise UsageError(f"unknown --dataset {args.dataset!r}; choose one of {', '.join(DATASETS)}")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    check_output_file(args.out, "out", source=args.nir_file, force=args.force)
    for line in import_(args.nir_file, args.out, args.dt, args.dataset, args.steps):
        print(line)
    print(f"wrote {args.out}; run it with: python -m esl_deploy.run {args.out}")
    return 0


def main(argv=None) -> int:
    return main_wrapper(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
