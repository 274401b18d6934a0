"""Seconds per training iteration of every registered method on the reference `mog` setup.

Run with `python -m pytest benchmarks` (not part of the default test run); compare the methods'
means in one sitting, on one machine.
"""
import pytest
import torch

from stabench.cell import resolve
from stabench.methods import METHODS
from stabench.runner import Trainer, make_context


@pytest.mark.parametrize("method", METHODS.names())
def test_iteration_on_mog(benchmark, method):
    cell = resolve(method, "mog", budget="quick")
    game = cell.build_game(torch.device("cpu"))
    trainer = Trainer(cell, game, make_context(cell, game))
    trainer.step()  # first-call allocations out of the measurement
    benchmark.extra_info["threads"] = torch.get_num_threads()
    benchmark.pedantic(trainer.step, rounds=20, iterations=5)
