"""Signals reach the commands as a terminal or a scheduler sends them: to the whole process group. Each command
must end within seconds with one line, and leave no process and no Lava shared-memory segment behind."""

import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest


from .helpers import tiny_mlp_file

SHM = Path("/dev/shm")


def segments() -> set[str]:
    return {p.name for p in SHM.glob("psm_*")} if SHM.is_dir() else set()


def group_alive(pgid: int) -> list[int]:
    """PIDs still in process group `pgid` (zombies excluded)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(stat.parent.name))
    return out


def children(pid: int) -> int:
    n = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        n += int(fields[1]) == pid
    return n


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_mlp_file(tmp_path_factory.mktemp("sig"))[0]


def _as_from_a_terminal():
    """A command typed at a terminal gets SIGINT at its default; one started by a background shell (`nohup ... &`),
    as this test suite may be, inherits it ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_and_signal(cmd, ready, sig, deadline=120):
    """Start `cmd` in its own process group, wait until `ready(pid)`, send `sig` to the group; (code, stderr)."""
    before = segments()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=_as_from_a_terminal)
    end = time.time() + deadline
    while not ready(p.pid):
        assert p.poll() is None, p.stderr.read()
        assert time.time() < end, "the command never got going"
        time.sleep(0.1)
    time.sleep(0.5)
    sent = time.time()
    os.killpg(p.pid, sig)
    try:
        code = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        pytest.fail(f"still running 30 s after {sig!r}")
    took = time.time() - sent
    err = p.stderr.read()
    time.sleep(0.5)
    assert not group_alive(p.pid), "a process of the command outlived it"
    assert segments() <= before, "Lava shared-memory segments were left in /dev/shm"
    assert took < 25
    return code, err


# SIGTERM and SIGHUP take one path (esl_train/signals.py): the subprocess tests send SIGINT (a terminal's Ctrl-C, to
# the whole group) and SIGTERM (a scheduler's); test_sighup_is_a_stop_like_sigterm checks that SIGHUP takes that path
@pytest.mark.timeout(200)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_deploy_run_stops_cleanly_on_signals(model, tmp_path, sig):
    cmd = [sys.executable, "-m", "esl_deploy.run", str(model), "--samples", "300", "--tile", "1", "--no-progress",
           "--report", str(tmp_path / "rep")]
    code, err = start_and_signal(cmd, lambda pid: children(pid) >= 3, sig)  # Lava's workers are up
    assert code == 130
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted"), err
    assert not (tmp_path / "rep").exists()


@pytest.mark.timeout(200)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_training_stops_cleanly_on_signals(tmp_path, sig):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "esl_train", "--epochs", "50", "--hidden", "16", "--steps", "8", "--out", str(out),
           "--no-progress"]
    code, err = start_and_signal(cmd, lambda pid: (out / "checkpoint.pt").exists(), sig)
    assert code == 130
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and f"--resume {out}" in lines[0], err


def _swallowed_stop():
    """A SIGTERM that lands in a weakref callback, where Python drops the exception ("Exception ignored in: ..."), as
    it did in h5py's finalizers while model.net's temp file was written."""
    class Box:
        pass

    box = Box()
    weakref.finalize(box, os.kill, os.getpid(), signal.SIGTERM)
    del box


@pytest.mark.timeout(200)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("where", ["a training step", "a checkpoint", "the export"])
def test_a_stop_swallowed_where_it_lands_still_ends_the_run(tmp_path, capsys, monkeypatch, where):
    from esl_train import __main__ as cli
    from esl_train import trainer

    def after(fn, n=1):
        calls = []

        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            calls.append(1)
            if len(calls) == n:
                _swallowed_stop()
            return out
        return wrapped

    if where == "a training step":
        monkeypatch.setattr(trainer.Run, "_check_finite", after(trainer.Run._check_finite, 3))
    elif where == "a checkpoint":
        monkeypatch.setattr(trainer.torch, "save", after(trainer.torch.save))
    else:
        monkeypatch.setattr(trainer, "export_netx", after(trainer.export_netx))
    out = tmp_path / "run"
    code = cli.main(["--epochs", "2", "--hidden", "16", "--steps", "4", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 130, err
    assert "interrupted (SIGTERM)" in err and f"--resume {out}" in err
    assert not (out / "metrics.json").exists()  # it stopped: no success written after the stop


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT])
def test_sighup_is_a_stop_like_sigterm(sig):
    """Every stop signal is handled by the same handler while a command runs, and raises the same stop."""
    from esl_train import signals

    old = signals.install()
    try:
        with pytest.raises(KeyboardInterrupt) as e:
            os.kill(os.getpid(), sig)
            time.sleep(1)  # the handler runs at the next bytecode
        assert signals.received() == signal.Signals(sig).name
        if sig != signal.SIGINT:
            assert isinstance(e.value, signals.Terminated) and str(e.value) == signal.Signals(sig).name
        with pytest.raises(KeyboardInterrupt):
            signals.check()  # recorded: raised again at the next safe point
    finally:
        signals.restore(old)
    assert signal.getsignal(sig) is old[sig]
