"""Lava simulator vs the PyTorch twin, in one run: time per time step and per sample, Sparse vs Dense synapses,
and tiled evaluation (K copies of the network side by side) against one copy on the same samples.

    .venv/bin/python bench/deploy_speed.py [--samples 60] [--conv-samples 8] [--only-tiling]
        [--tile-dataset digits-bench|digits] [--tile-arch mlp|conv] [--tiles 1,4,16,64,128,256,512]

Trains a small mlp and conv network on the embedded set (a few epochs: speed does not depend on accuracy),
then runs the same test samples through Lava (fixed_pt simulator) and the twin. Writes its tables into
docs/benchmarks.md (sections deploy-speed, and deploy-tiling, deploy-tiling-digits or deploy-tiling-conv)."""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from esl_bench.markdown import write_section  # noqa: E402
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
    p.add_argument("--tiles", default="1,4,16,64,128,256,512", type=lambda v: [int(k) for k in v.split(",")])
    p.add_argument("--tile-dataset", default="digits-bench", choices=("digits", "digits-bench"),
                   help="digits-bench: 7,200 test samples, the size of a real test split (N-MNIST has 10,000)")
    p.add_argument("--tile-samples", type=int, default=0, help="0: the whole test split")
    p.add_argument("--tile-arch", default="mlp", choices=("mlp", "conv"),
                   help="conv: tiled copies run each conv layer unrolled into a sparse matrix, one copy netx's conv")
    p.add_argument("--only-tiling", action="store_true")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    tiling(args, tmp)
    if args.only_tiling:
        return
    rows = []
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


def tiling(args, tmp: Path) -> None:
    """Samples/s of K copies side by side vs one copy, same samples, same run; rasters checked per sample."""
    from scipy.sparse import block_diag

    cfg = TrainConfig(arch=args.tile_arch, epochs=args.epochs, density=0.1, dataset=args.tile_dataset)
    trainer.run(cfg, tmp / "tile", progress=False)
    path = tmp / "tile" / "model.net"
    nf = netx_file.read(path)
    data = load_dataset(args.tile_dataset, cfg.steps)
    n = min(args.tile_samples or len(data.test), len(data.test))
    small = args.tile_dataset == "digits"  # the embedded split: start-up weighs more
    x = torch.stack([data.test[i][0] for i in range(n)])
    twin_model, twin = build_twin(nf), []
    with torch.no_grad():
        for batch in x.split(500):  # (the whole split at once would hold every layer's float rasters)
            twin.append([layer.numpy() > 0 for layer in twin_model(batch, record=True)[1]])
    twin = [np.concatenate(layer) for layer in zip(*twin)]
    machine = (f"{os.cpu_count()}-core {platform.processor() or platform.machine()} CPU, load average "
               f"{os.getloadavg()[0]:.1f} when the runs began")
    rows = []
    for k in args.tiles:
        start = time.perf_counter()
        res = lava_runner.run(str(path), nf, x.numpy().astype(bool), progress=False, tile=k)
        wall = time.perf_counter() - start
        same = float(sum(all((a[i] == b[i]).all() for a, b in zip(res.layers, twin)) for i in range(n)) / n)
        csr = [block_diag([m] * k, format="csr") for m in lava_runner.synapse_matrices(nf)]
        rows.append({"tile": k, "wall_s": wall, "startup_s": res.first_chunk_seconds, "ms_per_step": res.ms_per_step,
                     "ms_per_sample": res.ms_per_sample, "lava_steps": res.steps, "identical": same,
                     "weight_kib": sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in csr) / 1024,
                     "max_child_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024})
        print(rows[-1], flush=True)
    base = rows[0]["wall_s"] if rows[0]["tile"] == 1 else None
    command_tail = (f" --tile-arch conv --tile-samples {args.tile_samples} --tiles {','.join(map(str, args.tiles))}"
                    if args.tile_arch == "conv" else "")
    net = ("The default MLP (1152-128-10" if args.tile_arch == "mlp" else
           "The conv net (2x24x24 - 8x12x12 - 16x6x6 - 10, strided 3x3 convolutions; with one copy Lava runs netx's "
           "conv layers, tiled copies run each conv layer unrolled into its sparse synapse matrix")
    lines = [
        f"{net}, density 0.1, T={cfg.steps}), trained {args.epochs} epochs on "
        f"{args.tile_dataset}, on its test split ({n} samples). `--tile K`: K copies of the network in one Lava "
        "network (block-diagonal sparse weights), one sample per copy and slot. Wall time includes compiling and "
        f"start-up; same samples, one run ({machine}). *ms per sample*: steady "
        "state, the first chunk of 20 slots (with start-up) left out. Command: `.venv/bin/python "
        f"bench/deploy_speed.py --only-tiling{' --tile-dataset digits --tiles 1,16,64,180' * small}"
        f"{command_tail}`.", "",
        "| K | Lava steps | wall s | samples/s | speed-up vs K=1 | start-up and first chunk s | ms per Lava step | "
        "ms per sample | identical rasters (per sample, every layer and step) | block weights KiB | "
        "largest worker RSS so far MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        up = f"{base / r['wall_s']:.1f}x" if base else "-"
        lines.append(f"| {r['tile']} | {r['lava_steps']} | {r['wall_s']:.1f} | {n / r['wall_s']:.1f} | {up} | "
                     f"{r['startup_s']:.1f} | {r['ms_per_step']:.2f} | {r['ms_per_sample']:.2f} | "
                     f"{100 * r['identical']:.0f} % | "
                     f"{r['weight_kib']:.0f} | {r['max_child_rss_mib']:.0f} |")
    lines += ["", "The worker RSS column is the largest resident size of any finished Lava worker up to that row "
              "(getrusage), so it can only grow down the table; a forked worker counts the pages it shares with the "
              "main process, which holds the data set here. Energy, SynOps and budgets are reported per copy."]
    conv = args.tile_arch == "conv"
    title = ("### The conv net" if conv else "### The same on the 360 embedded test samples" if small
             else "## Tiled Lava evaluation")
    write_section(ROOT / "docs" / "benchmarks.md", "deploy-tiling" + "-digits" * small + "-conv" * conv,
                  title + "\n\n" + "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
