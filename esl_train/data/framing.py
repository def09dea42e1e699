"""Events -> spike tensors: tonic's ToFrame bins the events, clipped to one spike per pixel and step."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tonic.transforms import ToFrame

from ..errors import UsageError


def events_to_spikes(events: np.ndarray, sensor_size: tuple[int, int, int], steps: int,
                     duration_us: float | None = None):
    """Bin events into `steps` equal time windows and return a bool array (P, H, W, steps).

    `duration_us` fixes the window (for sets whose samples share a length); else each sample is
    stretched over its own span, as tonic's `n_time_bins` does."""
    if len(events):
        start = 0 if duration_us is not None else int(events["t"][0])
        end = duration_us if duration_us is not None else int(events["t"][-1]) + 1
    else:
        start, end = 0, steps
    window = max((end - start) / steps, 1)
    frames = ToFrame(sensor_size=sensor_size, time_window=window, start_time=start, end_time=end)(events)
    spikes = np.zeros((steps, *frames.shape[1:]), bool)
    spikes[: min(steps, len(frames))] = frames[:steps] > 0
    return np.moveaxis(spikes, 0, -1)


def to_float_tensor(spikes) -> torch.Tensor:
    """The network's input from a framed (or cached) bool array."""
    return torch.from_numpy(np.asarray(spikes)).float()


class FramedEvents(torch.utils.data.Dataset):
    """A tonic event data set seen as (spikes (P, H, W, T), label) pairs, framed on the fly: bool numpy arrays for
    tonic's cache to store, or the network's float tensors with `as_tensor`."""

    def __init__(self, events_dataset, sensor_size, steps: int, transform=None, as_tensor: bool = False):
        self.events = events_dataset
        self.sensor_size = sensor_size
        self.steps = steps
        self.transform = transform
        self.as_tensor = as_tensor

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, i):
        try:
            events, label = self.events[i]
            if self.transform is not None:
                events = self.transform(events)
            in_sensor = (events["x"] < self.sensor_size[0]).all() and (events["y"] < self.sensor_size[1]).all()
        except Exception as e:  # tonic's readers fail in many ways on a foreign file
            raise UsageError(f"{source_file(self.events, i)} could not be read ({type(e).__name__}: {e}); the files "
                             "must be the data set's original format") from None
        if not in_sensor:
            raise UsageError(f"{source_file(self.events, i)} has events outside the {self.sensor_size[0]}x"
                             f"{self.sensor_size[1]} sensor; the files are not in this data set's format")
        spikes = events_to_spikes(events, self.sensor_size, self.steps)
        return (to_float_tensor(spikes) if self.as_tensor else spikes), int(label)


def source_file(dataset, i: int) -> str:
    """The file behind sample `i` of a tonic data set (through Subsets), to name it in an error."""
    while isinstance(dataset, torch.utils.data.Subset):
        dataset, i = dataset.dataset, dataset.indices[i]
    try:
        return str(dataset.data[i])
    except (AttributeError, IndexError, TypeError):
        return f"sample {i}"


def time_major(x: torch.Tensor) -> torch.Tensor:
    """`x` (samples, ..., steps) with the same shape and values, laid out in memory as (samples, steps, ...): a batch
    gathered from it is then a (sample x step, inputs) matrix as it lies, the rows the first synapse's int8 GEMM
    reads (esl_train.kernels.synapse), so no batch is transposed in training. Copies once unless already so."""
    order = (0, x.dim() - 1, *range(1, x.dim() - 1))
    inverse = (0, *range(2, x.dim()), 1)
    return x if x.permute(order).is_contiguous() else x.permute(order).contiguous().permute(inverse)


class BoolSpikes(torch.utils.data.Dataset):
    """Spike tensors kept in memory as bool (4x smaller than float): a sample handed out as float, a batch as bool.
    Time-major in memory (`time_major`) unless asked not to be."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, time_major_layout: bool = True):
        self.x, self.y = (time_major(x) if time_major_layout and x.dim() >= 3 else x), y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i].float(), self.y[i]

    def __getitems__(self, indices):
        """A whole batch in one gather (the DataLoader's batched fetch), left bool: the network reads bool spikes
        (its first synapse as bytes, esl_train.kernels.synapse) and converts them where it needs float."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return SpikeBatch(self.x[idx], self.y[idx])


class SpikeBatch(Sequence):
    """The samples of a batch fetched whole: `collate` hands out the batch tensors as they are; any other collate
    function sees an ordinary list of (spikes, label) samples."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, k):
        return self.x[k], self.y[k]


def collate(samples):
    """The DataLoader's collate_fn for every data set: batches fetched whole pass through, samples are stacked."""
    return [samples.x, samples.y] if isinstance(samples, SpikeBatch) else torch.utils.data.default_collate(samples)
