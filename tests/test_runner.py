import csv
import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import stabench
import stabench.methods.vanilla
from stabench.errors import StabenchError
from stabench.records import CURVE_FILE, RUN_FILE, SAMPLES_FILE, SPECTRUM_FILE, STATE_FILE, read_state, to_json
from stabench import runner

TINY = {"batch_size": 32, "latent_dim": 8, "hidden": 16}


def run_tiny(tmp_path, method="gradreg", steps=40, force=False, **overrides):
    return stabench.run(method, "mog", seed=0, budget="smoke", steps=steps, overrides={**TINY, **overrides},
                        out=tmp_path, progress=False, force=force)


def test_record_holds_config_status_metrics_timing_and_versions(tmp_path):
    record = run_tiny(tmp_path)
    folder = Path(record.path)
    assert folder == tmp_path / "mog" / "gradreg" / record.run_id
    on_disk = json.loads((folder / RUN_FILE).read_text())
    assert on_disk["status"] == "completed"
    assert on_disk["method"] == "gradreg" and on_disk["task"] == "mog" and on_disk["seed"] == 0
    assert on_disk["budget"] == "smoke" and on_disk["task_version"] == 1
    assert on_disk["config"]["eta"] == 0.5 and on_disk["config"]["batch_size"] == 32
    assert on_disk["config"]["schedule"] == "alternating"
    assert set(on_disk["metrics"]) >= {"modes_captured", "high_quality", "kl", "steps_to_all_modes"}
    assert on_disk["timing"]["steps"] == 40 and on_disk["timing"]["wall_seconds"] > 0
    assert on_disk["timing"]["steps_per_second"] == pytest.approx(40 / on_disk["timing"]["wall_seconds"])
    assert set(on_disk["versions"]) == {"python", "stabench", "torch", "numpy", "scipy", "pandas", "git_commit",
                                        "git_dirty"}
    assert on_disk["versions"]["numpy"] == np.__version__ and on_disk["versions"]["pandas"] == pd.__version__
    assert on_disk["device"] == "cpu"
    assert (folder / SAMPLES_FILE).stat().st_size > 0
    with open(folder / CURVE_FILE) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [0, 40]
    assert [p.name for p in folder.parent.iterdir()] == [record.run_id]  # no temporary folders left


def final_parameters(record) -> dict:
    state = read_state(record.path)
    return {f"{net}.{name}": value for net in ("discriminator", "generator") for name, value in state[net].items()}


def test_same_seed_same_parameters_another_seed_others(tmp_path):
    """Every random stream follows the seed: the final parameters of two runs of one seed are equal to the
    bit, and another seed's differ (the metrics of 40 tiny steps alone cannot tell: they are all zero)."""
    first, second = run_tiny(tmp_path / "a"), run_tiny(tmp_path / "b")
    other = stabench.run("gradreg", "mog", seed=1, budget="smoke", steps=40, overrides=TINY, out=tmp_path / "c",
                         progress=False)
    assert first.run_id == second.run_id != other.run_id
    same, different = final_parameters(first), final_parameters(other)
    assert all(torch.equal(value, final_parameters(second)[name]) for name, value in same.items())
    assert all(not torch.equal(value, different[name]) for name, value in same.items() if value.abs().sum() > 0)
    assert first.metrics == pytest.approx(second.metrics, nan_ok=True)


def test_a_finished_record_is_reused_and_only_a_finished_attempt_replaces_it(tmp_path, monkeypatch):
    first = run_tiny(tmp_path)
    written = (first.path / RUN_FILE).read_text()
    again = run_tiny(tmp_path)
    assert again.reused and (again.path / RUN_FILE).read_text() == written  # not trained again

    def broken(*args):
        raise RuntimeError("evaluation broke")

    with monkeypatch.context() as patch:
        patch.setattr(type(stabench.get_task("mog")), "evaluate", broken)
        with pytest.raises(StabenchError, match="the new attempt ended failed .*evaluation broke.*; the completed "
                                                "record at .* is kept"):
            run_tiny(tmp_path, force=True)
    assert (first.path / RUN_FILE).read_text() == written and (first.path / STATE_FILE).is_file()
    forced = stabench.run("gradreg", "mog", seed=0, budget="smoke", steps=40, overrides=TINY, out=tmp_path,
                          progress=False, force=True)
    assert not forced.reused and forced.started_at >= first.started_at and forced.status == "completed"


def test_the_cli_says_when_a_record_is_reused(invoke, tmp_path):
    arguments = ["run", "--method", "vanilla", "--task", "lq1d", "--steps", "5", "--quiet", "--out", str(tmp_path)]
    assert "(already recorded" not in invoke(*arguments).output
    assert "lq1d, seed 0, budget quick: completed (already recorded: not trained again; --force trains it again)" \
        in invoke(*arguments).output


def test_a_diverging_run_is_recorded_as_diverged(tmp_path):
    record = run_tiny(tmp_path, steps=20, lr=1e6)
    assert record.status == "diverged"
    on_disk = json.loads((Path(record.path) / RUN_FILE).read_text())
    assert on_disk["status"] == "diverged"
    assert on_disk["diverged_at_step"] == 20
    assert on_disk["metrics"]["modes_captured"] == 0


def test_a_failing_run_is_recorded_with_its_error(tmp_path):
    class Broken(stabench.Method):
        def g_direction(self, game, point, batch, params, ctx):
            raise RuntimeError("the generator caught fire")

    record = stabench.run(Broken("broken", "raises"), "mog", budget="smoke", steps=5, overrides=TINY,
                          out=tmp_path, progress=False)
    assert record.status == "failed"
    on_disk = json.loads((Path(record.path) / RUN_FILE).read_text())
    assert on_disk["error"] == "RuntimeError: the generator caught fire"


def test_simultaneous_and_alternating_schedules_differ(tmp_path):
    alternating = run_tiny(tmp_path, steps=30)
    simultaneous = run_tiny(tmp_path, steps=30, schedule="simultaneous")
    assert simultaneous.config["schedule"] == "simultaneous"
    assert alternating.run_id != simultaneous.run_id
    assert (Path(alternating.path) / CURVE_FILE).read_text() != (Path(simultaneous.path) / CURVE_FILE).read_text()


def test_cli_run_prints_a_summary(invoke, tmp_path):
    result = invoke("run", "--method", "gradreg", "--task", "mog", "--steps", "20", "--quiet",
                    *[f"--set={k}={v}" for k, v in TINY.items()], "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "gradreg on mog, seed 0, budget quick: completed" in result.output
    assert "modes_captured" in result.output and "steps/s" in result.output
    assert f"record: {tmp_path}" in result.output


def test_cli_json_prints_run_json(invoke, tmp_path):
    result = invoke("run", "--method", "vanilla", "--task", "mog", "--steps", "20", "--json",
                    *[f"--set={k}={v}" for k, v in TINY.items()], "--out", str(tmp_path))
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    folder = tmp_path / "mog" / "vanilla" / printed["run_id"]
    assert printed == json.loads((folder / RUN_FILE).read_text())


def test_undefined_metrics_are_null_in_strict_json():
    text = to_json({"metrics": {"kl": math.nan, "modes_captured": 0, "curve": [math.inf, 1.5]}})
    assert json.loads(text) == {"metrics": {"kl": None, "modes_captured": 0, "curve": [None, 1.5]}}
    assert "NaN" not in text and "Infinity" not in text


def test_a_run_stopped_by_sigterm_is_recorded_as_interrupted(tmp_path):
    command = [sys.executable, "-m", "stabench", "run", "--method", "vanilla", "--task", "mog", "--steps", "100000",
               "--no-spectrum", "--out", str(tmp_path), "--set", "batch_size=16", "--set", "latent_dim=4"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    while b"%|" not in seen:  # the progress bar is drawn: training has started
        seen += process.stderr.read(1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    (record_file,) = tmp_path.glob("mog/vanilla/*/run.json")
    assert stderr.decode().splitlines()[-1] == f"stabench: interrupted; the record is at {record_file.parent}"
    record = json.loads(record_file.read_text())
    assert record["status"] == "interrupted"
    assert record["error"].startswith("interrupted (Ctrl-C or SIGTERM)")
    assert (record_file.parent / STATE_FILE).is_file()  # what it trained is kept


def test_a_large_game_records_a_time_bounded_arnoldi_spectrum(tmp_path):
    record = stabench.run("vanilla", "mog", budget="quick", steps=1, spectrum_every=0, out=tmp_path, progress=False,
                          overrides={"hidden": 48, "latent_dim": 4})  # not smoke: that skips a large game's spectrum
    summary = record.spectrum
    assert summary["solver"] == "arnoldi" and summary["n_parameters"] > 2000
    assert summary["n_eigenvalues"] >= 20
    rows = (Path(record.path) / SPECTRUM_FILE).read_text().splitlines()
    assert rows[0] == "real,imag" and len(rows) == summary["n_eigenvalues"] + 1


def test_a_spectrum_that_cannot_fit_its_time_is_skipped_and_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "SPECTRUM_SECONDS", 1e-6)
    record = stabench.run("vanilla", "mog", budget="quick", steps=1, spectrum_every=0, out=tmp_path, progress=False,
                          overrides={"hidden": 48, "latent_dim": 4})  # not smoke: that skips a large game's spectrum
    assert record.status == "completed"
    assert "over the 1e-06 s allowed; run `stabench spectrum --at RUN_DIR`" in record.spectrum["skipped"]
    assert not (Path(record.path) / SPECTRUM_FILE).exists()


class Remembering(stabench.methods.vanilla.Vanilla):
    """Keeps its previous G direction in ctx.state (as optimistic methods must) and reads the lr from ctx."""

    def g_direction(self, game, point, batch, params, ctx):
        direction = super().g_direction(game, point, batch, params, ctx)
        ctx.state["steps"] = ctx.state.get("steps", 0) + 1
        ctx.state["previous"] = {name: t.detach().clone() for name, t in direction.items()}
        ctx.state["lr"] = ctx.settings.lr
        return direction


def test_a_methods_own_state_survives_in_the_state_file(tmp_path):
    record = stabench.run(Remembering("remembering", ""), "mog", budget="smoke", steps=7, overrides=TINY,
                          out=tmp_path, progress=False, spectrum=False)
    saved = read_state(record.path)
    assert saved["method_state"]["steps"] == 7 and saved["method_state"]["lr"] == 1e-4
    assert set(saved["method_state"]["previous"]) == {"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"}
    assert saved["g_optimizer"]["state"] and saved["d_optimizer"]["state"]  # both players' Adam moments
