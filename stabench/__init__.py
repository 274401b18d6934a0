"""stabench: a benchmark suite and leaderboard for GAN training stabilizers."""
from stabench.context import Context, TrainingParams
from stabench.errors import NotApplicable, StabenchError
from stabench.game import LOSSES, Batch, Field, Game, Point, negate, squared_norm
from stabench.hyperparams import hyperparameter
from stabench.loggers import LOGGERS, LoggedRun, Logger
from stabench.methods import METHODS, Method, MethodParams, Schedule
from stabench.recipes import Recipe, register_recipe
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


def aggregates(runs):
    """Per budget, each method's IQM and P(better than vanilla) over the mode-coverage tasks of `runs` (from
    `load_runs`); see `stabench.table.aggregates`."""
    from stabench.table import aggregates as aggregate

    return aggregate(runs)


def explain(method=None, task=None, **options):
    """Every hyperparameter of a run with its value and the layer that set it; see `stabench.configs.explain`."""
    from stabench.configs import explain as explain_settings

    return explain_settings(method, task, **options)


def run(method, task, **options) -> RunRecord:
    """Train one (method, task, seed) cell and write its record; see `stabench.runner.run`."""
    from stabench.runner import run as run_cell

    return run_cell(method, task, **options)


__all__ = [
    "LOSSES", "Batch", "Budget", "Context", "Field", "Game", "LoggedRun", "Logger", "Method", "MethodParams",
    "NotApplicable", "Point", "Recipe", "RunRecord", "Schedule", "Seeds", "StabenchError", "Task", "TaskParams",
    "TrainingParams", "aggregates", "explain", "get_method", "get_task", "hyperparameter", "load_runs", "negate",
    "register_logger", "register_method", "register_recipe", "register_reference", "register_task", "run",
    "squared_norm", "unregister_logger", "unregister_method",
    "unregister_task",
]
