import pytest

import stabench
from stabench.errors import StabenchError
from stabench.methods import METHODS
from stabench.methods.vanilla import Vanilla
from stabench.registry import Registry


def test_registering_a_name_twice_raises():
    registry = Registry("method", stabench.Method)
    registry.register(Vanilla("twin", "first"))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Vanilla("twin", "second"))


def test_unknown_name_suggests_the_closest():
    with pytest.raises(StabenchError) as error:
        METHODS.get("gradrg")
    assert str(error.value) == "unknown method `gradrg`. Did you mean `gradreg`? See `stabench list methods`."


def test_a_variant_fixes_defaults_of_its_family():
    variant = Vanilla("vanilla-ns", "non-saturating", nonsaturating=True)
    assert variant.defaults()["nonsaturating"] is True
    assert stabench.get_method("vanilla").defaults()["nonsaturating"] is False


def test_a_variant_rejects_unknown_hyperparameters():
    with pytest.raises(TypeError, match="no hyperparameters"):
        Vanilla("bad", "typo", nonsaturatin=True)


def test_cli_unknown_method_is_one_line_and_exit_2(invoke):
    result = invoke("run", "--method", "gradrg", "--task", "mog")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "stabench: error: unknown method `gradrg`. Did you mean `gradreg`? See `stabench list methods`."
    ]


def test_cli_unknown_task_is_one_line_and_exit_2(invoke):
    result = invoke("run", "--method", "gradreg", "--task", "mgo")
    assert result.exit_code == 2
    assert result.stderr.strip() == "stabench: error: unknown task `mgo`. Did you mean `mog`? See `stabench list tasks`."


def test_cli_lists_methods_with_descriptions_and_defaults(invoke):
    result = invoke("list", "methods")
    assert result.exit_code == 0
    assert "gradreg\n    gradient-regularized GAN" in result.output
    assert "eta=0.5" in result.output
    assert "vanilla\n" in result.output


def test_cli_lists_tasks_with_budgets(invoke):
    result = invoke("list", "tasks")
    assert result.exit_code == 0
    assert "mog  (version 1)" in result.output
    assert "quick 20000 steps" in result.output
