"""`python -m esl_train.launch`: torchrun, with one line for the whole job when it fails.

    python -m esl_train.launch --standalone --nproc_per_node 2 -m esl_train --epochs 20 ...

Takes torchrun's own options (it is torchrun's launcher, called as a library). Plain torchrun ends a failed job with
its own multi-line report after every rank's message, and the ranks it stops print theirs too. Here the ranks hand
their one line to the launcher instead of printing it (`report`), and the launcher prints the one that explains the
job's end: a rank that died without a word (killed, out of memory), else the first error, else rank 0's
interruption line with its resume hint. Imports nothing heavy until it launches."""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from .atomic import write_text
from .errors import UsageError, first_line

REPORTS = "ESL_LAUNCH_REPORTS"  # environment: the folder where each rank leaves its line
COMMAND = "ESL_LAUNCH_COMMAND"  # environment: the launcher's command up to the module, for the resume hint


def launched() -> bool:
    return bool(os.environ.get(REPORTS))


def command(module: str = "esl_train") -> str:
    """How to start `module` again the way this process was started: under the launcher, with its options."""
    return f"{os.environ.get(COMMAND, f'{interpreter()} -m')} {module}"


def interpreter() -> str:
    """This Python as a user would type it here: `.venv/bin/python` for the project's own, else `python`."""
    try:
        rel = os.path.relpath(sys.executable)
    except ValueError:  # another drive
        return "python"
    return rel if not rel.startswith("..") and os.sep in rel else "python"


def report(line: str, exit_code: int, interrupted: bool) -> None:
    """This rank's one line, for the launcher to choose from."""
    rank = os.environ.get("RANK", "0")
    write_text(Path(os.environ[REPORTS]) / f"rank{rank}.json",
               json.dumps({"line": line.strip(), "exit": exit_code, "interrupted": interrupted, "time": time.time()}))


def _reports(folder: Path) -> dict[int, dict]:
    got = {}
    for path in folder.glob("rank*.json"):
        try:
            got[int(path.stem[4:])] = json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # a rank killed while writing leaves only a temp file; a torn file would be a bug elsewhere
    return got


def verdict(failures: dict[int, tuple[int, str]], reports: dict[int, dict]) -> tuple[str, int]:
    """The job's one line and exit code. `failures`: rank -> (exit code, signal name) of ranks that failed."""
    silent = sorted(r for r in failures if r not in reports)
    if silent:
        rank = silent[0]
        code, name = failures[rank]
        how = f"was killed by {name}" if code < 0 else f"exited with code {code} without a message"
        return f"error: rank {rank} {how}; the other ranks were stopped", 1
    errors = sorted((rep["time"], r) for r, rep in reports.items() if not rep["interrupted"])
    if errors:
        rank = errors[0][1]
        return reports[rank]["line"], reports[rank]["exit"]
    if reports:
        first = reports.get(0) or reports[min(reports)]
        return first["line"], first["exit"]
    return "interrupted", 130


def main(argv: list[str] | None = None) -> int:
    import logging

    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    parser = get_args_parser()
    parser.prog = "python -m esl_train.launch"

    def refuse(message):
        raise UsageError(f"{message} (see {parser.prog} --help)")

    parser.error = refuse
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(["--monitor-interval", "0.5", *argv])
        if not (str(args.nproc_per_node).isdigit() and int(args.nproc_per_node) > 0
                or args.nproc_per_node in ("auto", "cpu", "gpu")):
            refuse(f"--nproc_per_node takes a number of processes (or auto, cpu, gpu), got {args.nproc_per_node!r}")
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    own = argv[:len(argv) - 1 - len(args.training_script_args)]  # torchrun's options, ending in -m when given
    os.environ[COMMAND] = shlex.join([interpreter(), "-m", "esl_train.launch", *own])
    # torchrun's agent logs warnings and a failure report: the verdict below replaces them
    logging.disable(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="esl-launch-") as folder:
        os.environ[REPORTS] = folder
        try:
            run(args)
            return 0
        except ChildFailedError as e:
            failures = {rank: (f.exitcode, f.signal_name()) for rank, f in e.failures.items()}
        except (SignalException, KeyboardInterrupt):  # the agent has stopped the ranks by now
            failures = {}
        except Exception as e:  # the launch itself: a rendezvous that times out, a port in use, ...
            print(f"error: {first_line(e)}", file=sys.stderr)
            return 1
        line, code = verdict(failures, _reports(Path(folder)))
        print(line, file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
