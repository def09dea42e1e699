"""Read and check a netx HDF5 file before Lava sees it, so that a bad file gets a one-line answer.

Accepted: files written by `python -m esl_train`, and lava-dl `export_hdf5` files of SLAYER `cuba.Dense`,
`cuba.Conv` and `cuba.Flatten` blocks (layer keys 0..n-1; an input entry without neurons may come first). Refused,
each with the reason: other layer or neuron types, SLAYER's `Input` block (an input layer with neurons), missing
neuron parameters, weights that are not finite integers, layers whose weights are all zero, bad conv geometry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from esl_train.cli import check_input_file
from esl_train.errors import UsageError


@dataclass
class Layer:
    index: int  # position in the file's layer group
    type: str  # dense | conv | flatten
    shape: tuple[int, ...]  # neuron shape as SLAYER writes it: (out,) or (C, H, W)
    weight: np.ndarray | None = None  # quantized integer weights: (out, in) or (out, in, kh, kw)
    conv: dict = field(default_factory=dict)  # stride, padding, dilation, groups
    neuron: dict = field(default_factory=dict)  # iDecay, vDecay, vThMant, ...

    @property
    def name(self) -> str:
        return f"layer{self.index}"

    @property
    def neurons(self) -> int:
        return int(np.prod(self.shape))

    @property
    def synapses(self) -> int:
        return 0 if self.weight is None else int(np.count_nonzero(self.weight))

    @property
    def possible(self) -> int:
        return 0 if self.weight is None else int(self.weight.size)


@dataclass
class NetFile:
    path: Path
    input_shape: tuple[int, int, int]  # (P, H, W)
    layers: list[Layer]
    meta: dict

    @property
    def weighted(self) -> list[Layer]:
        return [l for l in self.layers if l.weight is not None]


ACCEPTED = "a model.net written by python -m esl_train, or a lava-dl export of cuba Dense/Conv/Flatten blocks"
NEURON_KEYS = ("iDecay", "vDecay", "vThMant")
W_SCALE = 64  # SLAYER CUBA's weight scale: file weights are quantized weights x 64 (6 fractional bits)
DECAY_SCALE = 4096  # iDecay / vDecay are 12-bit fractions


def _bad(path, what: str) -> UsageError:
    return UsageError(f"{path} {what}; pass {ACCEPTED}")


def _conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def read(path: str | Path) -> NetFile:
    """The checked network, or a UsageError naming what is wrong with the file."""
    import h5py

    path = check_input_file(path, f"pass the network file inside it (e.g. {Path(path) / 'model.net'})",
                            "pass the model.net from an esl_train run folder")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise _bad(path, "is not an HDF5 file (truncated or another format)") from None
    try:
        with f:
            return _parse(path, f)
    except (KeyError, ValueError, TypeError, IndexError, OSError) as e:
        raise _bad(path, f"is not a readable netx network ({type(e).__name__}: {e})") from None


def _meta(path: Path, f) -> dict:
    from esl_train.config import DATASETS

    meta = json.loads(f.attrs.get("esl_snn", "{}"))
    if not isinstance(meta, dict):
        raise _bad(path, "has esl_snn metadata that is not a JSON object")
    steps = meta.get("steps")
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise _bad(path, f"has metadata steps={steps!r}, not a positive integer")
    if meta.get("dataset") is not None and meta["dataset"] not in DATASETS:
        raise _bad(path, f"names an unknown dataset {meta['dataset']!r} in its metadata")
    return meta


def _weight(path: Path, key: str, g) -> np.ndarray:
    w = g["weight"][()]
    if not isinstance(w, np.ndarray) or w.dtype.kind not in "iuf":
        raise _bad(path, f"layer {key}: weights of type {getattr(w, 'dtype', type(w))}, not numbers")
    if not np.all(np.isfinite(w)) or not np.array_equal(w, np.round(w)):
        raise _bad(path, f"layer {key}: weights are not finite integers (Loihi's quantized weights are)")
    if not np.any(w):
        raise _bad(path, f"layer {key}: every weight is zero (all synapses pruned or quantized away), which netx "
                         "cannot build; retrain with a higher --density")
    return w


def _neuron(path: Path, key: str, g) -> dict:
    if "neuron" not in g:
        raise _bad(path, f"layer {key} has no neuron parameters")
    n = g["neuron"]
    kind = n["type"][()] if "type" in n else b"CUBA"
    kind = (kind[0] if isinstance(kind, np.ndarray) else kind)
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    if kind != "CUBA":
        raise _bad(path, f"layer {key} has {kind} neurons; only CUBA neurons run here")
    missing = [k for k in NEURON_KEYS if k not in n]
    if missing:
        raise _bad(path, f"layer {key}: neuron parameter {', '.join(missing)} missing")
    return {k: n[k][()] for k in n}


def _parse(path: Path, f) -> NetFile:
    if "layer" not in f or not len(f["layer"]):
        raise _bad(path, "has no 'layer' group, so it is not a netx network")
    meta = _meta(path, f)
    group = f["layer"]
    if sorted(group, key=lambda k: (not k.isdigit(), k.zfill(9))) != [str(i) for i in range(len(group))]:
        raise _bad(path, f"has layer keys {sorted(group)}, not 0..{len(group) - 1}")
    keys = [str(i) for i in range(len(group))]
    layers: list[Layer] = []
    input_shape = tuple(meta.get("input_shape", ()))
    current: tuple[int, ...] | None = input_shape or None
    for key in keys:
        g = group[key]
        kind = g["type"][0].decode()
        shape = tuple(int(s) for s in g["shape"][()]) if "shape" in g else ()
        if kind == "input":
            if "neuron" in g:
                raise _bad(path, f"layer {key} is an input layer with neurons (SLAYER's Input block), which this "
                                 "toolkit does not deploy; export the network without it")
            input_shape = input_shape or shape
            current = input_shape
            continue
        if kind == "flatten":
            layers.append(Layer(int(key), kind, (int(np.prod(current)),)))
            current = layers[-1].shape
        elif kind == "dense":
            w, neuron = _weight(path, key, g), _neuron(path, key, g)
            if w.ndim != 2 or w.shape != (int(g["outFeatures"][()]), int(g["inFeatures"][()])):
                raise _bad(path, f"layer {key}: weight shape {w.shape} disagrees with its in/out features")
            if current is not None and int(np.prod(current)) != w.shape[1]:
                raise _bad(path, f"layer {key}: takes {w.shape[1]} inputs but the layer before gives "
                                 f"{int(np.prod(current))}")
            layers.append(Layer(int(key), kind, (w.shape[0],), w, neuron=neuron))
            current = (w.shape[0],)
        elif kind == "conv":
            w, neuron = _weight(path, key, g), _neuron(path, key, g)
            conv = {k: tuple(int(v) for v in np.atleast_1d(g[k][()])) for k in ("stride", "padding", "dilation")}
            conv["groups"] = int(g["groups"][()])
            if (min(conv["stride"]) < 1 or min(conv["dilation"]) < 1 or min(conv["padding"]) < 0
                    or conv["groups"] < 1):
                raise _bad(path, f"layer {key}: conv geometry {conv} is impossible (stride, dilation, groups >= 1, "
                                 "padding >= 0)")
            if w.ndim != 4 or current is None or len(current) != 3 or current[0] != w.shape[1] * conv["groups"]:
                raise _bad(path, f"layer {key}: conv weight {w.shape} does not fit its input {current}")
            h, wd = (_conv_out(current[1 + i], w.shape[2 + i], conv["stride"][i], conv["padding"][i],
                               conv["dilation"][i]) for i in range(2))
            layers.append(Layer(int(key), kind, (w.shape[0], h, wd), w, conv=conv, neuron=neuron))
            current = layers[-1].shape
        else:
            raise _bad(path, f"layer {key} is of type {kind!r}, which netx cannot build "
                             "(dense, conv and flatten only)")
        if shape and kind != "flatten" and int(np.prod(shape)) != layers[-1].neurons:
            raise _bad(path, f"layer {key}: declared shape {shape} disagrees with its weights")
    if not any(l.weight is not None for l in layers):
        raise _bad(path, "has no dense or conv layer")
    if len(input_shape) != 3:
        first = next(l for l in layers if l.weight is not None)
        if first.type != "dense":
            raise _bad(path, "has no input shape for its first conv layer")
        input_shape = (first.weight.shape[1], 1, 1)
    return NetFile(path, tuple(input_shape), layers, meta)
