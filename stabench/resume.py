"""Snapshots of a run in progress: a run stopped part-way (Ctrl-C, SIGTERM, a machine that went away)
continues from its last snapshot the next time the same cell is run into the same folder, to the same
numbers as a run that was never stopped.

A snapshot is taken at an evaluation once `every_seconds` of wall-clock have passed since the last one,
written atomically next to the run locks (`OUT/.partial/`), and deleted once the run's record is
written finished or failed. It is resumed only under the settings it was taken with (same method and task
code, device type, threads, tracking and checkpoints); otherwise the run starts again from step 0.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

SNAPSHOT_SECONDS = 300.0  # wall-clock between snapshots: a stopped run loses at most about this much
SNAPSHOT_DIR = ".partial"  # under a run's `out`


class Snapshots:
    """The snapshot file of one run, the settings it must match to be resumed, and when the next is due."""

    def __init__(self, path: Path, settings: dict[str, Any], every_seconds: float | None = None):
        self.path, self.settings = Path(path), dict(settings)
        self.every_seconds = SNAPSHOT_SECONDS if every_seconds is None else every_seconds
        self.last = time.monotonic()
        self.step: int | None = None  # of the snapshot on disk, once this run saved or loaded one

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every_seconds

    def save(self, content: dict[str, Any]) -> None:
        """Write `content` with the settings, atomically: a reader finds the previous snapshot or this one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            torch.save({"settings": self.settings, **content}, temporary)
            os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)
        self.last, self.step = time.monotonic(), content.get("step")

    def load(self) -> dict[str, Any] | None:
        """The saved content, if there is a readable snapshot taken under these settings."""
        if not self.path.is_file():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a snapshot that cannot be read is no snapshot: train from the start
            return None
        if not isinstance(saved, dict) or saved.pop("settings", None) != self.settings:
            return None
        self.step = saved.get("step")
        return saved

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.step = None


def snapshot_path(out: Path, task: str, method: str, run_id: str) -> Path:
    return Path(out) / SNAPSHOT_DIR / f"{task}.{method}.{run_id}.pt"
