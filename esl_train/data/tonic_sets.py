"""Real event-camera data sets, read through tonic from a folder the user already has. Never downloads.

tonic's own datasets download when `_check_exists()` fails (it also wants the original archive and a
minimum file count), so we check the folder ourselves, say what to put where, and give tonic a
subclass whose `download()` refuses."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True)
class RealSet:
    tonic_name: str  # tonic class; files live under <data-dir>/<tonic_name>/
    train_dir: str
    test_dir: str | None  # None: no official split, we hold out a fixed 10 %
    suffix: str
    layout: str  # where one file goes, below <data-dir>
    sensor_size: tuple[int, int, int]
    target_size: tuple[int, int] | None  # spatial down-sampling for a small network
    num_classes: int
    source: str

    @property
    def frame_sensor(self) -> tuple[int, int, int]:
        """The sensor events are framed on, tonic's (x, y, p): down-sampled to target_size where one is set."""
        return self.sensor_size if self.target_size is None else (*self.target_size, self.sensor_size[2])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(P, H, W) of the framed spikes."""
        x, y, p = self.frame_sensor
        return (p, y, x)


REAL_SETS = {
    "nmnist": RealSet("NMNIST", "Train", "Test", ".bin", "NMNIST/Train/<digit 0-9>/*.bin", (34, 34, 2), None, 10,
                      "train.zip and test.zip from the N-MNIST page (Orchard et al. 2015), extracted"),
    "dvsgesture": RealSet("DVSGesture", "ibmGestureTrain", "ibmGestureTest", ".npy",
                          "DVSGesture/ibmGestureTrain/user01_fluorescent/<label 0-10>.npy", (128, 128, 2), (32, 32), 11,
                          "tonic's converted ibmGestureTrain/ibmGestureTest folders (.npy per gesture)"),
    "cifar10dvs": RealSet("CIFAR10DVS", "", None, ".aedat4", "CIFAR10DVS/<class, e.g. airplane>/*.aedat4",
                          (128, 128, 2), (48, 48), 10,
                          "the CIFAR10-DVS class folders (airplane/ ... truck/) converted to .aedat4"),
}


def _offline(cls):
    """`cls` that trusts our folder check and never downloads. Same class name: tonic reads <save_to>/<name>/."""

    def check_exists(self):  # we checked the folder ourselves; tonic's check also wants the archive
        return True

    def download(self):
        raise UsageError(f"{cls.__name__} files are missing and downloads are disabled")

    return type(cls.__name__, (cls,), {"_check_exists": check_exists, "download": download})


def _check_split(spec: RealSet, folder: Path) -> int:
    """Every file where tonic looks for it, readable and not empty; returns the number of files."""
    where = f"(layout {spec.layout})"
    if not folder.is_dir():
        raise UsageError(f"no {spec.suffix} files under {folder} (no such folder): put {spec.source} there {where}")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise UsageError(f"{folder} cannot be read (permission denied); make it readable {where}")
    loose = sorted(folder.glob(f"*{spec.suffix}"))
    if loose:
        raise UsageError(f"{loose[0]} lies directly in {folder}; tonic reads files from one folder per class or "
                         f"recording session {where}")
    total = 0
    for sub in sorted(d for d in folder.iterdir() if d.is_dir()):
        if not os.access(sub, os.R_OK | os.X_OK):
            raise UsageError(f"{sub} cannot be read (permission denied), so its samples would be missing; make it "
                             "readable (chmod -R +rX)")
        if spec.tonic_name == "NMNIST" and not sub.name[-1:].isdigit():
            raise UsageError(f"{sub}: N-MNIST class folders must end in their digit (tonic reads the label from "
                             f"the last character) {where}")
        files = list(sub.rglob(f"*{spec.suffix}"))
        if spec.tonic_name == "DVSGesture":  # tonic reads the label from the file name
            named = [f for f in files if not (f.stem.isdigit() and int(f.stem) < spec.num_classes)]
            if named:
                raise UsageError(f"{named[0]}: DVS Gesture files are named by their label, 0.npy to "
                                 f"{spec.num_classes - 1}.npy, in one folder per recording session {where}")
        empty = [f for f in files if f.stat().st_size == 0]
        if empty:
            raise UsageError(f"{empty[0]} is empty ({len(empty)} empty {spec.suffix} file(s) in {sub}); replace "
                             "them with the original recordings")
        total += len(files)
    if total == 0:
        raise UsageError(f"no {spec.suffix} files under {folder}: put {spec.source} there {where}")
    return total


def check_folder(name: str, data_dir: str | None) -> Path:
    """The folder tonic will read, or a UsageError that says exactly what to put where."""
    spec = REAL_SETS[name]
    if not data_dir:
        raise UsageError(f"--dataset {name} needs --data-dir DIR, the folder that holds {spec.tonic_name}/")
    root = Path(data_dir).expanduser() / spec.tonic_name
    for sub in filter(lambda s: s is not None, (spec.train_dir, spec.test_dir)):
        _check_split(spec, root / sub)
    if name == "cifar10dvs":
        try:
            import aedat  # noqa: F401  (tonic's aedat4 reader needs it)
        except ImportError:
            raise UsageError("reading CIFAR10-DVS .aedat4 files needs the 'aedat' package: pip install aedat") from None
    return root


def cache_folder(name: str, data_dir: str, steps: int, seed: int) -> Path:
    """Where tonic's DiskCachedDataset keeps the framed samples: keyed by the data set, its folder and every
    framing parameter, so another framing never reads stale tensors."""
    from .digits_dvs import cache_dir

    spec = REAL_SETS[name]
    key = json.dumps({"name": name, "root": str(Path(data_dir).expanduser().resolve()), "steps": steps,
                      "sensor": spec.sensor_size, "target": spec.target_size, "seed": seed, "version": 1})
    return cache_dir() / f"tonic-{name}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def load(name: str, data_dir: str | None, steps: int, seed: int = 0, cache: bool = True):
    """(train, test) torch datasets of (spikes (P, H, W, T), label): framed from the user's files on first use,
    then read back from tonic's disk cache (a damaged cache file is framed again); without `cache`, framed at
    every read."""
    import numpy as np
    import tonic
    import torch

    from .framing import FramedEvents, to_float_tensor

    spec = REAL_SETS[name]
    check_folder(name, data_dir)
    cls = _offline(getattr(tonic.datasets, spec.tonic_name))
    sensor, transform = spec.frame_sensor, None
    if spec.target_size is not None:
        transform = tonic.transforms.Downsample(sensor_size=spec.sensor_size, target_size=spec.target_size)
    root = str(Path(data_dir).expanduser())
    if spec.test_dir is None:
        full = cls(root)
        order = np.random.default_rng(seed).permutation(len(full))
        n_test = len(full) // 10
        train, test = torch.utils.data.Subset(full, order[n_test:]), torch.utils.data.Subset(full, order[:n_test])
    else:
        train, test = cls(root, train=True), cls(root, train=False)
    if not cache:
        framed = [FramedEvents(d, sensor, steps, transform, as_tensor=True) for d in (train, test)]
        return framed[0], framed[1], spec.input_shape, spec.num_classes
    folder = cache_folder(name, root, steps, seed)
    framed = [tonic.DiskCachedDataset(FramedEvents(d, sensor, steps, transform), cache_path=str(folder / split),
                                      transform=to_float_tensor)
              for d, split in ((train, "train"), (test, "test"))]
    return framed[0], framed[1], spec.input_shape, spec.num_classes
