"""The training plot: accuracy, per-layer density and synapse turnover over training."""

from __future__ import annotations

from pathlib import Path

from .atomic import atomic_path


def plot_training(history: list[dict], path: str | Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    ax = axes[0]
    ax.plot(epochs, [h["train_accuracy"] for h in history], label="train")
    ax.plot(epochs, [h["test_accuracy"] for h in history], label="test")
    ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    ax.legend()
    layers = list(history[0]["layer_density"]) if history else []
    for name in layers:
        axes[1].plot(epochs, [h["layer_density"][name] for h in history], marker=".", label=name)
        axes[2].plot(epochs, [h["swapped"][name] for h in history], label=name)
    axes[1].set(xlabel="epoch", ylabel="active / possible synapses", title="density per layer (mask)", ylim=(0, 1.05))
    axes[2].set(xlabel="epoch", ylabel="synapses", title="cumulative synapses regrown")
    for ax in axes[1:]:
        if layers:
            ax.legend()
    fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
