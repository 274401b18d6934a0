"""The `stabench` command: thin click wrappers over the library."""
from __future__ import annotations

import sys
import warnings

import click

from stabench.errors import StabenchError
from stabench.hyperparams import defaults, parse_assignments
from stabench.methods import METHODS
from stabench.registry import load_plugins
from stabench.store import to_json
from stabench.tasks import TASKS


class Commands(click.Group):
    """Turns a user's mistake (StabenchError) into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except StabenchError as error:
            click.echo(f"stabench: error: {error}", err=True)
            ctx.exit(2)


plugin_option = click.option(
    "--plugin", "plugins", multiple=True, metavar="PATH_OR_MODULE",
    help="A .py file or module that registers methods or tasks (repeatable; also $STABENCH_PLUGINS).",
)


@click.group(cls=Commands)
@click.version_option(package_name="stabench")
def cli():
    """Benchmark GAN training stabilizers: train, measure, compare."""


@cli.command()
@click.option("--method", required=True, help="A registered method (`stabench list methods`).")
@click.option("--task", required=True, help="A registered task (`stabench list tasks`).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--budget", default="quick", show_default=True, help="smoke, quick or paper.")
@click.option("--steps", type=int, default=None, help="Override the budget's number of G steps.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override any hyperparameter (method, task or training); repeatable.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--out", default="results/runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print run.json instead of the summary.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@plugin_option
def run(method, task, seed, budget, steps, assignments, device, out, as_json, quiet, plugins):
    """Train METHOD on TASK for one seed and write its run record."""
    from stabench.runner import run as run_cell

    load_plugins(plugins)
    record = run_cell(method, task, seed=seed, budget=budget, steps=steps, overrides=parse_assignments(assignments),
                      device=device, out=out, progress=not (quiet or as_json))
    if as_json:
        click.echo(to_json({k: v for k, v in record.items() if k != "path"}))
    else:
        click.echo(summary(record))
    if record["status"] == "failed":
        sys.exit(1)


def _format(value) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summary(record: dict) -> str:
    """A few lines a person reads at the end of a run."""
    timing = record["timing"]
    lines = [f"{record['method']} on {record['task']}, seed {record['seed']}, budget {record['budget']}: "
             f"{record['status']}"]
    if record["status"] == "diverged":
        lines.append(f"  diverged: non-finite parameters or value found at step {record['diverged_at_step']}")
    if record["status"] == "failed":
        lines.append(f"  error: {record['error']}")
    if record["metrics"]:
        lines.append("  " + "   ".join(f"{k} {_format(v)}" for k, v in record["metrics"].items()))
    rate = _format(timing["steps_per_second"])
    lines.append(f"  {timing['steps']} steps in {timing['wall_seconds']:.1f} s of training ({rate} steps/s) "
                 f"on {record['device']}")
    lines.append(f"  record: {record['path']}")
    return "\n".join(lines)


@cli.command(name="list")
@click.argument("what", type=click.Choice(["methods", "tasks"]))
@click.option("--task", default=None, help="With `methods`: show the defaults that apply on this task.")
@plugin_option
def list_entries(what, task, plugins):
    """List registered methods or tasks with their descriptions and defaults."""
    load_plugins(plugins)
    if what == "tasks":
        for entry in TASKS:
            budgets = ", ".join(f"{name} {b.steps} steps" for name, b in entry.budgets.items())
            click.echo(f"{entry.name}  (version {entry.version})\n    {entry.description}\n    budgets: {budgets}")
            click.echo("    defaults: " + _assignments(defaults(entry.Params)))
        return
    on_task = TASKS.get(task) if task else None
    for entry in METHODS:
        values = {**entry.defaults(), **(on_task.defaults(entry.name) if on_task else {})}
        click.echo(f"{entry.name}\n    {entry.description}\n    defaults: {_assignments(values)}")
        if on_task is None:  # each task's reference settings, where it has some
            for each_task in TASKS:
                if each_task.defaults(entry.name):
                    click.echo(f"    on {each_task.name}: {_assignments(each_task.defaults(entry.name))}")


def _assignments(values: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in values.items())


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"stabench: warning: {message}\n"


def main(argv=None):
    warnings.formatwarning = _one_line_warning
    try:
        load_plugins()
    except StabenchError as error:
        click.echo(f"stabench: error: {error}", err=True)
        sys.exit(2)
    cli.main(args=argv, prog_name="stabench")
