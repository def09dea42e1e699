# Two entry points for a fresh machine: `make train` and `make test`. Both set up .venv first (once).
# Python 3.10 comes from .python-version (pyenv); uv installs the locked set (no triton: CPU only).
VENV := .venv
PY := $(VENV)/bin/python
UV := python3 -m uv

.PHONY: setup train test bench lock neurobench peer-rigl
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m pip install -q --disable-pip-version-check uv
	$(UV) venv -q --allow-existing -p 3.10 $(VENV)
	$(UV) pip sync -q -p $(PY) requirements.lock
	$(UV) pip install -q -p $(PY) --no-deps -e .
	touch $@

train: setup
	$(PY) -m esl_train --density 0.1

test: setup
	$(PY) -m pytest

neurobench: setup  # optional extra: snnTorch + NeuroBench 2.3 beside our torch 2.3.1 (bench/interop.py), Norse for tests
	$(UV) pip install -q -p $(PY) "torch==2.3.1" "numpy<2" -e ".[neurobench]"
	$(UV) pip install -q -p $(PY) --no-deps "norse==1.1.0"

peer-rigl: setup  # optional extra: the reference RigL (rigl-torch 0.5.2, no dependencies of its own) for bench/peer_rigl.py
	$(UV) pip install -q -p $(PY) --no-deps "rigl-torch==0.5.2"

lock:  # after changing dependencies in pyproject.toml
	$(UV) pip compile -q pyproject.toml --extra test -p 3.10 --python-platform x86_64-unknown-linux-gnu -o requirements.lock
