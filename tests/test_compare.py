"""Every method keeps its density exactly (the sweep itself is tested in test_benchmark.py)."""

import pytest

from esl_train import trainer
from esl_train.config import METHODS, TrainConfig


@pytest.mark.parametrize("method", [m for m in METHODS if m != "dense"])
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
