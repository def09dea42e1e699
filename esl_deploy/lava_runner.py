"""Run a netx file on Lava: many samples through one compiled network, back to back.

Each sample gets a slot of L = T + 2*n_layers steps: netx's `reset_interval=L` zeroes layer k at slot
step k, the input spikes occupy steps [n, n + T) of the slot, and the trailing n empty steps let the
last input drain before the next reset. Layer outputs in steps [n, n + T) equal SLAYER's (Lava's
one-step delay per layer matches SLAYER's `delay_shift`).

Lava's worker processes are always stopped, whatever happens. They are forked while Ctrl-C, SIGTERM and SIGHUP
are only recorded, and keep that harmless handler: a terminal's Ctrl-C (sent to the whole process group) or a
scheduler's SIGTERM stops this process alone, which then stops Lava in order. They also die with
this process (PR_SET_PDEATHSIG), so even a SIGKILL of it leaves no worker behind."""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from esl_train.errors import UsageError
from esl_train.quiet import import_lava_dl

BACKENDS = ("sim", "loihi")
STOP_SECONDS = 20  # an orderly stop that takes longer is given up: the workers are killed
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_forking_lava = threading.Event()


def _die_with_parent() -> None:
    if _forking_lava.is_set():
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


os.register_at_fork(after_in_child=_die_with_parent)


@contextmanager
def _workers_shielded():
    """Start Lava's workers with the stop signals only recorded (a forked child keeps that handler, so they never
    stop it) and multiprocessing's resource tracker with them blocked (an exec'd child keeps a blocked mask, not a
    handler); a signal that arrived meanwhile is delivered to this process afterwards."""
    from multiprocessing import resource_tracker

    pending = []
    old = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in _SIGNALS}
    _forking_lava.set()
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            resource_tracker.ensure_running()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        yield
    finally:
        _forking_lava.clear()
        for s, h in old.items():
            signal.signal(s, h)
        for s in pending[:1]:
            signal.raise_signal(s)


def _kill(net) -> None:
    """Last resort when an orderly stop hangs: kill the workers, then let the shared-memory server unlink its
    segments (it ignores the signals, so it is still there to do it)."""
    infra = getattr(getattr(net, "runtime", None), "_messaging_infrastructure", None)
    actors = list(getattr(infra, "actors", []))
    actors = [p for p in actors if not getattr(p, "_closed", False)]  # closed: already stopped and released
    for p in actors:
        if p.is_alive():
            p.kill()
    for p in actors:
        mp.Process.join(p, 5)  # Lava's SystemProcess.join takes no timeout
    try:
        infra.smm.shutdown()
    except Exception:  # noqa: BLE001 - already gone
        pass
    for p in mp.active_children():  # whatever else Lava started (its watchdog manager)
        p.kill()
        p.join(timeout=5)


def stop(net) -> None:
    """Stop Lava in order if it answers within STOP_SECONDS, else kill its workers. A second Ctrl-C skips the wait."""
    done = threading.Event()

    def orderly():
        try:
            net.stop()
        except Exception:  # noqa: BLE001 - a broken runtime is killed below
            pass
        finally:
            done.set()

    threading.Thread(target=orderly, daemon=True).start()
    interrupted = None
    try:
        finished = done.wait(STOP_SECONDS)
    except KeyboardInterrupt as e:  # a signal during the stop: kill now, then let it end the command
        finished, interrupted = False, e
    if not finished or mp.active_children():
        _kill(net)
    if interrupted is not None:
        raise interrupted


@dataclass
class LavaResult:
    layers: list[np.ndarray]  # per weighted layer: bool spikes (N, *shape, T), SLAYER layout
    first_chunk_seconds: float  # includes compiling and starting the runtime
    first_chunk_steps: int
    seconds: float  # wall time of the whole run
    steps: int  # Lava time steps run
    slot: int  # time steps per sample
    tile: int = 1  # copies of the network side by side: samples per slot
    drain_counts: list[np.ndarray] | None = None  # per layer, spikes per neuron outside the T compared steps

    @property
    def steady(self) -> bool:
        """Whether ms_per_step leaves start-up out: only a run of more than one chunk can."""
        return self.steps > self.first_chunk_steps

    @property
    def ms_per_step(self) -> float:
        """Steady-state cost of one time step: the first chunk, which includes start-up, is left out if possible."""
        if self.steady:
            return 1000 * (self.seconds - self.first_chunk_seconds) / (self.steps - self.first_chunk_steps)
        return 1000 * self.seconds / self.steps

    @property
    def ms_per_sample(self) -> float:
        return self.ms_per_step * self.slot / self.tile


MAX_TILE = 256  # the MLP per sample: 0.84 ms at 256 copies, 1.46 at 64, 0.82 at 512 (bench/deploy_speed.py)
MAX_TILED_NEURONS = 2**18  # the conv net (1,738 neurons a copy) per sample: 3.3 ms at 128 copies, 4.7 at 256


def auto_tile(net_file, n_samples: int) -> int:
    """Copies side by side: at most MAX_TILE and MAX_TILED_NEURONS neurons, spread evenly over the slots the samples
    need so that the last slot is not mostly empty."""
    most = max(1, min(MAX_TILE, MAX_TILED_NEURONS // sum(layer.neurons for layer in net_file.weighted)))
    slots = -(-n_samples // most)
    return max(1, -(-n_samples // max(1, slots)))


def run_config(backend: str):
    if backend == "sim":
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.sparse.process import Sparse

        from .lava_procs.sparse_dot import SparseDotModel

        # bit-accurate to Loihi (netx has no float models); sparse synapses summed without per-step copies
        return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={Sparse: SparseDotModel})
    if backend == "loihi":
        from lava.utils import loihi

        if not loihi.is_installed():
            raise UsageError("--backend loihi needs Intel's Loihi stack (lava-loihi with nxcore) and access to a "
                             "Loihi 2 system, which this machine lacks; use --backend sim")
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg()
    raise UsageError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def unroll(layer, in_shape: tuple[int, ...], weight: np.ndarray | None = None):
    """A conv layer as its synapse matrix, (output neurons, input neurons) in SLAYER's (C, H, W) order: entry (o, i, j)
    x (c, h, w) holds the kernel weight that connects them, as torch's conv2d applies it. `weight`: the kernel to
    place (default the layer's own)."""
    from scipy.sparse import coo_matrix

    w = layer.weight if weight is None else weight
    (c_in, h_in, w_in), (c_out, h_out, w_out) = in_shape, layer.shape
    (s0, s1), (p0, p1), (d0, d1), groups = (layer.conv[k] for k in ("stride", "padding", "dilation", "groups"))
    o, cg, a, b = np.nonzero(w)
    c = (o // (c_out // groups)) * (c_in // groups) + cg  # the kernel's input channel within its group
    # every kernel entry (axis 0) at every output position (axes 1, 2), kept where it falls inside the input
    i, j = np.arange(h_out)[None, :, None], np.arange(w_out)[None, None, :]
    h, x = np.broadcast_arrays(i * s0 - p0 + (a * d0)[:, None, None], j * s1 - p1 + (b * d1)[:, None, None])
    inside = (h >= 0) & (h < h_in) & (x >= 0) & (x < w_in)
    rows = ((o[:, None, None] * h_out + i) * w_out + j)[inside]
    cols = ((c[:, None, None] * h_in + h) * w_in + x)[inside]
    data = np.broadcast_to(w[o, cg, a, b][:, None, None], inside.shape)[inside]
    shape = (c_out * h_out * w_out, c_in * h_in * w_in)
    return coo_matrix((data, (rows, cols)), shape).tocsr()


def synapse_matrices(net_file, weights: list[np.ndarray] | None = None) -> list:
    """Each weighted layer as a CSR matrix (its neurons x its inputs, SLAYER's order): a dense layer's weight, a conv
    layer unrolled (`unroll`). `weights`: the integer weights to place (default the file's)."""
    from scipy.sparse import csr_matrix

    layers = net_file.weighted
    shapes = [net_file.input_shape] + [layer.shape for layer in layers[:-1]]
    weights = weights if weights is not None else [layer.weight for layer in layers]
    return [csr_matrix(w) if layer.type == "dense" else unroll(layer, shape, w)
            for layer, shape, w in zip(layers, shapes, weights)]


def _tiled(net_file, tile: int, slot: int):
    """`tile` copies of a network in one Lava network of netx's own Dense blocks (the same neuron parameters and
    weight-bit optimisation as netx.hdf5.Network builds) with block-diagonal weights, built sparse: a dense block
    matrix of 64 copies of the default MLP would not fit in memory. A conv layer goes in unrolled into its synapse
    matrix (`unroll`), neurons in SLAYER's (C, H, W) order: the same integer sums as netx's conv, which cannot hold
    independent copies. Each block goes in as CSR, since `block_diag` of an ndarray keeps its zeros as stored
    entries: ten times the work per step at density 0.1."""
    from scipy.sparse import block_diag

    netx = import_lava_dl().netx
    optimized = [netx.utils.optimize_weight_bits(layer.weight.astype(np.int64)) for layer in net_file.weighted]
    matrices = synapse_matrices(net_file, [weight for weight, *_ in optimized])
    blocks = []
    for i, (layer, matrix, (_, bits, exponent, sign_mode)) in enumerate(zip(net_file.weighted, matrices, optimized)):
        neuron = {**layer.neuron, "type": "CUBA"}  # netx_file.read accepts CUBA neurons only
        params = netx.hdf5.Network.get_neuron_params(neuron, reset_interval=slot, reset_offset=i + 1)
        block = netx.blocks.process.Dense(
            shape=(tile * matrix.shape[0],), neuron_params=params, num_weight_bits=bits, weight_exponent=exponent,
            sign_mode=sign_mode, input_message_bits=blocks[-1].output_message_bits if blocks else 0,
            weight=block_diag([matrix] * tile, format="csr"), sparse_synapse=True)
        if blocks:
            blocks[-1].out.connect(block.inp)
        blocks.append(block)
    return blocks[0], blocks[0].inp, blocks


def run(path: str, net_file, spikes: np.ndarray, backend: str = "sim", sparse: bool = True,
        chunk: int = 20, progress: bool = True, tile: int = 1) -> LavaResult:
    """Run `spikes` (N, P, H, W, T) through the network in `path` and record every layer.

    `tile` > 1 runs that many copies of the network side by side, one sample each per slot (`_tiled`): the same
    spikes, many fewer Lava time steps (a Lava step costs far more than the arithmetic in it)."""
    cfg = run_config(backend)
    netx = import_lava_dl().netx
    from lava.magma.core.run_conditions import RunSteps

    from .lava_procs.spike_files import FileSink, FileSource

    if tile < 1:
        raise UsageError(f"--tile must be at least 1, got {tile}")
    n_samples, steps = spikes.shape[0], spikes.shape[-1]
    depth = len(net_file.weighted)
    slot = steps + 2 * depth
    if tile > 1:
        net, inp, layers = _tiled(net_file, tile, slot)
    else:
        net = netx.hdf5.Network(net_config=str(path), reset_interval=slot, sparse_fc_layer=sparse)
        inp, layers = net.inp, net.layers
    slots = -(-n_samples // tile)
    total = slots * slot
    if len(inp.shape) == 1:
        x = spikes.reshape(n_samples, -1, steps)  # (P, H, W) flattened as SLAYER does (and as `_tiled` orders it)
    else:
        x = spikes.transpose(0, 3, 2, 1, 4)  # Lava's conv layout is (x, y, channel)
    if tile * x.shape[1] != inp.shape[0] or x.shape[2:-1] != tuple(inp.shape[1:]):
        raise UsageError(f"the data give inputs of shape {x.shape[1:-1]} but the network takes {inp.shape}; "
                         "pick the --dataset (and --steps) the network was trained on")
    spike_dir = tempfile.TemporaryDirectory(prefix="esl-lava-")
    data = np.lib.format.open_memmap(f"{spike_dir.name}/input.npy", mode="w+", dtype=bool, shape=(total, *inp.shape))
    width = x.shape[1]
    for i in range(n_samples):
        s, k = divmod(i, tile)  # sample i: slot s, copy k
        data[s * slot + depth : s * slot + depth + steps, k * width : (k + 1) * width] = np.moveaxis(x[i], -1, 0)
    data.flush()
    del data
    source = FileSource(f"{spike_dir.name}/input.npy")
    source.s_out.connect(inp)
    files = [f"{spike_dir.name}/layer{i}.npy" for i in range(len(layers))]
    for layer, path in zip(layers, files):
        sink = FileSink(shape=layer.out.shape, path=path, steps=total)
        layer.out.connect(sink.a_in)
    start = time.perf_counter()
    first, first_steps = None, 0
    bar = tqdm(total=n_samples, unit="sample", desc=f"lava {backend}", disable=not progress, dynamic_ncols=True)
    try:
        with _workers_shielded():
            net.create_runtime(run_cfg=cfg)
        done = 0
        while done < slots:  # `chunk` slots per run() call: each call has a fixed cost of its own
            k = min(chunk, slots - done)
            net.run(condition=RunSteps(num_steps=k * slot), run_cfg=cfg)
            bar.update(min((done + k) * tile, n_samples) - min(done * tile, n_samples))
            done += k
            if first is None:
                first, first_steps = time.perf_counter() - start, k * slot
    finally:
        bar.close()
        stop(net)
    seconds = time.perf_counter() - start
    with spike_dir:
        raw = [np.moveaxis(np.load(path), 0, -1) for path in files]  # (*lava shape, total)
    layers_out, drain = [], []
    for r, layer in zip(raw, net_file.weighted):
        r = np.moveaxis(r.reshape(*r.shape[:-1], slots, slot), -2, 0)  # (slots, *lava shape, slot)
        if tile > 1:  # (slots, tile * neurons, .) -> (slots * tile, *shape, .): copy k of slot s is sample s * tile + k
            r = r.reshape(slots * tile, *layer.shape, slot)
        elif r.ndim == 5:
            r = r.transpose(0, 3, 2, 1, 4)  # Lava's conv layout (x, y, c) -> (c, y, x)
        r = r[:n_samples]
        layers_out.append(r[..., depth : depth + steps])
        drain.append(r.sum(axis=(0, -1)) - layers_out[-1].sum(axis=(0, -1)))  # the steps Lava runs besides
    return LavaResult(layers_out, first, first_steps, seconds, total, slot, tile, drain)
