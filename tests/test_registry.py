import subprocess
import sys
from dataclasses import dataclass, field

import pytest

import stabench
from stabench.cell import resolve
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


def test_cli_lists_methods_one_line_each_within_the_terminal_and_verbose_with_settings(invoke):
    lines = invoke("list", "methods").output.splitlines()
    assert len(lines) == len(METHODS.names()) + 1 and all(len(line) <= 100 for line in lines)
    assert any(line.split() == ["vanilla", "Goodfellow", "et", "al.", "2014"] for line in lines)
    result = invoke("list", "methods", "--verbose")
    assert result.exit_code == 0
    assert "gradreg  (version 1)\n    gradient-regularized GAN" in result.output
    assert "eta=0.5" in result.output
    assert "vanilla  (version 1)\n" in result.output


def test_cli_lists_tasks_with_budgets(invoke):
    result = invoke("list", "tasks")
    assert result.exit_code == 0
    assert "mog  (version 1)" in result.output
    assert "quick 20000 steps" in result.output


def test_the_same_entry_twice_is_a_no_op_and_a_redefined_class_replaces_it():
    registry = Registry("method", stabench.Method)
    first = registry.register(Vanilla("twin", "first"))
    assert registry.register(first) is first  # a notebook cell that registers the same object again

    def define():  # a notebook cell run twice defines a new class of the same name each time
        class Rerun(Vanilla):
            pass
        return Rerun("rerun", "")

    registry.register(define())
    again = define()
    assert registry.register(again) is again and registry.get("rerun") is again


def test_unregister_removes_an_entry_and_names_a_missing_one():
    registry = Registry("method", stabench.Method)
    registry.register(Vanilla("gone", "soon"))
    registry.unregister("gone")
    assert "gone" not in registry.names()
    with pytest.raises(StabenchError, match="no method `gone` is registered"):
        registry.unregister("gone")


@dataclass
class ShadowingParams(stabench.MethodParams):
    lr: float = 0.1


@dataclass
class UnparsableParams(stabench.MethodParams):
    weights: list = field(default_factory=list)


@dataclass
class OptionalParams(stabench.MethodParams):
    extrapolation: float | None = None


@pytest.mark.parametrize("params_class, message", [
    (ShadowingParams, "method `bad` declares `lr`, a training setting every task declares; read it from ctx.settings.lr instead"),
    (UnparsableParams, "method `bad`: hyperparameter `weights` has type <class 'list'>; supported: bool, int, float, "
                       "str, Literal[...], and any of those | None"),
])
def test_registration_refuses_a_hyperparameter_in_one_line(params_class, message):
    class Bad(Vanilla):
        Params = params_class

    with pytest.raises(StabenchError) as error:
        METHODS.register(Bad("bad", ""))
    assert str(error.value) == message
    assert "bad" not in METHODS.names()


def test_an_optional_hyperparameter_takes_none_or_a_number():
    class Optional(Vanilla):
        Params = OptionalParams

    method = Optional("optional-test", "")
    METHODS.register(method)
    try:
        assert resolve(method, "mog").method_params.extrapolation is None
        assert resolve(method, "mog", overrides={"extrapolation": "0.5"}).method_params.extrapolation == 0.5
        assert resolve(method, "mog", overrides={"extrapolation": "none"}).method_params.extrapolation is None
        with pytest.raises(StabenchError, match="`extrapolation` expects a number or none, got 'x'"):
            resolve(method, "mog", overrides={"extrapolation": "x"})
    finally:
        METHODS.unregister("optional-test")


def test_an_entry_point_may_name_a_class_or_a_factory_and_one_that_registers_nothing_warns(monkeypatch):
    class EntryPoint:
        def __init__(self, name, loaded):
            self.name, self.value, self.loaded = name, f"demo:{name}", loaded

        def load(self):
            return self.loaded

    registry = Registry("method", stabench.Method, from_class=lambda cls, name: cls(name, "from a class"))
    registry._pending = {"by-class": EntryPoint("by-class", Vanilla),
                         "by-factory": EntryPoint("by-factory", lambda: Vanilla("by-factory", "from a factory")),
                         "nothing": EntryPoint("nothing", lambda: None)}
    assert registry.get("by-class").description == "from a class"
    assert registry.get("by-factory").description == "from a factory"
    with pytest.warns(UserWarning, match="method plugin `nothing` \\(demo:nothing\\) registered no method named"):
        with pytest.raises(StabenchError):
            registry.get("nothing")


def test_importing_stabench_leaves_matplotlib_alone():
    """A notebook keeps its inline backend: importing stabench neither imports matplotlib nor switches it."""
    code = "import sys, stabench; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
