"""User-facing errors: raised for a user's mistake, printed by the CLI as one line, never a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad path, missing weights, bad flag): the message says what to do."""


class Interrupted(Exception):
    """Training stopped on SIGINT/SIGTERM after saving: the CLI says so in one line and exits 128 + signal."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
