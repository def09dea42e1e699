"""torchrun + DistributedDataParallel on the CPU (gloo): one model, masks identical on every rank, one run folder."""

import json
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as tmp_mp

from esl_train import distributed

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "esl_train"]
RUN = ["--hidden", "16", "--steps", "4", "--density", "0.2", "--update-interval", "5", "--regrow", "gradient",
       "--no-progress"]


@pytest.mark.timeout(400)
def test_two_ranks_train_one_model_and_resume(tmp_path):
    out = tmp_path / "run"
    p = subprocess.run([*TORCHRUN, *RUN, "--epochs", "2", "--out", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("run folder:") == 1  # rank 0 alone reports and writes
    assert [d.name for d in tmp_path.iterdir()] == ["run"]
    m = json.loads((out / "metrics.json").read_text())
    assert m["mask_updates"] > 0 and m["mask_density"] == pytest.approx(0.2, abs=1e-3)
    p = subprocess.run([*TORCHRUN, "--resume", str(out), "--epochs", "3", "--no-progress"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert len({tuple(h["layer_density"].values()) for h in history}) == 1  # density exact throughout


def _diverge(rank, init_file, results):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        same = {"a": torch.tensor([1.0, 2.0, 3.0])}
        distributed.check_same(same, "masks")  # equal on both ranks: passes
        other = {"a": torch.tensor([1.0, 2.0, 3.0 + rank])}
        try:
            distributed.check_same(other, "masks")
            results.put((rank, "passed"))
        except RuntimeError as e:
            results.put((rank, str(e)))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.timeout(300)
def test_check_same_catches_ranks_that_drift_apart(tmp_path):
    ctx = tmp_mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_diverge, args=(r, tmp_path / "init", results)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=280) for _ in range(2))
    for p in procs:
        p.join()
    assert all("masks differ between ranks" in got[r] for r in range(2)), got


def test_without_torchrun_nothing_changes():
    assert distributed.world() == (0, 1) and not distributed.active() and distributed.is_main()
    t = torch.ones(3)
    distributed.all_reduce_mean_(t)
    distributed.check_same({"x": t}, "x")
    assert torch.equal(t, torch.ones(3)) and distributed.broadcast("x") == "x"
