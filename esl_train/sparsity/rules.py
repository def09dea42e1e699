"""Prune and regrow rules: which active synapses to drop, which inactive ones to grow."""

from __future__ import annotations

import torch

from ..config import REGROW_RULES


def drop_weakest(weight: torch.Tensor, mask: torch.Tensor, n: int, protected: torch.Tensor | None = None,
                 rate: torch.Tensor | None = None, per_sign: bool = False) -> torch.Tensor:
    """Bool mask of the `n` active synapses with the smallest |w| (SET, RigL, ESL all prune by magnitude).

    With `rate` (presynaptic spike counts, broadcastable to the weight) the score is |w| x rate, the synapse's mean
    drive: a strong synapse on an input that never spikes counts as weak. `protected` synapses go last (only when
    nothing else is left). A NaN weight counts as the weakest, so a diverged weight can never push the choice onto
    inactive synapses. With `per_sign` (SET's reference code), the n split between the positive (zeros included) and
    the negative active weights in proportion to their numbers, each share the smallest |w| of its sign."""
    if per_sign:
        positive = mask & ~(weight < 0)
        k = round(n * int(positive.sum()) / max(int(mask.sum()), 1))
        return (drop_weakest(weight, positive, k, protected, rate)
                | drop_weakest(weight, mask & (weight < 0), n - k, protected, rate))
    score = torch.nan_to_num(weight.abs(), nan=0.0, posinf=_BIG)
    if rate is not None:
        score = (score * rate).clamp_max(_BIG)  # finite: an active synapse must stay below the inactive ones' inf
    if protected is not None:
        score = torch.where(protected, score + _BIG, score)
    score = torch.where(mask, score, torch.full_like(weight, float("inf")))
    idx = torch.topk(score.flatten(), n, largest=False).indices
    return _from_indices(idx, mask)


def grow(rule: str, candidates: torch.Tensor, n: int, dense_grad: torch.Tensor | None,
         generator: torch.Generator, unexplored: torch.Tensor | None = None,
         rate: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask of `n` synapses to grow among `candidates`.

    gradient: largest |dL/dw| of the dense gradient (RigL): the synapses that would reduce the loss fastest.
    random: uniform among the candidates (SET): pure exploration.
    unexplored: uniform among candidates never active before (`unexplored`), then among the rest once those
    run out: exploration that covers the whole graph before it revisits any synapse.
    unexplored-gradient: the never-active candidates with the largest |dL/dw| first, then the rest by gradient:
    exploration aimed at synapses whose inputs spike.
    unexplored-active: never-active candidates first, drawn at random with probability proportional to their
    input's spike count `rate` (broadcastable to the candidates), then the rest the same way: exploration that
    covers the graph without spending synapses on silent inputs, and needs no dense gradient.

    `generator` is a CPU generator whatever the device of the masks, so a seed makes the same choices on a CPU
    and on a GPU, and its state moves between them in a checkpoint."""
    if rule == "gradient":
        return _largest_gradient(candidates, n, dense_grad, generator)
    if rule == "unexplored-gradient":
        return _fresh_first(candidates, unexplored, n, lambda c, k: _largest_gradient(c, k, dense_grad, generator))
    if rule == "unexplored-active":
        return _fresh_first(candidates, unexplored, n, lambda c, k: _weighted_sample(c, k, rate, generator))
    if rule == "random":
        pool = candidates.flatten().nonzero().squeeze(1)
        idx = pool[torch.randperm(len(pool), generator=generator)[:n].to(pool.device)]
    elif rule == "unexplored":
        fresh = candidates & unexplored
        # random keys, offset by 1 for explored candidates: fresh ones are taken first
        key = torch.rand(candidates.shape, generator=generator).to(candidates.device) + (~fresh).float()
        key = torch.where(candidates, key, torch.full_like(key, float("inf")))
        idx = torch.topk(key.flatten(), n, largest=False).indices
    else:
        raise ValueError(f"unknown regrow rule {rule!r}; choose one of {REGROW_RULES}")
    return _from_indices(idx, candidates)


def _fresh_first(candidates: torch.Tensor, unexplored: torch.Tensor, n: int, pick) -> torch.Tensor:
    """`pick(pool, k)` applied to the never-active candidates first, then to the rest for what is still missing."""
    fresh = candidates & unexplored
    k = min(n, int(fresh.sum()))
    return pick(fresh, k) | pick(candidates & ~fresh, n - k)


def _largest_gradient(candidates: torch.Tensor, n: int, dense_grad: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
    """Bool mask of the `n` candidates with the largest |dense gradient| (a NaN gradient counts as zero)."""
    grad = torch.nan_to_num(dense_grad.abs(), nan=0.0, posinf=_BIG)
    score = torch.where(candidates, grad, torch.full_like(grad, -1.0))
    # random tie-break so that all-zero gradients do not always favour the first rows
    score = score + 1e-12 * torch.rand(score.shape, generator=generator).to(score.device)
    return _from_indices(torch.topk(score.flatten(), n).indices, candidates)


def _weighted_sample(candidates: torch.Tensor, n: int, weight: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """Bool mask of `n` candidates drawn without replacement with probability proportional to `weight`
    (Efraimidis-Spirakis keys u^(1/w)); zero-weight candidates come only after every other one."""
    u = torch.rand(candidates.shape, generator=generator).to(candidates.device).clamp_min(1e-30)
    w = torch.nan_to_num(weight.float(), nan=0.0).clamp_min(0.0).expand(candidates.shape)
    key = torch.where(w > 0, u.log() / w, -_BIG * (1 + u))
    key = torch.where(candidates, key, torch.full_like(key, -float("inf")))
    return _from_indices(torch.topk(key.flatten(), n).indices, candidates)


_BIG = 1e30  # above any finite weight or gradient magnitude, below inf


def _from_indices(idx: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(like.numel(), dtype=torch.bool, device=like.device)
    out[idx] = True
    return out.view(like.shape)
