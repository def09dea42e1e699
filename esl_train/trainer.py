"""The training loop: SLAYER forward/backward, the optimizer, the mask evolver beside it, checkpoints, outputs.

A run folder holds config.json, checkpoint.pt (after every epoch, enough to resume bit-for-bit),
and at the end model.net (netx HDF5), metrics.json and training.png. Every file is written atomically."""

from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import lava.lib.dl.slayer as slayer

from . import distributed, kernels, signals, slayer_cuda
from .atomic import atomic_path, write_text
from .config import TrainConfig
from .cost import TrainingCost
from .data import SpikeData, load_dataset
from .data.framing import collate
from .device import resolve as resolve_device
from .errors import UsageError
from .export import export_netx, read_synapses
from .launch import interpreter
from .models import SpikingNet, build
from .plots import plot_training
from .runfolder import locked, remove_stale_temp_files
from .sparsity import EvolverConfig, layer_densities, make_evolver

CHECKPOINT = "checkpoint.pt"


def make_loss():
    return slayer.loss.SpikeRate(true_rate=0.2, false_rate=0.03, reduction="sum")


def predict(output: torch.Tensor) -> torch.Tensor:
    return slayer.classifier.Rate.predict(output)


@torch.no_grad()
def evaluate(net: SpikingNet, loader, loss_fn, device=None) -> tuple[float, float]:
    net.eval()
    correct = total = 0
    loss = 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = net(x)
        loss += float(loss_fn(out, y))
        correct += int((predict(out) == y).sum())
        total += len(y)
    return correct / total, loss / total


class Run:
    """One training run: built from a config (new) or from a run folder's checkpoint (resume)."""

    def __init__(self, config: TrainConfig, folder: Path, data: SpikeData | None = None):
        self.config = config
        self.folder = folder
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        random.seed(config.seed)
        self.data = data or load_dataset(config.dataset, config.steps, config.data_dir, config.seed, config.cache)
        self.loader_rng = torch.Generator().manual_seed(config.seed)
        self.rank, self.world_size = distributed.world()
        self.sampler = None  # under torchrun: each rank trains on its shard; the global batch is N x --batch-size
        if self.world_size > 1:
            batches = -(-len(self.data.train) // config.batch_size)
            if self.world_size > batches:
                raise UsageError(f"{self.world_size} processes but only {batches} batches of {config.batch_size} "
                                 "training samples; start fewer processes or pass a smaller --batch-size")
            self.sampler = torch.utils.data.DistributedSampler(self.data.train, self.world_size, self.rank,
                                                               shuffle=True, seed=config.seed)
        # workers started anew each epoch, as with none: each epoch then draws the same random numbers (shuffle and
        # worker seeds) whatever --workers is, so the same seed gives the same model
        loading = {"num_workers": config.workers, "collate_fn": collate}
        self.train_loader = torch.utils.data.DataLoader(self.data.train, batch_size=config.batch_size,
                                                        shuffle=self.sampler is None, sampler=self.sampler,
                                                        generator=self.loader_rng, **loading)
        self.test_loader = torch.utils.data.DataLoader(self.data.test, batch_size=256, **loading)
        self.val_loader = (torch.utils.data.DataLoader(self.data.val, batch_size=256, **loading)
                           if self.data.val else None)
        self.device = resolve_device(config.device)
        warning = slayer_cuda.prepare(self.device)
        if warning and self.rank == 0:
            print(warning, file=sys.stderr, flush=True)
        self.net = build(config.arch, self.data.input_shape, self.data.num_classes, hidden=config.hidden,
                         kernels=config.kernels)
        self.net.to(self.device)
        self.optimizer = kernels.adam(self.net.parameters(), config.lr, config.kernels)
        self.loss_fn = make_loss()
        self.total_steps = config.epochs * len(self.train_loader)
        self.lr_scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, self.total_steps)
                             if config.lr_schedule == "cosine" else None)
        self.evolver = None
        if config.method != "dense":
            self._check_density()
            ev = config.evolver_settings()
            ev["update_interval"] = ev.get("update_interval") or len(self.train_loader)  # 0: once per epoch
            weights = {k: (b.synapse, b.synapse.weight) for k, b in self.net.weighted_blocks().items()}
            self.evolver = make_evolver(config.method, weights, self.optimizer,
                                        EvolverConfig(density=config.density, **ev), self.total_steps,
                                        seed=config.seed, quiet_steps=len(self.train_loader))
        masks = self.evolver.masks if self.evolver else None
        self.cost = TrainingCost(self.net.weighted_blocks(), masks, self.world_size)
        self.model = self.net  # what the training forward runs: the net itself, or its DDP wrapper
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        self.epoch = 0
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self.epoch_seconds = 0.0  # wall time of the finished epochs (training and evaluation), over resumes

    def _check_density(self) -> None:
        """Refuse a density that leaves some layer less than one synapse (it would silently get one)."""
        cfg = self.config
        shapes = {k: tuple(b.synapse.weight.shape) for k, b in self.net.weighted_blocks().items()}
        dens = layer_densities(shapes, cfg.density, cfg.evolver_settings().get("allocation", "er"))
        kept = {k: dens[k] * math.prod(s) for k, s in shapes.items()}
        if min(kept.values()) < 0.5:
            need = cfg.density * max(0.5 / v for v in kept.values())
            raise UsageError(f"--density {cfg.density:g} keeps less than one synapse in {min(kept, key=kept.get)}; "
                             f"use --density {need:.2g} or more")

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if not distributed.is_main():
            return
        state = {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
            "evolver": self.evolver.state_dict() if self.evolver else None,
            "history": self.history,
            "train_seconds": self.train_seconds,
            "epoch_seconds": self.epoch_seconds,
            "cost": self.cost.state_dict(),
            "world_size": self.world_size,  # each rank trains on its share: the run is not the same with more or fewer
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                    "loader": self.loader_rng.get_state()},
        }
        with atomic_path(self.folder / CHECKPOINT) as tmp:
            torch.save(state, tmp)
        signals.check()

    def load_checkpoint(self) -> None:
        path = self.folder / CHECKPOINT
        try:
            state = torch.load(path, weights_only=False, map_location="cpu")
            self.net.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.lr_scheduler:
                self.lr_scheduler.load_state_dict(state["lr_scheduler"])
                self.lr_scheduler.T_max = self.total_steps  # a run extended with --epochs decays over its new length
            if self.evolver:
                self.evolver.load_state_dict(state["evolver"])
            self.epoch, self.history, self.train_seconds = state["epoch"], state["history"], state["train_seconds"]
            self.epoch_seconds = state.get("epoch_seconds", self.train_seconds)  # older ones: training time only
            if "cost" in state:  # checkpoints older than the count resume with it from zero
                self.cost.load_state_dict(state["cost"])
            torch.set_rng_state(state["rng"]["torch"])
            np.random.set_state(state["rng"]["numpy"])
            random.setstate(state["rng"]["python"])
            self.loader_rng.set_state(state["rng"]["loader"])
        except OSError:
            raise
        except Exception as e:  # truncated, empty, random bytes, another run's or another program's file
            raise UsageError(f"{path} is damaged or not this run's checkpoint ({type(e).__name__}); delete it to "
                             "start this run again from epoch 0, or start a new run with --out") from None
        trained = state.get("world_size", 1)
        if trained != self.world_size:
            how = (f"torchrun --nproc_per_node {trained} -m esl_train --resume {self.folder}" if trained > 1
                   else f"{interpreter()} -m esl_train --resume {self.folder} (one process, without torchrun)")
            raise UsageError(f"{self.folder} was trained by {trained} process{'es' if trained > 1 else ''} and is "
                             f"resumed by {self.world_size}: the data split and batches would change; resume it with "
                             f"{how}")
        if not 0 <= self.epoch <= self.config.epochs:
            raise UsageError(f"{path} is at epoch {self.epoch}, beyond --epochs {self.config.epochs}; resume with "
                             f"--epochs {self.epoch} or more")

    # -- training ------------------------------------------------------------------------------
    def layer_density(self) -> dict[str, float]:
        if self.evolver is None:
            return {k: 1.0 for k in self.net.weighted_blocks()}
        return {k: int(m.sum()) / m.numel() for k, m in self.evolver.masks.items()}

    @torch.no_grad()
    def file_density(self) -> float:
        """The density model.net would have now: synapses whose weight is not zero after 8-bit quantization."""
        kept = possible = 0
        for b in self.net.weighted_blocks().values():
            s = b.synapse
            w = s.weight if s.pre_hook_fx is None else s.pre_hook_fx(s.weight)
            kept, possible = kept + int(torch.count_nonzero(w)), possible + w.numel()
        return kept / possible

    def explored(self) -> dict[str, float]:
        """Share of each layer's possible synapses ever active so far (dense: all of them)."""
        return self.evolver.exploration() if self.evolver else {k: 1.0 for k in self.net.weighted_blocks()}

    def swapped(self) -> dict[str, int]:
        total = {k: 0 for k in self.net.weighted_blocks()}
        for update in self.evolver.history if self.evolver else []:
            for k, n in update["swaps"].items():
                total[k] += n
        return total

    def _check_finite(self, loss: torch.Tensor) -> None:
        """A diverged run (NaN/inf) must stop here: NaN weights make no spikes, so the loss alone can look fine.
        Loss, gradients and weights are checked as one flag: one host sync per step, not one per tensor. The flag
        reads each tensor's sum (a NaN or inf anywhere makes it non-finite; a sum is ten times cheaper than
        isfinite over the tensor); only where one is not finite are the elements themselves looked at."""
        tensors = [loss, *(p.grad for p in self.net.parameters() if p.grad is not None), *self.net.parameters()]
        if bool(torch.isfinite(torch.stack([t.detach().sum() for t in tensors])).all()):
            return
        if all(bool(torch.isfinite(t).all()) for t in tensors):  # finite values whose sum overflowed
            return
        what = (f"loss became {float(loss)}" if not torch.isfinite(loss) else "gradients became non-finite (NaN or inf)"
                if any(not torch.isfinite(p.grad).all() for p in self.net.parameters() if p.grad is not None)
                else "weights became non-finite (NaN or inf)")
        raise UsageError(f"{what} in epoch {self.epoch + 1}; the last good "
                         f"checkpoint is kept in {self.folder} - lower --lr and run again with --resume")

    def fit(self, progress: bool = True, log: bool = True) -> None:
        """Train until the configured epochs; `progress` shows a bar, `log` prints one line per epoch."""
        cfg = self.config
        bar = tqdm(total=self.total_steps, initial=self.epoch * len(self.train_loader), unit="step",
                   desc=f"{cfg.method} d={cfg.density:g}", disable=not progress, dynamic_ncols=True)
        try:
            self._epochs(bar, log)
        finally:
            bar.close()  # before any error line, so the bar is not drawn again after it

    def _epochs(self, bar, log: bool) -> None:
        cfg = self.config
        while self.epoch < cfg.epochs:
            if self.sampler is not None:
                self.sampler.set_epoch(self.epoch)  # a new shuffle every epoch, the same on every rank
            self.net.train()
            correct = seen = 0
            loss_sum = 0.0
            start = time.perf_counter()
            density = f"{self.evolver.density() if self.evolver else 1:.3f}"  # changes only at a mask update
            for x, y in self.train_loader:
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                out = self.model(x)
                loss = self.loss_fn(out, y)
                self.optimizer.zero_grad()
                loss.backward()
                if not (self.evolver and self.evolver.skips_step()):  # RigL: a mask update replaces the step
                    self.optimizer.step()
                self._check_finite(loss)
                if self.lr_scheduler:
                    self.lr_scheduler.step()
                self.cost.step(dense_gradient=bool(self.evolver and self.evolver.takes_dense_gradient))
                if self.evolver and self.evolver.step():
                    density = f"{self.evolver.density():.3f}"
                loss_sum += float(loss)
                correct += int((predict(out) == y).sum())
                seen += len(y)
                bar.update()
                signals.check()  # a stop swallowed in a finalizer ends the run here
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", density=density)
            seconds = time.perf_counter() - start
            self.train_seconds += seconds
            test_acc, test_loss = evaluate(self.net, self.test_loader, self.loss_fn, self.device)
            self.epoch += 1
            self.history.append({
                "epoch": self.epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                "test_loss": test_loss, "test_accuracy": test_acc,
                "samples_per_second": seen * self.world_size / seconds, "file_density": self.file_density(),
                "layer_density": self.layer_density(), "swapped": self.swapped(), "explored": self.explored(),
            })
            if self.val_loader:
                self.history[-1]["val_accuracy"] = evaluate(self.net, self.val_loader, self.loss_fn, self.device)[0]
            if log:
                h = self.history[-1]
                bar.write(f"epoch {self.epoch}/{cfg.epochs}  loss {loss_sum / seen:.3f}  train {correct / seen:.3f}  "
                          f"test {test_acc:.3f}  {h['samples_per_second']:,.0f} samples/s  "
                          f"file density {h['file_density']:.4f}")
            self.epoch_seconds += time.perf_counter() - start
            self.save_checkpoint()

    # -- outputs -------------------------------------------------------------------------------
    def finish(self) -> dict:
        """Export model.net, count what survived in it, write metrics.json and training.png."""
        cfg = self.config
        meta = {"arch": cfg.arch, "dataset": cfg.dataset, "steps": cfg.steps, "input_shape": list(self.net.input_shape),
                "num_classes": self.data.num_classes, "method": cfg.method, "density": cfg.density}
        export_netx(self.net, self.folder / "model.net", meta)
        signals.check()
        file_layers = read_synapses(self.folder / "model.net")
        empty = [entry["name"] for entry in file_layers if entry["synapses"] == 0]
        if empty:
            (self.folder / "model.net").unlink()
            raise UsageError(f"{', '.join(empty)} kept no synapse after Loihi's 8-bit weight quantization, so the "
                             "network cannot run on Lava; train longer or with a higher --density")
        masks = self.evolver.active() if self.evolver else {}
        layers = []
        for entry in file_layers:
            in_mask = masks.get(entry["name"], entry["possible"])
            layers.append({**entry, "mask_synapses": in_mask, "quantized_away": in_mask - entry["synapses"]})
        synapses, possible = sum(l["synapses"] for l in layers), sum(l["possible"] for l in layers)
        last = self.history[-1]
        ev = self.evolver
        steps = self.total_steps
        metrics = {
            "test_accuracy": last["test_accuracy"],
            "train_accuracy": last["train_accuracy"],
            "best_test_accuracy": max(h["test_accuracy"] for h in self.history),
            "density": synapses / possible,
            "mask_density": ev.density() if ev else 1.0,
            "synapses": synapses,
            "possible": possible,
            "layers": layers,
            "file_bytes": (self.folder / "model.net").stat().st_size,
            "method": cfg.method, "arch": cfg.arch, "dataset": cfg.dataset, "seed": cfg.seed, "epochs": cfg.epochs,
            "evolver": ev.config.__dict__ if ev else None,
            "mask_updates": len(ev.history) if ev else 0,
            "training_cost": self.cost.summary(),
            "timing": {
                "train_seconds": self.train_seconds,
                "train_step_ms": 1000 * self.train_seconds / max(steps, 1),
                "samples_per_second": len(self.data.train) * self.epoch / max(self.train_seconds, 1e-9),
                "evolver_seconds": ev.seconds if ev else 0.0,
                "evolver_update_ms": 1000 * ev.seconds / len(ev.history) if ev and ev.history else 0.0,
                "evolver_share": (ev.seconds / self.train_seconds) if ev and self.train_seconds else 0.0,
            },
        }
        write_text(self.folder / "metrics.json", json.dumps(metrics, indent=2))
        write_text(self.folder / "history.json", json.dumps(self.history, indent=1))
        plot_training(self.history, self.folder / "training.png",
                      f"{cfg.method} {cfg.arch} on {cfg.dataset}, density {metrics['density']:.3f}, "
                      f"test accuracy {metrics['test_accuracy']:.3f}")
        return metrics


def run(config: TrainConfig, folder: Path, resume: bool = False, progress: bool = True,
        on_start=None) -> dict | None:
    """Train (or resume) in `folder` and return the metrics. Everything that can be checked is checked before the
    folder is created; then the folder is locked against a second trainer for the whole run. Under torchrun only
    rank 0 writes (and returns the metrics); every rank reads the checkpoint to resume."""
    data = load_dataset(config.dataset, config.steps, config.data_dir, config.seed, config.cache)
    data.train[0], data.test[0]  # a foreign or broken file fails here, before the run folder exists
    r = Run(config, folder, data)
    main = distributed.is_main()
    with locked(folder) if main else contextlib.nullcontext():
        if on_start:
            on_start()
        if main:
            remove_stale_temp_files(folder)
        if resume:
            r.load_checkpoint()
        distributed.barrier()  # every rank has read the checkpoint before rank 0 writes the next one
        if main:
            write_text(folder / "config.json", json.dumps(config.to_dict(), indent=2))
        r.fit(progress and main, log=main)
        return r.finish() if main else None
