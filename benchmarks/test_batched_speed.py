"""Seconds per training iteration of 8 seeds on the reference `mog` setup: one stacked model against the 8
single games one after another (what a CPU worker would do), on this machine's device and threads.

Run with `python -m pytest benchmarks/test_batched_speed.py`; compare `stacked` with `one_by_one` per method.
"""
import pytest
import torch

from stabench.cell import resolve
from stabench.runner import Trainer, make_context
from stabench.stacked import StackedContext, StackedGame

SEEDS = range(8)
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cells(method):
    return [resolve(method, "mog", seed=seed, budget="quick") for seed in SEEDS]


@pytest.mark.parametrize("method", ["vanilla", "gradreg"])
def test_one_by_one(benchmark, method):
    trainers = []
    for cell in cells(method):
        game = cell.build_game(DEVICE)
        trainers.append(Trainer(cell, game, make_context(cell, game)))

    def iteration():
        for trainer in trainers:
            trainer.step()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()

    iteration()  # first-call allocations out of the measurement
    benchmark.extra_info["threads"] = torch.get_num_threads()
    benchmark.pedantic(iteration, rounds=10, iterations=2)


@pytest.mark.parametrize("method", ["vanilla", "gradreg"])
def test_stacked(benchmark, method):
    each = cells(method)
    stacked = StackedGame.of([cell.build_game(DEVICE) for cell in each])
    trainer = Trainer(each[0], stacked, StackedContext(stacked, each[0].task_params, [c.seeds.noise for c in each]))

    def iteration():
        trainer.step()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()

    iteration()
    benchmark.extra_info["threads"] = torch.get_num_threads()
    benchmark.pedantic(iteration, rounds=10, iterations=2)
