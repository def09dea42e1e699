"""The embedded default data set: scikit-learn's 1,797 handwritten digits seen by a simulated event camera.

Each 8x8 digit is upscaled, placed on a sensor and moved along three saccades (a triangle, as N-MNIST
was recorded with a moving camera). A pixel emits an ON (OFF) event each time its log intensity rises
(falls) by more than its contrast threshold since its last event, the DVS pixel model. Thresholds vary
per pixel (mismatch) and a little background activity is added, both drawn from the seed, so the
set is deterministic for a seed. Events are tonic-style structured arrays (x, y, t, p), t in µs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path

EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


@dataclass(frozen=True)
class SensorParams:
    """Everything that decides the generated events; its hash names the cache file."""

    seed: int = 0
    upscale: int = 2  # 8x8 digit -> 16x16
    sensor: int = 24  # square sensor, pixels per side (N-MNIST: 28x28 digits on 34x34)
    saccade_ms: int = 100  # three saccades, as in N-MNIST
    amplitude: float = 3.0  # pixels the digit travels per saccade
    saccade_angle: float = 0.0  # rotation of the saccade triangle, degrees
    dt_us: int = 1000  # simulation step of the pixel model
    threshold: float = 0.25  # log-intensity contrast threshold
    threshold_mismatch: float = 0.05  # relative per-pixel std of the threshold
    background: float = 0.05  # intensity of the dark background (log needs > 0)
    noise_hz: float = 0.2  # background-activity events per pixel per second
    test_fraction: float = 0.2
    version: int = 1

    @property
    def duration_us(self) -> int:
        return 3 * self.saccade_ms * 1000

    @property
    def sensor_size(self) -> tuple[int, int, int]:
        return (self.sensor, self.sensor, 2)

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class EventSet:
    """Events of all samples, concatenated; sample i is events[offsets[i]:offsets[i+1]]."""

    events: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    is_test: np.ndarray
    params: SensorParams

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, i: int) -> np.ndarray:
        return self.events[self.offsets[i] : self.offsets[i + 1]]

    def stats(self) -> dict:
        counts = np.diff(self.offsets)
        return {
            "samples": len(self),
            "train": int((~self.is_test).sum()),
            "test": int(self.is_test.sum()),
            "classes": int(self.labels.max() + 1),
            "sensor_size": list(self.params.sensor_size),
            "duration_ms": self.params.duration_us / 1000,
            "events_per_sample_mean": float(counts.mean()),
            "events_per_sample_min": int(counts.min()),
            "events_per_sample_max": int(counts.max()),
            "on_fraction": float(self.events["p"].mean()),
        }


def _saccade_path(p: SensorParams) -> np.ndarray:
    """Digit offset (dy, dx) in pixels at every simulation step: a triangle walked in three saccades."""
    a, rad = p.amplitude, np.deg2rad(p.saccade_angle)
    corners = np.array([[-a / 2, -a / 2], [-a / 2, a / 2], [a / 2, 0.0], [-a / 2, -a / 2]])
    corners = corners @ np.array([[np.cos(rad), np.sin(rad)], [-np.sin(rad), np.cos(rad)]])
    steps = p.saccade_ms * 1000 // p.dt_us
    frac = (np.arange(steps) / steps)[:, None]
    legs = [c0 + frac * (c1 - c0) for c0, c1 in zip(corners[:-1], corners[1:])]
    return np.concatenate(legs + [corners[-1:]])


def scene_margin(p: SensorParams) -> int:
    """Scene pixels around the sensor's field of view, enough for the saccades."""
    return int(np.ceil(p.amplitude)) + 1


def place(images: np.ndarray, p: SensorParams, margin: int) -> np.ndarray:
    """The scene: sklearn's 8x8 digits (0..16) upscaled, centred on a canvas of sensor + 2 * margin pixels."""
    from scipy.ndimage import zoom

    digits = zoom(images / 16.0, (1, p.upscale, p.upscale), order=1).clip(0, 1).astype(np.float32)
    n, h, _ = digits.shape
    side = p.sensor + 2 * margin
    canvas = np.zeros((n, side, side), np.float32)
    top = margin + (p.sensor - h) // 2
    canvas[:, top : top + h, top : top + h] = digits
    return canvas


def render(canvas: np.ndarray, p: SensorParams):
    """Yield the log intensity seen by the sensor at each step, shape (samples, H, W): the moving scenes."""
    margin = (canvas.shape[1] - p.sensor) // 2
    path = _saccade_path(p)
    for dy, dx in path:
        # sensor pixel (y, x) sees scene point (y - dy, x - dx): blend the four neighbouring canvas pixels
        y0, x0 = int(np.floor(-dy)), int(np.floor(-dx))
        fy, fx = -dy - y0, -dx - x0
        win = lambda oy, ox: canvas[:, margin + y0 + oy :][:, : p.sensor, margin + x0 + ox :][:, :, : p.sensor]
        img = ((1 - fy) * (1 - fx) * win(0, 0) + (1 - fy) * fx * win(0, 1)
               + fy * (1 - fx) * win(1, 0) + fy * fx * win(1, 1))
        yield np.log(p.background + img)


def dvs_events(frames, p: SensorParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Run the DVS pixel model over all samples at once; returns (events sorted by sample then time, offsets)."""
    ref = next(frames).copy()  # each pixel's log intensity at its last event
    n, h, w = ref.shape
    theta = p.threshold * (1 + p.threshold_mismatch * rng.standard_normal((n, h, w)))
    theta = np.maximum(theta, 0.05).astype(np.float32)
    parts = []  # (sample, y, x, t, p) per simulation step
    for s, frame in enumerate(frames, start=1):
        diff = frame - ref
        count = (np.abs(diff) / theta).astype(np.int64)  # floor: both are >= 0
        ref += np.sign(diff) * count * theta
        idx = np.nonzero(count)
        reps = count[idx]
        t = (s - 1) * p.dt_us + rng.integers(0, p.dt_us, reps.sum())
        parts.append((*(np.repeat(a, reps) for a in idx), t, np.repeat(diff[idx] > 0, reps)))
    # background activity: Poisson events at random pixels and times
    n_noise = rng.poisson(p.noise_hz * h * w * p.duration_us * 1e-6, n).sum()
    parts.append(
        (
            rng.integers(0, n, n_noise),
            rng.integers(0, h, n_noise),
            rng.integers(0, w, n_noise),
            rng.integers(0, p.duration_us, n_noise),
            rng.integers(0, 2, n_noise).astype(bool),
        )
    )
    sample, y, x, t, pol = (np.concatenate(col) for col in zip(*parts))
    order = np.lexsort((t, sample))
    events = np.empty(len(order), EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x[order], y[order], t[order], pol[order]
    offsets = np.searchsorted(sample[order], np.arange(n + 1))
    return events, offsets


def generate(p: SensorParams) -> EventSet:
    """Simulate the whole set (a few seconds on two cores)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    rng = np.random.default_rng(p.seed)
    events, offsets = dvs_events(render(place(digits.images, p, scene_margin(p)), p), p, rng)
    _, test_idx = train_test_split(
        np.arange(len(digits.target)), test_size=p.test_fraction, stratify=digits.target, random_state=p.seed
    )
    is_test = np.zeros(len(digits.target), bool)
    is_test[test_idx] = True
    return EventSet(events, offsets, digits.target.astype(np.int64), is_test, p)


def cache_dir() -> Path:
    return Path(os.environ.get("ESL_SNN_CACHE", Path.home() / ".cache" / "esl-snn"))


def cache_trouble(e: Exception) -> str:
    """What is wrong with a cache file that did not load, in words."""
    if isinstance(e, PermissionError):
        return "cannot be read (permission denied)"
    return f"is damaged ({type(e).__name__})"


def load(p: SensorParams = SensorParams()) -> EventSet:
    """The event set for these parameters, generated once and cached on disk."""
    path = cache_dir() / f"digits-dvs-{p.key()}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                return EventSet(z["events"], z["offsets"], z["labels"], z["is_test"], p)
        except Exception as e:  # unreadable, truncated or foreign file: say which, and rebuild it
            print(f"warning: cache file {path} {cache_trouble(e)}; rebuilding it", file=sys.stderr)
    es = generate(p)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, events=es.events, offsets=es.offsets, labels=es.labels, is_test=es.is_test)
    return es


def preview(es: EventSet, path: str | os.PathLike, per_class: int = 1) -> None:
    """Save a picture of one sample per class: event counts of each saccade, ON and OFF together."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = es.params
    fig, axes = plt.subplots(3, 10, figsize=(15, 4.8), constrained_layout=True)
    for c in range(10):
        ev = es.sample(int(np.nonzero(es.labels == c)[0][0]))
        for s in range(3):
            part = ev[(ev["t"] >= s * p.saccade_ms * 1000) & (ev["t"] < (s + 1) * p.saccade_ms * 1000)]
            img = np.zeros((p.sensor, p.sensor))
            np.add.at(img, (part["y"], part["x"]), 1)
            ax = axes[s, c]
            ax.imshow(img, cmap="magma")
            ax.set_xticks([]), ax.set_yticks([])
            if s == 0:
                ax.set_title(f"digit {c}")
            if c == 0:
                ax.set_ylabel(f"saccade {s + 1}")
    fig.suptitle("Embedded event set: events per pixel in each saccade")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    import sys

    events = load()
    print(json.dumps(events.stats(), indent=2))
    if len(sys.argv) > 1:
        preview(events, sys.argv[1])
