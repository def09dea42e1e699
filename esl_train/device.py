"""`--device auto|cpu|cuda|cuda:N`: where the model, its masks and the loss live; checked before anything is written."""

from __future__ import annotations

import re

from .errors import UsageError

PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_name(name: str) -> None:
    """Syntax only (no torch import), for config validation."""
    if not isinstance(name, str) or not PATTERN.fullmatch(name):
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")


def resolve(name: str):
    """The torch device for `name`: auto is the first CUDA device where there is one, else the CPU."""
    import torch

    from . import distributed

    check_name(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(f"--device {name}: this machine has no CUDA device that torch can use; use --device cpu "
                         "(or auto)")
    index = int(name.split(":")[1]) if ":" in name else distributed.local_rank()  # torchrun: one GPU a rank
    if index >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0 to "
                         f"cuda:{torch.cuda.device_count() - 1})")
    return torch.device("cuda", index)
