"""The run record: its type, its artifacts, one writer, one validating reader.

A record is a folder `<out>/<task>/<method>/<run_id>/` holding `RUN_FILE` (the `RunRecord` as
JSON), `CURVE_FILE` (metrics at every evaluation), `SPECTRUM_FILE` (eigenvalues, where computed),
`STATE_FILE` (final parameters, optimizer and method state; read with `weights_only=True` only) and
`SAMPLES_FILE`. Folders are written whole into a temporary sibling and renamed into place, so a
reader sees the old record or the new one, never half of either.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import platform
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Iterator

from stabench.names import RULE, shown, valid_name
from stabench.seeds import MAX_SEED

RUN_FILE = "run.json"
CURVE_FILE = "curve.csv"
SPECTRUM_FILE = "spectrum.csv"
STATE_FILE = "state.pt"
SAMPLES_FILE = "samples.png"
TRACK_FILE = "spectrum_track.csv"  # eigenvalues along training: step, search, rank, real, imag
CHECKPOINTS_DIR = "checkpoints"  # a few intermediate states, `step-<S>.pt` each, like STATE_FILE
PATH_ANGLE_FILE = "path_angle.csv"  # the field along the line from the initial to the final parameters
PATH_ANGLE_FIGURE = "path_angle.png"
LANDSCAPE_FILE = "landscape.json"  # eigenvalues of the Jacobian's symmetric and antisymmetric parts at the end

STATUSES = ("completed", "diverged", "failed", "interrupted")
FINISHED = ("completed", "diverged")  # a rerun of the same cell would only reproduce these


def package_version() -> str:
    """stabench's version from the installed package's metadata."""
    try:
        return version("stabench")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


LIBRARIES = ("torch", "numpy", "scipy", "pandas")  # what a run's numbers depend on, beside Python and stabench
PACKAGE_DIR = Path(__file__).resolve().parent
GIT_SECONDS = 10.0  # a git that hangs (a network file system) must not hold up a run


def _git(checkout: Path, *args: str) -> str:
    # Without optional locks `git status` never writes the index: a sweep cannot get in the way of a commit.
    return subprocess.run(["git", "--no-optional-locks", "-C", str(checkout), *args], capture_output=True, text=True,
                          check=True, timeout=GIT_SECONDS).stdout.strip()


def checkout(package_dir: Path = PACKAGE_DIR) -> dict[str, Any]:
    """The git commit of the checkout the package at `package_dir` runs from (`git_commit`), and whether its
    code differs from that commit (`git_dirty`: changed or new files in the package or in pyproject.toml).

    The checkout is found from the package's own folder, never the current directory; a package that is
    not at the top of one (installed from a wheel) says so in `git_commit`, with `git_dirty` None. Never
    raises: a run is worth more than its commit."""
    root = package_dir.parent
    if not (root / ".git").exists():  # a folder in a clone, a file in a worktree
        return {"git_commit": "none: not run from a git checkout", "git_dirty": None}
    try:
        commit = _git(root, "rev-parse", "HEAD")
        changed = _git(root, "status", "--porcelain", "--", package_dir.name, "pyproject.toml")
    except FileNotFoundError:
        return {"git_commit": "unknown: git is not installed", "git_dirty": None}
    except subprocess.CalledProcessError as error:  # no commit yet, or a repository git refuses to read
        return {"git_commit": f"unknown: git exited with {error.returncode}", "git_dirty": None}
    except (OSError, subprocess.SubprocessError) as error:  # a timeout, a git that cannot start
        return {"git_commit": f"unknown: {type(error).__name__}", "git_dirty": None}
    return {"git_commit": commit, "git_dirty": bool(changed)}


def versions() -> dict[str, Any]:
    """The versions a record keeps: Python, stabench, `LIBRARIES` and the commit of stabench's checkout."""
    import torch

    found: dict[str, Any] = {"python": platform.python_version(), "stabench": package_version(),
                             "torch": torch.__version__}
    for library in LIBRARIES[1:]:
        try:
            found[library] = version(library)
        except PackageNotFoundError:  # a vendored or source copy: say so rather than guess
            found[library] = "unknown"
    return found | checkout()


class CorruptRecord(ValueError):
    """A run record that cannot be read or has the wrong shape."""


@dataclass
class RunRecord:
    """What one (method, task, seed) run was and what it measured.

    `config` holds the identity hyperparameters (they make the run_id); `environment` the settings
    that only say where things live on the machine that ran it (never applied when read back).
    `metric_directions` and `task_description` are the task's, stored so that tables of a plugin
    task look the same with or without the plugin installed.
    """

    run_id: str
    method: str
    task: str
    task_version: int
    seed: int
    budget: str
    steps_planned: int
    config: dict[str, Any]
    status: str
    metrics: dict[str, Any]
    timing: dict[str, Any]
    method_version: int = 1
    steps_overridden: bool = False
    recipe: str | None = None  # the named recipe the settings came from (`stabench list recipes`)
    environment: dict[str, Any] = field(default_factory=dict)
    metric_directions: dict[str, str] = field(default_factory=dict)
    task_description: str = ""
    device: str = ""
    threads: int | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    plugins: dict[str, Any] = field(default_factory=dict)  # where the method's and task's code came from
    started_at: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    spectrum: dict[str, Any] | None = None
    diverged_at_step: int | None = None
    error: str | None = None
    traceback: str | None = None
    notes: list[str] = field(default_factory=list)  # how the run was made, where a reader should know (batched)
    # Not stored: where it was read from or written to, and whether `run` returned it without training.
    path: Path | None = field(default=None, compare=False)
    reused: bool = field(default=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _NOT_STORED}

    def to_json(self) -> str:
        return to_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, source: str = "record") -> "RunRecord":
        """A record from parsed JSON, every field's type checked; `CorruptRecord` names what is wrong."""
        if not isinstance(data, dict):
            raise CorruptRecord(f"{source} is not a JSON object")
        known = {f.name: f for f in dataclasses.fields(cls) if f.name not in _NOT_STORED}
        missing = [name for name, f in known.items()
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in data]
        if missing:
            raise CorruptRecord(f"{source} has no {', '.join(missing)}")
        values = {}
        for name, value in data.items():
            if name in known:
                _check_field(name, value, source)
                values[name] = value
        if values["status"] not in STATUSES:
            raise CorruptRecord(f"{source}: unknown status {values['status']!r}")
        for name in NAMED:
            if values.get(name) is not None and not valid_name(values[name]):
                raise CorruptRecord(f"{source}: `{name}` {shown(values[name])} is not a name ({RULE})")
        if not 0 <= values["seed"] <= MAX_SEED:
            raise CorruptRecord(f"{source}: `seed` {values['seed']} is outside 0 ... {MAX_SEED}")
        if values.get("threads") is not None and values["threads"] < 1:
            raise CorruptRecord(f"{source}: `threads` {values['threads']} is below 1")
        return cls(**values)


_NOT_STORED = ("path", "reused")
NAMED = ("method", "task", "recipe", "budget", "run_id")  # fields that become folders, headings and labels
_INT, _TEXT = "an integer", "a string"
_SCHEMA = {
    "run_id": _TEXT, "method": _TEXT, "task": _TEXT, "budget": _TEXT, "status": _TEXT,
    "task_version": _INT, "seed": _INT, "steps_planned": _INT, "method_version": _INT,
    "config": "settings", "environment": "settings", "metrics": "numbers", "timing": "numbers",
    "metric_directions": "directions", "steps_overridden": "a boolean", "task_description": _TEXT, "device": _TEXT,
    "threads": _INT + " or null", "versions": "an object", "plugins": "an object", "started_at": _TEXT + " or null",
    "data": "an object", "spectrum": "an object or null", "diverged_at_step": _INT + " or null",
    "error": _TEXT + " or null", "traceback": _TEXT + " or null", "recipe": _TEXT + " or null",
    "notes": "a list of strings",
}


def _is_number(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _valid(kind: str, value) -> bool:
    nullable = kind.endswith(" or null")
    if nullable and value is None:
        return True
    kind = kind.removesuffix(" or null")
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _TEXT:
        return isinstance(value, str)
    if kind == "a boolean":
        return isinstance(value, bool)
    if kind == "a list of strings":
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if not isinstance(value, dict):
        return False
    if kind == "settings":
        return all(isinstance(v, (str, int, float, bool)) or v is None for v in value.values())
    if kind == "numbers":
        return all(_is_number(v) for v in value.values())
    if kind == "directions":
        return all(v in ("max", "min") for v in value.values())
    return True


def _check_field(name: str, value, source: str) -> None:
    kind = _SCHEMA[name]
    if not _valid(kind, value):
        wanted = {"settings": "an object of plain values", "numbers": "an object of numbers",
                  "directions": "an object of max or min"}.get(kind.removesuffix(" or null"), kind)
        raise CorruptRecord(f"{source}: `{name}` should be {wanted}, got {json.dumps(value)[:60]}")


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def to_json(data: Any) -> str:
    """Strict JSON: NaN and infinities (undefined metrics) become null."""
    return json.dumps(_finite_or_none(data), indent=2, sort_keys=False, default=str)


def run_directory(out: Path, task: str, method: str, run_id: str) -> Path:
    return Path(out) / task / method / run_id


def method_code(record: RunRecord) -> str | None:
    """The hash of the code of the method that made `record` (`registry.provenance`; None for records that
    predate it). Older records hashed the method's class bodies only: they are read, but their hash
    matches no code now, so they are never reused."""
    return _code(record, "method")


def task_code(record: RunRecord) -> str | None:
    """The hash of the code of the task that made `record`, as `method_code`."""
    return _code(record, "task")


def _code(record: RunRecord, kind: str) -> str | None:
    entry = record.plugins.get(kind)
    return entry.get("source_sha256") if isinstance(entry, dict) else None


# --- writing ----------------------------------------------------------------------------------------

def _temporary(directory: Path, kind: str) -> Path:
    return directory.parent / f".{directory.name}.{kind}-{os.getpid()}"


_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(parent: Path) -> None:
    """Finish what a writer killed mid-swap left in `parent`: a retired record whose replacement never
    arrived is put back; temporary folders of writers that are gone are removed."""
    try:
        children = list(Path(parent).iterdir())
    except OSError:
        return
    for child in children:
        match = _LEFTOVER.match(child.name)
        if not match or _alive(int(match["pid"])) and int(match["pid"]) != os.getpid():
            continue
        target = child.parent / match["name"]
        if match["kind"] == "old" and not target.exists():
            os.replace(child, target)
        else:
            shutil.rmtree(child, ignore_errors=True)


def write_atomically(directory: Path, fill: Callable[[Path], None]) -> Path:
    """Let `fill` write into a temporary sibling folder, then rename it to `directory`.

    A reader never sees a half-written record. Replacing an existing folder takes two renames; a
    writer killed between them leaves the old folder under a hidden name, and `recover` (run by every
    reader and writer of the parent folder) puts it back.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    recover(directory.parent)
    temporary = _temporary(directory, "tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        fill(temporary)
        if directory.exists():
            retired = _temporary(directory, "old")
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


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """`rows` as a CSV file, the columns in the order they first appear."""
    columns = list(dict.fromkeys(key for row in rows for key in row))  # rows may hold different columns
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def checkpoint_file(directory: Path, step: int) -> Path:
    return Path(directory) / CHECKPOINTS_DIR / f"step-{step}.pt"


def checkpoint_steps(directory: Path) -> list[int]:
    """The steps whose intermediate state a record keeps."""
    found = (Path(directory) / CHECKPOINTS_DIR).glob("step-*.pt")
    return sorted(int(file.stem.removeprefix("step-")) for file in found if file.stem.removeprefix("step-").isdigit())


def write_run(directory: Path, record: RunRecord, *, curve: list[dict[str, Any]] = (),
              eigenvalues: list[dict[str, float]] | None = None, state: dict[str, Any] | None = None,
              draw_samples: Callable[[Path], None] | None = None, track: list[dict[str, Any]] = (),
              checkpoints: dict[int, dict[str, Any]] | None = None) -> Path:
    """Write a whole record folder atomically: run.json, the curve, the eigenvalues, the tracked
    eigenvalues, the state, the checkpoints and the samples picture (each where given). A picture that
    fails to draw never costs the record."""
    import torch

    def fill(folder: Path):
        if curve:
            write_rows(folder / CURVE_FILE, list(curve))
        if eigenvalues:
            write_rows(folder / SPECTRUM_FILE, eigenvalues)
        if track:
            write_rows(folder / TRACK_FILE, list(track))
        if state is not None:
            torch.save(state, folder / STATE_FILE)
        for step, saved in (checkpoints or {}).items():
            checkpoint_file(folder, step).parent.mkdir(exist_ok=True)
            torch.save(saved, checkpoint_file(folder, step))
        if draw_samples is not None:
            try:
                draw_samples(folder / SAMPLES_FILE)
            except Exception as error:  # noqa: BLE001 - a picture is not worth the measurements
                (folder / SAMPLES_FILE).unlink(missing_ok=True)
                record.data = {**record.data, "samples_error": f"{type(error).__name__}: {error}"}
        (folder / RUN_FILE).write_text(record.to_json() + "\n")

    write_atomically(directory, fill)
    record.path = Path(directory)
    return Path(directory)


# --- reading ----------------------------------------------------------------------------------------

def is_record(directory: Path) -> bool:
    return (Path(directory) / RUN_FILE).is_file()


# What the writer never comes near: a record past these is hostile or damaged, and skipped like one.
MAX_RECORD_BYTES = 4 << 20
MAX_DEPTH = 32  # nesting of objects and lists; a record's own is under 6
MAX_NUMBER = 32  # characters of one number: a float's repr takes at most 24, an int64 20


def _number(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """A JSON number parser that refuses what the writer never writes: more than `MAX_NUMBER` characters,
    or a float beyond the finite range."""
    def parse(text: str):
        if len(text) > MAX_NUMBER:
            raise CorruptRecord(f"a number of {len(text)} characters (at most {MAX_NUMBER})")
        value = kind(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise CorruptRecord(f"a number out of range ({text})")
        return value

    return parse


def _constant(name: str):
    raise CorruptRecord(f"{name}, which is not JSON (the writer stores an undefined number as null)")


def _depth(value, limit: int) -> bool:
    """`value` nests objects and lists at most `limit` deep."""
    if isinstance(value, (dict, list)):
        items = value.values() if isinstance(value, dict) else value
        return limit > 0 and all(_depth(item, limit - 1) for item in items)
    return True


def parse_record(text: str) -> Any:
    """Strict JSON of a run record: no NaN or infinities, numbers of at most `MAX_NUMBER` characters, at
    most `MAX_DEPTH` levels of nesting; `CorruptRecord` (without the file's name) otherwise."""
    try:
        data = json.loads(text, parse_constant=_constant, parse_float=_number(float), parse_int=_number(int))
    except json.JSONDecodeError as error:
        raise CorruptRecord(f"not JSON: {error}") from None
    except RecursionError:
        raise CorruptRecord(f"nested more than {MAX_DEPTH} levels deep") from None
    if not _depth(data, MAX_DEPTH):
        raise CorruptRecord(f"nested more than {MAX_DEPTH} levels deep")
    return data


def _read_bounded(file: Path) -> str:
    """The text of `file`, refusing one larger than `MAX_RECORD_BYTES` without reading the rest."""
    with open(file, "rb") as handle:
        data = handle.read(MAX_RECORD_BYTES + 1)
    if len(data) > MAX_RECORD_BYTES:
        raise CorruptRecord(f"{file} is larger than {MAX_RECORD_BYTES >> 20} MiB: not a run record")
    return data.decode()


def read_record(directory: Path) -> RunRecord:
    """The record in `directory`; `CorruptRecord` (a ValueError) names the file and what is wrong."""
    if not Path(directory).exists():
        recover(Path(directory).parent)  # a writer killed mid-swap may have left it under a hidden name
    file = Path(directory) / RUN_FILE
    try:
        text = _read_bounded(file)
    except (OSError, UnicodeDecodeError) as error:
        raise CorruptRecord(f"{file} cannot be read: {error}") from None
    try:
        data = parse_record(text)
    except CorruptRecord as error:
        raise CorruptRecord(f"{file} is not a run record: {error}") from None
    record = RunRecord.from_dict(data, str(file))
    record.path = Path(directory)
    return record


def find_records(root: Path) -> Iterator[RunRecord]:
    """Every readable record under `root`; each unreadable one is skipped with one warning naming its file."""
    root = Path(root)
    for file in sorted(root.rglob(RUN_FILE)):
        folder = file.parent
        if any(part.startswith(".") for part in file.relative_to(root).parts):
            leftover = _LEFTOVER.match(folder.name)
            if not (leftover and leftover["kind"] == "old"):
                continue  # a record still being written
            target = folder.parent / leftover["name"]
            if target.exists():
                continue  # replaced already: the record is read on its own path
            recover(folder.parent)  # retired by a writer killed mid-swap: put back, if that writer is gone
            if file.is_file():
                continue  # its writer is still at work
            folder = target
        try:
            yield read_record(folder)
        except CorruptRecord as error:
            warnings.warn(f"skipping run record: {error}", stacklevel=2)


def read_state(directory: Path, step: int | None = None) -> dict[str, Any]:
    """The final parameters and training state of a record, or those kept at `step` (`weights_only=True`);
    CorruptRecord (a ValueError) if missing or unreadable."""
    import torch

    file = Path(directory) / STATE_FILE if step is None else checkpoint_file(directory, step)
    if step is not None and not file.is_file():
        kept = ", ".join(map(str, checkpoint_steps(directory))) or "none"
        raise CorruptRecord(f"run `{directory}` keeps no state at step {step}; steps kept: {kept}")
    if not file.is_file():
        raise CorruptRecord(f"run `{directory}` has no {STATE_FILE} (no final parameters were saved)")
    try:
        state = torch.load(file, weights_only=True, map_location="cpu")
    except Exception:  # noqa: BLE001 - unpickling reports damage in many ways; none of them is a hint to follow
        raise CorruptRecord(f"`{file}` is unreadable (damaged or not a stabench state file)") from None
    if not isinstance(state, dict):
        raise CorruptRecord(f"`{file}` is unreadable (not a stabench state file)")
    return state


def read_rows(directory: Path, name: str):
    """A record's csv artifact (`CURVE_FILE`, `SPECTRUM_FILE`) as a DataFrame, or None when it is missing,
    empty or unreadable (with one warning naming the file in the last two cases)."""
    import pandas as pd

    file = Path(directory) / name
    if not file.is_file():
        return None
    try:
        return pd.read_csv(file)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        warnings.warn(f"skipping {file}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                      stacklevel=2)
        return None
