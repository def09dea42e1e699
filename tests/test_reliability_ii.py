"""More kinds of failure a careless or hostile user finds: a full disk under every writer, a world size changed on
resume, data laid out the wrong way, concurrent writers. One line, exit code 2, nothing half-written."""

import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import tiny_mlp_file

ROOT = Path(__file__).resolve().parent.parent


def _limit_file_size(limit: int):
    """In the child: files may not grow past `limit` bytes (writes fail with EFBIG, as on a full disk)."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def run_limited(args, limit, cwd):
    return subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True, timeout=240,
                          cwd=cwd, preexec_fn=_limit_file_size(limit))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_mlp_file(tmp_path_factory.mktemp("disk"))[0]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("what", ["checkpoint", "nir", "budget report", "deploy report"])
def test_a_full_disk_under_every_writer_is_one_line_and_leaves_no_temp_file(tmp_path, model, what):
    out = tmp_path / "out"
    out.mkdir()
    if what == "checkpoint":  # torch.save says RuntimeError("PytorchStreamWriter failed writing file ...")
        args, limit = ["esl_train", "--epochs", "1", "--hidden", "16", "--steps", "4", "--no-progress", "--out",
                       out / "run"], 40_000
    elif what == "nir":
        args, limit = ["esl_deploy.nir", "export", model, out / "m.nir"], 20_000
    elif what == "budget report":
        args, limit = ["esl_deploy.budget", model, "--report", out / "b"], 10_000
    else:
        args, limit = ["esl_deploy.run", model, "--samples", "2", "--no-progress", "--report", out / "r"], 10_000
    p = run_limited(args, limit, ROOT)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert "File too large" in lines[0] or "could not be written" in lines[0], lines[0]
    assert "free space" in lines[0]
    assert not list(out.rglob(".*.tmp")), list(out.rglob("*"))


@pytest.mark.timeout(300)
def test_data_loader_workers_do_not_change_the_model(tmp_path):
    """--workers only moves loading to other processes: the same seed gives the same model.net, byte for byte."""
    files = []
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        p = subprocess.run([sys.executable, "-m", "esl_train", "--epochs", "3", "--hidden", "16", "--steps", "4",
                            "--workers", str(workers), "--out", str(out), "--no-progress"], capture_output=True,
                           text=True, timeout=240, cwd=ROOT)
        assert p.returncode == 0, p.stderr
        files.append((out / "model.net").read_bytes())
    assert files[0] == files[1]


def test_two_commands_never_fill_one_report_folder_at_once(tmp_path, model):
    """The second writer of a report folder is refused at once (one line), instead of both saying success while
    their files mix."""
    from esl_train.runfolder import writing

    folder = tmp_path / "b"
    with writing(folder, "--report"):  # another command is writing there
        p = subprocess.run([sys.executable, "-m", "esl_deploy.budget", str(model), "--report", str(folder)],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "is being written by another command" in lines[0], p.stderr
    assert not folder.exists()
    p = subprocess.run([sys.executable, "-m", "esl_deploy.budget", str(model), "--report", str(folder)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0 and (folder / "report.json").exists(), p.stderr
