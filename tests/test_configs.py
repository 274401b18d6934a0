"""Configs and reruns: `run --config FILE.toml`, `run --like RUN_DIR` and `stabench explain` (issue 38, item 2)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

import stabench
from stabench.cell import Given, Setting, resolve, resolve_settings
from stabench.configs import read_config, record_config, run_config
from stabench.errors import StabenchError
from stabench.methods import METHODS
from stabench.records import CURVE_FILE, RUN_FILE, SPECTRUM_FILE, read_record, read_state
from stabench.references import PAPER
from stabench.runner import new_record


def write(path, text):
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A finished tiny run of gradreg on lq1d away from every default: seed 5, smoke with 40 steps, eta 0.25."""
    out = tmp_path_factory.mktemp("recorded")
    record = stabench.run("gradreg", "lq1d", seed=5, budget="smoke", steps=40, overrides={"eta": 0.25, "lr": 0.02},
                          out=out, progress=False)
    assert record.status == "completed"
    return record


# --- explain ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", [m.name for m in METHODS])
def test_explain_agrees_with_resolve_for_every_method_on_mog(method, tmp_path):
    file = write(tmp_path / "run.toml", 'lr = 3e-4\nbudget = "smoke"\n')
    explained = stabench.explain(method, "mog", config=file, overrides={"batch_size": "32"})
    cell = resolve(method, "mog", budget="smoke", overrides={"lr": 3e-4, "batch_size": 32})
    assert {key: s.value for key, s in explained.settings.items()} == {**cell.config, **cell.environment}
    assert explained.budget == "smoke" and explained.plan.steps == cell.steps
    assert (explained.settings["lr"].layer, explained.settings["batch_size"].layer) == ("config file", "--set")
    plain = stabench.explain(method, "mog")
    assert {key: s.value for key, s in plain.settings.items()} == resolve(method, "mog").config


def test_explain_names_the_layer_that_set_each_key():
    settings = stabench.explain("gradreg", "mog").settings
    assert settings["eta"] == Setting(0.5, "reference setting", PAPER)
    assert settings["lr"] == Setting(1e-4, "task default")  # mog's own; TrainingParams says 2e-4
    assert settings["beta1"] == Setting(0.5, "training default")
    assert settings["schedule"] == Setting("alternating", "method default")
    assert list(settings)[:2] == ["batch_size", "optimizer"]  # task and training keys first, as in a record's config
    assert stabench.explain("unrolled10", "mog").settings["k"] == Setting(10, "method default")  # the variant's own
    toy = stabench.explain("wgan-gp", "mog", recipe="gulrajani-toy", overrides={"hidden": 64}).settings
    assert toy["batch_size"] == Setting(256, "recipe", "gulrajani-toy")
    assert toy["hidden"] == Setting(64, "--set")
    smoke = stabench.explain("vanilla", "stacked-mnist", budget="smoke").settings
    assert smoke["eval_samples"] == Setting(2600, "budget", "smoke")
    assert smoke["data_dir"] == Setting("", "task default", identity=False)


def test_a_later_layer_that_repeats_a_value_is_still_the_one_that_set_it():
    found = resolve_settings("gradreg", "mog", given=[Given("--set", {"eta": 0.5})])
    assert found.settings["eta"] == Setting(0.5, "--set")


def test_the_explain_command_prints_every_key_with_its_layer(invoke):
    result = invoke("explain", "--method", "gradreg", "--task", "mog", "--set", "lr=1e-3")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "gradreg (version 1) on mog (version 1), budget quick: 20000 steps, evaluated every 250"
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in lines[2:]}
    assert len(rows) == len(resolve("gradreg", "mog").config)
    assert rows["eta"] == ["0.5", f"reference setting: {PAPER}"]
    assert rows["lr"] == ["0.001", "--set"]
    assert rows["g_lr"] == ["none", "training default"]


# --- config files -----------------------------------------------------------------------------------

def test_a_config_file_gives_names_and_settings_and_the_command_line_wins(tmp_path):
    file = write(tmp_path / "run.toml", 'method = "gradreg"\ntask = "mog"\nseed = 3\nbudget = "smoke"\nsteps = 7\n'
                                        'eta = 0.1\nlr = "1e-3"\nschedule = "simultaneous"\n')
    chosen = run_config(config=file, seed=4, overrides={"eta": "0.2"})
    assert (chosen.method, chosen.task, chosen.seed, chosen.budget, chosen.steps) == ("gradreg", "mog", 4, "smoke", 7)
    cell = resolve(**chosen.arguments, seed=chosen.seed)
    assert (cell.config["eta"], cell.config["lr"], cell.config["schedule"]) == (0.2, 1e-3, "simultaneous")
    assert cell.steps == 7 and cell.seed == 4


def test_run_with_a_config_file_trains_the_files_cell(invoke, tmp_path):
    file = write(tmp_path / "run.toml", 'method = "vanilla"\ntask = "dirac"\nbudget = "smoke"\nseed = 2\n'
                                        'steps = 20\nlr = 0.05\n')
    result = invoke("run", "--config", str(file), "--set", "schedule=simultaneous", "--no-spectrum", "--quiet",
                    "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert (record["method"], record["task"], record["seed"], record["steps_planned"]) == ("vanilla", "dirac", 2, 20)
    assert (record["config"]["lr"], record["config"]["schedule"]) == (0.05, "simultaneous")
    assert record["run_id"] == resolve("vanilla", "dirac", seed=2, budget="smoke", steps=20,
                                       overrides={"lr": 0.05, "schedule": "simultaneous"}).run_id


@pytest.mark.parametrize("text, message", [
    ('method = "gradreg"\ntask = "mog"\netaa = 1\n',
     "unknown hyperparameter `etaa` for gradreg on mog (config file {file}). Did you mean `eta`? Valid keys: "),
    ('method = "gradreg"\ntask = "mog"\neta = "much"\n', "`eta` expects a number, got 'much'"),
    ('method = "gradreg"\ntask = "mog"\nseed = "3"\n', "config file `{file}`: `seed` expects an integer, got '3'"),
    ('method = "gradreg"\n[settings]\neta = 1\n',
     "config file `{file}`: `settings` should be one value (KEY = VALUE, as with --set), got {{'eta': 1}}"),
    ('method = "gradreg"\ntask = "mog"\nlr = [1, 2]\n', "config file `{file}`: `lr` should be one value"),
    ("method = gradreg\n", "config file `{file}` is not valid TOML: "),
    ('task = "mog"\n', "name the method (`--method`, or in a --config file or a --like record)"),
])
def test_a_wrong_config_file_is_one_line_and_exit_2(invoke, tmp_path, text, message):
    file = write(tmp_path / "run.toml", text)
    result = invoke("run", "--config", str(file))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stabench: error: " + message.format(file=file))


def test_a_missing_config_file_is_one_line(invoke, tmp_path):
    result = invoke("explain", "--config", str(tmp_path / "none.toml"))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"stabench: error: config file `{tmp_path / 'none.toml'}` cannot be read: " \
                                    "No such file or directory"


# --- reruns -----------------------------------------------------------------------------------------

def test_like_reproduces_the_records_numbers(recorded, invoke, tmp_path):
    result = invoke("run", "--like", str(recorded.path), "--out", str(tmp_path), "--quiet", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["run_id"] == recorded.run_id
    again = read_record(tmp_path / "lq1d" / "gradreg" / recorded.run_id)
    assert not again.reused
    assert (again.run_id, again.seed, again.budget, again.steps_planned) == (recorded.run_id, 5, "smoke", 40)
    assert again.config == recorded.config and again.config["eta"] == 0.25
    assert again.metrics == recorded.metrics
    assert {**again.spectrum, "seconds": 0} == {**recorded.spectrum, "seconds": 0}
    for name, timed in ((CURVE_FILE, ["wall_seconds"]), (SPECTRUM_FILE, [])):
        tables = [pd.read_csv(record.path / name).drop(columns=timed) for record in (recorded, again)]
        pd.testing.assert_frame_equal(*tables, check_exact=True)
    first, second = read_state(recorded.path), read_state(again.path)
    for player in ("generator", "discriminator"):
        for name, tensor in first[player].items():
            assert torch.equal(tensor, second[player][name])


def test_like_into_the_same_out_finds_the_record_itself(recorded, invoke):
    result = invoke("run", "--like", str(recorded.path), "--out", str(recorded.path.parents[2]), "--quiet")
    assert result.exit_code == 0 and "already recorded" in result.output


def test_like_layers_under_a_config_file_and_the_command_line(recorded, tmp_path):
    file = write(tmp_path / "run.toml", "seed = 6\neta = 0.3\nlr = 0.01\n")
    chosen = run_config(like=recorded.path, config=file, seed=7, overrides={"lr": "0.03"})
    assert (chosen.method, chosen.task, chosen.seed, chosen.budget, chosen.steps) == ("gradreg", "lq1d", 7, "smoke", 40)
    assert chosen.overrides == {**recorded.config, "eta": 0.3, "lr": "0.03"}
    explained = stabench.explain(like=recorded.path, config=file, overrides={"lr": "0.03"}).settings
    assert [explained[key].layer for key in ("eta", "lr", "batch_size")] == ["config file", "--set", "record"]
    assert explained["batch_size"].source == str(recorded.path)


def test_like_with_another_method_keeps_the_task_settings_only(recorded):
    chosen = run_config(like=recorded.path, method="vanilla", overrides={"batch_size": 8})
    assert "eta" not in chosen.overrides and chosen.overrides["lr"] == 0.02 and chosen.overrides["batch_size"] == 8
    with pytest.raises(StabenchError,
                       match="the record at .* is on task `lq1d`: its settings do not carry to task `lq`"):
        run_config(like=recorded.path, task="lq")


def test_a_records_steps_carry_only_where_they_were_overridden(recorded, tmp_path):
    assert record_config(recorded.path).steps == 40
    plain = tmp_path / "plain"
    plain.mkdir()
    cell = resolve("vanilla", "dirac", budget="smoke")
    (plain / RUN_FILE).write_text(new_record(cell, torch.device("cpu")).to_json())
    assert record_config(plain).steps is None and record_config(plain).budget == "smoke"


def test_like_never_applies_the_records_environment(tmp_path):
    cell = resolve("vanilla", "stacked-mnist", seed=1, overrides={"data_dir": "/elsewhere"})
    (tmp_path / RUN_FILE).write_text(new_record(cell, torch.device("cpu")).to_json())
    assert read_record(tmp_path).environment == {"data_dir": "/elsewhere"}
    chosen = run_config(like=tmp_path)
    again = resolve(**chosen.arguments, seed=chosen.seed)
    assert again.environment == {"data_dir": ""} and again.run_id == cell.run_id


def test_a_record_of_another_method_version_warns(recorded, tmp_path):
    data = json.loads((recorded.path / RUN_FILE).read_text())
    (tmp_path / RUN_FILE).write_text(json.dumps({**data, "method_version": 0}))
    with pytest.warns(UserWarning, match="made by method `gradreg` version 0; version 1 is installed"):
        record_config(tmp_path)


def test_like_of_a_folder_without_a_record_is_one_line(invoke, tmp_path):
    result = invoke("run", "--like", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"stabench: error: `{tmp_path}` is not a run record (no run.json)"


def test_read_config_keeps_values_as_written(tmp_path):
    found = read_config(write(tmp_path / "a.toml", 'recipe = "gulrajani-toy"\nnonsaturating = true\nhidden = 64\n'))
    assert found.recipe == "gulrajani-toy" and found.settings == {"nonsaturating": True, "hidden": 64}
    assert found.layer == "config file" and found.source == str(tmp_path / "a.toml")
