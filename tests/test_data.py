"""The embedded event set, event framing, and the offline tonic path (N-MNIST's real binary format)."""

import numpy as np
import pytest
import torch

from esl_train.data import digits_dvs, load_dataset, tonic_sets
from esl_train.data.framing import events_to_spikes
from esl_train.errors import UsageError

from .helpers import fake_nmnist


def _simulate(params, n=12):
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(params.seed)
    scene = digits_dvs.place(load_digits().images[:n], params, digits_dvs.scene_margin(params))
    return digits_dvs.dvs_events(digits_dvs.render(scene, params), params, rng)


def test_sensor_model_is_deterministic_for_a_seed():
    p = digits_dvs.SensorParams()
    (a, ao), (b, bo) = _simulate(p), _simulate(p)
    assert np.array_equal(a, b) and np.array_equal(ao, bo)
    c, _ = _simulate(digits_dvs.SensorParams(seed=1))
    assert len(c) != len(a) or not np.array_equal(c, a)


def test_events_are_tonic_style_and_inside_the_sensor():
    p = digits_dvs.SensorParams()
    ev, offsets = _simulate(p)
    assert ev.dtype.names == ("x", "y", "t", "p")
    assert ev["x"].min() >= 0 and ev["x"].max() < p.sensor and ev["y"].max() < p.sensor
    assert ev["t"].min() >= 0 and ev["t"].max() < p.duration_us
    assert set(np.unique(ev["p"])) == {0, 1}
    for i in range(len(offsets) - 1):
        s = ev[offsets[i] : offsets[i + 1]]
        assert len(s) > 500 and np.all(np.diff(s["t"]) >= 0)  # every digit makes events, in time order


def test_default_set_split_and_shapes(digits):
    assert digits.input_shape == (2, 24, 24) and digits.num_classes == 10
    assert (len(digits.train), len(digits.test)) == (1437, 360)
    x, y = digits.train[0]
    assert x.shape == (2, 24, 24, 8) and x.dtype == torch.float32 and set(x.unique().tolist()) <= {0.0, 1.0}
    labels = torch.stack([digits.test[i][1] for i in range(len(digits.test))])
    assert torch.bincount(labels).min() >= 30  # stratified: every class in the test split


def test_cache_returns_the_generated_set(tmp_path, monkeypatch):
    monkeypatch.setenv("ESL_SNN_CACHE", str(tmp_path))
    p = digits_dvs.SensorParams(threshold=0.6, noise_hz=0, saccade_ms=10)  # a cheap variant, a cache entry of its own
    first = digits_dvs.load(p)
    assert len(list(tmp_path.glob("digits-dvs-*.npz"))) == 1
    again = digits_dvs.load(p)
    assert np.array_equal(first.events, again.events) and np.array_equal(first.is_test, again.is_test)


@pytest.mark.parametrize("content", ["foreign", "other steps", "truncated"])
def test_a_bench_cache_of_another_content_is_rebuilt_with_a_warning(tmp_path, monkeypatch, capsys, content):
    from esl_train.data import digits_bench

    monkeypatch.setenv("ESL_SNN_CACHE", str(tmp_path))
    fake = {k: np.arange(3) for k in digits_bench.CACHED} | {"steps": np.array(8)}
    monkeypatch.setattr(digits_bench, "generate", lambda p, steps: fake)  # the real build takes a minute
    path = tmp_path / f"digits-bench-{digits_bench.BenchParams().key(8)}.npz"
    if content == "truncated":
        path.write_bytes(b"PK\x03\x04")
    else:
        np.savez(path, **({"x": np.zeros(2)} if content == "foreign" else {**fake, "steps": np.array(5)}))
    data = digits_bench.load(8)
    assert set(data) == set(digits_bench.CACHED) and "rebuilding it" in capsys.readouterr().err
    assert set(np.load(path).files) == set(digits_bench.CACHED)  # replaced by the rebuilt set
    assert digits_bench.load(8)["steps"] == 8 and capsys.readouterr().err == ""  # read back, no warning


def test_framing_puts_each_event_in_its_bin():
    ev = np.zeros(3, digits_dvs.EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = [1, 5, 2], [0, 0, 3], [1000, 150_000, 299_000], [1, 0, 1]
    s = events_to_spikes(ev, (6, 4, 2), steps=10, duration_us=300_000)
    assert s.shape == (2, 4, 6, 10)
    assert sorted(map(tuple, np.argwhere(s))) == [(0, 0, 5, 5), (1, 0, 1, 0), (1, 3, 2, 9)]


def test_nmnist_read_through_tonic_offline(tmp_path):
    written = fake_nmnist(tmp_path)
    train, test, shape, classes = tonic_sets.load("nmnist", str(tmp_path), steps=10)
    assert shape == (2, 34, 34) and classes == 10 and len(train) == 6 and len(test) == 6
    spikes, label = train[2]  # files are listed in sorted order: class 3, first file
    ev = written[tmp_path / "NMNIST" / "Train" / "3" / "00000.bin"]
    assert label == 3 and spikes.shape == (2, 34, 34, 10)
    expected = events_to_spikes(ev, (34, 34, 2), 10)
    assert np.array_equal(spikes.numpy() > 0, expected)
    assert expected[ev["p"][0], ev["y"][0], ev["x"][0]].any()


@pytest.mark.parametrize("name", ["nmnist", "dvsgesture", "cifar10dvs"])
def test_missing_real_data_says_what_to_put_where(tmp_path, name):
    with pytest.raises(UsageError) as e:
        tonic_sets.load(name, str(tmp_path), steps=4)
    msg = str(e.value)
    assert str(tmp_path) in msg and "put" in msg and "\n" not in msg


def test_missing_data_dir_flag():
    with pytest.raises(UsageError, match="--data-dir"):
        load_dataset("nmnist", steps=4)


def test_real_sets_are_framed_once_then_read_from_tonics_disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ESL_SNN_CACHE", str(tmp_path / "cache"))
    files = fake_nmnist(tmp_path)
    from esl_train.data import load_dataset

    first = load_dataset("nmnist", 4, str(tmp_path))
    x0 = first.train[0][0]
    assert x0.dtype == torch.float32 and x0.shape == (2, 34, 34, 4)
    for path in files:  # the files change, the cached framing does not: samples now come from the cache
        path.write_bytes(bytes(5))  # one event at (0, 0), t=0
    again = load_dataset("nmnist", 4, str(tmp_path / ".." / tmp_path.name))  # same folder, another spelling
    assert torch.equal(again.train[0][0], x0)
    assert len(list((tmp_path / "cache").glob("tonic-nmnist-*/train/*.hdf5"))) == 1
    other = load_dataset("nmnist", 5, str(tmp_path))  # another framing: its own cache, framed from the new files
    assert other.train[0][0].sum() == 1


def test_negative_workers_refused():
    from esl_train.config import TrainConfig

    with pytest.raises(ValueError, match="--workers must be 0 or more"):
        TrainConfig(workers=-1).validate()


def test_without_the_cache_samples_are_framed_at_every_read(tmp_path, monkeypatch):
    """`--no-cache`: the same tensors as through tonic's cache, nothing written, and a changed file is seen."""
    monkeypatch.setenv("ESL_SNN_CACHE", str(tmp_path / "cache"))
    files = fake_nmnist(tmp_path)
    plain = load_dataset("nmnist", 4, str(tmp_path), cache=False)
    assert not (tmp_path / "cache").exists()
    cached = load_dataset("nmnist", 4, str(tmp_path))
    for i in range(len(plain.train)):
        (x, y), (cx, cy) = plain.train[i], cached.train[i]
        assert x.dtype == torch.float32 and torch.equal(x, cx) and y == cy
    for path in files:
        path.write_bytes(bytes(5))  # one event at (0, 0), t=0
    assert plain.train[0][0].sum() == 1 and cached.train[0][0].sum() > 1


def test_an_unreadable_cache_is_called_unreadable_not_damaged(tmp_path, monkeypatch, capsys):
    from esl_train.data import digits_bench

    monkeypatch.setenv("ESL_SNN_CACHE", str(tmp_path))
    fake = {k: np.arange(3) for k in digits_bench.CACHED} | {"steps": np.array(8)}
    monkeypatch.setattr(digits_bench, "generate", lambda p, steps: fake)
    path = tmp_path / f"digits-bench-{digits_bench.BenchParams().key(8)}.npz"
    np.savez(path, **fake)
    real = np.load

    def denied(f, *args, **kwargs):  # root reads any file: a permission error has to be simulated
        if str(f) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real(f, *args, **kwargs)

    monkeypatch.setattr(np, "load", denied)
    digits_bench.load(8)
    err = capsys.readouterr().err
    assert "cannot be read (permission denied); rebuilding it" in err and "damaged" not in err
