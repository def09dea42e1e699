"""GMP's cubic schedule, prune-after's single cut, and Deep R's sign and θ rule, on toy layers."""

import math

import torch

from esl_train.sparsity import DeepR, EvolverConfig, MaskPruner, make_evolver


def toy(cls, n=400, **cfg):
    torch.manual_seed(0)
    layer = torch.nn.Linear(n // 20, 20, bias=False)
    opt = torch.optim.SGD(layer.parameters(), lr=0.01)
    config = EvolverConfig(density=0.1, allocation="uniform", **cfg)
    return layer, opt, cls({"l": (layer, layer.weight)}, opt, config, total_steps=1000)


def test_gmp_follows_the_cubic_schedule_by_magnitude_to_the_final_count():
    layer, _, ev = toy(MaskPruner, prune="gradual", prune_start=0.1, evolve_until=0.75, update_interval=100)
    assert ev.masks["l"].all() and ev.explored["l"].all()  # a dense start
    counts = {}
    for step in range(1, 1001):
        before = ev.masks["l"].clone()
        with torch.no_grad():
            layer.weight.add_(0.001 * torch.randn_like(layer.weight))  # training moves the weights a little
        if ev.step():
            gone = before & ~ev.masks["l"]
            kept = ev.masks["l"]
            assert layer.weight[kept].abs().min() >= layer.weight.detach().abs()[gone].max() - 1e-6 or not gone.any()
            counts[step] = int(kept.sum())
        assert not (ev.masks["l"] & ~before).any()  # nothing regrows
        assert (layer.weight[~ev.masks["l"]] == 0).all()
    p = {s: min(max((s - 100) / 650, 0), 1) for s in counts}
    assert counts == {s: 40 + math.floor(360 * (1 - p[s]) ** 3) for s in counts}
    # at 100 the schedule still keeps every synapse; by 700 it has reached the final count (the cube is that flat)
    assert sorted(counts) == [200, 300, 400, 500, 600, 700] and counts[700] == 40


def test_prune_after_keeps_every_synapse_then_cuts_once_to_the_final_count():
    layer = torch.nn.Linear(20, 20, bias=False)
    config = EvolverConfig(density=0.1, allocation="uniform", prune="once", evolve_until=2 / 3)
    ev = make_evolver("prune-after", {"l": (layer, layer.weight)}, torch.optim.SGD(layer.parameters(), lr=0.01),
                      config, total_steps=1000)
    assert isinstance(ev, MaskPruner) and ev.masks["l"].all()
    updates = [step for step in range(1, 1001) if ev.step()]
    assert updates == [667] and int(ev.masks["l"].sum()) == 40


def test_deep_r_keeps_signs_drops_crossed_synapses_and_wakes_as_many_at_zero():
    layer, opt, ev = toy(DeepR, l1=0.5, update_interval=1)  # lr 0.01: the prior pulls each θ by 0.005
    mask = ev.masks["l"]
    active = mask.flatten().nonzero().squeeze(1)
    signs = ev.signs["l"].clone()
    assert torch.equal(torch.sign(layer.weight[mask]), signs[mask])  # active synapses keep their initial sign
    assert set(signs[~mask].unique().tolist()) <= {-1.0, 1.0}
    with torch.no_grad():  # the optimizer pushes two synapses across zero, against their sign
        flat = layer.weight.view(-1)
        flat[active] = signs.view(-1)[active] * (0.05 + torch.rand(len(active)))  # the others well away from it
        crossed = active[:2]
        flat[crossed] = -signs.view(-1)[crossed] * 0.01
        kept = active[2:]
        before = flat[kept].clone()
    assert ev.step()
    flat = layer.weight.detach().view(-1)
    assert not mask.view(-1)[crossed].any()  # dormant
    assert int(mask.sum()) == 40 and len(ev.history[-1]["swaps"]) == 1 and ev.history[-1]["swaps"]["l"] == 2
    woken = ev.grown["l"].view(-1).nonzero().squeeze(1)
    assert len(woken) == 2 and (flat[woken] == 0).all()
    theta = before * signs.view(-1)[kept] - 0.01 * 0.5  # the L1 prior: lr x l1 per step
    assert torch.allclose(flat[kept], signs.view(-1)[kept] * theta)
    assert torch.equal(ev.signs["l"], signs)  # signs never change
