"""Sparse structure: layer density allocation, prune/grow rules, and the mask evolver."""

from .allocation import layer_counts, layer_densities
from .evolver import EvolverConfig, MaskEvolver

__all__ = ["EvolverConfig", "MaskEvolver", "layer_counts", "layer_densities"]
