import pytest

from stabench.errors import StabenchError
from stabench.runner import resolve

SMALL = ["--steps", "3", "--set", "batch_size=16", "--set", "latent_dim=4", "--set", "hidden=8"]


def test_set_reaches_method_task_and_training_keys():
    cell = resolve("gradreg", "mog", overrides={"eta": "0.25", "lr": "1e-3", "batch_size": "64", "schedule": "simultaneous"})
    assert cell.method_params.eta == 0.25
    assert cell.task_params.lr == 1e-3
    assert cell.task_params.batch_size == 64
    assert cell.method.schedule(cell.method_params).simultaneous


def test_task_reference_settings_apply_before_user_overrides():
    assert resolve("gradreg", "mog").config["eta"] == 0.5
    assert resolve("gradreg", "mog", overrides={"eta": 2}).config["eta"] == 2.0


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(StabenchError) as error:
        resolve("gradreg", "mog", overrides={"etaa": "1"})
    message = str(error.value)
    assert message.startswith("unknown hyperparameter `etaa` for gradreg on mog. Did you mean `eta`? Valid keys: ")
    for key in ("eta", "loss", "lr", "batch_size", "schedule", "n_critic"):
        assert key in message.split("Valid keys: ")[1].split(", ")


@pytest.mark.parametrize("key, value, expected", [
    ("eta", "abc", "`eta` expects a number, got 'abc'"),
    ("batch_size", "1.5", "`batch_size` expects an integer, got '1.5'"),
    ("nonsaturating", "maybe", "`nonsaturating` expects a boolean, got 'maybe'"),
    ("schedule", "sometimes", "`schedule` expects one of alternating, simultaneous, got 'sometimes'"),
])
def test_wrong_type_names_the_expected_type(key, value, expected):
    method = "vanilla" if key == "nonsaturating" else "gradreg"
    with pytest.raises(StabenchError) as error:
        resolve(method, "mog", overrides={key: value})
    assert str(error.value) == expected


def test_cli_bad_set_value_is_one_line_and_exit_2(invoke):
    result = invoke("run", "--method", "gradreg", "--task", "mog", "--set", "eta=abc")
    assert result.exit_code == 2
    assert result.stderr.strip() == "stabench: error: `eta` expects a number, got 'abc'"


def test_cli_unknown_set_key_is_one_line_and_exit_2(invoke):
    result = invoke("run", "--method", "gradreg", "--task", "mog", "--set", "learning_rate=1")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown hyperparameter `learning_rate`" in lines[0] and "Valid keys:" in lines[0]


def test_cli_malformed_set_is_one_line(invoke):
    result = invoke("run", "--method", "gradreg", "--task", "mog", "--set", "eta")
    assert result.exit_code == 2
    assert result.stderr.strip() == "stabench: error: `--set eta` should look like KEY=VALUE"


def test_cli_unknown_budget_is_one_line(invoke):
    result = invoke("run", "--method", "gradreg", "--task", "mog", "--budget", "huge")
    assert result.exit_code == 2
    assert result.stderr.strip() == "stabench: error: unknown budget `huge` for task `mog`; choose from smoke, quick, paper"
