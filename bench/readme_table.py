"""Writes the README's results table from the stored sweep (docs/compare-long-all.json), the RigL reference
(docs/peer-rigl.json), the pruning baselines (docs/baselines.json) and the sweeps of every method tuned alike
(docs/tuned-<density>.json), so that no number in it is typed by hand; tests/test_docs.py checks it is
up to date; and docs/tuned-all.png, the tuned sweeps in one plot.

    .venv/bin/python bench/readme_table.py          # rewrite the section of README.md, redraw the plot
    .venv/bin/python bench/readme_table.py --check  # exit 1 if README.md differs from what the json files say"""

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from esl_bench.compare import ci95, paired_difference, plus_minus  # noqa: E402
from esl_bench.markdown import replace_section, write_section  # noqa: E402

SWEEP = "compare-long-all"
BASELINES = ("static", "set", "rigl")
NAMES = {"static": "static", "set": "SET", "rigl": "RigL †"}


def render(docs: Path) -> str:
    sweep = json.loads((docs / f"{SWEEP}.json").read_text())
    rows = {(r["label"], r["density"]): r for r in sweep["summary"]}
    acc = {(r["label"], r["density"], r["seed"]): r["test_accuracy"] for r in sweep["runs"]}
    files = {}
    for r in sweep["runs"]:
        files.setdefault((r["label"], r["density"]), []).append(r["file_density"])
    dense = rows[("dense", 1.0)]
    s = sweep["settings"]
    lines = [f"Test accuracy (%) on `digits-bench` ({s['arch'].upper()} 1152-{s['hidden']}-10, {s['epochs']} epochs, "
             f"final model, all 7,200 test samples), mean ± 95 % CI over {dense['seeds']} paired seeds. "
             f"Dense: **{plus_minus(dense['accuracy'], dense['ci'])}**.", "",
             "| density | ESL | ESL vs dense | " + " | ".join(NAMES[b] for b in BASELINES)
             + " | ESL vs the best of them (paired) | ESL's synapses in model.net |",
             "|---:|---:|---:|" + "---:|" * len(BASELINES) + "---:|---:|"]
    for d in sorted({d for (lb, d) in rows if lb == "esl"}, reverse=True):
        esl = rows[("esl", d)]
        best = max(BASELINES, key=lambda b: rows[(b, d)]["accuracy"])
        verdict = _verdict(*paired_difference(acc, ("esl", d), (best, d))[:2])
        file_density = sum(files[("esl", d)]) / len(files[("esl", d)])
        lines.append(f"| {d:g} | {plus_minus(esl['accuracy'], esl['ci'])} | {plus_minus(*esl['vs_dense'][:2], True)} | "
                     + " | ".join(plus_minus(rows[(b, d)]["accuracy"], rows[(b, d)]["ci"]) for b in BASELINES)
                     + f" | {verdict} ({NAMES[best].rstrip(' †')}) | {file_density:.3f} |")
    peer = json.loads((docs / "peer-rigl.json").read_text())
    seeds = sorted(int(k) for k in peer["ours"])
    ref = {r["seed"]: r["test_accuracy"] for r in peer["reference"] if r["density"] == 0.1 and r["seed"] in seeds}
    gap = ci95([100 * (peer["ours"][str(k)] - ref[k]) for k in seeds])
    lines += ["", "Bold: the paired interval excludes zero. † RigL here is its earlier rule, which trailed the "
              "reference implementation (rigl-torch), and SET and RigL run their papers' defaults; `--method rigl` "
              "now trains bit for bit as rigl-torch does from one state, and is "
              f"{plus_minus(*gap, True)} points from it at 0.1 ({len(seeds)} paired seeds, their own random masks). "
              "The last column is model.net's density: SLAYER's 8-bit weights round the rest to zero."]
    lines += _against_pruning(docs)
    lines += _tuned(docs, 0.1)
    lines += _tuned_densities(docs)
    return "\n".join(lines)


def _verdict(lead: float, half: float) -> str:
    """A paired difference, in bold where its interval excludes zero."""
    text = plus_minus(lead, half, True)
    return f"**{text}**" if abs(lead) > half else text


def _against_pruning(docs: Path) -> list[str]:
    """A sentence on ESL against gradual magnitude pruning of a dense network, from docs/baselines.json."""
    path = docs / "baselines.json"
    if not path.exists():
        return []
    sweep = json.loads(path.read_text())
    acc = {(r["label"], r["density"], r["seed"]): r["test_accuracy"] for r in sweep["runs"]}
    cost = {(r["label"], r["density"]): r["train_cost"] for r in sweep["summary"]}  # mean over runs recording it
    parts = []
    for d in sorted({d for (lb, d, _) in acc if lb == "gmp"}, reverse=True):
        lead, half, n = paired_difference(acc, ("esl", d), ("gmp", d))
        ratio = cost.get(("esl", d), math.nan) / cost.get(("gmp", d), math.nan)
        if n < 2 or math.isnan(ratio):
            continue
        parts.append(f"at {d:g} ESL is {plus_minus(lead, half, True)} points from it ({n} paired seeds) at "
                     f"{ratio:.2f} of its training compute")
    if not parts:
        return []
    return ["", "Against pruning a dense network during training (GMP, Zhu & Gupta 2017, at its paper's schedule; "
                "docs/benchmarks.md, \"Pruning a dense network, and Deep R\"): " + "; ".join(parts) + "."]


def _complete(sweep: dict) -> bool:
    """Every row of the stored sweep has all of its declared seeds."""
    return {r["seeds"] for r in sweep["summary"]} <= {len(sweep["settings"]["seeds"])}


def _tuned(docs: Path, density: float) -> list[str]:
    """Every method at its validation winner (docs/tuned-<density>.json), against static and against tuned ESL;
    nothing until every run of the sweep is stored."""
    path = docs / f"tuned-{density:g}.json"
    if not path.exists():
        return []
    sweep = json.loads(path.read_text())
    acc = {(r["label"], r["density"], r["seed"]): r["test_accuracy"] for r in sweep["runs"]}
    rows = sorted((r for r in sweep["summary"] if "(tuned" in r["label"] and r["density"] == density),
                  key=lambda r: -r["accuracy"])
    if not _complete(sweep):
        return []
    esl = next(r["label"] for r in rows if r["method"] == "esl")

    def paired(a: str, b: str) -> str:
        lead, half, n = paired_difference(acc, (a, density), (b, density))
        return "-" if n < 2 else _verdict(lead, half)

    seeds = min(r["seeds"] for r in rows)
    lines = ["", f"Every method tuned alike at {density:g}: each at the winner of the same validation grid "
             f"(docs/tuning.md), {seeds} paired seeds on the test split, RigL by the published rule "
             "(docs/benchmarks.md, \"Every method tuned alike\"):", "",
             "| method (tuned setting) | test accuracy % | vs static (paired) | tuned ESL minus it (paired) | "
             "model.net density | training cost vs dense |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['label']} | {plus_minus(r['accuracy'], r['ci'])} | {paired(r['label'], 'static')} | "
                     f"{'-' if r['label'] == esl else paired(esl, r['label'])} | {r['file_density']:.3f} | "
                     f"{r['train_cost']:.3f} |")
    return lines


TUNED = ("static", "set", "rigl", "gmp", "deepr", "prune-after")
TUNED_NAMES = {"static": "static", "set": "SET", "rigl": "RigL", "gmp": "GMP", "deepr": "Deep R",
               "prune-after": "prune-after"}


def _tuned_sweeps(docs: Path) -> list[tuple[float, dict, dict, bool]]:
    """Per density whose tuned sweep is complete, densest first: (density, method -> its tuned summary row (static,
    prune-after and dense have no setting), run accuracies, whether its RigL rows predate rigl-torch's update step)."""
    out = []
    for path in sorted(docs.glob("tuned-*.json"), key=lambda p: -float(p.stem.split("-")[1])):
        sweep = json.loads(path.read_text())
        if not _complete(sweep):
            continue
        density = float(path.stem.split("-")[1])
        pick = {r["method"]: r for r in sweep["summary"] if "(tuned" in r["label"] or r["label"] == r["method"]}
        acc = {(r["label"], r["density"], r["seed"]): r["test_accuracy"] for r in sweep["runs"]}
        old = any(r["method"] == "rigl" and "skip_step" not in r["evolver"] for r in sweep["runs"])
        out.append((density, pick, acc, old))
    return out


def _tuned_densities(docs: Path) -> list[str]:
    """One row per density whose tuned sweep is complete: ESL and every baseline at its validation winner, and ESL
    against the best of them, paired."""
    rows, stale = [], False
    for density, pick, acc, old in _tuned_sweeps(docs):
        esl = pick["esl"]
        best = max(TUNED, key=lambda m: pick[m]["accuracy"])
        lead, half, _ = paired_difference(acc, (esl["label"], density), (pick[best]["label"], density))
        stale = stale or old
        cells = [plus_minus(pick[m]["accuracy"], pick[m]["ci"]) + (" ‡" if m == "rigl" and old else "")
                 for m in TUNED]
        cost = esl["train_cost"] / pick["gmp"]["train_cost"]
        rows.append(f"| {density:g} | {plus_minus(esl['accuracy'], esl['ci'])} | " + " | ".join(cells)
                    + f" | {_verdict(lead, half)} ({TUNED_NAMES[best]}) | {cost:.2f} |")
    if not rows:
        return []
    return ["", "Every method tuned alike: each at the winner of the same validation grid (docs/tuning.md; the "
                "winners at 0.1 also run at 0.2 and 0.05, those at 0.01 at 0.02), 5 paired seeds on the test split "
                "(docs/benchmarks.md, \"Every method tuned alike\"; plotted in docs/tuned-all.png):", "",
            "| density | ESL | " + " | ".join(TUNED_NAMES[m] for m in TUNED)
            + " | ESL minus the best of them (paired) | ESL's training compute / GMP's |",
            "|---:|---:|" + "---:|" * len(TUNED) + "---:|---:|", *rows,
            *(["", "‡ RigL trained with an optimizer step at its update steps, before it followed rigl-torch's update "
                   "step (docs/design.md)."] if stale else [])]


def plot_tuned(docs: Path) -> None:
    """docs/tuned-all.png: every method at its tuned setting, accuracy against density and against training compute."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from esl_train.atomic import atomic_path

    sweeps = _tuned_sweeps(docs)
    if not sweeps:
        return
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), constrained_layout=True)
    dense = sweeps[0][1]["dense"]
    axes[0].axhspan(dense["accuracy"] - dense["ci"], dense["accuracy"] + dense["ci"], color="k", alpha=0.15)
    axes[0].axhline(dense["accuracy"], color="k", ls="--", label="dense")
    colors = {"esl": "C3", "static": "C0", "set": "C1", "rigl": "C2", "gmp": "C4", "deepr": "C5", "prune-after": "C7"}
    for m in ("esl", *TUNED):
        pts = sorted((d, p[m]) for d, p, _, _ in sweeps)
        style = {"lw": 2.5 if m == "esl" else 1.5, "color": colors[m]}
        name = "ESL" if m == "esl" else TUNED_NAMES[m]
        axes[0].errorbar([d for d, _ in pts], [r["accuracy"] for _, r in pts], yerr=[r["ci"] for _, r in pts],
                         marker="o", capsize=3, label=name, **style)
        axes[1].plot([r["train_cost"] for _, r in pts], [r["accuracy"] for _, r in pts], marker="o", label=name,
                     **style)
    axes[0].set(xscale="log", xlabel="density (synapses kept)", ylabel="test accuracy (%)",
                title="every method tuned alike (mean ± 95 % CI, 5 paired seeds)")
    axes[1].set(xscale="log", xlabel="training compute / dense training's (RigL's count)", ylabel="test accuracy (%)",
                title="accuracy against training compute (one point per density)")
    for ax in axes:
        ax.set_ylim(max(35, ax.get_ylim()[0]), None)
        ax.legend(fontsize=8)
    with atomic_path(docs / "tuned-all.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if README.md is not what the json files say")
    args = p.parse_args()
    body = render(ROOT / "docs")
    readme = ROOT / "README.md"
    if args.check:
        same = replace_section(readme.read_text(), "results", body) == readme.read_text()
        print("README.md is up to date" if same else "README.md differs: run bench/readme_table.py")
        return 0 if same else 1
    write_section(readme, "results", body)
    plot_tuned(ROOT / "docs")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
