"""Resumable training, atomic outputs, and bad input that must end in one clear line (issue: reliability)."""

import errno
import json
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from esl_train import __main__ as cli
from esl_train import trainer
from esl_train.atomic import atomic_path
from esl_train.export import export_netx, read_synapses

from .helpers import fake_nmnist, masked_net

RUN = ["--density", "0.2", "--epochs", "3", "--hidden", "64", "--update-interval", "10", "--no-progress"]


def train(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "esl_train", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def weights(path):
    with h5py.File(path) as f:
        return {k: f["layer"][k]["weight"][()] for k in f["layer"] if "weight" in f["layer"][k]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    p = train(*RUN, "--out", out)
    assert p.wait(timeout=240) == 0, p.stderr.read()
    return out


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_same_result(reference, tmp_path, sig):
    out = tmp_path / "run"
    p = train(*RUN, "--out", out)
    deadline = time.time() + 240
    while not (out / "checkpoint.pt").exists():  # the first epoch is done: kill in the middle of the second
        assert p.poll() is None and time.time() < deadline
        time.sleep(0.02)
    p.send_signal(sig)
    code = p.wait(timeout=60)
    assert not (out / "metrics.json").exists() and not (out / "model.net").exists()
    if sig == signal.SIGTERM:
        assert code == 130 and f"--resume {out}" in p.stderr.read()
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] >= 1  # complete, loadable
    r = train("--resume", out)
    assert r.wait(timeout=240) == 0, r.stderr.read()
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (reference, out))
    ha, hb = (json.loads((d / "history.json").read_text()) for d in (reference, out))
    assert [(h["train_loss"], h["test_accuracy"]) for h in ha] == [(h["train_loss"], h["test_accuracy"]) for h in hb]
    assert a["test_accuracy"] == b["test_accuracy"] and a["layers"] == b["layers"]
    wa, wb = weights(reference / "model.net"), weights(out / "model.net")
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)  # bit-identical on CPU


def _main(capsys, *args):
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def test_nan_loss_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path, capsys, monkeypatch):
    real = trainer.make_loss
    calls = {"n": 0}

    def exploding():
        loss = real()

        def fn(out, y):
            calls["n"] += 1
            return loss(out, y) * (float("nan") if calls["n"] > 50 else 1)  # 45 batches make epoch 1

        return fn

    monkeypatch.setattr(trainer, "make_loss", exploding)
    out = tmp_path / "run"
    code, err = _main(capsys, "--epochs", "3", "--hidden", "16", "--steps", "4", "--out", out, "--no-progress")
    assert code == 2 and len(err.splitlines()) == 1 and "loss became nan" in err and "--resume" in err
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] == 1
    assert not (out / "model.net").exists() and not (out / "metrics.json").exists()


def test_disk_full_at_export_loses_nothing(tmp_path, capsys, monkeypatch):
    def full(net, path, meta=None, compress=True):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(trainer, "export_netx", full)
    out = tmp_path / "run"
    code, err = _main(capsys, "--epochs", "1", "--hidden", "16", "--steps", "4", "--out", out, "--no-progress")
    assert code == 2 and len(err.splitlines()) == 1 and "No space left on device" in err
    assert (out / "checkpoint.pt").exists() and not (out / "model.net").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("make, words", [
    (lambda root: (root / "NMNIST").mkdir(), "no .bin files"),  # empty
    (lambda root: [p.unlink() for p in (root / "NMNIST" / "Test").rglob("*.bin")] if fake_nmnist(root) else None,
     "no .bin files under"),  # partial: the test split is missing
    (lambda root: [p.write_bytes(np.random.default_rng(1).bytes(500)) for p in fake_nmnist(root)], "outside the 34x34"),
])
def test_bad_data_folders(tmp_path, capsys, make, words):
    make(tmp_path)
    out = tmp_path / "run"
    code, err = _main(capsys, "--dataset", "nmnist", "--data-dir", tmp_path, "--epochs", "1", "--out", out)
    assert code == 2 and len(err.splitlines()) == 1 and words in err, err
    assert not out.exists()


def test_resume_of_a_folder_without_a_run(tmp_path, capsys):
    code, err = _main(capsys, "--resume", tmp_path)
    assert code == 2 and "holds no run to resume" in err


def test_atomic_path_keeps_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


@settings(max_examples=15, deadline=None)
@given(hidden=st.integers(4, 48), density=st.floats(0.02, 1.0), seed=st.integers(0, 1000),
       arch=st.sampled_from(["mlp", "conv"]))
def test_exported_synapses_equal_the_mask(tmp_path_factory, hidden, density, seed, arch):
    net, ev = masked_net(arch, density, shape=(2, 8, 8), hidden=hidden, seed=seed)
    path = tmp_path_factory.mktemp("x") / "model.net"
    export_netx(net, path)
    counted = {l["name"]: l["synapses"] for l in read_synapses(path)}
    for name, block in net.weighted_blocks().items():
        q = block.synapse.pre_hook_fx(block.synapse.weight, descale=True).detach()
        quantized_away = int((ev.masks[name] & (q == 0)).sum())
        assert counted[name] == ev.active()[name] - quantized_away
