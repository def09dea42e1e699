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
    val: Any = None  # a validation split carved from training (for choosing settings), where the set has one


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


def load_digits_bench(steps: int) -> SpikeData:
    """The benchmark set (digits_bench): 25,860 train, 2,880 validation, 7,200 test recordings."""
    import torch

    from . import digits_bench
    from .framing import BoolSpikes

    data = digits_bench.load(steps)
    sensor = digits_bench.BenchParams().sensor.sensor
    splits = {}
    for name in digits_bench.SPLITS:
        x, y = digits_bench.unpack(data, name, sensor)
        splits[name] = BoolSpikes(torch.from_numpy(x), torch.from_numpy(y))
    return SpikeData("digits-bench", splits["train"], splits["test"], (2, sensor, sensor), 10, splits["val"])


def load_dataset(name: str, steps: int, data_dir: str | None = None, seed: int = 0, cache: bool = True) -> SpikeData:
    if name == "digits":
        return load_digits(steps)
    if name == "digits-bench":
        return load_digits_bench(steps)
    from . import tonic_sets

    train, test, shape, classes = tonic_sets.load(name, data_dir, steps, seed, cache)
    return SpikeData(name, train, test, shape, classes)
