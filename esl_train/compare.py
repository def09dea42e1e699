"""`python -m esl_train.compare`: dense, static, SET, RigL and ESL side by side on one network and data set.

Every method trains the same network on the same data with the same seeds, at each density (dense once).
The table (mean ± std over seeds) goes to <out>/benchmarks.md (section compare), the raw runs to
<out>/compare.json, and two plots beside them. `--quick` is a minutes-long smoke version."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .atomic import atomic_path, write_text
from .config import METHODS, TrainConfig

DENSITIES = (0.2, 0.1, 0.05)


def _one(job: dict) -> dict:
    """Train one (method, density, seed) and measure it; runs in a worker process with one torch thread."""
    import torch

    torch.set_num_threads(1)
    from esl_deploy import accounting, netx_file
    from esl_deploy.twin import build_twin

    from . import trainer

    cfg = TrainConfig.from_dict(job["config"])
    folder = Path(tempfile.mkdtemp(prefix="compare-"))
    start = time.perf_counter()
    r = trainer.Run(cfg, folder)
    r.fit(progress=False, log=False)
    m = r.finish()
    wall = time.perf_counter() - start
    nf = netx_file.read(folder / "model.net")
    x = torch.stack([r.data.test[i][0] for i in range(len(r.data.test))])
    with torch.no_grad():
        _, spikes = build_twin(nf)(x, record=True)
    synops = accounting.measure(nf, x.numpy(), [s.numpy() for s in spikes])["total"]["synops"]
    return {"method": cfg.method, "density": cfg.density, "seed": cfg.seed, "test_accuracy": m["test_accuracy"],
            "synapses": m["synapses"], "possible": m["possible"], "file_density": m["density"],
            "file_bytes": m["file_bytes"], "train_seconds": m["timing"]["train_seconds"],
            "evolver_seconds": m["timing"]["evolver_seconds"], "evolver_share": m["timing"]["evolver_share"],
            "wall_seconds": wall, "synops": synops, "history": r.history}


def jobs(args) -> list[dict]:
    base = {"epochs": args.epochs, "steps": args.steps, "hidden": args.hidden, "arch": args.arch,
            "dataset": args.dataset, "data_dir": args.data_dir}
    out = []
    for seed in range(args.seeds):
        out.append({"config": {**base, "method": "dense", "density": 1.0, "seed": seed}})
        for density in args.densities:
            for method in args.methods:
                out.append({"config": {**base, "method": method, "density": density, "seed": seed}})
    return out


def summarize(runs: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["method"], r["density"]), []).append(r)
    dense = groups.get(("dense", 1.0), [])
    dense_acc = np.mean([r["test_accuracy"] for r in dense]) if dense else float("nan")
    dense_bytes = np.mean([r["file_bytes"] for r in dense]) if dense else float("nan")
    dense_synops = np.mean([r["synops"] for r in dense]) if dense else float("nan")
    rows = []
    for (method, density), rs in sorted(groups.items(), key=lambda kv: (-kv[0][1], METHODS.index(kv[0][0]))):
        static = groups.get(("static", density))
        acc = np.array([r["test_accuracy"] for r in rs])
        rows.append({
            "method": method, "density": density, "seeds": len(rs),
            "accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()),
            "loss_vs_dense_points": float(100 * (dense_acc - acc.mean())),
            "synapses": float(np.mean([r["synapses"] for r in rs])),
            "train_seconds": float(np.mean([r["train_seconds"] for r in rs])),
            "time_vs_static": float(np.mean([r["train_seconds"] for r in rs]) /
                                    np.mean([r["train_seconds"] for r in static])) if static else None,
            "evolver_share": float(np.mean([r["evolver_share"] for r in rs])),
            "file_vs_dense": float(np.mean([r["file_bytes"] for r in rs]) / dense_bytes),
            "synops_vs_dense": float(np.mean([r["synops"] for r in rs]) / dense_synops),
        })
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| method | density | test accuracy (mean ± std) | vs dense (points) | synapses | train s | vs static "
             "| evolver share | file vs dense | SynOps vs dense |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ts = f"{r['time_vs_static']:.2f}" if r["time_vs_static"] is not None else "-"
        lines.append(f"| {r['method']} | {r['density']:g} | {100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f}"
                     f" | {-r['loss_vs_dense_points']:+.2f} | {r['synapses']:.0f} | {r['train_seconds']:.1f} | {ts} | "
                     f"{100 * r['evolver_share']:.2f} % | {r['file_vs_dense']:.3f} | {r['synops_vs_dense']:.3f} |")
    return "\n".join(lines)


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, each with the measured number next to it."""
    by = {(r["method"], r["density"]): r for r in rows}
    out = []
    for d, limit in ((0.1, 0.3), (0.05, 1.0)):
        if ("esl", d) in by:
            loss = by[("esl", d)]["loss_vs_dense_points"]
            out.append(f"ESL within {limit} points of dense at density {d}: {'met' if loss <= limit else 'missed'} "
                       f"(loss {loss:+.2f} points)")
    for d in sorted({k[1] for k in by if k[0] == "esl"}, reverse=True):
        for other in ("set", "static"):
            if (other, d) in by:
                diff = 100 * (by[("esl", d)]["accuracy_mean"] - by[(other, d)]["accuracy_mean"])
                out.append(f"ESL >= {other} at density {d}: {'met' if diff >= 0 else 'missed'} ({diff:+.2f} points)")
    shares = [r["evolver_share"] for r in rows if r["method"] == "esl"]
    if shares:
        out.append(f"evolver overhead <= 5 % of training time: {'met' if max(shares) <= 0.05 else 'missed'} "
                   f"(max {100 * max(shares):.2f} %)")
    return out


def plots(runs: list[dict], rows: list[dict], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    dense = [r for r in rows if r["method"] == "dense"]
    if dense:
        ax.axhline(100 * dense[0]["accuracy_mean"], color="k", ls="--", label="dense")
    for method in [m for m in METHODS if m != "dense"]:
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["density"])
        if rs:
            ax.errorbar([r["density"] for r in rs], [100 * r["accuracy_mean"] for r in rs],
                        yerr=[100 * r["accuracy_std"] for r in rs], marker="o", capsize=3, label=method)
    ax.set(xscale="log", xlabel="density (synapses kept)", ylabel="test accuracy (%)", title="accuracy vs density")
    ax.legend()
    with atomic_path(folder / "compare_accuracy.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)

    density = sorted({r["density"] for r in runs if r["method"] != "dense"}, key=lambda d: abs(d - 0.1))[:1]
    pick = [r for r in runs if r["seed"] == 0 and (r["method"] == "dense" or r["density"] in density)]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
    for r in pick:
        epochs = [h["epoch"] for h in r["history"]]
        axes[0].plot(epochs, [100 * h["test_accuracy"] for h in r["history"]], label=r["method"])
        for layer, dens in r["history"][0]["layer_density"].items():
            axes[1].plot(epochs, [h["layer_density"][layer] for h in r["history"]],
                         label=f"{r['method']} {layer}")
    axes[0].set(xlabel="epoch", ylabel="test accuracy (%)",
                title=f"accuracy over training (density {density[0] if density else 1:g}, seed 0)")
    axes[1].set(xlabel="epoch", ylabel="active / possible", yscale="log", title="per-layer density over training")
    axes[0].legend()
    axes[1].legend(fontsize=7, ncol=2)
    with atomic_path(folder / "compare_training.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m esl_train.compare", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs", help="folder for benchmarks.md, compare.json and the plots")
    p.add_argument("--methods", default="static,set,rigl,esl", type=lambda s: s.split(","))
    p.add_argument("--densities", default=",".join(map(str, DENSITIES)),
                   type=lambda s: [float(x) for x in s.split(",")])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--steps", type=int, default=TrainConfig.steps)
    p.add_argument("--hidden", type=int, default=TrainConfig.hidden)
    p.add_argument("--arch", default="mlp")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir")
    p.add_argument("--jobs", type=int, default=2, help="parallel training processes (one torch thread each)")
    p.add_argument("--quick", action="store_true", help="1 seed, density 0.1, 2 epochs, tiny net: a smoke test")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.densities, args.epochs, args.hidden, args.steps = 1, [0.1], 2, 16, 8
    bad = [m for m in args.methods if m not in METHODS or m == "dense"]
    if bad:
        print(f"error: unknown --methods {','.join(bad)}; choose from static, set, rigl, esl", file=sys.stderr)
        return 2
    todo = jobs(args)
    from tqdm import tqdm

    from .quiet import import_lava_dl

    import_lava_dl()  # Lava sets the 'fork' start method on import: do it once here, workers inherit it
    with mp.Pool(args.jobs) as pool:
        runs = list(tqdm(pool.imap(_one, todo), total=len(todo), desc="compare", unit="run"))
    rows = summarize(runs)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "compare.json", json.dumps({"settings": vars(args), "summary": rows, "runs": runs}, indent=1))
    plots(runs, rows, folder)
    from .markdown import write_section

    checks = targets(rows)
    body = "\n".join([
        "## Method comparison (`python -m esl_train.compare" + (" --quick" if args.quick else "") + "`)", "",
        f"{args.arch} on {args.dataset}, {args.epochs} epochs, T={args.steps}, hidden {args.hidden}, "
        f"{args.seeds} seed(s), {args.jobs} parallel jobs of one thread each. Accuracy is the last epoch's test "
        "accuracy; synapses, file size and SynOps are counted from the exported model.net.", "",
        table(rows), "", "Targets:", *[f"- {c}" for c in checks], "",
        "![accuracy vs density](compare_accuracy.png)", "![training curves](compare_training.png)"])
    write_section(folder / "benchmarks.md", "compare", body)
    print(table(rows))
    print("\n".join(checks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
