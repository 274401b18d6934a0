"""`stabench compare`: where a method stands among the published ones, and how sure that is.

The method is run on a protocol's cells (a sweep: resumable, parallel, finished cells reused), scored as the
published runs are scored at the protocol's step count (`screen.curve_scores`: a run's modes over its last 5
evaluations up to that step, over the task's modes; the published runs' curves give their score at any step
without new training), and placed among them: per task, every method's mean and Student-t interval; over
tasks, its IQM and P(method > X) for every published X with the stratified bootstrap of `table --aggregate`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from stabench import stats
from stabench.errors import StabenchError, did_you_mean
from stabench.methods import METHODS
from stabench.records import write_file_atomically
from stabench.screen import ABOVE, ACROSS, BELOW, Screen, at_step, curve_scores, protocol_runs, verdict
from stabench.site import Section, code, page, sortable
from stabench.site import escape as site_escape
from stabench.table import MODE_TASKS, escape_markdown, load_runs
from stabench.tasks import TASKS


@dataclass(frozen=True)
class Protocol:
    """The cells a method is compared on: `screen`'s tasks, steps (None: the budget's own) and seeds, at
    `budget`; `agreement` says what the screening study measured for it (empty for the full protocol)."""

    name: str
    screen: Screen
    budget: str = "quick"
    steps_overridden: bool = True
    agreement: str = ""


# The screen is the one `python scripts/screen_study.py` chose from the published curves (results/screen/).
PROTOCOLS = {
    "screen": Protocol("screen", Screen(("grid25", "mog"), 10000, 3), agreement=(
        "screen grid25+mog, 10000 steps, 3 seeds, chosen on half of the published methods; on the other half its "
        "verdicts against vanilla agree with the full protocol's for {verdicts} of methods and its IQM ranking has "
        "Kendall τ {tau} with the full one (results/screen/screen.md)")),
    "quick": Protocol("quick", Screen(("grid25", "mog"), 20000, 10), steps_overridden=False),
}
PUBLISHED = Path(__file__).resolve().parent.parent / "results" / "records"  # a checkout's published records


@dataclass
class Comparison:
    """What `compare` found: per task the methods' rows (`tables`), the method's IQM, P(method > X) for each
    published X, the verdict in words, and the files written."""

    method: str
    protocol: Protocol
    tables: dict[str, pd.DataFrame]
    iqm: stats.Estimate
    improvements: dict[str, stats.Estimate]
    verdict: str
    paths: list[Path] = field(default_factory=list)


def check_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise StabenchError(f"unknown protocol `{name}`.{did_you_mean(name, list(PROTOCOLS))} "
                            f"Choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def published_records(against: str | Path | None) -> Path:
    """The published records to compare with: `against`, else the checkout's results/records, or one line saying
    where to get them."""
    path = Path(against) if against else PUBLISHED
    if not path.is_dir() or not any(path.rglob("run.json")):
        where = f"`{against}`" if against else "this installation (no checkout beside it)"
        raise StabenchError(f"no published records in {where}; get them from the stabench repository's "
                            "results/records folder and pass its path with --against")
    return path


def _check_versions(published: pd.DataFrame, protocol: Protocol) -> None:
    """Refuse, in one line and before any training, tasks whose installed version the published runs lack."""
    for task in protocol.screen.tasks:
        theirs = set(published[published.task == task].task_version.dropna().astype(int))
        mine = TASKS.get(task).version
        if theirs and mine not in theirs:
            raise StabenchError(f"`{task}` runs here have task version {mine}, the published ones "
                                f"{', '.join(map(str, sorted(theirs)))}: they cannot be compared")


def _check_like(published: pd.DataFrame, ours: pd.DataFrame, protocol: Protocol) -> None:
    """Refuse, in one line, a comparison of runs that measure different things."""
    for task in protocol.screen.tasks:
        theirs = published[published.task == task]
        if theirs.empty:
            raise StabenchError(f"the published records have no `{task}` runs at budget {protocol.budget}: "
                                f"protocol `{protocol.name}` cannot be compared")
        mine = ours[ours.task == task]
        for column, what in (("task_version", "task version"), ("data_source", "data")):
            their_values = set(theirs[column].dropna().astype(str))
            for value in set(mine[column].dropna().astype(str)) - their_values:
                raise StabenchError(f"`{task}` runs here have {what} {value}, the published ones "
                                    f"{', '.join(sorted(their_values)) or 'none'}: they cannot be compared")
        if (theirs.steps_planned < protocol.screen.steps).any():
            raise StabenchError(f"published `{task}` runs stop before step {protocol.screen.steps}")


def _rows(at: pd.DataFrame, task: str, method: str) -> pd.DataFrame:
    """A task's table: per method, seeds, mean modes captured [t interval], the method compared marked."""
    rows = []
    for name, of_method in at[at.task == task].groupby("method"):
        modes = of_method.score.to_numpy(float) * MODE_TASKS[task]
        estimate = stats.mean_interval(modes)
        rows.append({"method": name, "compared": name == method, "seeds": len(modes), "modes": estimate.value,
                     "low": estimate.low, "high": estimate.high, "interval": estimate.method})
    return pd.DataFrame(rows).sort_values("modes", ascending=False, ignore_index=True)


def _words(improvements: dict[str, stats.Estimate]) -> str:
    groups: dict[str, list[str]] = {ABOVE: [], ACROSS: [], BELOW: []}
    for other, estimate in sorted(improvements.items(), key=lambda item: -item[1].value):
        groups[verdict(estimate)].append(f"{other} (P = {_p(estimate)})")
    parts = [f"{label} {', '.join(names)}" for label, names in
             (("better than", groups[ABOVE]), ("not separable from", groups[ACROSS]), ("below", groups[BELOW]))
             if names]
    return "; ".join(parts) + "."


def _p(estimate: stats.Estimate) -> str:
    if estimate.method == stats.SEPARATED:
        return f"{estimate.value:.2g}, every run {'above' if estimate.value == 1 else 'below'}"
    return f"{estimate.value:.2g} [{estimate.low:.2g}, {estimate.high:.2g}]"


def compare(method: str, protocol: str = "screen", *, against: str | Path | None = None,
            out: str | Path = "results/compare", plugins=(), workers: int | None = None, threads: int | None = None,
            device: str = "cpu", progress: bool = True, overrides: dict | None = None, loggers=(),
            bundle: str | Path | None = None, command: str | None = None) -> Comparison:
    """Run `method` on the protocol's cells under `out`/runs (finished cells reused) and place it among the
    published records (`against`); write `out`/compare.md and `out`/compare.html, and with `bundle` a submission
    there (`stabench.bundle.write_bundle`). `overrides` apply to every cell, for published records made under
    the same ones; `loggers` watch the runs (`stabench list loggers`)."""
    from stabench.sweep import plan, sweep

    chosen = check_protocol(protocol)
    name = METHODS.get(method).name
    records = published_records(against)
    out = Path(out)
    screen = chosen.screen
    published_runs = load_runs(records)
    published = protocol_runs(published_runs, chosen.budget)
    _check_versions(published, chosen)
    cells = [cell for task in screen.tasks for cell in plan(
        [name], [task], range(_published_seeds(published, task, chosen)), budget=chosen.budget,
        steps=screen.steps if chosen.steps_overridden else None, overrides=overrides, out=out / "runs")]
    sweep(cells, workers=workers, plugins=plugins, device=device, spectrum=False, spectrum_every=0,
          progress=progress, threads=threads, loggers=loggers)
    our_runs = load_runs(out / "runs")
    _check_like(published, our_runs[our_runs.method == name], chosen)
    theirs = curve_scores(published_runs, chosen.budget)
    theirs = theirs[theirs.method != name]
    ours = curve_scores(our_runs, chosen.budget, steps_overridden=chosen.steps_overridden)
    ours = ours[ours.method == name]
    at = pd.concat([at_step(theirs, screen), at_step(ours, screen)], ignore_index=True)
    per_method = {other: [rows[rows.task == task].sort_values("seed").score.to_numpy(float) for task in screen.tasks]
                  for other, rows in at.groupby("method")}
    mine = per_method.pop(name, None)
    if mine is None or not all(len(scores) for scores in mine):
        raise StabenchError(f"`{name}` has no finished run on every task of protocol `{chosen.name}` under "
                            f"`{out / 'runs'}`; see the sweep's failures above")
    improvements = {other: stats.improvement(mine, scores) for other, scores in per_method.items()
                    if all(len(s) for s in scores)}
    comparison = Comparison(name, chosen, {task: _rows(at, task, name) for task in screen.tasks}, stats.iqm(mine),
                            improvements, _words(improvements))
    comparison.paths = write(comparison, out)
    if bundle is not None:
        from stabench.bundle import write_bundle

        made = command or f"stabench compare --method {name} --protocol {chosen.name}"
        comparison.paths.append(write_bundle(name, out / "runs", bundle, plugins=plugins, commands=[made]))
    return comparison


def _published_seeds(runs: pd.DataFrame, task: str, protocol: Protocol) -> int:
    """The seeds every published method has on `task` among the protocol's `runs`, at most the protocol's."""
    seeds = runs[runs.task == task].groupby("method").seed.nunique()
    return min(int(seeds.min()), protocol.screen.seeds) if len(seeds) else protocol.screen.seeds


def agreement_text(protocol: Protocol, study: Path = PUBLISHED.parent / "screen" / "screen.csv") -> str:
    """What the screening study measured for `protocol` (from results/screen/screen.csv where it exists)."""
    if not protocol.agreement:
        return ""
    if study.is_file():
        row = pd.read_csv(study)
        row = row[(row.steps == protocol.screen.steps) & (row.seeds == protocol.screen.seeds)
                  & (row.tasks == "+".join(protocol.screen.tasks))]
        if len(row):
            return protocol.agreement.format(verdicts=f"{row.verdicts_held_out.iloc[0]:.0%}",
                                             tau=f"{row.tau_held_out.iloc[0]:.2f}")
    return protocol.agreement.format(verdicts="(see the study)", tau="(see the study)")


def _number(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3g}"


def _cell(row) -> str:
    if pd.isna(row.interval):
        return _number(row.modes)
    if row.interval == stats.EQUAL:
        return f"{_number(row.modes)} (all equal)"
    return f"{_number(row.modes)} [{_number(row.low)}, {_number(row.high)}]"


def summary(comparison: Comparison) -> str:
    """The comparison as Markdown: per task its rows, then the IQM and the verdict, then what the screen keeps."""
    screen = comparison.protocol.screen
    lines = [f"# `{escape_markdown(comparison.method)}` compared: protocol {comparison.protocol.name} "
             f"({screen.label()})", ""]
    for task, table in comparison.tables.items():
        lines += [f"## {task}: modes captured of {MODE_TASKS[task]} (mean over its last 5 evaluations up to step "
                  f"{screen.steps})", "", "| method | seeds | modes [t interval] |", "| --- | --- | --- |"]
        for row in table.itertuples():
            label = f"**{escape_markdown(row.method)}** ←" if row.compared else escape_markdown(row.method)
            lines.append(f"| {label} | {row.seeds} | {_cell(row)} |")
        lines.append("")
    iqm = comparison.iqm
    lines += ["## Over tasks", "",
              f"IQM of `{escape_markdown(comparison.method)}`: {iqm.value:.3g}"
              + (f" [{iqm.low:.2g}, {iqm.high:.2g}]" if iqm.method not in (None, stats.EQUAL) else ""), "",
              f"**Verdict**: {escape_markdown(comparison.verdict)}", ""]
    agreement = agreement_text(comparison.protocol)
    if agreement:
        lines += [f"How far to trust a screen: {escape_markdown(agreement)}.", ""]
    lines += ["P(X > Y): the chance that a run of X scores above a run of Y on the same task (a tie counts a half), "
              "averaged over tasks, with its 95 % stratified bootstrap interval; better / below where the interval "
              "lies above / below 1/2. Per-task intervals: Student-t over seeds.", ""]
    return "\n".join(lines)


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def write(comparison: Comparison, out: Path) -> list[Path]:
    """compare.md and a self-contained compare.html (the leaderboard page's style) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    markdown = summary(comparison)
    sections = []
    for task, table in comparison.tables.items():
        body = [[(f"<b>{site_escape(row.method)}</b> ←" if row.compared else site_escape(row.method)),
                 str(row.seeds), site_escape(_cell(row))] for row in table.itertuples()]
        keys = [[row.method, row.seeds, row.modes] for row in table.itertuples()]
        sections.append(Section(f"{task}: modes captured of {MODE_TASKS[task]}",
                                sortable(f"compare-{task}", ["method", "seeds", "modes [t interval]"], body, keys,
                                         [False, True, True])))
    verdict_html = f"<p><b>Verdict</b>: {site_escape(comparison.verdict)}</p>\n"
    agreement = agreement_text(comparison.protocol)
    preamble = (f"<p>{code(f'`{comparison.method}`')} on protocol {site_escape(comparison.protocol.name)} "
                f"({site_escape(comparison.protocol.screen.label())}).</p>\n{verdict_html}"
                + (f"<p>{site_escape(agreement)}.</p>\n" if agreement else ""))
    paths = [out / "compare.md", out / "compare.html"]
    write_file_atomically(paths[0], lambda temporary: _write(temporary, markdown))
    html = page(f"{comparison.method} compared", preamble, sections)
    write_file_atomically(paths[1], lambda temporary: _write(temporary, html))
    return paths


def in_context(record, against: str | Path | None = None) -> str | None:
    """Where one finished run falls among the published runs of the same cell (method, settings, task, budget,
    steps; other seeds): their mean [t interval] and range of the task's first metric, and whether this run is
    inside that range; None where nothing comparable is published."""
    try:
        records = published_records(against)
    except StabenchError:
        return None
    folder = records / record.task / record.method  # publish's layout; reading 800 records takes seconds
    if not folder.is_dir():
        return None
    runs = load_runs(folder)
    same = runs[(runs.method == record.method) & (runs.task == record.task)
                & (runs.task_version == record.task_version) & (runs.budget == record.budget)
                & (runs.steps_planned == record.steps_planned) & (runs.status != "failed")]
    if record.recipe is None:
        same = same[same.recipe.isna()]
    else:
        same = same[same.recipe == record.recipe]
    for key, value in record.config.items():
        column = f"config.{key}"
        if column in same:
            same = same[same[column].astype(object).where(same[column].notna(), None).map(repr) == repr(value)]
    metric = next((m for m in record.metric_directions if m.endswith("_last5")), None) or next(
        iter(record.metric_directions), None)
    column = f"metrics.{metric}"
    if metric is None or same.empty or column not in same or metric not in record.metrics:
        return None
    values = same[column].dropna().to_numpy(float)
    if not len(values):
        return None
    estimate = stats.mean_interval(values)
    mine = record.metrics[metric]
    inside = mine is not None and values.min() <= mine <= values.max()
    interval = (f" [{_number(estimate.low)}, {_number(estimate.high)}]"
                if estimate.method == stats.STUDENT else "")
    published_seed = same[same.seed == record.seed]
    return (f"published {metric} of {record.method} on {record.task} ({len(values)} seeds): mean "
            f"{_number(estimate.value)}{interval}, seeds from {_number(values.min())} to {_number(values.max())}; "
            f"this run {_number(mine) if mine is not None else 'n/a'} is {'inside' if inside else 'outside'} that "
            "range" + (f" (published seed {record.seed}: {_number(published_seed[column].iloc[0])})"
                       if len(published_seed) else ""))

