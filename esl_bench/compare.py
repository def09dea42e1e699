"""`python -m esl_bench.compare`: dense, static, SET, RigL and ESL side by side, with paired seeds and 95 % CIs.

Every method trains the same network on the same data; the same seed gives every method the same data order and
the same initial weights, so differences are paired by seed. The accuracy of a run is declared before it is
seen: the mean of the last `--last-k` epochs' accuracy of the whole split (test for the comparison; `--split val`
evaluates on the validation split carved from training, which is what settings are chosen on).

Resumable: each finished run is stored under <out>/compare_runs/<hash of its settings>.json and skipped when the
sweep is started again; a run in progress trains in <out>/compare_runs/partial/<key>/ and, stopped, goes on from
its last finished epoch (checkpoint.pt) when the sweep is started again. After every finished run the table (marked
partial until all runs are in), the plots and <out>/<name>.json are rewritten from every stored run, so a sweep can
be done in pieces and stopped at any time.
`--shard K/N` trains only the missing runs whose key falls in share K of N: N invocations sharing the folder (a
Slurm array, several machines) split a sweep between them, each run trained once."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from esl_train import workers
from esl_train.atomic import atomic_path, write_text
from esl_train.config import DATASETS, KERNELS, METHODS, TrainConfig
from esl_train.cli import HelpFormatter, Parser
from esl_train.errors import UsageError, first_line
from esl_train.runfolder import locked, remove_stale_temp_files

DENSITIES = (0.2, 0.1, 0.05, 0.02, 0.01)
# The benchmark protocol (docs/benchmarks.md): the benchmark set, a network it over-parameterises, paired seeds.
BENCH = {"dataset": "digits-bench", "arch": "mlp", "epochs": 6, "steps": 20, "hidden": 128, "batch_size": 128,
         "lr": 2e-3, "lr_schedule": "cosine"}
SYNOPS_SAMPLES = 1000  # test samples whose spikes are counted for SynOps (the twin's forward pass)
# evolver flags added after runs were stored: at their default they mean "as before", so they leave the key alone
LATER_DEFAULTS = {("protect_new", False), ("rescale_init", False), ("drop_by", "magnitude"), ("regrow_dropped", False),
                  ("reset_state", "changed"), ("prune", "none"), ("prune_start", 0.1), ("l1", 0.0),
                  ("temperature", 0.0), ("budget", "mask"), ("skip_step", False), ("drop_count", "round"),
                  ("refill", "zero"), ("top_up", False)}
RECORD = {"key", "method", "density", "seed", "test_accuracy", "history"}  # what every stored run record holds
MEASURE_VERSION = 1  # bump when what a stored run holds changes: old runs are then run again


def ci95(values) -> tuple[float, float]:
    """Mean and 95 % confidence half-width (t-distribution, sample std); half-width nan for one value."""
    from scipy import stats

    v = np.asarray(values, float)
    if len(v) < 2:
        return float(v.mean()) if len(v) else float("nan"), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def declared_accuracy(history: list[dict], split: str, last_k: int) -> float:
    return float(np.mean([h[f"{split}_accuracy"] for h in history[-last_k:]]))


def run_key(cfg: TrainConfig, last_k: int) -> str:
    """A run's identity: its settings with the evolver resolved, so a variant equal to a method's preset (or the
    same run asked for by another sweep) is trained once."""
    evolver = {k: v for k, v in cfg.evolver_settings().items() if (k, v) not in LATER_DEFAULTS}
    ident = {**cfg.to_dict(), "evolver": evolver, "out": None, "last_k": last_k, "v": MEASURE_VERSION}
    for k in ("device", "workers", "cache"):  # where and how it runs, not what it is
        ident.pop(k, None)
    if ident.get("kernels") == "slayer":  # runs stored before --kernels existed ran lava-dl's code: same keys
        ident.pop("kernels")
    return hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def _one(job: dict) -> dict:
    """Train one job and measure it in a worker process; a run that fails comes back as its error line."""
    try:
        return _train_and_measure(job)
    except Exception as e:  # noqa: BLE001 - one failed run must not end the sweep
        return {"key": job["key"], "label": job["label"], "error": f"{type(e).__name__}: {e}"}


def _train_and_measure(job: dict) -> dict:
    """Train one job and measure it, with one torch thread."""
    import torch

    torch.set_num_threads(1)
    from esl_deploy import accounting, netx_file
    from esl_deploy.twin import build_twin

    from esl_train import trainer

    cfg = TrainConfig.from_dict(job["config"])
    folder = Path(job["folder"])
    with locked(folder):  # a second sweep asking for the same run gets an error line, not a shared folder
        remove_stale_temp_files(folder)
        start = time.perf_counter()
        r = trainer.Run(cfg, folder)
        checkpoint = folder / trainer.CHECKPOINT
        if checkpoint.exists():  # stopped before: on from its last finished epoch
            try:
                r.load_checkpoint()
            except UsageError as e:
                aside = checkpoint.with_name(checkpoint.name + ".damaged")
                os.replace(checkpoint, aside)
                print(f"warning: {str(e).split(';')[0]}; set aside as {aside.name}, the run starts again",
                      file=sys.stderr, flush=True)
                r = trainer.Run(cfg, folder)  # seeded anew: the same run as if never started
        resumed_at, earlier = r.epoch, r.epoch_seconds
        r.fit(progress=False, log=False)
        m = r.finish()
        wall = earlier + time.perf_counter() - start
        nf = netx_file.read(folder / "model.net")
    n = min(SYNOPS_SAMPLES, len(r.data.test))
    x = torch.stack([r.data.test[i][0] for i in range(n)])
    with torch.no_grad():
        _, spikes = build_twin(nf)(x, record=True)
    synops = accounting.measure(nf, x.numpy(), [s.numpy() for s in spikes])["total"]["synops"]
    last = r.history[-1]
    updates = r.evolver.history if r.evolver else []
    active = sum(m["mask_synapses"] for m in m["layers"])
    return {
        "key": job["key"], "label": job["label"], "method": cfg.method, "density": cfg.density, "seed": cfg.seed,
        "dataset": cfg.dataset, "arch": cfg.arch, "epochs": cfg.epochs, "steps": cfg.steps, "hidden": cfg.hidden,
        "evolver": m["evolver"], "last_k": job["last_k"], "device": str(r.device), "kernels": cfg.kernels,
        "test_accuracy": declared_accuracy(r.history, "test", job["last_k"]),
        "val_accuracy": declared_accuracy(r.history, "val", job["last_k"]) if "val_accuracy" in last else None,
        "final_test_accuracy": last["test_accuracy"], "test_samples": len(r.data.test),
        "synapses": m["synapses"], "possible": m["possible"], "file_density": m["density"],
        "file_bytes": m["file_bytes"], "synops": synops, "synops_samples": n,
        "explored": float(np.average(list(last["explored"].values()),
                                     weights=[layer["possible"] for layer in m["layers"]])),
        "turnover_per_update": float(np.mean([sum(u["swaps"].values()) / active for u in updates])) if updates else 0.0,
        "train_seconds": m["timing"]["train_seconds"], "evolver_share": m["timing"]["evolver_share"],
        **{k: m["training_cost"][k] for k in ("train_cost_vs_dense", "train_flops", "train_synops")},
        "wall_seconds": wall, "resumed_at_epoch": resumed_at, "cpu_cores": os.cpu_count(), "jobs": job.get("jobs"),
        "history": r.history,
    }


def jobs(args) -> list[dict]:
    """Every run of the sweep: dense once per seed, then each density in the order given, all its seeds and variants
    together, so that a sweep stopped early has whole cells (the first densities) rather than a seed of each."""
    base = {"epochs": args.epochs, "steps": args.steps, "hidden": args.hidden, "arch": args.arch,
            "dataset": args.dataset, "data_dir": args.data_dir, "batch_size": args.batch_size, "lr": args.lr,
            "lr_schedule": args.lr_schedule, "device": args.device, "kernels": args.kernels}
    variants = {m: {"method": m} for m in args.methods}
    variants.update(args.variants)
    out = []
    specs = [("dense", {"method": "dense"}, 1.0, seed) for seed in args.seeds] + [
        (label, v, d, seed) for d in args.densities for seed in args.seeds for label, v in variants.items()]
    for label, v, density, seed in specs:
        cfg = TrainConfig(**base, method=v["method"], density=density, seed=seed, evolver=v.get("evolver", {}))
        out.append({"config": cfg.to_dict(), "label": label, "last_k": args.last_k, "key": run_key(cfg, args.last_k),
                    "jobs": args.jobs})
    return out


def paired_difference(acc: dict, a: tuple, b: tuple) -> tuple[float, float, int]:
    """Mean and 95 % CI half-width, in points, of accuracy(a) - accuracy(b) over the seeds both have, and that
    number of seeds. `acc` maps (label, density, seed) to an accuracy; a and b are (label, density)."""
    diffs = [100 * (acc[(*a, s)] - acc[(*b, s)]) for (lb, d, s) in acc if (lb, d) == a and (*b, s) in acc]
    return (*ci95(diffs), len(diffs))


def summarize(runs: list[dict], split: str) -> list[dict]:
    """One row per (variant, density): mean ± CI, and paired (same-seed) differences to dense and to static."""
    acc = {(r["label"], r["density"], r["seed"]): r[f"{split}_accuracy"] for r in runs}
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["label"], r["density"]), []).append(r)
    dense = groups.get(("dense", 1.0), [])
    mean_of = lambda rs, k: float(np.mean([r[k] for r in rs])) if rs else float("nan")  # noqa: E731
    paired = lambda label, density, other: paired_difference(acc, (label, density), other)  # noqa: E731

    order = {m: i for i, m in enumerate(METHODS)}
    rows = []
    for (label, density), rs in sorted(groups.items(), key=lambda kv: (-kv[0][1], order.get(kv[0][0], 99), kv[0][0])):
        mean, half = ci95([100 * r[f"{split}_accuracy"] for r in rs])
        rows.append({
            "label": label, "method": rs[0]["method"], "density": density, "seeds": len(rs),
            "accuracy": mean, "ci": half,
            "vs_dense": paired(label, density, ("dense", 1.0)),
            "vs_static": paired(label, density, ("static", density)) if label != "static" else None,
            "file_density": mean_of(rs, "file_density"),
            "train_cost": mean_of([r for r in rs if "train_cost_vs_dense" in r], "train_cost_vs_dense"),
            "explored": mean_of(rs, "explored"), "turnover": mean_of(rs, "turnover_per_update"),
            "synops_vs_dense": mean_of(rs, "synops") / mean_of(dense, "synops"),
            "file_vs_dense": mean_of(rs, "file_bytes") / mean_of(dense, "file_bytes"),
            "wall_seconds": mean_of(rs, "wall_seconds"), "evolver_share": mean_of(rs, "evolver_share"),
        })
    return rows


def plus_minus(mean, half, signed=False) -> str:
    """mean ± half-width as the tables write it ('-' for no value, the mean alone for one seed)."""
    if np.isnan(mean):
        return "-"
    m = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return m if np.isnan(half) else f"{m} ± {half:.2f}"


def machines(runs: list[dict]) -> str:
    """The machines the runs' wall times come from: CPU cores, and how many runs shared them."""
    # every run stored before records carried this was trained on a 2-core machine; how many jobs is not recorded
    kinds = sorted({(r.get("cpu_cores") or 2, r.get("jobs") or 0) for r in runs})
    said = [f"{c}-core CPU machines " + (f"running {j} job{'s' if j > 1 else ''}" if j else "(jobs not recorded)")
            for c, j in kinds]
    return ", ".join(said) or "-"


def table(rows: list[dict], split: str) -> str:
    lines = [f"| variant | density | seeds | {split} accuracy % | vs dense (paired) | vs static (paired) | "
             "file density | explored | turnover / update | SynOps vs dense | file vs dense | training cost vs dense | "
             "wall s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        vs_static = plus_minus(*r["vs_static"][:2], signed=True) if r["vs_static"] else "-"
        lines.append(f"| {r['label']} | {r['density']:g} | {r['seeds']} | {plus_minus(r['accuracy'], r['ci'])} | "
                     f"{plus_minus(*r['vs_dense'][:2], signed=True) if r['label'] != 'dense' else '-'} | {vs_static} | "
                     f"{r['file_density']:.3f} | {r['explored']:.3f} | {r['turnover']:.3f} | "
                     f"{r['synops_vs_dense']:.3f} | {r['file_vs_dense']:.3f} | "
                     f"{'-' if np.isnan(r['train_cost']) else format(r['train_cost'], '.3f')} | "
                     f"{r['wall_seconds']:.0f} |")
    return "\n".join(lines)


def targets(runs: list[dict], split: str = "test", method: str = "esl") -> list[str]:
    """The benchmark's targets, each judged on the paired difference and its 95 % CI: "met" where the whole interval
    satisfies it, "met on the mean only" where only the mean does, else "missed"."""
    acc = {(r["label"], r["density"], r["seed"]): r[f"{split}_accuracy"] for r in runs}
    densities = sorted({d for (lb, d, _) in acc if lb == method}, reverse=True)
    out = []

    def judge(t, bound):  # is the difference (mean, half-width) >= bound?
        if t[2] == 0:
            return None
        verdict = ("met" if t[0] - np.nan_to_num(t[1], nan=np.inf) >= bound else
                   "met on the mean only (the CI is too wide to confirm)" if t[0] >= bound else "missed")
        return f"{verdict} ({t[0]:+.2f} ± {t[1]:.2f} points, {t[2]} paired seeds)"

    for d, loss in ((0.1, 0.3), (0.01, 2.0)):  # the paper: -0.28 at 10 %; Shi et al.: -2.19 at 0.63 %
        t = paired_difference(acc, (method, d), ("dense", 1.0))
        if d in densities and t[2]:
            out.append(f"{method} at {d:g} loses <= {loss} points to dense: {judge(t, -loss)}")
            if d == 0.1:
                out.append(f"resolution at 0.1 (paired CI half-width <= 0.5 points): "
                           f"{'met' if t[1] <= 0.5 else 'missed'} ({t[1]:.2f})")
    for d in densities:
        if d <= 0.05:
            t = paired_difference(acc, (method, d), ("static", d))
            if t[2]:
                out.append(f"{method} beats static at {d:g} (paired CI excludes zero): "
                           f"{'met' if t[0] - np.nan_to_num(t[1], nan=np.inf) > 0 else 'missed'} "
                           f"({t[0]:+.2f} ± {t[1]:.2f} points, {t[2]} paired seeds)")
        for other in ("set", "rigl"):
            t = paired_difference(acc, (method, d), (other, d))
            if t[2]:
                out.append(f"{method} >= {other} at {d:g}: {judge(t, 0.0)}")
    return out


def _legends(axes) -> None:
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)


def plots(runs: list[dict], rows: list[dict], folder: Path, name: str, split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(18, 4), constrained_layout=True)
    labels = list(dict.fromkeys(r["label"] for r in rows if r["label"] != "dense"))
    for r in rows:
        if r["label"] == "dense":
            axes[0].axhspan(r["accuracy"] - np.nan_to_num(r["ci"]), r["accuracy"] + np.nan_to_num(r["ci"]),
                            color="k", alpha=0.15)
            axes[0].axhline(r["accuracy"], color="k", ls="--", label="dense")
    for label in labels:
        rs = sorted((r for r in rows if r["label"] == label), key=lambda r: r["density"])
        axes[0].errorbar([r["density"] for r in rs], [r["accuracy"] for r in rs],
                         yerr=[np.nan_to_num(r["ci"]) for r in rs], marker="o", capsize=3, label=label)
        axes[1].plot([r["density"] for r in rs], [r["explored"] for r in rs], marker="o", label=label)
        costed = [r for r in rs if np.isfinite(r["train_cost"])]
        if costed:
            axes[2].errorbar([r["train_cost"] for r in costed], [r["accuracy"] for r in costed],
                             yerr=[np.nan_to_num(r["ci"]) for r in costed], marker="o", capsize=3, label=label)
    axes[0].set(xscale="log", xlabel="density (synapses kept)", ylabel=f"{split} accuracy (%)",
                title="accuracy vs density (mean ± 95 % CI over seeds)")
    axes[2].set(xscale="log", xlabel="training compute / dense training's (RigL's count: forward and backward "
                "MACs)", ylabel=f"{split} accuracy (%)", title="accuracy vs training cost (runs that recorded it)")
    axes[1].set(xscale="log", yscale="log", xlabel="density", ylabel="synapses ever active / possible",
                title="exploration at the end of training")
    _legends(axes)
    with atomic_path(folder / f"{name}_accuracy.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)

    densities = sorted({r["density"] for r in runs if r["label"] != "dense"}, key=lambda d: abs(d - 0.1))[:1]
    seed = min(r["seed"] for r in runs)
    pick = [r for r in runs if r["seed"] == seed and r["label"] != "dense" and r["density"] in densities]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
    for r in sorted(pick, key=lambda r: r["label"]):
        epochs = [h["epoch"] for h in r["history"]]
        axes[0].plot(epochs, [100 * h[f"{split}_accuracy"] for h in r["history"]], label=r["label"])
        axes[1].plot(epochs, [np.mean(list(h["explored"].values())) for h in r["history"]], label=r["label"])
    d = densities[0] if densities else 1
    axes[0].set(xlabel="epoch", ylabel=f"{split} accuracy (%)", title=f"training (density {d:g}, seed {seed})")
    axes[1].set(xlabel="epoch", ylabel="synapses ever active / possible (layer mean)",
                title=f"exploration over training (density {d:g}, seed {seed})")
    _legends(axes)
    with atomic_path(folder / f"{name}_training.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def render(args, todo: list[dict], runs: list[dict], wall: float) -> str:
    """Rewrite <name>.json, the plots and the markdown section from the runs finished so far."""
    folder = Path(args.out)
    order = {j["key"]: i for i, j in enumerate(todo)}
    runs = sorted(runs, key=lambda r: order[r["key"]])  # the sweep's order, whichever run finished first
    rows = summarize(runs, args.split)
    kept = {k: v for k, v in vars(args).items() if k not in HOW}  # what the sweep is
    record = {"settings": {**kept, "command": command(args)}, "summary": rows, "runs": runs}
    write_text(folder / f"{args.name}.json", json.dumps(record, indent=1))
    plots(runs, rows, folder, args.name, args.split)
    checks = targets(runs) if args.split == "test" else []
    missing = len(todo) - len(runs)
    status = (f"**Partial: {len(runs)} of {len(todo)} runs finished**; run the same command again to continue."
              if missing else f"All {len(todo)} runs finished.")
    seeds = ",".join(map(str, args.seeds))
    body = "\n".join([
        f"## {args.title}", "", "```", command(args), "```", "",
        f"{args.arch} (hidden {args.hidden}) on {args.dataset}, {args.epochs} epochs, T={args.steps}, batch "
        f"{args.batch_size}, Adam lr {args.lr:g} ({args.lr_schedule}); seeds {seeds} (paired: a seed gives every "
        "method the same data order and "
        f"initial weights). Accuracy = mean of the last {args.last_k} epochs' {args.split} accuracy on the whole "
        f"{args.split} split ({runs[0]['test_samples'] if runs and args.split == 'test' else 'all'} samples); ± is the "
        "95 % CI (t, sample std) over seeds; *vs dense* and *vs static* are paired differences in points. "
        "*file density*: synapses in model.net (non-zero after 8-bit quantization) / possible, counted alike "
        "for every method, dense included; *explored*: synapses ever active / possible (in-time "
        "over-parameterisation); *turnover*: synapses swapped "
        f"per update / active. SynOps counted on {SYNOPS_SAMPLES} test samples, file size from model.net. "
        "*training cost*: training compute over dense training's, counted as RigL's paper does (forward and backward "
        "multiply-accumulates of the active synapses, dense weight gradients where a method takes them; esl_train/"
        "cost.py; the mean over the runs that recorded it, '-' where none did). "
        f"{status} Sweep wall time so far: {wall / 60:.0f} min ({args.jobs} jobs); *wall s* per run on "
        f"{machines(runs)}.", "",
        table(rows, args.split), "",
        *(["Targets:", *[f"- {c}" for c in checks], ""] if checks else []),
        f"![accuracy vs density]({args.name}_accuracy.png)", f"![training and exploration]({args.name}_training.png)"])
    from .markdown import write_section

    write_section(folder / args.md, args.name, body)
    return table(rows, args.split)


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m esl_bench.compare", description=__doc__.splitlines()[0], allow_abbrev=False,
               formatter_class=HelpFormatter)
    p.add_argument("--out", default="docs", help="folder for the stored runs, <name>.json, the plots and --md")
    p.add_argument("--name", default="compare", help="names the stored runs, the json, the plots and the md section")
    p.add_argument("--md", default="benchmarks.md", help="markdown file in --out that gets the table")
    p.add_argument("--title", default="Method comparison (benchmark protocol)", help="the md section's heading")
    p.add_argument("--methods", default="static,set,rigl,esl", type=comma_words,
                   help="sparse methods at their presets, comma-separated (dense is always trained once per seed)")
    p.add_argument("--variants", default="{}", type=variants,
                   help='extra variants as JSON: {"label": {"method": "esl", "evolver": {"regrow": "random"}}}')
    p.add_argument("--densities", default=",".join(map(str, DENSITIES)), type=numbers(float),
                   help="comma-separated densities for every sparse method")
    p.add_argument("--seeds", default="0,1,2", type=numbers(int),
                   help="seed list (more seeds tighten the CIs; stored runs are reused)")
    for k, what in (("epochs", "training epochs"), ("steps", "time steps per sample"),
                    ("hidden", "hidden width (the conv net: 128 -> 8 and 16 channels)"), ("batch_size", "batch size")):
        p.add_argument(f"--{k.replace('_', '-')}", type=int, default=BENCH[k], help=what)
    p.add_argument("--lr", type=float, default=BENCH["lr"], help="Adam's learning rate")
    p.add_argument("--lr-schedule", default=BENCH["lr_schedule"], choices=("constant", "cosine"),
                   help="learning rate over training")
    p.add_argument("--arch", default=BENCH["arch"], choices=("mlp", "conv"), help="the network")
    p.add_argument("--dataset", default=BENCH["dataset"], choices=DATASETS, help="the data set")
    p.add_argument("--data-dir", help="folder of a real data set (python -m esl_train --help)")
    p.add_argument("--split", default="test", choices=("test", "val"),
                   help="what the accuracy is measured on: val to choose settings, test to report")
    p.add_argument("--last-k", type=int, default=3, help="accuracy = mean of the last k epochs")
    p.add_argument("--jobs", type=int, default=2, help="parallel training processes (one torch thread each)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--kernels", default="auto", choices=KERNELS,
                   help="CPU implementation of the CUBA blocks (python -m esl_train --help); runs stored before this "
                        "option existed were trained with slayer")
    p.add_argument("--shard", default="0/1", type=shard, metavar="K/N",
                   help="train only share K of N (0 <= K < N) of the missing runs, split by run key: N invocations "
                        "sharing --out split the sweep (docs/scaling.md)")
    p.add_argument("--quick", action="store_true", help="embedded digits, 1 seed, density 0.1, 2 epochs, tiny net")
    p.add_argument("--render-only", action="store_true",
                   help="rewrite the table, <name>.json and the plots from the stored runs; train nothing")
    return p


def comma_words(value: str) -> list[str]:
    return [w for w in value.split(",") if w]


def numbers(kind):
    """A comma-separated list of `kind`, or argparse's one-line error naming the bad entry."""
    def parse(value: str) -> list:
        try:
            return [kind(x) for x in value.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {value!r}") \
                from None
    parse.__name__ = f"list of {kind.__name__}"
    return parse


def variants(value: str) -> dict:
    try:
        out = json.loads(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--variants is not JSON ({e})") from None
    if not isinstance(out, dict):
        raise argparse.ArgumentTypeError('--variants takes a JSON object: {"label": {"method": "esl", ...}}')
    return out


def shard(value: str) -> tuple[int, int]:
    """--shard K/N as (K, N)."""
    try:
        k, n = (int(v) for v in value.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes K/N, e.g. 0/4, got {value!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"--shard K/N needs 0 <= K < N, got {value!r}")
    return k, n


def in_shard(key: str, part: tuple[int, int]) -> bool:
    return int(key, 16) % part[1] == part[0]


HOW = ("out", "render_only", "shard")  # how a sweep is run, not what it is


def settings(argv: list[str]) -> argparse.Namespace:
    """The parsed options, with --quick's own defaults applied."""
    args = parser().parse_args(argv)
    if args.quick:
        args.dataset, args.seeds, args.densities, args.epochs, args.hidden, args.steps, args.last_k = (
            "digits", [0], [0.1], 2, 16, 8, 1)
    return args


def command(args: argparse.Namespace) -> str:
    """The sweep's command line, rebuilt from its settings: each setting that differs from its default, once (a
    sweep started through bench/ablation.py's defaults plus overrides reads as the one command it amounts to)."""
    words = ["python -m esl_bench.compare", *(["--quick"] if args.quick else [])]
    for key, default in vars(settings(words[1:])).items():
        value = getattr(args, key)
        if key in (*HOW, "quick") or value == default:
            continue
        option = f"--{key.replace('_', '-')}"
        if isinstance(value, list):
            words += [option, shlex.quote(",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value))]
        else:
            words += [option, shlex.quote(json.dumps(value) if isinstance(value, dict) else f"{value:g}"
                                          if isinstance(value, float) else str(value))]
    return " ".join(words)


def stored(store: Path, todo: list[dict]) -> list[dict]:
    """The sweep's runs found in the store (from any sweep, any shard), each labelled as this sweep labels it. A stored
    file that is not a whole run record (truncated, edited, another program's) is set aside as <key>.json.damaged,
    with a warning that names it, and its run counts as missing, so the sweep trains it again."""
    runs = []
    for j in todo:
        path = store / f"{j['key']}.json"
        if not path.exists():
            continue
        try:
            run = json.loads(path.read_text())
            if not isinstance(run, dict) or run.get("key") != j["key"] or not RECORD <= set(run):
                raise ValueError("not a whole run record")
        except (ValueError, UnicodeDecodeError) as e:
            aside = path.with_name(path.name + ".damaged")
            try:
                os.replace(path, aside)
            except FileNotFoundError:  # another shard set it aside first
                continue
            print(f"warning: stored run {path} is damaged ({first_line(e)[:100]}); set aside as {aside.name}, it will "
                  "be trained again", file=sys.stderr)
            continue
        runs.append({**run, "label": j["label"]})
    return runs


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = settings(argv)
        bad = [m for m in args.methods if m not in METHODS or m == "dense"]
        if bad:
            raise UsageError(f"unknown --methods {','.join(bad)}; choose from {', '.join(METHODS[1:])}")
        if args.jobs < 1 or args.last_k < 1:
            raise UsageError("--jobs and --last-k must be at least 1")
        if args.last_k > args.epochs:
            raise UsageError(f"--last-k {args.last_k} is more than --epochs {args.epochs}")
        if args.split == "val" and args.dataset != "digits-bench":
            raise UsageError("--split val needs a data set with a validation split: --dataset digits-bench")
        todo = jobs(args)
        for j in todo:
            try:
                TrainConfig.from_dict(j["config"]).validate()
            except ValueError as e:
                raise UsageError(f"{j['label']}: {e}") from None
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    folder = Path(args.out)
    store = folder / "compare_runs"  # shared by every sweep in --out: the same run is never trained twice
    store.mkdir(parents=True, exist_ok=True)
    runs = stored(store, todo)
    pending = [j for j in todo if not (store / f"{j['key']}.json").exists()]
    mine = [j for j in pending if in_shard(j["key"], args.shard)]
    share = f" ({len(mine)} in shard {args.shard[0]}/{args.shard[1]})" if args.shard[1] > 1 else ""
    print(f"{len(todo)} runs: {len(runs)} stored, {len(pending)} to do{share}", flush=True)
    pending = [] if args.render_only else mine
    partial = store / "partial"  # the runs in progress, each in its own folder
    for j in pending:
        j["folder"] = str(partial / j["key"])
    from tqdm import tqdm

    if pending:  # rendering alone needs neither Lava nor the data
        from esl_train.data import load_dataset
        from esl_train.quiet import import_lava_dl

        import_lava_dl()  # once here: the forked workers inherit it
        load_dataset(args.dataset, args.steps, args.data_dir)  # build the data cache once, before the workers
    start = time.perf_counter()
    wall0 = sum(r["wall_seconds"] for r in runs) / args.jobs
    try:
        if pending:  # --render-only leaves them pending
            with workers.results(_one, pending, args.jobs) as finished:  # SIGTERM stops like Ctrl-C
                bar = tqdm(finished, total=len(pending), desc=args.name, unit="run", disable=None)
                for run in bar:
                    if "error" in run:
                        bar.write(f"run {run['label']} ({run['key']}) failed: {run['error']}", file=sys.stderr)
                        continue
                    write_text(store / f"{run['key']}.json", json.dumps(run))
                    shutil.rmtree(partial / run["key"], ignore_errors=True)
                    runs = stored(store, todo)  # with the runs other shards have finished meanwhile
                    render(args, todo, runs, wall0 + time.perf_counter() - start)
                    if bar.disable:
                        print(f"{len(runs)}/{len(todo)} {run['label']} d={run['density']:g} seed {run['seed']}: "
                              f"{args.split} {100 * run[f'{args.split}_accuracy']:.2f} %", flush=True)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {len(runs)} of {len(todo)} runs stored; run the same command to continue",
              file=sys.stderr)
        return 130
    except workers.WorkerDied as e:
        print(f"\nerror: {e}: {len(runs)} of {len(todo)} runs stored; run the same command to continue",
              file=sys.stderr)
        return 1
    runs = stored(store, todo)
    if not runs:
        return 0
    print(render(args, todo, runs, wall0 + time.perf_counter() - start))
    print("\n".join(targets(runs) if args.split == "test" else []))
    return 0


if __name__ == "__main__":
    sys.exit(main())
