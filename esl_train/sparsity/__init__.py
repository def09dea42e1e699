"""Sparse structure: layer density allocation, prune/grow rules, the mask evolver and its dense-to-sparse and Deep R
variants."""

from .allocation import layer_counts, layer_densities
from .deepr import DeepR
from .evolver import EvolverConfig, MaskEvolver
from .pruning import MaskPruner


def make_evolver(method: str, weights, optimizer, config: EvolverConfig, total_steps: int, **kwargs) -> MaskEvolver:
    """The mask owner a method trains with: the evolver (static, SET, RigL, ESL), the pruner (GMP, prune-after) or
    Deep R."""
    cls = DeepR if method == "deepr" else MaskPruner if config.prune != "none" else MaskEvolver
    return cls(weights, optimizer, config, total_steps, **kwargs)


__all__ = ["DeepR", "EvolverConfig", "MaskEvolver", "MaskPruner", "layer_counts", "layer_densities", "make_evolver"]
