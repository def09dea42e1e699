"""Stop signals (Ctrl-C, SIGTERM, SIGHUP) raise at once *and* are recorded, so a stop always ends the command.

Python drops an exception raised where it cannot propagate: in a finalizer or a weakref callback ("Exception ignored
in: ..."), which is where h5py closes files. A signal landing there would be lost and the run would go on and exit 0.
The record makes `check()` raise it again at the next safe point (every training step, after a checkpoint or an
export, between Lava chunks and compared runs), and `esl_train.cli.main_wrapper` never reports success after one."""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[str] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a scheduler, `timeout`, a closed terminal), raised so the run stops as on Ctrl-C."""


def _stop(name: str) -> KeyboardInterrupt:
    return KeyboardInterrupt() if name == "SIGINT" else Terminated(name)


def _handler(signum, frame):
    name = signal.Signals(signum).name
    _received.append(name)
    raise _stop(name)


def install() -> dict:
    """Handle the stop signals here (forgetting any recorded before); returns the old handlers for `restore`."""
    _received.clear()
    return {s: signal.signal(s, _handler) for s in STOP_SIGNALS}


def ignore() -> None:
    """From here on a stop changes nothing: the command is saying how it ended (a launcher's SIGTERM to the other
    ranks must not cut that line short with a traceback)."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def restore(old: dict) -> None:
    for s, h in old.items():
        signal.signal(s, h)


def received() -> str | None:
    """The first stop signal received since `install`, if any."""
    return _received[0] if _received else None


def check() -> None:
    """Raise the stop again if one was received (it may have been swallowed where it first landed)."""
    if _received:
        raise _stop(_received[0])
