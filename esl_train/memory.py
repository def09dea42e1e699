"""What a size option implies in memory, checked before the work starts: one line naming the option and the fix,
instead of a MemoryError (or the kernel's OOM killer) deep inside framing, training or a Lava run."""

from __future__ import annotations

import math
import os

from .errors import UsageError

# recordings, test recordings, (P, H, W) of the embedded sets (docs/data.md)
EMBEDDED = {"digits": (1_797, 360, (2, 24, 24)), "digits-bench": (35_940, 7_200, (2, 24, 24))}
FLOAT_COPIES = 10  # float32 copies of a sample-step's activity that a training step keeps (autograd, state, grads)


def available() -> int:
    """Bytes of memory available now (MemAvailable), or the physical memory where /proc is not there."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check(need: float, what: str, fix: str) -> None:
    """UsageError when `need` bytes would not fit in what is available (with a fifth kept for everything else)."""
    have = available()
    if need > 0.8 * have:
        raise UsageError(f"{what} needs about {_size(need)} of memory and {_size(have)} is available; {fix}")


def _size(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def input_shape(dataset: str) -> tuple[int, int, int]:
    if dataset in EMBEDDED:
        return EMBEDDED[dataset][2]
    from .data.tonic_sets import REAL_SETS

    return REAL_SETS[dataset].input_shape


def neurons(arch: str, inputs: int, hidden: int) -> int:
    """Spiking neurons of the network, roughly: the conv net's two layers hold about inputs x hidden / 64."""
    return hidden if arch == "mlp" else inputs * hidden // 64


def framed(dataset: str, steps: int) -> int:
    """Bytes of a data set held in memory once framed: an embedded set whole, as bool; a real one sample by sample."""
    return EMBEDDED[dataset][0] * math.prod(input_shape(dataset)) * steps if dataset in EMBEDDED else 0


def check_training(dataset: str, steps: int, batch_size: int, arch: str, hidden: int) -> None:
    inputs = math.prod(input_shape(dataset))
    batch = batch_size * steps * (inputs + neurons(arch, inputs, hidden)) * 4 * FLOAT_COPIES
    check(framed(dataset, steps) + batch, f"--steps {steps} with --batch-size {batch_size} on {dataset}",
          "pass a smaller --steps (time bins per sample; 10-100 is usual) or --batch-size")


def check_rasters(samples: int, steps: int, inputs: int, neurons: int, what: str, fix: str, also: int = 0) -> None:
    """Every sample's input and spikes at every step: Lava's and the twin's rasters (bool) and the twin's floats,
    with `also` bytes needed beside them (the framed data set)."""
    check(also + samples * steps * (inputs + neurons) * 6, what, fix)
