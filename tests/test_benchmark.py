"""The benchmark's building blocks: initialisation, exploration, the ESL rule options, the benchmark set's framing
and split, and the resumable sweep."""

import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from esl_bench.compare import ci95, summarize
from esl_train.data import digits_bench
from esl_train.data.digits_dvs import EVENT_DTYPE
from esl_train.data.framing import events_to_spikes
from esl_train.sparsity import EvolverConfig, MaskEvolver
from esl_train.sparsity.rules import drop_weakest, grow

from .test_evolver import Toy, make, train_step


@pytest.mark.parametrize("rescale", [False, True])
def test_initial_weights_are_only_masked_unless_rescale_is_asked_for(rescale):
    torch.manual_seed(0)
    net = Toy([(40, 50)])
    before = net.layers[0].weight.detach().clone()
    opt = torch.optim.Adam(net.parameters())
    cfg = EvolverConfig(density=0.1, rescale_init=rescale)
    ev = MaskEvolver({"l0": (net.layers[0], net.layers[0].weight)}, opt, cfg, total_steps=10)
    mask = ev.masks["l0"]
    w = net.layers[0].weight.detach()
    factor = 1 / math.sqrt(int(mask.sum()) / mask.numel()) if rescale else 1.0
    assert torch.allclose(w[mask], before[mask] * factor)
    assert torch.all(w[~mask] == 0)


def test_default_is_no_rescale():
    assert EvolverConfig(density=0.1).rescale_init is False


def test_esl_drop_fraction_is_its_preset_unless_told_otherwise():
    from esl_train.config import TrainConfig

    assert TrainConfig(method="esl", density=0.1).evolver_settings()["drop_fraction"] == 0.3
    assert TrainConfig(method="esl", density=0.01).evolver_settings()["drop_fraction"] == 0.3
    assert TrainConfig(method="esl", density=0.01, evolver={"drop_fraction": 0.2}).evolver_settings()[
        "drop_fraction"] == 0.2
    assert TrainConfig(method="rigl", density=0.01).evolver_settings()["drop_fraction"] == 0.3  # its own preset


@pytest.mark.parametrize("density", [0.2, 0.05, 0.01])
def test_esl_is_activity_aware_at_every_density_and_sparse_baselines_are_not(density):
    from esl_train.config import TrainConfig

    esl = TrainConfig(method="esl", density=density).evolver_settings()
    assert (esl["drop_by"], esl["regrow"], esl["protect_new"]) == ("contribution", "unexplored-active", True)
    for method in ("set", "rigl"):  # the published rules stay as published: magnitude prune
        assert TrainConfig(method=method, density=density).evolver_settings().get("drop_by", "magnitude") == "magnitude"


@pytest.mark.parametrize("regrow", ["random", "gradient", "unexplored", "unexplored-gradient", "unexplored-active"])
def test_exploration_is_the_union_of_every_mask_seen(regrow):
    net, opt, ev = make([(12, 10)], 0.2, regrow=regrow, interval=1, steps=40)
    seen = ev.masks["l0"].clone()
    x = torch.randn(8, 10)
    rates = []
    for _ in range(15):
        train_step(net, opt, ev, x)
        seen |= ev.masks["l0"]
        assert torch.equal(ev.explored["l0"], seen)
        rates.append(ev.exploration()["l0"])
    assert rates == sorted(rates) and rates[-1] > 0.2  # it only grows, and evolution really explored


def test_unexplored_regrowth_visits_new_synapses_before_any_old_one():
    net, opt, ev = make([(20, 20)], 0.1, regrow="unexplored", interval=1, steps=100)
    x = torch.randn(8, 20)
    for _ in range(10):
        before = int(ev.explored["l0"].sum())
        old = ev.masks["l0"].clone()
        if train_step(net, opt, ev, x):
            grown = int((ev.masks["l0"] & ~old).sum())
            assert int(ev.explored["l0"].sum()) == min(before + grown, 400)  # every grown synapse was new


def test_unexplored_rule_falls_back_to_explored_candidates_when_none_are_left():
    g = torch.Generator().manual_seed(0)
    candidates = torch.tensor([True, True, True, False])
    unexplored = torch.tensor([False, True, False, False])
    out = grow("unexplored", candidates, 2, None, g, unexplored)
    assert out[1] and int(out.sum()) == 2 and not out[3]


def test_unexplored_gradient_rule_takes_fresh_synapses_by_gradient_then_the_rest_by_gradient():
    g = torch.Generator().manual_seed(0)
    candidates = torch.tensor([True, True, True, True, True, False])
    unexplored = torch.tensor([True, True, False, False, True, True])
    grad = torch.tensor([0.1, 0.5, 9.0, 3.0, 0.2, 7.0])
    # the fresh candidates are 0, 1, 4: the two with the largest gradient, though explored ones have larger ones
    assert grow("unexplored-gradient", candidates, 2, grad, g, unexplored).tolist() == [
        False, True, False, False, True, False]
    # four asked for: all three fresh, then the explored one with the larger gradient (2, not 3), never 5
    assert grow("unexplored-gradient", candidates, 4, grad, g, unexplored).tolist() == [
        True, True, True, False, True, False]


def test_unexplored_active_rule_takes_fresh_synapses_on_spiking_inputs_first():
    g = torch.Generator().manual_seed(0)
    candidates = torch.tensor([[True, True, True, True, False]])
    unexplored = torch.tensor([[True, True, False, True, True]])
    rate = torch.tensor([[0.0, 4.0, 9.0, 2.0, 7.0]])  # spikes of each input; input 0 is silent
    for _ in range(20):  # whatever the draw: the fresh candidates on spiking inputs (1, 3), never the silent one
        assert grow("unexplored-active", candidates, 2, None, g, unexplored, rate).tolist() == [
            [False, True, False, True, False]]
    # three asked for: the fresh silent one comes before the explored one (fresh first, silent last within each)
    assert grow("unexplored-active", candidates, 3, None, g, unexplored, rate).tolist() == [
        [True, True, False, True, False]]


def test_unexplored_active_rule_draws_in_proportion_to_input_spikes():
    g = torch.Generator().manual_seed(0)
    candidates = torch.ones(1, 3, dtype=torch.bool)
    rate = torch.tensor([[1.0, 3.0, 0.0]])
    picks = torch.stack([grow("unexplored-active", candidates, 1, None, g, candidates, rate)[0]
                         for _ in range(2000)]).float().mean(0)
    assert abs(picks[1].item() - 0.75) < 0.04 and picks[2].item() == 0  # 3:1, and never the silent input


def test_contribution_drop_prunes_strong_synapses_on_silent_inputs_first():
    w = torch.tensor([[0.9, 0.2, 0.5, 0.05]])
    mask = torch.tensor([[True, True, True, False]])
    rate = torch.tensor([[0.0, 10.0, 1.0, 10.0]])  # contributions 0, 2, 0.5 (inactive: never dropped)
    assert drop_weakest(w, mask, 1).tolist() == [[False, True, False, False]]  # by magnitude: the 0.2
    assert drop_weakest(w, mask, 1, rate=rate).tolist() == [[True, False, False, False]]
    assert drop_weakest(w, mask, 2, rate=rate).tolist() == [[True, False, True, False]]


def test_evolver_counts_input_spikes_of_training_steps_only_and_restarts_after_each_update():
    torch.manual_seed(0)
    net = Toy([(6, 5)])
    opt = torch.optim.Adam(net.parameters())
    cfg = EvolverConfig(density=0.5, drop_by="contribution", regrow="unexplored-active", update_interval=3,
                        drop_fraction=0.5, evolve_until=1.0)
    ev = MaskEvolver({"l0": (net.layers[0], net.layers[0].weight)}, opt, cfg, total_steps=30)
    x = torch.randint(0, 2, (4, 5)).float()
    net.eval()
    net(x)  # evaluation data must never shape a mask
    assert torch.all(ev.input_spikes["l0"] == 0)
    net.train()
    train_step(net, opt, ev, x)  # two forwards per step (see train_step)
    assert torch.equal(ev.input_spikes["l0"], 2 * x.sum(0))
    state = ev.state_dict()
    ev2 = MaskEvolver({"l0": (Toy([(6, 5)]).layers[0], torch.nn.Parameter(torch.zeros(6, 5)))}, opt, cfg, 30)
    ev2.load_state_dict(state)
    assert torch.equal(ev2.input_spikes["l0"], ev.input_spikes["l0"])  # a resume carries the count
    train_step(net, opt, ev, x)
    assert train_step(net, opt, ev, x)  # step 3: an update, and the count starts again
    assert torch.all(ev.input_spikes["l0"] == 0)


def test_magnitude_rules_count_no_input_spikes():
    net, opt, ev = make([(6, 5)], 0.5, regrow="unexplored")
    train_step(net, opt, ev, torch.ones(4, 5))
    assert torch.all(ev.input_spikes["l0"] == 0)


def test_protected_synapses_are_dropped_last():
    w = torch.tensor([0.1, 0.2, 5.0, 6.0, 0.0])
    mask = torch.tensor([True, True, True, True, False])
    protected = torch.tensor([True, False, False, False, False])
    assert drop_weakest(w, mask, 1, protected).tolist() == [False, True, False, False, False]
    assert drop_weakest(w, mask, 4, protected).tolist() == [True, True, True, True, False]


def test_nan_weights_never_move_the_choice_onto_inactive_synapses():
    w = torch.tensor([float("nan"), 1.0, float("inf"), float("nan"), 0.5])
    mask = torch.tensor([False, True, True, False, True])
    dropped = drop_weakest(w, mask, 2)
    assert not torch.any(dropped & ~mask) and int(dropped.sum()) == 2
    # scored by contribution, an inf weight times a large spike count must still rank below the inactive synapses
    two = torch.tensor([True, False, False, True])
    for wc, mc in ((w, mask), (torch.tensor([0.3, 0.0, 0.0, float("inf")]), two),
                   (torch.tensor([float("inf"), 0.0, 0.0, 0.3]), two)):
        assert torch.equal(drop_weakest(wc, mc, int(mc.sum()), rate=torch.full(wc.shape, 1e9)), mc)
    grad = torch.tensor([float("nan"), 0.0, 0.0, 2.0, 0.0])
    grown = grow("gradient", ~mask, 1, grad, torch.Generator().manual_seed(0))
    assert grown.tolist() == [False, False, False, True, False]


def test_protect_new_keeps_just_grown_synapses_for_one_update():
    net, opt, ev = make([(16, 16)], 0.2, regrow="random", interval=1, steps=100)
    ev.config.protect_new = True
    x = torch.randn(8, 16)
    last_grown = None
    for _ in range(6):
        old = ev.masks["l0"].clone()
        if train_step(net, opt, ev, x):
            dropped = old & ~ev.masks["l0"]
            if last_grown is not None:
                assert not torch.any(dropped & last_grown)
            last_grown = ev.masks["l0"] & ~old


def test_bench_framing_equals_tonic_toframe_per_recording():
    rng = np.random.default_rng(0)
    counts = [0, 40, 7]
    parts = []
    for c in counts:
        ev = np.zeros(c, EVENT_DTYPE)
        ev["x"], ev["y"], ev["p"] = rng.integers(0, 24, c), rng.integers(0, 24, c), rng.integers(0, 2, c)
        ev["t"] = np.sort(rng.integers(0, 300_000, c))
        parts.append(ev)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    spikes = digits_bench.frame_all(np.concatenate(parts), offsets, 24, 10, 300_000)
    for i, ev in enumerate(parts):
        assert np.array_equal(spikes[i], events_to_spikes(ev, (24, 24, 2), 10, 300_000))


def test_bench_split_holds_disjoint_source_images():
    labels = np.repeat(np.arange(10), 30)
    split = digits_bench.split_sources(labels, digits_bench.BenchParams())
    assert set(np.unique(split)) == {0, 1, 2}
    assert (split == 2).mean() == pytest.approx(0.2, abs=0.01)
    for s in range(3):  # every class in every split
        assert len(np.unique(labels[split == s])) == 10


def test_ci95_and_paired_differences():
    mean, half = ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)
    runs = [{"label": lb, "method": lb, "density": d, "seed": s, "test_accuracy": a, "explored": 0.1,
             "turnover_per_update": 0, "synops": 1, "file_bytes": 1, "file_density": d, "wall_seconds": 1,
             "evolver_share": 0}
            for lb, d, accs in (("dense", 1.0, [0.90, 0.80, 0.85]), ("static", 0.1, [0.89, 0.79, 0.84]),
                                ("esl", 0.1, [0.90, 0.81, 0.86]))
            for s, a in enumerate(accs)]
    rows = {r["label"]: r for r in summarize(runs, "test")}
    # seed spread is 5 points, but the paired differences are constant: their CI is (almost) zero
    assert rows["static"]["vs_dense"][0] == pytest.approx(-1.0) and rows["static"]["vs_dense"][1] < 1e-9
    assert rows["esl"]["vs_static"][0] == pytest.approx(5 / 3)
    assert rows["esl"]["ci"] > 4


def test_targets_are_judged_on_the_paired_interval():
    from esl_bench.compare import targets

    def runs(label, density, accs):
        return [{"label": label, "density": density, "seed": s, "test_accuracy": a} for s, a in enumerate(accs)]

    dense = runs("dense", 1.0, [0.90, 0.80, 0.85])
    lines = targets(dense + runs("esl", 0.1, [0.899, 0.799, 0.849])  # -0.1 on every seed: met
                    + runs("esl", 0.01, [0.885, 0.775, 0.835]))  # -1.83 ± 1.43: met on the mean only
    assert lines[0].startswith("esl at 0.1 loses <= 0.3 points to dense: met (-0.10 ± 0.00")
    assert lines[1].startswith("resolution at 0.1 (paired CI half-width <= 0.5 points): met")
    assert lines[2].startswith("esl at 0.01 loses <= 2.0 points to dense: met on the mean only")
    lines = targets(dense + runs("esl", 0.01, [0.87, 0.77, 0.82]))  # -3 on every seed
    assert lines[0].startswith("esl at 0.01 loses <= 2.0 points to dense: missed (-3.00")


def test_a_setting_added_later_keeps_the_runs_stored_before_it_at_its_default():
    from esl_bench.compare import run_key
    from esl_train.config import TrainConfig

    key = lambda **ev: run_key(TrainConfig(method="set", density=0.1, evolver=ev), 1)  # noqa: E731
    assert key(drop_by="magnitude") == key()  # the key of every run trained before --drop-by existed
    assert key(drop_by="contribution") != key()
    # runs stored before --kernels existed ran lava-dl's code: they are the slayer runs; ours are new runs
    stored = Path(__file__).parent.parent / "docs" / "compare_runs"
    longer = dict(dataset="digits-bench", density=1.0, epochs=15, batch_size=128, lr=2e-3, lr_schedule="cosine", seed=0)
    assert (stored / f"{run_key(TrainConfig(method='dense', **longer, kernels='slayer'), 1)}.json").exists()
    assert (run_key(TrainConfig(method="dense", **longer, kernels="slayer"), 1)
            != run_key(TrainConfig(method="dense", **longer), 1))
    # ESL's never-explored magnitude rule stays addressable as a variant, with the keys of its stored runs
    old = TrainConfig(method="esl", density=0.1, evolver={"regrow": "unexplored", "drop_by": "magnitude"})
    assert run_key(old, 1) != run_key(TrainConfig(method="esl", density=0.1), 1)


@pytest.mark.timeout(400)
def test_sweep_stores_each_run_and_resumes(tmp_path):
    base = [sys.executable, "-m", "esl_bench.compare", "--quick", "--out", str(tmp_path), "--jobs", "2"]
    p = subprocess.run(base + ["--methods", "static"], capture_output=True, text=True, timeout=380)
    assert p.returncode == 0, p.stderr
    assert "2 runs: 0 stored, 2 to do" in p.stdout
    assert len(list((tmp_path / "compare_runs").glob("*.json"))) == 2
    p = subprocess.run(base + ["--methods", "static,esl"], capture_output=True, text=True, timeout=380)
    assert p.returncode == 0, p.stderr
    assert "3 runs: 2 stored, 1 to do" in p.stdout  # the two finished runs are reused
    data = json.loads((tmp_path / "compare.json").read_text())
    assert {(r["label"], r["density"]) for r in data["runs"]} == {("dense", 1.0), ("static", 0.1), ("esl", 0.1)}
    for r in data["runs"]:
        for key in ("method", "density", "seed", "test_accuracy", "test_samples", "dataset", "arch", "epochs",
                    "history", "explored"):
            assert key in r
        assert r["test_samples"] == 360 and 0 <= r["test_accuracy"] <= 1
    md = (tmp_path / "benchmarks.md").read_text()
    assert "| esl | 0.1 | 1 |" in md and "All 3 runs finished." in md
    assert (tmp_path / "compare_accuracy.png").exists() and (tmp_path / "compare_training.png").exists()
    # --render-only: the table of a larger sweep from what is stored, nothing trained
    p = subprocess.run(base + ["--methods", "static,esl,set", "--render-only"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and "4 runs: 3 stored, 1 to do" in p.stdout, p.stderr
    assert len(list((tmp_path / "compare_runs").glob("*.json"))) == 3
    md = (tmp_path / "benchmarks.md").read_text()
    assert "**Partial: 3 of 4 runs finished**" in md and "--render-only" not in md
    assert "render_only" not in json.loads((tmp_path / "compare.json").read_text())["settings"]
    assert not any((tmp_path / "compare_runs" / "partial").iterdir())  # finished runs leave no folder behind


@pytest.mark.timeout(300)
def test_a_run_stopped_mid_sweep_goes_on_from_its_last_epoch_as_if_never_stopped(tmp_path, monkeypatch, capsys):
    from esl_bench import compare
    from esl_train import trainer

    job = compare.jobs(compare.settings(["--quick", "--methods", "esl"]))[1]
    save = trainer.Run.save_checkpoint

    def stop_after_first_epoch(run):
        save(run)
        raise KeyboardInterrupt  # Ctrl-C, or the session's end, after the checkpoint of epoch 1

    monkeypatch.setattr(trainer.Run, "save_checkpoint", stop_after_first_epoch)
    folder = tmp_path / "partial" / job["key"]
    with pytest.raises(KeyboardInterrupt):
        compare._train_and_measure({**job, "folder": str(folder)})
    assert (folder / trainer.CHECKPOINT).is_file() and not (folder / "model.net").exists()
    monkeypatch.setattr(trainer.Run, "save_checkpoint", save)
    resumed = compare._train_and_measure({**job, "folder": str(folder)})
    whole = compare._train_and_measure({**job, "folder": str(tmp_path / "whole")})
    assert resumed["resumed_at_epoch"] == 1 and whole["resumed_at_epoch"] == 0
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    for key in ("test_accuracy", "synapses", "file_density", "synops", "explored", "train_flops"):
        assert resumed[key] == whole[key], key
    same = ("train_loss", "test_accuracy", "swapped")
    for a, b in zip(resumed["history"], whole["history"]):
        assert [a[k] for k in same] == [b[k] for k in same]
    # a damaged checkpoint (a disk that filled up, a copy cut short) is set aside and the run starts again
    stopped = tmp_path / "damaged"
    stopped.mkdir()
    (stopped / trainer.CHECKPOINT).write_bytes(b"not a checkpoint")
    again = compare._train_and_measure({**job, "folder": str(stopped)})
    err = capsys.readouterr().err
    assert "checkpoint.pt is damaged or not this run's checkpoint (UnpicklingError); set aside" in err
    assert again["resumed_at_epoch"] == 0 and again["test_accuracy"] == whole["test_accuracy"]
    assert (stopped / "checkpoint.pt.damaged").read_bytes() == b"not a checkpoint"


def test_partial_sweep_renders_a_table_marked_partial(tmp_path):
    from esl_bench import compare

    args = compare.settings(["--quick", "--out", str(tmp_path), "--methods", "static"])
    todo = compare.jobs(args)
    run = {"key": todo[0]["key"], "label": "dense", "method": "dense", "density": 1.0, "seed": 0,
           "test_accuracy": 0.5, "explored": 1.0, "turnover_per_update": 0.0, "synops": 10, "file_bytes": 5,
           "file_density": 1.0,
           "wall_seconds": 1.0, "evolver_share": 0.0, "test_samples": 360,
           "history": [{"epoch": 1, "test_accuracy": 0.5, "explored": {"layer1": 1.0}}]}
    compare.render(args, todo, [run], 1.0)
    assert "**Partial: 1 of 2 runs finished**" in (tmp_path / "benchmarks.md").read_text()


def test_rendered_command_says_each_setting_once_and_reproduces_the_sweep():
    """bench/ablation.py passes its defaults and then the user's overrides: the table's command must be the one
    sweep they amount to, each option once, and parsing it must give the same settings."""
    import shlex

    from esl_bench import compare

    argv = ["--out", "/somewhere", "--name", "ablation", "--split", "val", "--densities", "0.05", "--seeds", "0,1,2",
            "--variants", '{"a b": {"method": "esl", "evolver": {"drop_fraction": 0.3}}}',
            "--name", "ablation-low", "--densities", "0.02,0.01", "--lr", "0.001"]
    line = compare.command(compare.settings(argv))
    words = shlex.split(line)
    assert words[:3] == ["python", "-m", "esl_bench.compare"] and "--out" not in words
    assert words.count("--name") == 1 and words.count("--densities") == 1 and "--epochs" not in words
    again, original = vars(compare.settings(words[3:])), vars(compare.settings(argv))
    assert {k: v for k, v in again.items() if k != "out"} == {k: v for k, v in original.items() if k != "out"}
    assert compare.command(compare.settings(["--quick"])) == "python -m esl_bench.compare --quick"


def fake_compare(trained, *argv):
    """compare in its own process with a fake training (tests/fake_compare.py); returns (exit code, stderr)."""
    p = subprocess.run([sys.executable, "-m", "tests.fake_compare", str(trained), *argv], capture_output=True,
                       text=True, timeout=240, cwd=Path(__file__).parent.parent)
    return p.returncode, p.stderr


def trained_keys(trained):
    return sorted(p.name.split(".")[0] for p in trained.iterdir())  # one file per training


def test_two_shards_in_one_folder_train_each_run_exactly_once(tmp_path):
    """--shard K/N: two invocations sharing the store train disjoint shares that together cover the sweep, and each
    renders the table from every stored run (its own and the other shard's)."""
    from esl_bench import compare

    trained = tmp_path / "trained"
    argv = ["--quick", "--out", str(tmp_path), "--seeds", "0,1,2", "--jobs", "2", "--densities", "0.1,0.05"]
    todo = compare.jobs(compare.settings(argv))
    assert fake_compare(trained, *argv, "--shard", "0/2")[0] == 0
    assert 0 < len(trained_keys(trained)) < len(todo)
    assert fake_compare(trained, *argv, "--shard", "1/2")[0] == 0
    assert trained_keys(trained) == sorted(j["key"] for j in todo)  # every run trained, none twice
    assert f"All {len(todo)} runs finished." in (tmp_path / "benchmarks.md").read_text()
    assert fake_compare(trained, *argv, "--shard", "0/2")[0] == 0  # nothing left to do
    assert trained_keys(trained) == sorted(j["key"] for j in todo)
    assert "--shard" not in compare.command(compare.settings([*argv, "--shard", "1/2"]))


@pytest.mark.parametrize("bad", [["--shard", "2/2"], ["--shard", "1"], ["--shard", "a/b"], ["--shard", "-1/3"],
                                 ["--seeds", "a"], ["--densities", "0.1,x"], ["--variants", "[1]"],
                                 ["--variants", "{"]])
def test_a_bad_option_is_one_usage_line(bad, capsys):
    from esl_bench import compare

    assert compare.main(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and bad[0] in err[0], err


def test_damaged_stored_runs_are_named_set_aside_and_trained_again(tmp_path):
    from esl_bench import compare

    trained = tmp_path / "trained"
    argv = ["--quick", "--out", str(tmp_path), "--methods", "static,set,rigl,esl", "--jobs", "1"]
    assert fake_compare(trained, *argv)[0] == 0
    damaged = {'{"key": "trunc': "truncated", "": "empty", '{"key": "0000000000000000"}': "another run's",
               "[1, 2]": "not a record"}
    victims = {j["key"]: content for j, content in zip(compare.jobs(compare.settings(argv))[1:], damaged)}
    for key, content in victims.items():
        (tmp_path / "compare_runs" / f"{key}.json").write_text(content)
    code, err = fake_compare(trained, *argv, "--render-only")  # renders what is whole, names each damaged file
    assert code == 0 and "Traceback" not in err and err.count("is damaged") == len(victims)
    for key, content in victims.items():
        path = tmp_path / "compare_runs" / f"{key}.json"
        assert f"stored run {path} is damaged" in err and not path.exists()
        assert (tmp_path / "compare_runs" / f"{key}.json.damaged").read_text() == content
    assert fake_compare(trained, *argv)[0] == 0
    assert all(trained_keys(trained).count(key) == 2 for key in victims)  # trained again, the rest kept
    assert trained_keys(trained).count(compare.jobs(compare.settings(argv))[0]["key"]) == 1
    assert all(json.loads((tmp_path / "compare_runs" / f"{key}.json").read_text())["key"] == key for key in victims)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_sweep_with_two_jobs_says_one_line(tmp_path, monkeypatch, sig):
    """Ctrl-C reaches the whole process group: the pool's workers must not print a traceback each."""
    from .test_signals import start_and_signal

    trained = tmp_path / "trained"
    monkeypatch.setenv("FAKE_TRAIN_SECONDS", "30")
    cmd = [sys.executable, "-m", "tests.fake_compare", str(trained), "--quick", "--methods", "static,esl",
           "--seeds", "0,1", "--out", str(tmp_path / "out"), "--jobs", "2"]
    monkeypatch.chdir(Path(__file__).parent.parent)
    code, err = start_and_signal(cmd, lambda pid: trained.is_dir() and len(list(trained.iterdir())) >= 2, sig)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 130 and len(lines) == 1 and lines[0].startswith("interrupted: 0 of"), err


@pytest.mark.timeout(120)
def test_a_sweep_stopped_while_a_worker_waits_for_work_ends(tmp_path, monkeypatch):
    """A worker that waits for work when a scheduler's SIGTERM reaches the group dies holding the queue's lock:
    the sweep must end all the same (multiprocessing.Pool's terminate() waits for that lock forever)."""
    from .test_signals import start_and_signal

    monkeypatch.setenv("FAKE_TRAIN_SECONDS", "30")
    monkeypatch.setenv("FAKE_SLOW", "static")  # dense and esl finish at once; one worker then has nothing to do
    store = tmp_path / "out" / "compare_runs"
    cmd = [sys.executable, "-m", "tests.fake_compare", str(tmp_path / "trained"), "--quick", "--methods",
           "static,esl", "--out", str(tmp_path / "out"), "--jobs", "2"]
    monkeypatch.chdir(Path(__file__).parent.parent)
    code, err = start_and_signal(cmd, lambda pid: store.is_dir() and len(list(store.glob("*.json"))) == 2,
                                 signal.SIGTERM)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 130 and lines == ["interrupted: 2 of 3 runs stored; run the same command to continue"], err


@pytest.mark.timeout(120)
def test_a_worker_killed_by_the_system_ends_the_sweep_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KILLED", "static")
    code, err = fake_compare(tmp_path / "trained", "--quick", "--methods", "static,esl", "--out",
                             str(tmp_path / "out"), "--jobs", "2")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: a worker process died"), err
    assert lines[0].endswith("runs stored; run the same command to continue")
