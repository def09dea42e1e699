"""SLAYER's CUDA kernels, or its PyTorch path on the GPU when they cannot be built.

lava-dl JIT-compiles two CUDA modules on first use (`torch.utils.cpp_extension.load`): the leaky-integrator
dynamics of the CUBA neuron and the time shift behind each block's one-step delay. That needs `ninja` and an `nvcc`
of the CUDA major version torch was built with (torch refuses another major version). torch caches the built
modules (TORCH_EXTENSIONS_DIR, default ~/.cache/torch_extensions), so only the first run compiles. lava-dl builds
for compute capability 8.0 on every card of major >= 8, which cannot run on Hopper (9.0): we build for the card we
run on. Where the kernels cannot be built or do not run, SLAYER's own PyTorch implementation of the same dynamics
runs on the GPU instead (bit-identical in the forward pass, slower), after a one-line warning that says why."""

from __future__ import annotations

import importlib
import re
import subprocess

# the modules themselves: their package namespaces re-export functions of the same names
_LI, _SHIFT, _DELAY, _TIME = (f"lava.lib.dl.slayer.{m}" for m in (
    "neuron.dynamics.leaky_integrator", "utils.time.shift", "axon.delay", "utils.time"))


def nvcc_problem(nvcc_release: str | None, torch_cuda: str | None) -> str | None:
    """Why this nvcc cannot build extensions for this torch, or None."""
    if torch_cuda is None:
        return "this torch has no CUDA support"
    if nvcc_release is None:
        return "no nvcc found (install the CUDA toolkit of torch's CUDA " + torch_cuda + " and set CUDA_HOME)"
    if nvcc_release.split(".")[0] != torch_cuda.split(".")[0]:
        return (f"nvcc is CUDA {nvcc_release} but torch was built for CUDA {torch_cuda}; install a CUDA "
                f"{torch_cuda.split('.')[0]}.x toolkit and point CUDA_HOME at it")
    return None


def _nvcc_release() -> str | None:
    from torch.utils.cpp_extension import CUDA_HOME  # torch's own search: CUDA_HOME, CUDA_PATH, nvcc on PATH, ...

    if CUDA_HOME is None:
        return None
    try:
        out = subprocess.run([f"{CUDA_HOME}/bin/nvcc", "--version"], capture_output=True, text=True, timeout=60).stdout
    except OSError:
        return None
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else None


def _build_and_check(device) -> str | None:
    """Compile (or load from torch's cache) both kernels for this card and compare them with the PyTorch path."""
    import torch
    from torch.utils.cpp_extension import is_ninja_available

    from lava.lib.dl.slayer import jitconfig

    li, ts = importlib.import_module(_LI), importlib.import_module(_SHIFT)
    problem = nvcc_problem(_nvcc_release(), torch.version.cuda)
    if problem:
        return problem
    if not is_ninja_available():
        return "ninja is not installed (pip install ninja)"
    major, minor = torch.cuda.get_device_capability(device)
    jitconfig.TORCH_CUDA_ARCH_LIST = f"{major}.{minor}"
    try:
        li.Accelerated.leaky_integrator, ts.Accelerated.shift  # noqa: B018 - the properties compile and load
        x = torch.rand(2, 3, 16, device=device) * 2
        decay, state = torch.tensor([1024.0], device=device), torch.zeros(2, 3, device=device)
        fast = li.Accelerated.leaky_integrator.dynamics(x, decay, state, 0.5, 64)
        slow = li._LIDynamics.apply(x, decay, state, 0.5, 64)
        if not torch.equal(fast, slow) or not torch.equal(ts.Accelerated.shift.shift(x, 1, 1),
                                                          ts._shift_group(x, 1, 1)):
            return "the built kernels disagree with SLAYER's PyTorch path on this card"
    except Exception as e:  # compiler and loader errors come in many types; the first line says what broke
        return f"building them failed ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})"
    return None


def use_pytorch_path() -> None:
    """Route SLAYER's CUDA tensors through its own PyTorch implementations (what it runs on the CPU)."""
    import torch

    li, ts = importlib.import_module(_LI), importlib.import_module(_SHIFT)

    def dynamics(input, decay, state, w_scale, threshold=None, debug=False):
        if torch.numel(state) == 1:
            state = state * torch.ones(input.shape[:-1], device=input.device)
        li._LIDynamics.DEBUG = False  # its debug mode would call the CUDA module to compare
        return li._LIDynamics.apply(input, decay, state, -1 if threshold is None else threshold, w_scale)

    def shift(input, shift_val, sampling_time=1):
        if hasattr(shift_val, "grad") and shift_val.numel() > 1:
            return ts._shift_individual(input, shift_val, sampling_time)
        return ts._shift_group(input, shift_val, sampling_time)

    li.dynamics = dynamics  # cuba.py looks it up at every call
    importlib.import_module(_TIME).shift = importlib.import_module(_DELAY).shift = shift


def prepare(device) -> str | None:
    """Before training on `device`: SLAYER's kernels ready, or its PyTorch path in place and the warning to print."""
    if device.type != "cuda":
        return None
    problem = _build_and_check(device)
    if problem is None:
        return None
    use_pytorch_path()
    return f"warning: SLAYER's CUDA kernels are not used: {problem}; SLAYER's PyTorch path runs on the GPU (slower)"
