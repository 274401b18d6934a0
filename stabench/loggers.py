"""Loggers: where a run's measurements go while it trains, besides its record.

A logger receives the metrics at every evaluation (with the step and the training seconds) and, where it
takes pictures, the samples picture and a scatter of the end-of-run eigenvalues once the record is
written. Built in: `csv`, the record's own `curve.csv` (always written), `tensorboard` and `wandb`
(extras: `pip install 'stabench[tensorboard]'`, `pip install 'stabench[wandb]'`; imported only when
used). A plugin adds one with `stabench.register_logger`. A logger that fails costs one warning and is
dropped for the rest of the run: it never costs the run or its record.
"""
from __future__ import annotations

import copy
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Iterable

from stabench.errors import StabenchError, one_line
from stabench.registry import Registry


@dataclass(frozen=True)
class LoggedRun:
    """What a logger is told of the run it logs: its identity, its resolved settings (`config`) and
    `out`, the folder of the records."""

    method: str
    task: str
    seed: int
    run_id: str
    budget: str
    config: dict[str, Any]
    out: Path

    @property
    def name(self) -> str:
        """`task/method/seedS-RUN_ID`: one run's name, which groups a sweep by task and method."""
        return f"{self.task}/{self.method}/seed{self.seed}-{self.run_id}"


class Logger:
    """One place a run's measurements go. A registered logger is a template: every run works on its own
    shallow copy, called in this order: `start`, `metrics` at every evaluation (from step 0), `pictures`
    once after the record is written (only where `takes_pictures`), `finish`.

    `check` runs before anything trains: it raises a StabenchError (how to install what is missing)
    where the logger cannot work here.
    """

    name: str = ""
    description: str = ""
    takes_pictures: bool = False

    def check(self) -> None:
        """Nothing to check."""

    def start(self, run: LoggedRun) -> None:
        """Open whatever this run's measurements go to."""

    def metrics(self, step: int, values: dict[str, float]) -> None:
        """The numbers of one evaluation at `step` (`wall_seconds` among them: training seconds so far)."""

    def pictures(self, step: int, pictures: dict[str, Path]) -> None:
        """PNG files by name (`samples`, `spectrum`), at the last evaluated `step`."""

    def finish(self, status: str, metrics: dict[str, Any]) -> None:
        """The run ended with `status` (completed, diverged, failed, interrupted) and the record's `metrics`."""


def _check_logger(logger: Logger) -> None:
    if not logger.name:
        raise ValueError(f"logger {type(logger).__name__} has no `name`")


LOGGERS: Registry[Logger] = Registry("logger", Logger, _check_logger)


class CsvLogger(Logger):
    """The record's `curve.csv`: written with the record, whatever else is chosen; naming it adds nothing."""

    name = "csv"
    description = "the record's curve.csv (always written, with the record)"


def _missing(logger: str, extra: str) -> StabenchError:
    return StabenchError(f"the `{logger}` logger needs {extra}: pip install 'stabench[{logger}]'")


class TensorBoardLogger(Logger):
    """Scalars, the samples picture and the spectrum as TensorBoard events, one run per folder under
    `logdir` (default `OUT/tensorboard`): `tensorboard --logdir OUT/tensorboard` watches a sweep live."""

    name = "tensorboard"
    description = "TensorBoard event files under OUT/tensorboard/TASK/METHOD/seedS-RUN_ID"
    takes_pictures = True

    def __init__(self, logdir: str | Path | None = None):
        self.logdir = logdir
        self.writer: Any = None  # a SummaryWriter once started

    def check(self) -> None:
        try:
            import torch.utils.tensorboard  # noqa: F401 - needs the tensorboard package
        except ImportError:
            raise _missing("tensorboard", "TensorBoard") from None

    def start(self, run: LoggedRun) -> None:
        from torch.utils.tensorboard import SummaryWriter

        root = Path(self.logdir) if self.logdir is not None else run.out / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(root / run.name))
        settings = "\n".join(f"    {key} = {value!r}" for key, value in sorted(run.config.items()))
        self.writer.add_text("run", f"    {run.method} on {run.task}, seed {run.seed}, budget {run.budget}, "
                                    f"run_id {run.run_id}\n{settings}")

    def metrics(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()  # at every evaluation, so that TensorBoard shows it while the run trains

    def pictures(self, step: int, pictures: dict[str, Path]) -> None:
        from matplotlib.image import imread

        for key, path in pictures.items():
            self.writer.add_image(key, imread(path)[..., :3], step, dataformats="HWC")

    def finish(self, status: str, metrics: dict[str, Any]) -> None:
        self.writer.add_text("status", status)
        self.writer.close()


class WandbLogger(Logger):
    """A Weights & Biases run per stabench run, in `project`, grouped by task and method; `WANDB_MODE=offline`
    keeps it on disk (under OUT/wandb unless $WANDB_DIR says otherwise) for `wandb sync`."""

    name = "wandb"
    description = "Weights & Biases runs in project `stabench` (WANDB_MODE=offline for no network)"
    takes_pictures = True

    def __init__(self, project: str = "stabench", **init_options):
        self.project, self.init_options = project, init_options
        self.run: Any = None  # a wandb Run once started

    def check(self) -> None:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise _missing("wandb", "Weights & Biases") from None

    def start(self, run: LoggedRun) -> None:
        import wandb

        options: dict[str, Any] = {"dir": str(run.out)} if "WANDB_DIR" not in os.environ else {}
        options |= self.init_options
        config = {"method": run.method, "task": run.task, "seed": run.seed, "budget": run.budget,
                  "run_id": run.run_id, **run.config}
        # Seeds trained batched are open at the same time in one process: each is a run of its own.
        self.run = wandb.init(project=self.project, name=run.name, group=f"{run.task}/{run.method}", config=config,
                              reinit="create_new", **options)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def pictures(self, step: int, pictures: dict[str, Path]) -> None:
        import wandb

        self.run.log({key: wandb.Image(str(path)) for key, path in pictures.items()}, step=step)

    def finish(self, status: str, metrics: dict[str, Any]) -> None:
        self.run.summary.update({**metrics, "status": status})
        self.run.finish(exit_code=0 if status in ("completed", "diverged") else 1)


for _builtin in (CsvLogger(), TensorBoardLogger(), WandbLogger()):
    LOGGERS.register(_builtin)


def loggers_of(chosen: Iterable[str | Logger]) -> list[Logger]:
    """The loggers named (registered names) or given (instances), each checked, without repeats."""
    loggers: list[Logger] = []
    for item in chosen:
        logger = LOGGERS.get(item) if isinstance(item, str) else item
        if not isinstance(logger, Logger):
            raise StabenchError(f"a logger is a registered name or a stabench.Logger, not {type(item).__name__}")
        logger.check()
        if all(logger is not other for other in loggers):
            loggers.append(logger)
    return loggers


class RunLoggers:
    """The loggers of one run, each on its own copy; a logger that raises is warned about once and
    dropped, and the run goes on."""

    def __init__(self, loggers: Iterable[Logger], run: LoggedRun):
        self.run = run
        self.live: list[Logger] = []
        self.ended = False
        for logger in loggers:
            own = copy.copy(logger)
            if self._call(own, "start", run, adding=True):
                self.live.append(own)

    def metrics(self, row: dict[str, Any]) -> None:
        """One row of the curve: its numbers go to every logger (a text such as `spectrum_error` does not)."""
        values = {key: value for key, value in row.items() if key != "step" and _number(value)}
        for logger in list(self.live):
            self._call(logger, "metrics", row["step"], values)

    def end(self, status: str, metrics: dict[str, Any], step: int, samples: Path | None,
            eigenvalues: list[dict[str, float]] | None) -> None:
        """The pictures (the record's samples, a scatter of `eigenvalues`) to the loggers that take them,
        then `finish` to all."""
        if any(logger.takes_pictures for logger in self.live) and (samples is not None or eigenvalues):
            with tempfile.TemporaryDirectory(prefix="stabench-pictures-") as folder:
                pictures = {"samples": samples} if samples is not None and samples.is_file() else {}
                if eigenvalues:
                    pictures["spectrum"] = Path(folder) / "spectrum.png"
                    try:
                        scatter_eigenvalues(eigenvalues, pictures["spectrum"], f"{self.run.name}, step {step}")
                    except Exception as error:  # noqa: BLE001 - a picture is not worth the logging
                        warnings.warn(f"the spectrum picture for the loggers failed: {one_line(error)}", stacklevel=2)
                        del pictures["spectrum"]
                for logger in [logger for logger in self.live if logger.takes_pictures]:
                    self._call(logger, "pictures", step, pictures)
        self.close(status, metrics)

    def close(self, status: str, metrics: dict[str, Any]) -> None:
        """`finish` every logger, once."""
        if self.ended:
            return
        self.ended = True
        for logger in list(self.live):
            self._call(logger, "finish", status, metrics)

    def _call(self, logger: Logger, hook: str, *arguments, adding: bool = False) -> bool:
        try:
            getattr(logger, hook)(*arguments)
        except Exception as error:  # noqa: BLE001 - a logger must never cost the run
            warnings.warn(f"logger `{logger.name}` failed in `{hook}` ({one_line(error)}); {self.run.name} goes on "
                          f"without it", stacklevel=3)
            if not adding:
                self.live.remove(logger)
            return False
        return True


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def scatter_eigenvalues(eigenvalues: list[dict[str, float]], path: Path, title: str) -> None:
    """The eigenvalues (`real`, `imag`) in the complex plane, the imaginary axis marked: right of it is unstable."""
    from stabench.plots import subplots

    figure, axes = subplots(figsize=(4.5, 4.5))
    axes.axvline(0.0, color="tab:red", linewidth=0.8)
    axes.axhline(0.0, color="0.7", linewidth=0.5)
    axes.scatter([row["real"] for row in eigenvalues], [row["imag"] for row in eigenvalues], s=10,
                 color="tab:blue")
    axes.set_xlabel("Re λ")
    axes.set_ylabel("Im λ")
    axes.set_title(title, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
