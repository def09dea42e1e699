"""Read and check a netx HDF5 file before Lava sees it, so that a bad file gets a one-line answer.

Only the layer types netx can build are accepted (dense, conv, flatten, and an input entry)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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


def _bad(path, what: str) -> UsageError:
    return UsageError(f"{path} {what}; pass a model.net written by python -m esl_train (or lava-dl's export_hdf5)")


def _conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def read(path: str | Path) -> NetFile:
    """The checked network, or a UsageError naming what is wrong with the file."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} does not exist; pass the model.net from an esl_train run folder")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise _bad(path, "is not an HDF5 file (truncated or another format)") from None
    try:
        with f:
            return _parse(path, f)
    except (KeyError, ValueError, TypeError, IndexError, OSError) as e:
        raise _bad(path, f"is not a readable netx network ({type(e).__name__}: {e})") from None


def _parse(path: Path, f) -> NetFile:
    if "layer" not in f or not len(f["layer"]):
        raise _bad(path, "has no 'layer' group, so it is not a netx network")
    meta = json.loads(f.attrs.get("esl_snn", "{}"))
    group = f["layer"]
    keys = sorted(group, key=int)
    layers: list[Layer] = []
    input_shape = tuple(meta.get("input_shape", ()))
    current: tuple[int, ...] | None = input_shape or None
    for key in keys:
        g = group[key]
        kind = g["type"][0].decode()
        shape = tuple(int(s) for s in g["shape"][()]) if "shape" in g else ()
        if kind == "input":
            input_shape = input_shape or shape
            current = input_shape
            continue
        neuron = {k: g["neuron"][k][()] for k in g["neuron"]} if "neuron" in g else {}
        if kind == "flatten":
            layers.append(Layer(int(key), kind, (int(np.prod(current)),)))
            current = layers[-1].shape
        elif kind == "dense":
            w = g["weight"][()]
            if w.ndim != 2 or w.shape != (int(g["outFeatures"][()]), int(g["inFeatures"][()])):
                raise _bad(path, f"layer {key}: weight shape {w.shape} disagrees with its in/out features")
            if current is not None and int(np.prod(current)) != w.shape[1]:
                raise _bad(path, f"layer {key}: takes {w.shape[1]} inputs but the layer before gives "
                                 f"{int(np.prod(current))}")
            layers.append(Layer(int(key), kind, (w.shape[0],), w, neuron=neuron))
            current = (w.shape[0],)
        elif kind == "conv":
            w = g["weight"][()]
            conv = {k: tuple(int(v) for v in np.atleast_1d(g[k][()])) for k in ("stride", "padding", "dilation")}
            conv["groups"] = int(g["groups"][()])
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
