"""The neurobench package, run on the same network and samples, gives our numbers where the definitions match.

Optional: needs the `neurobench` extra (`make neurobench`); CI does not install it and skips this file."""

import pytest
import torch

pytest.importorskip("neurobench", reason="optional extra absent: `make neurobench` installs NeuroBench 2.3 + snnTorch")

from bench.interop import neurobench_compare  # noqa: E402

from .helpers import tiny_mlp_file  # noqa: E402


def test_neurobench_package_agrees_with_our_metrics(tmp_path, digits):
    path, _ = tiny_mlp_file(tmp_path)
    x = torch.stack([digits.test[i][0] for i in range(6)]).float()
    labels = torch.tensor([int(digits.test[i][1]) for i in range(6)])
    ours, theirs = neurobench_compare(path, x, labels)
    assert ours["SynapticOperations"]["Effective_ACs"] > 0
    for key in ("Effective_MACs", "Effective_ACs", "Dense"):
        assert theirs["SynapticOperations"][key] == pytest.approx(ours["SynapticOperations"][key], rel=1e-9)
    assert theirs["ActivationSparsity"] == pytest.approx(ours["ActivationSparsity"], rel=1e-9)
    assert theirs["ConnectionSparsity"] == pytest.approx(ours["ConnectionSparsity"], abs=5e-5)  # they round to 4
    # theirs counts only updates that changed the membrane, ours every neuron at every step (Loihi's cost)
    assert 0 < theirs["MembraneUpdates"] <= ours["MembraneUpdates"]
