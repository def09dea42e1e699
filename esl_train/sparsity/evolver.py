"""The ESL mask evolver: one object beside the optimizer that owns every layer's synapse mask.

Like rigl-torch's RigLScheduler it is called once per training step, after `optimizer.step()` (which an update step
skips under `skip_step`, as RigL's does); like
`torch.nn.utils.prune` it applies the masks through hooks, so the model code never sees them:
a forward pre-hook zeroes pruned weights before each use, and a gradient hook zeroes their gradient
(keeping a copy of the dense gradient when the next update needs it for regrowth). Every
`update_interval` steps it drops the weakest active synapses of each layer and grows as many
inactive ones, so each layer's synapse count never changes. It also records which synapses were ever
active (the in-time over-parameterisation of Liu et al. 2021), the exploration the paper's title refers to.
Rules that look at activity (`drop_by="contribution"`, `regrow="unexplored-active"`) read each layer's input spikes
in the same pre-hook, in training steps only, so evaluation data never shapes a mask."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from .. import distributed
from ..config import ACTIVITY_RULES, GRADIENT_RULES
from ..kernels.counts import batch_sum
from .allocation import layer_counts
from .rules import drop_weakest, grow


@dataclass
class EvolverConfig:
    density: float
    allocation: str = "er"
    evolve: bool = True  # False: a fixed random mask (static sparse training)
    # gradient (RigL), random (SET), unexplored (random among never-active synapses), unexplored-gradient (never-active
    # synapses by gradient)
    regrow: str = "gradient"
    drop_fraction: float = 0.3
    update_interval: int = 50  # training steps between mask updates
    evolve_until: float = 0.75  # fraction of training after which masks stay fixed
    schedule: str = "cosine"
    protect_new: bool = False  # synapses grown at the last update cannot be dropped at the next one
    # scale initial weights by 1/sqrt(layer density). Off: measured to cost 1.6 points and 4x the seed spread
    # (docs/tuning.md); neither rigl-torch nor Google's RigL rescales.
    rescale_init: bool = False
    # or "contribution": |w| x the input's spike count since the last update; or "magnitude-per-sign": the same share
    # of the positive and of the negative weights, each the smallest |w| of its sign (SET's reference code)
    drop_by: str = "magnitude"
    # RigL's rule: synapses dropped at an update compete for regrowth at the same update (by the regrow rule); one
    # chosen again keeps its weight and optimizer state. Off: only synapses inactive before the update can grow.
    regrow_dropped: bool = False
    # whose optimizer moments (momentum, Adam's two moments) an update zeroes: every changed synapse (changed), the
    # newly grown ones only (new: google-research/rigl), or none (rigl-torch, which resets only SGD momentum)
    reset_state: str = "changed"
    # RigL's update step (google-research/rigl, rigl-torch): the mask update takes the place of that step's optimizer
    # step; and rigl-torch's integer arithmetic: a layer drops floor(fraction x active) synapses and the schedule ends
    # at step floor(evolve_until x steps) (otherwise: rounded, and not rounded). With both, `--method rigl` follows
    # rigl-torch bit for bit from the same state (bench/peer_rigl.py --lockstep)
    skip_step: bool = False
    drop_count: str = "round"
    # dense-to-sparse methods (sparsity.pruning): "gradual" (GMP: magnitude pruning on a cubic schedule from
    # prune_start to evolve_until) or "once" (train dense, prune once at evolve_until, fine-tune the rest)
    prune: str = "none"
    prune_start: float = 0.1
    # Deep R (sparsity.deepr): the L1 prior's strength and the noise temperature of its Langevin update
    l1: float = 0.0
    temperature: float = 0.0
    # what the density counts: every synapse of the mask, or only those on chip (8-bit weight non-zero): the
    # sub-quantum ones are then free, so the exported model.net holds the requested density (`_fit_on_chip`)
    budget: str = "mask"
    # under the on-chip budget, where a synapse grown to refill a layer starts: at zero (free until it grows past the
    # quantum), at one 8-bit step against its gradient, so it is on chip at once (a zero gradient leaves it at zero),
    # or "late": at zero while the masks evolve, at one step in the updates after evolution, which have no time left
    refill: str = "zero"
    # under the on-chip budget, after the last step: a sparse layer short of its target rounds its largest
    # sub-quantum synapses up to one step, so model.net holds the requested density (`_top_up`); a dense layer's
    # sub-quantum weights stay off chip (rounding hundreds of them up cost the MLP 6-11 points on validation)
    top_up: bool = False


class MaskEvolver:
    def __init__(self, weights: dict[str, tuple[torch.nn.Module, torch.nn.Parameter]],
                 optimizer: torch.optim.Optimizer, config: EvolverConfig, total_steps: int, seed: int = 0,
                 quiet_steps: int = 0):
        """`weights` maps a layer name to (module whose forward uses the weight, weight parameter). No update falls
        in the last max(update_interval, quiet_steps) steps: grown synapses start at zero and need time to grow,
        or they would be exported as zeros (the trainer passes one epoch)."""
        self.config = config
        self.optimizer = optimizer
        self.total_steps = total_steps
        self.quiet_steps = quiet_steps
        self.weights = {k: w for k, (_, w) in weights.items()}
        self.modules = {k: m for k, (m, _) in weights.items()}
        self.generator = torch.Generator().manual_seed(seed)  # on the CPU: the same choices on every device
        self.counts = layer_counts({k: tuple(w.shape) for k, w in self.weights.items()}, config.density,
                                   config.allocation)
        self.masks = {k: self._initial_mask(w, self.counts[k]) for k, w in self.weights.items()}
        self.explored = {k: m.clone() for k, m in self.masks.items()}  # ever active during training
        self.grown = {k: torch.zeros_like(m) for k, m in self.masks.items()}  # grown at the last update
        self.step_count = 0
        self.history: list[dict] = []  # one entry per mask update: step, drop fraction, swaps per layer
        self.seconds = 0.0  # wall time spent in mask updates
        self._dense_grads: dict[str, torch.Tensor] = {}
        self._capture = self._needs_dense_grad(1)
        self._count_input = config.drop_by == "contribution" or config.regrow in ACTIVITY_RULES
        # spikes seen per input channel (dim 1 of the weight) in training since the last update
        self.input_spikes = {k: torch.zeros(w.shape[1], device=w.device) for k, w in self.weights.items()}
        self._hooks = []
        with torch.no_grad():
            for k, w in self.weights.items():
                w.mul_(self.masks[k])
                if config.rescale_init:
                    w.mul_(1 / math.sqrt(self.counts[k] / w.numel()))
        for k, (module, w) in weights.items():
            self._hooks.append(module.register_forward_pre_hook(self._mask_weight_hook(k)))
            self._hooks.append(w.register_hook(self._mask_grad_hook(k)))

    # -- hooks ---------------------------------------------------------------------------------
    def _mask_weight_hook(self, name):
        def hook(module, args):
            self.weights[name].data.mul_(self.masks[name])
            if self._count_input and module.training:
                x = args[0].detach()  # (batch, channels, ...): the batch sum first is ~16x faster than one sum
                self.input_spikes[name] += batch_sum(x).reshape(x.shape[1], -1).sum(1).float()
        return hook

    def _mask_grad_hook(self, name):
        def hook(grad):
            if self._capture:
                self._dense_grads[name] = grad.detach().clone()
            return grad * self.masks[name]
        return hook

    # -- schedule ------------------------------------------------------------------------------
    @property
    def quiet_from(self) -> int:
        """The first step of the quiet end, the last max(update_interval, quiet_steps) steps: no update falls there."""
        return self.total_steps - max(self.config.update_interval, self.quiet_steps) + 1

    def drop_fraction(self, step: int) -> float:
        """Fraction of each layer's active synapses swapped at `step` (0 once evolution has ended)."""
        end = self.config.evolve_until * self.total_steps
        if self.config.drop_count == "floor":  # rigl-torch's integer arithmetic: T_end = int(0.75 x steps) too
            end = math.floor(end)
        end = min(end, self.quiet_from)
        if not self.config.evolve or step >= end:
            return 0.0
        if self.config.schedule == "constant":
            return self.config.drop_fraction
        return self.config.drop_fraction / 2 * (1 + math.cos(math.pi * step / end))

    @property
    def takes_dense_gradient(self) -> bool:
        """The current step's backward pass keeps every synapse's weight gradient (for gradient regrowth)."""
        return self._capture

    def is_update_step(self, step: int) -> bool:
        if step % self.config.update_interval:
            return False
        if self.drop_fraction(step) > 0:
            return True
        # under an on-chip budget, updates after evolution still replace the synapses that fell below the quantum
        # (they swap none), until the quiet end, where a synapse grown at zero would have no time to grow
        return self.config.budget == "on-chip" and self.config.evolve and step < self.quiet_from

    def skips_step(self) -> bool:
        """The coming training step updates the masks in place of its optimizer step (`skip_step`, RigL's rule)."""
        return self.config.skip_step and self.is_update_step(self.step_count + 1)

    def _needs_dense_grad(self, step: int) -> bool:
        return (self.config.regrow in GRADIENT_RULES or self._refills_at_step(step)) and self.is_update_step(step)

    def _refills_at_step(self, step: int) -> bool:
        """The on-chip budget's refills at an update at `step` start at one quantization step (`refill`)."""
        return self.config.refill == "quantum" or self.config.refill == "late" and self.drop_fraction(step) == 0

    # -- the per-step call ---------------------------------------------------------------------
    @torch.no_grad()
    def step(self) -> bool:
        """Call after optimizer.step() (skipped where `skips_step()`). Re-applies the masks; evolves them when due. True
        if it did."""
        self.step_count += 1
        for k, w in self.weights.items():
            w.mul_(self.masks[k])
        updated = self.is_update_step(self.step_count)
        if updated:
            start = time.perf_counter()
            self._update(self.drop_fraction(self.step_count))
            self.seconds += time.perf_counter() - start
        if self.config.budget == "on-chip" and self.step_count == self.total_steps:
            self._settle_on_chip()
        self._dense_grads.clear()
        self._capture = self._needs_dense_grad(self.step_count + 1)
        return updated

    def _update(self, fraction: float) -> None:
        for grad in self._dense_grads.values():  # under DDP: the captured gradient is this rank's own
            distributed.all_reduce_mean_(grad)
        for spikes in self.input_spikes.values() if self._count_input else ():
            distributed.all_reduce_mean_(spikes)
        swaps = {}
        for k, w in self.weights.items():
            mask = self.masks[k]
            active = int(mask.sum())
            n = min(int(fraction * active) if self.config.drop_count == "floor" else round(fraction * active),
                    mask.numel() - active)
            if n == 0:
                swaps[k] = 0
                continue
            protected = self.grown[k] if self.config.protect_new else None
            dropped = drop_weakest(w, mask, n, protected, self._drop_rate(k),
                                   per_sign=self.config.drop_by == "magnitude-per-sign")
            candidates = ~mask | dropped if self.config.regrow_dropped else ~mask
            grown = grow(self.config.regrow, candidates, n, self._dense_grads.get(k), self.generator,
                         ~self.explored[k], self._rate(k))
            new, removed = grown & ~mask, dropped & ~grown  # a synapse dropped and grown again stays as it was
            mask.logical_and_(~removed).logical_or_(new)
            self.explored[k].logical_or_(new)
            self.grown[k] = new
            w.masked_fill_(removed | new, 0.0)  # new synapses start at zero (RigL)
            reset = {"changed": removed | new, "new": new, "none": None}[self.config.reset_state]
            if reset is not None:
                self._reset_optimizer_state(w, reset)
            swaps[k] = int(new.sum())
        if self.config.budget == "on-chip":
            live, targets = self._on_chip()
            for k in self.weights:
                swaps[k] += self._fit_on_chip(k, live[k], targets[k])
        for spikes in self.input_spikes.values():
            spikes.zero_()
        self.history.append({"step": self.step_count, "drop_fraction": fraction, "swaps": swaps})
        distributed.check_same(self.masks, "masks")  # under DDP: every rank made the same choices
        distributed.check_same(self.weights, "weights")

    def _on_chip(self) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """Per layer, the synapses on chip (8-bit weight non-zero) and how many it should hold: its budget, plus a share
        of what the layers that hold every synapse (the ER allocation makes small ones dense) lose to quantization,
        so that the network's total on chip is the requested density."""
        live = {}
        for k, w in self.weights.items():
            quantize = getattr(self.modules[k], "pre_hook_fx", None)
            live[k] = self.masks[k] & (quantize(w) if quantize is not None else w).ne(0)
        full = self._full()
        rest = [k for k in self.weights if k not in full]
        lost = sum(self.counts[k] - int(live[k].sum()) for k in full)
        share = sum(self.counts[k] for k in rest)
        targets = {k: self.counts[k] + (round(lost * self.counts[k] / share) if k in rest else 0) for k in live}
        return live, targets

    def _full(self) -> list[str]:
        """The layers whose budget is every synapse (ER makes small ones dense): they cannot grow."""
        return [k for k in self.weights if self.counts[k] == self.masks[k].numel()]

    def _fit_on_chip(self, k: str, live: torch.Tensor, target: int) -> int:
        """Make layer k's synapses on chip `target`: grow as many more as they fall short (they start at zero, free
        until they grow past the quantum), or drop the weakest of them beyond it. Returns the number grown."""
        w, mask = self.weights[k], self.masks[k]
        gap = target - int(live.sum())
        if gap > 0:
            new = grow(self.config.regrow, ~mask, min(gap, int((~mask).sum())), self._dense_grads.get(k),
                       self.generator, ~self.explored[k], self._rate(k))
            mask.logical_or_(new)
            self.explored[k].logical_or_(new)
            self.grown[k].logical_or_(new)
            w.masked_fill_(new, 0.0)
            if self._refills_at_step(self.step_count) and k in self._dense_grads:
                w.sub_(new * self._dense_grads[k].sign() * self._quantum(k))
            if self.config.reset_state != "none":
                self._reset_optimizer_state(w, new)
            return int(new.sum())
        if gap < 0:
            extra = drop_weakest(w, live, -gap, None, self._drop_rate(k))
            mask.logical_and_(~extra)
            w.masked_fill_(extra, 0.0)
        return 0

    def _quantum(self, k: str) -> float:
        """Layer k's quantization step: one of the probes 2^-i lies in (step/2, step] and quantizes to it."""
        probes = 2.0 ** -torch.arange(40, dtype=self.weights[k].dtype, device=self.weights[k].device)
        levels = self.modules[k].pre_hook_fx(probes)
        return float(levels[levels > 0].min())

    def _settle_on_chip(self) -> None:
        """After the last training step: the sub-quantum synapses leave the masks and the weakest synapses beyond a
        layer's target with them, so the exported network holds at most the requested density."""
        if self.config.top_up:  # a full layer's quantized-away share is already in the others' targets: they round up
            live, targets = self._on_chip()
            full = self._full()
            for k in self.weights:
                if k not in full:
                    self._top_up(k, live[k], targets[k])
        live, targets = self._on_chip()
        for k, mask in self.masks.items():
            mask.copy_(live[k])
            self._fit_on_chip(k, live[k], min(targets[k], int(live[k].sum())))
            self.weights[k].mul_(mask)

    def _top_up(self, k: str, live: torch.Tensor, target: int) -> None:
        """Where layer k ends short of its target, its largest sub-quantum synapses round up to one step (their own
        sign): the smallest change to the trained network that puts the budget on chip."""
        w = self.weights[k]
        pool = self.masks[k] & ~live & w.ne(0)
        short, size = target - int(live.sum()), int(pool.sum())
        if short > 0 and size > 0:
            lifted = pool & ~drop_weakest(w, pool, max(size - short, 0))
            w.copy_(torch.where(lifted, w.sign() * self._quantum(k), w))

    def _rate(self, k: str) -> torch.Tensor:
        """Layer k's input spike counts since the last update, shaped to broadcast against its weight."""
        return self.input_spikes[k].view(1, -1, *[1] * (self.weights[k].dim() - 2))

    def _drop_rate(self, k: str) -> torch.Tensor | None:
        """What weighs |w| when layer k's weakest synapses are dropped: its input's spike counts (by contribution)."""
        return self._rate(k) if self.config.drop_by == "contribution" else None

    def _reset_optimizer_state(self, w: torch.Tensor, changed: torch.Tensor) -> None:
        """Zero momentum (and Adam's second moment) of `changed` synapses so stale state cannot move them. Adam's step
        count stays global, so a synapse whose moments restart at zero takes larger first steps (up to ~3x lr)."""
        for value in self.optimizer.state.get(w, {}).values():
            if torch.is_tensor(value) and value.shape == w.shape:
                value.masked_fill_(changed, 0.0)

    def _initial_mask(self, w: torch.Tensor, count: int) -> torch.Tensor:
        """Erdős–Rényi random graph with exactly `count` edges: each synapse equally likely."""
        mask = torch.zeros(w.numel(), dtype=torch.bool)
        mask[torch.randperm(w.numel(), generator=self.generator)[:count]] = True
        return mask.view(w.shape).to(w.device)

    # -- reporting and checkpoints -------------------------------------------------------------
    def active(self) -> dict[str, int]:
        return {k: int(m.sum()) for k, m in self.masks.items()}

    def density(self) -> float:
        return sum(self.active().values()) / sum(m.numel() for m in self.masks.values())

    def exploration(self) -> dict[str, float]:
        """Per layer, the share of all possible synapses that were ever active (1.0 = every one was tried)."""
        return {k: int(e.sum()) / e.numel() for k, e in self.explored.items()}

    def state_dict(self) -> dict:
        return {
            "config": asdict(self.config),
            "masks": {k: m.clone() for k, m in self.masks.items()},
            "explored": {k: m.clone() for k, m in self.explored.items()},
            "grown": {k: m.clone() for k, m in self.grown.items()},
            "input_spikes": {k: s.clone() for k, s in self.input_spikes.items()},
            "step_count": self.step_count,
            "history": list(self.history),
            "seconds": self.seconds,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        for key in ("masks", "explored", "grown", "input_spikes"):
            for k, m in state.get(key, {}).items():  # input_spikes: absent from checkpoints older than it
                getattr(self, key)[k].copy_(m)
        self.step_count = state["step_count"]
        self.history = list(state["history"])
        self.seconds = state["seconds"]
        self.generator.set_state(state["generator"])
        self._capture = self._needs_dense_grad(self.step_count + 1)

    def remove(self) -> None:
        """Detach the hooks (the masks stay baked into the weights)."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
