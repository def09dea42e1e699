"""NIR interop with snnTorch and NeuroBench (not part of CI: needs the optional extra, `make neurobench`).

    make neurobench                                               # snnTorch 1.0, nirtorch 2.6, NeuroBench 2.3.0
    .venv/bin/python bench/interop.py agreement runs/<run>/model.net
    .venv/bin/python bench/interop.py neurobench runs/<run>/model.net
    .venv/bin/python bench/interop.py fixture                     # rewrites tests/data/snntorch_mlp.nir

`agreement`: exports a trained model.net to NIR (dt = 1e-4 s, the time step snnTorch's importer assumes), imports
it with snnTorch's own `import_from_nir`, runs the test split through it and through our SLAYER twin, and writes
class agreement and per-layer raster agreement to docs/benchmarks.md. Loihi (and the twin) delay each layer by one
step and NIR has no such delay, so layer l of the twin at step t is compared with snnTorch's layer l at t - l.

`neurobench`: runs the neurobench package on that snnTorch network and the same samples, beside our own metrics
computed on the spikes snnTorch produced, and writes both to docs/benchmarks.md.

`fixture`: trains a small snnTorch MLP on the embedded digits, exports it with snnTorch's `export_to_nir` and writes
the file the CI test imports into Lava (tests/test_nir.py)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from esl_train.quiet import import_lava_dl  # noqa: E402

FIXTURE = ROOT / "tests" / "data" / "snntorch_mlp.nir"
SNNTORCH_DT = 1e-4  # snntorch.import_nir hard-codes this time step


def snntorch_model(model: str | Path):
    """Our model.net -> NIR (at snnTorch's dt) -> snnTorch's `import_from_nir`: the module and its neuron modules."""
    import nir
    from snntorch import Synaptic
    from snntorch.import_nir import import_from_nir

    from esl_deploy.nir import export

    with tempfile.TemporaryDirectory() as tmp:
        export(model, Path(tmp) / "model.nir", SNNTORCH_DT)
        graph = nir.read(Path(tmp) / "model.nir")
    module = import_from_nir(graph)  # as it is: our Flatten counts its dims from the end
    return module, [m for m in module.modules() if isinstance(m, Synaptic)]


def snntorch_run(module, x: torch.Tensor, hooks: list) -> list[np.ndarray]:
    """Spikes (N, neurons, T) of every hooked neuron module, feeding x (N, ..., T) one step at a time."""
    from snntorch import utils

    utils.reset(module)
    records = [[] for _ in hooks]
    handles = [m.register_forward_hook(lambda mod, i, o, k=k: records[k].append(
        (o[0] if isinstance(o, tuple) else o).detach().flatten(1).numpy())) for k, m in enumerate(hooks)]
    with torch.no_grad():
        for t in range(x.shape[-1]):
            module(x[..., t])
    for h in handles:
        h.remove()
    return [np.stack(r, axis=-1) > 0 for r in records]


def _test_split(model: str, samples: int | None):
    """The checked network, its data set, and the first `samples` test samples (spikes, labels) it was trained for."""
    import_lava_dl()
    from esl_deploy import netx_file
    from esl_train.data import load_dataset

    net = netx_file.read(model)
    data = load_dataset(net.meta["dataset"], int(net.meta["steps"]))
    n = min(samples or len(data.test), len(data.test))
    x = torch.stack([data.test[i][0] for i in range(n)]).float()
    return net, data, x, torch.tensor([int(data.test[i][1]) for i in range(n)])


def agreement(args) -> None:
    from esl_deploy.twin import build_twin
    from esl_bench.markdown import write_section

    net, data, x, labels = _test_split(args.model, args.samples)
    labels, n = labels.numpy(), len(x)
    module, neurons = snntorch_model(args.model)
    start = time.perf_counter()
    snn_layers = snntorch_run(module, x, neurons)
    snn_seconds = time.perf_counter() - start
    with torch.no_grad():
        _, twin_layers = build_twin(net)(x, record=True)
    twin_layers = [t.flatten(1, -2).numpy() > 0 for t in twin_layers]
    steps, depth = x.shape[-1], len(twin_layers)
    rows = []
    for l, (tw, sn) in enumerate(zip(twin_layers, snn_layers), start=1):
        a, b = tw[..., l:], sn[..., : steps - l]  # the twin's layer l lags l steps behind
        same = a == b
        rows.append((l, float(same.reshape(n, -1).all(1).mean()), float(same.mean()), int(a.sum()), int(b.sum())))
    twin_pred = twin_layers[-1].sum(-1).argmax(-1)
    snn_pred = snn_layers[-1][..., : steps - depth].sum(-1).argmax(-1)
    snn_pred_all = snn_layers[-1].sum(-1).argmax(-1)
    body = "\n".join([
        "## NIR interop: our export read by snnTorch", "",
        "```", f".venv/bin/python bench/interop.py agreement {args.model}", "```", "",
        f"{args.model} ({net.meta.get('method', '?')}, density {net.meta.get('density', '?')}) exported with "
        f"`python -m esl_deploy.nir export --dt {SNNTORCH_DT:g}` and imported with snnTorch's `import_from_nir`; "
        f"{n} test samples of {data.name}, T={steps}. Layer l is compared with an l-step shift (Loihi's delay per "
        "layer, which NIR does not have). snnTorch computes in float32, Loihi and the twin in integers.", "",
        f"- class agreement with the twin: **{100 * (twin_pred == snn_pred).mean():.2f} %** (snnTorch's output "
        f"counted over its first {steps - depth} steps, the window the twin's delayed output covers); "
        f"{100 * (twin_pred == snn_pred_all).mean():.2f} % counting all {steps} steps",
        f"- accuracy: twin {100 * (twin_pred == labels).mean():.2f} %, "
        f"snnTorch {100 * (snn_pred == labels).mean():.2f} %"
        f" ({100 * (snn_pred_all == labels).mean():.2f} % over all steps); snnTorch ran in {snn_seconds:.1f} s", "",
        "| layer | samples with identical rasters | identical spike entries | twin spikes | snnTorch spikes |",
        "|---|---|---|---|---|",
        *[f"| {l} | {100 * s:.2f} % | {100 * e:.4f} % | {a:,} | {b:,} |" for l, s, e, a, b in rows]])
    print(body)
    write_section(ROOT / "docs" / "benchmarks.md", "interop", body)


def neurobench_compare(model: str | Path, x: torch.Tensor, labels: torch.Tensor) -> tuple[dict, dict]:
    """NeuroBench 2.3's metrics on the snnTorch import of `model`, and ours (esl_deploy.accounting) on the very
    spikes that snnTorch produced, so that any difference is one of definition, not of spikes."""
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint
    from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations
    from neurobench.models import SNNTorchModel

    from esl_deploy import accounting, netx_file

    module, neurons = snntorch_model(model)
    spikes = snntorch_run(module, x, neurons)
    m = accounting.measure(netx_file.read(model), x.numpy(), spikes)
    ours = accounting.neurobench(m, Path(model).stat().st_size)
    data = torch.utils.data.TensorDataset(x.movedim(-1, 1), labels)  # NeuroBench's layout: (batch, time, ...)
    bench = Benchmark(SNNTorchModel(module), torch.utils.data.DataLoader(data, batch_size=len(x)), [], [],
                      [[Footprint, ConnectionSparsity], [ActivationSparsity, SynapticOperations, MembraneUpdates]])
    return ours, bench.run(quiet=True)


def neurobench(args) -> None:
    from esl_bench.markdown import write_section

    _, data, x, labels = _test_split(args.model, args.samples)
    n = len(x)
    ours, theirs = neurobench_compare(args.model, x, labels)
    rows = [("Footprint (bytes)", theirs["Footprint"], ours["Footprint"]["dense_float32_parameter_bytes"],
             "theirs: every parameter and buffer of the snnTorch module, which includes its neuron state for the "
             "last batch (it grows with the batch); ours: the float32 weights only; model.net itself: "
             f"{ours['Footprint']['model_net_bytes']:,} bytes"),
            ("ConnectionSparsity", theirs["ConnectionSparsity"], ours["ConnectionSparsity"], ""),
            ("ActivationSparsity", theirs["ActivationSparsity"], ours["ActivationSparsity"], ""),
            *[(f"SynapticOperations {k}", theirs["SynapticOperations"][k], ours["SynapticOperations"][k], "")
              for k in ("Effective_MACs", "Effective_ACs", "Dense")],
            ("MembraneUpdates", theirs["MembraneUpdates"], ours["MembraneUpdates"],
             "theirs: updates that changed the membrane; ours: every neuron at every step, as Loihi updates them")]
    body = "\n".join([
        "## NeuroBench metrics: the neurobench package beside ours", "",
        "```", f".venv/bin/python bench/interop.py neurobench {args.model}", "```", "",
        f"neurobench 2.3.0 runs on the snnTorch import of the network (`bench/interop.py`), {n} test samples of "
        f"{data.name}; our numbers are computed by `esl_deploy.accounting` on the spikes that snnTorch produced.", "",
        "| metric | neurobench 2.3.0 | esl_deploy | note |", "|---|---|---|---|",
        *[f"| {name} | {a:,.6g} | {b:,.6g} | {note} |" for name, a, b, note in rows]])
    print(body)
    write_section(ROOT / "docs" / "benchmarks.md", "neurobench", body)


def fixture(args) -> None:
    """A small snnTorch network, trained a little so that it spikes for a reason, exported by snnTorch itself."""
    import nir
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    from esl_train.data import load_dataset

    torch.manual_seed(0)
    data = load_dataset("digits", 8)

    def cell(n):  # per-neuron (equal) values: snnTorch 1.0's scalar ones fail nir 1.0.8's type inference on export
        return snn.Synaptic(alpha=torch.full((n,), 0.75), beta=torch.full((n,), 0.97), threshold=torch.ones(n),
                            reset_mechanism="zero", reset_delay=False, init_hidden=True)

    model = torch.nn.Sequential(torch.nn.Linear(1152, 16, bias=False), cell(16),
                                torch.nn.Linear(16, 10, bias=False), cell(10))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    loader = torch.utils.data.DataLoader(data.train, batch_size=64, shuffle=True)

    def counts(x):
        from snntorch import utils

        utils.reset(model)
        return sum(model(x[..., t].flatten(1).float()) for t in range(x.shape[-1]))

    for epoch in range(args.epochs):
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(counts(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            x = torch.stack([s for s, _ in data.test])
            y = torch.tensor([int(c) for _, c in data.test])
            accuracy = (counts(x).argmax(1) == y).float().mean()
            print(f"epoch {epoch + 1}: loss {loss.item():.3f}, test accuracy {accuracy:.3f}")
    graph = export_to_nir(model, torch.zeros(1152))  # with a batch dimension the Input type breaks
    FIXTURE.parent.mkdir(exist_ok=True)
    nir.write(FIXTURE, graph)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size:,} bytes): " + " -> ".join(
        f"{k}:{type(v).__name__}" for k, v in graph.nodes.items()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("agreement")
    a.add_argument("model", help="a trained model.net")
    a.add_argument("--samples", type=int, help="test samples (default: the whole test split)")
    b = sub.add_parser("neurobench")
    b.add_argument("model", help="a trained model.net")
    b.add_argument("--samples", type=int, help="test samples (default: the whole test split)")
    f = sub.add_parser("fixture")
    f.add_argument("--epochs", type=int, default=8)
    args = p.parse_args()
    {"agreement": agreement, "neurobench": neurobench, "fixture": fixture}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
