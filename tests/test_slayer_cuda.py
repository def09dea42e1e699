"""SLAYER on CUDA: when its kernels cannot be built, its PyTorch path takes over with one line saying why.

No GPU here: the CUDA build itself is checked by bench/gpu_check.py on a GPU machine; these tests check the
decision and that the rerouted PyTorch path computes what SLAYER computes."""

import importlib

import torch

import lava.lib.dl.slayer as slayer

from esl_train import slayer_cuda
from esl_train.models import NEURON


def test_nvcc_must_match_torchs_cuda_major():
    assert slayer_cuda.nvcc_problem("12.4", "12.1") is None
    assert "CUDA 13.0 but torch was built for CUDA 12.1" in slayer_cuda.nvcc_problem("13.0", "12.1")
    assert "no nvcc found" in slayer_cuda.nvcc_problem(None, "12.1")
    assert "no CUDA support" in slayer_cuda.nvcc_problem("12.1", None)


def test_cpu_needs_nothing():
    assert slayer_cuda.prepare(torch.device("cpu")) is None


def _block_run(seed=0):
    torch.manual_seed(seed)
    block = slayer.block.cuba.Dense(NEURON, 12, 5, weight_scale=4)
    x = (torch.rand(3, 12, 10) < 0.4).float()
    out = block(x)
    out.sum().backward()
    return out.detach(), block.synapse.weight.grad.clone()


def test_rerouted_pytorch_path_computes_what_slayer_computes(monkeypatch):
    li, delay, time = (importlib.import_module(m) for m in (slayer_cuda._LI, slayer_cuda._DELAY, slayer_cuda._TIME))
    for owner, name in ((li, "dynamics"), (time, "shift"), (delay, "shift")):
        monkeypatch.setattr(owner, name, getattr(owner, name))  # restored after the test
    original = (li.dynamics, delay.shift)
    before = _block_run()
    slayer_cuda.use_pytorch_path()
    assert li.dynamics is not original[0] and delay.shift is not original[1]  # really rerouted
    after = _block_run()
    assert before[0].sum() > 0
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
