"""`python -m esl_train`: train a sparse SNN with an evolving mask and export it for Lava.

Arguments are checked before anything heavy is imported (lava-dl alone takes ~14 s), so --help and
mistakes answer at once, with one line that names the problem and the fix, and exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from .config import ALLOCATIONS, ARCHS, DATASETS, METHODS, REGROW_RULES, RUN_PRESETS, SCHEDULES, TrainConfig
from .errors import UsageError
from .quiet import import_lava_dl


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + error
        raise UsageError(f"{message} (see python -m esl_train --help)")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m esl_train", description=__doc__.splitlines()[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--density", type=float, default=0.1, help="fraction of synapses kept, in (0, 1]")
    p.add_argument("--method", choices=METHODS, default="esl",
                   help="dense; static (fixed random mask); set, rigl, esl (evolving masks)")
    p.add_argument("--arch", choices=ARCHS, default="mlp")
    p.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits: embedded event set, no download; others read through tonic from --data-dir")
    p.add_argument("--data-dir", help="folder holding NMNIST/, DVSGesture/ or CIFAR10DVS/ (never downloaded)")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=20, help="time steps per sample")
    p.add_argument("--hidden", type=int, default=128, help="hidden neurons of the mlp")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="run folder (default: runs/<time>-<method>-<arch>-d<density>)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch)")
    p.add_argument("--preset", choices=sorted(RUN_PRESETS), help="a published setup (docs/presets.md); flags override")
    g = p.add_argument_group("mask evolver (default: the method's preset, see docs/design.md)")
    g.add_argument("--allocation", choices=ALLOCATIONS, help="layer densities: Erdős–Rényi, ER-kernel or uniform")
    g.add_argument("--regrow", choices=REGROW_RULES, help="gradient (RigL-like) or random (SET-like)")
    g.add_argument("--drop-fraction", type=float, help="share of active synapses swapped at an update")
    g.add_argument("--update-interval", type=int, help="training steps between updates (0: once per epoch)")
    g.add_argument("--evolve-until", type=float, help="fraction of training after which masks are frozen")
    g.add_argument("--schedule", choices=SCHEDULES, help="drop fraction over time")
    return p


def _config(args) -> TrainConfig:
    evolver = {k: getattr(args, k) for k in ("allocation", "regrow", "drop_fraction", "update_interval",
                                             "evolve_until", "schedule")}
    cfg = TrainConfig(density=args.density, method=args.method, arch=args.arch, dataset=args.dataset,
                      data_dir=args.data_dir, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      steps=args.steps, hidden=args.hidden, seed=args.seed, out=args.out, evolver=evolver)
    try:
        cfg.validate()
    except ValueError as e:
        raise UsageError(str(e)) from None
    if cfg.method in ("dense", "static") and any(v is not None for k, v in evolver.items() if k != "allocation"):
        raise UsageError(f"--method {cfg.method} does not evolve masks; drop the evolver flags or pick set/rigl/esl")
    return cfg


def _writable_folder(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} is a file; pass a folder for the run")
    if path.exists() and any(path.iterdir()):
        raise UsageError(f"--out {path} is not empty; pick a new folder, or continue that run with --resume {path}")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to {parent}; pass --out with a folder you can write to")


def _prepare(args) -> tuple[TrainConfig, Path, bool]:
    if args.resume:
        folder = Path(args.resume)
        try:
            cfg = TrainConfig.from_dict(json.loads((folder / "config.json").read_text()))
        except (OSError, ValueError):
            raise UsageError(f"{folder} holds no run to resume (config.json missing or unreadable); "
                             "start a new run with --out") from None
        if not (folder / "checkpoint.pt").exists():
            return cfg, folder, False  # killed before its first checkpoint: start that run again
        return cfg, folder, True
    cfg = _config(args)
    if cfg.dataset != "digits":
        from .data.tonic_sets import check_folder

        check_folder(cfg.dataset, cfg.data_dir)
    folder = Path(cfg.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{cfg.method}-{cfg.arch}-d{cfg.density:g}")
    _writable_folder(folder)
    return cfg, folder, False


class _Terminated(Exception):
    """SIGTERM, turned into an exception so that the run stops like on Ctrl-C."""


def _on_sigterm(signum, frame):
    raise _Terminated


def main(argv=None) -> int:
    folder = None
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        p = parser()
        preset = p.parse_known_args(argv)[0].preset
        if preset:
            p.set_defaults(**RUN_PRESETS[preset])
        args = p.parse_args(argv)
        cfg, folder, resume = _prepare(args)
        import_lava_dl()
        from . import trainer
        metrics = trainer.run(cfg, folder, resume=resume, progress=not args.no_progress)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # disk full, folder made read-only during the run, ...
        print(f"error: {e.strerror} ({e.filename or folder}); if the disk is full or read-only, free space or pass "
              f"another --out (finished epochs are kept: --resume {folder})", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, _Terminated):
        hint = f"; continue with: python -m esl_train --resume {folder}" if folder else ""
        print(f"\ninterrupted{hint}", file=sys.stderr)
        return 130
    t = metrics["timing"]
    print(f"test accuracy {metrics['test_accuracy']:.3f} | density {metrics['density']:.4f} "
          f"({metrics['synapses']}/{metrics['possible']} synapses in model.net) | "
          f"evolver {100 * t['evolver_share']:.2f} % of training time")
    print(f"run folder: {folder}  (model.net, metrics.json, training.png, checkpoint.pt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
