"""User-facing errors: one line that names the problem and the fix, exit code 2, no traceback."""


class UsageError(Exception):
    """Bad input from the user (arguments, data folder, files). The message says what to do."""

    exit_code = 2


def first_line(e: BaseException) -> str:
    """An unexpected error as one line (its type and the first line of its message), where a traceback cannot go."""
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
