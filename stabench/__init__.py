"""stabench: a benchmark suite and leaderboard for GAN training stabilizers."""
__version__ = "0.1.0"

from stabench.errors import StabenchError  # noqa: E402
from stabench.game import Batch, Field, Game, Point  # noqa: E402
from stabench.methods import METHODS, Method, MethodParams, Schedule  # noqa: E402
from stabench.tasks import TASKS, Budget, Task, TaskParams  # noqa: E402

register_method = METHODS.register
register_task = TASKS.register
get_method = METHODS.get
get_task = TASKS.get


def load_runs(path):
    """Every run record under `path` as one tidy DataFrame; see `stabench.table.load_runs`."""
    from stabench.table import load_runs as load

    return load(path)


def run(method, task, **options):
    """Train one (method, task, seed) cell and write its record; see `stabench.runner.run`."""
    from stabench.runner import run as run_cell

    return run_cell(method, task, **options)


__all__ = [
    "Batch", "Budget", "Field", "Game", "Method", "MethodParams", "Point", "Schedule", "StabenchError",
    "Task", "TaskParams", "get_method", "get_task", "load_runs", "register_method", "register_task", "run",
]
