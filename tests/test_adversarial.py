"""The defects an adversarial user found (issue 11), one test each: every one must end in one line naming the
problem and the fix, a non-zero exit code, no traceback, nothing lost or half-written (signals: test_signals.py)."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch

from esl_deploy import netx_file
from esl_train import __main__ as cli
from esl_train import trainer
from esl_train.config import TrainConfig
from esl_train.errors import UsageError
from esl_train.export import export_netx
from esl_train.kernels.optim import Adam
from esl_train.runfolder import locked

from .helpers import fake_nmnist, masked_net, tiny_mlp_file, write_nmnist_bin

TINY = ["--epochs", "1", "--hidden", "16", "--steps", "4", "--no-progress"]
NO_CAPS = ["setpriv", "--inh-caps", "-dac_override,-dac_read_search", "--bounding-set",
           "-dac_override,-dac_read_search"]
needs_setpriv = pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0,
                                   reason="read-only cases need root without CAP_DAC_OVERRIDE (setpriv)")


def main(capsys, *args):
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def one_line(code, err, words, exit_code=2):
    lines = err.splitlines()
    assert code == exit_code and len(lines) == 1 and words in lines[0] and "Traceback" not in err, err


def run_py(*args, timeout=240, prefix=()):
    return subprocess.run([*prefix, sys.executable, "-m", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run (1 epoch) to resume, break and extend."""
    out = tmp_path_factory.mktemp("fin") / "run"
    assert cli.main([*TINY, "--out", str(out)]) == 0
    return out


def copy_run(finished, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(finished, dst)
    return dst


# 3. diverged training ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lr", ["inf", "nan", "1e38", "-1"])
def test_non_finite_or_absurd_lr_is_refused(capsys, tmp_path, lr):
    code, err = main(capsys, "--lr", lr, "--out", tmp_path / "run", *TINY)
    one_line(code, err, "--lr must be in (0, 1]")
    assert not (tmp_path / "run").exists()


def test_non_finite_weights_stop_training_and_are_never_exported(tmp_path, capsys, monkeypatch):
    real_step = Adam.step  # the trainer's optimizer (--kernels auto)
    calls = {"n": 0}

    def poisoned(self, *a, **k):
        out = real_step(self, *a, **k)
        calls["n"] += 1
        if calls["n"] > 50:  # epoch 2 (45 batches make epoch 1)
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return out

    monkeypatch.setattr(Adam, "step", poisoned)
    out = tmp_path / "run"
    code, err = main(capsys, "--epochs", "3", "--hidden", "16", "--steps", "4", "--no-progress", "--out", out)
    one_line(code, err, "weights became non-finite")
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] == 1
    assert not (out / "model.net").exists() and not (out / "metrics.json").exists()


def test_finite_check_flags_any_nan_or_inf_but_not_a_finite_sum_that_overflows():
    """The per-step check reads tensor sums: finite weights whose sum overflows pass, one NaN or inf does not."""
    net = torch.nn.Linear(4, 3)
    run = SimpleNamespace(net=net, epoch=0, folder=Path("run"))
    with torch.no_grad():
        net.weight.fill_(3e38)
    trainer.Run._check_finite(run, torch.tensor(0.5))
    for bad in (float("nan"), float("inf"), -float("inf")):
        with torch.no_grad():
            net.weight[1, 2] = bad
        with pytest.raises(UsageError, match="weights became non-finite"):
            trainer.Run._check_finite(run, torch.tensor(0.5))
    with torch.no_grad():
        net.weight.fill_(1.0)
    net.weight.grad = torch.zeros_like(net.weight)
    net.weight.grad[0, 0] = float("inf")
    with pytest.raises(UsageError, match="gradients became non-finite"):
        trainer.Run._check_finite(run, torch.tensor(0.5))
    with pytest.raises(UsageError, match="loss became nan"):
        trainer.Run._check_finite(run, torch.tensor(float("nan")))


def test_export_refuses_a_non_finite_network(tmp_path):
    net, _ = masked_net("mlp", 0.3, hidden=8)
    with torch.no_grad():
        net.blocks[0].synapse.weight[0, 0] = float("inf")
    with pytest.raises(UsageError, match="non-finite"):
        export_netx(net, tmp_path / "model.net")
    assert list(tmp_path.iterdir()) == []


# 4. all-zero layer -------------------------------------------------------------------------------------------
def test_no_mask_update_in_the_last_interval_of_training():
    from .test_evolver import make

    _, _, ev = make([(6, 6)], 0.3, interval=1, steps=10)
    ev.config.drop_fraction, ev.config.schedule, ev.config.evolve_until = 1.0, "constant", 1.0
    assert ev.is_update_step(9) and not ev.is_update_step(10)
    ev.quiet_steps = 4  # e.g. one epoch
    assert ev.is_update_step(6) and not any(ev.is_update_step(s) for s in (7, 8, 9, 10))


def test_the_issue_flags_end_in_one_line_without_an_undeployable_file(tmp_path, capsys):
    # swapping every synapse for a zero-weight one at every step leaves a dead network: say so, write no model.net
    out = tmp_path / "run"
    code, err = main(capsys, *TINY, "--epochs", "2", "--out", out, "--update-interval", "1", "--drop-fraction", "1",
                     "--regrow", "gradient", "--schedule", "constant", "--evolve-until", "1", "--density", "0.05")
    one_line(code, err, "kept no synapse after Loihi's 8-bit weight quantization")
    assert not (out / "model.net").exists() and (out / "checkpoint.pt").exists()


def test_a_bad_file_read_by_a_dataloader_worker_is_one_line(tmp_path, capsys, monkeypatch):
    from esl_train.data.digits_dvs import EVENT_DTYPE

    from .helpers import fake_nmnist, write_nmnist_bin

    monkeypatch.setenv("ESL_SNN_CACHE", str(tmp_path / "cache"))
    fake_nmnist(tmp_path)
    ev = np.zeros(3, EVENT_DTYPE)
    ev["x"] = 200  # outside N-MNIST's 34x34 sensor: not an N-MNIST recording
    write_nmnist_bin(tmp_path / "NMNIST" / "Train" / "7" / "00001.bin", ev)  # not the first: read in a worker
    code, err = main(capsys, *TINY, "--dataset", "nmnist", "--data-dir", tmp_path, "--workers", "1",
                     "--out", tmp_path / "run", "--batch-size", "2")
    one_line(code, err, "events outside the 34x34 sensor")
    assert "DataLoader worker" in err


# 5, 6, 7, 14. resume -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"PK\x03\x04trunc", os.urandom(300), "foreign"])
def test_broken_checkpoint_one_line(finished, tmp_path, capsys, content):
    run = copy_run(finished, tmp_path)
    if content == "foreign":
        torch.save({"weights": torch.zeros(3)}, run / "checkpoint.pt")
    else:
        (run / "checkpoint.pt").write_bytes(content)
    code, err = main(capsys, "--resume", run)
    one_line(code, err, "checkpoint.pt is damaged")


@pytest.mark.parametrize("config, words", [
    ("[1, 2]", "not a run config"),
    ('{"density": 7}', "bad value"),
    ('{"epochs": "many"}', "bad value"),
    ('{"evolver": [1]}', "bad value"),
    ("{not json", "config.json missing or unreadable"),
])
def test_broken_config_one_line(finished, tmp_path, capsys, config, words):
    run = copy_run(finished, tmp_path)
    (run / "config.json").write_text(config)
    code, err = main(capsys, "--resume", run)
    one_line(code, err, words)


def test_resume_refuses_other_flags(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    before = (run / "checkpoint.pt").read_bytes()
    code, err = main(capsys, "--resume", run, "--density", "0.5", "--lr", "0.1")
    one_line(code, err, "drop --density, --lr")
    assert (run / "checkpoint.pt").read_bytes() == before


def test_resume_with_epochs_extends_the_run(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    (run / ".checkpoint.pt.x1y2.tmp").write_bytes(b"left by a SIGKILL")
    code, _ = main(capsys, "--resume", run, "--epochs", "2", "--no-progress")
    assert code == 0
    assert len(json.loads((run / "history.json").read_text())) == 2
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    assert not list(run.glob(".*.tmp"))  # the killed run's temp file is gone


def test_a_second_trainer_on_the_same_folder_is_refused(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    with locked(run):
        code, err = main(capsys, "--resume", run)
    one_line(code, err, f"in use by process {os.getpid()}")


# 8, 15. output folders and model paths -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_mlp_file(tmp_path_factory.mktemp("model"))[0]


def test_report_naming_a_file_fails_before_lava(model, tmp_path):
    (tmp_path / "file").write_text("x")
    start = time.time()
    for tool in ("esl_deploy.run", "esl_deploy.budget"):
        p = run_py(tool, model, "--report", tmp_path / "file")
        one_line(p.returncode, p.stderr.strip(), "is a file")
    assert time.time() - start < 20


@needs_setpriv
def test_read_only_places_fail_before_the_work(model, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(model, ro / "model.net")
    ro.chmod(0o555)
    try:
        for args in (["esl_deploy.run", ro / "model.net"], ["esl_deploy.run", model, "--report", ro / "rep"],
                     ["esl_deploy.budget", ro / "model.net"], ["esl_train", *TINY, "--out", ro / "run"]):
            p = run_py(*args, prefix=NO_CAPS)
            one_line(p.returncode, p.stderr.strip(), "cannot write to")
        (ro / "model.net").chmod(0o000)
        p = run_py("esl_deploy.budget", ro / "model.net", "--report", tmp_path / "rep", prefix=NO_CAPS)
        one_line(p.returncode, p.stderr.strip(), "permission denied")
    finally:
        ro.chmod(0o755)


def test_misleading_messages_are_fixed(model, tmp_path, capsys):
    code, err = main(capsys, *TINY, "--out", "/proc/esl-x")
    assert code == 2 and "--resume" not in err
    p = run_py("esl_deploy.run", model.parent)
    one_line(p.returncode, p.stderr.strip(), "is a folder")


def test_a_bad_file_in_a_data_set_is_named(tmp_path, capsys):
    files = sorted(fake_nmnist(tmp_path))
    bad = files[1]
    bad.write_bytes(np.random.default_rng(3).bytes(505))
    from esl_train.data import load_dataset

    data = load_dataset("nmnist", 4, str(tmp_path))
    with pytest.raises(UsageError) as e:
        [split[i] for split in (data.train, data.test) for i in range(len(split))]
    assert str(bad) in str(e.value)


# 9. data folders ------------------------------------------------------------------------------------------------
def _nmnist_loose(root):
    fake_nmnist(root)
    write_nmnist_bin(root / "NMNIST" / "Train" / "00001.bin", np.zeros(0, dtype=[("x", "i2"), ("y", "i2"),
                                                                                  ("t", "i8"), ("p", "i1")]))


def _gesture_by_class(root):
    """DVS Gesture laid out with class folders (ibmGestureTrain/0/rec0.npy), as for N-MNIST: tonic wants
    ibmGestureTrain/<user>/<label>.npy."""
    for split in ("ibmGestureTrain", "ibmGestureTest"):
        folder = root / "DVSGesture" / split / "0"
        folder.mkdir(parents=True)
        np.save(folder / "rec0.npy", np.zeros((5, 4)))


@pytest.mark.parametrize("make, dataset, words", [
    (_nmnist_loose, "nmnist", "lies directly in"),
    (lambda root: [fake_nmnist(root), (root / "NMNIST" / "Train" / "3").rename(root / "NMNIST" / "Train" / "three")],
     "nmnist", "must end in their digit"),
    (lambda root: [fake_nmnist(root), next((root / "NMNIST" / "Test" / "7").glob("*.bin")).write_bytes(b"")],
     "nmnist", "is empty"),
    (lambda root: (root / "DVSGesture" / "ibmGestureTrain").mkdir(parents=True), "dvsgesture",
     "ibmGestureTrain/user01_fluorescent/<label 0-10>.npy"),
    (_gesture_by_class, "dvsgesture", "DVS Gesture files are named by their label, 0.npy to 10.npy"),
])
def test_bad_data_folders_one_line(tmp_path, capsys, make, dataset, words):
    make(tmp_path)
    code, err = main(capsys, "--dataset", dataset, "--data-dir", tmp_path, *TINY, "--out", tmp_path / "run")
    one_line(code, err, words)
    assert not (tmp_path / "run").exists()


@needs_setpriv
def test_unreadable_class_folder_is_named(tmp_path):
    fake_nmnist(tmp_path)
    locked_dir = tmp_path / "NMNIST" / "Train" / "3"
    locked_dir.chmod(0o000)
    try:
        p = run_py("esl_train", "--dataset", "nmnist", "--data-dir", tmp_path, *TINY, "--out", tmp_path / "run",
                   prefix=NO_CAPS)
        one_line(p.returncode, p.stderr.strip(), f"{locked_dir} cannot be read")
    finally:
        locked_dir.chmod(0o755)


# 10, 11. foreign and malformed network files ---------------------------------------------------------------------
def _edit(src, dst, fn):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)
    return dst


def _set(group, name, value):
    del group[name]
    group.create_dataset(name, data=value)


MALFORMED = {
    "meta null": (lambda f: f.attrs.__setitem__("esl_snn", "null"), "not a JSON object"),
    "meta list": (lambda f: f.attrs.__setitem__("esl_snn", "[1]"), "not a JSON object"),
    "bad steps": (lambda f: f.attrs.__setitem__("esl_snn", json.dumps({"steps": -3})), "not a positive integer"),
    "unknown dataset": (lambda f: f.attrs.__setitem__("esl_snn", json.dumps({"dataset": "mnist"})), "unknown dataset"),
    "no neuron": (lambda f: f["layer/1"].__delitem__("neuron"), "no neuron parameters"),
    "no vThMant": (lambda f: f["layer/1/neuron"].__delitem__("vThMant"), "vThMant missing"),
    "keys": (lambda f: f["layer"].move("2", "5"), "not 0..2"),
    "string weights": (lambda f: _set(f["layer/1"], "weight", np.full((24, 1152), "a", dtype="S1")), "not numbers"),
    "SDNN": (lambda f: _set(f["layer/2/neuron"], "type", np.array([b"SDNN"])), "SDNN neurons"),
    "float weights": (lambda f: _set(f["layer/2"], "weight", f["layer/2/weight"][()] + 0.5), "not finite integers"),
    "bool weights": (lambda f: _set(f["layer/2"], "weight", f["layer/2/weight"][()] != 0), "not numbers"),
    "nan weights": (lambda f: _set(f["layer/2"], "weight", f["layer/2/weight"][()] * np.nan), "not finite"),
    "all zero": (lambda f: _set(f["layer/2"], "weight", np.zeros_like(f["layer/2/weight"][()])),
                 "every weight is zero"),
    "SLAYER Input block": (lambda f: f["layer/0"].create_group("neuron"), "input layer with neurons"),
}


def test_malformed_files_one_line_each(model, tmp_path):
    for name, (fn, words) in MALFORMED.items():
        path = _edit(model, tmp_path / f"{name}.net", fn)
        with pytest.raises(UsageError, match=words):
            netx_file.read(path)
    p = run_py("esl_deploy.run", tmp_path / "SDNN.net")
    one_line(p.returncode, p.stderr.strip(), "SDNN")


def test_conv_stride_zero(tmp_path):
    net, _ = masked_net("conv", 0.3)
    path = tmp_path / "conv.net"
    export_netx(net, path, {"dataset": "digits", "steps": 8})
    path = _edit(path, tmp_path / "stride0.net", lambda f: _set(f["layer/1"], "stride", np.array([0, 0])))
    with pytest.raises(UsageError, match="conv geometry"):
        netx_file.read(path)


@pytest.mark.timeout(240)
def test_plain_lava_dl_mlp_export_runs_and_matches_the_twin(tmp_path):
    net, _ = masked_net("mlp", 0.3, hidden=24)
    path = tmp_path / "plain.net"
    with h5py.File(path, "w") as h:  # lava-dl's documented pattern: blocks only, no input entry, no metadata
        layer = h.create_group("layer")
        net.eval()(torch.zeros(1, 2, 24, 24, 1))
        for i, b in enumerate(net.blocks):
            b.export_hdf5(layer.create_group(f"{i}"))
    p = run_py("esl_deploy.run", path, "--dataset", "digits", "--steps", "8", "--samples", "3", "--no-progress",
               "--report", tmp_path / "rep", timeout=200)
    assert p.returncode == 0, p.stderr
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["fidelity"]["identical_rasters"] == 1.0


# 12, 16. numbers and CLI consistency ----------------------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["--seed", "-1"], "--seed must be an integer in [0, 2**32)"),
    (["--seed", str(2**32)], "--seed must be an integer in [0, 2**32)"),
    (["--out", ""], "--out is empty"),
    (["--density", "1e-9"], "keeps less than one synapse"),
])
def test_numbers_are_range_checked(tmp_path, capsys, args, words):
    code, err = main(capsys, *TINY, "--out", tmp_path / "run", *args)
    one_line(code, err, words)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("steps", ["-1", "0"])
def test_deploy_steps_must_be_positive(model, steps):
    p = run_py("esl_deploy.run", model, "--steps", steps)
    one_line(p.returncode, p.stderr.strip(), "--steps must be at least 1")


def test_deploy_argument_errors_are_one_line_and_budget_is_fast(model):
    for tool in ("esl_deploy.run", "esl_deploy.budget"):
        p = run_py(tool, model, "--no-such-flag")
        one_line(p.returncode, p.stderr.strip(), "unrecognized arguments")
    start = time.time()
    p = run_py("esl_deploy.budget", model, "--hw", "loihi9")
    one_line(p.returncode, p.stderr.strip(), "unknown hardware")
    assert time.time() - start < 3


def test_without_a_terminal_the_log_gets_one_line_per_epoch(tmp_path):
    p = run_py("esl_train", "--epochs", "2", "--hidden", "16", "--steps", "4", "--out", tmp_path / "run")
    assert p.returncode == 0, p.stderr
    assert "epoch 1/2" in p.stdout and "epoch 2/2" in p.stdout
    assert "step/s" not in p.stderr and "s/step" not in p.stderr and "\r" not in p.stderr  # no progress bar


# 13. damaged cache ------------------------------------------------------------------------------------------------
def test_damaged_data_cache_is_rebuilt(tmp_path, monkeypatch):
    from esl_train.data import digits_dvs

    src = digits_dvs.cache_dir() / f"digits-dvs-{digits_dvs.SensorParams().key()}.npz"
    monkeypatch.setenv("ESL_SNN_CACHE", str(tmp_path))
    good = digits_dvs.load() if not src.exists() else None
    if good is None:
        shutil.copy(src, tmp_path / src.name)
        good = digits_dvs.load()
    path = tmp_path / src.name
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    es = digits_dvs.load()
    assert np.array_equal(es.events, good.events) and len(es) == 1797
    np.load(path)  # rebuilt on disk too


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer on a machine without CUDA")
def test_device_cuda_without_cuda_is_refused_before_anything_is_written(tmp_path, capsys):
    code, err = main(capsys, *TINY, "--device", "cuda", "--out", tmp_path / "run")
    one_line(code, err, "no CUDA device")
    code, err = main(capsys, *TINY, "--device", "gpu", "--out", tmp_path / "run")
    one_line(code, err, "--device must be auto, cpu, cuda or cuda:N")
    assert not (tmp_path / "run").exists()


def test_resume_may_change_where_and_how_the_run_trains(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    code, _ = main(capsys, "--resume", run, "--device", "cpu", "--no-cache", "--epochs", "2")
    config = json.loads((run / "config.json").read_text())
    assert code == 0 and config["device"] == "cpu" and config["cache"] is False
    code, _ = main(capsys, "--resume", run, "--cache", "--epochs", "3")
    assert code == 0 and json.loads((run / "config.json").read_text())["cache"] is True


def test_config_validation_rejects_bad_types():
    for bad in ({"epochs": 2.5}, {"seed": "x"}, {"lr": float("inf")}, {"evolver": {"magic": 1}}, {"device": "tpu"}):
        with pytest.raises((ValueError, TypeError)):
            TrainConfig.from_dict(bad).validate()
