"""Errors a user can cause: the CLI prints them as one line and exits with code 2."""


class StabenchError(Exception):
    """A mistake in what the user asked for (a name, a value, a path), not a bug in stabench."""
