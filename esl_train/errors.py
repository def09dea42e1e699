"""User-facing errors: one line that names the problem and the fix, exit code 2, no traceback."""


class UsageError(Exception):
    """Bad input from the user (arguments, data folder, files). The message says what to do."""

    exit_code = 2
