"""`python -m esl_deploy.run model.net --backend sim`: run an exported network on Lava and measure it.

The test samples go through Lava (the CPU simulator, bit-accurate to Loihi, or Loihi itself) and through
the PyTorch (SLAYER) twin built from the same file; the report gives their agreement, accuracy, spikes,
synapses, synaptic operations, energy per sample for every hw_configs target, and the synapse budgets."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from esl_train import memory
from esl_train.cli import HelpFormatter, Parser, check_output_folder, main_wrapper
from esl_train.config import DATASETS, EMBEDDED
from esl_train.errors import UsageError
from esl_train.runfolder import writing

from . import hw, netx_file
from .lava_runner import BACKENDS


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m esl_deploy.run", description=__doc__.splitlines()[0], allow_abbrev=False,
               formatter_class=HelpFormatter)
    p.add_argument("model", help="netx HDF5 file written by esl_train (model.net)")
    p.add_argument("--backend", default="sim", help=f"{' or '.join(BACKENDS)}")
    p.add_argument("--samples", type=int, help="test samples to run (default: the whole test split)")
    p.add_argument("--dataset", help=f"one of {', '.join(DATASETS)} (default: the one the model was trained on)")
    p.add_argument("--data-dir", help="folder with the real data set (see python -m esl_train --help)")
    p.add_argument("--steps", type=int, help="time steps per sample (default: as trained)")
    p.add_argument("--report", help="folder for report.json, report.md, the plots (default: <model folder>/deploy)")
    p.add_argument("--hw", default=",".join(hw.available()), help="energy targets from hw_configs/")
    p.add_argument("--dense-synapses", action="store_true",
                   help="build dense layers as Lava Dense instead of Sparse (CSR of the surviving synapses)")
    p.add_argument("--tile", default="auto",
                   help="copies of the network run side by side in Lava, one sample each (auto: up to 256 copies "
                        "and 2^18 neurons; conv layers then run unrolled into sparse matrices). Results are per "
                        "sample, as with one copy")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar on stderr")
    return p


def _check(args):
    if args.backend not in BACKENDS:
        raise UsageError(f"unknown --backend {args.backend!r}; choose one of {', '.join(BACKENDS)}")
    if args.tile != "auto":
        try:
            args.tile = int(args.tile)
        except ValueError:
            raise UsageError(f"--tile must be a whole number or auto, got {args.tile!r}") from None
    for flag, value in (("--samples", args.samples), ("--steps", args.steps),
                        ("--tile", None if args.tile == "auto" else args.tile)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if args.dataset is not None and args.dataset not in DATASETS:
        raise UsageError(f"unknown --dataset {args.dataset!r}; choose one of {', '.join(DATASETS)}")
    targets = [hw.load(k) for k in args.hw.split(",")]
    net = netx_file.read(args.model)
    dataset = args.dataset or net.meta.get("dataset")
    steps = args.steps or net.meta.get("steps")
    if dataset is None or steps is None:
        raise UsageError(f"{args.model} does not say which data it was trained on; pass --dataset and --steps")
    if dataset not in EMBEDDED:
        from esl_train.data.tonic_sets import check_folder

        check_folder(dataset, args.data_dir)
    test = memory.EMBEDDED[dataset][1] if dataset in EMBEDDED else None  # the test split of an embedded set
    n = min(args.samples or test, test) if test else args.samples or 1
    memory.check_rasters(n, steps, math.prod(net.input_shape), sum(layer.neurons for layer in net.weighted),
                         f"--steps {steps} on {n} samples", "pass fewer --samples or a smaller --steps",
                         also=memory.framed(dataset, steps))
    return net, targets, dataset, int(steps)


def _agreement(lava_layers, twin_layers, lava_pred, twin_pred) -> dict:
    import numpy as np

    same = np.ones(len(lava_pred), bool)
    per_layer = []
    for lv, tw in zip(lava_layers, twin_layers):
        eq = (lv == tw).reshape(len(lv), -1).all(axis=1)
        same &= eq
        per_layer.append({"identical_samples": float(eq.mean()), "lava_spikes": int(lv.sum()),
                          "twin_spikes": int(tw.sum())})
    return {"identical_rasters": float(same.mean()), "class_agreement": float((lava_pred == twin_pred).mean()),
            "layers": per_layer, "differing_samples": np.nonzero(~same)[0][:20].tolist()}


def evaluate(args) -> dict:
    net, targets, dataset, steps = _check(args)  # before the heavy imports: bad input answers at once
    import numpy as np
    import torch

    from esl_train.data import load_dataset
    from esl_train.quiet import import_lava_dl

    import_lava_dl()
    from . import accounting, budget, lava_runner
    from .twin import build_twin

    data = load_dataset(dataset, steps, args.data_dir)
    flat_ok = net.weighted[0].type == "dense" and math.prod(data.input_shape) == math.prod(net.input_shape)
    if tuple(data.input_shape) != tuple(net.input_shape) and not flat_ok:
        raise UsageError(f"{dataset} gives inputs of shape {tuple(data.input_shape)} but {args.model} takes "
                         f"{tuple(net.input_shape)}; pass the --dataset the network was trained on")
    n = min(args.samples or len(data.test), len(data.test))
    items = [data.test[i] for i in range(n)]
    x = torch.stack([s for s, _ in items])
    labels = np.array([int(y) for _, y in items])
    inputs = x.numpy().astype(bool)

    tile = lava_runner.auto_tile(net, n) if args.tile == "auto" else min(args.tile, n)  # never more copies than samples
    # synapse entries Lava holds per copy: a tiled conv kernel weight at each of its output positions (at most)
    synapses = sum(layer.synapses * (math.prod(layer.shape[1:]) if layer.type == "conv" and tile > 1 else 1)
                   for layer in net.weighted)
    neurons = sum(layer.neurons for layer in net.weighted)
    memory.check(tile * (16 * synapses + 64 * neurons), f"--tile {tile}", "pass a smaller --tile (or auto)")
    lava = lava_runner.run(args.model, net, inputs, args.backend, sparse=not args.dense_synapses,
                           progress=not args.no_progress, tile=tile)
    twin = build_twin(net)
    start = time.perf_counter()
    with torch.no_grad():
        _, twin_layers = twin(x, record=True)
    twin_seconds = time.perf_counter() - start
    twin_layers = [t.numpy() > 0 for t in twin_layers]
    lava_pred = lava.layers[-1].sum(-1).argmax(-1)
    twin_pred = twin_layers[-1].sum(-1).argmax(-1)

    m = accounting.measure(net, inputs, lava.layers, drain={"steps": lava.slot - steps, "counts": lava.drain_counts})
    return {
        "model": str(args.model), "backend": args.backend, "dataset": dataset, "steps": steps, "samples": n,
        "synapse_process": "Dense" if args.dense_synapses else "Sparse",
        "accuracy": {"lava": float((lava_pred == labels).mean()), "twin": float((twin_pred == labels).mean())},
        "fidelity": _agreement(lava.layers, twin_layers, lava_pred, twin_pred),
        "measurements": m,
        "neurobench": accounting.neurobench(m, Path(args.model).stat().st_size),
        "energy": [accounting.energy(m, t) for t in targets],
        "budgets": [budget.budget(net, t) for t in targets if t.kind == "neuromorphic"],
        "speed": {"lava_seconds": lava.seconds, "lava_startup_seconds": lava.first_chunk_seconds,
                  "lava_ms_per_step": lava.ms_per_step, "lava_ms_per_sample": lava.ms_per_sample,
                  "lava_speed_includes_startup": not lava.steady,
                  "lava_steps_per_slot": lava.slot, "tile": lava.tile, "twin_seconds": twin_seconds,
                  "twin_ms_per_sample": 1000 * twin_seconds / n},
    }


def _main(argv) -> int:
    args = parser().parse_args(argv)
    report = args.report if args.report is not None else Path(args.model).parent / "deploy"
    folder = check_output_folder(report, "--report")  # now, not after the whole Lava run
    with writing(folder, "--report"):
        result = evaluate(args)
        from . import report

        print(report.summary(result))
        report.write(result, folder)
    print(f"report: {folder}/report.md (also report.json, report.png, budget.png)")
    return 0


def main(argv=None) -> int:
    return main_wrapper(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
