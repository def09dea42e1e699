"""NIR export and import: lossless round trip, an integer reference driven by the .nir file alone, a graph written
by snnTorch running in Lava, and one-line refusals of what Loihi cannot run."""

import subprocess
import sys
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
import torch

from esl_deploy import lava_runner, netx_file
from esl_deploy import nir as nir_io
from esl_deploy.twin import build_twin
from esl_train.export import export_netx

from .helpers import masked_net
from .nir_reference import run as reference

SNNTORCH_FILE = Path(__file__).parent / "data" / "snntorch_mlp.nir"  # bench/interop.py fixture wrote it
META = {"dataset": "digits", "steps": 8, "input_shape": [2, 24, 24]}


@pytest.fixture(scope="module", params=["mlp", "conv"])
def exported(request, tmp_path_factory):
    """(model.net, model.nir) of a masked untrained network (weights rescaled so that it spikes)."""
    folder = tmp_path_factory.mktemp(request.param)
    net, _ = masked_net(request.param, 0.3, hidden=24)
    export_netx(net, folder / "model.net", {"arch": request.param, **META})
    assert nir_io.main(["export", str(folder / "model.net"), str(folder / "model.nir")]) == 0
    return folder / "model.net", folder / "model.nir"


def inputs(digits, n):
    return torch.stack([digits.test[i][0] for i in range(n)])


def test_round_trip_is_lossless_bit_for_bit(exported, tmp_path):
    model, graph_file = exported
    assert nir_io.main(["import", str(graph_file), str(tmp_path / "back.net")]) == 0
    assert (tmp_path / "back.net").read_bytes() == model.read_bytes()
    graph = nir.read(graph_file)  # with NIR's own type checks
    assert graph.metadata["dt"] == 1e-3 and graph.metadata["layer_delay_steps"] == 1
    first = netx_file.read(model).weighted[0]
    cuba = graph.nodes["cuba1"]
    assert cuba.metadata["iDecay"] == first.neuron["iDecay"]
    assert np.allclose(cuba.tau_syn, 1e-3 * 4096 / first.neuron["iDecay"])
    assert np.allclose(cuba.r, 4096 / first.neuron["vDecay"])
    assert np.allclose(cuba.v_threshold, first.neuron["vThMant"] / 64)


def test_integer_reference_from_the_nir_file_equals_the_twin(exported, digits):
    model, graph_file = exported
    x = inputs(digits, 4)
    with torch.no_grad():
        _, twin = build_twin(netx_file.read(model))(x, record=True)
    ref = reference(nir.read(graph_file), x.numpy().astype(bool))
    assert len(ref) == len(twin)
    for r, t in zip(ref, twin):
        assert r.sum() > 0 and np.array_equal(r, t.numpy().reshape(r.shape) > 0)


@pytest.mark.timeout(180)
def test_snntorch_graph_imports_and_runs_in_lava_like_its_twin(tmp_path, digits, capsys):
    out = tmp_path / "snntorch.net"
    assert nir_io.main(["import", str(SNNTORCH_FILE), str(out), "--dataset", "digits", "--steps", "8"]) == 0
    assert "rounded to zero" in capsys.readouterr().out
    net = netx_file.read(out)
    assert [l.weight.shape for l in net.weighted] == [(16, 1152), (10, 16)]
    assert net.meta["dataset"] == "digits" and net.meta["steps"] == 8
    x = inputs(digits, 6)
    res = lava_runner.run(str(out), net, x.numpy().astype(bool), progress=False, tile=3)
    with torch.no_grad():
        _, twin = build_twin(net)(x, record=True)
    for lava, t in zip(res.layers, twin):
        assert lava.sum() > 0 and np.array_equal(lava, t.numpy() > 0)


def _lif_graph(**override):
    n = 4
    lif = dict(tau=np.full(n, 2e-3), r=np.full(n, 2.0), v_leak=np.zeros(n), v_threshold=np.full(n, 1.0))
    lif.update(override)
    return nir.NIRGraph.from_list(nir.Input(input_type={"input": np.array([6])}),
                                  nir.Linear(weight=np.linspace(-0.5, 0.5, 24).reshape(n, 6)), nir.LIF(**lif))


def test_lif_becomes_cuba_with_instant_current_and_weights_scaled(tmp_path, capsys):
    nir.write(tmp_path / "lif.nir", _lif_graph())
    assert nir_io.main(["import", str(tmp_path / "lif.nir"), str(tmp_path / "lif.net"), "--dt", "1e-3"]) == 0
    layer = netx_file.read(tmp_path / "lif.net").weighted[0]
    assert layer.neuron["iDecay"] == 4096 and layer.neuron["vDecay"] == 2048  # dt/tau = 1/2
    # gain r*dt/tau = 1: the largest weight fills 8 bits and the threshold follows the same scale
    assert np.abs(layer.weight).max() == 254 and layer.neuron["vThMant"] == round(64 * 254 / 32)
    assert "dt: 0.001 s from --dt" in capsys.readouterr().out


def _write_bad(tmp_path, name):
    """A .nir file with one defect, and the words its refusal must contain."""
    p = tmp_path / f"{name}.nir"
    lin = nir.Linear(weight=np.ones((4, 6)) * 0.1)
    cuba = dict(tau_syn=np.full(4, 4e-3), tau_mem=np.full(4, 8e-3), r=np.full(4, 8.0), v_leak=np.zeros(4),
                v_threshold=np.ones(4), w_in=np.full(4, 4.0))
    inp = nir.Input(input_type={"input": np.array([6])})
    if name == "not_hdf5":
        p.write_text("hello")
        return p, "not an HDF5 file"
    if name == "hdf5_not_nir":
        with h5py.File(p, "w") as f:
            f.create_dataset("x", data=[1])
        return p, "not a NIR graph"
    graphs = {
        "pooling": (nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
                                        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                                              padding=np.array([0, 0])),
                                        "output": nir.Output(output_type={"output": np.array([1, 2, 2])})},
                                 edges=[("input", "pool"), ("pool", "output")], type_check=False), "pooling"),
        "bias": (nir.NIRGraph.from_list(inp, nir.Affine(weight=np.ones((4, 6)), bias=np.ones(4)), nir.CubaLIF(**cuba)),
                 "non-zero bias"),
        "per_neuron": (nir.NIRGraph.from_list(inp, lin, nir.CubaLIF(**{**cuba, "tau_syn": np.arange(1, 5) * 1e-3})),
                       "per-neuron tau_syn"),
        "reset": (nir.NIRGraph.from_list(inp, lin, nir.CubaLIF(**cuba, v_reset=np.full(4, 0.5))), "non-zero reset"),
        "readout": (nir.NIRGraph.from_list(inp, lin, nir.LI(tau=np.ones(4), r=np.ones(4), v_leak=np.zeros(4))),
                    "non-spiking"),
        "recurrent": (nir.NIRGraph(nodes={"input": inp, "lin": lin, "lif": nir.CubaLIF(**cuba),
                                          "rec": nir.Linear(weight=np.eye(4)), "output": nir.Output(output_type=[4])},
                                   edges=[("input", "lin"), ("lin", "lif"), ("lif", "rec"), ("rec", "lif"),
                                          ("lif", "output")], type_check=False), "closes a loop (a recurrent"),
        "missing_node": (nir.NIRGraph.from_list(inp, lin, nir.CubaLIF(**cuba)), "does not have"),
        "nan_weight": (nir.NIRGraph.from_list(inp, nir.Linear(weight=np.full((4, 6), np.nan)), nir.CubaLIF(**cuba)),
                       "node linear: 24 weights are NaN or inf"),
        "inf_weight": (nir.NIRGraph.from_list(inp, nir.Linear(weight=np.full((4, 6), np.inf)), nir.CubaLIF(**cuba)),
                       "weights are NaN or inf"),
        "zero_tau_syn": (nir.NIRGraph.from_list(inp, lin, nir.CubaLIF(**{**cuba, "tau_syn": np.zeros(4)})),
                         "tau_syn must be positive, got 0"),
        "negative_tau_mem": (nir.NIRGraph.from_list(inp, lin, nir.CubaLIF(**{**cuba, "tau_mem": np.full(4, -1e-2)})),
                             "tau_mem must be positive"),
        "nan_threshold": (nir.NIRGraph.from_list(inp, lin, nir.CubaLIF(**{**cuba, "v_threshold": np.full(4, np.nan)})),
                          "v_threshold holds NaN or inf"),
        "bad_metadata": (nir.NIRGraph.from_list(inp, lin, nir.CubaLIF(**cuba)), "metadata esl_snn is not valid JSON"),
        "bad_dt": (nir.NIRGraph.from_list(inp, lin, nir.CubaLIF(**cuba)), "metadata dt is"),
    }
    graph, words = graphs[name]
    if name == "bad_metadata":
        graph.metadata["esl_snn"] = "{not json"
    if name == "bad_dt":
        graph.metadata["dt"] = -1.0
    nir.write(p, graph)
    if name == "missing_node":
        with h5py.File(p, "r+") as f:
            edges = f["node/edges"][()]
            del f["node/edges"]
            f["node/edges"] = np.concatenate([edges, [[b"cubalif", b"ghost"]]])
    return p, words


BAD = ["not_hdf5", "hdf5_not_nir", "pooling", "bias", "per_neuron", "reset", "readout", "recurrent", "missing_node",
       "nan_weight", "inf_weight", "zero_tau_syn", "negative_tau_mem", "nan_threshold", "bad_metadata", "bad_dt"]


@pytest.mark.parametrize("name", BAD)
def test_bad_graphs_one_line_and_no_file(tmp_path, capsys, name):
    path, words = _write_bad(tmp_path, name)
    assert nir_io.main(["import", str(path), str(tmp_path / "out.net")]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err
    assert not list(tmp_path.glob("*.net")) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("args, words", [
    (["import", "x.nir", "out.net", "--dt", "-1"], "--dt must be a positive"),
    (["import", "x.nir", "out.net", "--steps", "0"], "--steps must be at least 1"),
    (["import", "x.nir", "out.net", "--steps", str(10**12)], "--steps 1000000000000 needs about"),
    (["import", "x.nir", "out.net", "--dataset", "mnist"], "unknown --dataset"),
    (["import", "x.nir", "out.net", "--dataset", "dvsgesture"], "--dataset dvsgesture gives inputs of shape"),
    (["import", "x.nir", "no/such/folder/out.net"], "does not exist"),
    (["export", "missing.net", "out.nir"], "does not exist"),
    (["convert", "a", "b"], "invalid choice"),
])
def test_bad_arguments_one_line(tmp_path, capsys, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.nir").write_bytes(SNNTORCH_FILE.read_bytes())
    assert nir_io.main(args) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err


def test_command_line_entry_point(exported, tmp_path):
    p = subprocess.run([sys.executable, "-m", "esl_deploy.nir", "export", str(exported[0]), str(tmp_path / "a.nir"),
                        "--dt", "1e-4"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "dt 0.0001 s" in p.stdout, p.stderr
    assert nir.read(tmp_path / "a.nir").metadata["dt"] == 1e-4


def test_flatten_counts_from_the_end_so_nir_and_torch_agree(exported):
    """NIR's types have no batch dimension, torch.nn.Flatten's dims count one: dims from the end mean the same in
    both, so the graph passes NIR's type check and torch readers flatten each sample, not the batch."""
    graph = nir.read(exported[1])  # type-checked
    flattens = [n for n in graph.nodes.values() if isinstance(n, nir.Flatten)]
    assert flattens and all(n.start_dim == -len(n.input_type["input"]) and n.end_dim == -1 for n in flattens)
    for n in flattens:
        x = torch.zeros(5, *n.input_type["input"])
        assert torch.nn.Flatten(n.start_dim, n.end_dim)(x).shape == (5, *n.output_type["output"])


def test_snntorch_loads_our_file_as_it_is(exported, tmp_path):
    """Optional (make neurobench installs snnTorch): no hand edit between our export and snnTorch's model (at the
    dt snnTorch's importer assumes)."""
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    assert nir_io.main(["export", str(exported[0]), str(tmp_path / "s.nir"), "--dt", "1e-4"]) == 0
    module = import_from_nir(nir.read(tmp_path / "s.nir"))
    x = torch.zeros(3, 2, 24, 24)
    out = module(x)
    assert (out[0] if isinstance(out, tuple) else out).shape[-1] == 10


def test_norse_loads_our_file_as_it_is(exported):
    """Optional (pip install norse): Norse's from_nir builds a module that runs on a batch."""
    norse = pytest.importorskip("norse.torch")
    module = norse.from_nir(nir.read(exported[1]))
    out = module(torch.zeros(3, 2, 24, 24))
    assert (out[0] if isinstance(out, tuple) else out).shape[-1] == 10


def test_an_output_is_never_its_input_nor_an_existing_file_without_force(exported, tmp_path, capsys):
    model, graph_file = exported
    copy = tmp_path / "m.net"
    copy.write_bytes(model.read_bytes())
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for args, words in ((["export", str(copy), str(copy)], "is the input file itself"),
                        (["export", str(copy), str(copy), "--force"], "is the input file itself"),
                        (["export", str(copy), str(notes)], "exists; pass another name, or --force"),
                        (["import", str(graph_file), str(copy)], "exists; pass another name, or --force"),
                        (["export", str(copy), "/dev/null", "--force"], "not a regular file"),
                        (["export", str(copy), "/proc/x.nir"], "(/proc/x.nir); pick another output folder")):
        assert nir_io.main(args) == 2, args
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    assert copy.read_bytes() == model.read_bytes() and notes.read_text() == "mine"
    assert nir_io.main(["export", str(copy), str(notes), "--force"]) == 0
    assert isinstance(nir.read(notes), nir.NIRGraph)
