"""Prune and regrow rules: which active synapses to drop, which inactive ones to grow."""

from __future__ import annotations

import torch

from ..config import REGROW_RULES


def drop_weakest(weight: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
    """Bool mask of the `n` active synapses with the smallest |w| (SET, RigL, ESL all prune by magnitude)."""
    score = torch.where(mask, weight.abs(), torch.full_like(weight, float("inf")))
    idx = torch.topk(score.flatten(), n, largest=False).indices
    return _from_indices(idx, mask)


def grow(rule: str, candidates: torch.Tensor, n: int, dense_grad: torch.Tensor | None,
         generator: torch.Generator) -> torch.Tensor:
    """Bool mask of `n` synapses to grow among `candidates`.

    gradient: largest |dL/dw| of the dense gradient (RigL): the synapses that would reduce the loss fastest.
    random: uniform among the candidates (SET): pure exploration."""
    if rule == "gradient":
        score = torch.where(candidates, dense_grad.abs(), torch.full_like(dense_grad, -1.0))
        # random tie-break so that all-zero gradients do not always favour the first rows
        score = score + 1e-12 * torch.rand(score.shape, generator=generator)
        idx = torch.topk(score.flatten(), n).indices
    elif rule == "random":
        pool = candidates.flatten().nonzero().squeeze(1)
        idx = pool[torch.randperm(len(pool), generator=generator)[:n]]
    else:
        raise ValueError(f"unknown regrow rule {rule!r}; choose one of {REGROW_RULES}")
    return _from_indices(idx, candidates)


def _from_indices(idx: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(like.numel(), dtype=torch.bool)
    out[idx] = True
    return out.view(like.shape)
