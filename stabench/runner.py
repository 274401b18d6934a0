"""Train one (method, task, seed) cell, measure it, and write its run record."""
from __future__ import annotations

import copy
import os
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from stabench.cell import Cell, check_default_dtype, pick_device, resolve
from stabench.context import Context, map_tensors
from stabench.errors import NotApplicable, StabenchError, one_line
from stabench.landscape import landscape as analyse_landscape
from stabench.locks import exclusive
from stabench.loggers import LoggedRun, Logger, RunLoggers, loggers_of
from stabench.records import (
    FINISHED, SAMPLES_FILE, RunRecord, is_record, method_code, read_record, run_directory, task_code, versions,
    write_run,
)
from stabench.registry import provenance
from stabench.resume import SNAPSHOT_DIR, Snapshots, outdated, snapshot_path
from stabench.spectra import DENSE_LIMIT, TRACKED_COLUMNS, SpectrumTooSlow, SpectrumTracker, game_spectrum

# The end-of-run spectrum of a large game (Arnoldi) gets about this long; `stabench spectrum --at RUN_DIR`
# has no limit. The `mog` games take 13 to 130 s for their top 20 on one CPU core.
SPECTRUM_SECONDS = 120.0
# A smoke run checks that a cell runs, in seconds: its end-of-run spectrum is the dense one where the game
# has at most DENSE_LIMIT parameters, and none (the record says why) where it would take Arnoldi.
SMOKE_BUDGET = "smoke"


def parameters_finite(game) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in (*game.discriminator.parameters(), *game.generator.parameters()))


def parameter_count(game) -> int:
    """The length of θ, the parameters of both players, that a spectrum is taken over."""
    return sum(p.numel() for p in (*game.discriminator.parameters(), *game.generator.parameters()))


def _all_finite(game, cell: Cell, batch) -> bool:
    """Parameters and the value V on the last training batch are finite (a generator can blow up
    to ±inf while its weights stay finite)."""
    with torch.no_grad():
        value = game.value(game.point(), batch, cell.method.loss(cell.method_params))
    return parameters_finite(game) and bool(torch.isfinite(value))


def evaluate(cell: Cell, game) -> dict[str, float]:
    """The task's metrics of the current generator, on the cell's evaluation stream (the same draws every time)."""
    metrics = cell.task.evaluate(game, cell.task_params, torch.Generator().manual_seed(cell.seeds.evaluation))
    return plain_numbers(metrics, f"metric `{{}}` of task `{cell.task.name}`")


def plain_numbers(values: dict[str, Any], what: str) -> dict[str, int | float | None]:
    """`values` as Python numbers: a plugin's NumPy scalars and one-element tensors converted (a record's
    reader and a snapshot's loader take nothing else); anything but a number is a TypeError saying `what`
    (formatted with the key) it is."""
    plain = {}
    for key, value in values.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        elif isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, int):
            value = int(value)  # a bool too: records hold numbers
        elif isinstance(value, float):
            value = float(value)  # np.float64 is a float, but not one a snapshot can load
        elif value is not None:
            raise TypeError(f"{what.format(key)} is {_short_repr(value)}, not a number")
        plain[key] = value
    return plain


def _short_repr(value: Any, width: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def make_context(cell: Cell, game) -> Context:
    """The training context of `cell` over `game`'s live parameters."""
    return Context(game, cell.task_params, cell.seeds.noise)


class Trainer:
    """One training iteration of a cell: D's steps and one G step, by the method's schedule.

    Batches are numbered as they are drawn: a method's noise for a batch is seeded by its number.
    """

    def __init__(self, cell: Cell, game, ctx: Context):
        self.cell, self.game, self.ctx, self.hp = cell, game, ctx, cell.method_params
        self.schedule = cell.method.schedule(self.hp)
        self.batch_size = cell.task_params.batch_size
        self.batches = 0
        self.iterations = 0
        cell.method.between_iterations(game, self.hp, ctx, 0)

    def batch(self):
        self.batches += 1
        return self.game.sample_batch(self.batch_size, self.batches)

    def d_step(self) -> None:
        method, game = self.cell.method, self.game
        direction = method.d_direction(game, game.point(), self.batch(), self.hp, self.ctx)
        method.apply("d", direction, self.hp, self.ctx)
        method.constrain(game, self.hp)

    def step(self):
        """One iteration; returns the batch of its last (G) step."""
        method, game, hp, ctx = self.cell.method, self.game, self.hp, self.ctx
        d_steps = self.schedule.d_steps - 1 if self.schedule.simultaneous else self.schedule.d_steps
        for _ in range(d_steps):
            self.d_step()
        batch = self.batch()
        if self.schedule.simultaneous:
            field_ = method.field(game, game.point(), batch, hp, ctx)
            method.apply("d", field_.d, hp, ctx)
            method.apply("g", field_.g, hp, ctx)
            method.constrain(game, hp)
        else:
            method.apply("g", method.g_direction(game, game.point(), batch, hp, ctx), hp, ctx)
        self.iterations += 1
        method.between_iterations(game, hp, ctx, self.iterations)
        return batch


@dataclass
class Training:
    """What a training loop measured: the curve, the tracked spectra, checkpoints, how far it got and how
    it ended."""

    curve: list[dict[str, float]] = field(default_factory=list)
    track: list[dict[str, Any]] = field(default_factory=list)  # eigenvalue rows of the tracked steps
    checkpoints: dict[int, dict[str, Any]] = field(default_factory=dict)  # step -> state
    tracking_seconds: float = 0.0
    steps: int = 0
    wall_seconds: float = 0.0
    status: str = "completed"  # or diverged, failed, interrupted
    diverged_at_step: int | None = None
    error: str | None = None
    traceback: str | None = None
    resumed_at_step: int | None = None  # where a snapshot of an earlier attempt was taken up
    earlier_seconds: float = 0.0  # total seconds of the earlier attempts that the snapshot kept


def state_of(game, ctx: Context) -> dict[str, Any]:
    """What STATE_FILE (and a checkpoint) holds: both networks, both optimizers, the method's own state."""
    return {"discriminator": game.discriminator.state_dict(), "generator": game.generator.state_dict(),
            **ctx.state_dict()}


def planned_checkpoints(cell: Cell, count: int) -> set[int]:
    """`count` steps evenly inside the run, on evaluation steps, where intermediate states are kept."""
    every = cell.eval_every

    def pick(i: int) -> int:
        return round(cell.steps * i / (count + 1) / every) * every

    if count >= cell.steps // every:  # picks under one evaluation apart: every evaluation from the first to the last
        picks = range(pick(1), pick(count) + every, every)
    else:
        picks = (pick(i) for i in range(1, count + 1))
    return {step for step in picks if 0 < step < cell.steps}


def train(cell: Cell, game, ctx: Context, device: torch.device, progress: bool = False, spectrum_every: int = 0,
          checkpoints: int = 0, snapshots: Snapshots | None = None, log: RunLoggers | None = None) -> Training:
    """The training loop: updates `game` in place, evaluates every `cell.eval_every` steps, tracks the
    Jacobian spectrum every `spectrum_every` steps (and at step 0; 0: never), keeps `checkpoints`
    intermediate states, and returns what it measured, however it ended (a divergence, an error or Ctrl-C
    is a status, not an exception). With `snapshots`, it starts from the saved snapshot where there is one
    and saves one at evaluations as they fall due (`stabench.resume`). Every evaluation's row goes to `log`.

    Divergence is checked at evaluations, where the loop synchronises anyway, so a GPU is never stalled
    every step. Evaluation and tracking are outside `wall_seconds`; tracking's own time is kept apart.
    """
    attempt_began = time.perf_counter()
    trainer = Trainer(cell, game, ctx)
    measured = Training()
    tracker = SpectrumTracker(cell) if spectrum_every > 0 else None
    keep = planned_checkpoints(cell, checkpoints)
    saved = snapshots.load() if snapshots is not None else None
    first = 1
    if saved is not None:
        first = restore(saved, cell, trainer, game, ctx, measured, tracker) + 1

    def checkpoint(step: int, batch) -> dict[str, float] | None:
        return measure(step, cell, game, ctx, batch, measured, tracker, spectrum_every, keep, log)

    bar = None
    try:  # from the bar on: a Ctrl-C or SIGTERM while it is being drawn is an interrupted run too
        bar = tqdm(total=cell.steps, initial=first - 1, disable=not progress,
                   desc=f"{cell.method.name} on {cell.task.name}", unit="step", mininterval=0.5, dynamic_ncols=True)
        if saved is None:
            checkpoint(0, game.sample_batch(trainer.batch_size))
        started = time.perf_counter()
        for step in range(first, cell.steps + 1):
            if measured.status != "completed":
                break
            batch = trainer.step()
            bar.update()
            if step % cell.eval_every == 0 or step == cell.steps or (tracker and step % spectrum_every == 0):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                measured.wall_seconds += time.perf_counter() - started
                measured.steps = step
                metrics = checkpoint(step, batch)
                if metrics:
                    bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items() if v is not None}, refresh=False)
                    if snapshots is not None and step < cell.steps and snapshots.due():
                        take_snapshot(snapshots, step, trainer, game, ctx, measured, tracker,
                                      time.perf_counter() - attempt_began)
                started = time.perf_counter()
    except KeyboardInterrupt:
        measured.status = "interrupted"
        measured.error = f"interrupted (Ctrl-C or SIGTERM); last evaluated at step {measured.steps}"
    except Exception as error:  # a failed run is data: record it, do not lose it
        measured.status, measured.error = "failed", one_line(error)
        measured.traceback = traceback.format_exc()
    finally:
        if bar is not None:
            bar.close()
    return measured


def take_snapshot(snapshots: Snapshots, step: int, trainer: Trainer, game, ctx: Context, measured: Training,
                  tracker: SpectrumTracker | None, attempt_seconds: float) -> None:
    """Save what `restore` needs to go on after `step` as if never stopped; a snapshot that cannot be
    written costs a warning, not the run."""
    start = tracker.start if tracker is not None else None
    content = {
        "step": step, "batches": trainer.batches, "iterations": trainer.iterations, "state": state_of(game, ctx),
        "streams": [stream.get_state() for stream in game.streams], "curve": measured.curve, "track": measured.track,
        "checkpoints": measured.checkpoints, "wall_seconds": measured.wall_seconds,
        "tracking_seconds": measured.tracking_seconds, "seconds": measured.earlier_seconds + attempt_seconds,
        "tracker_start": None if start is None else torch.from_numpy(start),
    }
    try:
        snapshots.save(content)
    except (OSError, RuntimeError) as error:  # torch.save reports a full disk or a file-size limit as RuntimeError
        reason = error.strerror if isinstance(error, OSError) and error.strerror else one_line(error)
        warnings.warn(f"cannot write the snapshot {snapshots.path}: {reason}", stacklevel=2)


class UnusableSnapshot(Exception):
    """A snapshot of this cell whose content does not fit it: the run starts over on a game built afresh."""


# What `take_snapshot` writes, and the types `restore` takes.
SNAPSHOT_CONTENT = {
    "step": int, "batches": int, "iterations": int, "state": dict, "streams": list, "curve": list, "track": list,
    "checkpoints": dict, "wall_seconds": (int, float), "tracking_seconds": (int, float), "seconds": (int, float),
    "tracker_start": (torch.Tensor, type(None)),
}


def restore(saved: dict[str, Any], cell: Cell, trainer: Trainer, game, ctx: Context, measured: Training,
            tracker: SpectrumTracker | None) -> int:
    """Put a snapshot back into the live game, context, trainer, measurements and tracker; its step.

    Raises UnusableSnapshot, saying why, for content that does not fit the cell; the game and context
    may then be changed part-way."""
    for key, kind in SNAPSHOT_CONTENT.items():
        if key not in saved:
            raise UnusableSnapshot(f"`{key}` is missing")
        if not isinstance(saved[key], kind) or isinstance(saved[key], bool):
            raise UnusableSnapshot(f"`{key}` is a {type(saved[key]).__name__}")
    if not 0 < saved["step"] < cell.steps:
        raise UnusableSnapshot(f"step {saved['step']} is not inside the plan of {cell.steps} steps")
    if len(saved["streams"]) != len(game.streams):
        raise UnusableSnapshot(f"it has {len(saved['streams'])} random streams, the game {len(game.streams)}")
    try:
        return _restore(saved, trainer, game, ctx, measured, tracker)
    except Exception as error:  # noqa: BLE001 - whatever does not fit (names, shapes, types) refuses the snapshot
        raise UnusableSnapshot(one_line(error)) from None


def _restore(saved: dict[str, Any], trainer: Trainer, game, ctx: Context, measured: Training,
             tracker: SpectrumTracker | None) -> int:
    device = next(game.generator.parameters()).device
    state = saved["state"]
    game.discriminator.load_state_dict(state["discriminator"])
    game.generator.load_state_dict(state["generator"])
    ctx.load_state_dict(map_tensors(state, lambda t: t.to(device)))  # a snapshot is loaded on the CPU
    for stream, stream_state in zip(game.streams, saved["streams"]):
        stream.set_state(stream_state)
    trainer.batches, trainer.iterations = saved["batches"], saved["iterations"]
    measured.curve, measured.track, measured.checkpoints = saved["curve"], saved["track"], saved["checkpoints"]
    measured.wall_seconds, measured.tracking_seconds = saved["wall_seconds"], saved["tracking_seconds"]
    measured.steps = measured.resumed_at_step = saved["step"]
    measured.earlier_seconds = saved["seconds"]
    if tracker is not None and saved["tracker_start"] is not None:
        tracker.start = saved["tracker_start"].numpy()
    return saved["step"]


def measure(step: int, cell: Cell, game, ctx: Context, batch, measured: Training, tracker: SpectrumTracker | None,
            spectrum_every: int, keep: set[int], log: RunLoggers | None = None) -> dict[str, float] | None:
    """One evaluation of a training loop at `step` into `measured` (and its row to `log`): divergence (None),
    else the metrics, the tracked spectrum where due and the kept checkpoint where planned."""
    if not _all_finite(game, cell, batch):
        measured.status, measured.diverged_at_step = "diverged", step
        return None
    metrics = evaluate(cell, game)
    diagnostics = plain_numbers(cell.method.diagnostics(game, game.point(), batch, cell.method_params, ctx),
                                f"diagnostic `{{}}` of method `{cell.method.name}`")
    row = {"step": step, "wall_seconds": measured.wall_seconds, **metrics, **diagnostics}
    if tracker is not None and step % spectrum_every == 0:
        began = time.perf_counter()
        try:
            point = tracker(step, game, ctx)
        except Exception as error:  # noqa: BLE001 - an analysis that fails must not stop the training
            row["spectrum_error"] = f"{type(error).__name__}: {error}"
        else:
            row |= point.summary
            measured.track += point.rows
        measured.tracking_seconds += time.perf_counter() - began
    if step in keep:
        measured.checkpoints[step] = copy.deepcopy(state_of(game, ctx))
    measured.curve.append(row)
    if log is not None:
        log.metrics(row)
    return metrics


def check_out(out: str | Path) -> Path:
    """`out` as a folder; an empty one is refused (it would put records into the current folder)."""
    if not str(out).strip():
        raise StabenchError("`--out` is empty: name the folder of the run records (default results/runs)")
    return Path(out)


def check_writable(out: Path) -> None:
    """`out` exists or can be made, takes files, and has no file where snapshots go: found before training,
    not after."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as error:
        raise StabenchError(f"cannot write run records under `{out}`: {error.strerror or error}") from None
    snapshots = out / SNAPSHOT_DIR
    if snapshots.exists() and not snapshots.is_dir():
        raise StabenchError(f"`{snapshots}` is a file where run snapshots are kept: move it away")


DEFAULT_THREADS = 1  # per run on the CPU; see `threads_for`
DEFAULT_CHECKPOINTS = 3  # intermediate states a record keeps


def threads_for(threads: int | None) -> int:
    """The CPU threads of one run: `threads`, else $OMP_NUM_THREADS, else DEFAULT_THREADS.

    One by default, for standalone runs and sweep cells alike, so that the two give identical numbers
    (float sums differ with the thread count). Measured on 2 quiet cores, a lone run is 1.0-1.4x faster
    with 2 threads (stacked-mnist gains most); a sweep's workers are fastest with one thread each.
    """
    if threads is None:
        value = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(value) if value.isdigit() else DEFAULT_THREADS
    if threads < 1:
        raise StabenchError(f"`--threads` must be at least 1, got {threads}")
    return threads


def run(method, task, *, seed: int = 0, budget: str = "quick", steps: int | None = None,
        overrides: dict[str, Any] | None = None, recipe: str | None = None, device: str = "auto",
        out: str | Path = "results/runs", progress: bool = True, spectrum: bool = True, force: bool = False, threads: int | None = None,
        spectrum_every: int | None = None, checkpoints: int = DEFAULT_CHECKPOINTS, landscape: bool = False,
        notes: tuple[str, ...] = (), loggers: Iterable[str | Logger] = ()) -> RunRecord:
    """Train one cell (under the named `recipe`, if given) with `threads_for(threads)` CPU threads and write its record under `out`; return the
    record (its `path` set). While it trains, no other process can train the same cell into `out`.

    The Jacobian spectrum is tracked every `spectrum_every` steps (None: the budget's default; 0: not
    tracked; `spectrum` false: neither tracked nor taken at the end), and `checkpoints` intermediate
    states are kept in the record for `stabench spectrum --at RUN_DIR --step S`. With `landscape`, a
    finished run also gets the rotation-against-potential analysis (`stabench.landscape`).

    A finished record (completed or diverged) of the same run_id, made by the same method and task code, is
    returned as it is (`reused`), without training, unless `force`. A finished record is only ever
    replaced by a finished attempt. A run that diverges,
    fails or is interrupted is still recorded; Ctrl-C is raised again once the record is written, and a
    run stopped part-way goes on from its last snapshot the next time (`stabench.resume`). `notes`
    go into the record (how it was made, where a reader should know). `loggers` (registered names or
    `stabench.Logger`s; `stabench.loggers`) also receive what the run measures while it trains.
    """
    check_default_dtype()
    out = check_out(out)
    chosen = loggers_of(loggers)
    cell = resolve(method, task, seed=seed, budget=budget, steps=steps, overrides=overrides, recipe=recipe)
    torch_device = pick_device(device)
    directory = run_directory(Path(out), cell.task.name, cell.method.name, cell.run_id)
    check_writable(Path(out))
    lock = Path(out) / ".locks" / f"{cell.task.name}.{cell.method.name}.{cell.run_id}.lock"
    before = torch.get_num_threads()
    torch.set_num_threads(threads_for(threads))
    try:
        with exclusive(lock, f"run {cell.run_id} ({cell.method.name} on {cell.task.name}, seed {cell.seed}) is being "
                             f"trained into `{out}` by another process"):
            every = cell.task.budgets[cell.budget].spectrum_every if spectrum_every is None else spectrum_every
            if every < 0 or checkpoints < 0:
                raise StabenchError("`--spectrum-every` and `--checkpoints` must be at least 0")
            snapshots = Snapshots(snapshot_path(Path(out), cell.task.name, cell.method.name, cell.run_id), {
                "method_code": provenance(cell.method)["source_sha256"], "task_code": provenance(cell.task)["source_sha256"],
                "device": torch_device.type, "threads": torch.get_num_threads(), "spectrum_every": every if spectrum else 0,
                "checkpoints": checkpoints}, cell=snapshot_identity(cell))
            snapshots.tidy()
            remove_outdated_snapshots(Path(out), cell)
            record = _run(cell, torch_device, directory, progress, spectrum, force, every if spectrum else 0,
                          checkpoints, notes, snapshots, chosen)
            if landscape and record.status in FINISHED and not record.reused:
                try:
                    analyse_landscape(directory, device=str(torch_device))
                except Exception as error:  # noqa: BLE001 - the record is written; the analysis can be redone
                    warnings.warn(f"the landscape of {directory} failed ({type(error).__name__}: {error}); "
                                  f"run `stabench landscape --at {directory}`", stacklevel=2)
            return record
    finally:
        torch.set_num_threads(before)


def snapshot_identity(cell: Cell) -> dict[str, Any]:
    """What a snapshot says of its cell, so that no other cell resumes it."""
    return {"run_id": cell.run_id, "task": cell.task.name, "task_version": cell.task.version,
            "method": cell.method.name, "method_version": cell.method.version, "seed": cell.seed}


def remove_outdated_snapshots(out: Path, cell: Cell) -> None:
    """Delete the snapshots of `cell`'s method and task made by other versions of them, which nothing can
    resume now, unless their run is training (under another installation of stabench)."""
    for path, other_run_id in outdated(out, snapshot_identity(cell)):
        lock = out / ".locks" / f"{cell.task.name}.{cell.method.name}.{other_run_id}.lock"
        try:
            with exclusive(lock, "held"):
                path.unlink(missing_ok=True)
        except (StabenchError, OSError):
            continue


def _build(cell: Cell, torch_device: torch.device, record: RunRecord):
    game = cell.build_game(torch_device)
    record.data = cell.task.provenance(cell.task_params)
    return game, make_context(cell, game)


def logged_run(cell: Cell, directory: Path) -> LoggedRun:
    """What the loggers of `cell`'s run, recorded into `directory`, are told of it."""
    return LoggedRun(cell.method.name, cell.task.name, cell.seed, cell.run_id, cell.budget, cell.config,
                     directory.parents[2])


def _run(cell: Cell, torch_device: torch.device, directory: Path, progress: bool, spectrum: bool,
         force: bool, spectrum_every: int, checkpoints: int, notes: tuple[str, ...], snapshots: Snapshots,
         loggers: list[Logger]) -> RunRecord:
    previous = finished_record(directory)
    if previous is not None and made_by(previous, cell.method, cell.task) and not force:
        if snapshots.path.is_file():  # of an interrupted `--force` attempt: this command takes the record instead
            snapshots.discard()
            warnings.warn(f"the snapshot of an interrupted attempt at {snapshots.path} is deleted: the "
                          f"{previous.status} record is used (`--force` trains again)", stacklevel=3)
        previous.reused = True
        return previous
    record = new_record(cell, torch_device)
    record.notes = list(notes)
    log = RunLoggers(loggers, logged_run(cell, directory))
    try:
        return _train_and_record(cell, torch_device, directory, progress, spectrum, spectrum_every, checkpoints,
                                 snapshots, previous, record, log)
    finally:
        log.close(record.status, record.metrics)


def _train_and_record(cell: Cell, torch_device: torch.device, directory: Path, progress: bool, spectrum: bool,
                      spectrum_every: int, checkpoints: int, snapshots: Snapshots, previous: RunRecord | None,
                      record: RunRecord, log: RunLoggers) -> RunRecord:
    game, ctx, interrupted = None, None, False
    began = time.perf_counter()
    try:
        game, ctx = _build(cell, torch_device, record)
    except KeyboardInterrupt:
        measured, interrupted = Training(status="interrupted", error="interrupted (Ctrl-C or SIGTERM) while building"), True
    except NotApplicable as error:
        measured = Training(status="failed", error=str(error))
    except StabenchError:
        raise
    except Exception as error:  # noqa: BLE001 - a task that cannot build is a failed run, recorded
        measured = Training(status="failed", error=one_line(error), traceback=traceback.format_exc())
    else:
        # Only a game whose random streams are declared can be resumed to the same numbers.
        resumable = game.streams is not None
        if resumable:
            snapshots.settings["data"] = record.data
        try:
            measured = train(cell, game, ctx, torch_device, progress, spectrum_every, checkpoints,
                             snapshots if resumable else None, log)
        except UnusableSnapshot as reason:  # restoring may have changed the game part-way: build it again
            snapshots.refuse(f"cannot be resumed: {reason}")
            game, ctx = _build(cell, torch_device, record)
            measured = train(cell, game, ctx, torch_device, progress, spectrum_every, checkpoints, snapshots, log)
        interrupted = measured.status == "interrupted"
    if snapshots.said is not None:
        record.notes.append(snapshots.said)
    if measured.resumed_at_step is not None:
        record.notes.append(f"resumed at step {measured.resumed_at_step} from the snapshot of an interrupted attempt")
    try:
        finish(cell, directory, record, measured, game, ctx, time.perf_counter() - began, previous=previous,
               spectrum=spectrum, interrupted=interrupted, log=log)
    except KeyboardInterrupt as stop:  # raised once the record is written, or kept
        if not interrupted:  # the record is finished; only its spectrum was stopped
            snapshots.discard()
        elif snapshots.step is not None:
            raise KeyboardInterrupt(*stop.args, f"the same command resumes from step {snapshots.step}") from None
        raise
    except StabenchError:  # no record written
        if previous is not None and measured.status == "failed":  # the finished one is kept; this would fail again
            snapshots.discard()
        raise  # else the record could not be written: the snapshot is what the same command goes on from
    snapshots.discard()
    return record


def finish(cell: Cell, directory: Path, record: RunRecord, measured: Training, game, ctx: Context | None,
           seconds: float, *, previous: RunRecord | None, spectrum: bool, interrupted: bool,
           log: RunLoggers | None = None) -> None:
    """Complete `record` from what training `measured` (and the final spectrum, where asked and finished)
    and write it with its artifacts into `directory`, then end `log` with its pictures. A `previous` finished
    record is kept, with a one-line error, when this attempt did not finish; Ctrl-C (during training or the
    spectrum) is raised again once the record is written, or kept."""
    _measured_into(record, measured, cell, game, seconds)
    eigenvalues = None
    if spectrum and measured.status in FINISHED and not interrupted:
        try:
            record.spectrum, eigenvalues = end_of_run_spectrum(cell, game, ctx)
        except KeyboardInterrupt:
            record.spectrum, interrupted = {"skipped": "interrupted (Ctrl-C or SIGTERM) during the spectrum"}, True
    if previous is not None and record.status not in FINISHED:
        if interrupted:
            raise KeyboardInterrupt(f"{directory} (the {previous.status} one, kept; this attempt is not recorded)")
        raise StabenchError(f"the new attempt ended {record.status} ({record.error}); the {previous.status} "
                            f"record at {directory} is kept")
    keep_state = game is not None and record.status != "failed"
    state = state_of(game, ctx) if keep_state and ctx is not None else None
    try:
        write_run(directory, record, curve=measured.curve, eigenvalues=eigenvalues, state=state,
                  draw_samples=_samples(cell, game, record) if keep_state else None, track=measured.track,
                  checkpoints=measured.checkpoints if keep_state else {})
    except OSError as error:
        raise StabenchError(f"cannot write the record at `{directory}`: {error.strerror or error}") from None
    if log is not None:
        log.end(record.status, record.metrics, measured.steps, directory / SAMPLES_FILE if keep_state else None,
                eigenvalues)
    if interrupted:
        raise KeyboardInterrupt(str(directory))


def record_failure(cell: Cell, out: str | Path, error: str) -> None:
    """Record `cell` as failed with `error` (its process died before it could say so itself), unless a
    finished record of it exists: that is never replaced by a worse attempt."""
    directory = run_directory(Path(out), cell.task.name, cell.method.name, cell.run_id)
    if finished_record(directory) is not None:
        return
    record = new_record(cell, pick_device("cpu"))
    record.status, record.error, record.device = "failed", error, ""
    write_run(directory, record)


def made_by(record: RunRecord, method, task) -> bool:
    """`record` was written by the code that `method` and `task` run now (`registry.provenance`); a
    record of code that cannot be hashed never was."""
    running = provenance(method)["source_sha256"], provenance(task)["source_sha256"]
    return None not in running and (method_code(record), task_code(record)) == running


def finished_record(directory: Path) -> RunRecord | None:
    """The readable `completed` or `diverged` record in `directory`, else None."""
    if not is_record(directory):
        return None
    try:
        record = read_record(directory)
    except ValueError:
        return None
    return record if record.status in FINISHED else None


def new_record(cell: Cell, device: torch.device) -> RunRecord:
    """The record of `cell` before it trains: identity, settings, environment, provenance."""
    return RunRecord(
        run_id=cell.run_id, method=cell.method.name, method_version=cell.method.version, task=cell.task.name,
        task_version=cell.task.version, seed=cell.seed, budget=cell.budget, steps_planned=cell.steps,
        steps_overridden=cell.steps_overridden, recipe=cell.recipe, config=cell.config, environment=cell.environment,
        status="completed", metrics={}, timing={"wall_seconds": 0.0, "steps": 0, "steps_per_second": None},
        metric_directions=dict(cell.task.metric_directions), task_description=cell.task.description,
        device=str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        threads=torch.get_num_threads(), versions=versions(),
        plugins={"method": provenance(cell.method), "task": provenance(cell.task)},
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


def _measured_into(record: RunRecord, measured: Training, cell: Cell, game, total_seconds: float) -> None:
    record.status, record.error, record.traceback = measured.status, measured.error, measured.traceback
    record.diverged_at_step = measured.diverged_at_step
    record.timing = {"wall_seconds": measured.wall_seconds, "steps": measured.steps,
                     "steps_per_second": measured.steps / measured.wall_seconds if measured.wall_seconds > 0 else None,
                     "tracking_seconds": measured.tracking_seconds,
                     "total_seconds": measured.earlier_seconds + total_seconds}
    if measured.status == "diverged":  # evaluated as it is: non-finite samples count as misses
        record.metrics = evaluate(cell, game)
    elif measured.curve:
        last = measured.curve[-1]
        record.metrics = {k: v for k, v in last.items() if k not in ("step", "wall_seconds", *TRACKED_COLUMNS)}
    if measured.curve:
        record.metrics.update(plain_numbers(cell.task.summarize(measured.curve, cell.task_params),
                                            f"summary metric `{{}}` of task `{cell.task.name}`"))


def end_of_run_spectrum(cell: Cell, game, ctx: Context) -> tuple[dict[str, Any], list[dict[str, float]] | None]:
    """The spectrum at the final parameters: its summary (or why there is none) and its eigenvalues."""
    if not parameters_finite(game):
        return {"error": "the final parameters are not finite"}, None
    size = parameter_count(game)
    if cell.budget == SMOKE_BUDGET and size > DENSE_LIMIT:
        return {"skipped": f"the {SMOKE_BUDGET} budget takes no Arnoldi spectrum ({size} parameters, more than "
                           f"the {DENSE_LIMIT} of a dense one); run `stabench spectrum --at RUN_DIR`"}, None
    try:
        result = game_spectrum(cell, game, ctx, seconds=SPECTRUM_SECONDS)
    except SpectrumTooSlow as reason:  # the record says how to get it without the time limit
        return {"skipped": f"{reason}; run `stabench spectrum --at RUN_DIR`"}, None
    except Exception as error:  # noqa: BLE001 - the analysis failing must not lose the run it analyses
        return {"error": f"{type(error).__name__}: {error}"}, None
    return result.summary, result.rows()


def _samples(cell: Cell, game, record: RunRecord):
    def draw(path: Path) -> None:
        title = f"{cell.method.name} on {cell.task.name}, seed {cell.seed}, step {record.timing['steps']}"
        generator = torch.Generator().manual_seed(cell.seeds.evaluation)
        cell.task.save_samples(game, cell.task_params, path, generator, title)

    return draw

