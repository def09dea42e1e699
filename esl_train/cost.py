"""What training costs, counted as RigL's paper counts it (Evci et al. 2020, appendix H), beside the SNN's own count.

Per training step and layer: the multiply-accumulates (MACs) of the active synapses in the forward pass, twice that
backward (the input gradient and the weight gradient), and on a step that takes the dense weight gradient (RigL's
update steps) the weight gradient of every inactive synapse too; dense training of the same network is the same
count with every synapse active, so GMP's dense phase costs what it costs. A dense layer does one MAC per synapse per
sample and time step, a convolution one per output position. Beside it, the forward pass's synaptic operations
(SynOps): one per input spike per active synapse it reaches, which is what a spike-driven chip would spend."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .kernels.counts import batch_sum


class TrainingCost:
    def __init__(self, blocks: dict[str, torch.nn.Module], masks: dict[str, torch.Tensor] | None = None,
                 world_size: int = 1):
        """`blocks`: the network's weighted blocks by layer name; `masks`: the evolver's (None: every synapse)."""
        self.masks = masks
        self.world_size = world_size  # each rank counts its own share of the batch
        self.macs = self.dense_macs = self.synops = 0.0
        self._step_active = self._step_possible = 0.0
        self._hooks = [b.synapse.register_forward_pre_hook(self._count(name)) for name, b in blocks.items()]

    def _count(self, name: str):
        def hook(module, args):
            if not module.training:
                return  # evaluation is not training compute
            x = args[0].detach()
            w = module.weight
            active = self.masks[name] if self.masks is not None else torch.ones_like(w, dtype=torch.bool)
            spikes = batch_sum(x).sum(-1).float()  # (C, ...) spike counts, all steps: convolution is linear
            samples = x.shape[0] * x.shape[-1]
            if w.shape[2:4] == (1, 1) and x.dim() == 3:  # dense: (N, in, T)
                per_weight = 1
                fan_out = active.reshape(w.shape[0], -1).sum(0).to(spikes.dtype)
                self.synops += float(spikes @ fan_out)
            else:  # conv: (N, C, H, W, T) through (out, in, kh, kw, 1)
                stride, padding, dilation = module.stride[:2], module.padding[:2], module.dilation[:2]
                h, wd = ((x.shape[2 + i] + 2 * padding[i] - dilation[i] * (w.shape[2 + i] - 1) - 1) // stride[i] + 1
                         for i in range(2))
                per_weight = h * wd
                reached = F.conv2d(spikes[None], active[..., 0].to(spikes.dtype), stride=stride, padding=padding,
                                   dilation=dilation, groups=module.groups)
                self.synops += float(reached.sum())
            self._step_active += per_weight * samples * float(active.sum())
            self._step_possible += per_weight * samples * math.prod(w.shape)
        return hook

    def step(self, dense_gradient: bool = False) -> None:
        """After each training step; `dense_gradient`: this step computed every synapse's weight gradient."""
        extra = self._step_possible - self._step_active if dense_gradient else 0.0
        self.macs += 3 * self._step_active + extra
        self.dense_macs += 3 * self._step_possible
        self._step_active = self._step_possible = 0.0

    def summary(self) -> dict:
        n = self.world_size
        return {"train_flops": 2 * n * self.macs, "dense_train_flops": 2 * n * self.dense_macs,
                "train_cost_vs_dense": self.macs / self.dense_macs if self.dense_macs else float("nan"),
                "train_synops": n * self.synops}

    def state_dict(self) -> dict:
        return {"macs": self.macs, "dense_macs": self.dense_macs, "synops": self.synops}

    def load_state_dict(self, state: dict) -> None:
        self.macs, self.dense_macs, self.synops = state["macs"], state["dense_macs"], state["synops"]
