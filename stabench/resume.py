"""Snapshots of a run in progress: a run stopped part-way (Ctrl-C, SIGTERM, a machine that went away)
continues from its last snapshot the next time the same cell is run into the same folder, to the same
numbers as a run that was never stopped.

A snapshot is taken at an evaluation once `every_seconds` of wall-clock have passed since the last one,
written atomically next to the run locks (`OUT/.partial/`), and deleted once the run's record is
written finished or failed (never before: a record that cannot be written leaves the snapshot to go on
from). It carries its cell's identity and is resumed only by that cell, under the settings it was taken
with (same method and task code, device type, threads, tracking and checkpoints); otherwise the run starts again
from step 0 and says why in one line, which also goes into the record's notes.
"""
from __future__ import annotations

import glob
import os
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch

from stabench.errors import one_line

SNAPSHOT_SECONDS = 300.0  # wall-clock between snapshots: a stopped run loses at most about this much
SNAPSHOT_DIR = ".partial"  # under a run's `out`


class Snapshots:
    """The snapshot file of one run, the identity of its cell (`run_id`, task, method, versions and seed)
    and the settings it must match to be resumed, and when the next is due."""

    def __init__(self, path: Path, settings: dict[str, Any], every_seconds: float | None = None,
                 cell: dict[str, Any] | None = None):
        self.path, self.settings, self.cell = Path(path), dict(settings), cell
        self.every_seconds = SNAPSHOT_SECONDS if every_seconds is None else every_seconds
        self.last = time.monotonic()
        self.step: int | None = None  # of the snapshot on disk, once this run saved or loaded one
        self.said: str | None = None  # why a snapshot found was not taken up, for the record's notes

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every_seconds

    def save(self, content: dict[str, Any]) -> None:
        """Write `content` with the cell and settings, atomically: a reader finds the previous snapshot or this one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            torch.save({"settings": self.settings, "cell": self.cell, **content}, temporary)
            os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)
        self.last, self.step = time.monotonic(), content.get("step")

    def load(self) -> dict[str, Any] | None:
        """The saved content, if there is a readable snapshot of this cell taken under these settings.

        A snapshot that cannot be read, or of another cell, is deleted; one taken under other settings is
        left to be replaced. Either is said (`said`)."""
        if not self.path.is_file():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - a snapshot that cannot be read is no snapshot: train from the start
            self.refuse(f"cannot be read ({one_line(error, 100)})")
            return None
        if not isinstance(saved, dict):
            self.refuse(f"cannot be read (it holds a {type(saved).__name__}, not a snapshot)")
            return None
        settings, cell = saved.pop("settings", None), saved.pop("cell", self.cell)  # made before cells were kept: its path names it
        if cell != self.cell:
            self.refuse(f"belongs to another run ({_describe(cell)})")
            return None
        if settings != self.settings:
            self._say(f"the snapshot at step {saved.get('step')} was taken under other settings "
                      f"({_differences(settings, self.settings)}); trained from step 0")
            return None
        self.step = saved.get("step")
        return saved

    def refuse(self, reason: str) -> None:
        """Delete a snapshot that cannot be resumed, saying `reason`: the run starts from step 0."""
        self.discard()
        self._say(f"the snapshot {self.path} {reason}; it is deleted and the run starts from step 0")

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.step = None

    def tidy(self) -> None:
        """Delete what a process killed while writing this run's snapshot left (its temporary files)."""
        for leftover in self.path.parent.glob(f".{glob.escape(self.path.name)}.tmp-*"):
            leftover.unlink(missing_ok=True)

    def _say(self, line: str) -> None:
        self.said = line
        warnings.warn(line, stacklevel=3)


def snapshot_path(out: Path, task: str, method: str, run_id: str) -> Path:
    return Path(out) / SNAPSHOT_DIR / f"{task}.{method}.{run_id}.pt"


def outdated(out: Path, cell: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """The snapshots under `out` of `cell`'s task and method made by other versions of either (no run of
    this code can resume them), each with its run_id. Snapshots that do not say their cell are left."""
    pattern = f"{glob.escape(cell['task'])}.{glob.escape(cell['method'])}.*.pt"
    for path in (Path(out) / ".partial").glob(pattern):
        try:  # mapped, not read: only the identity is looked at
            other = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("cell")
        except Exception:  # noqa: BLE001 - not a snapshot this code wrote: leave it
            continue
        if (isinstance(other, dict) and (other.get("task"), other.get("method")) == (cell["task"], cell["method"])
                and (other.get("task_version"), other.get("method_version"))
                != (cell["task_version"], cell["method_version"])):
            yield path, str(other.get("run_id"))


def _describe(cell: Any) -> str:
    if not isinstance(cell, dict):
        return "it does not say which"
    return (f"{cell.get('method')} version {cell.get('method_version')} on {cell.get('task')} version "
            f"{cell.get('task_version')}, seed {cell.get('seed')}, run_id {cell.get('run_id')}")


def _differences(saved: Any, current: dict[str, Any]) -> str:
    if not isinstance(saved, dict):
        return "it does not say which"
    keys = [key for key in {**saved, **current} if saved.get(key) != current.get(key)]
    return "; ".join(f"{key} {_short(saved.get(key))}, now {_short(current.get(key))}" for key in keys)


def _short(value: Any, width: int = 40) -> str:
    text = str(value)
    return text if len(text) <= width else text[:width - 1] + "…"

