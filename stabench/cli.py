"""The `stabench` command: thin click wrappers over the library."""
from __future__ import annotations

import contextlib
import signal
import shutil
import sys
import warnings

import click

from stabench.configs import explain as explain_settings, run_config
from stabench.errors import StabenchError, interrupt
from stabench.hyperparams import defaults, parse_assignments
from stabench.methods import METHODS
from stabench.recipes import recipes
from stabench.records import to_json
from stabench.references import reference, references_of
from stabench.registry import load_plugins
from stabench.tasks import TASKS


class Commands(click.Group):
    """Turns a user's mistake (StabenchError) into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except StabenchError as error:
            click.echo(f"stabench: error: {error}", err=True)
            ctx.exit(2)


logger_option = click.option(
    "--logger", "loggers", multiple=True, metavar="NAME",
    help="Also log to NAME while training: tensorboard, wandb, csv (always), or a plugin's (repeatable).",
)

plugin_option = click.option(
    "--plugin", "plugins", multiple=True, metavar="PATH_OR_MODULE",
    help="A .py file or module that registers methods or tasks (repeatable; also $STABENCH_PLUGINS).",
)


@click.group(cls=Commands)
@click.version_option(package_name="stabench")
def cli():
    """Benchmark GAN training stabilizers: train, measure, compare."""


like_option = click.option(
    "--like", default=None, metavar="RUN_DIR",
    help="Start from a record's identity: method, task, seed, budget, steps, recipe and hyperparameters.")
config_option = click.option(
    "--config", "config_file", default=None, metavar="FILE.toml",
    help="method, task, seed, budget, steps, recipe and any --set key, one KEY = VALUE a line; the command "
         "line wins over it, and it over --like.")


@cli.command()
@click.option("--method", default=None, help="A registered method (`stabench list methods`).")
@click.option("--task", default=None, help="A registered task (`stabench list tasks`).")
@click.option("--seed", default=None, type=int, help="[default: 0]")
@click.option("--seeds", default=None, help="Several seeds instead (0-15 or 0,2,7), one record each.")
@click.option("--batched/--one-by-one", default=None,
              help="With --seeds: train them as one stacked model, or one after another [default: batched on CUDA].")
@click.option("--budget", default=None, help="smoke, quick or paper [default: quick].")
@click.option("--steps", type=int, default=None, help="Override the budget's number of G steps.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override any hyperparameter (method, task or training); repeatable.")
@click.option("--recipe", default=None, help="Train at a named recipe's settings (`stabench list recipes`).")
@config_option
@like_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--out", default="results/runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print run.json instead of the summary.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--no-spectrum", is_flag=True, help="Skip the Jacobian spectrum at the end of the run.")
@click.option("--threads", type=int, default=None,
              help="CPU threads for the run [default: $OMP_NUM_THREADS, else 1].")
@click.option("--spectrum-every", type=int, default=None,
              help="Track the Jacobian spectrum every N steps [default: the budget's; 0: only at the end].")
@click.option("--checkpoints", type=int, default=3, show_default=True,
              help="Intermediate states the record keeps (for `stabench spectrum --at RUN_DIR --step S`).")
@click.option("--landscape", is_flag=True,
              help="Also analyse rotation against potential at the end (as `stabench landscape --at RUN_DIR`).")
@click.option("--force", is_flag=True,
              help="Train again even if a finished record of this cell exists (replaced only by a finished attempt).")
@logger_option
@plugin_option
def run(method, task, seed, seeds, batched, budget, steps, assignments, recipe, config_file, like, device, out, as_json,
        quiet, no_spectrum, threads, spectrum_every, checkpoints, landscape, force, loggers, plugins):
    """Train METHOD on TASK for one seed (or --seeds) and write its run record; --like RUN_DIR trains a
    record's settings again (with --out elsewhere, or --force)."""
    from stabench.batched import run_seeds
    from stabench.runner import run as run_cell
    from stabench.sweep import parse_seeds

    if seeds is not None and landscape:
        raise StabenchError("`--landscape` analyses one run: use it with --seed, or `stabench landscape --at RUN_DIR`")
    options = dict(device=device, out=out, progress=not (quiet or as_json), spectrum=not no_spectrum, force=force,
                   threads=threads, spectrum_every=spectrum_every, checkpoints=checkpoints, loggers=loggers)
    # With --json, stdout is the JSON alone: what plugins print goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        load_plugins(plugins)
        chosen = run_config(like=like, config=config_file, method=method, task=task, seed=seed, budget=budget,
                            steps=steps, recipe=recipe, overrides=parse_assignments(assignments))
        try:
            if seeds is None:
                records = [run_cell(**chosen.arguments, seed=chosen.seed, landscape=landscape, **options)]
            else:
                records = run_seeds(**chosen.arguments, seeds=parse_seeds(seeds), batched=batched, **options)
        except KeyboardInterrupt as stop:
            said = [f"the record is at {stop.args[0]}", *stop.args[1:]] if stop.args else []
            click.echo("; ".join(["stabench: interrupted", *said]), err=True)
            sys.exit(130)
    if as_json:
        click.echo(records[0].to_json() if seeds is None else "[" + ",\n".join(r.to_json() for r in records) + "]")
    else:
        click.echo("\n".join(summary(record) for record in records))
    if any(record.status in ("failed", "interrupted") for record in records):
        sys.exit(1)


def _format(value) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summary(record) -> str:
    """A few lines a person reads at the end of a run."""
    timing = record.timing
    lines = [f"{record.method} on {record.task}, seed {record.seed}, budget {record.budget}: {record.status}"
             + (" (already recorded: not trained again; --force trains it again)" if record.reused else "")]
    if record.status == "diverged":
        lines.append(f"  diverged: non-finite parameters or value found at step {record.diverged_at_step}")
    if record.status in ("failed", "interrupted"):
        lines.append(f"  error: {record.error}")
    lines += [f"  note: {note}" for note in record.notes]
    if record.metrics:
        lines.append("  " + "   ".join(f"{k} {_format(v)}" for k, v in record.metrics.items()))
    rate = _format(timing.get("steps_per_second"))
    lines.append(f"  {timing.get('steps')} steps in {timing.get('wall_seconds', 0.0):.1f} s of training ({rate} steps/s) "
                 f"on {record.device}, {record.threads} thread{'' if record.threads == 1 else 's'}")
    lines.append(f"  record: {record.path}")
    if record.status in ("completed", "diverged"):
        from stabench.compare import in_context

        context = in_context(record)
        lines += [f"  {context}"] if context else []
    return "\n".join(lines)


@cli.command()
@click.option("--method", default=None, help="A registered method (`stabench list methods`).")
@click.option("--task", default=None, help="A registered task (`stabench list tasks`).")
@click.option("--budget", default=None, help="smoke, quick or paper [default: quick].")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="As `run --set`; repeatable.")
@click.option("--recipe", default=None, help="A named recipe (`stabench list recipes`).")
@config_option
@like_option
@plugin_option
def explain(method, task, budget, assignments, recipe, config_file, like, plugins):
    """Every hyperparameter `stabench run` would train METHOD on TASK with, and the layer that set it."""
    load_plugins(plugins)
    found = explain_settings(method, task, budget=budget, recipe=recipe, overrides=parse_assignments(assignments),
                             config=config_file, like=like)
    click.echo(explanation_text(found))


def explanation_text(found) -> str:
    """A table of key, value and layer (with its source), for a person."""
    plan = found.plan
    lines = [f"{found.method.name} (version {found.method.version}) on {found.task.name} (version {found.task.version}), "
             f"budget {found.budget}: {plan.steps} steps, evaluated every {plan.eval_every}"
             + (f", recipe {found.recipe}" if found.recipe else "")]
    rows = [(key, "none" if setting.value is None else str(setting.value),
             setting.layer + (f": {setting.source}" if setting.source else "")
             + ("" if setting.identity else " (environment: not part of the run's identity)"))
            for key, setting in found.settings.items()]
    widths = [max(len(row[i]) for row in [("key", "value", ""), *rows]) for i in range(2)]
    lines.append(f"  {'key':<{widths[0]}}  {'value':<{widths[1]}}  set by")
    lines += [f"  {key:<{widths[0]}}  {value:<{widths[1]}}  {layer}" for key, value, layer in rows]
    return "\n".join(lines)


@cli.command()
@click.option("--methods", default="all", show_default=True, help="Comma-separated methods, or all.")
@click.option("--tasks", default="all", show_default=True, help="Comma-separated tasks, or all.")
@click.option("--seeds", default="0-2", show_default=True, help="A range (0-4) or a list (0,2,7).")
@click.option("--budget", default="quick", show_default=True, help="smoke, quick or paper.")
@click.option("--steps", type=int, default=None, help="Override every budget's number of G steps.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a hyperparameter in every cell that declares it; repeatable.")
@click.option("--recipe", default=None, help="Every cell at a named recipe's settings (`stabench list recipes`).")
@click.option("--workers", type=int, default=None,
              help="Local worker processes [default: cores / threads].")
@click.option("--threads", type=int, default=None,
              help="CPU threads per cell [default: $OMP_NUM_THREADS, else 1].")
@click.option("--spectrum-every", type=int, default=None,
              help="Track the Jacobian spectrum every N steps [default: each budget's; 0: only at the end].")
@click.option("--landscape", is_flag=True, help="Also analyse rotation against potential at the end of each cell.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray: the cluster to join [default: start a local one].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--out", default="results/runs", show_default=True, type=click.Path(file_okay=False))
@click.option("--no-spectrum", is_flag=True, help="Skip the Jacobian spectrum at the end of each run.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@logger_option
@plugin_option
def sweep(methods, tasks, seeds, budget, steps, assignments, recipe, workers, threads, spectrum_every, landscape,
          backend, address, device, out, no_spectrum, quiet, loggers, plugins):
    """Run every (method, task, seed) cell; finished cells under --out are skipped, so a rerun resumes."""
    from stabench import sweep as sweeps

    load_plugins(plugins)
    if workers is not None and workers < 1:
        raise StabenchError(f"`--workers` must be at least 1, got {workers}")
    cells = sweeps.plan(sweeps.parse_names(methods, METHODS), sweeps.parse_names(tasks, TASKS),
                        sweeps.parse_seeds(seeds), budget=budget, steps=steps,
                        overrides=parse_assignments(assignments), out=out, recipe=recipe)
    try:
        report = sweeps.sweep(cells, workers=workers, backend=backend, address=address, plugins=plugins,
                              device=device, spectrum=not no_spectrum, progress=not quiet, threads=threads,
                              spectrum_every=spectrum_every, landscape=landscape, loggers=loggers)
    except KeyboardInterrupt:
        click.echo("stabench: sweep interrupted; run the same command again to resume", err=True)
        sys.exit(130)
    for cell, error in report.failures:
        click.echo(f"failed: {cell.method} on {cell.task}, seed {cell.seed}: {error}", err=True)
    click.echo(f"{len(cells)} cells: {report.line()}; records under {out}")
    if report.counts["failed"]:
        sys.exit(1)


@cli.command()
@click.option("--results", default="results/runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder of run records (searched recursively).")
@click.option("--task", default=None, help="One task [default: every task with runs].")
@click.option("--metric", "metrics", multiple=True, help="Metrics to show [default: the task's]; repeatable.")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "html", "latex"]), default="md", show_default=True)
@click.option("--aggregate", is_flag=True,
              help="IQM and P(improvement over vanilla) over the mode-coverage tasks (mog, grid25, stacked-mnist), "
                   "per budget.")
@plugin_option
def table(results, task, metrics, fmt, aggregate, plugins):
    """Leaderboard per task: mean and Student-t interval over seeds, the best and its ties in bold."""
    from stabench.table import load_runs, render, render_aggregates

    load_plugins(plugins)
    if aggregate and (task or metrics):
        raise StabenchError("`--aggregate` takes no --task or --metric: it covers every mode-coverage task")
    try:
        runs = load_runs(results)
        text = render_aggregates(runs, fmt) if aggregate else render(runs, task, list(metrics) or None, fmt)
    except KeyboardInterrupt:
        click.echo("stabench: table interrupted; nothing was written", err=True)
        sys.exit(130)
    click.echo(text, nl=False)


@cli.command()
@click.option("--results", default="results/runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder of run records (searched recursively).")
@click.option("--to", "destination", default="results", show_default=True, type=click.Path(),
              help="Where LEADERBOARD.md, leaderboard.csv, aggregate.csv, figures/, records/ and site/ go.")
@click.option("--command", "command", default=None,
              help="The command that made the runs, quoted in LEADERBOARD.md.")
@plugin_option
def publish(results, destination, command, plugins):
    """Write the leaderboard (Markdown, CSV, a web page), its figures and the records behind it."""
    from stabench.publish import publish as write_leaderboard

    load_plugins(plugins)
    try:
        written = write_leaderboard(results, destination, command=command)
    except KeyboardInterrupt:
        click.echo(f"stabench: publish interrupted; `{destination}` keeps a whole publication, never half of one",
                   err=True)
        sys.exit(130)
    for path in written:
        click.echo(f"wrote {path}")


@cli.command(name="list")
@click.argument("what", type=click.Choice(["methods", "tasks", "recipes", "loggers"]))
@click.option("--task", default=None, help="With `methods`: show the defaults that apply on this task.")
@click.option("--verbose", "-v", is_flag=True, help="With `methods`: each method's defaults and reference settings.")
@plugin_option
def list_entries(what, task, verbose, plugins):
    """List registered methods (one line each; --verbose or --task for their settings), tasks, recipes or loggers."""
    load_plugins(plugins)
    if what == "loggers":
        from stabench.loggers import LOGGERS

        width = max(len(name) for name in LOGGERS.names())
        for entry in LOGGERS:
            click.echo(f"{entry.name:<{width}}  {entry.description}")
        return
    if what == "recipes":
        for recipe in recipes():
            budgets = ", ".join(f"{name} {b.steps} steps" for name, b in recipe.budgets.items()) or "the task's"
            click.echo(f"{recipe.name}  (on {recipe.task}; budgets: {budgets})\n    source: {recipe.source}")
            if recipe.settings:
                click.echo(f"    every method: {_assignments(recipe.settings)}")
            own = {method: settings for method, settings in recipe.methods.items() if settings}
            click.echo(f"    methods: {', '.join(recipe.methods)}")
            for method, settings in own.items():
                click.echo(f"    {method}: {_assignments(settings)}")
        return
    if what == "methods" and not (verbose or task):
        width = shutil.get_terminal_size((100, 24)).columns
        names = max(len(entry.name) for entry in METHODS)
        for entry in METHODS:
            line = f"{entry.name:<{names}}  {entry.source or entry.description}"
            click.echo(line if len(line) <= width else line[:width - 1] + "…")
        click.echo("(`stabench list methods --verbose` or `--task TASK` for descriptions and settings)")
        return
    if what == "tasks":
        for entry in TASKS:
            budgets = ", ".join(f"{name} {b.steps} steps" for name, b in entry.budgets.items())
            click.echo(f"{entry.name}  (version {entry.version})\n    {entry.description}\n    budgets: {budgets}")
            click.echo("    defaults: " + _assignments(defaults(entry.Params)))
        return
    on_task = TASKS.get(task).name if task else None
    for entry in METHODS:
        click.echo(f"{entry.name}  (version {entry.version})\n    {entry.description}")
        if entry.source:
            click.echo(f"    source: {entry.source}")
        if on_task is not None:
            found = reference(entry.name, on_task)
            values = {**entry.defaults(), **(found.settings if found else {})}
            click.echo(f"    defaults on {on_task}: {_assignments(values)}")
            if found:
                click.echo(f"    reference settings from: {found.source}")
            continue
        click.echo(f"    defaults: {_assignments(entry.defaults())}")
        for found in references_of(entry.name):  # each task's reference settings, where it has some
            click.echo(f"    on {found.task}: {_assignments(found.settings)}  [{found.source}]")


@cli.command()
@click.option("--method", default=None, help="A registered method (a run folder supplies its own).")
@click.option("--task", default=None, help="A registered task (a run folder supplies its own).")
@click.option("--at", "at", default="equilibrium", show_default=True, metavar="equilibrium|init|RUN_DIR",
              help="The task's known equilibrium, the seed's initial point, or a run folder's final parameters.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the initial point and the evaluation batch (a run folder supplies its own).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override any hyperparameter (method, task or training); repeatable.")
@click.option("--step", "step", default=None, type=int,
              help="With a run folder: the checkpoint kept at this step instead of the final parameters.")
@click.option("--k", default=20, show_default=True, type=int,
              help="For systems too large for a dense Jacobian: how many eigenvalues of largest real part "
                   "and of largest modulus to find.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: eigenvalues ([re, im]), summary, config, task_params.")
@plugin_option
def spectrum(method, task, at, seed, assignments, step, k, device, as_json, plugins):
    """Eigenvalues of the Jacobian of METHOD's field on TASK at a point (float64)."""
    from stabench.spectra import analyse

    load_plugins(plugins)
    report = analyse(method, task, at, seed=seed, overrides=parse_assignments(assignments), k=k, device=device,
                     step=step)
    click.echo(to_json(report) if as_json else spectrum_text(report))


def spectrum_text(report: dict, shown: int = 40) -> str:
    """The summary and the first eigenvalues by real part, for a person."""
    s = report["summary"]
    lines = [f"{report['method']} on {report['task']} at {report['at']}, seed {report['seed']}: "
             f"{s['n_parameters']} parameters, {s['solver']} Jacobian, |h| = {s['field_norm']:.3g}",
             f"  max_real {_format(s['max_real'])}   n_positive {s['n_positive']}   "
             f"n_zero {s['n_zero']} (|λ| <= {s['zero_tolerance']:.2g})   spectral_radius {_format(s['spectral_radius'])}"
             f"   max_imag {_format(s['max_imag'])}"]
    if not s["complete"]:
        unconverged = "" if s["converged"] else "; the searches stopped at their restart limit"
        lines.append(f"  (Arnoldi: {s['n_eigenvalues']} eigenvalues found; counts cover those only{unconverged})")
    if s.get("notes"):
        lines.append(f"  note: {s['notes']}")
    lines.append("  eigenvalues, largest real part first:")
    lines += [f"    {re:+.6g} {im:+.6g}i" for re, im in report["eigenvalues"][:shown]]
    if len(report["eigenvalues"]) > shown:
        lines.append(f"    ... {len(report['eigenvalues']) - shown} more (--json lists all)")
    return "\n".join(lines)


@cli.command()
@click.option("--task", default="lq1d", show_default=True, help="A task with one scalar parameter per player.")
@click.option("--method", default=None, help="A registered method (not with --grid).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override any hyperparameter, e.g. eta=0.5; repeatable.")
@click.option("--grid", is_flag=True,
              help="The paper's Figure 3: gradreg with loss gan and wgan x eta in {0, 0.25, 0.5, 1}; on dirac, "
                   "Mescheder et al. 2018's figure: every registered method from (1, 1).")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="PNG to write [default: phase_TASK_METHOD.png, or phase_TASK.png with --grid].")
@click.option("--steps", default=3000, show_default=True, type=int, help="Gradient steps per trajectory.")
@click.option("--resolution", default=21, show_default=True, type=int,
              help="Points a side of the grid the field is evaluated on.")
@plugin_option
def phase(task, method, assignments, grid, out, steps, resolution, plugins):
    """Streamlines of METHOD's field in the plane of a two-parameter game, with gradient-step trajectories."""
    from stabench.phase import phase as draw_phase

    load_plugins(plugins)
    out = out or (f"phase_{task}.png" if grid else f"phase_{task}_{method}.png")
    path = draw_phase(task, method, out, overrides=parse_assignments(assignments), grid=grid, steps=steps,
                      resolution=resolution)
    click.echo(f"phase portrait: {path}")


@cli.command()
@click.option("--task", default="dirac", show_default=True, help="A task that reports steps_to_converge.")
@click.option("--methods", default="all", show_default=True, help="Comma-separated methods, or all.")
@click.option("--budget", default="quick", show_default=True, help="smoke, quick or paper.")
@click.option("--steps", type=int, default=None, help="Override the budget's number of G steps.")
@click.option("--seeds", default="0-9", show_default=True, help="The starts, as seeds: 0-9, or 0,3,7.")
@click.option("--out", default="results/runs", show_default=True, type=click.Path(file_okay=False),
              help="Where the run records go (finished ones are reused) and, under TASK/, convergence.md.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@plugin_option
def convergence(task, methods, budget, steps, seeds, out, quiet, plugins):
    """Every method under both schedules from each seed's start: does it reach the equilibrium, and should it?"""
    from stabench.convergence import convergence_table
    from stabench.sweep import parse_names, parse_seeds

    load_plugins(plugins)
    try:
        table = convergence_table(task, parse_names(methods, METHODS), budget, steps=steps, out=out,
                                  seeds=parse_seeds(seeds), progress=not quiet)
    except KeyboardInterrupt:
        click.echo("stabench: convergence interrupted; run the same command again to resume", err=True)
        sys.exit(130)
    click.echo(table.markdown, nl=False)
    click.echo(f"wrote {table.path}")


@cli.command()
@click.option("--at", "at", required=True, metavar="RUN_DIR", help="A run folder (its final parameters).")
@click.option("--k", default=10, show_default=True, type=int,
              help="Eigenvalues of the Jacobian's symmetric part (largest and smallest) and antisymmetric part.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--json", "as_json", is_flag=True, help="Print what landscape.json holds.")
@plugin_option
def landscape(at, k, device, as_json, plugins):
    """Rotation against potential at a run's end: path angle from its initial point, eigenvalues of (J±Jᵀ)/2."""
    from stabench.landscape import landscape as analyse_landscape, landscape_text

    load_plugins(plugins)
    report = analyse_landscape(at, k=k, device=device)
    click.echo(to_json(report) if as_json else landscape_text(report))


@cli.command()
@click.option("--method", required=True, help="The method to place among the published ones.")
@click.option("--protocol", default="screen", show_default=True,
              help="screen (a few minutes for a method of vanilla's cost) or quick (the full leaderboard cells).")
@click.option("--against", default=None, type=click.Path(file_okay=False),
              help="Published records [default: the checkout's results/records].")
@click.option("--out", default="results/compare", show_default=True, type=click.Path(file_okay=False),
              help="Where the method's runs (under runs/), compare.md and compare.html go.")
@click.option("--workers", type=int, default=None, help="Local worker processes [default: cores / threads].")
@click.option("--threads", type=int, default=None, help="CPU threads per cell [default: $OMP_NUM_THREADS, else 1].")
@click.option("--device", default="cpu", show_default=True, help="auto, cpu or cuda.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--bundle", default=None, type=click.Path(file_okay=False),
              help="Also write a submission here: the records, the plugin source, the commands and versions.")
@logger_option
@plugin_option
def compare(method, protocol, against, out, workers, threads, device, quiet, bundle, loggers, plugins):
    """Run METHOD on a protocol's cells and say where it stands among the published methods."""
    import shlex

    from stabench.compare import agreement_text, compare as compare_method

    load_plugins(plugins)
    command = shlex.join(["stabench", "compare", "--method", method, "--protocol", protocol,
                          *(part for plugin in plugins for part in ("--plugin", plugin))])
    try:
        found = compare_method(method, protocol, against=against, out=out, plugins=plugins, workers=workers,
                               threads=threads, device=device, progress=not quiet, loggers=loggers, bundle=bundle,
                               command=command)
    except KeyboardInterrupt:
        click.echo("stabench: compare interrupted; run the same command again to resume", err=True)
        sys.exit(130)
    iqm = found.iqm
    click.echo(f"{found.method}, protocol {found.protocol.name} ({found.protocol.screen.label()}): IQM {iqm.value:.3g}"
               + (f" [{iqm.low:.2g}, {iqm.high:.2g}]" if iqm.method not in (None, "all equal") else ""))
    click.echo(f"verdict: {found.verdict}")
    agreement = agreement_text(found.protocol)
    if agreement:
        click.echo(f"how far to trust it: {agreement}")
    click.echo("wrote " + ", ".join(str(path) for path in found.paths))


@cli.command()
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--cells", default=2, show_default=True, type=int, help="How many of its cells to run again.")
@click.option("--seed", default=0, show_default=True, type=int, help="Chooses the cells.")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Where the reruns go [BUNDLE/verify].")
def verify(bundle, cells, seed, out):
    """Rerun a few cells of a submission (`compare --bundle`) and say whether each reproduces."""
    from stabench.bundle import TOLERANCE
    from stabench.bundle import verify as verify_bundle

    if cells < 1:
        raise StabenchError(f"`--cells` must be at least 1, got {cells}")
    checks = verify_bundle(bundle, cells=cells, seed=seed, out=out)
    for check in checks:
        said = "reproduces" if check.reproduces else "does NOT reproduce"
        click.echo(f"{check.task} seed {check.seed} ({check.run_id}): {said}; largest relative difference "
                   f"{check.largest:.2g}" + (f" ({check.metric})" if check.metric else "")
                   + f", tolerance {TOLERANCE:g}")
    if not all(check.reproduces for check in checks):
        sys.exit(1)


def _assignments(values: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in values.items())


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"stabench: warning: {message}\n"


def main(argv=None):
    warnings.formatwarning = _one_line_warning
    signal.signal(signal.SIGTERM, interrupt)  # `timeout` and schedulers stop runs this way
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the command's output (`run --json`)
            load_plugins()
    except StabenchError as error:
        click.echo(f"stabench: error: {error}", err=True)
        sys.exit(2)
    cli.main(args=argv, prog_name="stabench")
