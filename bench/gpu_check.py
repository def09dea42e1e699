"""GPU check, ready to run on a machine with a GPU and no package registry (about 3 minutes; limit 8).

Here:      .venv/bin/python bench/gpu_bundle.py                 # .gpu_bundle/: lava-nc, lava-dl, nir, asteval sources
There:     PYTHONPATH=.gpu_bundle:. python3 bench/gpu_check.py --out $OUT      (device tool: carry ".gpu_bundle")

(a) one forward/backward of the same network and batch on the CPU and on the GPU: loss and gradients compared;
(b) training samples/s on the GPU against one CPU thread, same network, batch and step (the mask evolver included);
(c) a 1-GPU torchrun job with mask updates (density exact in the run's metrics);
(d) a few epochs on the embedded set, exported, and run by `esl_deploy.run` (Lava on the CPU, checked against the twin).
Each stage records its numbers or its error and the script goes on; gpu_check.json and gpu_check.md go to --out.
`--device cpu` runs the same stages on the CPU (a dry run of the script, comparing the CPU with itself)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH = 32
TOLERANCE = 1e-3  # gradients: max |difference| / max |gradient|; loss: relative difference


def stage(results: dict, name: str):
    """Run one stage, keeping its numbers or its error (first and last lines), and say how long it took."""
    def wrap(fn):
        start = time.perf_counter()
        try:
            results[name] = {"ok": True, **(fn() or {})}
        except Exception as e:  # a stage that breaks is a finding, not the end of the check
            results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}",
                             "where": traceback.format_exc().strip().splitlines()[-3:]}
        results[name]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"[{name}] {json.dumps(results[name])[:600]}", flush=True)
        return fn
    return wrap


def environment() -> dict:
    import numpy as np
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
           "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        env["card"] = torch.cuda.get_device_name(0)
        env["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    for module in ("lava.magma", "lava.lib.dl.slayer", "lava.lib.dl.netx", "h5py", "nir", "tonic", "matplotlib"):
        try:
            __import__(module)
            env[module] = "ok"
        except Exception as e:
            env[module] = f"{type(e).__name__}: {e}"
    env["pinned_here"] = "Python 3.10, torch 2.3.1, numpy 1.26.4 (requirements.lock)"
    return env


def _batch(data, n: int):
    import torch

    x = torch.stack([data.train[i][0] for i in range(n)]).float()
    y = torch.tensor([int(data.train[i][1]) for i in range(n)])
    return x, y


def _net(data, device, seed: int = 0, density: float | None = None):
    import torch

    from esl_train.models import build
    from esl_train.sparsity import EvolverConfig, MaskEvolver

    torch.manual_seed(seed)
    net = build("mlp", data.input_shape, data.num_classes).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    evolver = None
    if density:
        weights = {k: (b.synapse, b.synapse.weight) for k, b in net.weighted_blocks().items()}
        evolver = MaskEvolver(weights, opt, EvolverConfig(density=density, update_interval=10), 10_000, seed=seed)
    return net, opt, evolver


def compare_gradients(data, device) -> dict:
    import torch

    from esl_train.trainer import make_loss

    x, y = _batch(data, BATCH)
    runs = []
    for where in (torch.device("cpu"), device):
        net, _, _ = _net(data, where)
        loss = make_loss()(net(x.to(where)), y.to(where))
        loss.backward()
        runs.append((float(loss), {n: p.grad.detach().cpu() for n, p in net.named_parameters() if p.grad is not None}))
    (l_cpu, g_cpu), (l_dev, g_dev) = runs
    worst = max(float((g_cpu[n] - g_dev[n]).abs().max() / g_cpu[n].abs().max().clamp_min(1e-30)) for n in g_cpu)
    rel_loss = abs(l_cpu - l_dev) / max(abs(l_cpu), 1e-30)
    return {"loss_cpu": l_cpu, "loss_device": l_dev, "loss_relative_difference": rel_loss,
            "gradient_max_difference_over_max_gradient": worst, "tolerance": TOLERANCE,
            "within_tolerance": bool(rel_loss <= TOLERANCE and worst <= TOLERANCE)}


def samples_per_second(data, device, steps: int, batch: int = 128) -> float:
    import torch

    from esl_train.trainer import make_loss

    net, opt, evolver = _net(data, device, density=0.1)
    loss_fn = make_loss()
    x, y = _batch(data, batch)
    x, y = x.to(device), y.to(device)

    def step():
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        evolver.step()

    step()  # warm-up: kernels built or loaded, allocator primed
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def run(cmd: list[str], timeout: int) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ})
    if p.returncode != 0:
        raise RuntimeError(f"exit {p.returncode}: {' '.join(cmd[-6:])}: {(p.stderr or p.stdout).strip()[-800:]}")
    return {"stdout_tail": p.stdout.strip().splitlines()[-4:], "stderr_tail": p.stderr.strip().splitlines()[-3:]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="gpu_check_out")
    p.add_argument("--device", default="cuda")
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}

    @stage(results, "environment")
    def _():
        return environment()

    import torch

    from esl_train.data import load_dataset
    from esl_train.quiet import import_lava_dl

    import_lava_dl()
    from esl_train import slayer_cuda

    device = torch.device(args.device)
    data = load_dataset("digits", 20)

    @stage(results, "slayer_kernels")
    def _():
        warning = slayer_cuda.prepare(device)
        return {"cuda_kernels": warning is None and device.type == "cuda", "warning": warning}

    @stage(results, "a_cpu_vs_device")
    def _():
        return compare_gradients(data, device)

    @stage(results, "b_samples_per_second")
    def _():
        torch.set_num_threads(1)
        cpu = samples_per_second(data, torch.device("cpu"), steps=3)
        torch.set_num_threads(os.cpu_count() or 1)
        dev = samples_per_second(data, device, steps=30)
        return {"cpu_one_thread": cpu, "device": dev, "speedup": dev / cpu, "batch": 128, "goal": ">= 20x"}

    py = sys.executable

    @stage(results, "c_torchrun_one_gpu")
    def _():
        folder = out / "ddp"
        r = run([py, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "esl_train",
                 "--epochs", "1", "--update-interval", "5", "--device", args.device, "--no-progress",
                 "--out", str(folder)], timeout=240)
        metrics = json.loads((folder / "metrics.json").read_text())
        return {**r, "density": metrics["density"], "test_accuracy": metrics["test_accuracy"]}

    @stage(results, "d_train_export_deploy")
    def _():
        folder = out / "run"
        start = time.perf_counter()
        run([py, "-m", "esl_train", "--epochs", str(args.epochs), "--device", args.device, "--no-progress",
             "--out", str(folder)], timeout=300)
        train_s = time.perf_counter() - start
        metrics = json.loads((folder / "metrics.json").read_text())
        r = run([py, "-m", "esl_deploy.run", str(folder / "model.net"), "--samples", "64", "--no-progress",
                 "--report", str(out / "deploy")], timeout=240)
        report = json.loads((out / "deploy" / "report.json").read_text())
        return {"train_seconds_with_startup": round(train_s, 1), "epochs": args.epochs,
                "test_accuracy": metrics["test_accuracy"], "density": metrics["density"],
                "lava_identical_rasters": report["fidelity"]["identical_rasters"], **r}

    (out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
    lines = ["| stage | ok | numbers |", "|---|---|---|"]
    for name, r in results.items():
        if isinstance(r, dict):
            nums = {k: v for k, v in r.items() if k not in ("ok", "where", "stdout_tail", "stderr_tail")}
            lines.append(f"| {name} | {'yes' if r.get('ok') else '**no**'} | {json.dumps(nums, default=str)} |")
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(r.get("ok") for r in results.values() if isinstance(r, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
