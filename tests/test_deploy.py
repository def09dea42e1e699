"""esl_deploy: Lava really runs the exported file and its spikes equal the PyTorch twin's, step by step."""

import json
import multiprocessing
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from esl_deploy import accounting, budget, hw, lava_runner, netx_file
from esl_deploy.twin import build_twin
from esl_train.errors import UsageError
from esl_train.export import export_netx

from .helpers import fake_nmnist, masked_net, tiny_mlp_file

lava_timeout = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory):
    return tiny_mlp_file(tmp_path_factory.mktemp("mlp"))


def inputs(digits, n):
    return torch.stack([digits.test[i][0] for i in range(n)])


def test_twin_is_the_trained_network(mlp_file, digits):
    path, net = mlp_file
    twin = build_twin(netx_file.read(path))
    x = inputs(digits, 4)
    net.eval()
    with torch.no_grad():
        assert torch.equal(twin(x), net(x))


@lava_timeout
@pytest.mark.parametrize("sparse", [True, False])
def test_lava_rasters_equal_the_twin_mlp(mlp_file, digits, sparse):
    path, _ = mlp_file
    nf = netx_file.read(path)
    x = inputs(digits, 6)
    res = lava_runner.run(str(path), nf, x.numpy().astype(bool), sparse=sparse, chunk=4, progress=False)
    with torch.no_grad():
        _, twin = build_twin(nf)(x, record=True)
    assert len(res.layers) == len(twin) == 2
    for lava, torch_spikes in zip(res.layers, twin):
        assert lava.shape == torch_spikes.shape
        assert lava.sum() > 0  # not a trivially silent network
        assert np.array_equal(lava, torch_spikes.numpy() > 0)
    assert not multiprocessing.active_children()  # Lava's workers are gone


@lava_timeout
@pytest.mark.parametrize("tile", [1, 2])
def test_lava_rasters_equal_the_twin_conv(tmp_path, digits, tile):
    """One copy runs netx's conv layers; tiled copies run them unrolled into sparse matrices: the same rasters."""
    net, _ = masked_net("conv", 0.3)
    export_netx(net, tmp_path / "model.net", {"input_shape": [2, 24, 24]})
    nf = netx_file.read(tmp_path / "model.net")
    x = inputs(digits, 3)  # with 2 copies the last slot is half empty
    res = lava_runner.run(str(tmp_path / "model.net"), nf, x.numpy().astype(bool), progress=False, tile=tile)
    with torch.no_grad():
        _, twin = build_twin(nf)(x, record=True)
    assert [l.shape[1:-1] for l in res.layers] == [(8, 12, 12), (16, 6, 6), (10,)]
    for lava, torch_spikes in zip(res.layers, twin):
        assert lava.sum() > 0 and np.array_equal(lava, torch_spikes.numpy().reshape(lava.shape) > 0)
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("c_in, c_out, kernel, stride, padding, dilation, groups, size", [
    (2, 8, (3, 3), (2, 2), (1, 1), (1, 1), 1, (24, 24)),  # the conv net's layers
    (8, 16, (3, 3), (2, 2), (1, 1), (1, 1), 1, (12, 12)),
    (4, 6, (3, 5), (1, 2), (0, 2), (2, 1), 2, (10, 13)),  # every geometry option, unequal along H and W
])
def test_unrolled_conv_is_the_convolution(c_in, c_out, kernel, stride, padding, dilation, groups, size):
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (c_out, c_in // groups, *kernel)) * (rng.random((c_out, c_in // groups, *kernel)) < .3)
    x = rng.random((c_in, *size)) < 0.3
    conv = torch.nn.functional.conv2d(torch.from_numpy(x[None]).double(), torch.from_numpy(w).double(),
                                      stride=stride, padding=padding, dilation=dilation, groups=groups)[0]
    geometry = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    matrix = lava_runner.unroll(netx_file.Layer(1, "conv", tuple(conv.shape), w, geometry), (c_in, *size))
    assert np.array_equal(matrix @ x.reshape(-1).astype(np.int64), conv.numpy().reshape(-1))
    assert np.all(matrix.data != 0)  # the synapses alone


@lava_timeout
def test_lava_workers_stopped_when_the_run_fails(mlp_file, digits, monkeypatch):
    path, _ = mlp_file

    class FailingBar:  # fails right after Lava's first run() call, with the runtime up
        def __init__(self, *a, **k):
            pass

        def update(self, n):
            raise RuntimeError("boom")

        def close(self):
            pass

    monkeypatch.setattr(lava_runner, "tqdm", FailingBar)
    with pytest.raises(RuntimeError, match="boom"):
        lava_runner.run(str(path), netx_file.read(path), inputs(digits, 2).numpy().astype(bool), progress=False)
    assert not multiprocessing.active_children()


def test_synops_count_spikes_times_surviving_fan_out(tmp_path):
    rng = np.random.default_rng(0)
    for arch in ("mlp", "conv"):
        net, _ = masked_net(arch, 0.3, hidden=12)
        export_netx(net, tmp_path / f"{arch}.net")
        nf = netx_file.read(tmp_path / f"{arch}.net")
        x = rng.random((3, 2, 24, 24, 5)) < 0.1
        layers = [rng.random((3, *l.shape, 5)) < 0.2 for l in nf.weighted]
        m = accounting.measure(nf, x, layers)
        first = nf.weighted[0]
        if arch == "mlp":  # brute force: each input spike reaches every non-zero weight in its column
            expected = sum(int((first.weight[:, j] != 0).sum()) * x.reshape(3, -1, 5)[:, j].sum()
                           for j in range(first.weight.shape[1])) / 3
        else:  # brute force: one conv of the spike count map with the binary kernel
            counts = torch.from_numpy(x.sum(axis=(0, 4)).astype(float))[None]
            kernel = torch.from_numpy((first.weight != 0).astype(float))
            expected = float(torch.nn.functional.conv2d(counts, kernel, stride=2, padding=1).sum()) / 3
        assert m["layers"][0]["synops"] == pytest.approx(expected)
        assert m["total"]["neuron_updates"] == sum(l.neurons for l in nf.weighted) * 5


def test_energy_uses_the_config_numbers():
    m = {"total": {"synops": 1000.0, "spikes": 10.0, "neuron_updates": 110, "dense_macs": 5000}}
    l1 = accounting.energy(m, hw.load("loihi1"))
    assert l1["snn_uJ"] == pytest.approx((1000 * 23.6 + 10 * 81 + 100 * 52) * 1e-6)
    cmos = accounting.energy(m, hw.load("cmos45"))
    assert cmos["snn_uJ"] == pytest.approx(1000 * 0.9e-6) and cmos["ann_dense_uJ"] == pytest.approx(5000 * 4.6e-6)
    assert accounting.energy(m, hw.load("loihi2"))["snn_uJ"] is None  # unpublished, not invented


def test_every_hw_number_has_a_source():
    for key in hw.available():
        t = hw.load(key)
        for group in (t.energy, t.resources):
            assert all(v["source"] for v in group.values())


def test_budget_sparse_needs_less_and_finds_the_bottleneck(tmp_path):
    net, _ = masked_net("mlp", 0.05, hidden=64)
    export_netx(net, tmp_path / "model.net")
    nf = netx_file.read(tmp_path / "model.net")
    b = budget.budget(nf, hw.load("loihi1"))
    assert b["sparse"]["synapses"] == sum(l.synapses for l in nf.weighted)
    assert b["dense"]["synapses"] == sum(l.possible for l in nf.weighted)
    assert b["sparse"]["memory_bytes"] < 0.5 * b["dense"]["memory_bytes"]
    assert b["sparse"]["fits_one_chip"] and b["sparse"]["bottleneck"].startswith("layer")
    big = netx_file.Layer(1, "dense", (200_000,), np.ones((200_000, 8), np.int16), neuron={})
    huge = netx_file.NetFile(nf.path, (8, 1, 1), [big], {})
    hb = budget.budget(huge, hw.load("loihi1"))
    assert hb["sparse"]["cores"] == 196 and hb["sparse"]["chips"] == 2 and not hb["sparse"]["fits_one_chip"]
    assert hb["sparse"]["bottleneck"] == "layer1 (neurons)"


def deploy(*args, timeout=170):
    return subprocess.run([sys.executable, "-m", "esl_deploy.run", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@lava_timeout
def test_cli_end_to_end(mlp_file, tmp_path):
    p = deploy(mlp_file[0], "--samples", "3", "--tile", "1000000", "--report", tmp_path / "r", "--no-progress")
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / "r" / "report.json").read_text())
    assert r["samples"] == 3 and r["fidelity"]["identical_rasters"] == 1.0
    assert r["measurements"]["total"]["synapses"] == sum(l.synapses for l in netx_file.read(mlp_file[0]).weighted)
    assert r["speed"]["tile"] == 3  # a million copies asked for: never more than the samples
    t = r["measurements"]["total"]
    assert r["measurements"]["drain_steps"] == 4 and t["drain_neuron_updates"] == t["neurons"] * 4
    assert r["neurobench"]["SynapticOperations"]["Effective_ACs"] == t["synops"]
    assert "## NeuroBench metrics" in (tmp_path / "r" / "report.md").read_text()
    assert {f.name for f in (tmp_path / "r").iterdir()} == {"report.json", "report.md", "report.png", "budget.png"}
    b = subprocess.run([sys.executable, "-m", "esl_deploy.budget", mlp_file[0], "--hw", "loihi2", "--report",
                        tmp_path / "b"], capture_output=True, text=True, timeout=120)
    assert b.returncode == 0 and "Synapse budget on Loihi 2" in b.stdout
    assert json.loads((tmp_path / "b" / "report.json").read_text())["budgets"][0]["key"] == "loihi2"


def _variants(tmp_path, good):
    truncated = tmp_path / "truncated.net"
    truncated.write_bytes(good.read_bytes()[:3000])
    noise = tmp_path / "noise.net"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f.create_dataset("x", data=[1, 2])
    wrong = tmp_path / "wrong.net"
    wrong.write_bytes(good.read_bytes())
    with h5py.File(wrong, "a") as f:
        del f["layer/2/weight"]
        f["layer/2/weight"] = np.ones((10, 7), np.float32)
    return {"missing": (tmp_path / "nope.net", "does not exist"), "truncated": (truncated, "not an HDF5"),
            "noise": (noise, "not an HDF5"), "not netx": (plain, "no 'layer' group"),
            "shape": (wrong, "disagrees")}


def test_bad_files_one_line_each(mlp_file, tmp_path):
    for name, (path, words) in _variants(tmp_path, mlp_file[0]).items():
        with pytest.raises(UsageError, match=words):
            netx_file.read(path)
        p = deploy(path, "--samples", "1")
        assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, (name, p.stderr)


@pytest.mark.parametrize("args, words", [
    (["--backend", "gpu"], "unknown --backend"),
    (["--hw", "loihi9"], "unknown hardware"),
    (["--backend", "loihi"], "needs Intel's Loihi stack"),
    (["--samples", "0"], "--samples must be at least 1"),
    (["--steps", "10000000"], "--steps 10000000 on 360 samples needs about"),
])
def test_bad_options_one_line(mlp_file, args, words):
    p = deploy(mlp_file[0], *args)
    assert p.returncode == 2 and words in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_input_size_that_does_not_match_the_data(mlp_file, tmp_path):
    fake_nmnist(tmp_path)
    p = deploy(mlp_file[0], "--dataset", "nmnist", "--data-dir", tmp_path, "--samples", "1")
    assert p.returncode == 2 and "takes (2, 24, 24)" in p.stderr and p.stderr.count("\n") == 1, p.stderr


@lava_timeout
def test_tiled_copies_give_every_sample_the_twin_rasters(mlp_file, digits):
    path, _ = mlp_file
    nf = netx_file.read(path)
    x = inputs(digits, 7)  # 3 copies: the last slot is only partly filled
    res = lava_runner.run(str(path), nf, x.numpy().astype(bool), chunk=4, progress=False, tile=3)
    with torch.no_grad():
        _, twin = build_twin(nf)(x, record=True)
    assert res.tile == 3 and res.steps == 3 * res.slot  # 7 samples in 3 slots
    for lava, torch_spikes in zip(res.layers, twin):
        assert lava.shape == torch_spikes.shape and lava.sum() > 0
        assert np.array_equal(lava, torch_spikes.numpy() > 0)
    assert not multiprocessing.active_children()


def test_tile_must_be_positive_and_auto_fits_the_network(mlp_file, tmp_path):
    p = deploy(mlp_file[0], "--tile", "0")
    assert p.returncode == 2 and "--tile must be at least 1" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    mlp = netx_file.read(mlp_file[0])
    assert [lava_runner.auto_tile(mlp, n) for n in (1, 7, 256, 257, 1000)] == [1, 7, 256, 129, 250]
    net, _ = masked_net("conv", 0.3)
    export_netx(net, tmp_path / "conv.net", {"input_shape": [2, 24, 24]})
    conv = netx_file.read(tmp_path / "conv.net")  # 1,738 neurons a copy: at most 150 copies
    assert [lava_runner.auto_tile(conv, n) for n in (7, 150, 151, 1000)] == [7, 150, 76, 143]


def test_lava_speed_leaves_start_up_out_only_when_it_can():
    """A run of one chunk cannot separate start-up from steady stepping: its figure says so instead of hiding it."""
    one = lava_runner.LavaResult(layers=[], first_chunk_seconds=2.0, first_chunk_steps=100, seconds=2.0, steps=100,
                                 slot=10, tile=2)
    more = lava_runner.LavaResult(layers=[], first_chunk_seconds=2.0, first_chunk_steps=100, seconds=3.0, steps=300,
                                  slot=10, tile=2)
    assert not one.steady and one.ms_per_step == pytest.approx(20.0)
    assert more.steady and more.ms_per_step == pytest.approx(5.0) and more.ms_per_sample == pytest.approx(25.0)


def test_tiled_weights_store_only_the_synapses(mlp_file):
    """Block-diagonal copies of a sparse layer hold its non-zero weights and nothing else (zeros stored as entries
    would be summed at every Lava step)."""
    nf = netx_file.read(mlp_file[0])
    _, _, blocks = lava_runner._tiled(nf, tile=5, slot=10)
    for layer, block in zip(nf.weighted, blocks):
        weights = block.synapse.weights.init
        assert weights.shape == (5 * layer.weight.shape[0], 5 * layer.weight.shape[1])
        assert weights.nnz == 5 * np.count_nonzero(layer.weight) and np.all(weights.data != 0)


def test_conv_dense_macs_leave_out_padding_taps():
    w = np.ones((4, 2, 3, 3))
    layer = netx_file.Layer(1, "conv", (4, 12, 12), w, {"stride": (2, 2), "padding": (1, 1), "dilation": (1, 1),
                                                       "groups": 1})
    taps = 0  # brute force: every (output, kernel tap) pair whose input pixel lies inside the 24x24 input
    for oy in range(12):
        for ox in range(12):
            for ky in range(3):
                for kx in range(3):
                    y, x = 2 * oy - 1 + ky, 2 * ox - 1 + kx
                    taps += 0 <= y < 24 and 0 <= x < 24
    assert accounting.dense_macs(layer, (2, 24, 24)) == taps * 4 * 2 < 4 * 12 * 12 * 2 * 9


def test_neurobench_names_follow_their_definitions(mlp_file, digits):
    path, _ = mlp_file
    nf = netx_file.read(path)
    x = inputs(digits, 3)
    with torch.no_grad():
        _, spikes = build_twin(nf)(x, record=True)
    spikes = [s.numpy() > 0 for s in spikes]
    m = accounting.measure(nf, x.numpy(), spikes)
    nb = accounting.neurobench(m, path.stat().st_size)
    syn = sum(layer.synapses for layer in nf.weighted)
    possible = sum(layer.possible for layer in nf.weighted)
    assert nb["ConnectionSparsity"] == pytest.approx(1 - syn / possible)
    neuron_steps = sum(layer.neurons for layer in nf.weighted) * 8
    assert nb["ActivationSparsity"] == pytest.approx(1 - sum(s.sum() for s in spikes) / 3 / neuron_steps)
    assert nb["SynapticOperations"]["Dense"] == possible * 8 and nb["MembraneUpdates"] == neuron_steps
    assert nb["SynapticOperations"]["Effective_ACs"] == m["total"]["synops"] > 0
    assert nb["Footprint"]["dense_float32_parameter_bytes"] == 4 * possible
