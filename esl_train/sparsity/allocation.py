"""How many synapses each layer keeps: Erdős–Rényi (ER), ER-Kernel (ERK) or uniform, at a global density.

ER gives a layer density proportional to (n_in + n_out) / (n_in * n_out) (Mocanu 2018); ERK to
sum(shape) / prod(shape), so kernel size counts too (Evci 2020). A global factor scales them so
that the total equals the target; a layer whose density would exceed 1 is made dense and the
factor is solved again, as in RigL."""

from __future__ import annotations

import math

from ..config import ALLOCATIONS


def _raw(shape: tuple[int, ...], allocation: str) -> float:
    if allocation == "uniform":
        return 1.0
    dims = shape[:2] if allocation == "er" else shape
    return sum(dims) / math.prod(dims)


def layer_densities(shapes: dict[str, tuple[int, ...]], density: float, allocation: str = "er") -> dict[str, float]:
    """Density per layer so that the synapses kept over all layers are `density` of the possible ones.

    `shapes` are weight shapes (out, in, *kernel) with size-1 axes allowed."""
    if allocation not in ALLOCATIONS:
        raise ValueError(f"unknown allocation {allocation!r}; choose one of {ALLOCATIONS}")
    shapes = {k: tuple(d for i, d in enumerate(s) if i < 2 or d > 1) for k, s in shapes.items()}
    sizes = {k: math.prod(s) for k, s in shapes.items()}
    budget = density * sum(sizes.values())
    dense: set[str] = set()
    while True:
        sparse = [k for k in shapes if k not in dense]
        if not sparse:
            return {k: 1.0 for k in shapes}
        raw = {k: _raw(shapes[k], allocation) for k in sparse}
        eps = (budget - sum(sizes[k] for k in dense)) / sum(raw[k] * sizes[k] for k in sparse)
        worst = max(sparse, key=lambda k: raw[k])
        if eps * raw[worst] <= 1:
            return {k: 1.0 if k in dense else eps * raw[k] for k in shapes}
        dense.add(worst)


def layer_counts(shapes: dict[str, tuple[int, ...]], density: float, allocation: str = "er") -> dict[str, int]:
    """Active synapses per layer (at least one), the numbers the evolver keeps constant."""
    dens = layer_densities(shapes, density, allocation)
    return {k: max(1, min(math.prod(s), round(dens[k] * math.prod(s)))) for k, s in shapes.items()}
