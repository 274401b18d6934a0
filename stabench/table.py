"""Run records as one tidy DataFrame, and leaderboards over it: per method, the mean of each metric
over seeds with a bootstrap confidence interval, within groups of runs that are comparable."""
from __future__ import annotations

import html
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from stabench.errors import StabenchError, did_you_mean
from stabench.records import RunRecord, find_records

IDENTITY = ["run_id", "method", "recipe", "method_version", "task", "task_version", "seed", "budget", "steps_planned",
            "steps_overridden", "status", "device", "threads", "data_source"]
# Runs that differ in any of these measure different things: a leaderboard never pools them.
GROUP = ["task", "task_version", "budget", "steps_planned", "steps_overridden", "data_source"]
LONG = [*GROUP, "method", "seeds", "diverged_or_failed", "wall_seconds", "steps_per_second",
        "metric", "direction", "mean", "low", "high", "n", "best", "undefined"]
FORMATS = ("md", "csv", "html", "latex")
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

    A record that cannot be read is skipped with a warning; a run found twice is kept once.
    """
    root = Path(path)
    if not root.is_dir():
        raise StabenchError(f"no results folder at `{root}`")
    rows = [_row(record) for record in find_records(root)]
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


def bootstrap_ci(values, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (one per seed, no NaN)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    draws = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    means = values[draws].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def _plain(value):
    """Group keys as plain Python: numpy scalars unwrapped, a missing data source None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _unknown(problem: str, name: str, choices, what: str) -> StabenchError:
    return StabenchError(f"{problem}.{did_you_mean(name, choices)} {what}: {', '.join(sorted(choices)) or 'none'}.")


def _directions(runs: pd.DataFrame, task: str) -> dict[str, str]:
    """The task's metric directions as its records state them (the newest record's where they differ)."""
    of_task = runs[runs.task == task].sort_values("started_at", na_position="first")
    columns = [c for c in of_task if c.startswith("direction.")]
    directions = {}
    for column in columns:
        stated = of_task[column].dropna()
        if len(stated):
            directions[column[len("direction."):]] = stated.iloc[-1]
    return directions


def metric_names(runs: pd.DataFrame, task: str) -> list[str]:
    """The task's declared metrics, then any other metric its records hold."""
    of_task = runs[runs.task == task]
    recorded = [c[len("metrics."):] for c in of_task if c.startswith("metrics.") and of_task[c].notna().any()]
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
    (`metrics`, by default each group's `default_metrics`): `m` (mean over seeds), `m_low`, `m_high` (95%
    bootstrap CI), `m_n` (seeds with a value; failed runs have none), `m_best` (best mean by the task's
    direction), `m_undefined` (seeds whose value is, at least in part, set by convention where `m` is
    undefined: their record's `m_defined`, the share of evaluations at which it was measured, is below 1),
    then `wall_seconds, steps_per_second` (means over runs that did not fail). `attrs` holds `group`,
    `metrics` and `directions`.
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
            ran = of_variant[of_variant.status != "failed"]  # a failed run has no numbers, only its share
            row = {"method": variant, "seeds": len(of_variant),
                   "diverged_or_failed": float((of_variant.status != "completed").mean())}
            for metric in shown:
                column, defined = f"metrics.{metric}", f"metrics.{metric}_defined"
                values = ran[column].dropna().to_numpy(float) if column in ran else np.array([])
                low, high = bootstrap_ci(values) if len(values) else (math.nan, math.nan)
                mean = float(values.mean()) if len(values) else math.nan
                undefined = 0
                if {column, defined} <= set(ran):
                    undefined = int((ran.loc[ran[column].notna(), defined] < 1).sum())
                row |= {metric: mean, f"{metric}_low": low, f"{metric}_high": high, f"{metric}_n": len(values),
                        f"{metric}_best": False, f"{metric}_undefined": undefined}
            rows.append(row | {"wall_seconds": _mean(ran, "timing.wall_seconds"),
                               "steps_per_second": _mean(ran, "timing.steps_per_second")})
        table = pd.DataFrame(rows)
        for metric, direction in directions.items():
            means = table[metric]
            if means.nunique() > 1:  # neither one method alone nor a tie of all is "best"
                table[f"{metric}_best"] = means == (means.max() if direction == "max" else means.min())
        table.attrs = {"group": group.attrs["group"], "metrics": shown, "directions": directions}
        tables[name] = table
    return tables


def long_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Leaderboards as one long frame, a row per group, method and metric: columns `LONG`."""
    parts = []
    for table in tables.values():
        base = table[["method", "seeds", "diverged_or_failed", "wall_seconds", "steps_per_second"]]
        for m in table.attrs["metrics"]:
            parts.append(base.assign(**table.attrs["group"], metric=m, direction=table.attrs["directions"].get(m),
                                     mean=table[m], low=table[f"{m}_low"], high=table[f"{m}_high"],
                                     n=table[f"{m}_n"], best=table[f"{m}_best"],
                                     undefined=table[f"{m}_undefined"]))
    return pd.concat(parts, ignore_index=True)[LONG] if parts else pd.DataFrame(columns=LONG)


def _number(value: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.0f}" if 100 <= abs(value) < 1e6 else f"{value:.3g}"


_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*[]|~"})
_LATEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#",
          "$": r"\$", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}"}


def escape_markdown(text: str) -> str:
    """Text for a Markdown table cell: HTML is shown, not run, and no Markdown syntax that matters in a
    cell (links and images, code, emphasis with *, strike-through, the cell separator) takes effect;
    underscores and parentheses stay readable (GitHub's Markdown ignores them inside words)."""
    return html.escape(str(text), quote=False).translate(_MARKDOWN)


def escape_latex(text: str) -> str:
    """Text for LaTeX: every special character printed, so no command (\\input, \\write18) can run."""
    return "".join(_LATEX.get(character, character) for character in str(text))


def escape_csv(value):
    """A CSV cell a spreadsheet shows as text: a string starting with =, +, -, @ or a tab or carriage return
    would be taken for a formula, so it gets a leading apostrophe; numbers pass as they are."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_text(frame: pd.DataFrame) -> str:
    """`frame` as CSV with every text cell escaped for spreadsheets (see `escape_csv`)."""
    return frame.map(escape_csv).to_csv(index=False)


_ESCAPE = {"md": escape_markdown, "html": lambda s: html.escape(str(s)), "latex": escape_latex}
_BOLD = {"md": "**{}**", "html": "<b>{}</b>", "latex": "\\textbf{{{}}}"}
_ARROW = {"md": {"max": " ↑", "min": " ↓"}, "html": {"max": " ↑", "min": " ↓"},
          "latex": {"max": " $\\uparrow$", "min": " $\\downarrow$"}}
_MARK = {"md": "†", "html": "†", "latex": "$^\\dagger$"}


def table_notes(table: pd.DataFrame, fmt: str) -> str:
    """The notes under a leaderboard in `fmt`: what its `_lastN` columns are, how a value marked † is set
    (a metric undefined at some evaluation), and the ceiling of a metric that real data scores below its best."""
    shown, escape = table.attrs["metrics"], _ESCAPE[fmt]
    windows = dict.fromkeys(found.group(1) for found in map(SMOOTHED.search, shown) if found)
    notes = [escape(f"_last{n}: a metric's mean over a run's last {n} evaluations.") for n in windows]
    marked = [m for m in shown if table[f"{m}_undefined"].any()]
    if marked:
        how = dict.fromkeys(CONVENTIONS.get(SMOOTHED.sub("", m), f"see {m}_defined in the records") for m in marked)
        notes.append(_MARK[fmt] + escape(" Some seeds' value is set by convention where the metric is undefined: "
                                         f"{'; '.join(how)}."))
    notes += [escape(CEILINGS[m]) for m in dict.fromkeys(SMOOTHED.sub("", m) for m in shown) if m in CEILINGS]
    return " ".join(notes)


def format_table(table: pd.DataFrame, fmt: str = "md") -> str:
    """One leaderboard as md, html or latex (a metric: `mean [low, high]`, the interval from two seeds on,
    `(n/seeds)` when some runs have no value, † when some seed's value is set by convention, best in bold, ↑/↓
    its direction) with its notes (`table_notes`) below, or as csv (numbers as they are)."""
    if fmt == "csv":
        return csv_text(table)
    if fmt not in FORMATS:
        raise _unknown(f"unknown format `{fmt}`", fmt, FORMATS, "formats")
    escape, directions = _ESCAPE[fmt], table.attrs["directions"]
    header = ["method", "seeds", "diverged or failed",
              *(escape(m) + _ARROW[fmt].get(directions.get(m), "") for m in table.attrs["metrics"]),
              "wall s", "steps/s"]
    body = []
    for _, row in table.iterrows():
        cells = [escape(row["method"]), str(row["seeds"]), f"{row['diverged_or_failed']:.0%}".replace("%", escape("%"))]
        for m in table.attrs["metrics"]:
            n = row[f"{m}_n"]
            text = _number(row[m]) + (f" [{_number(row[f'{m}_low'])}, {_number(row[f'{m}_high'])}]" if n > 1 else "")
            text += f" ({n}/{row['seeds']})" if 0 < n < row["seeds"] else ""
            text += _MARK[fmt] if row[f"{m}_undefined"] else ""
            cells.append(_BOLD[fmt].format(text) if row[f"{m}_best"] else text)
        body.append(cells + [_number(row["wall_seconds"]), _number(row["steps_per_second"])])
    notes = table_notes(table, fmt)
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


def render(runs: pd.DataFrame, task: str | None = None, metrics: list[str] | None = None, fmt: str = "md") -> str:
    """What `stabench table` prints: each group's leaderboard under its label, or with `csv` one long table."""
    if fmt not in FORMATS:
        raise _unknown(f"unknown format `{fmt}`", fmt, FORMATS, "formats")
    tables = leaderboards(runs, task, metrics)
    if fmt == "csv":
        return csv_text(long_table(tables))
    heading = {"md": "## {}", "html": "<h2>{}</h2>", "latex": "\\paragraph{{{}}}"}[fmt]
    return "\n\n".join(heading.format(_ESCAPE[fmt](name)) + "\n\n" + format_table(table, fmt)
                       for name, table in tables.items()) + "\n"
