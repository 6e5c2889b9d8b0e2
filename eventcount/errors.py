"""The one exception type for problems a user can fix (bad files, bad options)."""


class EventcountError(Exception):
    """A problem with the user's input, worded so the user can act on it.

    The CLI prints the message on one line and exits with status 1 (no traceback).
    """
