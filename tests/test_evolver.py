"""The mask evolver's invariants, checked on random layer shapes, densities and schedules."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from esl_train.sparsity import EvolverConfig, MaskEvolver


class Toy(torch.nn.Module):
    def __init__(self, shapes):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(i, o, bias=False) for o, i in shapes)

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


def make(shapes, density, regrow="gradient", evolve=True, interval=2, steps=40, seed=0, optim="adam",
         drop_by="magnitude"):
    torch.manual_seed(seed)
    net = Toy(shapes)
    opt = (torch.optim.Adam(net.parameters(), lr=0.05) if optim == "adam"
           else torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9))
    cfg = EvolverConfig(density=density, regrow=regrow, evolve=evolve, update_interval=interval, drop_fraction=0.5,
                        evolve_until=0.9, drop_by=drop_by)
    weights = {f"l{i}": (m, m.weight) for i, m in enumerate(net.layers)}
    return net, opt, MaskEvolver(weights, opt, cfg, total_steps=steps, seed=seed)


def train_step(net, opt, ev, x):
    loss = net(x).pow(2).sum() + net(x).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return ev.step()


dims = st.integers(2, 24)


@settings(max_examples=25, deadline=None)
@given(shapes=st.lists(st.tuples(dims, dims), min_size=1, max_size=3).map(
           lambda s: [(o, s[i - 1][0] if i else i_) for i, (o, i_) in enumerate(s)]),
       density=st.floats(0.05, 1.0), regrow=st.sampled_from(["gradient", "random", "unexplored-active"]),
       drop_by=st.sampled_from(["magnitude", "contribution"]),
       optim=st.sampled_from(["adam", "sgd"]), seed=st.integers(0, 2**16))
def test_counts_constant_pruned_zero_no_immediate_regrowth(shapes, density, regrow, drop_by, optim, seed):
    net, opt, ev = make(shapes, density, regrow, seed=seed, optim=optim, drop_by=drop_by)
    counts = ev.active()
    x = torch.randn(8, shapes[0][1])
    updates = 0
    for _ in range(20):
        before = {k: m.clone() for k, m in ev.masks.items()}
        updated = train_step(net, opt, ev, x)
        updates += updated
        assert ev.active() == counts  # exactly constant, every layer, every step
        for k, w in ev.weights.items():
            assert torch.all(w[~ev.masks[k]] == 0)  # pruned weights are exactly zero after the optimizer step
            if updated:
                dropped = before[k] & ~ev.masks[k]
                assert not torch.any(dropped & ev.masks[k])
                grown = ev.masks[k] & ~before[k]
                assert not torch.any(grown & dropped)  # a synapse pruned in this update is not regrown in it
    full = all(c == w.numel() for c, w in zip(counts.values(), ev.weights.values()))
    assert updates > 0 or full


def test_masked_gradients_and_forward_use_only_active_synapses():
    net, opt, ev = make([(6, 5)], 0.3)
    w = ev.weights["l0"]
    with torch.no_grad():
        w.fill_(1.0)  # someone writes the weights directly: the forward hook re-applies the mask
    x = torch.randn(3, 5)
    net(x).sum().backward()
    assert torch.all(w[~ev.masks["l0"]] == 0)
    assert torch.all(w.grad[~ev.masks["l0"]] == 0)


def test_static_mask_never_changes():
    net, opt, ev = make([(10, 12), (4, 10)], 0.2, evolve=False)
    start = {k: m.clone() for k, m in ev.masks.items()}
    for _ in range(10):
        assert not train_step(net, opt, ev, torch.randn(4, 12))
    assert all(torch.equal(start[k], ev.masks[k]) for k in start)


def test_gradient_regrowth_picks_the_largest_dense_gradients():
    net, opt, ev = make([(20, 30)], 0.1, interval=1, steps=100)
    x = torch.randn(16, 30)
    loss = net(x).pow(2).sum() + net(x).sum()
    opt.zero_grad()
    loss.backward()
    dense_grad = ev._dense_grads["l0"].clone()
    inactive = ~ev.masks["l0"]
    before = ev.masks["l0"].clone()
    opt.step()
    ev.step()
    grown = ev.masks["l0"] & ~before
    n = int(grown.sum())
    assert n > 0
    best = torch.topk(torch.where(inactive, dense_grad.abs(), torch.tensor(-1.0)).flatten(), n).values
    assert torch.allclose(dense_grad.abs()[grown].sort().values, best.sort().values)


def test_cosine_schedule_decays_to_zero_at_evolve_until():
    _, _, ev = make([(4, 4)], 0.5, steps=100)
    assert ev.drop_fraction(0) == 0.5
    assert 0 < ev.drop_fraction(45) < 0.5
    assert ev.drop_fraction(90) == 0 and ev.drop_fraction(99) == 0


def test_state_dict_round_trip_restores_masks_and_schedule():
    net, opt, ev = make([(8, 9)], 0.3, regrow="random")
    for _ in range(5):
        train_step(net, opt, ev, torch.randn(2, 9))
    state = ev.state_dict()
    net2, opt2, ev2 = make([(8, 9)], 0.3, regrow="random", seed=1)
    ev2.load_state_dict(state)
    assert torch.equal(ev2.masks["l0"], ev.masks["l0"]) and ev2.step_count == ev.step_count
    assert torch.equal(torch.randperm(50, generator=ev.generator), torch.randperm(50, generator=ev2.generator))


def rigl_toy(grad, reset_state="new", fraction=1 / 3, drop_count="round"):
    """One layer of 6 synapses, 3 active (w = 0.5, -0.1, 0.3), Adam state set by hand, RigL's rule at `fraction`."""
    layer = torch.nn.Linear(6, 1, bias=False)
    opt = torch.optim.Adam(layer.parameters())
    cfg = EvolverConfig(density=0.5, regrow="gradient", drop_fraction=1 / 3, regrow_dropped=True,
                        reset_state=reset_state, schedule="constant", drop_count=drop_count)
    ev = MaskEvolver({"l": (layer, layer.weight)}, opt, cfg, total_steps=100)
    ev.masks["l"].copy_(torch.tensor([[True, True, True, False, False, False]]))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.1, 0.3, 0.0, 0.0, 0.0]]))
    opt.state[layer.weight] = {"step": torch.tensor(7.0), "exp_avg": torch.full((1, 6), 0.2),
                               "exp_avg_sq": torch.full((1, 6), 0.04)}
    ev._dense_grads["l"] = torch.tensor([grad])
    with torch.no_grad():
        ev._update(fraction)
    return ev.masks["l"][0].tolist(), layer.weight[0].tolist(), opt.state[layer.weight], ev.history[-1]["swaps"]["l"]


def test_rigl_regrows_a_just_dropped_synapse_with_its_weight_and_state():
    """The weakest active synapse (-0.1) is dropped, then it has the largest dense gradient of every connection
    inactive after the drop: RigL grows it again, as it was (weight, Adam moments), and nothing changes."""
    mask, w, state, swaps = rigl_toy([0.0, 0.9, 0.0, 0.2, 0.05, 0.0])
    assert mask == [True, True, True, False, False, False]
    assert w == pytest.approx([0.5, -0.1, 0.3, 0, 0, 0])
    assert torch.all(state["exp_avg"] == 0.2) and torch.all(state["exp_avg_sq"] == 0.04) and swaps == 0


@pytest.mark.parametrize("reset_state, zeroed", [("new", [3]), ("changed", [1, 3]), ("none", [])])
def test_rigl_grows_by_gradient_at_zero_and_resets_the_state_it_is_told_to(reset_state, zeroed):
    mask, w, state, swaps = rigl_toy([0.0, 0.1, 0.0, 0.9, 0.05, 0.0], reset_state)
    assert mask == [True, False, True, True, False, False] and swaps == 1  # -0.1 out, the largest |grad| in
    assert w == pytest.approx([0.5, 0, 0.3, 0, 0, 0])  # the new synapse starts at zero
    for key, value in (("exp_avg", 0.2), ("exp_avg_sq", 0.04)):
        expected = torch.full((1, 6), value)
        expected[0, zeroed] = 0
        assert torch.equal(state[key], expected)
    assert state["step"] == 7  # Adam's step count is global: it is not reset


@pytest.mark.parametrize("drop_count, mask", [("round", [True, True, False, True, False, False]),
                                              ("floor", [True, False, True, True, False, False])])
def test_drop_count_rounds_or_floors_fraction_times_active(drop_count, mask):
    """Half of 3 active synapses: round (1.5 -> 2) drops -0.1 and 0.3, floor (rigl-torch) drops -0.1 only; the
    largest gradients then regrow -0.1 (kept as it was) and the fourth synapse."""
    got, w, _, _ = rigl_toy([0.0, 0.1, 0.0, 0.9, 0.05, 0.0], fraction=0.5, drop_count=drop_count)
    assert got == mask
    assert w == pytest.approx([0.5, -0.1 if mask[1] else 0, 0.3 if mask[2] else 0, 0, 0, 0])


@pytest.mark.parametrize("refill, top_up", [("zero", False), ("quantum", False), ("late", False), ("zero", True)])
def test_on_chip_budget_counts_the_synapses_that_survive_quantization(refill, top_up):
    """Under budget="on-chip" a synapse whose quantized weight is zero is free: every update fills the layer's
    budget with synapses on chip (growing more at zero where they fall short, or at one step: on chip at once), a
    dense layer's quantized-away share goes to the others, and after the last step the masks hold exactly the
    synapses on chip, no more than the budget (with `top_up`: exactly the budget)."""
    torch.manual_seed(0)
    net = Toy([(40, 30), (4, 40)])  # the ER allocation at 0.4 makes the small output layer dense
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    step = 0.1
    for layer in net.layers:  # what SLAYER's 8-bit quantizer does, coarser
        layer.pre_hook_fx = lambda w: torch.round(w / step) * step
    cfg = EvolverConfig(density=0.4, regrow="random", update_interval=5, drop_fraction=0.3, evolve_until=0.5,
                        budget="on-chip", refill=refill, top_up=top_up)
    weights = {f"l{i}": (m, m.weight) for i, m in enumerate(net.layers)}
    ev = MaskEvolver(weights, opt, cfg, total_steps=60, seed=0)
    assert ev.counts["l1"] == 160  # dense
    budget = sum(ev.counts.values())

    def on_chip():
        live, _ = ev._on_chip()
        return {k: int(v.sum()) for k, v in live.items()}

    x = torch.randn(16, 30)
    for _ in range(60):
        updated = train_step(net, opt, ev, x)
        if updated and ev.step_count < 60:  # right after an update: l0's target, some of it just grown at zero
            live = on_chip()
            target = ev.counts["l0"] + ev.counts["l1"] - live["l1"]
            assert live["l0"] <= target <= live["l0"] + int(ev.grown["l0"].sum())
            if refill == "quantum" or refill == "late" and ev.history[-1]["drop_fraction"] == 0:
                assert live["l0"] == target  # every synapse grown to refill is on chip: the layer holds its target
            assert sum(ev.active().values()) > budget
    assert ev.history[-1]["drop_fraction"] == 0  # updates after evolution: they only refill the budget
    live = on_chip()
    assert ev.active() == live and sum(live.values()) <= budget  # the masks are what goes on chip
    if top_up:
        assert sum(live.values()) == budget
    for k, w in ev.weights.items():
        assert torch.all(w[~ev.masks[k]] == 0)


@pytest.mark.parametrize("refill, step, on_chip", [("zero", 10, False), ("quantum", 10, True), ("late", 10, False),
                                                   ("late", 80, True)])
def test_on_chip_refill_starts_at_zero_or_one_step_against_the_gradient(refill, step, on_chip):
    """0.02 is below the 0.1 step, so 2 of the 3 synapses are on chip and the update grows one more, by gradient (the
    fourth): at zero, or at -0.1 against its positive gradient, which puts it on chip; "late" does so only after
    evolution (step 80 of 100, evolution ends at 75)."""
    layer = torch.nn.Linear(6, 1, bias=False)
    layer.pre_hook_fx = lambda w: torch.round(w / 0.1) * 0.1
    cfg = EvolverConfig(density=0.5, regrow="gradient", budget="on-chip", refill=refill)
    ev = MaskEvolver({"l": (layer, layer.weight)}, torch.optim.Adam(layer.parameters()), cfg, total_steps=100)
    assert ev._quantum("l") == pytest.approx(0.1)
    ev.masks["l"].copy_(torch.tensor([[True, True, True, False, False, False]]))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, 0.02, 0.3, 0.0, 0.0, 0.0]]))
    ev._dense_grads["l"] = torch.tensor([[0.0, 0.0, 0.0, 0.9, -0.05, 0.0]])
    ev.step_count = step
    with torch.no_grad():
        ev._update(0.0)
    assert ev.masks["l"][0].tolist() == [True, True, True, True, False, False]
    assert layer.weight[0].tolist() == pytest.approx([0.5, 0.02, 0.3, -0.1 if on_chip else 0.0, 0.0, 0.0])
    assert int(ev._on_chip()[0]["l"].sum()) == (3 if on_chip else 2)


def test_top_up_rounds_the_largest_sub_quantum_synapses_up_to_one_step():
    """At the end 3 synapses are on chip of a target of 5: of the sub-quantum ones (0.04, -0.045, 0.01) the two largest
    become one step of their sign, the smallest leaves the mask with the synapse that never had a weight."""
    layer = torch.nn.Linear(8, 1, bias=False)
    layer.pre_hook_fx = lambda w: torch.round(w / 0.1) * 0.1
    cfg = EvolverConfig(density=5 / 8, budget="on-chip", top_up=True)
    ev = MaskEvolver({"l": (layer, layer.weight)}, torch.optim.Adam(layer.parameters()), cfg, total_steps=1)
    ev.masks["l"].copy_(torch.tensor([[True] * 7 + [False]]))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.3, 0.2, 0.04, -0.045, 0.01, 0.0, 0.0]]))
        ev._settle_on_chip()
    assert layer.weight[0].tolist() == pytest.approx([0.5, -0.3, 0.2, 0.1, -0.1, 0.0, 0.0, 0.0])
    assert ev.masks["l"][0].tolist() == [True] * 5 + [False] * 3


def test_top_up_leaves_a_dense_layer_off_chip_and_rounds_its_share_up_elsewhere():
    """A dense layer's sub-quantum weight (0.03) is not rounded up: it leaves the chip, its share moves to the sparse
    layer's target (5 + 1), which rounds up all three of its sub-quantum synapses; the total is exactly the budget."""
    layers = [torch.nn.Linear(8, 1, bias=False), torch.nn.Linear(1, 2, bias=False)]
    for layer in layers:
        layer.pre_hook_fx = lambda w: torch.round(w / 0.1) * 0.1
    cfg = EvolverConfig(density=0.7, budget="on-chip", top_up=True)
    params = [p for layer in layers for p in layer.parameters()]
    ev = MaskEvolver({f"l{i}": (m, m.weight) for i, m in enumerate(layers)}, torch.optim.Adam(params), cfg,
                     total_steps=1)
    ev.counts = {"l0": 5, "l1": 2}
    ev.masks["l0"].copy_(torch.tensor([[True] * 7 + [False]]))
    ev.masks["l1"].fill_(True)
    assert ev._full() == ["l1"]
    with torch.no_grad():
        layers[0].weight.copy_(torch.tensor([[0.5, -0.3, 0.2, 0.04, -0.045, 0.01, 0.0, 0.0]]))
        layers[1].weight.copy_(torch.tensor([[0.5], [0.03]]))
        ev._settle_on_chip()
    assert layers[0].weight[0].tolist() == pytest.approx([0.5, -0.3, 0.2, 0.1, -0.1, 0.1, 0.0, 0.0])
    assert layers[1].weight[:, 0].tolist() == pytest.approx([0.5, 0.0])
    assert ev.active() == {"l0": 6, "l1": 1}


def test_on_chip_budget_only_for_the_methods_that_swap():
    from esl_train.config import TrainConfig

    with pytest.raises(ValueError, match="--budget on-chip is for the methods that swap"):
        TrainConfig(method="gmp", evolver={"budget": "on-chip"}).validate()
    with pytest.raises(ValueError, match="unknown --budget"):
        TrainConfig(evolver={"budget": "chip"}).validate()
    with pytest.raises(ValueError, match="add --budget on-chip"):
        TrainConfig(evolver={"refill": "quantum"}).validate()
    with pytest.raises(ValueError, match="--top-up rounds up"):
        TrainConfig(evolver={"top_up": True}).validate()
    with pytest.raises(ValueError, match="unknown refill"):
        TrainConfig(evolver={"budget": "on-chip", "refill": "one"}).validate()


def test_drop_per_sign_takes_the_same_share_of_each_sign():
    """SET's reference code drops the smallest |w| of the positive and of the negative weights separately: here the
    two smallest by |w| overall are both positive, but per sign one of each goes (3 positive, 3 negative, drop 2)."""
    from esl_train.sparsity.rules import drop_weakest

    w = torch.tensor([0.5, 0.1, 0.05, -0.2, -0.3, -0.4, 0.01])
    mask = torch.tensor([True] * 6 + [False])  # the inactive 0.01 is never a choice
    assert drop_weakest(w, mask, 2).tolist() == [False, True, True, False, False, False, False]
    assert drop_weakest(w, mask, 2, per_sign=True).tolist() == [False, False, True, True, False, False, False]
