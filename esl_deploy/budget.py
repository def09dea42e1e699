"""Synapse budget: what a netx network needs on a chip, per layer, sparse as exported and dense.

`python -m esl_deploy.budget model.net --hw loihi1|loihi2 [--report DIR]`

Memory model (stated in every report): a layer's weights take `weight_bits` each (netx's
`optimize_weight_bits` on the file's weights); stored sparsely a synapse also needs an index of
ceil(log2(fan-in)) bits, and the cheaper of the sparse and dense encodings is used. A chip without
weight sharing (Loihi 1) stores every connection of a convolution; one with it stores the kernel.
A layer needs max(neurons / neurons per core, memory or synapses / per-core limit) cores."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from esl_train.atomic import atomic_path, write_text
from esl_train.cli import HelpFormatter, Parser, check_output_folder, main_wrapper
from esl_train.errors import UsageError
from esl_train.quiet import import_lava_dl
from esl_train.runfolder import writing

from . import hw, netx_file
from .accounting import connections, layer_inputs

MODEL = ("weights at netx's optimized bit width; sparse encoding adds ceil(log2(fan-in)) index bits per synapse; "
         "the cheaper of sparse and dense encodings is taken; cores per layer = max over neurons and synaptic "
         "memory (or synapse count) of need / per-core limit")


def weight_bits(weight: np.ndarray) -> int:
    if not np.any(weight):
        return 1
    optimize = import_lava_dl().netx.utils.optimize_weight_bits
    return int(optimize(weight.reshape(weight.shape[0], -1).astype(np.int64))[1])


def _layer_need(layer, in_shape, target: hw.Target, dense: bool) -> dict:
    full = netx_file.Layer(layer.index, layer.type, layer.shape, np.ones_like(layer.weight), layer.conv)
    probe = full if dense else layer
    bits = weight_bits(layer.weight)
    weights_only = layer.type == "dense" or target.res("shares_conv_weights")  # else every conv connection
    stored, possible = ((l.synapses if weights_only else connections(l, in_shape)) for l in (probe, full))
    fan_in = int(np.prod(layer.weight.shape[1:]))
    memory = min(stored * (bits + math.ceil(math.log2(max(fan_in, 2)))), possible * bits) / 8
    need = {"neurons": layer.neurons / target.res("neurons_per_core")}
    if target.res("synaptic_memory_bytes_per_core"):
        need["synaptic memory"] = memory / target.res("synaptic_memory_bytes_per_core")
    if target.res("synapses_per_core"):
        need["synapses"] = stored / target.res("synapses_per_core")
    limit = max(need, key=need.get)
    return {"name": layer.name, "type": layer.type, "neurons": layer.neurons, "synapses": probe.synapses,
            "stored_synapses": stored, "weight_bits": bits, "memory_bytes": memory,
            "cores": max(1, math.ceil(need[limit] - 1e-9)), "limited_by": limit}


def budget(net: netx_file.NetFile, target: hw.Target) -> dict:
    out = {"hw": target.name, "key": target.key, "model": MODEL,
           "limits": {k: v for k, v in target.resources.items()}}
    for variant in ("sparse", "dense"):
        rows = [_layer_need(l, s, target, variant == "dense") for l, s in zip(net.weighted, layer_inputs(net))]
        cores = sum(r["cores"] for r in rows)
        chips = math.ceil(cores / target.res("cores_per_chip"))
        worst = max(rows, key=lambda r: r["cores"])
        out[variant] = {"layers": rows, "cores": cores, "chips": chips, "fits_one_chip": chips <= 1,
                        "bottleneck": f"{worst['name']} ({worst['limited_by']})",
                        "synapses": sum(r["synapses"] for r in rows),
                        "memory_bytes": sum(r["memory_bytes"] for r in rows)}
    return out


def table(b: dict) -> str:
    head = f"{'layer':8} {'type':6} {'neurons':>8} {'synapses':>9} {'dense syn':>9} {'bits':>4} {'KiB':>8} " \
           f"{'dense KiB':>9} {'cores':>5} {'dense':>5}  limited by"
    lines = [f"Synapse budget on {b['hw']}", head, "-" * len(head)]
    for s, d in zip(b["sparse"]["layers"], b["dense"]["layers"]):
        lines.append(f"{s['name']:8} {s['type']:6} {s['neurons']:8d} {s['synapses']:9d} {d['synapses']:9d} "
                     f"{s['weight_bits']:4d} {s['memory_bytes'] / 1024:8.1f} {d['memory_bytes'] / 1024:9.1f} "
                     f"{s['cores']:5d} {d['cores']:5d}  {s['limited_by']}")
    for v in ("sparse", "dense"):
        x = b[v]
        lines.append(f"{v:6}: {x['synapses']} synapses, {x['memory_bytes'] / 1024:.1f} KiB, {x['cores']} cores, "
                     f"{x['chips']} chip(s), fits one chip: {'yes' if x['fits_one_chip'] else 'no'}, "
                     f"bottleneck {x['bottleneck']}")
    return "\n".join(lines)


def markdown(b: dict) -> str:
    rows = ["| layer | type | neurons | synapses | dense synapses | weight bits | KiB | dense KiB | cores | dense cores"
            " | limited by |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s, d in zip(b["sparse"]["layers"], b["dense"]["layers"]):
        rows.append(f"| {s['name']} | {s['type']} | {s['neurons']} | {s['synapses']} | {d['synapses']} | "
                    f"{s['weight_bits']} | {s['memory_bytes'] / 1024:.1f} | {d['memory_bytes'] / 1024:.1f} | "
                    f"{s['cores']} | {d['cores']} | {s['limited_by']} |")
    summary = [f"- **{v}**: {b[v]['synapses']} synapses, {b[v]['cores']} cores, {b[v]['chips']} chip(s), "
               f"fits one chip: {'yes' if b[v]['fits_one_chip'] else 'no'}; bottleneck {b[v]['bottleneck']}"
               for v in ("sparse", "dense")]
    limits = [f"- {k}: {v['value']} ({v['source']})" for k, v in b["limits"].items()]
    return "\n".join([f"## Synapse budget on {b['hw']}", "", *rows, "", *summary, "", f"Model: {b['model']}.", "",
                      "Per-core limits:", *limits, ""])


def plot(budgets: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = budgets[0]
    names = [r["name"] for r in b["sparse"]["layers"]]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 1 + len(budgets), figsize=(5 * (1 + len(budgets)), 4), constrained_layout=True)
    ax = axes[0]
    ax.bar(x - 0.2, [r["synapses"] for r in b["dense"]["layers"]], 0.4, label="dense")
    ax.bar(x + 0.2, [r["synapses"] for r in b["sparse"]["layers"]], 0.4, label="sparse (exported)")
    ax.set(xticks=x, xticklabels=names, ylabel="synapses", title="synapses per layer", yscale="log")
    ax.legend()
    for ax, bb in zip(axes[1:], budgets):
        ax.bar(x - 0.2, [r["cores"] for r in bb["dense"]["layers"]], 0.4, label="dense")
        ax.bar(x + 0.2, [r["cores"] for r in bb["sparse"]["layers"]], 0.4, label="sparse")
        ax.set(xticks=x, xticklabels=names, ylabel="cores", title=f"cores on {bb['hw']}")
        ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_reports(budgets: list[dict], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "report.json", json.dumps({"budgets": budgets}, indent=2))
    write_text(folder / "report.md", "\n".join(markdown(b) for b in budgets))
    plot(budgets, folder / "budget.png")


def parser() -> Parser:
    p = Parser(prog="python -m esl_deploy.budget", description=__doc__.splitlines()[0], allow_abbrev=False,
               formatter_class=HelpFormatter)
    p.add_argument("model", help="netx HDF5 file (model.net)")
    p.add_argument("--hw", default="loihi1,loihi2", help=f"comma-separated targets: {', '.join(hw.available())}")
    p.add_argument("--report", help="folder for report.json, report.md, budget.png (default: <model folder>/budget)")
    return p


def _main(argv) -> int:
    args = parser().parse_args(argv)
    targets = [hw.load(k) for k in args.hw.split(",")]
    if any(t.kind != "neuromorphic" for t in targets):
        raise UsageError("--hw for a budget must be a neuromorphic chip (loihi1, loihi2)")
    report = args.report if args.report is not None else Path(args.model).parent / "budget"
    folder = check_output_folder(report, "--report")
    net = netx_file.read(args.model)
    budgets = [budget(net, t) for t in targets]
    for b in budgets:
        print(table(b), end="\n\n")
    with writing(folder, "--report"):
        write_reports(budgets, folder)
    print(f"reports: {folder}/report.md, report.json, budget.png")
    return 0


def main(argv=None) -> int:
    return main_wrapper(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
