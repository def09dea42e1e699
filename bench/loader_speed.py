"""Real-data loading at full size: today's cached loader against the loader before it, on 60,000 N-MNIST files.

    .venv/bin/python bench/loader_speed.py [--root /tmp/nmnist-bench] [--train-per-class 6000] [--workers 2]

Writes an N-MNIST-format folder (NMNIST/Train/<digit>/*.bin and a small Test split, the real 40-bit event format,
synthetic events: about 4,000 per recording over 300 ms, like N-MNIST's) once, then trains the same MLP for one
epoch per row and reports training samples/s (the epoch's samples over its wall time, model step included):
- before: tonic reads and frames every file in the main process, every epoch (the loader before the cache);
- no cache (`--no-cache`): the same framing at every read, in `--workers` DataLoader workers;
- cached, epoch 1 (cold): tonic's DiskCachedDataset frames each file once and writes the spike tensor, `--workers`;
- cached, epoch 2: the tensors are read back from the cache, `--workers`.
The table goes to docs/benchmarks.md (section loader-speed)."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EVENTS = 4000
DURATION_US = 300_000


def write_folder(root: Path, per_class: dict[str, int]) -> int:
    """N-MNIST's layout and 40-bit records; returns the number of files written (0 when the folder exists)."""
    from esl_train.data.digits_dvs import EVENT_DTYPE
    from tests.helpers import write_nmnist_bin

    done = root / "NMNIST" / ".complete"
    if done.exists():
        return 0
    rng = np.random.default_rng(0)
    n = 0
    for split, count in per_class.items():
        for digit in range(10):
            for k in range(count):
                ev = np.zeros(EVENTS, EVENT_DTYPE)
                ev["x"], ev["y"] = rng.integers(0, 34, EVENTS), rng.integers(0, 34, EVENTS)
                ev["t"], ev["p"] = np.sort(rng.integers(0, DURATION_US, EVENTS)), rng.integers(0, 2, EVENTS)
                write_nmnist_bin(root / "NMNIST" / split / str(digit) / f"{k:05d}.bin", ev)
                n += 1
    done.touch()
    return n


def epoch(dataset, workers: int, model=None) -> float:
    """One epoch over `dataset`, training `model` (or only loading, without one): samples/s."""
    import torch

    loader = torch.utils.data.DataLoader(dataset, batch_size=128, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))
    seen, start = 0, time.perf_counter()
    for x, y in loader:
        if model is not None:
            net, opt, loss_fn = model
            loss = loss_fn(net(x.float()), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        seen += len(y)
    return seen / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="/tmp/nmnist-bench")
    p.add_argument("--train-per-class", type=int, default=6000)
    p.add_argument("--steps", type=int, default=10, help="time steps per sample")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    import torch

    from esl_train.data import tonic_sets
    from esl_bench.markdown import write_section
    from esl_train.models import build
    from esl_train.quiet import import_lava_dl
    from esl_train.trainer import make_loss

    import_lava_dl()
    root = Path(args.root)
    start = time.perf_counter()
    written = write_folder(root, {"Train": args.train_per_class, "Test": 10})
    print(f"{written} files written in {time.perf_counter() - start:.0f} s" if written else f"reusing {root}")
    torch.set_num_threads(1)  # the model on one thread, the rest of the machine for the loader workers

    def model():
        torch.manual_seed(0)
        net = build("mlp", (2, 34, 34), 10, hidden=128)
        return net, torch.optim.Adam(net.parameters(), lr=2e-3), make_loss()

    cache = tonic_sets.cache_folder("nmnist", str(root), args.steps, 0)
    shutil.rmtree(cache, ignore_errors=True)  # epoch 1 must be cold
    cached, _, _, _ = tonic_sets.load("nmnist", str(root), args.steps)
    plain, _, _, _ = tonic_sets.load("nmnist", str(root), args.steps, cache=False)  # --no-cache; before: 0 workers
    runs = [  # (loader, workers, dataset); the cached rows run in this order: cold first
        ("before: read and frame every epoch, main process", 0, plain),
        ("no cache (`--no-cache`), frame in DataLoader workers", args.workers, plain),
        ("tonic disk cache, epoch 1 (cold: frames and writes the cache)", args.workers, cached),
        ("tonic disk cache, epoch 2 (read back)", args.workers, cached),
    ]
    rows = []
    for label, workers, dataset in runs:
        train = epoch(dataset, workers, model())
        load = epoch(dataset, workers) if "cold" not in label else float("nan")  # a second pass would be warm
        rows.append((label, workers, train, load))
        print(rows[-1], flush=True)
    size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    lines = [
        f"## Real-data loading at full size (N-MNIST format, {len(plain):,} training files)", "",
        "```", ".venv/bin/python bench/loader_speed.py " + " ".join(sys.argv[1:]), "```", "",
        f"{len(plain):,} training files in N-MNIST's 40-bit format ({EVENTS:,} synthetic events each over "
        f"{DURATION_US // 1000} ms, like N-MNIST's recordings), framed to T={args.steps}; MLP 2312-128-10, batch 128, "
        "Adam, the model on one torch thread; the same machine and run for every row. Training samples/s = the "
        "epoch's samples over its wall time, model step included; each row is one whole epoch.", "",
        "| loader | DataLoader workers | training samples/s | vs before | loading only, samples/s |",
        "|---|---:|---:|---:|---:|",
        *[f"| {label} | {w} | {t:,.0f} | {t / rows[0][2]:.2f}x | {'-' if ld != ld else f'{ld:,.0f}'} |"
          for label, w, t, ld in rows], "",
        "*Loading only*: the same epoch without the model step, i.e. the most a faster model (a GPU) could get from "
        "that loader.",
        f"The cache holds {size / 2**20:,.0f} MiB of framed tensors ({cache}); it is keyed by the data set, its folder "
        "and every framing parameter, so a new framing builds its own."]
    print("\n".join(lines))
    write_section(ROOT / "docs" / "benchmarks.md", "loader-speed", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
