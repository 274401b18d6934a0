"""stabench: a benchmark suite and leaderboard for GAN training stabilizers."""
from stabench.context import Context, TrainingParams
from stabench.errors import StabenchError
from stabench.game import Batch, Field, Game, Point
from stabench.hyperparams import hyperparameter
from stabench.loggers import LOGGERS, LoggedRun, Logger
from stabench.methods import METHODS, Method, MethodParams, Schedule
from stabench.records import RunRecord, package_version
from stabench.references import register_reference
from stabench.seeds import Seeds
from stabench.tasks import TASKS, Budget, Task, TaskParams

__version__ = package_version()

register_method = METHODS.register
register_task = TASKS.register
register_logger = LOGGERS.register
unregister_logger = LOGGERS.unregister
unregister_method = METHODS.unregister
unregister_task = TASKS.unregister
get_method = METHODS.get
get_task = TASKS.get


def load_runs(path):
    """Every run record under `path` as one tidy DataFrame; see `stabench.table.load_runs`."""
    from stabench.table import load_runs as load

    return load(path)


def run(method, task, **options) -> RunRecord:
    """Train one (method, task, seed) cell and write its record; see `stabench.runner.run`."""
    from stabench.runner import run as run_cell

    return run_cell(method, task, **options)


__all__ = [
    "Batch", "Budget", "Context", "Field", "Game", "LoggedRun", "Logger", "Method", "MethodParams", "Point", "RunRecord", "Schedule",
    "Seeds", "StabenchError", "Task", "TaskParams", "TrainingParams", "get_method", "get_task", "hyperparameter",
    "load_runs", "register_logger", "register_method", "register_reference", "register_task", "run", "unregister_logger", "unregister_method",
    "unregister_task",
]
