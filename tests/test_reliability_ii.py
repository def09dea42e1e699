"""More kinds of failure a careless or hostile user finds: a full disk under every writer, a world size changed on
resume, data laid out the wrong way, concurrent writers. One line, exit code 2, nothing half-written."""

import contextlib
import resource
import signal
from pathlib import Path

import pytest
import torch

from .helpers import tiny_mlp_file

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def file_size_limit(limit: int):
    """Files may not grow past `limit` bytes while it holds: writes fail with EFBIG, as on a full disk."""
    old_limit, old_handler = resource.getrlimit(resource.RLIMIT_FSIZE), signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_mlp_file(tmp_path_factory.mktemp("disk"))[0]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("what", ["checkpoint", "nir", "budget report"])
def test_a_full_disk_under_every_writer_is_one_line_and_leaves_no_temp_file(tmp_path, model, capsys, what):
    from esl_deploy import budget, nir
    from esl_train import __main__ as train

    out = tmp_path / "out"
    out.mkdir()
    if what == "checkpoint":  # torch.save says RuntimeError("PytorchStreamWriter failed writing file ...")
        command, args, limit = train.main, ["--epochs", "1", "--hidden", "16", "--steps", "4", "--no-progress",
                                            "--out", out / "run"], 40_000
    elif what == "nir":  # an HDF5 file
        command, args, limit = nir.main, ["export", model, out / "m.nir"], 20_000
    else:  # text, json and png: every report goes through the same writer
        command, args, limit = budget.main, [model, "--report", out / "b"], 10_000
    with file_size_limit(limit):
        code = command([str(a) for a in args])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in lines[0], lines
    assert "File too large" in lines[0] or "could not be written" in lines[0], lines[0]
    assert "free space" in lines[0]
    assert not list(out.rglob(".*.tmp")), list(out.rglob("*"))


@pytest.mark.timeout(300)
def test_data_loader_workers_do_not_change_the_model(tmp_path, digits):
    """--workers only moves loading to other processes: the same seed gives the same weights, bit for bit."""
    from esl_train import trainer
    from esl_train.config import TrainConfig

    weights = []
    for workers in (0, 2):
        cfg = TrainConfig(epochs=2, hidden=16, steps=8, workers=workers)
        (tmp_path / f"w{workers}").mkdir()
        r = trainer.Run(cfg, tmp_path / f"w{workers}", data=digits)
        r.fit(progress=False, log=False)
        weights.append([p.detach().clone() for p in r.net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights))


def test_two_commands_never_fill_one_report_folder_at_once(tmp_path, model, capsys):
    """The second writer of a report folder is refused at once (one line), instead of both saying success while
    their files mix."""
    from esl_deploy import budget
    from esl_train.runfolder import writing

    folder = tmp_path / "b"
    with writing(folder, "--report"):  # another command is writing there (a lock of its own, as another process's)
        code = budget.main([str(model), "--report", str(folder)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "is being written by another command" in lines[0], lines
    assert not folder.exists()
    assert budget.main([str(model), "--report", str(folder)]) == 0 and (folder / "report.json").exists()
