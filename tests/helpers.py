"""Shared test helpers: tiny masked networks and files in N-MNIST's binary format."""

import numpy as np
import torch

from esl_train.data.digits_dvs import EVENT_DTYPE
from esl_train.models import build
from esl_train.sparsity import EvolverConfig, MaskEvolver


def masked_net(arch, density, shape=(2, 24, 24), hidden=128, seed=0):
    """A freshly initialised network with random masks, weights rescaled by 1/sqrt(density) so that even a very
    sparse untrained net spikes (training does not rescale by default; these nets are never trained)."""
    torch.manual_seed(seed)
    net = build(arch, shape, 10, hidden=hidden)
    opt = torch.optim.Adam(net.parameters())
    weights = {k: (b.synapse, b.synapse.weight) for k, b in net.weighted_blocks().items()}
    ev = MaskEvolver(weights, opt, EvolverConfig(density=density, rescale_init=True), total_steps=10, seed=seed)
    return net, ev


def tiny_mlp_file(folder):
    """A small masked MLP exported as folder/model.net for the embedded set at 8 steps; returns (path, net)."""
    from esl_train.export import export_netx

    net, _ = masked_net("mlp", 0.3, hidden=24)
    path = folder / "model.net"
    export_netx(net, path, {"arch": "mlp", "dataset": "digits", "steps": 8, "input_shape": [2, 24, 24]})
    return path, net


def write_nmnist_bin(path, events):
    """Encode events in N-MNIST's 40-bit format: x, y, polarity bit + 23-bit timestamp (µs)."""
    raw = np.zeros((len(events), 5), np.uint8)
    t = events["t"].astype(np.uint32)
    raw[:, 0], raw[:, 1] = events["x"], events["y"]
    raw[:, 2] = (events["p"].astype(np.uint32) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw.tobytes())


def fake_nmnist(root, per_class=2, classes=(0, 3, 7)):
    """A few random recordings per class under root/NMNIST/{Train,Test}/<digit>/; returns {path: events}."""
    rng = np.random.default_rng(0)
    written = {}
    for split in ("Train", "Test"):
        for c in classes:
            for k in range(per_class):
                ev = np.zeros(50, EVENT_DTYPE)
                ev["x"], ev["y"] = rng.integers(0, 34, 50), rng.integers(0, 34, 50)
                ev["t"], ev["p"] = np.sort(rng.integers(0, 300_000, 50)), rng.integers(0, 2, 50)
                f = root / "NMNIST" / split / str(c) / f"{k:05d}.bin"
                write_nmnist_bin(f, ev)
                written[f] = ev
    return written
