"""A reference simulator of a NIR graph in Loihi's integer arithmetic, written from the .nir file alone.

It knows NIR and the CUBA reading of docs/interop.md, nothing of SLAYER, Lava or our netx code: if its spikes equal
the twin's, the exported graph says all there is to know about the network."""

import nir
import numpy as np


def _shift_to_zero(x: np.ndarray) -> np.ndarray:
    """Loihi's decay: a 12-bit right shift that rounds towards zero."""
    return np.sign(x) * (np.abs(x) >> 12)


def _conv(x: np.ndarray, w: np.ndarray, node) -> np.ndarray:
    """x (N, C, H, W, T), integer w (O, C, kh, kw), groups 1 -> (N, O, H', W', T)."""
    assert int(node.groups) == 1
    (sh, sw), (ph, pw), (dh, dw) = (np.broadcast_to(np.asarray(v), (2,)) for v in
                                    (node.stride, node.padding, node.dilation))
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw), (0, 0)))
    kh, kw = w.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, :, ::dh, ::dw]  # (N, C, H', W', T, kh, kw)
    return np.einsum("nchwtij,ocij->nohwt", windows, w)


def run(graph: "nir.NIRGraph", spikes: np.ndarray) -> list[np.ndarray]:
    """Feed (N, *input shape, T) spikes through the chain of `graph`; every neuron node's output spikes."""
    dt = float(graph.metadata["dt"])
    delay = int(graph.metadata.get("layer_delay_steps", 0))
    succ = dict(graph.edges)
    name = next(k for k, n in graph.nodes.items() if isinstance(n, nir.Input))
    x = spikes.astype(np.int64)
    n_samples, steps = x.shape[0], x.shape[-1]
    out = []
    while not isinstance(graph.nodes[succ[name]], nir.Output):
        name = succ[name]
        node = graph.nodes[name]
        if isinstance(node, nir.Flatten):
            x = x.reshape(n_samples, -1, steps)
        elif isinstance(node, nir.Linear):
            w = np.round(np.asarray(node.weight, np.float64) * 64).astype(np.int64)
            x = np.einsum("oi,nit->not", w, x)
        elif isinstance(node, nir.Conv2d):
            x = _conv(x, np.round(np.asarray(node.weight, np.float64) * 64).astype(np.int64), node)
        elif isinstance(node, nir.CubaLIF):
            first = lambda a: float(np.asarray(a).ravel()[0])  # noqa: E731 - our layers share their parameters
            i_decay = round(4096 * dt / first(node.tau_syn))
            v_decay = round(4096 * dt / first(node.tau_mem))
            theta = round(first(node.v_threshold) * 64) * 64  # state scale 2^12, weights and threshold 2^6
            current = np.zeros(x.shape[:-1], np.int64)
            voltage = np.zeros_like(current)
            s = np.zeros(x.shape, bool)
            for t in range(steps):
                current = _shift_to_zero(current * (4096 - i_decay)) + 64 * x[..., t]
                voltage = _shift_to_zero(voltage * (4096 - v_decay)) + current
                s[..., t] = voltage > theta
                voltage[s[..., t]] = 0
            s = np.concatenate([np.zeros((*s.shape[:-1], delay), bool), s[..., : steps - delay]], axis=-1)
            out.append(s)
            x = s.astype(np.int64)
        else:
            raise AssertionError(f"reference does not know {type(node).__name__}")
    return out
