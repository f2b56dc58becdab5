"""User-facing errors: raised for a user's mistake, printed by the CLI as one line, never a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad path, missing weights, bad flag): the message says what to do."""
