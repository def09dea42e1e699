"""The reference RigL (rigl-torch's RigLScheduler) on our exact setup, beside our `--method rigl` on the same seeds.

    make peer-rigl                                   # optional extra: installs rigl-torch 0.5.2 (not a dependency)
    .venv/bin/python bench/peer_rigl.py [--seeds 0,1,2] [--density 0.1] [--jobs 2]
    .venv/bin/python bench/peer_rigl.py --lockstep 3045  # both from one state, step by step: identical?

The reference drives the same SLAYER MLP as the comparison's longer protocol (digits-bench, 15 epochs, batch 128, Adam
2e-3 with cosine decay, final model on the whole test split): the same seed gives the same data order and initial
weights (our trainer builds both, as a dense run; only rigl-torch masks it). Resumable: the reference's finished
seeds are kept in docs/peer-rigl.json and not trained again. Its layer densities are forced to our
ERK allocation (rigl-torch has only 'uniform', which keeps the first layer dense); drop 0.3 every 100 steps with
cosine decay until 75 % of training, as its paper. Our RigL's runs come from the comparison's store (train them
with bench/compare.py, command below). Writes docs/peer-rigl.json and the section peer-rigl of docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROTOCOL = {"dataset": "digits-bench", "arch": "mlp", "epochs": 15, "steps": 20, "hidden": 128, "batch_size": 128,
            "lr": 2e-3, "lr_schedule": "cosine"}


def reference_run(seed: int, density: float):
    """Our trainer's run for `seed` (data order, initial weights) and rigl-torch's scheduler masking its network."""
    from rigl_torch.RigL import RigLScheduler

    from esl_train import trainer
    from esl_train.config import TrainConfig
    from esl_train.sparsity.allocation import layer_densities

    cfg = TrainConfig(**PROTOCOL, method="dense", seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        r = trainer.Run(cfg, Path(folder))
    shapes = {k: tuple(b.synapse.weight.shape) for k, b in r.net.weighted_blocks().items()}
    erk = list(layer_densities(shapes, density, "erk").values())  # in block order, as rigl-torch finds the weights

    class ERKRigL(RigLScheduler):
        def random_sparsify(self):
            self.S = [1 - d for d in erk]  # before the masks and the gradient hooks are made from S
            super().random_sparsify()

    return r, ERKRigL(r.net, r.optimizer, dense_allocation=density, T_end=int(0.75 * r.total_steps), delta=100,
                      alpha=0.3, sparsity_distribution="uniform", ignore_linear_layers=False)


def train_reference(seed: int, density: float) -> dict:
    """One rigl-torch run on our setup: its final test accuracy."""
    import torch

    from esl_train import trainer

    torch.set_num_threads(1)
    r, sched = reference_run(seed, density)
    cfg = r.config
    start = time.perf_counter()
    for _ in range(cfg.epochs):
        r.net.train()
        for x, y in r.train_loader:
            loss = r.loss_fn(r.net(x), y)
            r.optimizer.zero_grad()
            loss.backward()
            if sched():  # False at a mask update: rigl-torch skips that step's optimizer step
                r.optimizer.step()
            r.lr_scheduler.step()
    accuracy, _ = trainer.evaluate(r.net, r.test_loader, r.loss_fn)
    val, _ = trainer.evaluate(r.net, r.val_loader, r.loss_fn)
    kept = sum(n if m is None else int(m.sum()) for m, n in zip(sched.backward_masks, sched.N))  # None: dense
    return {"seed": seed, "density": density, "test_accuracy": accuracy, "val_accuracy": val,
            "rigl_steps": sched.rigl_steps,
            "mask_density": kept / sum(sched.N), "train_seconds": time.perf_counter() - start}


def lockstep(steps: int, density: float, seed: int = 0) -> bool:
    """Our `--method rigl` and rigl-torch from one state (its masks, the same weights, batches and dropout draws),
    step by step: prints, at each mask update, how far the weights and masks have come apart, and both test accuracies
    at the end; True if they never came apart."""
    import torch

    from esl_train import trainer
    from esl_train.config import TrainConfig

    torch.set_num_threads(1)
    ref, sched = reference_run(seed, density)
    with tempfile.TemporaryDirectory() as folder:
        our = trainer.Run(TrainConfig(**PROTOCOL, method="rigl", density=density, seed=seed), Path(folder))
    ev = our.evolver
    with torch.no_grad():
        for k, m in zip(ev.masks, sched.backward_masks):
            if m is not None:  # None: a layer rigl-torch keeps dense, as our ERK does
                ev.masks[k].copy_(m)
                ev.explored[k].copy_(m)
        for a, b in zip(our.net.parameters(), ref.net.parameters()):
            a.copy_(b)
    same, step = True, 0
    while step < steps:
        for x, y in ref.train_loader:
            step += 1
            rng = torch.get_rng_state()  # dropout: the same draws for both
            loss = ref.loss_fn(ref.net(x), y)
            ref.optimizer.zero_grad()
            loss.backward()
            if sched():
                ref.optimizer.step()
            ref.lr_scheduler.step()
            torch.set_rng_state(rng)
            loss = our.loss_fn(our.net(x), y)
            our.optimizer.zero_grad()
            loss.backward()
            if not ev.skips_step():
                our.optimizer.step()
            our.lr_scheduler.step()
            if ev.step():
                dw = max(float((a - b).abs().max()) for a, b in zip(our.net.parameters(), ref.net.parameters()))
                dm = sum(int((ev.masks[k] != m).sum()) for k, m in zip(ev.masks, sched.backward_masks)
                         if m is not None)
                same = same and dw == 0 and dm == 0
                print(f"step {step}: max |w ours - w reference| {dw:.3g}, masks differ in {dm} synapses", flush=True)
            if step == steps:
                break
    ours_acc, ref_acc = (trainer.evaluate(r.net, r.test_loader, r.loss_fn)[0] for r in (our, ref))
    print(f"after {steps} steps, test accuracy: ours {100 * ours_acc:.2f} %, reference {100 * ref_acc:.2f} %")
    return same and ours_acc == ref_acc


def _one(job):
    return train_reference(*job)


def ours(seeds: list[int], density: float) -> dict[int, float]:
    """Our `--method rigl` on the same protocol and seeds, from the comparison's store."""
    from esl_bench.compare import run_key
    from esl_train.config import TrainConfig

    out = {}
    for seed in seeds:
        key = run_key(TrainConfig(**PROTOCOL, method="rigl", density=density, seed=seed), 1)
        f = ROOT / "docs" / "compare_runs" / f"{key}.json"
        if f.exists():
            out[seed] = json.loads(f.read_text())["test_accuracy"]
    return out


def render(ref: list[dict], mine: dict[int, float], args) -> str:
    from esl_bench.compare import ci95

    seeds = ",".join(map(str, args.seeds))
    lines = ["| seed | rigl-torch 0.5.2 test % | ours (`--method rigl`) test % | ours - reference |",
             "|---:|---:|---:|---:|"]
    diffs = []
    for r in sorted(ref, key=lambda r: r["seed"]):
        m = mine.get(r["seed"])
        if m is not None:
            diffs.append(100 * (m - r["test_accuracy"]))
        lines.append(f"| {r['seed']} | {100 * r['test_accuracy']:.2f} | {'-' if m is None else f'{100 * m:.2f}'} | "
                     f"{'-' if m is None else f'{diffs[-1]:+.2f}'} |")
    mean_ref = ci95([100 * r["test_accuracy"] for r in ref])
    paired = ci95(diffs) if diffs else (float("nan"), float("nan"))
    return "\n".join([
        f"## The reference RigL on our setup (density {args.density:g})", "",
        "```", f"make peer-rigl && python bench/peer_rigl.py --seeds {seeds} --density {args.density:g}",
        "python bench/peer_rigl.py --lockstep 3045   # both from one state, compared at every update",
        f"python bench/compare.py --name rigl-check --methods rigl --densities {args.density:g} --seeds {seeds} "
        "--epochs 15 --last-k 1   # ours, the same protocol and seeds", "```", "",
        "rigl-torch's RigLScheduler drives the longer protocol's network (MLP 1152-128-10, digits-bench, 15 epochs, "
        "batch 128, Adam 2e-3 cosine, final model on all 7,200 test samples) with our ERK layer densities forced in, "
        "drop 0.3 every 100 steps with cosine decay to 75 % of training; the same seed gives both the same data order "
        "and initial weights, not the same masks (rigl-torch draws them from torch's global generator, which shifts "
        "every dropout draw after it too). From one state the two train bit for bit alike (`--lockstep`: the same "
        "weights and masks at all 22 updates, the same test accuracy after 3,045 steps). "
        f"Reference: {mean_ref[0]:.2f} ± {mean_ref[1]:.2f} %; ours minus reference, paired: "
        f"**{paired[0]:+.2f} ± {paired[1]:.2f} points** ({len(diffs)} seeds; 95 % CI, t, sample std).", "",
        *lines])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2", type=lambda v: [int(s) for s in v.split(",")])
    p.add_argument("--density", type=float, default=0.1)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--lockstep", type=int, metavar="STEPS",
                   help="instead: train ours and the reference from one state for STEPS steps, compare at each update")
    args = p.parse_args()
    try:
        import rigl_torch  # noqa: F401
    except ImportError:
        raise SystemExit("error: rigl-torch is not installed; run `make peer-rigl` (an optional extra) first") from None
    from esl_train.quiet import import_lava_dl

    import_lava_dl()  # once here: the forked workers inherit it
    if args.lockstep:
        same = lockstep(args.lockstep, args.density, args.seeds[0])
        print("identical" if same else "they differ")
        raise SystemExit(0 if same else 1)
    from esl_train import workers
    from esl_train.atomic import write_text
    from esl_train.data import load_dataset
    from esl_bench.markdown import write_section

    path = ROOT / "docs" / "peer-rigl.json"
    stored = json.loads(path.read_text())["reference"] if path.exists() else []  # resumable: finished seeds are kept
    done = {r["seed"] for r in stored if r["density"] == args.density}
    pending = [s for s in args.seeds if s not in done]
    if pending:
        load_dataset(PROTOCOL["dataset"], PROTOCOL["steps"])  # build the data cache once, before the workers
        with workers.results(_one, [(s, args.density) for s in pending], args.jobs) as finished:
            stored += list(finished)
    ref = [r for r in stored if r["density"] == args.density and r["seed"] in args.seeds]
    mine = ours(args.seeds, args.density)
    write_text(path, json.dumps({"protocol": PROTOCOL, "reference": stored, "ours": mine}, indent=1))
    body = render(ref, mine, args)
    write_section(ROOT / "docs" / "benchmarks.md", "peer-rigl", body)
    print(body)


if __name__ == "__main__":
    main()
