"""Data sets as spike tensors (P, H, W, T): the embedded digits set, or real event sets through tonic.

Importing this package is cheap (no torch), so the CLI can check a data folder before the heavy imports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class SpikeData:
    name: str
    train: Any  # torch Dataset of (spikes (P, H, W, T) float, label)
    test: Any
    input_shape: tuple[int, int, int]  # (P, H, W): polarity channels, height, width
    num_classes: int


def load_digits(steps: int) -> SpikeData:
    """The embedded set, framed once into memory (about 40 MB of bool spikes at T=20)."""
    import numpy as np
    import torch

    from . import digits_dvs
    from .framing import BoolSpikes, events_to_spikes

    es = digits_dvs.load()
    p = es.params
    spikes = np.stack([events_to_spikes(es.sample(i), p.sensor_size, steps, p.duration_us) for i in range(len(es))])
    x, y = torch.from_numpy(spikes), torch.from_numpy(es.labels)
    split = torch.from_numpy(es.is_test)
    return SpikeData("digits", BoolSpikes(x[~split], y[~split]), BoolSpikes(x[split], y[split]),
                     (2, p.sensor, p.sensor), int(es.labels.max() + 1))


def load_dataset(name: str, steps: int, data_dir: str | None = None, seed: int = 0) -> SpikeData:
    if name == "digits":
        return load_digits(steps)
    from . import tonic_sets

    train, test, shape, classes = tonic_sets.load(name, data_dir, steps, seed)
    return SpikeData(name, train, test, shape, classes)
