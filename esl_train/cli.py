"""What every command line of the project shares: one-line argument errors, signals that stop a run like Ctrl-C,
the checks of an output folder, and the wrapper that turns every failure into one line and an exit code.

Imports nothing heavy: `--help` and bad input answer in milliseconds."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from . import launch, signals
from .errors import UsageError, first_line
from .signals import Terminated


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line, like every other error."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default said once: not added where there is none (None: a preset or the data decides, as the
    help says) or where the help already names it."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def check_output_folder(value: str | Path, flag: str, must_be_empty: bool = False, hint: str = "") -> Path:
    """The folder `value` names, checked now, not after the work: it must be (or become) a folder we write in."""
    if not str(value).strip():  # before Path(), which would read "" as "."
        raise UsageError(f"{flag} is empty; pass a folder")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file; pass a folder")
    if must_be_empty and path.is_dir() and any(path.iterdir()):
        raise UsageError(f"{flag} {path} is not empty; pick a new folder{hint}")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        what = "folder" if parent == path else f"folder {parent} above it"
        raise UsageError(f"cannot write to {path} (the {what} is not writable); pass {flag} with a folder you can "
                         "write to")
    return path


def check_output_file(value: str | Path, flag: str, source: str | Path | None = None, force: bool = False) -> Path:
    """The file `value` names, checked before the work: not empty, not a folder, in a folder we can write in, never
    the `source` it is made from, and not an existing file unless `force`."""
    if not str(value).strip():
        raise UsageError(f"{flag} is empty; pass a file name")
    path = Path(value)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; pass a file name inside it")
    if source is not None and path.exists() and Path(source).exists() and path.samefile(source):
        raise UsageError(f"{flag} {path} is the input file itself; pass another name for the output")
    if path.exists() and not force:
        raise UsageError(f"{flag} {path} exists; pass another name, or --force to replace it")
    if path.exists() and not path.is_file():
        raise UsageError(f"{flag} {path} is not a regular file (a device, pipe or socket); pass a file name")
    if not path.parent.is_dir():
        raise UsageError(f"{flag} {path}: the folder {path.parent} does not exist; create it first")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to {path} (the folder is not writable); pass {flag} in a folder you can "
                         "write to")
    return path


def check_input_file(value: str | Path, folder_hint: str, missing_hint: str) -> Path:
    """The file `value` names, checked before it is opened: there, a file, readable; the hints say what to pass."""
    path = Path(value)
    if path.is_dir():
        raise UsageError(f"{path} is a folder; {folder_hint}")
    if path.exists() and not path.is_file():
        raise UsageError(f"{path} is not a regular file (a device, pipe or socket); {folder_hint}")
    if not path.is_file():
        raise UsageError(f"{path} does not exist; {missing_hint}")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path} cannot be read (permission denied); make it readable (chmod +r) or copy it")
    return path


def _message(e: UsageError) -> str:
    """The error's own line; a DataLoader worker's error comes back with the worker's traceback wrapped around it."""
    text = str(e)
    if "\nOriginal Traceback" in text:  # torch's ExceptionWrapper.reraise: the message is the traceback's last line
        text = text.rstrip().splitlines()[-1].split(": ", 1)[-1] + " (in a DataLoader worker)"
    return text


def main_wrapper(run, argv=None, interrupted_hint=lambda: "") -> int:
    """Call `run(argv)`; bad input, OS errors and signals end in one line on stderr and an exit code.

    `interrupted_hint()` is added to the line printed on Ctrl-C, SIGTERM or SIGHUP (e.g. how to resume). Under
    `esl_train.launch` the line goes to the launcher, which prints one for the whole job."""
    old = signals.install()
    try:
        code = run(argv)
        signals.check()  # a stop that was swallowed on its way never ends in success
        return code
    except UsageError as e:  # progress bars are closed in `finally` before errors get here
        if signals.received():  # an error caused by the stop itself: the stop is what happened
            return _interrupted(signals.received(), interrupted_hint)
        return _say(f"error: {_message(e)}", e.exit_code)
    except KeyboardInterrupt as e:
        return _interrupted(str(e) if isinstance(e, Terminated) else "SIGINT", interrupted_hint)
    except OSError as e:  # disk full, a folder made read-only during the run, ...
        return _say(f"error: {e.strerror or e} ({e.filename or 'output'}); {os_error_fix(e)}", 2)
    except Exception as e:  # a bug or a lost peer: the traceback, except under the launcher (its first line)
        if not launch.launched():
            raise
        return _say(f"error: {first_line(e)}", 1)
    finally:
        signals.restore(old)


def _interrupted(name: str, hint) -> int:
    return _say(f"\ninterrupted ({'Ctrl-C' if name == 'SIGINT' else name}){hint()}", 130, interrupted=True)


def os_error_fix(e: OSError) -> str:
    """What to do about a failed write, by its cause."""
    if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO):
        return "free space or pick another output folder"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "pick an output folder you can write to"
    return "pick another output folder"


def _say(line: str, exit_code: int, interrupted: bool = False) -> int:
    signals.ignore()  # main_wrapper restores the handlers afterwards
    if launch.launched():
        launch.report(line, exit_code, interrupted)
    else:
        print(line, file=sys.stderr)
    return exit_code
