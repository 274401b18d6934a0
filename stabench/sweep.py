"""Sweeps: one run per (method, task, seed) cell, in local worker processes or as Ray tasks.

On a CUDA device the seeds of each (method, task, settings) are one job, trained batched
(`stabench.batched`); on the CPU every cell is a job of its own.

A cell whose record under `out` already says `completed` or `diverged` (same run_id, so the same
method and version, task, hyperparameters, seed and budget), written by the same method and task code
(`registry.provenance`), is skipped: rerunning an interrupted sweep runs only what is missing; a
`failed` or `interrupted` cell, or one whose method's or task's code changed since, is run again.
Every cell writes its own record, so a cell that fails never stops the others; on Ray, so does a cell
whose worker crashed.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import threading
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from tqdm.auto import tqdm

from stabench.batched import run_seeds
from stabench.cell import pick_device, resolve
from stabench.errors import StabenchError, did_you_mean, interrupt
from stabench.hyperparams import field_types
from stabench.locks import exclusive
from stabench.loggers import loggers_of
from stabench.methods import METHODS
from stabench.records import run_directory
from stabench.registry import load_plugins
from stabench.runner import check_writable, finished_record, made_by, record_failure, run, threads_for
from stabench.seeds import check_seed
from stabench.tasks import TASKS


@dataclass(frozen=True)
class SweepCell:
    """One (method, task, seed) run of a sweep, with the overrides that apply to it."""

    method: str
    task: str
    seed: int
    budget: str
    steps: int | None
    overrides: dict[str, Any] = field(hash=False)
    out: Path
    run_id: str
    recipe: str | None = None

    @property
    def directory(self) -> Path:
        return run_directory(self.out, self.task, self.method, self.run_id)


MAX_SEEDS = 10_000  # seeds in one sweep: a typo such as 0-10000000000 is refused, not expanded


def parse_seeds(text: str) -> list[int]:
    """`0-4`, `0,2,7` or `3` as a list of seeds, each in 0 ... 2³² − 1, at most MAX_SEEDS of them."""
    seeds: list[int] = []
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?", part)
        if match is None:
            raise StabenchError(f"`--seeds {text}` should look like 0-4 or 0,2,7")
        low = int(match[1])
        high = int(match[2]) if match[2] is not None else low
        for seed in (low, high):
            check_seed(seed)
        if high - low + 1 + len(seeds) > MAX_SEEDS:
            raise StabenchError(f"`--seeds {text}` names more than {MAX_SEEDS} seeds")
        seeds += range(low, high + 1)
    if not seeds:
        raise StabenchError(f"`--seeds {text}` names no seed")
    return list(dict.fromkeys(seeds))


def parse_names(text: str, registry) -> list[str]:
    """`all` or a comma-separated list of registered names (an unknown one gets a did-you-mean)."""
    if text.strip() == "all":
        return registry.names()
    names = [registry.get(name.strip()).name for name in text.split(",") if name.strip()]
    if not names:
        raise StabenchError(f"no {registry.kind} named in {text!r}; name some, or `all` (`stabench list {registry.kind}s`)")
    return names


def plan(methods: Iterable[str], tasks: Iterable[str], seeds: Iterable[int], *, budget: str = "quick",
         steps: int | None = None, overrides: dict[str, Any] | None = None,
         out: str | Path = "results/runs", recipe: str | None = None) -> list[SweepCell]:
    """Every cell of the sweep, resolved (so a bad name, budget or value fails before anything runs), under
    the named `recipe` if one is given (it must cover every method of the sweep).

    An override applies to the cells whose method or task declares it (`eta` only to `gradreg`); a
    key that no cell declares is an error.
    """
    overrides = dict(overrides or {})
    used: set[str] = set()
    valid: set[str] = set()
    cells = []
    for task_name in tasks:
        task = TASKS.get(task_name)
        for method_name in methods:
            method = METHODS.get(method_name)
            declared = set(field_types(method.Params)) | set(field_types(task.Params))
            applicable = {key: value for key, value in overrides.items() if key in declared}
            used |= set(applicable)
            valid |= declared
            for seed in seeds:
                cell = resolve(method, task, seed=seed, budget=budget, steps=steps, overrides=applicable, recipe=recipe)
                cells.append(SweepCell(method.name, task.name, seed, budget, steps, applicable, Path(out), cell.run_id,
                                       recipe))
    unused = sorted(set(overrides) - used)
    if unused:
        raise StabenchError(f"no cell of this sweep has a hyperparameter `{unused[0]}`."
                            f"{did_you_mean(unused[0], sorted(valid))} Valid keys: {', '.join(sorted(valid))}")
    return cells


def finished(cell: SweepCell) -> bool:
    """The cell has a finished record, made by the method and task code registered now."""
    record = finished_record(cell.directory)
    return record is not None and made_by(record, METHODS.get(cell.method), TASKS.get(cell.task))


@dataclass(frozen=True)
class CellOptions:
    """How every cell of a sweep runs (see `runner.run`)."""

    device: str = "auto"
    spectrum: bool = True
    threads: int | None = None
    spectrum_every: int | None = None
    landscape: bool = False
    batched: bool = False  # train the seeds of a job as one stacked model
    loggers: tuple[str, ...] = ()  # names: a worker process takes them from its own registry


def jobs(cells: list[SweepCell], batched: bool) -> list[tuple[SweepCell, ...]]:
    """The cells grouped into jobs: with `batched`, the seeds of each (method, task, settings) together; else one
    cell each."""
    if not batched:
        return [(cell,) for cell in cells]
    groups: dict[tuple, list[SweepCell]] = {}
    for cell in cells:
        key = (cell.method, cell.task, cell.budget, cell.steps, repr(sorted(cell.overrides.items())), cell.recipe,
               cell.out)
        groups.setdefault(key, []).append(cell)
    return [tuple(group) for group in groups.values()]


def run_job(job: tuple[SweepCell, ...], options: CellOptions = CellOptions()) -> list[tuple[SweepCell, str, str | None]]:
    """Run a job's cells (batched where `options` say so, else one by one); their statuses and errors."""
    if not options.batched:
        return [run_cell(cell, options) for cell in job]
    first = job[0]
    try:
        records = run_seeds(first.method, first.task, seeds=[cell.seed for cell in job], budget=first.budget,
                            steps=first.steps, overrides=first.overrides, recipe=first.recipe, out=first.out,
                            progress=False, force=True, device=options.device, spectrum=options.spectrum,
                            threads=options.threads, spectrum_every=options.spectrum_every, batched=True,
                            loggers=options.loggers)
    except StabenchError as error:
        return [(cell, "failed", str(error)) for cell in job]
    except Exception as error:  # outside training (the runner records those): report, keep sweeping
        return [(cell, "failed", f"{type(error).__name__}: {error}") for cell in job]
    return [(cell, record.status, record.error) for cell, record in zip(job, records)]


def run_cell(cell: SweepCell, options: CellOptions = CellOptions()) -> tuple[SweepCell, str, str | None]:
    """Run one cell (its record goes to `cell.directory`); returns its status and error, never raises
    for a failed run."""
    try:
        record = run(cell.method, cell.task, seed=cell.seed, budget=cell.budget, steps=cell.steps,
                     overrides=cell.overrides, recipe=cell.recipe, out=cell.out, progress=False, force=True,
                     device=options.device,
                     spectrum=options.spectrum, threads=options.threads, spectrum_every=options.spectrum_every,
                     landscape=options.landscape, loggers=options.loggers)
    except StabenchError as error:
        return cell, "failed", str(error)
    except Exception as error:  # outside training (the runner records those): report, keep sweeping
        return cell, "failed", f"{type(error).__name__}: {error}"
    return cell, record.status, record.error


def _job_process(job: tuple[SweepCell, ...], plugins: tuple[str, ...], options: CellOptions, connection,
                 format_warning) -> None:
    """The body of a worker process: one job, its results sent back through `connection`."""
    warnings.formatwarning = format_warning  # the sweep's own (the CLI's is one line)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the sweep, which stops the workers
    # The sweep stops a worker with SIGTERM: its cell then records itself as interrupted.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        load_plugins(plugins)
        connection.send(run_job(job, options))
    except KeyboardInterrupt:
        os._exit(130)


def _result(receiver):
    """What a finished worker sent, or None if it died first (its end of the pipe closed unsent)."""
    try:
        return receiver.recv() if receiver.poll() else None
    except EOFError:
        return None


def _local(todo: list[tuple[SweepCell, ...]], workers: int, plugins: tuple[str, ...],
           options: CellOptions) -> Iterator[tuple[SweepCell, str, str | None]]:
    """One worker process per job, `workers` at a time (spawned: a forked copy of a process that has
    used threads or CUDA is unsafe). A worker that dies without a result (a plugin calling os._exit, an
    out-of-memory kill, a segfault) leaves its cells recorded as failed, and the sweep goes on."""
    context = multiprocessing.get_context("spawn")
    waiting, running = list(todo), {}
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                job = waiting.pop(0)
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_job_process, daemon=True, args=(
                    job, plugins, options, sender, warnings.formatwarning))
                process.start()
                sender.close()
                running[process.sentinel] = (process, receiver, job)
            for sentinel in multiprocessing.connection.wait(list(running)):
                process, receiver, job = running.pop(sentinel)
                results = _result(receiver)
                process.join()
                if results is None:
                    results = _failed(job, f"its worker process died without a result (exit code {process.exitcode})")
                yield from results
    finally:
        for process, _, _ in running.values():
            process.terminate()  # SIGTERM: its cell records itself as interrupted
        for process, _, _ in running.values():
            process.join(timeout=60)
            if process.is_alive():
                process.kill()


def _failed(job: tuple[SweepCell, ...], error: str) -> list[tuple[SweepCell, str, str | None]]:
    """Record the cells of `job` as failed with `error` (their worker could not say so itself)."""
    for cell in job:
        record_failure(resolve(cell.method, cell.task, seed=cell.seed, budget=cell.budget, steps=cell.steps,
                               overrides=cell.overrides, recipe=cell.recipe), cell.out, error)
    return [(cell, "failed", error) for cell in job]


def _ray(todo: list[tuple[SweepCell, ...]], address: str | None, plugins: tuple[str, ...],
         options: CellOptions) -> Iterator[tuple[SweepCell, str, str | None]]:
    """One Ray task per job, with one GPU each where the cluster has GPUs. On a cluster of several
    machines `out` (and any plugin file) must be on storage that every node sees.

    A task that Ray cannot finish (its worker crashed or was killed for memory, its node died) leaves its
    cells recorded as failed, and the sweep goes on. Ctrl-C or SIGTERM cancels the tasks: as with local
    workers, a cell being trained records itself as interrupted."""
    try:
        import ray
    except ImportError:
        raise StabenchError("the Ray backend needs Ray: pip install 'stabench[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        on_sigterm = signal.getsignal(signal.SIGTERM)
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        if on_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_sigterm)  # Ray's own handler exits before the cells are recorded
    pending = []
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_ray_job)
        job_of = {task.remote(job, plugins, options): job for job in todo}
        pending = list(job_of)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                results = ray.get(done[0])
            except ray.exceptions.RayError as error:
                results = _failed(job_of[done[0]], f"its Ray task failed: {_one_line(error)}")
            yield from results
    finally:
        try:
            for reference in pending:
                ray.cancel(reference)  # a KeyboardInterrupt in a running cell, which records it as interrupted
            if pending:
                ray.wait(pending, num_returns=len(pending), timeout=60)
        finally:
            if started_here:
                ray.shutdown()


def _one_line(error: Exception) -> str:
    """`error` as `Type: first line`; for an exception the task raised, Ray's wrapper gives way to it."""
    cause = getattr(error, "cause", None)
    shown = cause if isinstance(cause, BaseException) else error
    lines = str(shown).strip().splitlines()
    return f"{type(shown).__name__}: {lines[0] if lines else ''}"


def _ray_job(job: tuple[SweepCell, ...], plugins: tuple[str, ...], options: CellOptions):
    # Ray cancels a running task with a simulated SIGINT, repeated every few seconds until the task ends:
    # only the first may stop the cell; a repeat would cut short the record it is writing.
    previous = signal.signal(signal.SIGINT, _interrupt_once)
    try:
        load_plugins(plugins)
        return run_job(job, options)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_once(signum, frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


@dataclass
class SweepReport:
    """What a sweep did: a count per outcome, and the cells that failed with their errors."""

    counts: Counter
    failures: list[tuple[SweepCell, str]]

    def line(self) -> str:
        return " / ".join(f"{self.counts[key]} {key}" for key in ("completed", "diverged", "failed", "skipped"))


def sweep(cells: list[SweepCell], *, workers: int | None = None, backend: str = "local",
          address: str | None = None, plugins: Iterable[str] = (), device: str = "auto",
          spectrum: bool = True, progress: bool = True, threads: int | None = None,
          spectrum_every: int | None = None, landscape: bool = False, loggers: Iterable[str] = ()) -> SweepReport:
    """Run the cells of `plan(...)` that are not finished yet, each with `threads` CPU threads (see
    `runner.threads_for`); a progress bar counts cells. One sweep at a time uses a results folder. On a CUDA
    device (and without `landscape`, which runs per cell) the seeds of each setting are one batched job.
    Every cell's run goes to the `loggers` named (registered names, checked before anything runs)."""
    loggers = tuple(loggers)
    loggers_of(loggers)
    batched = pick_device(device).type == "cuda" and not landscape
    options = CellOptions(device, spectrum, threads, spectrum_every, landscape, batched, loggers)
    outs = sorted({cell.out for cell in cells})
    for out in outs:
        check_writable(out)
    with contextlib.ExitStack() as locks:
        for out in outs:
            locks.enter_context(exclusive(Path(out) / ".sweep.lock", f"`{out}` is in use by another sweep"))
        return _sweep(cells, workers, backend, address, tuple(plugins), options, progress)


def _sweep(cells, workers, backend, address, plugins, options: CellOptions, progress) -> SweepReport:
    todo = [cell for cell in cells if not finished(cell)]
    counts = Counter(skipped=len(cells) - len(todo))
    failures = []
    if backend not in ("local", "ray"):
        raise StabenchError(f"unknown backend `{backend}`; use local or ray")
    if todo:
        grouped = jobs(todo, options.batched)
        if backend == "ray":
            results = _ray(grouped, address, plugins, options)
        else:
            cores = os.cpu_count() or 1
            results = _local(grouped, workers or max(1, cores // threads_for(options.threads)), plugins, options)
        with tqdm(total=len(cells), initial=counts["skipped"], disable=not progress, unit="cell",
                  desc="sweep", dynamic_ncols=True) as bar:
            for cell, status, error in results:
                counts[status] += 1
                if status == "failed":
                    failures.append((cell, error or "unknown error"))
                bar.update()
                bar.set_postfix({key: counts[key] for key in ("completed", "diverged", "failed")}, refresh=False)
    return SweepReport(counts, failures)
