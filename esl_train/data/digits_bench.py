"""The benchmark event set: many recordings of every digit, each with its own variation, split by source image.

The small `digits` set (one recording per image, 360 test samples) cannot rank methods half a point apart. Here
each of sklearn's 1,797 digits is recorded `recordings` times by the same simulated event camera as `digits`
(digits_dvs), every recording with its own affine jitter of the digit (rotation, scale, shear, shift), and
recordings grouped into sessions that each have their own saccade geometry (triangle orientation and amplitude)
and sensor (contrast threshold, pixel mismatch, background noise rate). Train, validation and test hold disjoint
source images, so no test digit was ever seen in training. The events are framed straight into spike tensors
(the same binning as tonic's ToFrame) and cached per number of time steps; deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..atomic import atomic_path
from . import digits_dvs
from .digits_dvs import SensorParams

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class BenchParams:
    """Everything that decides the set; its hash (with the time steps) names the cache file."""

    seed: int = 0
    recordings: int = 20  # per source image: 1,293 train images -> 25,860 train recordings
    sessions: int = 12  # groups of recordings sharing saccade geometry and sensor settings
    test_fraction: float = 0.2  # of the source images
    val_fraction: float = 0.1  # of the remaining (training) source images
    rotation_deg: float = 6.0  # affine jitter of each recording: uniform in +-
    scale: float = 0.06
    shear: float = 0.06
    shift_px: float = 0.75
    saccade_angle: float = 10.0  # per session: rotation of the saccade triangle, uniform in +- (the motion
    # direction decides which edges give ON or OFF events, so larger turns make a different task)
    amplitude: tuple[float, float] = (2.75, 3.25)  # per session: saccade amplitude, pixels
    threshold: tuple[float, float] = (0.2, 0.3)  # per session: mean contrast threshold
    mismatch: tuple[float, float] = (0.03, 0.1)  # per session: per-pixel threshold spread
    noise_hz: tuple[float, float] = (0.0, 1.0)  # per session: background events per pixel per second
    sensor: SensorParams = SensorParams(dt_us=2000)
    version: int = 1

    def key(self, steps: int) -> str:
        return hashlib.sha1(json.dumps({**asdict(self), "steps": steps}, sort_keys=True).encode()).hexdigest()[:12]


def split_sources(labels: np.ndarray, p: BenchParams) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of every source image, stratified by class."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=p.test_fraction, stratify=labels, random_state=p.seed)
    _, val = train_test_split(rest, test_size=p.val_fraction, stratify=labels[rest], random_state=p.seed)
    split = np.zeros(len(labels), np.int8)
    split[val], split[test] = 1, 2
    return split


def _jitter(canvas: np.ndarray, rng: np.random.Generator, p: BenchParams) -> np.ndarray:
    """Each scene warped by its own random affine map about the centre (scipy's affine_transform)."""
    from scipy.ndimage import affine_transform

    centre = (np.array(canvas.shape[1:]) - 1) / 2
    out = np.empty_like(canvas)
    for i, scene in enumerate(canvas):
        a = np.deg2rad(rng.uniform(-p.rotation_deg, p.rotation_deg))
        s = 1 + rng.uniform(-p.scale, p.scale)
        sh = rng.uniform(-p.shear, p.shear)
        m = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.array([[1, sh], [0, 1]]) / s
        shift = rng.uniform(-p.shift_px, p.shift_px, 2)
        out[i] = affine_transform(scene, m, offset=centre - m @ (centre + shift), order=1)
    return out


def _session(args) -> tuple[np.ndarray, np.ndarray]:
    """Record one session's scenes: (packed spikes (n, P*H*W*T bits), events per recording)."""
    images, seed, p, steps = args
    rng = np.random.default_rng(seed)
    u = lambda lo_hi: rng.uniform(*lo_hi)  # noqa: E731
    sp = replace(p.sensor, amplitude=u(p.amplitude), saccade_angle=rng.uniform(-p.saccade_angle, p.saccade_angle),
                 threshold=u(p.threshold),
                 threshold_mismatch=u(p.mismatch), noise_hz=u(p.noise_hz))
    margin = digits_dvs.scene_margin(replace(sp, amplitude=max(p.amplitude))) + int(np.ceil(p.shift_px))
    canvas = _jitter(digits_dvs.place(images, sp, margin), rng, p)
    events, offsets = digits_dvs.dvs_events(digits_dvs.render(canvas, sp), sp, rng)
    spikes = frame_all(events, offsets, sp.sensor, steps, sp.duration_us)
    return np.packbits(spikes.reshape(len(spikes), -1), axis=1), np.diff(offsets)


def frame_all(events: np.ndarray, offsets: np.ndarray, sensor: int, steps: int, duration_us: int) -> np.ndarray:
    """Bool spikes (n, 2, H, W, steps) of all recordings at once: the binning of tonic's ToFrame (time_window =
    duration / steps, clipped to one spike per pixel and step), vectorised over the whole session."""
    n = len(offsets) - 1
    spikes = np.zeros((n, 2, sensor, sensor, steps), bool)
    time_bin = events["t"] * steps // duration_us
    spikes[np.repeat(np.arange(n), np.diff(offsets)), events["p"], events["y"], events["x"], time_bin] = True
    return spikes


CACHED = ("packed", "labels", "source", "split", "events", "steps")  # what generate() returns and load() reads back


def generate(p: BenchParams, steps: int, workers: int | None = None) -> dict:
    """Simulate the whole set; about a minute on two cores."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    n_src = len(digits.target)
    rng = np.random.default_rng(p.seed)
    source = np.repeat(np.arange(n_src), p.recordings)
    session = rng.permutation(len(source)) % p.sessions
    jobs = [(digits.images[source[session == s]], p.seed * 1000 + s, p, steps) for s in range(p.sessions)]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            parts = list(pool.map(_session, jobs))
    else:
        parts = [_session(j) for j in jobs]
    order = np.concatenate([np.nonzero(session == s)[0] for s in range(p.sessions)])
    packed = np.empty((len(source), parts[0][0].shape[1]), np.uint8)
    counts = np.empty(len(source), np.int64)
    packed[order] = np.concatenate([a for a, _ in parts])
    counts[order] = np.concatenate([c for _, c in parts])
    return {"packed": packed, "labels": digits.target[source].astype(np.int64), "source": source,
            "split": split_sources(digits.target, p)[source], "events": counts, "steps": steps}


def load(steps: int, p: BenchParams = BenchParams()) -> dict:
    """The set at `steps` time steps, generated once and cached; a damaged cache file is rebuilt."""
    path = digits_dvs.cache_dir() / f"digits-bench-{p.key(steps)}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                data = {k: z[k] for k in z.files}
            if set(CACHED) <= set(data) and int(data["steps"]) == steps:
                return data
            print(f"warning: cache file {path} holds another content, not this set at {steps} steps; rebuilding it",
                  file=sys.stderr)
        except Exception as e:  # unreadable, truncated or not an npz file: say which, and rebuild it
            print(f"warning: cache file {path} {digits_dvs.cache_trouble(e)}; rebuilding it", file=sys.stderr)
    data = generate(p, steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **data)
    return data


def unpack(data: dict, split: str, sensor: int) -> tuple[np.ndarray, np.ndarray]:
    """Bool spikes (n, 2, H, W, T) and labels of one split."""
    sel = data["split"] == SPLITS.index(split)
    shape = (2, sensor, sensor, int(data["steps"]))
    bits = np.unpackbits(data["packed"][sel], axis=1, count=int(np.prod(shape)))
    return bits.astype(bool).reshape(-1, *shape), data["labels"][sel]


def stats(data: dict) -> dict:
    split = data["split"]
    return {
        "recordings": int(len(split)),
        **{f"{name}_recordings": int((split == i).sum()) for i, name in enumerate(SPLITS)},
        **{f"{name}_source_images": int(len(np.unique(data["source"][split == i]))) for i, name in enumerate(SPLITS)},
        "events_per_recording_mean": float(data["events"].mean()),
        "events_per_recording_min": int(data["events"].min()),
        "events_per_recording_max": int(data["events"].max()),
    }


def preview(data: dict, path: str | os.PathLike, sensor: int = 24, per_digit: int = 4) -> None:
    """A picture of several recordings of the same source image per digit (spike counts, ON and OFF together):
    the variation between recordings that the benchmark adds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(per_digit, 10, figsize=(15, 1.6 * per_digit), constrained_layout=True)
    shape = (2, sensor, sensor, int(data["steps"]))
    for c in range(10):
        src = data["source"][np.nonzero(data["labels"] == c)[0][0]]
        for r, i in enumerate(np.nonzero(data["source"] == src)[0][:per_digit]):
            bits = np.unpackbits(data["packed"][i], count=int(np.prod(shape))).reshape(shape)
            ax = axes[r, c]
            ax.imshow(bits.sum(axis=(0, 3)), cmap="magma")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(f"digit {c}, image {src}", fontsize=9)
    fig.suptitle("Benchmark set: recordings of one source image per digit (spikes per pixel over all time steps)")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


if __name__ == "__main__":  # python -m esl_train.data.digits_bench [STEPS] [PICTURE.png]: statistics (and a picture)
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    loaded = load(steps)
    print(json.dumps(stats(loaded), indent=2))
    if len(sys.argv) > 2:
        preview(loaded, sys.argv[2])
