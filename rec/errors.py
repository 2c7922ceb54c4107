"""One exception type for every expected failure: the CLI turns it into one line and an exit code."""

EXIT_FAILURE = 1  # something went wrong while working
EXIT_USAGE = 2  # bad usage or missing inputs


class RecError(Exception):
    """An expected failure with a message meant for the user (no traceback)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(RecError):
    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)
