"""Real event-camera data sets, read through tonic from a folder the user already has. Never downloads.

tonic's own datasets download when `_check_exists()` fails (it also wants the original archive and a
minimum file count), so we check the folder ourselves, say what to put where, and give tonic a
subclass whose `download()` refuses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError


@dataclass(frozen=True)
class RealSet:
    tonic_name: str  # tonic class; files live under <data-dir>/<tonic_name>/
    train_dir: str
    test_dir: str | None  # None: no official split, we hold out a fixed 10 %
    suffix: str
    sensor_size: tuple[int, int, int]
    target_size: tuple[int, int] | None  # spatial down-sampling for a small network
    num_classes: int
    source: str


REAL_SETS = {
    "nmnist": RealSet("NMNIST", "Train", "Test", ".bin", (34, 34, 2), None, 10,
                      "train.zip and test.zip from the N-MNIST page (Orchard et al. 2015), extracted"),
    "dvsgesture": RealSet("DVSGesture", "ibmGestureTrain", "ibmGestureTest", ".npy", (128, 128, 2), (32, 32), 11,
                          "tonic's converted ibmGestureTrain/ibmGestureTest folders (.npy per gesture)"),
    "cifar10dvs": RealSet("CIFAR10DVS", "", None, ".aedat4", (128, 128, 2), (48, 48), 10,
                          "the CIFAR10-DVS class folders (airplane/ ... truck/) converted to .aedat4"),
}


def _offline(cls):
    """`cls` that trusts our folder check and never downloads. Same class name: tonic reads <save_to>/<name>/."""

    def check_exists(self):  # we checked the folder ourselves; tonic's check also wants the archive
        return True

    def download(self):
        raise UsageError(f"{cls.__name__} files are missing and downloads are disabled")

    return type(cls.__name__, (cls,), {"_check_exists": check_exists, "download": download})


def _count(folder: Path, suffix: str) -> int:
    return sum(1 for _ in folder.rglob(f"*{suffix}")) if folder.is_dir() else 0


def check_folder(name: str, data_dir: str | None) -> Path:
    """The folder tonic will read, or a UsageError that says exactly what to put where."""
    spec = REAL_SETS[name]
    if not data_dir:
        raise UsageError(f"--dataset {name} needs --data-dir DIR, the folder that holds {spec.tonic_name}/")
    root = Path(data_dir).expanduser() / spec.tonic_name
    for sub in filter(lambda s: s is not None, (spec.train_dir, spec.test_dir)):
        if _count(root / sub, spec.suffix) == 0:
            raise UsageError(
                f"no {spec.suffix} files under {root / sub}: put {spec.source} there "
                f"(layout {spec.tonic_name}/{sub + '/' if sub else ''}<class>/*{spec.suffix})"
            )
    if name == "cifar10dvs":
        try:
            import aedat  # noqa: F401  (tonic's aedat4 reader needs it)
        except ImportError:
            raise UsageError("reading CIFAR10-DVS .aedat4 files needs the 'aedat' package: pip install aedat") from None
    return root


def load(name: str, data_dir: str | None, steps: int, seed: int = 0):
    """(train, test) torch datasets of (spikes (P, H, W, T), label), framed on the fly from the user's files."""
    import numpy as np
    import tonic
    import torch

    from .framing import FramedEvents

    spec = REAL_SETS[name]
    check_folder(name, data_dir)
    cls = _offline(getattr(tonic.datasets, spec.tonic_name))
    sensor, transform = spec.sensor_size, None
    if spec.target_size is not None:
        transform = tonic.transforms.Downsample(sensor_size=spec.sensor_size, target_size=spec.target_size)
        sensor = (*spec.target_size, spec.sensor_size[2])
    root = str(Path(data_dir).expanduser())
    if spec.test_dir is None:
        full = cls(root)
        order = np.random.default_rng(seed).permutation(len(full))
        n_test = len(full) // 10
        train, test = torch.utils.data.Subset(full, order[n_test:]), torch.utils.data.Subset(full, order[:n_test])
    else:
        train, test = cls(root, train=True), cls(root, train=False)
    framed = [FramedEvents(d, sensor, steps, transform) for d in (train, test)]
    return framed[0], framed[1], (sensor[2], sensor[1], sensor[0]), spec.num_classes
