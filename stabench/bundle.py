"""Submissions: what a maintainer needs to put a method on the leaderboard, and a check that it reproduces.

`write_bundle` copies a comparison's records (run.json and curve.csv, never network states), the plugin
sources whose hash the records carry, the commands and the versions into a folder; `verify` reruns a few of
its cells, chosen at random from a seed, and says whether each reproduces within the cross-CPU tolerance
that tests/test_golden.py states (relative 5e-3). A bundle whose plugin source does not hash to its
records' is refused.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stabench.errors import StabenchError
from stabench.records import CURVE_FILE, RUN_FILE, find_records, versions
from stabench.registry import load_plugin, package_code, provenance

BUNDLE_FILE = "bundle.json"
TOLERANCE = 5e-3  # relative: what two CPUs give for one run (tests/test_golden.py)


def _plugin_file(spec: str) -> Path:
    """The source file of a plugin given as a path or as an importable module."""
    if spec.endswith(".py") or "/" in spec:
        return Path(spec)
    module = sys.modules.get(spec)
    file = getattr(module, "__file__", None)
    if not file:
        raise StabenchError(f"cannot find the source file of plugin `{spec}` to bundle")
    return Path(file)


def write_bundle(method: str, runs: Path, to: str | Path, *, plugins=(), commands=()) -> Path:
    """Copy `method`'s records under `runs` (run.json, curve.csv), the `plugins`' sources and what made them
    into `to`; returns the bundle's description file."""
    to = Path(to)
    records = [record for record in find_records(Path(runs)) if record.method == method]
    if not records:
        raise StabenchError(f"no records of `{method}` under `{runs}` to bundle")
    for record in records:
        folder = to / "records" / record.task / record.method / record.run_id
        folder.mkdir(parents=True, exist_ok=True)
        for name in (RUN_FILE, CURVE_FILE):
            source = Path(record.path or "") / name
            if source.is_file() and not source.is_symlink():
                shutil.copyfile(source, folder / name)
    files = []
    for spec in plugins:
        source = _plugin_file(spec)
        (to / "plugins").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, to / "plugins" / source.name)
        files.append(f"plugins/{source.name}")
    description = {"method": method, "records": len(records), "plugins": files, "commands": list(commands),
                   "versions": versions(), "package_code": package_code(),
                   "verify": f"stabench verify {to}"}
    (to / BUNDLE_FILE).write_text(json.dumps(description, indent=2) + "\n")
    return to / BUNDLE_FILE


@dataclass
class Check:
    """One rerun cell: what the bundle says, what this machine gave, and the largest relative difference."""

    task: str
    seed: int
    run_id: str
    largest: float
    metric: str | None
    reproduces: bool


def _relative(recorded, found) -> float:
    if recorded is None or found is None:
        return 0.0 if recorded is found else math.inf
    if isinstance(recorded, float) and math.isnan(recorded):
        return 0.0 if isinstance(found, float) and math.isnan(found) else math.inf
    return abs(found - recorded) / max(abs(recorded), 1e-9)


def verify(bundle: str | Path, cells: int = 2, seed: int = 0, out: str | Path | None = None,
           progress: bool = False) -> list[Check]:
    """Rerun `cells` of the bundle's records (chosen by `seed`) and compare their metrics (wall-clock ones left
    out) with the recorded ones at relative `TOLERANCE`. Refuses, in one line, a bundle made by other stabench
    code or whose plugin source does not match its records' hash."""
    from stabench.configs import run_config
    from stabench.methods import METHODS
    from stabench.runner import run

    bundle = Path(bundle)
    try:
        description = json.loads((bundle / BUNDLE_FILE).read_text())
    except (OSError, ValueError) as error:
        raise StabenchError(f"`{bundle}` is not a bundle: cannot read {BUNDLE_FILE} ({error})") from None
    if description.get("package_code") != package_code():
        made = description.get("versions", {}).get("git_commit") or description.get("versions", {}).get("stabench")
        raise StabenchError(f"the bundle was made by other stabench code ({made}); install that version to verify it")
    for file in description.get("plugins", []):
        load_plugin(str(bundle / file))
    records = sorted(find_records(bundle / "records"), key=lambda record: (record.task, record.seed))
    if not records:
        raise StabenchError(f"the bundle at `{bundle}` holds no records")
    method = METHODS.get(description["method"])
    running = provenance(method)["source_sha256"]
    for record in records:
        recorded = record.plugins.get("method", {}).get("source_sha256")
        if recorded != running:
            raise StabenchError(f"the bundle's plugin source does not match its records: {record.path} was made by "
                                f"code {recorded}, the bundled source is {running}")
    chosen = np.random.default_rng(seed).choice(len(records), size=min(cells, len(records)), replace=False)
    out = Path(out) if out else bundle / "verify"
    checks = []
    for index in sorted(chosen):
        record = records[index]
        settings = run_config(like=record.path)
        again = run(**settings.arguments, seed=settings.seed, out=out, spectrum=False, progress=progress)
        compared = {name: _relative(value, again.metrics.get(name)) for name, value in record.metrics.items()
                    if "seconds" not in name}
        metric = max(compared, key=lambda name: compared[name]) if compared else None
        largest = compared[metric] if metric else 0.0
        checks.append(Check(record.task, record.seed, record.run_id, largest, metric, largest <= TOLERANCE))
    return checks
