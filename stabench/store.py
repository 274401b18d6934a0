"""Run records on disk: one folder per run, written atomically, read back as dicts."""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, Callable


def run_id(identity: dict[str, Any]) -> str:
    """A short, stable hash of what makes a run: task and version, method, config, seed, steps."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def run_directory(out: Path, task: str, method: str, identifier: str) -> Path:
    return Path(out) / task / method / identifier


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def to_json(record: dict[str, Any]) -> str:
    """Strict JSON: NaN and infinities (undefined metrics) become null."""
    return json.dumps(_finite_or_none(record), indent=2, sort_keys=False)


def write_atomically(directory: Path, fill: Callable[[Path], None]) -> Path:
    """Let `fill` write into a temporary sibling folder, then rename it to `directory`.

    A reader never sees a half-written record: either the old folder or the complete new one.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        fill(temporary)
        if directory.exists():
            retired = directory.parent / f".{directory.name}.old-{os.getpid()}"
            os.replace(directory, retired)
            os.replace(temporary, directory)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(temporary, directory)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return directory


def write_file_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Let `write` fill a temporary sibling file, then rename it to `path`: a reader sees the old file
    or the new one, never half of it."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_record(directory: Path) -> dict[str, Any]:
    return json.loads((Path(directory) / "run.json").read_text())
