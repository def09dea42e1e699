"""Lava simulator vs the PyTorch twin, in one run: time per time step and per sample, Sparse vs Dense synapses.

    .venv/bin/python bench/deploy_speed.py [--samples 60] [--conv-samples 8]

Trains a small mlp and conv network on the embedded set (a few epochs: speed does not depend on accuracy),
then runs the same test samples through Lava (fixed_pt simulator) and the twin. Writes its table into
docs/benchmarks.md (section deploy-speed)."""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from esl_train.markdown import write_section  # noqa: E402
from esl_train.quiet import import_lava_dl  # noqa: E402

import_lava_dl()
from esl_deploy import lava_runner, netx_file  # noqa: E402
from esl_deploy.twin import build_twin  # noqa: E402
from esl_train import trainer  # noqa: E402
from esl_train.config import TrainConfig  # noqa: E402
from esl_train.data import load_dataset  # noqa: E402


def weight_bytes(path: Path, sparse: bool) -> int:
    """Bytes of the weight matrices Lava's synapse processes hold (CSR arrays for Sparse, ndarray for Dense)."""
    net = import_lava_dl().netx.hdf5.Network(net_config=str(path), sparse_fc_layer=sparse)
    total = 0
    for layer in net.layers:
        w = (layer.synapse.weights if hasattr(layer.synapse, "weights") else layer.synapse.weight).init
        total += w.data.nbytes + w.indices.nbytes + w.indptr.nbytes if hasattr(w, "indptr") else w.nbytes
    return total


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--samples", type=int, default=60)
    p.add_argument("--conv-samples", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    rows = []
    tmp = Path(tempfile.mkdtemp())
    for arch, n in (("mlp", args.samples), ("conv", args.conv_samples)):
        cfg = TrainConfig(arch=arch, epochs=args.epochs, density=0.1)
        trainer.run(cfg, tmp / arch, progress=False)
        path = tmp / arch / "model.net"
        nf = netx_file.read(path)
        data = load_dataset("digits", cfg.steps)
        x = torch.stack([data.test[i][0] for i in range(n)])
        twin = build_twin(nf)
        start = time.perf_counter()
        with torch.no_grad():
            _, twin_layers = twin(x, record=True)
        twin_ms = 1000 * (time.perf_counter() - start) / n
        for sparse in (True, False):
            res = lava_runner.run(str(path), nf, x.numpy().astype(bool), sparse=sparse, progress=False)
            same = all((a == (b.numpy() > 0)).all() for a, b in zip(res.layers, twin_layers))
            rows.append((arch, "Sparse" if sparse else "Dense", n, res.first_chunk_seconds, res.ms_per_step,
                         res.ms_per_step * res.slot, twin_ms, res.ms_per_step * res.slot / twin_ms, same,
                         sum(l.synapses for l in nf.weighted), weight_bytes(path, sparse)))
            print(rows[-1], flush=True)
    lines = [
        f"Lava on `Loihi2SimCfg(select_tag='fixed_pt')` vs the SLAYER twin on the CPU "
        f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads), density 0.1, "
        "T=20 (Lava runs T + 2 x layers steps per sample). Command: `.venv/bin/python bench/deploy_speed.py`.",
        "",
        "| net | Lava synapses | samples | synapses | weight memory KiB | start-up s | Lava ms/step | Lava ms/sample | "
        "twin ms/sample | Lava / twin | identical rasters |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for arch, kind, n, start_s, ms_step, ms_sample, twin_ms, ratio, same, syn, wbytes in rows:
        lines.append(f"| {arch} | {kind} | {n} | {syn} | {wbytes / 1024:.0f} | {start_s:.1f} | {ms_step:.2f} | "
                     f"{ms_sample:.1f} | {twin_ms:.2f} | {ratio:.0f}x | {'yes' if same else 'NO'} |")
    lines += ["", "Weight memory: the arrays Lava's synapse processes hold (int64 values; CSR adds int32 indices). "
              "Conv layers have no sparse option in netx, so only the dense layers change."]
    write_section(ROOT / "docs" / "benchmarks.md", "deploy-speed", "## Deployment speed\n\n" + "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
