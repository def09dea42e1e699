"""Spike counts of a batch, fast for bool spikes."""

from __future__ import annotations

import torch


def batch_sum(x: torch.Tensor) -> torch.Tensor:
    """`x` summed over its first (batch) dimension. Bool spikes are summed as bytes in chunks of 255 samples, which
    cannot overflow, then widened: torch's own bool sum widens the whole batch to int64 first, several times slower."""
    if x.dtype != torch.bool:
        return x.sum(0)
    return sum(chunk.sum(0, dtype=torch.uint8).to(torch.int32) for chunk in x.view(torch.uint8).split(255))
