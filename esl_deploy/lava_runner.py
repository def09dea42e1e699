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
    try:
        finished = done.wait(STOP_SECONDS)
    except KeyboardInterrupt:
        finished = False
    if not finished or mp.active_children():
        _kill(net)


@dataclass
class LavaResult:
    layers: list[np.ndarray]  # per weighted layer: bool spikes (N, *shape, T), SLAYER layout
    first_chunk_seconds: float  # includes compiling and starting the runtime
    first_chunk_steps: int
    seconds: float  # wall time of the whole run
    steps: int  # Lava time steps run
    slot: int  # time steps per sample

    @property
    def ms_per_step(self) -> float:
        """Steady-state cost of one time step: the first chunk, which includes start-up, is left out if possible."""
        if self.steps > self.first_chunk_steps:
            return 1000 * (self.seconds - self.first_chunk_seconds) / (self.steps - self.first_chunk_steps)
        return 1000 * self.seconds / self.steps


def run_config(backend: str):
    if backend == "sim":
        from lava.magma.core.run_configs import Loihi2SimCfg

        return Loihi2SimCfg(select_tag="fixed_pt")  # bit-accurate to Loihi; netx has no float models
    if backend == "loihi":
        from lava.utils import loihi

        if not loihi.is_installed():
            raise UsageError("--backend loihi needs Intel's Loihi stack (lava-loihi with nxcore) and access to a "
                             "Loihi 2 system, which this machine lacks; use --backend sim")
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg()
    raise UsageError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def run(path: str, net_file, spikes: np.ndarray, backend: str = "sim", sparse: bool = True,
        chunk: int = 20, progress: bool = True) -> LavaResult:
    """Run `spikes` (N, P, H, W, T) through the network in `path` and record every layer."""
    cfg = run_config(backend)
    netx = import_lava_dl().netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    n_samples, steps = spikes.shape[0], spikes.shape[-1]
    depth = len(net_file.weighted)
    slot = steps + 2 * depth
    total = n_samples * slot
    net = netx.hdf5.Network(net_config=str(path), reset_interval=slot, sparse_fc_layer=sparse)
    if len(net.inp.shape) == 1:
        x = spikes.reshape(n_samples, -1, steps)  # (P, H, W) flattened as SLAYER does
    else:
        x = spikes.transpose(0, 3, 2, 1, 4)  # Lava's conv layout is (x, y, channel)
    if x.shape[1:-1] != tuple(net.inp.shape):
        raise UsageError(f"the data give inputs of shape {x.shape[1:-1]} but the network takes {net.inp.shape}; "
                         "pick the --dataset (and --steps) the network was trained on")
    data = np.zeros((*x.shape[1:-1], total), np.int32)
    for i in range(n_samples):
        data[..., i * slot + depth : i * slot + depth + steps] = x[i]
    source = Source(data=data)
    source.s_out.connect(net.inp)
    sinks = []
    for layer in net.layers:
        sink = Sink(shape=layer.out.shape, buffer=total)
        layer.out.connect(sink.a_in)
        sinks.append(sink)
    start = time.perf_counter()
    first, first_steps = None, 0
    bar = tqdm(total=n_samples, unit="sample", desc=f"lava {backend}", disable=not progress, dynamic_ncols=True)
    try:
        with _workers_shielded():
            net.create_runtime(run_cfg=cfg)
        done = 0
        while done < n_samples:
            k = min(chunk, n_samples - done)
            net.run(condition=RunSteps(num_steps=k * slot), run_cfg=cfg)
            done += k
            bar.update(k)
            if first is None:
                first, first_steps = time.perf_counter() - start, k * slot
        raw = [s.data.get() for s in sinks]
    finally:
        bar.close()
        stop(net)
    seconds = time.perf_counter() - start
    layers = []
    for r in raw:
        r = r.reshape(*r.shape[:-1], n_samples, slot)[..., depth : depth + steps]
        r = np.moveaxis(r, -2, 0)  # (N, *lava shape, T)
        if r.ndim == 5:
            r = r.transpose(0, 3, 2, 1, 4)  # (x, y, c) -> (c, y, x)
        layers.append(r > 0)
    return LavaResult(layers, first, first_steps, seconds, total, slot)
