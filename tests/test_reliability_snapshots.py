"""Issue 41, snapshots and runs: a snapshot outlives a record that cannot be written, is tied to its cell
and checked, never outlives its use; what a run records is plain numbers and one-line errors; settings a
run cannot honour are refused up front."""
import errno
import json
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import stabench
from stabench import resume, runner
from stabench.cell import resolve
from stabench.errors import StabenchError
from stabench.methods import METHODS
from stabench.records import RUN_FILE, read_record
from stabench.tasks.lq import LinearQuadraticGaussian

TINY = {"batch_size": 16}  # lq smoke: 300 steps, an evaluation every 50


def run_lq(out, seed=0, method="vanilla", **options):
    options = {"overrides": TINY, **options}
    return stabench.run(method, "lq", seed=seed, budget="smoke", out=out, progress=False, spectrum=False, **options)


def snapshot_of(out, seed=0, method="vanilla", task="lq"):
    cell = resolve(method, task, seed=seed, budget="smoke", overrides=TINY)
    return resume.snapshot_path(Path(out), cell.task.name, cell.method.name, cell.run_id)


@pytest.fixture
def fast_snapshots(monkeypatch):
    monkeypatch.setattr(resume, "SNAPSHOT_SECONDS", 0.0)  # a snapshot at every evaluation


def interrupted(out, interrupt_at, at=120, **options):
    """A run of lq stopped by Ctrl-C in iteration `at`: its snapshot (at step 100) is left."""
    with interrupt_at(at), pytest.raises(KeyboardInterrupt):
        run_lq(out, **options)
    path = snapshot_of(out, **{k: v for k, v in options.items() if k in ("seed", "method")})
    assert path.is_file()
    return path


# item 1
def test_a_snapshot_outlives_a_record_that_cannot_be_written(tmp_path, monkeypatch, fast_snapshots):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(runner, "write_run", disk_full)
        with pytest.raises(StabenchError, match="No space left on device"):
            run_lq(tmp_path)
    assert snapshot_of(tmp_path).is_file()
    record = run_lq(tmp_path)
    assert record.status == "completed" and record.timing["steps"] == 300
    assert "resumed at step 250 from the snapshot of an interrupted attempt" in record.notes
    assert not snapshot_of(tmp_path).exists()


# item 2
def test_a_snapshot_that_cannot_be_written_costs_a_warning_not_the_run(tmp_path, monkeypatch, fast_snapshots):
    save = torch.save

    def file_too_large(content, path, **options):  # what torch.save raises for EFBIG or ENOSPC
        if ".partial" in Path(path).parts:
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")
        save(content, path, **options)

    monkeypatch.setattr(torch, "save", file_too_large)
    with pytest.warns(UserWarning, match="cannot write the snapshot"):
        record = run_lq(tmp_path)
    assert record.status == "completed" and record.timing["steps"] == 300
    assert not list((tmp_path / ".partial").iterdir())


# item 7
def test_a_snapshot_of_another_seed_is_refused(tmp_path, monkeypatch, interrupt_at, fast_snapshots):
    whole = run_lq(tmp_path / "whole")
    taken = interrupted(tmp_path / "runs", interrupt_at, seed=1)
    copied = snapshot_of(tmp_path / "runs", seed=0)
    copied.write_bytes(taken.read_bytes())
    with pytest.warns(UserWarning, match="belongs to another run"):
        record = run_lq(tmp_path / "runs")
    assert record.metrics == whole.metrics
    assert not any("resumed" in note for note in record.notes)
    assert any("belongs to another run" in note and "seed 1" in note for note in record.notes)
    assert not copied.exists()


def test_a_snapshot_written_before_snapshots_said_their_cell_is_still_resumed(tmp_path, interrupt_at,
                                                                                fast_snapshots):
    path = interrupted(tmp_path, interrupt_at)
    saved = torch.load(path, weights_only=True)
    del saved["cell"]  # as the snapshots of runs stopped before this version: the path names the cell
    torch.save(saved, path)
    record = run_lq(tmp_path)
    assert "resumed at step 100 from the snapshot of an interrupted attempt" in record.notes


def _missing_curve(saved):
    del saved["curve"]


def _generator_of_another_shape(saved):
    saved["state"]["generator"]["A"] = torch.zeros(3, 3)


def _step_past_the_plan(saved):
    saved["step"] = 1_000_000


@pytest.mark.parametrize("spoil, reason", [
    (_missing_curve, "`curve` is missing"),
    (_generator_of_another_shape, "size mismatch"),
    (_step_past_the_plan, "step 1000000 is not inside the plan of 300 steps"),
])
def test_a_spoilt_snapshot_is_refused_once_and_the_run_starts_over(tmp_path, interrupt_at, fast_snapshots, spoil,
                                                                   reason):
    whole = run_lq(tmp_path / "whole")
    path = interrupted(tmp_path / "runs", interrupt_at)
    saved = torch.load(path, weights_only=True)
    spoil(saved)
    torch.save(saved, path)
    with pytest.warns(UserWarning, match="cannot be resumed"):
        record = run_lq(tmp_path / "runs")
    assert record.status == "completed" and record.timing["steps"] == 300
    assert record.metrics == whole.metrics
    assert any("cannot be resumed" in note and reason in note for note in record.notes)
    assert not path.exists()
    assert run_lq(tmp_path / "runs").reused  # and the next run finds the record, not the snapshot again


# item 9
class NumpyMetricsLq(LinearQuadraticGaussian):
    """lq whose metrics come back as NumPy scalars and a 0-d tensor, as a plugin may return them."""

    name = "lq-numpy-metrics"

    def evaluate(self, game, params, generator):
        metrics = super().evaluate(game, params, generator)
        return {"kl": np.float32(metrics["kl"]), "wasserstein2": np.float64(metrics["wasserstein2"]),
                "cov_error": torch.tensor(metrics["cov_error"]), "mean_error": metrics["mean_error"],
                "disc_norm": np.int64(round(metrics["disc_norm"] * 1000))}


@pytest.fixture
def numpy_metrics_task():
    task = stabench.register_task(NumpyMetricsLq())
    yield task
    stabench.unregister_task(task.name)


def test_numpy_and_tensor_metrics_are_recorded_as_plain_numbers_and_snapshots_stay_loadable(
        tmp_path, interrupt_at, fast_snapshots, numpy_metrics_task):
    options = dict(budget="smoke", overrides=TINY, out=tmp_path, progress=False, spectrum=False)
    with interrupt_at(120), pytest.raises(KeyboardInterrupt):
        stabench.run("vanilla", numpy_metrics_task.name, **options)
    record = stabench.run("vanilla", numpy_metrics_task.name, **options)
    assert record.status == "completed"
    assert "resumed at step 100 from the snapshot of an interrupted attempt" in record.notes
    read = read_record(Path(record.path))
    assert {type(read.metrics[k]) for k in ("kl", "wasserstein2", "cov_error")} == {float}
    assert type(read.metrics["disc_norm"]) is int


def test_a_metric_that_is_no_number_fails_the_run_with_one_line(tmp_path, numpy_metrics_task, monkeypatch):
    monkeypatch.setattr(NumpyMetricsLq, "evaluate", lambda self, game, params, generator: {"kl": "low"})
    record = stabench.run("vanilla", numpy_metrics_task.name, budget="smoke", steps=10, overrides=TINY,
                          out=tmp_path, progress=False, spectrum=False)
    assert record.status == "failed"
    assert record.error == "TypeError: metric `kl` of task `lq-numpy-metrics` is 'low', not a number"


# item 14
def test_a_default_dtype_other_than_float32_is_refused(tmp_path):
    torch.set_default_dtype(torch.float64)
    try:
        with pytest.raises(StabenchError, match="torch's default dtype is torch.float64"):
            run_lq(tmp_path, steps=10)
    finally:
        torch.set_default_dtype(torch.float32)
    assert not (tmp_path / "lq").exists()


# item 15
def test_a_huge_checkpoint_count_keeps_every_evaluation_at_once():
    cell = resolve("vanilla", "lq", budget="smoke")

    def too_slow(signum, frame):
        raise TimeoutError("planned_checkpoints did not return within 5 s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(5)
    try:
        planned = runner.planned_checkpoints(cell, 1_000_000_000)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert planned == {50, 100, 150, 200, 250}


def test_checkpoints_are_planned_as_before_for_every_count():
    for steps, every in ((300, 50), (1000, 30), (7, 7), (95, 10)):
        cell = resolve("vanilla", "lq", budget="smoke", steps=steps)
        cell.eval_every = every
        for count in range(0, 3 * steps // every + 3):
            old = {step for i in range(1, count + 1)
                   if 0 < (step := round(steps * i / (count + 1) / every) * every) < steps}
            assert runner.planned_checkpoints(cell, count) == old, (steps, every, count)


def test_a_huge_batch_size_is_refused_in_one_line(tmp_path):
    with pytest.raises(StabenchError, match=r"^`batch_size` must be between -9223372036854775808 and "
                                            r"9223372036854775807, got '1e30'$"):
        run_lq(tmp_path, overrides={"batch_size": "1e30"})


def test_a_failed_run_records_its_error_in_one_line(tmp_path, monkeypatch):
    def crash(self):
        raise RuntimeError("unpacking failed\nException raised from f at x.h:79\nframe #0: c10::Error::Error")

    monkeypatch.setattr(runner.Trainer, "step", crash)
    record = run_lq(tmp_path, steps=10)
    assert record.status == "failed"
    assert record.error == "RuntimeError: unpacking failed"
    assert "frame #0" in record.traceback


@pytest.mark.parametrize("mean", ["nan,nan", "inf,0", "0,-inf"])
def test_a_non_finite_mean_is_refused_up_front(tmp_path, mean):
    with pytest.raises(StabenchError, match="`mean` expects finite numbers"):
        run_lq(tmp_path, overrides={**TINY, "mean": mean})
    assert not (tmp_path / "lq").exists()


def test_a_dense_jacobian_too_large_for_memory_is_refused_in_one_line(invoke, monkeypatch):
    from stabench import spectra

    # lq of dim 40 has 3,280 parameters (past the dense limit): --k 5000 asks for all of them, from a dense J
    monkeypatch.setattr(spectra, "DENSE_BYTES", 10**9)
    result = invoke("spectrum", "--method", "vanilla", "--task", "lq", "--at", "init", "--set", "dim=40",
                    "--k", "5000")
    assert result.exit_code == 2
    assert result.output.strip() == ("stabench: error: a dense Jacobian of 3,280 parameters on an evaluation batch of "
                                     "1,310,720 numbers would take about 10.8 GB, more than the 1.0 GB allowed; ask "
                                     "for fewer eigenvalues (`--k` below 3279) to use Arnoldi")


def test_a_records_evaluation_batch_too_large_for_a_dense_jacobian_is_refused_in_one_line(invoke, tmp_path,
                                                                                          monkeypatch):
    from stabench import spectra

    # 12 parameters, but 12 rows a pass over 2 x 10**6 samples of 2 numbers (10**7 samples: about 40 GB)
    record = run_lq(tmp_path, steps=10, overrides={**TINY, "spectrum_batch": 10**6})
    monkeypatch.setattr(spectra, "DENSE_BYTES", 2**32)
    result = invoke("spectrum", "--at", record.path)
    assert result.exit_code == 2
    assert result.output.strip() == ("stabench: error: a dense Jacobian of 12 parameters on an evaluation batch of "
                                     "4,000,000 numbers would take about 6.1 GB, more than the 4.3 GB allowed; "
                                     "the evaluation batch is this large by the run's task settings")


def test_leftover_temporary_snapshots_are_removed(tmp_path):
    path = snapshot_of(tmp_path)
    path.parent.mkdir(parents=True)
    leftover = path.with_name(f".{path.name}.tmp-999999")  # a process killed while it wrote the snapshot
    leftover.write_bytes(b"half a snapshot")
    run_lq(tmp_path)
    assert not leftover.exists()


def test_the_snapshot_of_an_older_method_version_is_removed(tmp_path, monkeypatch, interrupt_at, fast_snapshots):
    old = interrupted(tmp_path, interrupt_at)
    monkeypatch.setattr(type(METHODS.get("vanilla")), "version", 2)
    record = run_lq(tmp_path, steps=10)
    assert record.method_version == 2
    assert not old.exists()


def test_a_snapshot_of_another_cell_is_not_removed_by_its_neighbours(tmp_path, interrupt_at, fast_snapshots):
    other_seed = interrupted(tmp_path, interrupt_at, seed=1)
    run_lq(tmp_path, steps=10)
    assert other_seed.is_file()


def test_a_snapshot_set_aside_under_other_settings_is_said(tmp_path, interrupt_at, fast_snapshots):
    interrupted(tmp_path, interrupt_at, threads=1)
    with pytest.warns(UserWarning, match="taken under other settings"):
        record = run_lq(tmp_path, threads=2)
    (note,) = [note for note in record.notes if "other settings" in note]
    assert note == "the snapshot at step 100 was taken under other settings (threads 1, now 2); trained from step 0"


def test_an_interrupted_force_run_exits_130_keeps_the_record_and_leaves_nothing_behind(
        invoke, tmp_path, interrupt_at, fast_snapshots):
    command = ["run", "--method", "vanilla", "--task", "lq", "--budget", "smoke", "--no-spectrum", "--quiet",
               "--set", "batch_size=16", "--out", str(tmp_path)]
    assert invoke(*command).exit_code == 0
    with interrupt_at(120):
        result = invoke(*command, "--force")
    assert result.exit_code == 130
    (folder,) = tmp_path.glob("lq/vanilla/*")
    assert result.output.splitlines()[-1] == (f"stabench: interrupted; the record is at {folder} (the completed "
                                              "one, kept; this attempt is not recorded); the same command resumes "
                                              "from step 100")
    assert json.loads((folder / RUN_FILE).read_text())["status"] == "completed"
    assert snapshot_of(tmp_path).is_file()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        result = invoke(*command)
    assert result.exit_code == 0 and "already recorded" in result.output
    assert not snapshot_of(tmp_path).exists()  # the completed record is what this command uses
    assert any("snapshot" in str(warning.message) and "deleted" in str(warning.message) for warning in said)


def test_an_empty_out_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StabenchError, match="`--out` is empty"):
        run_lq("", steps=10)
    assert list(tmp_path.iterdir()) == []


PRINTING_PLUGIN = '''
import stabench
from stabench.methods.vanilla import Vanilla

print("plugin loaded")


class Chatty(Vanilla):
    def diagnostics(self, game, point, batch, params, ctx):
        print("evaluating")
        return {}


stabench.register_method(Chatty("chatty", "vanilla that prints"))
'''


def test_run_json_prints_only_the_json_on_stdout(invoke, tmp_path):
    plugin = tmp_path / "chatty_plugin.py"
    plugin.write_text(PRINTING_PLUGIN)
    try:
        result = invoke("run", "--method", "chatty", "--task", "lq", "--budget", "smoke", "--steps", "10",
                        "--no-spectrum", "--set", "batch_size=16", "--plugin", str(plugin), "--json")
    finally:
        stabench.unregister_method("chatty")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["status"] == "completed"
    assert "plugin loaded" in result.stderr and "evaluating" in result.stderr
