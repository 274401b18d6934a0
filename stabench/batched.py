"""Train the seeds of one (method, task, settings) cell together, one record per seed.

On a GPU the small games are launch-bound, so the seeds train as one stacked model (`stabench.stacked`),
and where the method allows, each iteration is replayed as a CUDA graph (`stabench.graphs`). Every seed
keeps its own record, the same in form and run_id as a single run's: the same data, noise and evaluation
streams, evaluated on its own; a seed that diverges is recorded at its step and frozen while the others
go on. Its timing is the batch's (the record's notes say so). On the CPU, stacking measured no faster
than one seed after another (README), so seeds run one by one there unless asked otherwise; a method
that is not batchable (`Method` docstring) runs one by one with a note in each record.
"""
from __future__ import annotations

import contextlib
import time
import traceback
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import torch
from tqdm.auto import tqdm

from stabench import graphs
from stabench.cell import Cell, check_default_dtype, pick_device, resolve
from stabench.errors import StabenchError
from stabench.locks import exclusive
from stabench.loggers import Logger, RunLoggers, loggers_of
from stabench.methods.base import vouches
from stabench.records import FINISHED, RunRecord, run_directory
from stabench.runner import (
    DEFAULT_CHECKPOINTS, Trainer, Training, check_out, check_writable, finish, finished_record, made_by,
    logged_run, make_context, measure, new_record, planned_checkpoints, run, threads_for,
)
from stabench.spectra import SpectrumTracker
from stabench.stacked import Seed, StackedContext, StackedGame


def unbatchable_note(method) -> str | None:
    """Why `method` cannot train stacked, or None when it can."""
    if vouches(method, "batchable"):
        return None
    return (f"trained one seed at a time: method `{method.name}` does not say it is batchable (the `Method` "
            "docstring, \"Batchable methods\")")


def run_seeds(method, task, *, seeds: list[int], budget: str = "quick", steps: int | None = None,
              overrides: dict[str, Any] | None = None, recipe: str | None = None, device: str = "auto",
              out: str | Path = "results/runs", progress: bool = True, spectrum: bool = True, force: bool = False,
              threads: int | None = None, spectrum_every: int | None = None,
              checkpoints: int = DEFAULT_CHECKPOINTS, batched: bool | None = None,
              loggers: Iterable[str | Logger] = ()) -> list[RunRecord]:
    """Train `seeds` of one cell and write one record per seed, as `runner.run` does for one (same options,
    `loggers` too: each seed is a run of its own to them); return the records in the order of `seeds`.

    `batched`: train them as one stacked model (None: on CUDA only). An unbatchable method trains one seed
    after another, each record noting why. Finished records are reused unless `force`, as by `run`.
    """
    check_default_dtype()
    out = check_out(out)
    chosen = loggers_of(loggers)
    cells = [resolve(method, task, seed=seed, budget=budget, steps=steps, overrides=overrides, recipe=recipe)
             for seed in dict.fromkeys(seeds)]
    if not cells:
        raise StabenchError("`--seeds` names no seed")
    torch_device = pick_device(device)
    batched = torch_device.type == "cuda" if batched is None else batched
    note = unbatchable_note(cells[0].method) if batched else None
    if not batched or note is not None:
        return [run(cell.method, cell.task, seed=cell.seed, budget=budget, steps=steps, overrides=overrides,
                    recipe=recipe, device=device, out=out, progress=progress, spectrum=spectrum, force=force,
                    threads=threads, spectrum_every=spectrum_every, checkpoints=checkpoints,
                    notes=(note,) if note else (), loggers=chosen) for cell in cells]
    every = cells[0].task.budgets[cells[0].budget].spectrum_every if spectrum_every is None else spectrum_every
    if every < 0 or checkpoints < 0:
        raise StabenchError("`--spectrum-every` and `--checkpoints` must be at least 0")
    check_writable(Path(out))
    before = torch.get_num_threads()
    torch.set_num_threads(threads_for(threads))
    try:
        with contextlib.ExitStack() as locks:
            for cell in cells:
                locks.enter_context(exclusive(
                    Path(out) / ".locks" / f"{cell.task.name}.{cell.method.name}.{cell.run_id}.lock",
                    f"run {cell.run_id} ({cell.method.name} on {cell.task.name}, seed {cell.seed}) is being "
                    f"trained into `{out}` by another process"))
            return _run_batched(cells, torch_device, Path(out), progress, spectrum, force, every if spectrum else 0,
                                checkpoints, chosen)
    finally:
        torch.set_num_threads(before)


def _run_batched(cells: list[Cell], device: torch.device, out: Path, progress: bool, spectrum: bool, force: bool,
                 spectrum_every: int, checkpoints: int, loggers: list[Logger]) -> list[RunRecord]:
    directories = [run_directory(out, cell.task.name, cell.method.name, cell.run_id) for cell in cells]
    previous = [finished_record(directory) for directory in directories]
    reused = {i: record for i, record in enumerate(previous)
              if record is not None and made_by(record, cells[i].method, cells[i].task) and not force}
    for record in reused.values():
        record.reused = True
    todo = [i for i in range(len(cells)) if i not in reused]
    records = dict(reused)
    if todo:
        records |= _train_and_write([cells[i] for i in todo], [directories[i] for i in todo],
                                    [previous[i] for i in todo], device, progress, spectrum, spectrum_every,
                                    checkpoints, loggers, indices=todo)
    return [records[i] for i in range(len(cells))]


def _train_and_write(cells, directories, previous, device, progress, spectrum, spectrum_every, checkpoints, loggers,
                     *, indices) -> dict[int, RunRecord]:
    records = [new_record(cell, device) for cell in cells]
    logs = [RunLoggers(loggers, logged_run(cell, directory)) for cell, directory in zip(cells, directories)]
    try:
        return _write_seeds(cells, directories, previous, device, progress, spectrum, spectrum_every, checkpoints,
                            records, logs, indices)
    finally:
        for log, record in zip(logs, records):
            log.close(record.status, record.metrics)


def _write_seeds(cells, directories, previous, device, progress, spectrum, spectrum_every, checkpoints, records, logs,
                 indices) -> dict[int, RunRecord]:
    seeds, iteration, interrupted = None, None, False
    began = time.perf_counter()
    try:
        games = [cell.build_game(device) for cell in cells]
        for record, cell in zip(records, cells):
            record.data = cell.task.provenance(cell.task_params)
        stacked = StackedGame.of(games)
        ctx = StackedContext(stacked, cells[0].task_params, [cell.seeds.noise for cell in cells])
        iteration = graphs.iteration(Trainer(cells[0], stacked, ctx), device)
        seeds = [Seed(stacked, ctx, i, make_context(cell, game)) for i, (cell, game) in enumerate(zip(cells, games))]
    except KeyboardInterrupt:
        measured = [Training(status="interrupted", error="interrupted (Ctrl-C or SIGTERM) while building")
                    for _ in cells]
        interrupted = True
    except StabenchError:
        raise
    except Exception as error:  # noqa: BLE001 - a task that cannot build is a failed run, recorded
        measured = [Training(status="failed", error=f"{type(error).__name__}: {error}",
                             traceback=traceback.format_exc()) for _ in cells]
    else:
        measured = train_seeds(cells, stacked, seeds, iteration, device, progress, spectrum_every, checkpoints, logs)
        interrupted = any(m.status == "interrupted" for m in measured)
    note = (f"trained batched: seeds {', '.join(str(cell.seed) for cell in cells)} as one stacked model on "
            f"{device}{iteration.note if iteration else ''}; wall_seconds is the whole batch's")
    seconds = time.perf_counter() - began
    errors = []
    for i, (cell, record) in enumerate(zip(cells, records)):
        record.notes = [note]
        game, ctx = (seeds[i].game, seeds[i].ctx) if seeds else (None, None)
        if seeds and measured[i].status not in FINISHED:  # a finished seed was filled at its last evaluation
            seeds[i].fill()
        try:
            finish(cell, directories[i], record, measured[i], game, ctx, seconds, previous=previous[i],
                   spectrum=spectrum, interrupted=measured[i].status == "interrupted", log=logs[i])
        except KeyboardInterrupt:  # written: the other seeds are written too before stopping
            interrupted = True
        except StabenchError as error:
            errors.append(str(error))
    if interrupted:
        raise KeyboardInterrupt(str(directories[0].parent))
    if errors:
        raise StabenchError(errors[0] + (f" (and {len(errors) - 1} more seeds)" if len(errors) > 1 else ""))
    return {index: record for index, record in zip(indices, records)}


def train_seeds(cells: list[Cell], stacked: StackedGame, seeds: list[Seed], iteration, device: torch.device,
                progress: bool, spectrum_every: int, checkpoints: int,
                logs: list[RunLoggers | None] | None = None) -> list[Training]:
    """`runner.train` for the seeds of a stacked game: one iteration of `iteration` trains them all; each
    seed is evaluated on its own, on its own streams (its rows to its own `logs[i]`), and what it measured is
    returned per seed."""
    first = cells[0]
    measured = [Training() for _ in cells]
    logs = logs or [None] * len(cells)
    trackers = [SpectrumTracker(cell) if spectrum_every > 0 else None for cell in cells]
    keep = planned_checkpoints(first, checkpoints)
    active = list(range(len(cells)))
    frozen: dict[int, list[torch.Tensor]] = {}  # a diverged seed's parameters, put back after every iteration

    def checkpoint(step: int, batch) -> None:
        for i in list(active):
            seeds[i].fill()
            measure(step, cells[i], seeds[i].game, seeds[i].ctx, stacked.seed_batch(batch, i), measured[i],
                    trackers[i], spectrum_every, keep, logs[i])
            if measured[i].status == "diverged":
                active.remove(i)
                frozen[i] = seeds[i].snapshot()

    bar = None
    try:  # as in `runner.train`: a Ctrl-C or SIGTERM while the bar is first drawn is an interruption too
        bar = tqdm(total=first.steps, disable=not progress, unit="step", mininterval=0.5, dynamic_ncols=True,
                   desc=f"{first.method.name} on {first.task.name}, {len(cells)} seeds")
        checkpoint(0, stacked.sample_batch(first.task_params.batch_size))
        started = time.perf_counter()
        for step in range(1, first.steps + 1):
            if not active:
                break
            batch = iteration()
            for i, snapshot in frozen.items():
                seeds[i].restore(snapshot)
            bar.update()
            if step % first.eval_every == 0 or step == first.steps or (spectrum_every and step % spectrum_every == 0):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                elapsed = time.perf_counter() - started
                for i in active:
                    measured[i].wall_seconds += elapsed
                    measured[i].steps = step
                checkpoint(step, batch)
                bar.set_postfix({"diverged": len(frozen)}, refresh=False)
                started = time.perf_counter()
    except KeyboardInterrupt:
        for i in active:
            measured[i].status = "interrupted"
            measured[i].error = f"interrupted (Ctrl-C or SIGTERM); last evaluated at step {measured[i].steps}"
    except Exception as error:  # a failed run is data: every seed still training records it
        for i in active:
            measured[i].status, measured[i].error = "failed", f"{type(error).__name__}: {error}"
            measured[i].traceback = traceback.format_exc()
    finally:
        if bar is not None:
            bar.close()
    return measured
