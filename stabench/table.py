"""Run records as one tidy DataFrame, and leaderboards over it: per method, the mean of each metric
over seeds with a bootstrap confidence interval, within groups of runs that are comparable; and the
aggregate over the mode-coverage tasks (interquartile mean, probability of improvement over vanilla).
Every number is computed from the records alone (they store the metric directions)."""
from __future__ import annotations

import html
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stabench import stats
from stabench.errors import StabenchError, did_you_mean
from stabench.records import LIBRARIES, RUN_FILE, RunRecord, find_records

IDENTITY = ["run_id", "method", "recipe", "method_version", "task", "task_version", "seed", "budget", "steps_planned",
            "steps_overridden", "status", "device", "threads", "data_source"]
# Runs that differ in any of these measure different things: a leaderboard never pools them.
GROUP = ["task", "task_version", "budget", "steps_planned", "steps_overridden", "data_source"]
LONG = [*GROUP, "method", "seeds", "diverged_or_failed", "wall_seconds", "steps_per_second",
        "metric", "direction", "mean", "low", "high", "interval", "n", "best", "undefined"]
FORMATS = ("md", "csv", "html", "latex")
MIN_SEEDS = 5  # a cell with fewer seeds is marked ‡: its interval is a rough guide at best
# `m_last5`: the mean of metric `m` over a run's last 5 evaluations. Where a task declares both, its table
# shows the mean by default: one snapshot of an oscillating GAN says little.
SMOOTHED = re.compile(r"_last(\d+)$")
# What the notes under a table say about a metric it shows (named without its `_lastN`), from the
# definitions in stabench.metrics.
CEILINGS = {"high_quality": "Real data itself scores high_quality 0.989 (98.9 %: 1 − e^−4.5, the mass of a 2-D "
                            "Gaussian within 3σ of its centre)."}
# How a metric is set where it is undefined; a record says where with `m_defined` < 1 (see `leaderboard`).
CONVENTIONS = {"kl": "kl is ln K (K modes: all the mass on one mode) at an evaluation where no sample is high "
                     "quality"}


def _flatten(prefix: str, mapping) -> dict:
    flat = {}
    for key, value in (mapping or {}).items():
        if isinstance(value, dict):
            flat.update(_flatten(f"{prefix}{key}.", value))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _row(record: RunRecord) -> dict:
    # The scalar facts of `data` (which copy of a data set, how many digits) say what the metrics were measured on.
    source = ", ".join(f"{key}={value}" for key, value in record.data.items() if not isinstance(value, (dict, list)))
    row = {key: getattr(record, key) for key in IDENTITY if key != "data_source"} | {"data_source": source or None}
    for section in ("config", "metrics", "timing", "spectrum", "data", "versions"):
        row.update(_flatten(f"{section}.", getattr(record, section)))
    row.update(_flatten("direction.", record.metric_directions))
    return row | {"diverged_at_step": record.diverged_at_step, "error": record.error,
                  "started_at": record.started_at, "path": str(record.path)}


def load_runs(path) -> pd.DataFrame:
    """Every run record under `path`, one row per run: the identity columns, then `config.*`, `metrics.*`,
    `timing.*`, `spectrum.*`, `data.*`, `versions.*`, `direction.*` (the task's metric directions, as
    recorded), error and path.

    A record that cannot be read is skipped with a warning; a run found twice is kept once; a record of a task
    version newer than the registered task's is kept (in a group of its own) with a warning.
    """
    root = Path(path)
    if not root.is_dir():
        raise StabenchError(f"no results folder at `{root}`")
    records = list(find_records(root))
    _warn_newer_versions(records)
    rows = [_row(record) for record in records]
    if not rows:
        return pd.DataFrame(columns=IDENTITY)
    frame = pd.DataFrame(rows)
    repeated = frame[frame.duplicated("run_id", keep=False)]
    if len(repeated):  # the same cell in two merged folders would count its seed twice
        first = repeated[repeated.run_id == repeated.run_id.iloc[0]]
        warnings.warn(f"{repeated.run_id.nunique()} runs are recorded more than once (run {first.run_id.iloc[0]} "
                      f"at {', '.join(first.path)}); keeping the latest copy of each", stacklevel=2)
    frame = frame.sort_values("started_at", na_position="first").drop_duplicates("run_id", keep="last")
    return frame.sort_values(["task", "method", "seed"]).reset_index(drop=True)


def _warn_newer_versions(records: list[RunRecord]) -> None:
    """One warning naming each record made by a newer version of its task than the one registered here (a
    newer stabench or plugin: these numbers may not mean what this version's do). Unregistered tasks pass."""
    from stabench.tasks import TASKS

    known: dict[str, int | None] = {}
    for record in records:
        if record.task not in known:
            try:
                known[record.task] = TASKS.get(record.task).version
            except StabenchError:
                known[record.task] = None
        installed = known[record.task]
        if installed is not None and record.task_version > installed:
            warnings.warn(f"run record {Path(record.path or '') / RUN_FILE}: task `{record.task}` version "
                          f"{record.task_version} is newer than this stabench's ({installed}); tabulated on its own",
                          stacklevel=3)


def _plain(value):
    """Group keys as plain Python: numpy scalars unwrapped, a missing data source None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _unknown(problem: str, name: str, choices, what: str) -> StabenchError:
    return StabenchError(f"{problem}.{did_you_mean(name, choices)} {what}: {', '.join(sorted(choices)) or 'none'}.")


def _directions(runs: pd.DataFrame, task: str) -> dict[str, str]:
    """The task's metric directions as its records state them (the newest record's where they differ)."""
    columns = [c for c in runs if c.startswith("direction.")]
    of_task = runs.loc[runs.task == task]
    if "started_at" in of_task:  # a group drops the column where no record says when it started
        of_task = of_task.sort_values("started_at", na_position="first")
    stated = of_task[columns].to_numpy(object)
    given = np.vectorize(lambda value: isinstance(value, str), otypes=[bool])(stated) if stated.size else \
        np.zeros(stated.shape, bool)
    newest = len(stated) - 1 - np.argmax(given[::-1], axis=0)  # the last row stating each column
    return {column[len("direction."):]: stated[row, index]
            for index, (column, row) in enumerate(zip(columns, newest)) if given[:, index].any()}


def metric_names(runs: pd.DataFrame, task: str) -> list[str]:
    """The task's declared metrics, then any other metric its records hold."""
    of_task = runs[runs.task == task]
    columns = [c for c in of_task if c.startswith("metrics.")]
    recorded = [c[len("metrics."):] for c, some in of_task[columns].notna().any().items() if some]
    directions = _directions(runs, task)
    return [*directions, *(m for m in recorded if m not in directions)]


def default_metrics(runs: pd.DataFrame, task: str) -> list[str]:
    """The metrics a table of these runs of `task` shows unless asked: those the records declare a direction
    for (diagnostics have none), a snapshot `m` replaced in place by `m_lastN` (its mean over the last
    evaluations) where both are declared; every recorded metric when the records declare none."""
    declared = list(_directions(runs, task))
    if not declared:
        return metric_names(runs, task)
    smoothed = {SMOOTHED.sub("", m): m for m in declared if SMOOTHED.search(m) and SMOOTHED.sub("", m) in declared}
    return [smoothed.get(m, m) for m in declared if m not in smoothed.values()]


def _variants(runs: pd.DataFrame) -> pd.Series:
    """Each run's method and its recipe (`wgan-gp [gulrajani-toy]`), with the hyperparameters (and method
    version) that differ between the runs of that method and recipe appended: runs with different settings
    or code versions are different rows, never pooled."""
    recipes = runs["recipe"] if "recipe" in runs else pd.Series(None, index=runs.index, dtype=object)
    named = runs["method"] + recipes.map(lambda recipe: f" [{recipe}]" if isinstance(recipe, str) else "")
    labels = named.copy()
    for method, rows in runs.assign(method=named).groupby("method"):
        config = rows[[c for c in rows if c.startswith("config.")]].copy()
        config.insert(0, "config.method_version", rows["method_version"])
        # a key missing from older records is a setting of its own, not a match for any value
        config = config.astype(object).where(config.notna(), "unset").astype(str)
        varying = [c for c in config if config[c].nunique() > 1]
        for index in rows.index if varying else ():
            settings = ", ".join(f"{c[len('config.'):]}={config.at[index, c]}" for c in varying)
            labels[index] = f"{method} ({settings})"
    return labels


def label(group: dict) -> str:
    """`mog · version 1 · budget quick · 20000 steps` (`steps 5000` where `--steps` overrode the budget),
    then the data source if there is one."""
    steps = f"steps {group['steps_planned']}" if group.get("steps_overridden") else f"{group['steps_planned']} steps"
    parts = [group["task"], f"version {group['task_version']}", f"budget {group['budget']}", steps,
             group["data_source"]]
    return " · ".join(str(part) for part in parts if part)


def groups(runs: pd.DataFrame, task: str) -> dict[str, pd.DataFrame]:
    """The runs of `task` split into comparable groups, by label, each with a `variant` column (see `_variants`)."""
    if task not in set(runs.task):
        raise _unknown(f"no runs of task `{task}`", task, set(runs.task), "tasks with runs")
    split = {}
    # An interrupted run was stopped by a person, not by the method: it counts neither as a seed nor as a failure.
    of_task = runs[(runs.task == task) & (runs.status != "interrupted")]
    for key, rows in of_task.groupby(GROUP, dropna=False, sort=True):
        group = {name: _plain(value) for name, value in zip(GROUP, key)}
        split[label(group)] = rows.assign(variant=_variants(rows)).dropna(axis=1, how="all")
        split[label(group)].attrs["group"] = group
    return split


def _mean(rows: pd.DataFrame, column: str) -> float:
    return float(rows[column].mean()) if column in rows and rows[column].notna().any() else math.nan


def leaderboard(runs: pd.DataFrame, task: str, metrics: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """One table per group of comparable runs of `task` (see `GROUP`), keyed by its label.

    A row per method (variant); columns `method, seeds, diverged_or_failed`, then for each metric `m`
    (`metrics`, by default each group's `default_metrics`): `m` (mean over seeds), `m_low`, `m_high` (its
    Student-t interval, see `stats.mean_interval`), `m_interval` (how it was made: `t`, `all equal`, None
    below two values), `m_n` (seeds with a value; failed runs have none), `m_best` (see `best_or_tied`),
    `m_undefined` (seeds whose value is, at least in part, set by convention where `m` is undefined: their
    record's `m_defined`, the share of evaluations at which it was measured, is below 1), `m_values` (the
    seeds' values, by seed), then `wall_seconds, steps_per_second` (means over runs that did not fail) and
    `mixed_versions`. `attrs` holds `group`, `metrics` and `directions`.
    """
    split = groups(runs, task)
    available = metric_names(runs, task)
    for metric in metrics or ():
        if metric not in available:
            raise _unknown(f"unknown metric `{metric}` for task `{task}`", metric, available, "its metrics")
    tables = {}
    for name, group in split.items():
        shown = default_metrics(group, task) if metrics is None else list(metrics)
        directions = {m: d for m, d in _directions(runs, task).items() if m in shown}
        rows = []
        for variant, of_variant in group.groupby("variant"):
            ran = of_variant[of_variant.status != "failed"].sort_values("seed")  # a failed run has only its share
            row = {"method": variant, "seeds": len(of_variant),
                   "diverged_or_failed": float((of_variant.status != "completed").mean())}
            # every metric's values at once (NaN where a run or the records have none): a column read per
            # metric made a table of thousands of metrics take minutes
            measured = ran.reindex(columns=[f"metrics.{m}" for m in shown]).to_numpy(float)
            shares = ran.reindex(columns=[f"metrics.{m}_defined" for m in shown]).to_numpy(float)
            for index, metric in enumerate(shown):
                has = ~np.isnan(measured[:, index])
                values = measured[has, index]
                estimate = stats.mean_interval(values) if len(values) else stats.Estimate(math.nan, math.nan,
                                                                                           math.nan, None)
                undefined = int((shares[has, index] < 1).sum())  # a share not recorded is no mark
                row |= {metric: estimate.value, f"{metric}_low": estimate.low, f"{metric}_high": estimate.high,
                        f"{metric}_interval": estimate.method, f"{metric}_n": len(values), f"{metric}_best": False,
                        f"{metric}_undefined": undefined, f"{metric}_values": tuple(values.tolist())}
            rows.append(row | {"wall_seconds": _mean(ran, "timing.wall_seconds"),
                               "steps_per_second": _mean(ran, "timing.steps_per_second"),
                               "mixed_versions": mixed_versions(of_variant)})
        rows += _real_data_row(group, shown)
        table = pd.DataFrame(rows)
        best = {}
        for metric, direction in directions.items():
            best[f"{metric}_best"] = best_or_tied(table, metric, direction)
        if best:
            table[list(best)] = pd.DataFrame(best, index=table.index)
        table.attrs = {"group": group.attrs["group"], "metrics": shown, "directions": directions}
        tables[name] = table
    return tables


REAL_DATA = "real data"
BEST_RULE = ("Bold: the best mean and every method that Welch's two-sided t-test (5 %) cannot separate from it at "
             "these seeds; only means over every seed of a row enter (never a mean of the seeds that reached a "
             "threshold), values below float32's smallest normal number count as 0, and none is bold where every "
             "method ties.")


def best_or_tied(table: pd.DataFrame, metric: str, direction: str) -> np.ndarray:
    """Which rows are bold for `metric`: the best mean by `direction` among rows with a value for every seed (at
    least two), and every such row `stats.separated` does not tell from it; all False where each ties or
    fewer than two rows qualify."""
    methods, counts, seeds = (table[column].to_numpy() for column in ("method", f"{metric}_n", "seeds"))
    values = table[f"{metric}_values"].to_numpy()
    eligible = [i for i in range(len(table)) if methods[i] != REAL_DATA and counts[i] >= 2 and counts[i] == seeds[i]]
    bold = np.zeros(len(table), dtype=bool)
    if len(eligible) < 2:
        return bold
    floored = {i: np.where(np.abs(values[i]) < stats.FLOAT_FLOOR, 0.0, values[i]).mean() for i in eligible}
    best = (max if direction == "max" else min)(eligible, key=floored.get)
    tied = [i for i in eligible if not stats.separated(values[best], values[i])]
    if len(tied) < len(eligible):
        bold[tied] = True
    return bold


def mixed_versions(runs: pd.DataFrame) -> str:
    """The libraries (`records.LIBRARIES` and Python) whose recorded versions differ between `runs`, each with
    its versions (`torch 2.13.0 / 2.14.1`); empty where every run used the same ones."""
    mixed = []
    for name in ("python", *LIBRARIES):
        column = f"versions.{name}"
        found = sorted(runs[column].dropna().astype(str).unique()) if column in runs else []
        if len(found) > 1:
            mixed.append(f"{name} {' / '.join(found)}")
    return ", ".join(mixed)


def _real_data_row(group: pd.DataFrame, shown: list[str]) -> list[dict]:
    """The row of real samples through the task's own metric (the floor its records state in `data.real_data`),
    where they state one; never ranked. Real data does not move, so its mean over the last evaluations is its value."""
    columns = {metric: f"data.real_data.{SMOOTHED.sub('', metric)}" for metric in shown}
    columns = {metric: column for metric, column in columns.items() if column in group}
    if not columns:
        return []
    row = {"method": REAL_DATA, "seeds": 0, "diverged_or_failed": math.nan, "wall_seconds": math.nan,
           "steps_per_second": math.nan}
    for metric in shown:  # one measurement, no seeds: `_n` 0 keeps it out of the seed counts and their marks
        value = _mean(group, columns[metric]) if metric in columns else math.nan
        row |= {metric: value, f"{metric}_low": math.nan, f"{metric}_high": math.nan, f"{metric}_interval": None,
                f"{metric}_n": 0, f"{metric}_best": False, f"{metric}_undefined": 0, f"{metric}_values": ()}
    return [row]


def without_attrs(table: pd.DataFrame) -> pd.DataFrame:
    """`table` (not copied) without its `attrs`: pandas deep-copies them into every column or row it hands
    out, so reading a table of thousands of metrics, whose attrs name them all, took minutes."""
    plain = table.copy(deep=False)
    plain.attrs = {}
    return plain


def long_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Leaderboards as one long frame, a row per group, method and metric: columns `LONG`."""
    parts = []
    for table in tables.values():
        attrs, table = table.attrs, without_attrs(table)
        base = table[["method", "seeds", "diverged_or_failed", "wall_seconds", "steps_per_second"]]
        for m in attrs["metrics"]:
            parts.append(base.assign(**attrs["group"], metric=m, direction=attrs["directions"].get(m),
                                     mean=table[m], low=table[f"{m}_low"], high=table[f"{m}_high"],
                                     interval=table[f"{m}_interval"], n=table[f"{m}_n"], best=table[f"{m}_best"],
                                     undefined=table[f"{m}_undefined"]))
    return pd.concat(parts, ignore_index=True)[LONG] if parts else pd.DataFrame(columns=LONG)


def _number(value: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.0f}" if 100 <= abs(value) < 1e6 else f"{value:.3g}"


_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*[]|~"})
_LATEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#",
          "$": r"\$", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}"}


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """`text` with each control character (a line break, a carriage return, ESC, BEL, NUL) shown as �: no
    reader's table, heading, spreadsheet or terminal acts on one. Names never hold one (`names.NAME`); other
    text from a record may."""
    return _CONTROL.sub("\ufffd", str(text))


def escape_markdown(text: str) -> str:
    """Text for a Markdown table cell: HTML is shown, not run, and no Markdown syntax that matters in a
    cell (links and images, code, emphasis with *, strike-through, the cell separator) takes effect, nor a
    line break (see `visible`); underscores and parentheses stay readable (GitHub's Markdown ignores them
    inside words)."""
    return html.escape(visible(text), quote=False).translate(_MARKDOWN)


def escape_latex(text: str) -> str:
    """Text for LaTeX: every special character printed, so no command (\\input, \\write18) can run."""
    return "".join(_LATEX.get(character, character) for character in visible(text))


def escape_csv(value):
    """A CSV cell a spreadsheet shows as text: control characters shown as � (a lone carriage return would
    start a row whose first cell is a formula; see `visible`), and a string starting with =, +, -, @ gets a
    leading apostrophe; numbers pass as they are."""
    if not isinstance(value, str):
        return value
    value = visible(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def csv_text(frame: pd.DataFrame) -> str:
    """`frame` as CSV with every text cell escaped for spreadsheets (see `escape_csv`)."""
    return frame.map(escape_csv).to_csv(index=False)


_ESCAPE = {"md": escape_markdown, "html": lambda s: html.escape(visible(s)), "latex": escape_latex}
_BOLD = {"md": "**{}**", "html": "<b>{}</b>", "latex": "\\textbf{{{}}}"}
_ARROW = {"md": {"max": " ↑", "min": " ↓"}, "html": {"max": " ↑", "min": " ↓"},
          "latex": {"max": " $\\uparrow$", "min": " $\\downarrow$"}}
# Marks on a cell, each explained under its table: a value set by convention where the metric is undefined,
# fewer than MIN_SEEDS seeds, a percentile interval where BCa is undefined.
_MARKS = {"md": ("†", "‡", "§"), "html": ("†", "‡", "§"), "latex": ("$^\\dagger$", "$^\\ddagger$", "$^\\S$")}
CONVENTION, FEW, FALLBACK = range(3)
NOTES = {FEW: f"Fewer than {MIN_SEEDS} seeds: the seeds' own values follow in parentheses, by seed; the interval "
              "keeps less than its nominal level there (the coverage above).",
         FALLBACK: "Percentile interval: BCa is undefined for these values (the resamples never differ)."}
EQUAL_NOTE = "(all equal): every {} gave exactly this value, so there is no interval to estimate."


def _estimate(value, low, high, method, bound=None) -> str:
    """`value [low, high]`, the interval where there is one (`method` None: fewer than two values); `bound`
    formats the bounds (as the value by default)."""
    bound = bound or _number
    if pd.isna(method):
        return _number(value)
    if method == stats.EQUAL:
        return f"{_number(value)} (all equal)"
    if method == stats.SEPARATED:
        return f"{_number(value)} (every run {'above' if value == 1 else 'below'})"
    return f"{_number(value)} [{bound(low)}, {bound(high)}]"


def _resampled(value: float) -> str:
    """A bootstrap bound to 2 significant digits: the third moves with the resampling seed."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.2g}"


def _marks(fmt: str, convention: bool, few: bool, method) -> str:
    """The marks a cell gets, in the order of its notes: †, ‡, §."""
    shown = (convention, few, method == stats.PERCENTILE)
    return "".join(mark for mark, on in zip(_MARKS[fmt], shown) if on)


def _marked_notes(fmt: str, few: bool, fallback: bool) -> list[str]:
    """The notes on the marks ‡ and § where some cell has them."""
    return [_MARKS[fmt][mark] + " " + _ESCAPE[fmt](NOTES[mark]) for mark, on in ((FEW, few), (FALLBACK, fallback))
            if on]


def _made_by(table: pd.DataFrame, metrics, *methods: str) -> bool:
    """Some cell of `metrics` in `table` has its interval made by one of `methods` (`stats.BCA`, ...)."""
    return bool(table[[f"{m}_interval" for m in metrics]].isin(methods).to_numpy().any())


def table_notes(table: pd.DataFrame, fmt: str) -> str:
    """The notes under a leaderboard in `fmt`: what its `_lastN` columns and intervals are, what each mark on
    its cells means (†, ‡, §), and the ceiling of a metric that real data scores below its best."""
    shown, escape, table = table.attrs["metrics"], _ESCAPE[fmt], without_attrs(table)
    windows = dict.fromkeys(found.group(1) for found in map(SMOOTHED.search, shown) if found)
    notes = [escape(f"_last{n}: a metric's mean over a run's last {n} evaluations.") for n in windows]
    counts = table[[f"{m}_n" for m in shown]].to_numpy().ravel()
    if _made_by(table, shown, stats.STUDENT):
        notes.append(escape(stats.coverage_note(counts[counts >= 2])))
    marked = [m for m in shown if table[f"{m}_undefined"].any()]
    if marked:
        how = dict.fromkeys(CONVENTIONS.get(SMOOTHED.sub("", m), f"see {m}_defined in the records") for m in marked)
        notes.append(_MARKS[fmt][CONVENTION] + escape(" Some seeds' value is set by convention where the metric is "
                                                      f"undefined: {'; '.join(how)}."))
    few = ((counts > 0) & (counts < MIN_SEEDS)).any()
    notes += _marked_notes(fmt, few, _made_by(table, shown, stats.PERCENTILE))
    if _made_by(table, shown, stats.EQUAL):
        notes.append(escape(EQUAL_NOTE.format("seed")))
    if any(table[f"{m}_best"].any() for m in shown):
        notes.append(escape(BEST_RULE))
    notes += [escape(CEILINGS[m]) for m in dict.fromkeys(SMOOTHED.sub("", m) for m in shown) if m in CEILINGS]
    mixed = [f"{method} ({versions})" for method, versions in zip(table["method"], table.get("mixed_versions", ()))
             if isinstance(versions, str) and versions]
    if mixed:
        notes.append(escape("Library versions differ between the seeds of: " + "; ".join(mixed) + "."))
    if (table["method"] == REAL_DATA).any():
        notes.append(escape(f"{REAL_DATA}: real samples through the same metric (the floor a generator is measured "
                            "against), as the records state it; not ranked."))
    return " ".join(notes)


def table_cells(table: pd.DataFrame, fmt: str) -> tuple[list[str], list[list[str]]]:
    """A leaderboard's header and body cells, escaped for `fmt` (md, html or latex): a metric is
    `mean [low, high]`, `(n/seeds)` when some runs have no value, marked † (a seed's value set by convention),
    ‡ (fewer than `MIN_SEEDS` seeds), § (a percentile interval), the best in bold; ↑/↓ its direction."""
    escape, directions, metrics, table = _ESCAPE[fmt], table.attrs["directions"], table.attrs["metrics"], \
        without_attrs(table)
    header = ["method", "seeds", "diverged or failed",
              *(escape(m) + _ARROW[fmt].get(directions.get(m), "") for m in metrics),
              "wall s", "steps/s"]
    body = []
    for _, row in table.iterrows():
        if row["method"] == REAL_DATA:
            cells = [escape(REAL_DATA), "–", "–"]
        else:
            cells = [escape(row["method"]), str(row["seeds"]),
                     f"{row['diverged_or_failed']:.0%}".replace("%", escape("%"))]
        for m in metrics:
            n = row[f"{m}_n"]
            text = _estimate(row[m], row[f"{m}_low"], row[f"{m}_high"], row[f"{m}_interval"])
            text += f" ({n}/{row['seeds']})" if 0 < n < row["seeds"] else ""
            if 0 < n < MIN_SEEDS and row[f"{m}_interval"] == stats.STUDENT:
                text += " (" + ", ".join(_number(value) for value in row[f"{m}_values"]) + ")"
            text += _marks(fmt, row[f"{m}_undefined"] > 0, 0 < n < MIN_SEEDS, row[f"{m}_interval"])
            cells.append(_BOLD[fmt].format(text) if row[f"{m}_best"] else text)
        body.append(cells + [_number(row["wall_seconds"]), _number(row["steps_per_second"])])
    return header, body


def _layout(header: list[str], body: list[list[str]], notes: str, fmt: str) -> str:
    if fmt == "md":
        lines = ["| " + " | ".join(cells) + " |" for cells in [header, ["---"] * len(header), *body]]
        return "\n".join([*lines, *(["", notes] if notes else [])])
    if fmt == "html":
        head = "".join(f"<th>{c}</th>" for c in header)
        rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>\n" for cells in body)
        below = f"\n<p>{notes}</p>" if notes else ""
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>{below}"
    lines = [" & ".join(cells) + " \\\\" for cells in [header, *body]]
    return "\n".join([f"\\begin{{tabular}}{{l{'r' * (len(header) - 1)}}}", "\\hline", lines[0], "\\hline",
                      *lines[1:], "\\hline", "\\end{tabular}", *(["", notes] if notes else [])])


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise _unknown(f"unknown format `{fmt}`", fmt, FORMATS, "formats")


def format_table(table: pd.DataFrame, fmt: str = "md") -> str:
    """One leaderboard as md, html or latex (cells as `table_cells` makes them) with its notes
    (`table_notes`) below, or as csv (numbers as they are)."""
    if fmt == "csv":
        return csv_text(table)
    _check_format(fmt)
    return _layout(*table_cells(table, fmt), table_notes(table, fmt), fmt)


def leaderboards(runs: pd.DataFrame, task: str | None = None,
                 metrics: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """`leaderboard` for `task`, or for every task with runs (each keeping those of `metrics` it has)."""
    if runs.empty:
        raise StabenchError("no run records found; train some with `stabench run` or `stabench sweep`")
    if task is not None:
        return leaderboard(runs, task, metrics)
    tasks = sorted(set(runs.task))
    if metrics is not None:
        known = {m for t in tasks for m in metric_names(runs, t)}
        for metric in metrics:
            if metric not in known:
                raise _unknown(f"unknown metric `{metric}`", metric, known, "metrics recorded")
    tables = {}
    for name in tasks:
        own = None if metrics is None else [m for m in metrics if m in metric_names(runs, name)]
        if own != []:
            tables |= leaderboard(runs, name, own)
    return tables


_HEADING = {"md": "## {}", "html": "<h2>{}</h2>", "latex": "\\paragraph{{{}}}"}


def render(runs: pd.DataFrame, task: str | None = None, metrics: list[str] | None = None, fmt: str = "md") -> str:
    """What `stabench table` prints: each group's leaderboard under its label, or with `csv` one long table."""
    _check_format(fmt)
    tables = leaderboards(runs, task, metrics)
    if fmt == "csv":
        return csv_text(long_table(tables))
    return "\n\n".join(_HEADING[fmt].format(_ESCAPE[fmt](name)) + "\n\n" + format_table(table, fmt)
                       for name, table in tables.items()) + "\n"


# --- the aggregate over tasks (Agarwal et al. 2021) ------------------------------------------------------

# A run's aggregate score is the share of its task's K modes it captured: 1 is every mode on every task, so
# scores of different tasks are comparable. Only these mode-coverage tasks enter; the metrics of dirac and lq
# are distances to an equilibrium, with no common scale to put beside a share of modes. A record's
# `config.n_modes` gives K where it has one.
MODE_TASKS = {"mog": 8, "grid25": 25, "stacked-mnist": 1000}
COVERAGE = ("modes_captured_last5", "modes_captured")  # the first a group records is the score
BASELINE = "vanilla"
AGGREGATE = ["budget", "method", "tasks", "runs", "iqm", "iqm_low", "iqm_high", "iqm_interval", "improvement",
             "improvement_low", "improvement_high", "improvement_interval", "few"]
SCORES = ["budget", "task", "group", "method", "seed", "score"]


@dataclass
class Aggregate:
    """One budget's aggregate over the mode-coverage tasks. `table` (columns `AGGREGATE`): a row per method run
    on every task; `groups`: each task's group label, where its scores come from; `scores`: each method's
    scores on each task (in the order of `groups`), by seed; `excluded`: methods missing on some task;
    `baseline`: the method improvements are measured over (None where it was not run on every task)."""

    name: str
    budget: str
    table: pd.DataFrame
    groups: dict[str, str]
    scores: dict[str, list[np.ndarray]]
    excluded: list[str]
    baseline: str | None


def _aggregate_group(split: dict[str, pd.DataFrame], budget: str) -> str | None:
    """The label of a task's group that speaks for it at `budget`: its budget's own step count (no `--steps`),
    the newest task version, then the most runs."""
    candidates = sorted((-group.attrs["group"]["task_version"], -len(group), name) for name, group in split.items()
                        if group.attrs["group"]["budget"] == budget and not group.attrs["group"]["steps_overridden"])
    return candidates[0][2] if candidates else None


def coverage_scores(runs: pd.DataFrame) -> pd.DataFrame:
    """Every run's aggregate score (columns `SCORES`): its modes captured (the mean over its last 5 evaluations
    where recorded) over the task's K modes, in one group per mode-coverage task and budget (see
    `_aggregate_group`). Failed runs have no score; diverged runs score as they stopped. A recipe that every run
    of a group shares (metz-quarter on stacked-mnist) is the task's protocol, not a method's choice, so it
    leaves the method's label and rows match across tasks; elsewhere `wgan-gp [gulrajani-toy]` stays a row of
    its own."""
    parts = []
    for task in sorted(set(runs.task) & set(MODE_TASKS)):
        split = groups(runs, task)
        for budget in sorted({group.attrs["group"]["budget"] for group in split.values()}):
            name = _aggregate_group(split, budget)
            if name is None:
                continue
            group = split[name]
            metric = next((m for m in COVERAGE if f"metrics.{m}" in group), None)
            if metric is None:
                continue
            scored = group[(group.status != "failed") & group[f"metrics.{metric}"].notna()]
            modes = (scored["config.n_modes"].fillna(MODE_TASKS[task]) if "config.n_modes" in scored
                     else MODE_TASKS[task])
            recipes = group["recipe"].dropna().unique() if "recipe" in group else []
            method = scored.variant
            if len(recipes) == 1 and group["recipe"].notna().all():
                method = method.str.replace(f" [{recipes[0]}]", "", n=1, regex=False)
            parts.append(pd.DataFrame({"budget": budget, "task": task, "group": name, "method": method,
                                       "seed": scored.seed, "score": scored[f"metrics.{metric}"] / modes}))
    return pd.concat(parts, ignore_index=True)[SCORES] if parts else pd.DataFrame(columns=SCORES)


def aggregates(runs: pd.DataFrame) -> dict[str, Aggregate]:
    """Per budget, the aggregate over the mode-coverage tasks of `coverage_scores`, keyed by its name: each
    method's interquartile mean and its probability of improvement over `BASELINE` (`stats.iqm`,
    `stats.improvement`), for the methods run on every task there; none where no such task has runs."""
    scores = coverage_scores(runs)
    found = {}
    for budget, of_budget in scores.groupby("budget", sort=True):
        tasks = {task: rows.group.iloc[0] for task, rows in of_budget.groupby("task", sort=True)}
        by_method = {method: [rows[rows.task == task].sort_values("seed").score.to_numpy(float) for task in tasks]
                     for method, rows in of_budget.groupby("method", sort=True)}
        kept = {method: per_task for method, per_task in by_method.items() if all(len(s) for s in per_task)}
        base = BASELINE if BASELINE in kept else None
        rows = []
        for method, per_task in kept.items():
            level = stats.iqm(per_task)
            better = (stats.improvement(per_task, kept[base]) if base not in (None, method)
                      else stats.Estimate(math.nan, math.nan, math.nan, None))
            rows.append({"budget": budget, "method": method, "tasks": len(per_task),
                         "runs": sum(len(s) for s in per_task), "iqm": level.value, "iqm_low": level.low,
                         "iqm_high": level.high, "iqm_interval": level.method, "improvement": better.value,
                         "improvement_low": better.low, "improvement_high": better.high,
                         "improvement_interval": better.method,
                         "few": min(len(s) for s in per_task) < MIN_SEEDS})
        name = f"mode coverage · budget {budget}"
        found[name] = Aggregate(name, budget, pd.DataFrame(rows, columns=AGGREGATE), tasks,
                                kept, sorted(set(by_method) - set(kept)), base)
    return found


def aggregate_notes(aggregate: Aggregate, fmt: str) -> str:
    """What an aggregate table shows and how, escaped for `fmt`."""
    escape, table = _ESCAPE[fmt], aggregate.table
    modes = ", ".join(f"{task} {MODE_TASKS[task]}" for task in aggregate.groups)
    notes = [f"Score of a run: the modes it captured (the mean over its last 5 evaluations where recorded) over "
             f"its task's number of modes ({modes}), so 1 is every mode. Only the mode-coverage tasks enter: the "
             "metrics of dirac and lq are distances to an equilibrium, with no common scale. Groups: "
             + "; ".join(aggregate.groups.values()) + ".",
             "IQM: the interquartile mean of all runs' scores, each task weighing the same (Agarwal et al. 2021)."]
    if aggregate.baseline:
        notes.append(f"P(method > {aggregate.baseline}): the chance that a run of the method scores above a run of "
                     f"{aggregate.baseline} on the same task (a tie counts a half), averaged over tasks; 0.5 is no "
                     "difference.")
    else:
        notes.append(f"No probability of improvement: {BASELINE} was not run on every task.")
    notes.append("[low, high]: the 95% stratified bootstrap interval (each task's runs resampled on their own; "
                 f"scipy.stats.bootstrap, BCa, {stats.RESAMPLES:,} resamples, seeded), its bounds to 2 significant "
                 "digits (the third moves with the resampling seed). Failed runs have no score; "
                 "diverged runs score as they stopped.")
    if aggregate.baseline and (table.improvement_interval == stats.SEPARATED).any():
        counts = sorted({(len(x), len(y)) for method in table.method[table.improvement_interval == stats.SEPARATED]
                         for x, y in zip(aggregate.scores[method], aggregate.scores[aggregate.baseline])})
        chances = ", ".join(f"{stats.chance_of_separation(x, y):.2g} at {x} + {y} runs" for x, y in counts)
        notes.append(f"1 (every run above), 0 (every run below): on every task every run of the method scored above "
                     f"(below) every run of {aggregate.baseline}; every bootstrap resample says the same, so there is "
                     "no interval to give. Two methods of one distribution do that on a task by chance with "
                     f"probability 1/C(n + m, n): {chances}.")
    if aggregate.excluded:
        notes.append("Not run on every task, so left out: " + ", ".join(aggregate.excluded) + ".")
    text = " ".join(escape(note) for note in notes)
    shown = ("iqm", "improvement")
    return " ".join([text, *_marked_notes(fmt, table.few.any(), _made_by(table, shown, stats.PERCENTILE)),
                     *([escape(EQUAL_NOTE.format("run"))] if _made_by(table, shown, stats.EQUAL) else [])])


def aggregate_cells(aggregate: Aggregate, fmt: str) -> tuple[list[str], list[list[str]]]:
    """An aggregate table's header and body cells, escaped for `fmt` (md, html or latex), marked as
    `table_cells` marks them."""
    escape, up = _ESCAPE[fmt], _ARROW[fmt]["max"]
    header = ["method", "tasks", "runs", "IQM" + up]
    if aggregate.baseline:
        header.append(escape(f"P(method > {aggregate.baseline})") + up)
    body = []
    for _, row in aggregate.table.iterrows():
        runs = ", ".join(str(len(s)) for s in aggregate.scores[row["method"]])
        cells = [escape(row["method"]), str(row["tasks"]), runs,
                 _estimate(row.iqm, row.iqm_low, row.iqm_high, row.iqm_interval, _resampled)
                 + _marks(fmt, False, row.few, row.iqm_interval)]
        if aggregate.baseline:
            cells.append("–" if row["method"] == aggregate.baseline else _estimate(
                row.improvement, row.improvement_low, row.improvement_high, row.improvement_interval, _resampled)
                + _marks(fmt, False, row.few, row.improvement_interval))
        body.append(cells)
    return header, body


def format_aggregate(aggregate: Aggregate, fmt: str = "md") -> str:
    """One aggregate as md, html or latex with its notes below, or as csv (numbers as they are)."""
    if fmt == "csv":
        return csv_text(aggregate.table)
    _check_format(fmt)
    return _layout(*aggregate_cells(aggregate, fmt), aggregate_notes(aggregate, fmt), fmt)


def aggregate_long(found: dict[str, Aggregate]) -> pd.DataFrame:
    """Aggregates as one frame, a row per budget and method: columns `AGGREGATE`."""
    return pd.concat([aggregate.table for aggregate in found.values()], ignore_index=True)


def render_aggregates(runs: pd.DataFrame, fmt: str = "md") -> str:
    """What `stabench table --aggregate` prints: each budget's aggregate under its name, or with `csv` one
    table (a row per budget and method)."""
    _check_format(fmt)
    found = aggregates(runs)
    if not found:
        raise StabenchError(f"no runs of a mode-coverage task ({', '.join(MODE_TASKS)}) to aggregate")
    if fmt == "csv":
        return csv_text(aggregate_long(found))
    return "\n\n".join(_HEADING[fmt].format(_ESCAPE[fmt](name)) + "\n\n" + format_aggregate(aggregate, fmt)
                       for name, aggregate in found.items()) + "\n"
