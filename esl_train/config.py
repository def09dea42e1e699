"""Run configuration and the method presets. Imports nothing heavy: the CLI validates with it in milliseconds."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from .device import check_name

METHODS = ("dense", "static", "set", "rigl", "esl", "gmp", "prune-after", "deepr")
PRUNING = ("none", "gradual", "once")  # sparsity.pruning: dense-to-sparse schedules
ARCHS = ("mlp", "conv")
DATASETS = ("digits", "digits-bench", "nmnist", "dvsgesture", "cifar10dvs")
EMBEDDED = ("digits", "digits-bench")  # generated here; the others are read through tonic from --data-dir
ALLOCATIONS = ("er", "erk", "uniform")
REGROW_RULES = ("gradient", "random", "unexplored", "unexplored-gradient", "unexplored-active")
GRADIENT_RULES = ("gradient", "unexplored-gradient")  # rules that need the dense gradient at an update
ACTIVITY_RULES = ("unexplored-active",)  # rules that need the presynaptic spike counts at an update
# |w|; |w| x presynaptic spike rate (the synapse's mean drive); or |w| within each sign, the same share of the positive
# and of the negative weights (SET's reference code)
DROP_CRITERIA = ("magnitude", "contribution", "magnitude-per-sign")
SCHEDULES = ("cosine", "constant")
LR_SCHEDULES = ("constant", "cosine")
# CPU implementation of the CUBA blocks: ours (fused neuron dynamics, an 8-bit first synapse) or lava-dl's own
KERNELS = ("auto", "slayer")

RESET_STATES = ("changed", "new", "none")  # whose optimizer moments an update zeroes (sparsity.EvolverConfig)
DROP_COUNTS = ("round", "floor")  # synapses dropped per layer at an update: fraction x active, rounded or floored
# the fields of sparsity.EvolverConfig besides density
EVOLVER_KEYS = ("evolve", "allocation", "regrow", "drop_fraction", "update_interval", "evolve_until", "schedule",
                "protect_new", "rescale_init", "drop_by", "regrow_dropped", "reset_state", "skip_step", "drop_count",
                "prune", "prune_start", "l1", "temperature", "budget", "refill", "top_up")
BUDGETS = ("mask", "on-chip")  # what the density counts: the mask's synapses, or those whose 8-bit weight is non-zero
REFILLS = ("zero", "quantum", "late")  # where the on-chip budget's refill synapses start (EvolverConfig.refill)

# Evolver settings of each method; explicit CLI flags override them. update_interval 0 = once per epoch.
PRESETS: dict[str, dict] = {
    "static": {"evolve": False, "allocation": "er"},
    # SET (Mocanu 2018): ER graph, after every epoch drop 30 % smallest |w|, regrow as many at random.
    "set": {"allocation": "er", "regrow": "random", "schedule": "constant", "drop_fraction": 0.3,
            "update_interval": 0, "evolve_until": 1.0},
    # RigL (Evci 2020, google-research/rigl): ERK, every 100 steps drop the smallest |w|, then grow the largest
    # |dense grad| among every connection inactive after the drop (a just-dropped one can be chosen again and keeps
    # its weight); new connections start at zero; cosine decay to 75 %. Adam's moments are kept, as rigl-torch keeps
    # them: google-research/rigl zeroes the optimizer slots of new connections (made for momentum SGD), which under
    # Adam's global step count cost about 1 point on validation (docs/design.md, "RigL against the reference"). An
    # update step takes no optimizer step, and counts are floored, as in rigl-torch: from one state, ours and rigl-torch
    # then train bit for bit alike (bench/peer_rigl.py --lockstep).
    "rigl": {"allocation": "erk", "regrow": "gradient", "schedule": "cosine", "drop_fraction": 0.3,
             "update_interval": 100, "evolve_until": 0.75, "regrow_dropped": True, "reset_state": "none",
             "skip_step": True, "drop_count": "floor"},
    # ESL (Shen 2023): ER graph, weak synapses pruned and new ones regenerated every T_iter steps at fixed
    # density. Rule and schedule are not published; this one won the ablations on the benchmark set's validation
    # split (docs/tuning.md): every 100 steps drop the 30 % weakest by contribution, |w| x the input's spike count
    # (cosine decay to 0 at 75 % of training), regrow as many among synapses never active before (exploring the
    # whole graph before revisiting any), drawn in proportion to their input's spike count, and protect the
    # synapses just grown from the next prune (they start at zero and need an interval to grow). The drop fraction
    # and interval won the grid every evolving method got, at 0.1 and at 0.01 alike.
    "esl": {"allocation": "er", "regrow": "unexplored-active", "drop_by": "contribution", "schedule": "cosine",
            "drop_fraction": 0.3, "update_interval": 100, "evolve_until": 0.75, "protect_new": True},
    # GMP (Zhu & Gupta 2017): dense start, the smallest |w| of each layer pruned every 100 steps on the cubic schedule
    # from 10 % to 75 % of training, to the same per-layer budget (ER) as the sparse methods; then fine-tuning.
    "gmp": {"allocation": "er", "prune": "gradual", "prune_start": 0.1, "evolve_until": 0.75, "update_interval": 100},
    # what ESL contrasts itself with: train dense for the first two thirds of --epochs, prune by magnitude to the
    # density once, fine-tune for the last third (the dense phase is part of --epochs: the total is --epochs)
    "prune-after": {"allocation": "er", "prune": "once", "evolve_until": 2 / 3},
    # Deep R (Bellec 2018): fixed signs, a synapse whose weight crosses zero goes dormant and a random dormant one
    # wakes at zero, every step; an L1 prior of lr x 1e-3 per step, no noise (its paper's setting; on validation
    # no prior did as well, docs/tuning.md).
    "deepr": {"allocation": "er", "l1": 1e-3, "temperature": 0.0},
}


# Whole-run presets (--preset NAME); explicit flags override them. docs/presets.md says where we had to choose.
RUN_PRESETS: dict[str, dict] = {
    # ESL-SNNs' DVS-CIFAR10 experiment: 10 % density, 300 epochs (paper); 48x48 input, T=10, conv width: ours.
    "dvs-cifar10": {"dataset": "cifar10dvs", "arch": "conv", "density": 0.1, "method": "esl", "epochs": 300,
                    "steps": 10, "hidden": 512, "batch_size": 32},
}


@dataclass
class TrainConfig:
    density: float = 0.1
    method: str = "esl"
    arch: str = "mlp"
    dataset: str = "digits"
    data_dir: str | None = None
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    lr_schedule: str = "constant"  # cosine: decay to 0 over training (steadier final model; the benchmark uses it)
    steps: int = 20  # time steps per sample
    hidden: int = 128
    seed: int = 0
    out: str | None = None
    device: str = "auto"  # where it trains (esl_train.device); not part of what the run is: a resume may move it
    workers: int = 0  # DataLoader worker processes (0: load in the training process); a resume may change it
    cache: bool = True  # real data sets: keep framed samples in tonic's disk cache; a resume may change it
    kernels: str = "auto"  # esl_train.kernels (auto) or lava-dl's own CPU code (slayer); a resume may change it
    evolver: dict = field(default_factory=dict)  # overrides of the method's preset

    def evolver_settings(self) -> dict:
        return {**PRESETS.get(self.method, {}), **{k: v for k, v in self.evolver.items() if v is not None}}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def validate(self) -> None:
        """Raise ValueError with a message that names the problem and the fix."""
        if not isinstance(self.evolver, dict) or set(self.evolver) - set(EVOLVER_KEYS):
            raise ValueError(f"evolver settings must be a mapping with keys among {', '.join(EVOLVER_KEYS)}")
        if not (isinstance(self.density, (int, float)) and not math.isnan(self.density) and 0 < self.density <= 1):
            raise ValueError(f"--density must be in (0, 1], got {self.density}; e.g. --density 0.1 keeps 10 %")
        if self.method == "dense" and self.density != 1:
            self.density = 1.0
        for name, value, choices in (("method", self.method, METHODS), ("arch", self.arch, ARCHS),
                                     ("dataset", self.dataset, DATASETS), ("lr-schedule", self.lr_schedule,
                                                                          LR_SCHEDULES)):
            if value not in choices:
                raise ValueError(f"unknown --{name} {value!r}; choose one of {', '.join(choices)}")
        for name in ("epochs", "batch_size", "steps", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= 1):
            raise ValueError(f"--lr must be in (0, 1], got {self.lr}; e.g. --lr 1e-3")
        check_name(self.device)
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 0:
            raise ValueError(f"--workers must be 0 or more, got {self.workers}")
        if self.kernels not in KERNELS:
            raise ValueError(f"unknown --kernels {self.kernels!r}; choose one of {', '.join(KERNELS)}")
        if not isinstance(self.cache, bool):
            raise ValueError(f"cache must be true or false, got {self.cache!r}")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**32):
            raise ValueError(f"--seed must be an integer in [0, 2**32), got {self.seed}")
        ev = self.evolver_settings()
        if not 0 <= ev.get("drop_fraction", 0) <= 1:
            raise ValueError(f"--drop-fraction must be in [0, 1], got {ev['drop_fraction']}")
        if not 0 <= ev.get("evolve_until", 0) <= 1:
            raise ValueError(f"--evolve-until is a fraction of training in [0, 1], got {ev['evolve_until']}")
        if ev.get("drop_by", "magnitude") not in DROP_CRITERIA:
            raise ValueError(f"unknown --drop-by {ev['drop_by']!r}; choose one of {', '.join(DROP_CRITERIA)}")
        if ev.get("regrow", "gradient") not in REGROW_RULES:
            raise ValueError(f"unknown --regrow {ev['regrow']!r}; choose one of {', '.join(REGROW_RULES)}")
        if ev.get("reset_state", "changed") not in RESET_STATES:
            raise ValueError(f"unknown --reset-state {ev['reset_state']!r}; choose one of {', '.join(RESET_STATES)}")
        if ev.get("drop_count", "round") not in DROP_COUNTS:
            raise ValueError(f"unknown --drop-count {ev['drop_count']!r}; choose one of {', '.join(DROP_COUNTS)}")
        if ev.get("prune", "none") not in PRUNING:
            raise ValueError(f"unknown prune schedule {ev['prune']!r}; choose one of {', '.join(PRUNING)}")
        if not 0 <= ev.get("prune_start", 0) < ev.get("evolve_until", 1):
            raise ValueError(f"--prune-start must be in [0, --evolve-until), got {ev['prune_start']}")
        for name in ("l1", "temperature"):
            if not (math.isfinite(ev.get(name, 0.0)) and ev.get(name, 0.0) >= 0):
                raise ValueError(f"--{name} must be a finite number >= 0, got {ev[name]}")
        if ev.get("budget", "mask") not in BUDGETS:
            raise ValueError(f"unknown --budget {ev['budget']!r}; choose one of {', '.join(BUDGETS)}")
        if ev.get("budget", "mask") == "on-chip" and self.method not in ("set", "rigl", "esl"):
            raise ValueError(f"--budget on-chip is for the methods that swap synapses (set, rigl, esl), not "
                             f"{self.method}")
        if ev.get("refill", "zero") not in REFILLS:
            raise ValueError(f"unknown refill {ev['refill']!r}; choose one of {', '.join(REFILLS)}")
        if ev.get("top_up", False) and ev.get("budget", "mask") != "on-chip":
            raise ValueError("--top-up rounds up what the on-chip budget misses at the end; add --budget on-chip")
        if ev.get("refill", "zero") != "zero" and ev.get("budget", "mask") != "on-chip":
            raise ValueError(f"refill {ev['refill']!r} places the synapses the on-chip budget grows; add --budget "
                             f"on-chip")
        if ev.get("update_interval", 0) < 0:
            raise ValueError(f"--update-interval must be >= 0 (0 = once per epoch), got {ev['update_interval']}")
