"""Deep R (Bellec et al., ICLR 2018), the rewiring method made for SNNs, at a fixed number of connections.

Each synapse has a sign fixed at the start and a parameter θ >= 0, its weight being sign · θ; a synapse whose θ
falls below zero goes dormant and a dormant one, drawn at random, is activated in its place with θ = 0. Every step,
after the optimizer's: the L1 prior pulls each active θ towards zero by lr · `l1`, and with `temperature` > 0 the
Langevin noise sqrt(2 lr T) · N(0, 1) is added (Deep R's exploration; off unless the validation split says it
helps). Here the optimizer is the benchmark's Adam, where the paper used plain SGD. Masks, hooks and checkpoints are
the evolver's; the signs are drawn from its generator, so they come back with the seed."""

from __future__ import annotations

import math

import torch

from .. import distributed
from .evolver import MaskEvolver


class DeepR(MaskEvolver):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # a sign for every possible synapse: the initial weight's where active, a fair coin where dormant
        self.signs = {}
        for k, w in self.weights.items():
            coin = torch.randint(0, 2, w.shape, generator=self.generator).to(w.device) * 2.0 - 1
            self.signs[k] = torch.where(self.masks[k] & (w != 0), torch.sign(w.detach()), coin)

    def is_update_step(self, step: int) -> bool:
        return True  # rewiring happens at every step, as soon as a θ crosses zero

    def _needs_dense_grad(self, step: int) -> bool:
        return False

    def _update(self, fraction: float) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        swaps = {}
        for k, w in self.weights.items():
            mask, sign = self.masks[k], self.signs[k]
            theta = w * sign
            theta.sub_(lr * self.config.l1)
            if self.config.temperature > 0:
                noise = torch.randn(w.shape, generator=self.generator).to(w.device)
                theta.add_(math.sqrt(2 * lr * self.config.temperature) * noise)
            dormant = mask & (theta < 0)
            w.copy_(torch.where(mask & ~dormant, sign * theta, torch.zeros_like(w)))
            n = int(dormant.sum())
            swaps[k] = n
            if n == 0:
                continue
            pool = (~mask).flatten().nonzero().squeeze(1)
            pick = pool[torch.randperm(len(pool), generator=self.generator)[:n].to(pool.device)]
            woken = torch.zeros_like(mask).view(-1)
            woken[pick] = True
            woken = woken.view_as(mask)
            mask.logical_and_(~dormant).logical_or_(woken)
            self.explored[k].logical_or_(woken)
            self.grown[k] = woken
            self._reset_optimizer_state(w, dormant | woken)
        if any(swaps.values()):  # the same on every rank: the weights are
            self.history.append({"step": self.step_count, "drop_fraction": fraction, "swaps": swaps})
            distributed.check_same(self.masks, "masks")

    def drop_fraction(self, step: int) -> float:
        return 0.0  # no fraction: the number rewired is the number of θ that crossed zero

    def state_dict(self) -> dict:
        return {**super().state_dict(), "signs": {k: s.clone() for k, s in self.signs.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for k, s in state["signs"].items():
            self.signs[k].copy_(s)
