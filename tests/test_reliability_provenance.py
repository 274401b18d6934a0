"""Issue 41, items 8, 10 and part of 15: provenance covers the code a run runs, Ray faults stay per cell,
odd lock, output and snapshot paths are one line."""
import hashlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

import stabench
from stabench import resume, sweep
from stabench.errors import interrupt
from stabench.methods import METHODS
from stabench.records import RUN_FILE, read_record
from stabench.registry import load_plugin
from stabench.tasks import TASKS
from stabench.table import load_runs

TINY = {"batch_size": 16}

# A method whose step is scaled by a module-level constant through a module-level helper, and a task whose
# record data comes from one: a change to either changes what runs, not the classes' bodies.
PLUGIN = '''
from stabench import register_method, register_task
from stabench.methods.vanilla import Vanilla
from stabench.tasks.lq import LinearQuadratic1d

STEP_SCALE = {scale}
NOTE = "{note}"


def scaled(direction):
    return {{name: STEP_SCALE * value for name, value in direction.items()}}


def describe():
    return {{"note": NOTE}}


class Scaled(Vanilla):
    def g_direction(self, game, point, batch, params, ctx):
        return scaled(super().g_direction(game, point, batch, params, ctx))


class NotedLq(LinearQuadratic1d):
    name = "noted-lq"

    def provenance(self, params):
        return describe()


register_method(Scaled("scaled", "vanilla with a scaled generator step"))
register_task(NotedLq())
'''


@pytest.fixture
def plugin(tmp_path):
    """`plugin(scale=..., note=...)` writes the plugin file and loads it afresh, as a new process would."""
    path = tmp_path / "provenance_plugin.py"

    def unload():
        for name in [name for name, module in sys.modules.items() if getattr(module, "__file__", None) == str(path)]:
            del sys.modules[name]
        for registry, name in ((METHODS, "scaled"), (TASKS, "noted-lq")):
            if name in registry._entries:
                registry.unregister(name)

    def load(scale=1.0, note="first"):
        unload()
        path.write_text(PLUGIN.format(scale=scale, note=note))
        load_plugin(str(path))

    yield load
    unload()


def run_cell(out, method="scaled", task="lq1d", steps=3, **options):
    return stabench.run(method, task, budget="smoke", steps=steps, overrides=TINY, out=out, progress=False,
                        spectrum=False, **options)


# --- 15. odd lock, output and snapshot paths: one line, non-zero exit -------------------------------

RUN = ["run", "--method", "vanilla", "--task", "lq1d", "--budget", "smoke", "--steps", "3", "--no-spectrum",
       "--quiet", "--set", "batch_size=16"]
SWEEP = ["sweep", "--methods", "vanilla", "--tasks", "lq1d", "--seeds", "0", "--budget", "smoke", "--steps", "3",
         "--no-spectrum", "--quiet", "--workers", "1"]


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    (line,) = result.output.splitlines()
    assert line.startswith("stabench: error: ")
    return line


def test_a_file_where_the_locks_folder_goes_is_one_line(invoke, tmp_path):
    (tmp_path / ".locks").write_text("not a folder")
    assert "cannot lock" in one_line_error(invoke(*RUN, "--out", str(tmp_path)))


def test_a_folder_where_a_lock_file_goes_is_one_line(invoke, tmp_path):
    record = run_cell(tmp_path, method="vanilla")
    (tmp_path / ".locks" / f"lq1d.vanilla.{record.run_id}.lock").unlink()
    (tmp_path / ".locks" / f"lq1d.vanilla.{record.run_id}.lock").mkdir()
    assert "Is a directory" in one_line_error(invoke(*RUN, "--force", "--out", str(tmp_path)))


def test_a_sweep_out_under_a_file_is_one_line(invoke, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    line = one_line_error(invoke(*SWEEP, "--out", str(tmp_path / "file" / "runs")))
    assert line.startswith(f"stabench: error: cannot write run records under `{tmp_path / 'file' / 'runs'}`")


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a folder that nobody, root included, may write to")
def test_an_unwritable_sweep_out_is_one_line(invoke):
    line = one_line_error(invoke(*SWEEP, "--out", "/sys/stabench-cannot-write-here"))
    assert line.startswith("stabench: error: cannot write run records under `/sys/stabench-cannot-write-here`")


@pytest.mark.parametrize("command", [RUN, SWEEP])
def test_a_file_where_the_snapshot_folder_goes_is_one_line(invoke, tmp_path, command):
    (tmp_path / ".partial").write_text("not a folder")
    line = one_line_error(invoke(*command, "--out", str(tmp_path)))
    assert line == f"stabench: error: `{tmp_path / '.partial'}` is a file where run snapshots are kept: move it away"
    assert not list(tmp_path.glob(f"lq1d/vanilla/*/{RUN_FILE}"))  # refused before training
