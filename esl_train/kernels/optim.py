"""torch's Adam, bit for bit, without the cost of square roots of zero.

A sparse network's optimizer holds second moments that are exactly 0 wherever a synapse never had a gradient (about
80 % of them under ESL at density 0.1), and on this project's CPUs torch's float32 square root takes about 30 times
as long on a zero as on other numbers (bench/train_speed.py --sqrt, docs/benchmarks.md). This Adam runs the steps of
torch's single-tensor Adam (torch.optim.adam._single_tensor_adam, the path torch takes on a CPU) in the same order,
except that the square root is taken with zeros replaced by ones and then put back: every element keeps its place,
so each result is the one torch's kernel gives (its square root is not the correctly rounded one everywhere: it must
be torch's own). Options outside that path (amsgrad, maximize, foreach, fused, capturable, differentiable, CUDA,
complex or tensor learning rates) run torch's own step."""

from __future__ import annotations

import math

import torch


def sqrt_skipping_zeros(x: torch.Tensor) -> torch.Tensor:
    """torch.sqrt(x) bit for bit for x >= 0 (or NaN), without the square root of any zero: zeros become ones for the
    root (1 - sign(x) + x) and zeros again after it (times sign(x)), each step exact and branch-free (masked_fill and
    where branch per element: where zeros and other numbers mix they cost as much as the roots they save)."""
    sign = x.sign()
    return torch.sub(1, sign).add_(x).sqrt_().mul_(sign)


class Adam(torch.optim.Adam):
    """torch.optim.Adam whose CPU step avoids square roots of zero; state, state_dict and results are torch's."""

    def _plain(self, group: dict) -> bool:
        return (not any(group[k] for k in ("amsgrad", "maximize", "foreach", "fused", "capturable", "differentiable"))
                and not torch.is_tensor(group["lr"])
                and all(not p.is_cuda and not torch.is_complex(p) for p in group["params"]))

    @torch.no_grad()
    def step(self, closure=None):
        if not all(self._plain(group) for group in self.param_groups):
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, [], steps)
            beta1, beta2 = group["betas"]
            for param, grad, exp_avg, exp_avg_sq, step_t in zip(params, grads, exp_avgs, exp_avg_sqs, steps):
                step_t += 1
                if group["weight_decay"] != 0:
                    grad = grad.add(param, alpha=group["weight_decay"])
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = step_t.item()
                step_size = group["lr"] / (1 - beta1 ** step)
                denom = (sqrt_skipping_zeros(exp_avg_sq) / math.sqrt(1 - beta2 ** step)).add_(group["eps"])
                param.addcdiv_(exp_avg, denom, value=-step_size)
        return loss
