"""The task registry and the built-in tasks (one file per task)."""
from stabench.registry import Registry
from stabench.tasks.base import Budget, Task, TaskParams
from stabench.tasks.mog import MixtureOfGaussians

TASKS: Registry[Task] = Registry("task", Task)

TASKS.register(MixtureOfGaussians())

__all__ = ["TASKS", "Budget", "Task", "TaskParams"]
