"""The deployment report: a terminal summary, report.json, report.md and report.png."""

from __future__ import annotations

import json
from pathlib import Path

from esl_train.atomic import atomic_path, write_text

from . import budget as budget_mod


def _uj(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def summary(r: dict) -> str:
    f, m, s = r["fidelity"], r["measurements"], r["speed"]
    t = m["total"]
    lines = [
        f"{r['samples']} samples of {r['dataset']}, {r['steps']} steps, Lava {r['backend']} ({r['synapse_process']})",
        f"accuracy   Lava {r['accuracy']['lava']:.4f} | PyTorch twin {r['accuracy']['twin']:.4f}",
        f"fidelity   identical rasters {100 * f['identical_rasters']:.1f} % | same class "
        f"{100 * f['class_agreement']:.1f} %",
        f"{'layer':8} {'neurons':>8} {'synapses':>9} {'of':>9} {'spikes/sample':>14} {'twin':>10} {'SynOps':>10}",
    ]
    for row, fl in zip(m["layers"], f["layers"]):
        lines.append(f"{row['name']:8} {row['neurons']:8d} {row['synapses']:9d} {row['possible']:9d} "
                     f"{row['spikes']:14.1f} {fl['twin_spikes'] / r['samples']:10.1f} {row['synops']:10.1f}")
    lines.append(f"{'total':8} {t['neurons']:8d} {t['synapses']:9d} {t['possible']:9d} {t['spikes']:14.1f} "
                 f"{'':10} {t['synops']:10.1f}   neuron updates {t['neuron_updates']}, dense ANN MACs "
                 f"{t['dense_macs']}")
    for e in r["energy"]:
        extra = f" | dense ANN {e['ann_dense_uJ']:.4f} µJ ({e['gain_vs_ann']:.1f}x)" if "ann_dense_uJ" in e else ""
        note = " (no published energy numbers)" if e["snn_uJ"] is None else ""
        lines.append(f"energy     {e['target']}: {_uj(e['snn_uJ'])} µJ/sample{extra}{note}")
    for b in r["budgets"]:
        sp, de = b["sparse"], b["dense"]
        lines.append(f"budget     {b['hw']}: {sp['cores']} cores / {sp['chips']} chip(s) sparse vs {de['cores']} / "
                     f"{de['chips']} dense; bottleneck {sp['bottleneck']}")
    copies = "1 copy" if s["tile"] == 1 else f"{s['tile']} copies"
    startup = ("one chunk, start-up included" if s.get("lava_speed_includes_startup")
               else f"start-up {s['lava_startup_seconds']:.1f} s")
    lines.append(f"speed      Lava {s['lava_ms_per_step']:.2f} ms/step with {copies} side by side, "
                 f"{s['lava_ms_per_sample']:.1f} ms/sample ({startup}) | twin {s['twin_ms_per_sample']:.2f} ms/sample")
    return "\n".join(lines)


def markdown(r: dict) -> str:
    f, m = r["fidelity"], r["measurements"]
    out = [f"# Deployment report: {r['model']}", "", "```", summary(r), "```", "",
           "## Per layer", "", "| layer | neurons | synapses | possible | spikes/sample (Lava) | spikes/sample (twin) "
           "| identical rasters | SynOps/sample |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row, fl in zip(m["layers"], f["layers"]):
        out.append(f"| {row['name']} | {row['neurons']} | {row['synapses']} | {row['possible']} | "
                   f"{row['spikes']:.1f} | "
                   f"{fl['twin_spikes'] / r['samples']:.1f} | {100 * fl['identical_samples']:.1f} % | "
                   f"{row['synops']:.1f} |")
    out += ["", "## Energy per sample", "", "| target | µJ/sample | sources |", "|---|---:|---|"]
    for e in r["energy"]:
        src = "; ".join(f"{k}: {v}" for k, v in e["sources"].items()) or e.get("note", "")
        out.append(f"| {e['target']} | {_uj(e['snn_uJ'])} | {src} |")
        if "ann_dense_uJ" in e:
            out.append(f"| same network dense, as an ANN (MACs) | {e['ann_dense_uJ']:.4f} | {e['gain_vs_ann']:.1f}x "
                       f"the SNN |")
    out += ["", "Neuromorphic energy = SynOps x E(synaptic op) + neuron updates x E(update); a neuron-step with a "
            "spike counts as an active update, the rest as inactive (a proxy).", ""]
    nb, t = r["neurobench"], m["total"]
    out += ["## NeuroBench metrics (per sample, NeuroBench's names and conventions)", "",
            "| metric | value |", "|---|---:|",
            f"| Footprint (model.net bytes) | {nb['Footprint']['model_net_bytes']} |",
            f"| Footprint (NeuroBench: dense float32 parameters, zeros included) | "
            f"{nb['Footprint']['dense_float32_parameter_bytes']} |",
            f"| ConnectionSparsity | {nb['ConnectionSparsity']:.4f} |",
            f"| ActivationSparsity | {nb['ActivationSparsity']:.4f} |",
            f"| SynapticOperations Effective_MACs | {nb['SynapticOperations']['Effective_MACs']:.1f} |",
            f"| SynapticOperations Effective_ACs | {nb['SynapticOperations']['Effective_ACs']:.1f} |",
            f"| SynapticOperations Dense (every connection, every step) | {nb['SynapticOperations']['Dense']:.0f} |",
            f"| MembraneUpdates | {nb['MembraneUpdates']} |",
            f"| (ours, not NeuroBench) dense ANN MACs, one inference | "
            f"{nb['not_NeuroBench']['dense_ann_macs_one_inference']} |", "",
            f"Lava also runs {m['drain_steps']} drain steps per sample outside the {m['steps']} compared ones (the "
            f"input enters after one step per layer and needs as many to leave before the reset): there it spent "
            f"{t.get('drain_spikes', 0):.1f} spikes, {t.get('drain_synops', 0):.1f} SynOps and "
            f"{t.get('drain_neuron_updates', 0)} neuron updates per sample, not included above.", ""]
    out += [budget_mod.markdown(b) for b in r["budgets"]]
    return "\n".join(out)


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    m, f = r["measurements"], r["fidelity"]
    names = [row["name"] for row in m["layers"]]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), constrained_layout=True)
    ax = axes[0]
    ax.bar(x - 0.2, [row["spikes"] for row in m["layers"]], 0.4, label="Lava")
    ax.bar(x + 0.2, [fl["twin_spikes"] / r["samples"] for fl in f["layers"]], 0.4, label="PyTorch twin")
    ax.set(xticks=x, xticklabels=names, ylabel="spikes per sample", title="spikes per layer")
    ax.legend()
    ax = axes[1]
    ax.bar(x - 0.2, [row["possible"] for row in m["layers"]], 0.4, label="possible (dense)")
    ax.bar(x + 0.2, [row["synapses"] for row in m["layers"]], 0.4, label="surviving")
    ax.set(xticks=x, xticklabels=names, ylabel="synapses", yscale="log", title="synapses per layer")
    ax.legend()
    ax = axes[2]
    bars = [(e["target"], e["snn_uJ"]) for e in r["energy"] if e["snn_uJ"] is not None]
    bars += [(f"{e['target']}\ndense ANN", e["ann_dense_uJ"]) for e in r["energy"] if "ann_dense_uJ" in e]
    ax.bar(range(len(bars)), [b[1] for b in bars])
    ax.set(xticks=range(len(bars)), ylabel="µJ per sample", title="energy proxy per sample", yscale="log")
    ax.set_xticklabels([b[0] for b in bars], fontsize=8)
    fig.suptitle(f"{Path(r['model']).name}: Lava accuracy {r['accuracy']['lava']:.3f}, "
                 f"identical rasters {100 * f['identical_rasters']:.1f} %")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write(r: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "report.json", json.dumps(r, indent=2))
    write_text(folder / "report.md", markdown(r))
    plot(r, folder / "report.png")
    if r["budgets"]:
        budget_mod.plot(r["budgets"], folder / "budget.png")
