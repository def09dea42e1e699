"""Every method keeps its density exactly, or (pruning a dense start) ends on it; every method's model.net runs in
Lava as its twin does (the sweep itself is tested in test_benchmark.py)."""

import numpy as np
import pytest
import torch

from esl_train import trainer
from esl_train.config import METHODS, TrainConfig

PRUNING = ("gmp", "prune-after")  # dense start, the density reached at the end of the schedule


@pytest.mark.parametrize("method", [m for m in METHODS if m not in ("dense", *PRUNING)])
def test_every_method_keeps_each_layer_density_exactly(tmp_path, digits, method):
    cfg = TrainConfig(method=method, density=0.1, epochs=2, steps=8, hidden=32,
                      evolver={"update_interval": 5} if method not in ("static", "set") else {})
    r = trainer.Run(cfg, tmp_path, data=digits)
    start = r.evolver.active()
    masks = {k: m.clone() for k, m in r.evolver.masks.items()}
    r.fit(progress=False)
    assert r.evolver.active() == start
    assert len({tuple(h["layer_density"].values()) for h in r.history}) == 1
    assert sum(start.values()) == pytest.approx(0.1 * sum(m.numel() for m in masks.values()), abs=2)
    changed = any(not bool((masks[k] == r.evolver.masks[k]).all()) for k in masks)
    assert changed == (method != "static")  # the evolving methods really rewired


@pytest.mark.parametrize("skip_step", [True, False])
def test_rigl_update_steps_take_no_optimizer_step(tmp_path, digits, skip_step):
    """As in google-research/rigl and rigl-torch, a mask update takes the place of its step's optimizer step: Adam
    counts one step fewer per update."""
    cfg = TrainConfig(method="rigl", density=0.1, epochs=2, steps=8, hidden=32,
                      evolver={"update_interval": 5, "skip_step": skip_step})
    r = trainer.Run(cfg, tmp_path, data=digits)
    r.fit(progress=False, log=False)
    updates = len(r.evolver.history)
    assert updates > 0
    for w in r.evolver.weights.values():
        assert int(r.optimizer.state[w]["step"]) == r.total_steps - (updates if skip_step else 0)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("method", PRUNING)
def test_pruning_starts_dense_ends_on_the_density_and_runs_in_lava_like_its_twin(tmp_path, digits, method):
    from esl_deploy import lava_runner, netx_file
    from esl_deploy.twin import build_twin

    cfg = TrainConfig(method=method, density=0.1, epochs=3, steps=8, hidden=32, evolver={"update_interval": 10})
    r = trainer.Run(cfg, tmp_path, data=digits)
    assert r.evolver.density() == 1.0
    r.fit(progress=False, log=False)
    m = r.finish()
    counts = [sum(u["swaps"].values()) for u in r.evolver.history]
    assert all(c > 0 for c in counts) and (len(counts) > 1) == (method == "gmp")  # gradual, or in one cut
    assert m["mask_density"] == pytest.approx(0.1, abs=1e-3) and m["density"] <= m["mask_density"]
    assert 0.1 < m["training_cost"]["train_cost_vs_dense"] < 1  # a dense phase, then a sparse one
    nf = netx_file.read(tmp_path / "model.net")
    x = torch.stack([digits.test[i][0] for i in range(3)])
    res = lava_runner.run(str(tmp_path / "model.net"), nf, x.numpy().astype(bool), progress=False, tile=3)
    with torch.no_grad():
        _, twin = build_twin(nf)(x, record=True)
    assert all(np.array_equal(lava, t.numpy() > 0) for lava, t in zip(res.layers, twin))
