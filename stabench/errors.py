"""Errors a user can cause: the CLI prints them as one line and exits with code 2."""
import difflib


class StabenchError(Exception):
    """A mistake in what the user asked for (a name, a value, a path), not a bug in stabench."""


class NotApplicable(StabenchError):
    """This method cannot train on this task (spectral normalization where D has no layer to normalise): a
    run records it as failed with this reason, so a leaderboard shows the pair as tried and why it failed."""


def did_you_mean(name: str, choices) -> str:
    """` Did you mean `x`?` for the closest of `choices`, or nothing when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" Did you mean `{close[0]}`?" if close else ""


def interrupt(signum, frame):
    """A signal handler that stops like Ctrl-C, so a run stopped by SIGTERM (`timeout`, a scheduler,
    a sweep stopping its workers) still records itself as interrupted."""
    raise KeyboardInterrupt


def one_line(error: BaseException, width: int = 300) -> str:
    """`Type: message` on one line, at most `width` characters of message, without the C++ frames that
    PyTorch's errors carry (a record's traceback keeps those): what a record or a note says of an error."""
    text = " ".join(str(error).split("\nException raised from ")[0].split())
    text = text if len(text) <= width else text[:width - 1] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
