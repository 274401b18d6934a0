"""The README and the examples against the code: every `stabench.X` they name resolves, the examples reach
only the public API, the README's Python blocks run, its hook table says when stabench calls each hook, and
the analysis notebook runs."""
from __future__ import annotations

import ast
import importlib
import json
import re
import shutil
import sys
import types
from pathlib import Path

import matplotlib
import pytest
import scipy.stats
from matplotlib import pyplot as plt

import stabench
from stabench import recipes, references
from stabench.cell import resolve
from stabench.loggers import LOGGERS
from stabench.methods import METHODS
from stabench.phase import phase_panel
from stabench.spectra import analyse
from stabench.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
NAMED = sorted({name.rstrip(".") for name in re.findall(r"\bstabench\.[A-Za-z_][\w.]*", README)})
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def resolve_name(dotted: str):
    """`stabench.a.b` as a user reaches it: attributes of the package, importing a submodule where one is named."""
    found, parts = stabench, dotted.split(".")
    for depth, part in enumerate(parts[1:], start=2):
        if not hasattr(found, part):
            importlib.import_module(".".join(parts[:depth]))  # binds the submodule to its package
        found = getattr(found, part)
    return found


@pytest.fixture
def registries(monkeypatch):
    """Only the built-in methods, tasks and loggers during a test (a plugin an earlier test loaded is set aside),
    and what the test registers (those, references, recipes) is gone after it."""
    for registry in (LOGGERS, METHODS, TASKS):
        monkeypatch.setattr(registry, "_entries", {name: entry for name, entry in registry._entries.items()
                                                   if type(entry).__module__.startswith("stabench.")})
    monkeypatch.setattr(references, "_REFERENCES", dict(references._REFERENCES))
    monkeypatch.setattr(recipes, "_RECIPES", dict(recipes._RECIPES))


# --- names -------------------------------------------------------------------------------------------------------

def test_the_readme_names_the_plugin_api():
    assert {"stabench.register_recipe", "stabench.hyperparameter", "stabench.squared_norm", "stabench.negate",
            "stabench.Method", "stabench.Task", "stabench.load_runs"} <= set(NAMED)


@pytest.mark.parametrize("name", NAMED)
def test_every_stabench_name_in_the_readme_resolves(name):
    resolve_name(name)


def test_every_top_level_name_the_readme_uses_is_public():
    modules = {path.stem for path in (ROOT / "stabench").iterdir() if path.suffix == ".py" or path.is_dir()}
    top = {name.split(".")[1] for name in NAMED} - modules
    assert top <= set(stabench.__all__), sorted(top - set(stabench.__all__))
    assert all(hasattr(stabench, name) for name in stabench.__all__)


def test_register_recipe_adds_a_recipe_a_run_resolves(registries):
    recipe = stabench.register_recipe("tiny-dirac", "dirac", {"gradreg": {"eta": 0.125}}, "a test",
                                      settings={"lr": 0.05})
    assert isinstance(recipe, stabench.Recipe)
    cell = resolve("gradreg", "dirac", recipe="tiny-dirac")
    assert (cell.method_params.eta, cell.task_params.lr, cell.recipe) == (0.125, 0.05, "tiny-dirac")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_the_examples_reach_only_the_public_api(example):
    tree = ast.parse(example.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith("stabench"), f"line {node.lineno}: from {node.module} import"
        if isinstance(node, ast.Import):
            assert all(alias.name == "stabench" or not alias.name.startswith("stabench") for alias in node.names)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "stabench":
            assert node.attr in stabench.__all__, f"line {node.lineno}: stabench.{node.attr} is not in __all__"


# --- the README's Python blocks ----------------------------------------------------------------------------------

def run_as_module(code: str, monkeypatch) -> dict:
    """Run `code` as a module of its own, as a user's script or plugin file runs (dataclasses look their module
    up), without this file's `from __future__` flags; returns its namespace."""
    module = types.ModuleType("readme_block")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(code, "README.md", "exec", dont_inherit=True), module.__dict__)  # noqa: S102 - the README's code
    return module.__dict__


def _block_id(block: str) -> str:
    return block.strip().splitlines()[0][:40]


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=_block_id)
def test_every_python_block_of_the_readme_runs_or_is_an_excerpt_of_an_example(block, tmp_path, monkeypatch,
                                                                             registries):
    if block.startswith(" "):  # an excerpt of a class body: it must be the example's own text
        assert any(block in path.read_text() for path in EXAMPLES), f"not in any example: {_block_id(block)}"
        return
    monkeypatch.chdir(tmp_path)  # records go under the temporary folder
    namespace = run_as_module(block, monkeypatch)
    record = namespace.get("record")
    if record is not None:  # a block that trains leaves a finished record in the temporary folder
        assert record.status == "completed" and Path(record.path).resolve().is_relative_to(tmp_path.resolve())


def test_the_readme_prints_the_complete_instance_noise_example():
    example = (ROOT / "examples" / "instance_noise_plugin.py").read_text()
    assert example in PYTHON_BLOCKS


def test_the_refusal_the_readme_quotes_is_what_a_run_says(registries, tmp_path, monkeypatch):
    shrink = next(block for block in PYTHON_BLOCKS if "class Shrink" in block)
    quoted = re.search(r"`overrides=\{\"shrink\": 1\}` is refused before training: `` (.+?) ``", README).group(1)
    namespace = run_as_module(shrink.split("stabench.register_method(")[0], monkeypatch)
    stabench.register_method(namespace["Shrink"]("shrink", "the README's example"))
    with pytest.raises(stabench.StabenchError) as refused:
        stabench.run("shrink", "dirac", budget="smoke", overrides={"shrink": 1}, out=tmp_path, progress=False)
    assert str(refused.value) == quoted
    assert not any(tmp_path.rglob("run.json"))


# --- the hook table ----------------------------------------------------------------------------------------------

class Spy(stabench.Method):
    """The plain GAN, recording every hook stabench calls, in order."""

    batchable = True

    def __init__(self):
        super().__init__("spy", "records its hook calls")
        self.calls: list[str] = []

    def schedule(self, params):
        self.calls.append("schedule")
        return super().schedule(params)

    def prepare(self, game, params):
        self.calls.append("prepare")
        return super().prepare(game, params)

    def d_direction(self, game, point, batch, params, ctx):
        self.calls.append("d_direction")
        return super().d_direction(game, point, batch, params, ctx)

    def g_direction(self, game, point, batch, params, ctx):
        self.calls.append("g_direction")
        return game.gradient(game.value(point, batch, self.loss(params)), point.g)

    def field(self, game, point, batch, params, ctx):
        self.calls.append("field")
        return super().field(game, point, batch, params, ctx)

    def spectrum_field(self, game, point, batch, params, ctx):
        self.calls.append("spectrum_field")
        return super().spectrum_field(game, point, batch, params, ctx)

    def apply(self, player, direction, params, ctx):
        self.calls.append(f"apply {player}")
        super().apply(player, direction, params, ctx)

    def constrain(self, game, params):
        self.calls.append("constrain")

    def between_iterations(self, game, params, ctx, completed):
        self.calls.append(f"between_iterations {completed}")

    def diagnostics(self, game, point, batch, params, ctx):
        self.calls.append("diagnostics")
        return {}


@pytest.fixture
def spy(registries):
    return stabench.register_method(Spy())


START = ["prepare", "schedule", "between_iterations 0", "diagnostics"]  # the game, the trainer, step 0's evaluation
DIRECTIONS_OF_FIELD = ["field", "d_direction", "g_direction"]  # the default field asks for both halves


@pytest.mark.parametrize("schedule, iteration", [
    ("alternating", ["d_direction", "apply d", "constrain"] * 2 + ["g_direction", "apply g"]),
    ("simultaneous", ["d_direction", "apply d", "constrain", *DIRECTIONS_OF_FIELD, "apply d", "apply g", "constrain"]),
])
def test_a_run_calls_the_hooks_as_the_readme_says(spy, tmp_path, schedule, iteration):
    stabench.run("spy", "dirac", steps=1, overrides={"schedule": schedule, "n_critic": 2}, out=tmp_path,
                 progress=False, spectrum=False)
    assert spy.calls == [*START, *iteration, "between_iterations 1", "diagnostics"]


def test_spectrum_and_phase_call_only_the_analysed_field(spy):
    analyse("spy", "dirac", "init")
    assert spy.calls[0] == "prepare" and set(spy.calls[1:]) == {"spectrum_field", *DIRECTIONS_OF_FIELD}
    spy.calls.clear()
    phase_panel(resolve("spy", "dirac"), "spy", resolution=2, steps=2)
    assert spy.calls[0] == "prepare" and set(spy.calls[1:]) == {"spectrum_field", *DIRECTIONS_OF_FIELD}


# --- the analysis notebook ---------------------------------------------------------------------------------------

NOTEBOOK = ROOT / "examples" / "analyse_records.ipynb"
PUBLISHED = ROOT / "results" / "records"
SUBSET = {"vanilla": 8, "gradreg": 8, "consensus": 8}  # mog seeds per method: 8 runs make the IQM a plain 25 % trim


def code_cells() -> list[str]:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


def test_the_notebook_is_committed_without_outputs():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)


def test_the_notebook_turns_records_into_the_aggregate_and_its_figure(tmp_path, monkeypatch):
    scores = {}
    for method, seeds in SUBSET.items():  # a copy of part of the published records, as `stabench publish` left them
        for run in sorted((PUBLISHED / "mog" / method).iterdir())[:seeds]:
            shutil.copytree(run, tmp_path / "records" / "mog" / method / run.name)
            record = json.loads((run / "run.json").read_text())
            scores.setdefault(method, []).append(record["metrics"]["modes_captured_last5"] / 8)
    monkeypatch.setenv("STABENCH_RECORDS", str(tmp_path / "records"))
    matplotlib.use("Agg")
    namespace: dict = {"__name__": "notebook"}
    for cell in code_cells():  # in order, in one namespace, as a kernel would
        exec(compile(cell, str(NOTEBOOK), "exec", dont_inherit=True), namespace)  # noqa: S102 - our own notebook
    try:
        assert len(namespace["runs"]) == sum(SUBSET.values())
        table = namespace["aggregate"].table.set_index("method")
        assert set(table.index) == set(SUBSET)
        left = namespace["figure"].axes[0]
        drawn = {label.get_text(): bar.get_width() for label, bar in zip(left.get_yticklabels(), left.patches)}
        expected = {method: scipy.stats.trim_mean(values, 0.25) for method, values in scores.items()}
        assert drawn == pytest.approx(expected, rel=1e-12)
    finally:
        plt.close(namespace.get("figure"))
