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
import time
import types
from pathlib import Path

import pytest

import stabench
from stabench import resume, sweep
from stabench.errors import interrupt
from stabench.methods import METHODS
from stabench.records import RUN_FILE, read_record
from stabench.registry import load_plugin, package_code, sources_code
from stabench.tasks import TASKS
from stabench.table import load_runs
from test_safety import DYING

TINY = {"batch_size": 16}

# A method whose step is scaled by a module-level constant through a module-level helper, and a task whose
# record data comes from one, each in a plugin file of its own: a change to either changes what runs, not
# the classes' bodies.
METHOD_PLUGIN = '''
from stabench import register_method
from stabench.methods.vanilla import Vanilla

STEP_SCALE = {}


def scaled(direction):
    return {{name: STEP_SCALE * value for name, value in direction.items()}}


class Scaled(Vanilla):
    def g_direction(self, game, point, batch, params, ctx):
        return scaled(super().g_direction(game, point, batch, params, ctx))


register_method(Scaled("scaled", "vanilla with a scaled generator step"))
'''

TASK_PLUGIN = '''
from stabench import register_task
from stabench.tasks.lq import LinearQuadratic1d

NOTE = "{}"


def describe():
    return {{"note": NOTE}}


class NotedLq(LinearQuadratic1d):
    name = "noted-lq"

    def provenance(self, params):
        return describe()


register_task(NotedLq())
'''


@pytest.fixture
def plugin(tmp_path):
    """`plugin(scale=..., note=...)` writes the two plugin files and loads them afresh, as a new process would."""
    files = {(METHODS, "scaled"): tmp_path / "method_plugin.py", (TASKS, "noted-lq"): tmp_path / "task_plugin.py"}

    def unload():
        for name in [name for name, module in sys.modules.items()
                     if getattr(module, "__file__", None) in {str(file) for file in files.values()}]:
            del sys.modules[name]
        for registry, name in files:
            if name in registry._entries:
                registry.unregister(name)

    def load(scale=1.0, note="first"):
        unload()
        for (registry, _), file in files.items():
            file.write_text((METHOD_PLUGIN if registry is METHODS else TASK_PLUGIN).format(
                scale if registry is METHODS else note))
            load_plugin(str(file))

    yield load
    unload()


def run_cell(out, method="scaled", task="lq1d", steps=3, **options):
    return stabench.run(method, task, budget="smoke", steps=steps, overrides=TINY, out=out, progress=False,
                        spectrum=False, **options)


# --- 8. provenance covers the code a method or task runs ---------------------------------------------

@pytest.mark.parametrize("changed", ["method", "task"])
def test_a_plugins_module_level_change_is_not_reused_nor_skipped(tmp_path, plugin, changed):
    plugin()
    first = run_cell(tmp_path, task="noted-lq")
    assert not first.reused and run_cell(tmp_path, task="noted-lq").reused  # the same code: reused
    (cell,) = sweep.plan(["scaled"], ["noted-lq"], [0], budget="smoke", steps=3, overrides=TINY, out=tmp_path)
    assert sweep.finished(cell)

    plugin(**({"scale": 0.5} if changed == "method" else {"note": "second"}))
    assert not sweep.finished(cell)
    second = run_cell(tmp_path, task="noted-lq")
    assert not second.reused
    unchanged = {"method": "task", "task": "method"}[changed]
    assert second.plugins[changed]["source_sha256"] != first.plugins[changed]["source_sha256"]
    assert second.plugins[unchanged] == first.plugins[unchanged]
    assert read_record(second.path).plugins == second.plugins


def test_a_snapshot_taken_under_other_plugin_code_is_not_resumed(tmp_path, plugin, monkeypatch, interrupt_at):
    monkeypatch.setattr(resume, "SNAPSHOT_SECONDS", 0.0)
    plugin()
    with interrupt_at(70), pytest.raises(KeyboardInterrupt):
        run_cell(tmp_path, steps=100)
    assert list((tmp_path / ".partial").glob("*.pt"))  # a snapshot at step 50

    plugin(scale=0.5)
    record = run_cell(tmp_path, steps=100)
    assert record.status == "completed"
    assert not any("resumed" in note for note in record.notes)


@pytest.mark.slow
def test_a_builtin_modules_helper_is_part_of_the_code_hash(tmp_path):
    # `generator_loss` is a module-level function of vanilla.py: a copy of stabench that doubles it must
    # not reuse the record of the unchanged code; an unchanged copy elsewhere has the same code hash
    copy = tmp_path / "copy"
    shutil.copytree(Path(stabench.__file__).parent, copy / "stabench", ignore=shutil.ignore_patterns("__pycache__"))
    assert sources_code(copy / "stabench") == package_code()
    out = tmp_path / "runs"
    settings = {**TINY, "optimizer": "sgd", "nonsaturating": True}  # Adam's first steps ignore a gradient's size
    original = stabench.run("vanilla", "lq1d", budget="smoke", steps=3, overrides=settings, out=out, progress=False,
                            spectrum=False)

    vanilla = copy / "stabench" / "methods" / "vanilla.py"
    source = vanilla.read_text()
    assert "        return -game.mean(" in source
    vanilla.write_text(source.replace("        return -game.mean(", "        return -2 * game.mean("))
    assert sources_code(copy / "stabench") != package_code()
    changed = subprocess.run(
        [sys.executable, "-m", "stabench", "run", "--method", "vanilla", "--task", "lq1d", "--budget", "smoke",
         "--steps", "3", *[f"--set={key}={value}" for key, value in settings.items()], "--no-spectrum", "--quiet",
         "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(copy)}, cwd=copy,
        timeout=300)
    assert changed.returncode == 0, changed.stderr
    assert "already recorded" not in changed.stdout
    retrained = read_record(original.path)
    assert retrained.plugins["method"]["source_sha256"] != original.plugins["method"]["source_sha256"]
    assert retrained.metrics != original.metrics  # the change is real: the old record would have been wrong


def class_bodies_hash(entry):
    """The code hash of records written before issue 41: the source of the entry's classes only."""
    digest = hashlib.sha256()
    for cls in type(entry).__mro__[:-1]:
        digest.update(inspect.getsource(cls).encode())
    return digest.hexdigest()[:16]


def test_a_record_with_the_older_hash_form_is_read_but_not_reused(tmp_path):
    record = run_cell(tmp_path, method="vanilla")
    data = json.loads((record.path / RUN_FILE).read_text())
    for kind, entry in (("method", METHODS.get("vanilla")), ("task", TASKS.get("lq1d"))):
        data["plugins"][kind] = {"origin": "built-in", "source_sha256": class_bodies_hash(entry)}
    (record.path / RUN_FILE).write_text(json.dumps(data))

    assert list(load_runs(tmp_path).run_id) == [record.run_id]  # still read and tabulated
    (cell,) = sweep.plan(["vanilla"], ["lq1d"], [0], budget="smoke", steps=3, overrides=TINY, out=tmp_path)
    assert not sweep.finished(cell)
    again = run_cell(tmp_path, method="vanilla")
    assert not again.reused and again.plugins == record.plugins


# --- 10. Ray: a crashed worker is a failed cell; SIGTERM stops the driver as stabench's own -----------

class RayError(Exception):
    pass


class WorkerCrashedError(RayError):
    def __str__(self):
        return ("The worker died unexpectedly while executing this task. "
                "Check python-core-worker-*.log files for more information.")


def fake_ray(monkeypatch, crashing_seed=None, interrupted=False):
    """The few Ray calls the backend makes, run in this process, in place of Ray: the task of `crashing_seed`
    crashes its worker; with `interrupted`, the first wait for a result is stopped by Ctrl-C or SIGTERM.
    `init` installs a SIGTERM handler of its own, as Ray's does. `ray.handlers` collects the handler in
    force while the sweep waits, `ray.log` the cancellations, the final waits and the shutdown."""
    ray = types.ModuleType("ray")
    ray.exceptions = types.ModuleType("ray.exceptions")
    ray.exceptions.RayError, ray.exceptions.WorkerCrashedError = RayError, WorkerCrashedError
    ray.handlers, ray.log, calls = [], [], {}
    ray.is_initialized = lambda: False
    ray.init = lambda **options: signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
    ray.shutdown = lambda: ray.log.append("shutdown")
    ray.cluster_resources = lambda: {"CPU": 2.0}
    ray.cancel = lambda reference, **options: ray.log.append(f"cancel {calls[reference][1][0].seed}")

    def remote(**resources):
        def task(function):
            def submit(job, *arguments):
                reference = object()
                calls[reference] = (function, job, arguments)
                return reference

            return types.SimpleNamespace(remote=submit)

        return task

    def wait(pending, num_returns=1, timeout=None):
        ray.handlers.append(signal.getsignal(signal.SIGTERM))
        if num_returns > 1:
            ray.log.append(f"wait for {num_returns}")
        elif interrupted:
            raise KeyboardInterrupt
        return pending[:num_returns], pending[num_returns:]

    def get(reference):
        function, job, arguments = calls[reference]
        if any(cell.seed == crashing_seed for cell in job):
            raise WorkerCrashedError()
        return function(job, *arguments)

    ray.remote, ray.wait, ray.get = remote, wait, get
    monkeypatch.setitem(sys.modules, "ray", ray)
    monkeypatch.setitem(sys.modules, "ray.exceptions", ray.exceptions)
    return ray


def test_a_crashed_ray_worker_is_a_failed_cell_and_the_sweep_goes_on(tmp_path, monkeypatch):
    ray = fake_ray(monkeypatch, crashing_seed=1)
    previous = signal.signal(signal.SIGTERM, interrupt)  # as the CLI sets it
    try:
        cells = sweep.plan(["vanilla"], ["lq1d"], [0, 1, 2], budget="smoke", steps=3, overrides=TINY, out=tmp_path)
        report = sweep.sweep(cells, backend="ray", device="cpu", spectrum=False, progress=False)
        assert signal.getsignal(signal.SIGTERM) is interrupt
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (report.counts["completed"], report.counts["failed"]) == (2, 1)
    ((cell, error),) = report.failures
    assert cell.seed == 1
    assert error == ("its Ray task failed: WorkerCrashedError: The worker died unexpectedly while executing this "
                     "task. Check python-core-worker-*.log files for more information.")
    assert read_record(cell.directory).status == "failed" and read_record(cell.directory).error == error
    assert ray.handlers and all(handler is interrupt for handler in ray.handlers)
    assert ray.log == ["shutdown"]


def test_an_interrupted_ray_sweep_cancels_its_tasks_and_waits_for_them(tmp_path, monkeypatch):
    # a cancelled task gets a KeyboardInterrupt: its running cell records itself as interrupted, given time
    ray = fake_ray(monkeypatch, interrupted=True)
    cells = sweep.plan(["vanilla"], ["lq1d"], [0, 1], budget="smoke", steps=3, overrides=TINY, out=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        sweep.sweep(cells, backend="ray", device="cpu", spectrum=False, progress=False)
    assert ray.log == ["cancel 0", "cancel 1", "wait for 2", "shutdown"]


RAY_PLUGIN = DYING  # a method that exits its worker, and one that sleeps in every step


def ray_sweep_command(tmp_path, methods, steps):
    plugin = tmp_path / "ray_plugin.py"
    plugin.write_text(RAY_PLUGIN)
    return [sys.executable, "-m", "stabench", "sweep", "--backend", "ray", "--plugin", str(plugin), "--methods",
            methods, "--tasks", "lq1d", "--seeds", "0", "--budget", "smoke", "--steps", str(steps), "--no-spectrum",
            "--quiet", "--out", str(tmp_path / "runs")]


@pytest.mark.slow
def test_a_crashed_worker_on_a_real_ray_instance_is_a_failed_cell(tmp_path):
    pytest.importorskip("ray")
    result = subprocess.run(ray_sweep_command(tmp_path, "dying,vanilla", 5), capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "2 cells: 1 completed / 0 diverged / 1 failed / 0 skipped" in result.stdout
    assert "failed: dying on lq1d, seed 0: its Ray task failed: WorkerCrashedError: " in result.stderr
    assert "Traceback" not in result.stderr
    (file,) = (tmp_path / "runs" / "lq1d" / "dying").glob(f"*/{RUN_FILE}")
    assert read_record(file.parent).status == "failed"


@pytest.mark.slow
def test_sigterm_ends_a_ray_sweep_and_its_cells_record_themselves(tmp_path):
    pytest.importorskip("ray")
    process = subprocess.Popen(ray_sweep_command(tmp_path, "slow", 100000), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 180
    while not list((tmp_path / "runs").glob(".locks/lq1d.slow.*.lock")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the cell's lock file appears once it is training
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "run the same command again to resume" in stderr
    (file,) = (tmp_path / "runs" / "lq1d" / "slow").glob(f"*/{RUN_FILE}")
    assert read_record(file.parent).status == "interrupted"


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
