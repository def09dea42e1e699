"""Active synapses stay on chip: a non-zero weight never quantizes to zero, in training and in model.net."""

import json

import pytest
import torch

from esl_train import __main__ as cli
from esl_train.models import build
from esl_train.sparsity.quantum import keep_quantum

STEP = 2 / 64  # SLAYER's 8-bit weight step at the default w_scale


def test_dead_zone_becomes_one_step_with_its_sign_and_the_gradient_stays():
    quantize = build("mlp", (2, 4, 4), 3, hidden=4).blocks[0].neuron.quantize_8bit
    w = torch.tensor([0.0, 0.01, -0.01, 0.015, -0.004, 0.05, -0.3, 1e-9], requires_grad=True)
    out = keep_quantum(quantize)(w)
    plain = quantize(w)
    assert plain[1:5].eq(0).all() and plain[7] == 0  # what plain quantization throws away
    assert out.tolist() == pytest.approx([0.0, STEP, -STEP, STEP, -STEP, plain[5].item(), plain[6].item(), STEP])
    assert torch.equal(keep_quantum(quantize)(w, descale=True), out.detach() * 64)  # export's integer weights
    out.sum().backward()
    g = w.grad.clone()
    w.grad = None
    quantize(w).sum().backward()
    assert torch.equal(g, w.grad)  # straight-through as before: the float weight may still cross zero


@pytest.mark.timeout(300)
@pytest.mark.parametrize("method", ["esl", "rigl"])
def test_a_short_training_exports_every_synapse_of_its_mask(tmp_path, capsys, method):
    out = tmp_path / method
    code = cli.main(["--method", method, "--density", "0.1", "--epochs", "2", "--hidden", "16", "--steps", "4",
                     "--update-interval", "5", "--keep-quantum", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["density"] == m["mask_density"] == pytest.approx(0.1, abs=0.002)
    assert all(layer["quantized_away"] == 0 for layer in m["layers"])
