"""`python -m esl_train`: bad input answers fast with one line; a tiny run writes a complete run folder."""

import json
import subprocess
import sys
import time

import h5py
import pytest


def cli(*args, cwd=None, timeout=240):
    start = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "esl_train", *args], capture_output=True, text=True, cwd=cwd,
                       timeout=timeout)
    return p, time.perf_counter() - start


def test_help_is_fast():
    p, seconds = cli("--help")
    assert p.returncode == 0 and "--density" in p.stdout and "--method" in p.stdout
    assert seconds < 2


def _parsers():
    """Every command's parser: (name, argparse parser), subcommands included."""
    import importlib

    for name in ("esl_train.__main__", "esl_deploy.run", "esl_deploy.budget", "esl_bench.compare", "esl_deploy.nir"):
        p = importlib.import_module(name).parser()
        subs = [a for a in p._actions if a.choices and hasattr(a, "_name_parser_map")]
        if subs:
            yield from ((f"{name} {k}", sp) for k, sp in subs[0].choices.items())
        else:
            yield name, p


@pytest.mark.parametrize("name, p", list(_parsers()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_option_has_help_and_says_its_default_at_most_once(name, p):
    formatter = p._get_formatter()
    for action in p._actions:
        if action.dest == "help":
            continue
        text = formatter._expand_help(action) if action.help else ""
        assert text and "(default: None)" not in text, (name, action.option_strings or action.dest)
        assert text.count("(default") <= 1, (name, action.option_strings, text)
    assert p.format_help().count("(default: None)") == 0


@pytest.mark.parametrize("args, words", [
    (["--density", "0"], "--density must be in (0, 1]"),
    (["--density", "-0.5"], "--density must be in (0, 1]"),
    (["--density", "1.5"], "--density must be in (0, 1]"),
    (["--density", "nan"], "--density must be in (0, 1]"),
    (["--density", "abc"], "invalid float value"),
    (["--method", "magic"], "invalid choice"),
    (["--arch", "resnet"], "invalid choice"),
    (["--dataset", "imagenet"], "invalid choice"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--steps", "1000000"], "--steps 1000000 with --batch-size 32 on digits needs about"),
    (["--batch-size", "1000000", "--steps", "1000"], "needs about"),
    (["--kernels", "numba"], "invalid choice"),
    (["--dataset", "nmnist"], "--data-dir"),
    (["--dataset", "nmnist", "--data-dir", "/nonexistent"], "put train.zip"),
    (["--method", "static", "--regrow", "random"], "does not evolve"),
    (["--out", "/dev/null/run"], "cannot write"),
    (["--out", "/dev/null"], "is a file"),
    (["--preset", "dvs-cifar10", "--data-dir", "/nonexistent"], "no .aedat4 files under /nonexistent/CIFAR10DVS"),
])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, args, words):
    p, seconds = cli(*args, cwd=tmp_path)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2, p.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], p.stderr
    assert "Traceback" not in p.stderr and seconds < 2
    assert list(tmp_path.iterdir()) == []  # no half-written run folder


def test_existing_run_folder_is_not_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.net").write_text("keep me")
    p, _ = cli("--out", str(tmp_path / "run"))
    assert p.returncode == 2 and "not empty" in p.stderr and "--resume" not in p.stderr  # no run to resume there
    (tmp_path / "run" / "config.json").write_text("{}")
    p, _ = cli("--out", str(tmp_path / "run"))
    assert p.returncode == 2 and f"--resume {tmp_path / 'run'}" in p.stderr  # a run folder: say how to continue it
    assert (tmp_path / "run" / "model.net").read_text() == "keep me"


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_tiny_run_writes_a_complete_run_folder(tmp_path, arch):
    out = tmp_path / "run"
    p, _ = cli("--density", "0.2", "--arch", arch, "--epochs", "2", "--steps", "8", "--hidden", "32",
               "--update-interval", "10", "--out", str(out), "--no-progress")
    assert p.returncode == 0, p.stderr
    assert {f.name for f in out.iterdir()} >= {"model.net", "metrics.json", "checkpoint.pt", "training.png",
                                                "config.json", "history.json"}
    m = json.loads((out / "metrics.json").read_text())
    assert 0 <= m["test_accuracy"] <= 1 and m["mask_updates"] > 0
    with h5py.File(out / "model.net") as f:  # counted from the file, as stored
        survivors = sum(int((f["layer"][k]["weight"][()] != 0).sum()) for k in f["layer"] if "weight" in f["layer"][k])
    assert sum(l["synapses"] for l in m["layers"]) == survivors == m["synapses"]
    assert m["density"] == pytest.approx(survivors / m["possible"])
    assert all(l["synapses"] + l["quantized_away"] == l["mask_synapses"] for l in m["layers"])
    # the mask holds 0.2; after 2 epochs from unscaled initial weights, with a third of them swapped for zeros at
    # every update, up to half of them still quantize to 0
    assert m["mask_density"] == pytest.approx(0.2, abs=1e-3) and 0.08 < m["density"] <= 0.2 + 1e-3
    assert (out / "training.png").read_bytes()[:4] == b"\x89PNG"


def test_a_new_run_records_its_whole_evolver_rule_so_a_resume_keeps_it(monkeypatch):
    from esl_train import config
    from esl_train.__main__ import _config, parser

    cfg = _config(parser().parse_args(["--density", "0.02"]))
    assert cfg.evolver == config.TrainConfig(method="esl", density=0.02).evolver_settings()
    assert cfg.evolver["drop_fraction"] == 0.3 and cfg.evolver["drop_by"] == "contribution"
    saved = json.loads(json.dumps(cfg.to_dict()))  # what config.json holds
    monkeypatch.setitem(config.PRESETS, "esl", {**config.PRESETS["esl"], "regrow": "random"})  # a later release
    assert config.TrainConfig.from_dict(saved).evolver_settings() == cfg.evolver


def test_esl_train_knows_nothing_of_deployment_or_the_harness():
    """Layering: esl_bench sits above esl_train and esl_deploy; esl_train imports neither."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "esl_train"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("esl_deploy", "esl_bench") for n in names), path
