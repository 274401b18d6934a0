"""Sweeps: planning, resuming after a kill, and failed cells that do not stop the others."""
import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stabench import StabenchError
from stabench.methods import METHODS
from stabench.sweep import CellOptions, finished, parse_names, parse_seeds, plan, run_cell
from stabench.tasks import TASKS
from stabench.table import leaderboard, load_runs
from stabench.records import RUN_FILE

# A task that kills the sweep (SIGKILL to its parent, the sweep process) when asked to build a given
# seed, and a method whose generator step always raises.
PLUGIN = textwrap.dedent('''
    import os
    import signal

    from stabench import Seeds, register_method, register_task
    from stabench.methods.vanilla import Vanilla
    from stabench.tasks.lq import LinearQuadratic1d


    class KillingLQ1D(LinearQuadratic1d):
        name = "lq1d-kill"

        def build(self, params, seeds, device):
            kill_at = os.environ.get("KILL_SWEEP_AT_SEED")
            if kill_at is not None and seeds == Seeds.derive(int(kill_at)):
                os.kill(os.getppid(), signal.SIGKILL)
                os._exit(1)
            return super().build(params, seeds, device)


    class Broken(Vanilla):
        def g_direction(self, game, point, batch, hp, ctx):
            raise RuntimeError("this method always fails")


    register_task(KillingLQ1D())
    register_method(Broken("broken", "always raises in its generator step"))
''')


def sweep_command(tmp_path, *arguments, kill_at=None):
    plugin = tmp_path / "sweep_plugin.py"
    plugin.write_text(PLUGIN)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment.pop("KILL_SWEEP_AT_SEED", None)
    if kill_at is not None:
        environment["KILL_SWEEP_AT_SEED"] = str(kill_at)
    return subprocess.run([sys.executable, "-m", "stabench", "sweep", "--plugin", str(plugin), "--budget", "smoke",
                           "--steps", "20", "--no-spectrum", "--quiet", "--out", str(tmp_path / "runs"), *arguments],
                          capture_output=True, text=True, env=environment, timeout=300)


def records(tmp_path):
    found = {}
    for path in (tmp_path / "runs").glob("*/*/*/run.json"):
        record = json.loads(path.read_text())
        found[(record["method"], record["seed"])] = (record["status"], path.stat().st_mtime_ns)
    return found


def test_seeds_parse_ranges_and_lists():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,2,7") == [0, 2, 7]
    assert parse_seeds("3") == [3]
    with pytest.raises(StabenchError, match="should look like"):
        parse_seeds("zero")


def test_names_expand_all_and_suggest_a_fix():
    assert parse_names("all", METHODS) == METHODS.names()
    assert parse_names("gradreg, vanilla", METHODS) == ["gradreg", "vanilla"]
    with pytest.raises(StabenchError, match="Did you mean `gradreg`"):
        parse_names("gradrg", METHODS)


def test_an_override_applies_only_to_the_cells_that_declare_it(tmp_path):
    plain = plan(["vanilla", "gradreg"], ["lq1d"], [0], budget="smoke", out=tmp_path)
    tuned = plan(["vanilla", "gradreg"], ["lq1d"], [0], budget="smoke", overrides={"eta": "0.25"}, out=tmp_path)
    assert [cell.overrides for cell in tuned] == [{}, {"eta": "0.25"}]
    assert plain[0].directory == tuned[0].directory  # vanilla is the same run with or without it
    assert plain[1].directory != tuned[1].directory
    with pytest.raises(StabenchError, match="Did you mean `eta`"):
        plan(["vanilla", "gradreg"], ["lq1d"], [0], budget="smoke", overrides={"etaa": "1"}, out=tmp_path)


@pytest.mark.slow
def test_a_killed_sweep_reruns_only_the_missing_cells(tmp_path):
    killed = sweep_command(tmp_path, "--methods", "vanilla", "--tasks", "lq1d-kill", "--seeds", "0-2",
                           "--workers", "1", kill_at=1)
    assert killed.returncode == -9, killed.stderr
    before = records(tmp_path)
    assert set(before) == {("vanilla", 0)}

    resumed = sweep_command(tmp_path, "--methods", "vanilla", "--tasks", "lq1d-kill", "--seeds", "0-2",
                            "--workers", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "3 cells: 2 completed / 0 diverged / 0 failed / 1 skipped" in resumed.stdout
    after = records(tmp_path)
    assert set(after) == {("vanilla", 0), ("vanilla", 1), ("vanilla", 2)}
    assert after[("vanilla", 0)] == before[("vanilla", 0)]  # not run again: the same file


def test_a_failing_cell_is_recorded_and_the_others_finish(tmp_path):
    result = sweep_command(tmp_path, "--methods", "broken,vanilla", "--tasks", "lq1d", "--seeds", "0",
                           "--workers", "2")
    assert result.returncode == 1
    assert "2 cells: 1 completed / 0 diverged / 1 failed / 0 skipped" in result.stdout
    assert "failed: broken on lq1d, seed 0: RuntimeError: this method always fails" in result.stderr
    statuses = {key: status for key, (status, _) in records(tmp_path).items()}
    assert statuses == {("broken", 0): "failed", ("vanilla", 0): "completed"}

    (table,) = leaderboard(load_runs(tmp_path / "runs"), "lq1d").values()
    assert table.set_index("method").diverged_or_failed.to_dict() == {"broken": 1.0, "vanilla": 0.0}

    rerun = sweep_command(tmp_path, "--methods", "broken,vanilla", "--tasks", "lq1d", "--seeds", "0")
    assert "2 cells: 0 completed / 0 diverged / 1 failed / 1 skipped" in rerun.stdout  # failed cells are retried


def test_a_method_that_cannot_apply_to_a_task_is_recorded_failed_with_its_reason(tmp_path):
    # spectral normalization on lq1d, whose D (a quadratic form) has no layer to normalise: the leaderboard must show the row
    # (all seeds failed, and why), not drop the method as if it had never been tried
    result = sweep_command(tmp_path, "--methods", "vanilla-sn,vanilla", "--tasks", "lq1d", "--seeds", "0-1")
    assert result.returncode == 1
    assert "4 cells: 2 completed / 0 diverged / 2 failed / 0 skipped" in result.stdout
    statuses = {key: status for key, (status, _) in records(tmp_path).items()}
    assert statuses == {("vanilla-sn", 0): "failed", ("vanilla-sn", 1): "failed",
                        ("vanilla", 0): "completed", ("vanilla", 1): "completed"}
    record = json.loads(next((tmp_path / "runs").glob(f"lq1d/vanilla-sn/*/{RUN_FILE}")).read_text())
    assert record["error"] == ("spectral normalization needs a linear or convolutional layer in D; this task's D "
                               "(Square) has none")
    (table,) = leaderboard(load_runs(tmp_path / "runs"), "lq1d").values()
    assert table.set_index("method").diverged_or_failed.to_dict() == {"vanilla": 0.0, "vanilla-sn": 1.0}


@pytest.mark.slow
def test_the_ray_backend_runs_cells_on_a_real_local_instance_and_resumes(tmp_path):
    pytest.importorskip("ray")
    arguments = ("--methods", "vanilla,broken", "--tasks", "lq1d", "--seeds", "0,1", "--backend", "ray")
    first = sweep_command(tmp_path, *arguments)
    assert "4 cells: 2 completed / 0 diverged / 2 failed / 0 skipped" in first.stdout, first.stderr
    statuses = {key: status for key, (status, _) in records(tmp_path).items()}
    assert statuses == {("broken", 0): "failed", ("broken", 1): "failed",
                        ("vanilla", 0): "completed", ("vanilla", 1): "completed"}
    again = sweep_command(tmp_path, *arguments)
    assert "4 cells: 0 completed / 0 diverged / 2 failed / 2 skipped" in again.stdout, again.stderr


def test_a_cell_whose_method_code_changed_is_not_skipped(tmp_path):
    (cell,) = plan(["vanilla"], ["lq1d"], [0], budget="smoke", steps=3, out=tmp_path)
    run_cell(cell, CellOptions(spectrum=False))
    assert finished(cell)
    record = json.loads((cell.directory / RUN_FILE).read_text())
    record["plugins"]["method"]["source_sha256"] = "an older version"
    (cell.directory / RUN_FILE).write_text(json.dumps(record))
    assert not finished(cell)


def leaderboard_stages():
    """The `sweep` lines of scripts/leaderboard.sh as {option: value}, continuation lines joined."""
    script = (Path(__file__).parents[1] / "scripts" / "leaderboard.sh").read_text().replace("\\\n", " ")
    stages = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["sweep"]:
            stages.append({words[i]: words[i + 1] for i in range(1, len(words) - 1) if words[i].startswith("--")
                           and not words[i + 1].startswith("--")})
    return stages


def test_the_leaderboard_script_plans_real_cells_with_the_seeds_the_leaderboard_promises():
    seeds_by_task = {}
    for stage in leaderboard_stages():
        steps = int(stage["--steps"]) if "--steps" in stage else None
        budget = stage.get("--budget", "quick")
        cells = plan(parse_names(stage["--methods"], METHODS), parse_names(stage["--tasks"], TASKS),
                     parse_seeds(stage["--seeds"]), budget=budget, steps=steps, recipe=stage.get("--recipe"))
        for cell in cells:
            seeds_by_task.setdefault((cell.task, cell.method, cell.recipe, budget), set()).add(cell.seed)
    every = set(METHODS.names())
    for task in ("dirac", "lq", "mog", "grid25"):
        assert {method for (t, method, recipe, _) in seeds_by_task if t == task and recipe is None} == every
    least = {task: min(len(seeds) for (t, _, _, budget), seeds in seeds_by_task.items()
                       if t == task and budget == "quick")
             for task in ("dirac", "lq", "mog", "grid25", "stacked-mnist")}
    assert least == {"dirac": 10, "lq": 10, "mog": 10, "grid25": 5, "stacked-mnist": 5}
    stacked = {method for (task, method, _, budget) in seeds_by_task if task == "stacked-mnist" and budget == "quick"}
    assert {"vanilla", "unrolled1", "unrolled10", "gradreg", "r1", "wgan-gp"} <= stacked
    # Metz et al.'s comparison at their budget: 3 seeds for each of the four methods of their table
    paper = {method: seeds for (task, method, recipe, budget), seeds in seeds_by_task.items()
             if task == "stacked-mnist" and budget == "paper" and recipe == "metz-quarter"}
    assert paper == {method: {0, 1, 2} for method in ("vanilla", "gradreg", "unrolled1", "unrolled10")}
