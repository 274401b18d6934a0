"""The task registry and the built-in tasks (one file per task)."""
from stabench.registry import Registry
from stabench.tasks.base import Budget, Task, TaskParams, check_task
from stabench.tasks.dirac import DiracGan
from stabench.tasks.grid25 import Grid25
from stabench.tasks.lq import LinearQuadratic1d, LinearQuadraticGaussian
from stabench.tasks.mog import MixtureOfGaussians
from stabench.tasks.stacked_mnist import StackedMnist

TASKS: Registry[Task] = Registry("task", Task, check=check_task)

TASKS.register(MixtureOfGaussians())
TASKS.register(Grid25())
TASKS.register(StackedMnist())
TASKS.register(LinearQuadraticGaussian())
TASKS.register(LinearQuadratic1d())
TASKS.register(DiracGan())

__all__ = ["TASKS", "Budget", "Task", "TaskParams"]
