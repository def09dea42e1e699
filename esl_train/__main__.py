"""`python -m esl_train`: train a sparse SNN with an evolving mask and export it for Lava.

Arguments are checked before anything heavy is imported (lava-dl alone takes ~14 s), so --help and
mistakes answer at once, with one line that names the problem and the fix, and exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from . import launch, memory
from .cli import HelpFormatter, Parser, check_output_folder, main_wrapper
from .config import (ALLOCATIONS, ARCHS, BUDGETS, DATASETS, DROP_COUNTS, DROP_CRITERIA, EMBEDDED, EVOLVER_KEYS,
                     KERNELS, LR_SCHEDULES, METHODS, REFILLS, REGROW_RULES, RESET_STATES, RUN_PRESETS, SCHEDULES,
                     TrainConfig)
from .device import resolve as resolve_device
from .errors import UsageError
from .quiet import import_lava_dl


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m esl_train", description=__doc__.splitlines()[0], allow_abbrev=False,
               formatter_class=HelpFormatter)
    p.add_argument("--density", type=float, default=0.1, help="fraction of synapses kept, in (0, 1]")
    p.add_argument("--method", choices=METHODS, default="esl",
                   help="dense; static (fixed random mask); set, rigl, esl (evolving masks)")
    p.add_argument("--arch", choices=ARCHS, default="mlp",
                   help="mlp (dense layers) or conv (strided convolutions; netx has no pooling)")
    p.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits: embedded event set, no download; digits-bench: its 36k-recording benchmark "
                        "version (built once, ~1.5 min); others read through tonic from --data-dir")
    p.add_argument("--data-dir", help="folder holding NMNIST/, DVSGesture/ or CIFAR10DVS/ (never downloaded)")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="training epochs (--preset sets its own)")
    p.add_argument("--batch-size", type=int, default=32, help="samples per step (per process under torchrun)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                   help="cosine: decay the learning rate to 0 over training")
    p.add_argument("--steps", type=int, default=20, help="time steps per sample")
    p.add_argument("--hidden", type=int, default=128, help="hidden neurons of the mlp")
    p.add_argument("--seed", type=int, default=0,
                   help="data order, initial weights and masks: the same seed pairs runs of different methods")
    p.add_argument("--out", help="run folder (default: runs/<time>-<method>-<arch>-d<density>)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--kernels", choices=KERNELS, default="auto",
                   help="CPU implementation of the CUBA blocks: auto (fused neuron dynamics, 8-bit first "
                        "synapse; the same spikes, 1.6-3x faster) or slayer (lava-dl's own); CUDA always "
                        "runs lava-dl's kernels (docs/design.md)")
    p.add_argument("--workers", type=int, default=0,
                   help="DataLoader worker processes for reading real data sets (framed samples are cached on disk)")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                   help="keep real data sets' framed samples in tonic's disk cache; --no-cache frames them anew each "
                        "epoch (faster with --workers when files are small and quick to frame, as N-MNIST's: "
                        "docs/scaling.md)")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint; with --epochs N, "
                                                   "extend it to N epochs (schedules stretch to the new length)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar, one line per epoch (the default when stderr is not a terminal)")
    p.add_argument("--preset", choices=sorted(RUN_PRESETS), help="a published setup (docs/presets.md); flags override")
    g = p.add_argument_group("mask evolver (default: the method's preset, see docs/design.md)")
    g.add_argument("--allocation", choices=ALLOCATIONS, help="layer densities: Erdős–Rényi, ER-kernel or uniform")
    g.add_argument("--regrow", choices=REGROW_RULES,
                   help="gradient (RigL-like), random (SET-like), unexplored (random among never-active synapses), "
                        "unexplored-gradient (never-active synapses with the largest gradient first) or "
                        "unexplored-active (never-active synapses, drawn in proportion to their input's spike count)")
    g.add_argument("--drop-by", choices=DROP_CRITERIA,
                   help="what makes a synapse weak: magnitude |w|, contribution (|w| x its input's spike count) or "
                        "magnitude-per-sign (the smallest |w| of each sign, in proportion; SET's reference code); "
                        "esl's preset: contribution, the others: magnitude")
    g.add_argument("--drop-fraction", type=float, help="share of active synapses swapped at an update")
    g.add_argument("--update-interval", type=int, help="training steps between updates (0: once per epoch)")
    g.add_argument("--evolve-until", type=float, help="fraction of training after which masks are frozen")
    g.add_argument("--schedule", choices=SCHEDULES, help="drop fraction over time")
    g.add_argument("--protect-new", action=argparse.BooleanOptionalAction,
                   help="synapses grown at an update cannot be dropped at the next one")
    g.add_argument("--regrow-dropped", action=argparse.BooleanOptionalAction,
                   help="synapses dropped at an update may be grown again at once, keeping their weight (RigL)")
    g.add_argument("--reset-state", choices=RESET_STATES,
                   help="whose optimizer moments an update zeroes: every changed synapse, new ones only (RigL), none")
    g.add_argument("--skip-step", action=argparse.BooleanOptionalAction,
                   help="an update step takes no optimizer step, the mask update replaces it (RigL)")
    g.add_argument("--drop-count", choices=DROP_COUNTS,
                   help="synapses dropped per layer: fraction x active rounded, or (floor, rigl-torch) "
                        "its floor, with the schedule's end step floored too")
    g.add_argument("--prune-start", type=float, help="gmp: fraction of training where pruning starts (it ends at "
                                                     "--evolve-until)")
    g.add_argument("--l1", type=float, help="deepr: the L1 prior, a pull of lr x L1 per step towards zero")
    g.add_argument("--temperature", type=float, help="deepr: the noise temperature of its Langevin update (0: none)")
    g.add_argument("--budget", choices=BUDGETS,
                   help="what --density counts: the mask's synapses, or only those on chip (8-bit weight non-zero; "
                        "set, rigl, esl): sub-quantum synapses are then free and model.net holds the density")
    g.add_argument("--refill", choices=REFILLS,
                   help="with --budget on-chip: synapses grown to refill the budget start at zero (default), at one "
                        "8-bit step against their gradient (quantum: on chip at once), or at one step only after "
                        "evolution (late)")
    g.add_argument("--top-up", action=argparse.BooleanOptionalAction,
                   help="with --budget on-chip: after training, a layer short of its budget rounds its largest "
                        "sub-quantum synapses up to one 8-bit step, so model.net holds the requested density")
    g.add_argument("--rescale-init", action=argparse.BooleanOptionalAction,
                   help="scale initial weights by 1/sqrt(layer density) (off: measured to hurt, docs/tuning.md)")
    return p


def _config(args) -> TrainConfig:
    # every evolver setting has its flag, but the two that only presets set (static's evolve, gmp's prune)
    evolver = {k: getattr(args, k) for k in EVOLVER_KEYS if k not in ("evolve", "prune")}
    cfg = TrainConfig(density=args.density, method=args.method, arch=args.arch, dataset=args.dataset,
                      data_dir=args.data_dir, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      lr_schedule=args.lr_schedule,
                      steps=args.steps, hidden=args.hidden, seed=args.seed, out=args.out, device=args.device,
                      workers=args.workers, cache=args.cache, kernels=args.kernels, evolver=evolver)
    try:
        cfg.validate()
    except ValueError as e:
        raise UsageError(str(e)) from None
    memory.check_training(cfg.dataset, cfg.steps, cfg.batch_size, cfg.arch, cfg.hidden)
    if cfg.method in ("dense", "static") and any(v is not None for k, v in evolver.items()
                                                 if k not in ("allocation", "rescale_init")):
        raise UsageError(f"--method {cfg.method} does not evolve masks; drop the evolver flags or pick set/rigl/esl")
    cfg.evolver = cfg.evolver_settings()  # resolved into config.json: a resume keeps this rule if a preset changes
    return cfg


# what may accompany --resume
RESUME_FLAGS = {"--resume", "--epochs", "--no-progress", "--device", "--workers", "--cache", "--no-cache", "--kernels"}


def _given(p: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The option strings present on the command line (abbreviations are off, so this is exact)."""
    names = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    return {o for action in p._actions for o in action.option_strings if o in names}


def _load_run(folder: Path) -> TrainConfig:
    """The config of the run in `folder`, checked as a new run's would be."""
    if not folder.is_dir():
        raise UsageError(f"--resume {folder}: no such folder; pass a run folder of python -m esl_train")
    try:
        raw = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        raise UsageError(f"{folder} holds no run to resume (config.json missing or unreadable); "
                         "start a new run with --out") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{folder}/config.json is not a run config (a JSON object); start a new run with --out")
    try:
        cfg = TrainConfig.from_dict(raw)
        cfg.validate()
    except (TypeError, ValueError) as e:
        raise UsageError(f"{folder}/config.json has a bad value ({e}); fix it or start a new run with --out") from None
    return cfg


def _prepare(p: argparse.ArgumentParser, args, argv: list[str], agree=lambda value: value
             ) -> tuple[TrainConfig, Path, bool]:
    """The run's config and folder, checked; `agree` makes rank 0's default folder name every rank's (torchrun)."""
    if args.resume is not None:
        extra = _given(p, argv) - RESUME_FLAGS
        if extra:
            raise UsageError(f"--resume continues a run with its own settings; drop {', '.join(sorted(extra))} "
                             "(only --epochs, to extend the run, --device, --workers, --[no-]cache, --kernels and "
                             "--no-progress may be given)")
        folder = Path(args.resume)
        cfg = _load_run(folder)
        given = _given(p, argv)
        cfg.epochs = args.epochs if "--epochs" in given else cfg.epochs
        cfg.device = args.device if "--device" in given else cfg.device
        cfg.workers = args.workers if "--workers" in given else cfg.workers
        cfg.cache = args.cache if given & {"--cache", "--no-cache"} else cfg.cache
        cfg.kernels = args.kernels if "--kernels" in given else cfg.kernels
        try:
            cfg.validate()
        except ValueError as e:
            raise UsageError(str(e)) from None
        memory.check_training(cfg.dataset, cfg.steps, cfg.batch_size, cfg.arch, cfg.hidden)
        _check_device(cfg.device)
        return cfg, folder, (folder / "checkpoint.pt").exists()  # no checkpoint: killed early, start it again
    cfg = _config(args)
    if cfg.dataset not in EMBEDDED:
        from .data.tonic_sets import check_folder

        check_folder(cfg.dataset, cfg.data_dir)
    out = cfg.out if cfg.out is not None else agree(
        f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{cfg.method}-{cfg.arch}-d{cfg.density:g}")
    is_run = str(out).strip() and (Path(out) / "config.json").is_file()
    hint = f", or continue that run with --resume {out}" if is_run else ""
    folder = check_output_folder(out, "--out", must_be_empty=True, hint=hint)
    _check_device(cfg.device)  # last: it imports torch (seconds), the checks above answer at once
    return cfg, folder, False


def _check_device(name: str) -> None:
    """--device cuda on a machine without one: say so before anything is written (auto and cpu always work)."""
    if name.startswith("cuda"):
        resolve_device(name)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    state = {}

    def hint():
        folder = state.get("folder")
        return f"; continue with: {launch.command()} --resume {folder}" if folder else ""

    return main_wrapper(lambda a: _main(a, state), argv, hint)


def _main(argv: list[str], state: dict) -> int:
    p = parser()
    preset = p.parse_known_args(argv)[0].preset
    if preset:
        p.set_defaults(**RUN_PRESETS[preset])
    args = p.parse_args(argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: join the group, then every rank checks the folder
        from . import distributed

        distributed.init(use_cuda=resolve_device(args.device).type == "cuda")
        try:
            cfg, folder, resume = _prepare(p, args, argv, agree=distributed.broadcast)
            distributed.barrier()  # ... before rank 0 creates it
            return _train(args, cfg, folder, resume, state)
        finally:
            distributed.finish()
    cfg, folder, resume = _prepare(p, args, argv)
    return _train(args, cfg, folder, resume, state)


def _train(args, cfg: TrainConfig, folder: Path, resume: bool, state: dict) -> int:
    import_lava_dl()
    from . import trainer

    progress = not args.no_progress and sys.stderr.isatty()
    try:
        metrics = trainer.run(cfg, folder, resume=resume, progress=progress,
                              on_start=lambda: state.update(folder=folder))
    except OSError as e:  # disk full, folder made read-only during the run, ...
        kept = f" (finished epochs are kept: --resume {folder})" if (folder / "checkpoint.pt").is_file() else ""
        raise UsageError(f"{e.strerror} ({e.filename or folder}); if the disk is full or read-only, free space or "
                         f"pass another --out{kept}") from None
    if metrics is None:  # a rank other than 0: rank 0 reports
        return 0
    t = metrics["timing"]
    print(f"test accuracy {metrics['test_accuracy']:.3f} | density {metrics['density']:.4f} "
          f"({metrics['synapses']}/{metrics['possible']} synapses in model.net) | "
          f"evolver {100 * t['evolver_share']:.2f} % of training time")
    print(f"run folder: {folder}  (model.net, metrics.json, training.png, checkpoint.pt)")
    model = shlex.quote(str(folder / "model.net"))
    print(f"next: {launch.command('esl_deploy.run')} {model}      # run it on Lava (report in {folder}/deploy)\n"
          f"      {launch.command('esl_deploy.budget')} {model}   # its cores and chips on Loihi 1 and 2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
