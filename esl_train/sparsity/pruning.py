"""Dense to sparse, the baselines ESL argues against: gradual magnitude pruning and pruning once after training.

GMP (Zhu & Gupta 2017; "The State of Sparsity", Gale et al. 2019) starts dense and, every `update_interval` steps
between `prune_start` and `evolve_until` of training, prunes each layer's smallest |w| down to the cubic schedule
    kept_t = final + (possible - final) (1 - p)^3,  p = (t - start) / (end - start),
reaching the layer's final count (the same allocation as the sparse methods) at `evolve_until`; the rest of training
fine-tunes the fixed mask. `prune="once"` keeps every synapse until `evolve_until`, then prunes each layer to its
final count in one step: train dense, prune by magnitude, fine-tune. Nothing is regrown. Masks, hooks, optimizer
state and checkpoints are the evolver's, so a pruned weight is exactly zero and gets no gradient from then on."""

from __future__ import annotations

import math

import torch

from .. import distributed
from .evolver import MaskEvolver
from .rules import drop_weakest


class MaskPruner(MaskEvolver):
    def _initial_mask(self, w: torch.Tensor, count: int) -> torch.Tensor:
        return torch.ones_like(w, dtype=torch.bool)  # dense start

    def kept(self, name: str, step: int) -> int:
        """Synapses layer `name` keeps after an update at `step`."""
        possible, final = self.masks[name].numel(), self.counts[name]
        start, end = self.config.prune_start * self.total_steps, self.config.evolve_until * self.total_steps
        if self.config.prune == "once":
            return final if step >= end else possible
        p = min(max((step - start) / max(end - start, 1), 0.0), 1.0)
        return final + math.floor((possible - final) * (1 - p) ** 3)

    def drop_fraction(self, step: int) -> float:
        """The share of the active synapses pruned at `step` (over all layers); 0 when nothing is due."""
        active = sum(self.active().values())
        return (active - sum(self.kept(k, step) for k in self.masks)) / max(active, 1)

    def is_update_step(self, step: int) -> bool:
        if self.config.prune == "once":
            due = step >= self.config.evolve_until * self.total_steps
        else:  # on the interval from prune_start, and at the end of the schedule whatever the interval
            due = (step % self.config.update_interval == 0 and step >= self.config.prune_start * self.total_steps
                   or step >= self.config.evolve_until * self.total_steps)
        return due and self.drop_fraction(step) > 0

    def _needs_dense_grad(self, step: int) -> bool:
        return False  # pruning reads magnitudes only

    def _update(self, fraction: float) -> None:
        swaps = {}
        for k, w in self.weights.items():
            mask = self.masks[k]
            n = int(mask.sum()) - self.kept(k, self.step_count)
            swaps[k] = max(n, 0)
            if n <= 0:
                continue
            dropped = drop_weakest(w, mask, n)
            mask.logical_and_(~dropped)
            w.masked_fill_(dropped, 0.0)
            self._reset_optimizer_state(w, dropped)
        self.history.append({"step": self.step_count, "drop_fraction": fraction, "swaps": swaps})  # pruned ones
        distributed.check_same(self.masks, "masks")
