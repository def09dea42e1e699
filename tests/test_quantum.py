"""keep_quantum: a synapse once on chip stays on chip, in training and in model.net; the rest is free budget."""

import pytest
import torch

from esl_train.config import TrainConfig
from esl_train.data import load_dataset
from esl_train.export import read_synapses
from esl_train.models import build
from esl_train.sparsity import EvolverConfig, MaskEvolver
from esl_train.sparsity.quantum import keep_quantum

STEP = 2 / 64  # SLAYER's 8-bit weight step at the default w_scale


def quantizer():
    return build("mlp", (2, 4, 4), 3, hidden=4).blocks[0].neuron.quantize_8bit


def test_only_on_chip_weights_keep_a_step_and_the_gradient_stays():
    quantize = quantizer()
    w = torch.tensor([0.0, 0.01, -0.01, 0.015, -0.004, 0.05, -0.3, 0.01], requires_grad=True)
    on_chip = torch.tensor([True, True, True, True, True, True, True, False])
    out = keep_quantum(quantize, lambda: on_chip)(w)
    plain = quantize(w)
    assert plain[1:5].eq(0).all() and plain[7] == 0  # what plain quantization throws away
    assert out.tolist() == pytest.approx([0.0, STEP, -STEP, STEP, -STEP, plain[5].item(), plain[6].item(), 0.0])
    assert torch.equal(keep_quantum(quantize, lambda: on_chip)(w, descale=True), out.detach() * 64)  # export's ints
    out.sum().backward()
    g = w.grad.clone()
    w.grad = None
    quantize(w).sum().backward()
    assert torch.equal(g, w.grad)  # straight-through as before: the float weight may still cross zero


def toy(keep=True):
    """A SLAYER dense synapse of 8 weights, 4 active: two on chip (0.2, -0.1), two in the dead zone (0.01, 0.005)."""
    block = build("mlp", (1, 2, 4), 1, hidden=1).blocks[0]
    syn = block.synapse
    opt = torch.optim.SGD([syn.weight], lr=0.1)
    cfg = EvolverConfig(density=0.5, regrow="random", drop_fraction=0.5, schedule="constant", keep_quantum=keep,
                        update_interval=1)
    ev = MaskEvolver({"l": (syn, syn.weight)}, opt, cfg, total_steps=100)
    ev.masks["l"].copy_(torch.tensor([True] * 4 + [False] * 4).view_as(syn.weight))
    with torch.no_grad():
        syn.weight.copy_(torch.tensor([0.2, -0.1, 0.01, 0.005, 0, 0, 0, 0]).view_as(syn.weight))
    ev.on_chip["l"].zero_()
    ev._mark_on_chip()
    return syn, ev


def test_the_dead_zone_synapses_are_free_budget_dropped_first_and_new_ones_start_off_chip():
    syn, ev = toy()
    assert ev.on_chip["l"].flatten().tolist() == [True, True] + [False] * 6
    with torch.no_grad():
        syn.weight.view(-1)[0] = 0.001  # an on-chip synapse drifts into the dead zone: it keeps one step
        assert syn.pre_hook_fx(syn.weight).flatten()[:4].tolist() == pytest.approx([STEP, -3 * STEP, 0, 0])
        ev._update(0.5)  # 2 of 4 dropped: the two never on chip, although 0.001 is the smallest |w|
    mask = ev.masks["l"].flatten().tolist()
    assert mask[:4] == [True, True, False, False] and sum(mask) == 4
    assert ev.on_chip["l"].flatten().tolist() == [True, True] + [False] * 6  # grown ones: not yet on chip


@pytest.mark.timeout(300)
@pytest.mark.parametrize("method", ["esl", "rigl"])
def test_model_net_holds_exactly_the_synapses_on_chip(tmp_path, method):
    from esl_train import trainer

    cfg = TrainConfig(method=method, density=0.1, epochs=2, hidden=16, steps=4,
                      evolver={"update_interval": 5, "keep_quantum": True})
    r = trainer.Run(cfg, tmp_path, load_dataset("digits", 4))
    r.fit(progress=False, log=False)
    m = r.finish()
    on_chip = {k: int((c & r.evolver.masks[k]).sum()) for k, c in r.evolver.on_chip.items()}
    assert {layer["name"]: layer["synapses"] for layer in read_synapses(tmp_path / "model.net")} == on_chip
    assert m["density"] >= 0.9 * m["mask_density"]
