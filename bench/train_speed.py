"""Training speed on a CPU, in one run: lava-dl's own CUBA code (`--kernels slayer`) against ours (`--kernels auto`),
samples/s and peak RSS, MLP (hidden 128 and 512) and conv, batch 32 and 128, one and two threads.

    .venv/bin/python bench/train_speed.py [--batches 30] [--archs mlp,mlp-512,conv]
    .venv/bin/python bench/train_speed.py --accuracy   # paired test accuracy, slayer vs auto, from stored runs
    .venv/bin/python bench/train_speed.py --weight-gradient   # where the spike-driven weight gradient wins
    .venv/bin/python bench/train_speed.py --sqrt   # Adam's square root on a sparse network's zero second moments

Each configuration trains ESL at density 0.1 on digits-bench (T=20, the benchmark protocol's optimizer, masks and
hooks) in its own process, so that peak RSS is its own: one epoch of `--batches` batches to warm up, then one more,
timed (the trainer's train_seconds: training steps only, no evaluation). Writes the tables into docs/benchmarks.md
(section train-speed). `--accuracy` compares the stored runs of the longer protocol (dense and ESL at 0.1, 15 epochs,
final model) trained by lava-dl's code with the same seeds trained by ours (CHECK_COMMANDS, both into
docs/kernels-check), seed by seed (section kernels-accuracy). `--weight-gradient` times the first synapse's two
weight-gradient paths (esl_train/kernels/synapse.py) against the input's spike fraction, to place their break-even
(section weight-gradient). `--sqrt` times torch's square root and Adam step against ours (esl_train/kernels/optim.py)
on second moments with a growing fraction of exact zeros (section adam-sqrt)."""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one(net: str, batch: int, threads: int, kernels: str, batches: int) -> dict:
    """Train one configuration (in this process) and return its speed; `net`: mlp, conv, or mlp-512 (a width)."""
    import torch

    torch.set_num_threads(threads)
    from esl_train.quiet import import_lava_dl

    import_lava_dl()
    from esl_train import trainer
    from esl_train.config import TrainConfig
    from esl_train.data import load_dataset
    from esl_train.data.framing import BoolSpikes

    data = load_dataset("digits-bench", 20)
    n = batch * batches
    # copies: the full set is freed. lava-dl's code gets its batches sample-major, as its own data pipelines make
    # them (time-major ones, which our first synapse reads as they lie, would cost it a transposing conversion)
    ours = kernels == "auto"
    x = data.train.x[:n].clone() if ours else data.train.x[:n].contiguous()
    data.train = BoolSpikes(x, data.train.y[:n].clone(), time_major_layout=ours)
    data.test, data.val = BoolSpikes(data.test.x[:256].contiguous(), data.test.y[:256].clone(), ours), None
    gc.collect()
    reset_peak_rss()
    arch, _, hidden = net.partition("-")
    cfg = TrainConfig(dataset="digits-bench", arch=arch, hidden=int(hidden or 128), batch_size=batch, epochs=1, lr=2e-3,
                      lr_schedule="cosine", method="esl", density=0.1, kernels=kernels)
    with tempfile.TemporaryDirectory() as folder:
        r = trainer.Run(cfg, Path(folder), data)
        r.fit(progress=False, log=False)  # warm-up: numba's cache, allocator, first-call costs
        warm = r.train_seconds
        r.config.epochs = 2
        r.fit(progress=False, log=False)
    seconds = r.train_seconds - warm
    return {"arch": net, "batch": batch, "threads": threads, "kernels": kernels, "samples": n,
            "samples_per_s": n / seconds, "step_ms": 1000 * seconds / batches,
            "peak_rss_mb": peak_rss_mb()}


def reset_peak_rss() -> None:
    """Start the peak-RSS count afresh (Linux: writing 5 to /proc/self/clear_refs resets VmHWM), so that the peak
    is training's, not that of loading and unpacking the data set."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(args) -> list[dict]:
    results = []
    configs = [(a, b, t, k) for a in args.archs for b in (32, 128) for t in (1, 2) for k in ("slayer", "auto")]
    from tqdm import tqdm

    for arch, batch, threads, kernels in tqdm(configs, desc="train-speed", unit="config", disable=None):
        cmd = [sys.executable, __file__, "--one", json.dumps([arch, batch, threads, kernels, args.batches])]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if p.returncode != 0:
            raise SystemExit(f"{arch} batch {batch} threads {threads} {kernels} failed:\n{p.stderr[-2000:]}")
        results.append(json.loads(p.stdout.strip().splitlines()[-1]))
    return results


def render(results: list[dict], args, wall: float, started: str) -> str:
    by = {(r["arch"], r["batch"], r["threads"], r["kernels"]): r for r in results}
    lines = ["| network | batch | threads | lava-dl (`--kernels slayer`) samples/s | ours (`auto`) samples/s | "
             "speed-up | step ms (slayer / auto) | peak RSS MB (slayer / auto) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (arch, batch, threads, kernels), r in by.items():
        if kernels != "slayer":
            continue
        a = by[(arch, batch, threads, "auto")]
        lines.append(f"| {arch} | {batch} | {threads} | {r['samples_per_s']:,.0f} | {a['samples_per_s']:,.0f} | "
                     f"**{a['samples_per_s'] / r['samples_per_s']:.2f}x** | {r['step_ms']:.1f} / {a['step_ms']:.1f} | "
                     f"{r['peak_rss_mb']:,.0f} / {a['peak_rss_mb']:,.0f} |")
    cpu = f"{os.cpu_count()}-core {platform.machine()} CPU"
    return "\n".join([
        "## Training speed on a CPU: lava-dl's CUBA code against ours", "",
        "```", f"python bench/train_speed.py --batches {args.batches} --archs {','.join(args.archs)}", "```", "",
        f"Measured on a {cpu} (no GPU, {started}), {time.strftime('%Y-%m-%d')}; {wall / 60:.0f} min for "
        "the whole run. ESL at density 0.1 on digits-bench (T=20, Adam, cosine learning rate, masks and their hooks "
        f"as in training); each configuration in its own process: one epoch of {args.batches} batches to warm up, "
        "then one more, timed (training steps only). Peak RSS is the process's largest resident size from the start of "
        "training (VmHWM reset after the data set is loaded and cut to the batches used). Both columns read the same "
        "bool batches (lava-dl's code gets them as float).", "",
        *lines, "",
        "*mlp-512*: the MLP with 512 hidden neurons instead of 128."])


CHECK = ROOT / "docs" / "kernels-check"  # runs of the longer protocol trained by either kernels, for the accuracy check
CHECK_COMMANDS = {kernels: ("python -m esl_bench.compare --out docs/kernels-check --name kernels-check-" + kernels +
                            " --md kernels-check.md --title 'The longer protocol at 0.1, " + kernels + " kernels' "
                            "--methods esl --densities 0.1 --epochs 15 --last-k 1 --kernels " + kernels)
                  for kernels in ("slayer", "auto")}


def accuracy(seeds=(0, 1, 2)) -> str:
    """Paired test accuracy (ours - lava-dl's) on the longer protocol, from the runs CHECK_COMMANDS trained into
    docs/kernels-check with the current code (docs/compare_runs holds runs of the same keys trained by earlier
    versions of our kernels, and of ESL's preset under other keys)."""
    from esl_bench.compare import ci95, run_key
    from esl_train.config import TrainConfig

    base = {"dataset": "digits-bench", "arch": "mlp", "epochs": 15, "steps": 20, "hidden": 128, "batch_size": 128,
            "lr": 2e-3, "lr_schedule": "cosine"}
    lines = ["| run | seed | lava-dl (`slayer`) test % | ours (`auto`) test % | ours - lava-dl |",
             "|---|---:|---:|---:|---:|"]
    summary = []
    for method, density in (("dense", 1.0), ("esl", 0.1)):
        diffs = []
        for seed in seeds:
            acc = {}
            for k in CHECK_COMMANDS:
                cfg = TrainConfig(**base, method=method, density=density, seed=seed, kernels=k)
                f = CHECK / "compare_runs" / f"{run_key(cfg, 1)}.json"
                if not f.exists():
                    raise SystemExit(f"{method} seed {seed}: no stored {k} run in docs/kernels-check; train it with "
                                     f"{CHECK_COMMANDS[k]}")
                acc[k] = 100 * json.loads(f.read_text())["test_accuracy"]
            diffs.append(acc["auto"] - acc["slayer"])
            lines.append(f"| {method} {density:g} | {seed} | {acc['slayer']:.2f} | {acc['auto']:.2f} | "
                         f"{diffs[-1]:+.2f} |")
        mean, half = ci95(diffs)
        summary.append(f"{method} {density:g}: {mean:+.2f} ± {half:.2f} points")
    return "\n".join(["## Training with our kernels: the same accuracy", "", "```", *CHECK_COMMANDS.values(),
                      "python bench/train_speed.py --accuracy", "```", "",
                      f"Paired test accuracy on the longer protocol ({len(seeds)} seeds, the same data order and "
                      "initial weights per seed), ours minus lava-dl's, with its 95 % CI: " + "; ".join(summary) + ". "
                      "Both sides are trained by the current code into docs/kernels-check (the runs with the same "
                      "keys in docs/compare_runs, which the other tables use, were trained by an earlier version of "
                      "our kernels, whose weight gradient was SLAYER's own Conv3d: same forward, gradients within "
                      "float rounding).", "", *lines])


def weight_gradient_table(repeats: int = 30) -> str:
    """The spike-driven weight gradient against the float32 GEMM, one thread, on the MLP's first synapse shape
    (batch 128, T=20, 1,152 inputs; 128 and 512 outputs), random spikes at several fractions: median ms."""
    import torch

    from esl_train.kernels import synapse

    torch.set_num_threads(1)
    started = load()
    g = torch.Generator().manual_seed(0)
    lines = ["| input spike fraction | outputs | spike-driven ms | GEMM ms | GEMM / spike-driven |",
             "|---:|---:|---:|---:|---:|"]
    for outputs in (128, 512):
        grad = torch.randn(128 * 20, outputs, generator=g)
        for fraction in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3):
            rows = (torch.rand(128 * 20, 1152, generator=g) < fraction).to(torch.uint8)
            ms = {name: median_ms(lambda: synapse.weight_gradient(rows, grad, below), repeats)
                  for name, below in (("spike", 1.0), ("gemm", 0.0))}  # the path forced
            lines.append(f"| {fraction:g} | {outputs} | {ms['spike']:.2f} | {ms['gemm']:.2f} | "
                         f"{ms['gemm'] / ms['spike']:.2f} |")
    return section(
        "The first synapse's weight gradient: spike-driven against a GEMM", "--weight-gradient", started,
        f"one thread, median of {repeats} calls (each includes the count of spikes that picks the path). Random "
        "spikes (each input-step spikes with the given probability) and gradients; digits-bench's inputs spike at "
        "about a tenth of their steps. The trainer takes the spike-driven path below an input spike fraction of "
        f"{synapse.SPIKE_DRIVEN_BELOW:g} (esl_train/kernels/synapse.py).", lines)


def sqrt_table(repeats: int = 50) -> str:
    """torch's square root against ours (zeros skipped, esl_train/kernels/optim.py) on second moments of the MLP's
    first weight (128 and 512 x 1,152) with a given fraction of exact zeros, and a whole Adam step, torch's against
    ours, on the MLP's weights when the synapses with that fraction never had a gradient: median ms, one thread."""
    import torch

    from esl_train.kernels import optim

    torch.set_num_threads(1)
    started = load()
    g = torch.Generator().manual_seed(0)
    lines = ["| hidden | zero second moments | torch sqrt ms | ours ms | Adam step: torch ms | ours ms | "
             "step torch / ours |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for hidden in (128, 512):
        for zeros in (0.0, 0.5, 0.8, 0.9, 1.0):
            shapes = [(hidden, 1152, 1, 1, 1), (10, hidden, 1, 1, 1)]
            active = [torch.rand(s, generator=g) >= zeros for s in shapes]
            second = torch.rand(shapes[0], generator=g) * active[0]
            ms = [median_ms(lambda: second.sqrt(), repeats),
                  median_ms(lambda: optim.sqrt_skipping_zeros(second), repeats)]
            for adam in (torch.optim.Adam, optim.Adam):
                params = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
                for p, a in zip(params, active):
                    p.grad = torch.randn(p.shape, generator=g) * a
                opt = adam(params, lr=2e-3)
                ms.append(median_ms(opt.step, repeats))
            lines.append(f"| {hidden} | {zeros:g} | " + " | ".join(f"{m:.3f}" for m in ms) +
                         f" | {ms[2] / ms[3]:.2f} |")
    return section(
        "Adam's square root on a sparse network", "--sqrt", started, f"one thread, median of {repeats} calls. "
        "Second moments of the MLP's first weight (hidden x 1,152 float32) with the given fraction of exact zeros "
        "(the synapses that never had a gradient: about 0.8 under ESL at density 0.1, whose explored fraction is 0.2), "
        "the others uniform in [0, 1); the Adam step updates both of the MLP's weights with gradients zero at the "
        "same fraction of synapses. *ours*: `--kernels auto`'s Adam, torch's steps in torch's order with the square "
        "root of every zero skipped (esl_train/kernels/optim.py), bit-identical results.", lines)


def section(title: str, flag: str, started: str, text: str, lines: list[str]) -> str:
    """A measurement's section for docs/benchmarks.md: title, command, machine and date, what was measured, table."""
    cpu = f"{os.cpu_count()}-core {platform.machine()} CPU"
    return "\n".join([f"## {title}", "", "```", f"python bench/train_speed.py {flag}", "```", "",
                      f"Measured on a {cpu}, {started}, {time.strftime('%Y-%m-%d')}; {text}", "", *lines])


def median_ms(fn, repeats: int) -> float:
    """Median wall time of fn() in ms, after one call to compile and warm the caches."""
    import statistics

    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def load() -> str:
    """The machine's 1-minute load average when a measurement starts, for the table's reader."""
    try:
        return f"load average {os.getloadavg()[0]:.1f} at the start"
    except OSError:
        return "load average unknown"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=30, help="timed batches per configuration")
    p.add_argument("--archs", default="mlp,mlp-512,conv", type=lambda v: v.split(","),
                   help="networks: mlp, conv, or mlp-<hidden width>")
    p.add_argument("--accuracy", action="store_true", help="only the paired accuracy check, from stored runs")
    p.add_argument("--weight-gradient", action="store_true", help="only the first synapse's weight-gradient paths")
    p.add_argument("--sqrt", action="store_true", help="only Adam's square root on zero second moments")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: one configuration, JSON out
    args = p.parse_args()
    if args.accuracy:
        from esl_bench.markdown import write_section

        body = accuracy()
        write_section(ROOT / "docs" / "benchmarks.md", "kernels-accuracy", body)
        print(body)
        return
    if args.one:
        print(json.dumps(one(*json.loads(args.one))))
        return
    if args.weight_gradient or args.sqrt:
        from esl_bench.markdown import write_section
        from esl_train.quiet import import_lava_dl

        import_lava_dl()
        name, table = ("weight-gradient", weight_gradient_table) if args.weight_gradient else ("adam-sqrt", sqrt_table)
        body = table()
        write_section(ROOT / "docs" / "benchmarks.md", name, body)
        print(body)
        return
    from esl_train.quiet import import_lava_dl

    import_lava_dl()  # before tqdm creates its lock: Lava sets the 'fork' start method on import
    start, started = time.perf_counter(), load()
    results = measure(args)
    from esl_bench.markdown import write_section

    body = render(results, args, time.perf_counter() - start, started)
    write_section(ROOT / "docs" / "benchmarks.md", "train-speed", body)
    print(body)


if __name__ == "__main__":
    main()
