"""Export to the HDF5 netx layout that `lava.lib.dl.netx.hdf5.Network` reads, holding only surviving synapses.

Each SLAYER block writes itself (`block.export_hdf5`, the quantized weights). Pruned weights are exact
zeros. The quantized weights are integers in [-256, 254], so we store them as int16 (netx's
`optimize_weight_bits` takes any integer array), gzip-compressed with byte shuffling: the file shrinks
with density while netx (through h5py) reads it unchanged. `compress=False` writes lava-dl's own plain
layout (float32, uncompressed), the reference for file sizes. The file is built in memory, then written to a temp
file and renamed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import h5py
import numpy as np
import torch

from .atomic import atomic_path
from .errors import UsageError


def _copy_compressed(src: h5py.Group, dst: h5py.Group) -> None:
    for name, item in src.items():
        if isinstance(item, h5py.Group):
            _copy_compressed(item, dst.create_group(name))
        elif item.shape and item.size > 16:
            data = item[()]
            if name == "weight" and np.array_equal(data, np.round(data)) and np.abs(data).max(initial=0) < 2**15:
                data = data.astype(np.int16)
            dst.create_dataset(name, data=data, compression="gzip", compression_opts=9, shuffle=True)
        else:
            src.copy(item, dst, name)


def export_netx(net, path: str | Path, meta: dict | None = None, compress: bool = True) -> None:
    """Write `net` (a models.SpikingNet) as a netx file; `meta` goes into the root attribute 'esl_snn'.

    A network with a non-finite weight is refused: Lava would run it without a spike and say nothing."""
    bad = [name for name, p in net.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise UsageError(f"the network has non-finite (NaN or inf) weights in {', '.join(bad)}; it was not exported - "
                         "the training diverged: lower --lr and train again")
    was_training = net.training
    with torch.no_grad():  # SLAYER blocks learn their neuron shape (written to the file) in a forward pass
        net.eval()(torch.zeros(1, *net.input_shape, 1, device=next(net.parameters()).device))
    net.train(was_training)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as staging:
        layer = staging.create_group("layer")
        # an input entry without a neuron only tells netx the input geometry (x, y, c after its reversal)
        entry = layer.create_group("0")
        entry.create_dataset("type", (1,), "S10", [b"input"])
        entry.create_dataset("shape", data=np.array(net.input_shape))
        for i, block in enumerate(net.blocks, start=1):
            block.export_hdf5(layer.create_group(str(i)))
        staging.attrs["esl_snn"] = json.dumps(meta or {})
        if compress:
            packed = io.BytesIO()
            with h5py.File(packed, "w") as out:
                _copy_compressed(staging, out)
                out.attrs.update(staging.attrs)
        else:
            staging.flush()
            packed = buf
    # HDF5 crashes on a failed write (a full disk) when its objects are freed: it only ever writes to memory here
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(packed.getvalue())


def layer_name(index: int) -> str:
    """Layer names follow the file's layer index, so training masks and file entries line up."""
    return f"layer{index}"


def read_synapses(path: str | Path) -> list[dict]:
    """Per weighted layer of a netx file: its name, type, surviving (non-zero) and possible synapses."""
    out = []
    with h5py.File(path, "r") as f:
        layers = f["layer"]
        for key in sorted(layers, key=int):
            g = layers[key]
            if "weight" not in g:
                continue
            w = g["weight"][()]
            out.append({
                "name": layer_name(int(key)),
                "type": g["type"][0].decode(),
                "synapses": int(np.count_nonzero(w)),
                "possible": int(w.size),
            })
    return out
