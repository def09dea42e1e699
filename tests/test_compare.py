"""Every method keeps its density exactly; the comparison runs end to end in quick mode."""

import json
import subprocess
import sys

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


@pytest.mark.timeout(400)
def test_compare_quick_end_to_end(tmp_path):
    p = subprocess.run([sys.executable, "-m", "esl_train.compare", "--quick", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=380)
    assert p.returncode == 0, p.stderr
    data = json.loads((tmp_path / "compare.json").read_text())
    assert {(r["method"], r["density"]) for r in data["runs"]} == {("dense", 1.0)} | {
        (m, 0.1) for m in ("static", "set", "rigl", "esl")}
    assert all(0 <= r["test_accuracy"] <= 1 and r["synops"] > 0 for r in data["runs"])
    md = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- begin compare -->" in md and "| esl | 0.1 |" in md and "Targets:" in md
    assert (tmp_path / "compare_accuracy.png").exists() and (tmp_path / "compare_training.png").exists()
