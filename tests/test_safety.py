"""Nothing lost, nothing injected: record safety, hostile inputs, worker faults (one test per case found)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import stabench
from stabench import runner
from stabench.errors import StabenchError
from stabench.locks import exclusive
from stabench.publish import publish, slugs
from stabench.records import CURVE_FILE, RUN_FILE, SAMPLES_FILE, SPECTRUM_FILE, STATE_FILE, read_record, read_state
from stabench.sweep import finished, plan
from stabench.table import escape_csv, format_table, leaderboard, load_runs, render

TINY = {"batch_size": 16, "latent_dim": 4, "hidden": 8, "eval_samples": 200}


def run_tiny(out, method="vanilla", steps=10, **options):
    return stabench.run(method, "mog", budget="smoke", steps=steps, overrides=TINY, out=out, progress=False, **options)


def stabench_command(*args, env=None, timeout=300):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "stabench", *args], capture_output=True, text=True,
                          env=environment, timeout=timeout)


# --- 2. everything after training is inside the failure handling -----------------------------------

def test_an_out_folder_that_cannot_be_written_is_refused_before_training(tmp_path, invoke):
    (tmp_path / "a-file").write_text("")
    started = time.perf_counter()
    result = invoke("run", "--method", "vanilla", "--task", "mog", "--out", str(tmp_path / "a-file" / "runs"))
    assert result.exit_code == 2 and time.perf_counter() - started < 30
    assert result.output == f"stabench: error: cannot write run records under `{tmp_path / 'a-file' / 'runs'}`: " \
                            "Not a directory\n"


def test_ctrl_c_during_the_spectrum_keeps_the_training(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "game_spectrum", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_tiny(tmp_path)
    (file,) = tmp_path.glob(f"mog/vanilla/*/{RUN_FILE}")
    record = read_record(file.parent)
    assert record.status == "completed" and record.timing["steps"] == 10 and record.metrics
    assert record.spectrum == {"skipped": "interrupted (Ctrl-C or SIGTERM) during the spectrum"}
    assert (file.parent / STATE_FILE).is_file() and (file.parent / CURVE_FILE).is_file()


def test_a_samples_picture_that_fails_to_draw_costs_only_the_picture(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(type(stabench.get_task("mog")), "save_samples", broken)
    record = run_tiny(tmp_path)
    assert record.status == "completed" and record.data["samples_error"] == "RuntimeError: no fonts"
    assert not (record.path / SAMPLES_FILE).exists() and (record.path / STATE_FILE).is_file()


# --- 3. a kill between the two renames of a replacement --------------------------------------------

def test_a_record_retired_mid_swap_is_put_back_and_leftovers_are_cleaned(tmp_path):
    record = run_tiny(tmp_path)
    dead = 2**22 + 12345  # above Linux's default pid_max: no process has it
    retired = record.path.parent / f".{record.path.name}.old-{dead}"
    os.replace(record.path, retired)
    (record.path.parent / f".{record.path.name}.tmp-{dead}").mkdir()  # the new folder that never arrived
    runs = load_runs(tmp_path)
    assert list(runs.run_id) == [record.run_id]
    assert sorted(p.name for p in record.path.parent.iterdir()) == [record.path.name]


# --- 4. one writer per record, one sweep per folder -------------------------------------------------

def test_a_cell_being_trained_by_another_process_is_one_line(tmp_path, invoke):
    record = run_tiny(tmp_path)
    with exclusive(tmp_path / ".locks" / f"mog.vanilla.{record.run_id}.lock", "held by the test"):
        result = stabench_command("run", "--method", "vanilla", "--task", "mog", "--budget", "smoke", "--steps", "10",
                                  "--force", "--out", str(tmp_path), *[f"--set={k}={v}" for k, v in TINY.items()])
    assert result.returncode == 2
    assert result.stderr.strip() == (f"stabench: error: run {record.run_id} (vanilla on mog, seed 0) is being trained "
                                     f"into `{tmp_path}` by another process (pid {os.getpid()})")


def test_a_second_sweep_on_the_same_folder_is_one_line(tmp_path):
    with exclusive(tmp_path / ".sweep.lock", "held by the test"):
        result = stabench_command("sweep", "--methods", "vanilla", "--tasks", "lq1d", "--seeds", "0", "--budget",
                                  "smoke", "--steps", "3", "--quiet", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"stabench: error: `{tmp_path}` is in use by another sweep (pid {os.getpid()})"


# --- 5. a worker that dies without returning --------------------------------------------------------

DYING = textwrap.dedent('''
    import os
    import time

    from stabench import register_method
    from stabench.methods.vanilla import Vanilla


    class Dying(Vanilla):
        def g_direction(self, game, point, batch, params, ctx):
            os._exit(3)


    class Slow(Vanilla):
        def g_direction(self, game, point, batch, params, ctx):
            time.sleep(0.05)
            return super().g_direction(game, point, batch, params, ctx)


    register_method(Dying("dying", "exits its process"))
    register_method(Slow("slow", "sleeps in every step"))
''')


def test_a_worker_that_dies_is_a_failed_cell_and_the_sweep_goes_on(tmp_path):
    plugin = tmp_path / "dying.py"
    plugin.write_text(DYING)
    result = stabench_command("sweep", "--plugin", str(plugin), "--methods", "dying,vanilla", "--tasks", "lq1d",
                              "--seeds", "0", "--budget", "smoke", "--steps", "5", "--no-spectrum", "--quiet",
                              "--out", str(tmp_path / "runs"), timeout=240)
    assert result.returncode == 1
    assert "2 cells: 1 completed / 0 diverged / 1 failed / 0 skipped" in result.stdout
    assert "failed: dying on lq1d, seed 0: its worker process died without a result (exit code 3)" in result.stderr
    (file,) = (tmp_path / "runs" / "lq1d" / "dying").glob(f"*/{RUN_FILE}")
    assert read_record(file.parent).status == "failed"


@pytest.mark.slow
def test_sigterm_ends_a_sweep_and_its_cells_record_themselves(tmp_path):
    plugin = tmp_path / "dying.py"
    plugin.write_text(DYING)
    command = [sys.executable, "-m", "stabench", "sweep", "--plugin", str(plugin), "--methods", "slow", "--tasks",
               "lq1d", "--seeds", "0", "--budget", "smoke", "--steps", "100000", "--no-spectrum", "--quiet",
               "--out", str(tmp_path / "runs")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not list((tmp_path / "runs").glob(".locks/lq1d.slow.*.lock")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the cell's lock file appears once it is training
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=90)
    assert process.returncode == 130, stderr
    assert "run the same command again to resume" in stderr
    (file,) = (tmp_path / "runs" / "lq1d" / "slow").glob(f"*/{RUN_FILE}")
    assert read_record(file.parent).status == "interrupted"


# --- 6. a record's environment is never applied -----------------------------------------------------

def test_spectrum_at_a_run_folder_never_applies_the_records_environment(tmp_path, invoke):
    record = stabench.run("vanilla", "lq1d", budget="smoke", steps=3, out=tmp_path, progress=False, spectrum=False)
    data = json.loads((record.path / RUN_FILE).read_text())
    data["environment"] = {"data_dir": "/somewhere/the/record/chose"}
    (record.path / RUN_FILE).write_text(json.dumps(data))
    result = invoke("spectrum", "--at", str(record.path), "--json")
    assert result.exit_code == 0, result.output
    assert "data_dir" not in json.loads(result.output)["config"]


# --- 7. published text is escaped for its reader ----------------------------------------------------

HOSTILE = "<img src=x onerror=alert(1)>|[x](javascript:y)\\input{/etc/passwd}\\write18{rm}$x$"


def hostile_table(tmp_path):
    """A run and its copy whose settings differ in a hostile text, so their row labels show it (a hostile
    method name is refused where records are read, see test_reliability_records)."""
    folder = tmp_path / "runs"
    record = run_tiny(folder)
    data = json.loads((record.path / RUN_FILE).read_text())
    copy = record.path.with_name("0123456789")
    shutil.copytree(record.path, copy)
    for path, note in ((record.path, HOSTILE), (copy, "=HYPERLINK(\"http://x\")")):
        changed = data | {"run_id": path.name, "config": {**data["config"], "note": note}}
        (path / RUN_FILE).write_text(json.dumps(changed))
    return folder


def test_markdown_latex_html_and_csv_escape_what_records_hold(tmp_path):
    runs = load_runs(hostile_table(tmp_path))
    markdown = render(runs, fmt="md")
    assert "<img" not in markdown and "&lt;img src=x onerror=alert(1)&gt;\\|\\[x\\](javascript:y)" in markdown
    latex = render(runs, fmt="latex")
    assert "\\input{" not in latex and "\\write18{" not in latex
    assert "\\textbackslash{}input\\{/etc/passwd\\}" in latex
    html = render(runs, fmt="html")
    assert "<img" not in html and "&lt;img" in html
    long_csv = pd.read_csv(pd.io.common.StringIO(render(runs, fmt="csv")))
    assert all(not str(cell).startswith(("=", "+", "@")) for cell in long_csv.astype(str).to_numpy().ravel())
    assert escape_csv("=1+1") == "'=1+1" and escape_csv(-0.5) == -0.5


def test_published_markdown_and_figures_survive_hostile_names(tmp_path):
    written = publish(hostile_table(tmp_path), tmp_path / "out")
    text = (tmp_path / "out" / "LEADERBOARD.md").read_text()
    assert "<img" not in text and "&lt;img" in text
    assert any(path.suffix == ".png" for path in written)


# --- 8. one bad file never stops the rest -----------------------------------------------------------

@pytest.mark.parametrize("damage", [
    lambda d: d | {"metrics": {**d["metrics"], "kl": "lots"}},
    lambda d: d | {"seed": "zero"},
    lambda d: d | {"config": [1, 2]},
    lambda d: None,
    lambda d: [d],
])
def test_a_record_of_the_wrong_shape_is_skipped_with_one_warning(tmp_path, damage):
    good, bad = run_tiny(tmp_path, steps=5), run_tiny(tmp_path, seed=1, steps=5)
    (bad.path / RUN_FILE).write_text(json.dumps(damage(json.loads((bad.path / RUN_FILE).read_text()))))
    with pytest.warns(UserWarning, match=f"skipping run record: {bad.path / RUN_FILE}") as caught:
        runs = load_runs(tmp_path)
    assert list(runs.run_id) == [good.run_id] and len(caught) == 1
    with pytest.warns(UserWarning, match="skipping run record"):
        assert (publish(tmp_path, tmp_path / "out")[0]).is_file()  # and the rest is published


def test_empty_or_oversized_artifacts_are_skipped_and_the_rest_published(tmp_path):
    first, second, third = (run_tiny(tmp_path, seed=seed, steps=5) for seed in (0, 1, 2))
    (first.path / CURVE_FILE).write_text("")
    (first.path / SPECTRUM_FILE).write_text("")
    (first.path / SAMPLES_FILE).write_bytes(b"")
    Image.new("1", (12000, 12000)).save(second.path / SAMPLES_FILE)  # about 20 KB on disk, 144 megapixels
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = publish(tmp_path, tmp_path / "out")
    messages = [str(w.message) for w in caught]
    assert any(f"skipping {first.path / CURVE_FILE}" in m for m in messages)
    assert any(f"skipping {second.path / SAMPLES_FILE}: 12000x12000 pixels is too large" in m for m in messages)
    assert any(f"skipping {first.path / SAMPLES_FILE}: not a readable picture" in m for m in messages)
    assert any(path.name.startswith("samples_") for path in written)  # third's picture


@pytest.mark.parametrize("content", ["null", "[]", "{\"seed\": \"zero\"}"])
def test_sweep_resume_and_spectrum_at_read_a_broken_record_as_such(tmp_path, invoke, content):
    (cell,) = plan(["vanilla"], ["lq1d"], [0], budget="smoke", steps=3, out=tmp_path)
    cell.directory.mkdir(parents=True)
    (cell.directory / RUN_FILE).write_text(content)
    assert not finished(cell)
    result = invoke("spectrum", "--at", str(cell.directory))
    assert result.exit_code == 2 and result.output.startswith(f"stabench: error: {cell.directory / RUN_FILE}")
    assert len(result.output.splitlines()) == 1


# --- 9. seeds ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", ["-1", "4294967296", "18446744073709551615"])
def test_seeds_outside_the_documented_range_are_refused_in_run_and_sweep(invoke, seed):
    expected = f"stabench: error: a seed is an integer from 0 to 4294967295 (2^32 - 1), got {seed}\n"
    assert invoke("run", "--method", "vanilla", "--task", "lq1d", "--seed", seed).output == expected
    assert invoke("sweep", "--methods", "vanilla", "--tasks", "lq1d", "--seeds", seed).output == expected


def test_the_streams_of_different_seeds_never_share_a_torch_seed():
    """torch's CPU generator keeps 32 bits of a seed, and additive offsets (init = seed, data = seed + 1) made
    seed 1's networks start from seed 0's data stream: every derived stream is a distinct 32-bit seed."""
    streams = [value for seed in [*range(100), 2**32 - 1] for value in vars(stabench.Seeds.derive(seed)).values()]
    assert len(set(streams)) == len(streams) == 505
    assert all(0 <= value < 2**32 for value in streams)


# --- 10. thread counts ------------------------------------------------------------------------------

def test_a_sweep_cell_equals_the_standalone_run_on_mog(tmp_path):
    standalone = run_tiny(tmp_path / "alone", steps=30)
    swept = stabench_command("sweep", "--methods", "vanilla", "--tasks", "mog", "--seeds", "0", "--budget", "smoke",
                             "--steps", "30", "--quiet", "--out", str(tmp_path / "swept"),
                             *[f"--set={k}={v}" for k, v in TINY.items()], env={"OMP_NUM_THREADS": ""})
    assert swept.returncode == 0, swept.stderr
    cell = read_record(tmp_path / "swept" / "mog" / "vanilla" / standalone.run_id)
    assert standalone.threads == cell.threads == 1
    assert cell.metrics == read_record(standalone.path).metrics
    alone, there = read_state(standalone.path), read_state(cell.path)
    assert all(torch.equal(alone["generator"][k], there["generator"][k]) for k in alone["generator"])


def test_threads_follow_the_option_then_omp_num_threads(tmp_path, monkeypatch):
    assert run_tiny(tmp_path / "a", threads=2).threads == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert run_tiny(tmp_path / "b").threads == 2
    assert torch.get_num_threads() != 0  # restored after the run


# --- 11. hyperparameters declare their range --------------------------------------------------------

@pytest.mark.parametrize("method, setting, message", [
    ("vanilla", "batch_size=0", "`batch_size` must be >= 1, got 0"),
    ("wgan", "n_critic=0", "`n_critic` must be >= 1, got 0"),
    ("vanilla", "hidden=0", "`hidden` must be >= 1, got 0"),
    ("vanilla", "batch_size=nan", "`batch_size` must be a finite number, got 'nan'"),
    ("vanilla", "batch_size=inf", "`batch_size` must be a finite number, got 'inf'"),
    ("vanilla", "lr=-1", "`lr` must be > 0, got -1"),
    ("vanilla", "beta1=2", "`beta1` must be >= 0 and < 1, got 2"),
    ("vanilla", "radius=nan", "`radius` must be a finite number, got 'nan'"),
])
def test_out_of_range_hyperparameters_are_refused_before_anything_runs(invoke, tmp_path, method, setting, message):
    result = invoke("run", "--method", method, "--task", "mog", "--set", setting, "--out", str(tmp_path))
    assert result.exit_code == 2 and result.output == f"stabench: error: {message}\n"
    assert not any(tmp_path.iterdir())


# --- 12. messages -----------------------------------------------------------------------------------

def test_a_damaged_state_file_is_unreadable_and_never_a_hint_to_unpickle(tmp_path, invoke):
    record = run_tiny(tmp_path)
    (record.path / STATE_FILE).write_bytes(b"not a checkpoint")
    result = invoke("spectrum", "--at", str(record.path))
    assert result.exit_code == 2
    assert result.output == (f"stabench: error: `{record.path / STATE_FILE}` is unreadable (damaged or not a "
                             "stabench state file)\n")
    assert "weights_only" not in result.output


def test_interrupted_runs_are_not_failures_of_the_method(tmp_path):
    run_tiny(tmp_path, steps=5)
    second = run_tiny(tmp_path, seed=1, steps=5)
    data = json.loads((second.path / RUN_FILE).read_text()) | {"status": "interrupted"}
    (second.path / RUN_FILE).write_text(json.dumps(data))
    (table,) = leaderboard(load_runs(tmp_path), "mog").values()
    assert table.seeds.tolist() == [1] and table.diverged_or_failed.tolist() == [0.0]
    assert "| vanilla | 1 | 0% |" in format_table(table)


@pytest.mark.parametrize("args, message", [
    (["--methods", ""], "no method named in ''; name some, or `all` (`stabench list methods`)"),
    (["--methods", "vanilla", "--tasks", " , "], "no task named in ' , '; name some, or `all` (`stabench list tasks`)"),
    (["--methods", "vanilla", "--seeds", "0-10000000000"],
     "a seed is an integer from 0 to 4294967295 (2^32 - 1), got 10000000000"),
    (["--methods", "vanilla", "--seeds", "0-20000"], "`--seeds 0-20000` names more than 10000 seeds"),
])
def test_sweep_mistakes_are_one_line(invoke, args, message):
    result = invoke("sweep", *args)
    assert result.exit_code == 2 and result.output == f"stabench: error: {message}\n"


@pytest.mark.parametrize("name, reason", [("x.txt", "Format 'txt' is not supported"), ("a-file/x.png", "")])
def test_phase_to_a_path_that_cannot_hold_a_picture_is_one_line(tmp_path, invoke, name, reason):
    (tmp_path / "a-file").write_text("")
    result = invoke("phase", "--method", "vanilla", "--steps", "1", "--out", str(tmp_path / name))
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1
    assert result.output.startswith(f"stabench: error: cannot write the phase portrait to `{tmp_path / name}`: {reason}")


def test_figures_of_groups_whose_names_differ_only_in_punctuation_do_not_collide():
    stems = slugs(["foo-bar · budget quick", "foo_bar · budget quick", "mog · version 1"])
    assert len(set(stems.values())) == 3 and stems["mog · version 1"] == "mog-version-1"
    assert np.all([stem.startswith("foo-bar-budget-quick-") for stem in list(stems.values())[:2]])


def test_a_full_disk_is_one_line(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "write_run", full)
    with pytest.raises(StabenchError, match="cannot write the record at .*: No space left on device"):
        run_tiny(tmp_path)
