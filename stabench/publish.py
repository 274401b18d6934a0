"""`stabench publish`: the leaderboard as Markdown, CSV and a web page, with its figures and the records
behind every number."""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import platform
import re
import shlex
import shutil
import signal
import textwrap
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import numpy as np
import pandas as pd

from stabench import stats
from stabench.errors import StabenchError
from stabench.plots import interval_plot, path_angle_axes, profile_plot, subplots
from stabench.records import (CURVE_FILE, LIBRARIES, PATH_ANGLE_FILE, RUN_FILE, SAMPLES_FILE, SPECTRUM_FILE,
                              TRACK_FILE, _alive, read_rows, write_atomically, write_file_atomically)
from stabench.site import Link, aggregate_section, code, leaderboard_section, page
from stabench.site import escape as site_escape
from stabench.table import (Aggregate, aggregates, csv_text, escape_markdown, format_aggregate, format_table, groups,
                            aggregate_long, leaderboards, load_runs, long_table)

NOTE = ("Each metric: the mean over seeds [its Student-t interval, with the coverage measured for it at the "
        "table's seed counts under each table]; ↑ larger is better, ↓ smaller is better; in bold the best method and "
        "those a test cannot separate from it. `diverged or failed`: the share of runs that went non-finite or "
        "raised (runs interrupted by a person are left out). Failed runs have no metrics; diverged runs are evaluated "
        "as they stopped. (k/n): only k of n runs have a value. `wall s`: seconds of training, evaluation excluded. "
        "A mark on a cell (†, ‡, §) is explained under its table. Runs of different task versions, budgets, step "
        "counts or data are never pooled: each such group has its own table.")


def _write_text(path: Path, text: str) -> None:
    write_file_atomically(path, lambda temporary: temporary.write_text(text))


def literal(text: str) -> str:
    """Text that matplotlib draws as it is: a `$` from a record never starts mathtext."""
    return str(text).replace("$", r"\$")


def title_lines(text: str, width_inches: float) -> str:
    """`literal(text)` wrapped to the width of a figure (about 12 characters an inch at 9 points), so a long
    group heading is not cut at the figure's edges."""
    columns = max(20, int(width_inches * 12))
    return "\n".join(textwrap.fill(line, columns) for line in literal(text).splitlines())


def _save(figure, path: Path) -> None:
    write_file_atomically(path, lambda temporary: figure.savefig(temporary, format="png", dpi=120))


MAX_PIXELS = 4096 * 4096  # a samples picture larger than this is not a stabench picture: not decoded


def readable_picture(file: Path) -> bool:
    """`file` is a PNG of sensible size that decodes; otherwise one warning names it and why."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                warnings.warn(f"skipping {file}: {width}x{height} pixels is too large for a samples picture",
                              stacklevel=2)
                return False
            image.verify()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        warnings.warn(f"skipping {file}: not a readable picture ({type(error).__name__})", stacklevel=2)
        return False
    return True


def samples_grid(runs: pd.DataFrame, title: str, path: Path) -> bool:
    """The final samples.png of each variant's lowest seed, side by side; False when no run has one."""
    from matplotlib.image import imread

    have = runs.loc[[regular_file(Path(p) / SAMPLES_FILE) and readable_picture(Path(p) / SAMPLES_FILE)
                     for p in runs.path]]
    firsts = have.sort_values("seed").drop_duplicates("variant").sort_values("variant")
    if firsts.empty:
        return False
    columns = min(len(firsts), 4)
    rows = -(-len(firsts) // columns)
    figure, grid = subplots(rows, columns, figsize=(3.2 * columns, 3.2 * rows), squeeze=False)
    for axes in grid.flat:
        axes.set_axis_off()
    for axes, (_, run) in zip(grid.flat, firsts.iterrows()):
        axes.imshow(imread(Path(run.path) / SAMPLES_FILE))
        axes.set_title(literal(f"{run.variant}, seed {run.seed} ({run.status})"), fontsize=8)
    figure.suptitle(title_lines(title, figure.get_figwidth()), fontsize=9)
    figure.tight_layout()
    _save(figure, path)
    return True


def _rows(run_path, name: str):
    """A run's csv artifact (see `read_rows`), never through a link. Every figure reads through this one line,
    so a damaged file that several figures read is warned about once (Python shows a warning once per place
    and text)."""
    return read_rows(Path(run_path), name) if regular_file(Path(run_path) / name) else None


def _colours() -> list[str]:
    from matplotlib import rcParams

    return rcParams["axes.prop_cycle"].by_key()["color"]


def _per_run_plot(runs: pd.DataFrame, name: str, x: str, y: str, draw, labels: tuple[str, str], title: str,
                  path: Path, finish=None) -> bool:
    """`draw(axes, xs, ys, look, label)` for each run whose csv `name` has columns `x` and `y`, a `Look` per
    variant, then `finish(axes)`; False when no run has such a file."""
    figure, axes = subplots(figsize=(6, 4.5))
    drawn = False
    for look, variant, paths in _runs_by_variant(runs):
        labelled = False
        for run_path in paths:
            table = _rows(run_path, name)
            if table is not None and {x, y} <= set(table.columns):
                draw(axes, table[x], table[y], look, None if labelled else literal(variant))
                drawn = labelled = True
    if not drawn:
        return False
    if finish is not None:
        finish(axes)
    axes.set_xlabel(labels[0])
    axes.set_ylabel(labels[1])
    axes.set_title(title_lines(title, figure.get_figwidth()), fontsize=9)
    _legend(figure, axes)
    figure.tight_layout()
    _save(figure, path)
    return True


def _finite(values) -> np.ndarray:
    """`values` as floats, with empty cells, text and non-finite numbers dropped."""
    numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
    return numbers[np.isfinite(numbers)]


def _scale(values) -> float:
    """The largest |value| of a series (0 when it has none)."""
    values = np.abs(_finite(values))
    return float(values.max()) if len(values) else 0.0


def linthresh(scales) -> float:
    """The linear range of a symmetric-log axis that keeps every series readable, given each series' largest
    |value|: the power of ten at or below the smallest of them (all-zero series ignored), so a method at ±1
    stays apart from 0 while one at ±400 sits two decades further out; never below 1e-8 of the largest (no
    axis of twenty empty decades), 1 when every series is zero."""
    scales = [float(s) for s in scales if np.isfinite(s) and s > 0]
    if not scales:
        return 1.0
    return 10.0 ** math.floor(math.log10(max(min(scales), max(scales) * 1e-8)))


def _symlog(axes, axis: str, scales, ticks: int | None = None) -> None:
    """Make `axis` ("x" or "y") of `axes` (and of the axes sharing it) symmetric-log (see `linthresh`) and
    rescale it to its data, with at most about `ticks` labelled decades (a stride over decades where more)."""
    from matplotlib.ticker import NullFormatter

    getattr(axes, f"set_{axis}scale")("symlog", linthresh=linthresh(scales))
    for shared in [axes, *getattr(axes, f"get_shared_{axis}_axes")().get_siblings(axes)]:
        if ticks is not None:
            getattr(shared, f"{axis}axis").get_major_locator().set_params(numticks=ticks)
        getattr(shared, f"{axis}axis").set_minor_formatter(NullFormatter())
    axes.autoscale_view()  # the margins of a linear scale, computed before, would clip the outermost points


def spectrum_plot(runs: pd.DataFrame, title: str, path: Path) -> bool:
    """Eigenvalues of each run's final Jacobian (spectrum.csv) in the complex plane, a colour per variant.

    Both axes are symmetric-log (linear near zero, logarithmic beyond; see `linthresh`): a method whose
    eigenvalues are 100x another's leaves the other readable in the same picture, where methods compare."""
    scales = {"x": [], "y": []}

    def draw(axes, real, imag, look, label):
        axes.scatter(real, imag, s=12, alpha=0.6, color=look.colour, marker=look.marker, label=label)
        scales["x"].append(_scale(real))
        scales["y"].append(_scale(imag))

    def finish(axes):
        axes.axvline(0.0, color="black", linewidth=0.6, linestyle="--")  # right of it: locally unstable
        _symlog(axes, "x", scales["x"], ticks=7)
        _symlog(axes, "y", scales["y"])

    return _per_run_plot(runs, SPECTRUM_FILE, "real", "imag", draw, ("Re λ (symlog)", "Im λ (symlog)"), title,
                         path, finish)


def modes_plot(runs: pd.DataFrame, title: str, path: Path) -> bool:
    """Modes captured against seconds of training (curve.csv), one line per seed, a colour per variant."""
    def draw(axes, seconds, modes, look, label):
        axes.plot(seconds, modes, color=look.colour, linestyle=look.linestyle, alpha=0.6, linewidth=1.0, label=label)

    return _per_run_plot(runs, CURVE_FILE, "wall_seconds", "modes_captured", draw,
                         ("wall seconds of training", "modes captured"), title, path)


@dataclass(frozen=True)
class Look:
    """How one variant is drawn: past the palette's colours (ten), the next variants take the colours again
    with another line style and marker, so up to thirty look different."""

    colour: str
    linestyle: str
    marker: str


LINESTYLES, MARKERS = ("-", "--", ":"), ("o", "s", "^")
INSIDE_LEGEND = 8  # a legend naming more variants than this goes beside the axes: inside, it covers the data


def _runs_by_variant(runs: pd.DataFrame):
    """(look, variant, its run folders by seed) for each variant, a `Look` each."""
    colours = _colours()
    for index, (variant, rows) in enumerate(runs.groupby("variant")):
        cycle, colour = divmod(index, len(colours))
        look = Look(colours[colour], LINESTYLES[cycle % len(LINESTYLES)], MARKERS[cycle % len(MARKERS)])
        yield look, variant, list(rows.sort_values("seed").path)


def _legend(figure, axes) -> None:
    """The legend of `axes`: inside them for a few variants, beside them (the figure widened) for more."""
    if len(axes.get_legend_handles_labels()[1]) <= INSIDE_LEGEND:
        axes.legend(fontsize=7)
        return
    figure.set_figwidth(figure.get_figwidth() + 1.6)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


TRACKED = (("max_real", "max Re λ (symlog)"), ("max_imag", "max |Im λ| (symlog)"))


def _tracked_series(run_path) -> list[pd.DataFrame | None]:
    """A run's `step` and each `TRACKED` column of curve.csv, only the rows where both are finite numbers
    (the tracked steps), by step; None for a column it lacks or never filled."""
    table = _rows(run_path, CURVE_FILE)
    series = []
    for column, _ in TRACKED:
        if table is None or not {"step", column} <= set(table.columns):
            series.append(None)
            continue
        rows = pd.DataFrame({"step": pd.to_numeric(table["step"], errors="coerce"),
                             "value": pd.to_numeric(table[column], errors="coerce")})
        rows = rows[np.isfinite(rows.step) & np.isfinite(rows.value)].sort_values("step")
        series.append(rows if len(rows) else None)
    return series


def tracked_plot(runs: pd.DataFrame, title: str, path: Path) -> bool:
    """max Re λ (top, a dashed zero line) and max |Im λ| (bottom) against training step, from curve.csv's
    tracked rows: a line per run, a colour per variant (its lowest seed thicker and named in the legend, its
    other seeds thinner), symmetric-log y axes; False when no run has tracked eigenvalues."""
    lines = []  # (panel, rows, look, label, thick)
    for look, variant, paths in _runs_by_variant(runs):
        labelled = False
        for run_path in paths:
            series = _tracked_series(run_path)
            for panel, rows in enumerate(series):
                if rows is not None:
                    lines.append((panel, rows, look, None if labelled else literal(variant), not labelled))
            labelled = labelled or any(rows is not None for rows in series)
    if not lines:
        return False
    figure, panels = subplots(2, 1, figsize=(6.5, 6), sharex=True)
    for panel, rows, look, label, thick in lines:
        panels[panel].plot(rows.step, rows.value, color=look.colour, linestyle=look.linestyle,
                           linewidth=1.6 if thick else 0.8,
                           alpha=0.9 if thick else 0.6, marker="o" if len(rows) == 1 else None, markersize=3,
                           label=label)
    panels[0].axhline(0.0, color="black", linewidth=0.6, linestyle="--")  # above it: locally unstable
    for panel, (axes, (_, name)) in enumerate(zip(panels, TRACKED)):
        _symlog(axes, "y", [_scale(rows.value) for index, rows, *_ in lines if index == panel])
        axes.set_ylabel(name)
        axes.grid(True, linewidth=0.3, alpha=0.5)
    panels[1].set_ylim(bottom=0.0)  # |Im λ| is never negative; symlog's margin would show empty decades below 0
    panels[1].set_xlabel("training step")
    panels[0].set_title(literal(title), fontsize=9)
    for axes in panels:  # the legend once, on the first panel that has lines
        if axes.get_legend_handles_labels()[1]:
            _legend(figure, axes)
            break
    figure.tight_layout()
    _save(figure, path)
    return True


PHASES = ("start", "middle", "end")
SEARCHES = {"rightmost": ("o", "rightmost: k largest Re λ"), "largest": ("x", "largest: k largest |λ|")}


def _phase_rows(run_path) -> list[pd.DataFrame] | None:
    """A run's tracked eigenvalues (spectrum_track.csv) at its first, middle and last tracked step; None when
    it has none."""
    table = _rows(run_path, TRACK_FILE)
    if table is None or not {"step", "real", "imag"} <= set(table.columns):
        return None
    table = table.assign(**{c: pd.to_numeric(table[c], errors="coerce") for c in ("step", "real", "imag")})
    table = table[np.isfinite(table.step) & np.isfinite(table.real) & np.isfinite(table.imag)]
    table = table.assign(search=table["search"].astype(str) if "search" in table else "")
    steps = sorted(table.step.unique())
    if not steps:
        return None
    return [table[table.step == step] for step in (steps[0], steps[(len(steps) - 1) // 2], steps[-1])]


def _steps_text(steps: list[float]) -> str:
    low, high = min(steps), max(steps)
    return f"step {low:g}" if low == high else f"steps {low:g}–{high:g}"


def phases_plot(runs: pd.DataFrame, title: str, path: Path) -> bool:
    """The tracked eigenvalues (spectrum_track.csv) in the complex plane at each run's first, middle and last
    tracked step: three columns sharing symmetric-log axes on both Re and Im, a colour per variant, a marker
    per search (o rightmost, x largest modulus); False when no run has tracked eigenvalues."""
    from matplotlib.lines import Line2D

    points = []  # (phase, rows, colour)
    handles = []
    for look, variant, paths in _runs_by_variant(runs):
        colour = look.colour
        found = False
        for run_path in paths:
            for phase, rows in enumerate(_phase_rows(run_path) or ()):
                points.append((phase, rows, colour))
                found = True
        if found:
            handles.append(Line2D([], [], color=colour, marker="o", linestyle="", label=literal(variant)))
    if not points:
        return False
    figure, grid = subplots(1, 3, figsize=(12, 4.6), sharex=True, sharey=True, squeeze=False)
    searches = set()
    for phase, rows, colour in points:
        for search, of_search in rows.groupby("search"):
            marker = SEARCHES.get(search, ("s",))[0]
            grid[0, phase].scatter(of_search.real, of_search.imag, s=18, alpha=0.6, color=colour, marker=marker)
            searches.add(search)
    for phase, axes in enumerate(grid.flat):
        steps = [float(rows.step.iloc[0]) for index, rows, _ in points if index == phase]
        axes.set_title(f"{PHASES[phase]} ({_steps_text(steps)})", fontsize=9)
        axes.axvline(0.0, color="black", linewidth=0.6, linestyle="--")  # right of it: locally unstable
        axes.set_xlabel("Re λ (symlog)")
        axes.grid(True, linewidth=0.3, alpha=0.5)
    _symlog(grid[0, 0], "x", [_scale(rows.real) for _, rows, _ in points], ticks=5)  # shared by the three
    _symlog(grid[0, 0], "y", [_scale(rows.imag) for _, rows, _ in points])
    grid[0, 0].set_ylabel("Im λ (symlog)")
    handles += [Line2D([], [], color="grey", marker=marker, linestyle="", label=label)
                for search, (marker, label) in SEARCHES.items() if search in searches]
    grid[0, -1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.suptitle(literal(title), fontsize=9)
    figure.tight_layout()
    _save(figure, path)
    return True


def path_angle_plot(runs: pd.DataFrame, title: str, path: Path) -> bool:
    """Berard et al.'s path angle of each run that has one (`stabench landscape`): the cosine between the
    field and the line from the initial to the final parameters, along that line; a colour per variant."""
    def draw(axes, alpha, cosine, look, label):
        axes.plot(alpha, cosine, color=look.colour, linestyle=look.linestyle, alpha=0.7, linewidth=1.0,
                  label=label)

    return _per_run_plot(runs, PATH_ANGLE_FILE, "alpha", "cos_joint", draw,
                         ("α (θ₀ + α(θ₁ − θ₀); the final point at 1)", "cos(h, θ₁ − θ₀)"), title, path,
                         path_angle_axes)


FIGURES = [("samples", "final samples", samples_grid), ("spectrum", "eigenvalues of the Jacobian", spectrum_plot),
           ("modes", "modes captured against wall seconds", modes_plot),
           ("path_angle", "path angle: +1 heads straight for the final point, near 0 rotates around it",
            path_angle_plot),
           ("tracked", "largest real part and largest imaginary part of the Jacobian's eigenvalues along training",
            tracked_plot),
           ("phases", "eigenvalues of the Jacobian at the start, middle and end of training", phases_plot)]


def _versions(runs: pd.DataFrame) -> str:
    devices = ", ".join(f"{device} ({count} runs)" for device, count in runs.device.value_counts().items())
    versions = ", ".join(f"{column[len('versions.'):]} {' / '.join(sorted(runs[column].dropna().astype(str).unique()))}"
                         for column in runs if column.startswith("versions."))
    return f"Devices: {devices}. Versions: {versions or 'not recorded'}."


CONSTRAINTS = "constraints.txt"


def constraints_text(runs: pd.DataFrame, to: Path) -> str:
    """A pip constraints file pinning the libraries the published records ran with (`records.LIBRARIES`), the
    version most runs used where they differ (said in a comment); Python, which pip cannot pin, as a comment."""
    lines = ["# The library versions the published run records were made with (stabench publish writes this).",
             f"# To reproduce them: python -m pip install -c {(to / CONSTRAINTS).as_posix()} -e ."]
    for name in ("python", *LIBRARIES):
        column = f"versions.{name}"
        counts = runs[column].dropna().astype(str).value_counts() if column in runs else pd.Series(dtype=int)
        if counts.empty:
            lines.append(f"# {name}: not in these records (records made since 2026-12-08 keep it)")
            continue
        used = counts.index[0]
        if len(counts) > 1:
            mixed = ", ".join(f"{found} ({count} runs)" for found, count in counts.items())
            lines.append(f"# {name}: the records mix {mixed}; pinned to the most used")
        if name == "python":
            lines.append(f"# python {used}: pip cannot pin the interpreter; install with this one")
            continue
        public, _, local = used.partition("+")  # a local build label (`+cu130`) is the index's choice, not pip's
        lines.append(f"{name}=={public}" + (f"  # recorded as {used}" if local else ""))
    return "\n".join(lines) + "\n"


def _seen(runs: pd.DataFrame) -> str:
    return escape_markdown(_versions(runs))


def publisher_versions() -> str:
    """The versions of what made the tables and figures (not the runs): stabench and its statistics stack."""
    from importlib.metadata import PackageNotFoundError, version

    found = [f"python {platform.python_version()}"]
    for package in ("stabench", "numpy", "scipy", "pandas", "matplotlib"):
        try:
            found.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            found.append(f"{package} not installed as a package")
    return ", ".join(found)


def slugs(names: list[str]) -> dict[str, str]:
    """A file-name stem for each group name: its letters and digits, with a short hash where two names
    would otherwise share one (`foo-bar` and `foo_bar`)."""
    plain = {name: re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") for name in names}
    shared = {slug for slug in plain.values() if list(plain.values()).count(slug) > 1}
    return {name: f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:6]}" if slug in shared else slug
            for name, slug in plain.items()}


RECORDS, SITE = "records", "site"
COPIED = (RUN_FILE, CURVE_FILE)  # the evidence behind a number; never state.pt, checkpoints or pictures
_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}")


def _component(name: str) -> str:
    """`name` as one folder name: itself where it is plain, else its plain characters (at most 100) and a short
    hash. Records with other names are skipped where they are read (`names.NAME`); this is defence in depth."""
    if _SAFE.fullmatch(name):
        return name
    plain = re.sub(r"[^A-Za-z0-9_.+-]+", "-", name).strip(".-")[:100] or "x"
    return f"{plain}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def record_folder(task: str, method: str, run_id: str) -> PurePosixPath:
    """Where a run's published record lies under `records/`: `<task>/<method>/<run_id>`."""
    return PurePosixPath(_component(task), _component(method), _component(run_id))


def regular_file(file: Path) -> bool:
    """`file` is a regular file and not a link; a link (to /etc/passwd, in a record set received from someone
    else) is skipped with one warning naming it."""
    if file.is_symlink():
        warnings.warn(f"skipping {file}: a link (publish reads and copies only regular files)", stacklevel=2)
        return False
    return file.is_file()


def _copy_regular(source: Path, target: Path) -> None:
    """Copy `source`, opened without following a link, so one swapped in after `regular_file` is refused too."""
    descriptor = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(descriptor, "rb") as reading, open(target, "wb") as writing:
        shutil.copyfileobj(reading, writing)


def copy_records(runs: pd.DataFrame, to) -> Path:
    """Copy `COPIED` of each run of `runs` (as `load_runs` reads them) to `to/<task>/<method>/<run_id>/`,
    replacing `to` whole and at once: it holds exactly these runs (less those whose run.json is a link), so
    `load_runs(to)` gives the same tables. Only regular files are copied (see `regular_file`)."""
    def fill(folder: Path):
        for task, method, run_id, path in runs[["task", "method", "run_id", "path"]].itertuples(index=False):
            target = folder / record_folder(task, method, run_id)
            target.mkdir(parents=True)
            for name in COPIED:
                if regular_file(Path(path) / name):
                    _copy_regular(Path(path) / name, target / name)

    return write_atomically(Path(to), fill)


THRESHOLDS = np.linspace(0.0, 1.0, 101)
SCORE = "score: the share of the task's modes captured"


def aggregate_figures(aggregate: Aggregate, stem: str, folder: Path) -> list[tuple[str, Path]]:
    """The interquartile means, the probabilities of improvement over the baseline (where there is one) and
    the performance profiles of an aggregate, as (caption, path) of each file written."""
    table, title = aggregate.table, literal(aggregate.name)
    labels = [literal(method) for method in table.method]
    drawn = [("interquartile mean of the scores, 95% interval", "iqm",
              interval_plot(labels, table.iqm, table.iqm_low, table.iqm_high, f"IQM of the {SCORE}", title))]
    others = table[table.method != aggregate.baseline]
    if aggregate.baseline and len(others):
        caption = f"probability of improvement over {aggregate.baseline}, 95% interval"
        drawn.append((caption, "improvement", interval_plot(
            [literal(method) for method in others.method], others.improvement, others.improvement_low,
            others.improvement_high, literal(f"P(method > {aggregate.baseline})"), title, reference=0.5)))
    curves = {literal(method): stats.performance_profile(scores, THRESHOLDS)
              for method, scores in aggregate.scores.items()}
    drawn.append(("performance profiles: the share of runs scoring above τ, 95% band", "profile",
                  profile_plot(THRESHOLDS, curves, f"τ ({SCORE})", title)))
    written = []
    for caption, kind, figure in drawn:
        path = folder / f"{kind}_{stem}.png"
        _save(figure, path)
        written.append((caption, path))
    return written


def _record_links(group: pd.DataFrame) -> dict[str, list[Link]]:
    """Links from each row (method label) of a group's table to its runs' records, from the page's folder."""
    links = {}
    for variant, rows in group.sort_values("seed").groupby("variant"):
        links[variant] = [Link(str(seed), f"../{RECORDS}/{quote(str(record_folder(task, method, run_id)))}/{RUN_FILE}",
                               f"seed {seed}, {status}")
                          for seed, status, task, method, run_id in rows[["seed", "status", "task", "method",
                                                                          "run_id"]].itertuples(index=False)]
    return links


def _preamble(runs: pd.DataFrame, results_dir, to: Path, command: str | None, again: str) -> str:
    """The top of the web page: where the runs come from, the exact commands, the versions, how to read it."""
    made = f"stabench publish --results {shlex.quote(str(results_dir))} --to {shlex.quote(str(to))}"
    return (f"<p>{len(runs)} runs from <code>{site_escape(results_dir)}</code>. {site_escape(_versions(runs))}</p>\n"
            + (f"<p>The runs were made by:</p>\n<pre>{site_escape(command)}</pre>\n" if command else "")
            + f"<p>This page was made by:</p>\n<pre>{site_escape(made)}</pre>\n"
            f"<p>with {site_escape(publisher_versions())}. Every table again, from the published records (the "
            "run.json and curve.csv of each run, linked from each row):</p>\n"
            f"<pre>{site_escape(again)}\n{site_escape(again)} --aggregate</pre>\n<p>{code(NOTE)}</p>\n")


PUBLICATION = ("LEADERBOARD.md", "leaderboard.csv", "aggregate.csv", CONSTRAINTS, "figures", RECORDS, SITE)
KEPT = ("figures", SITE)  # folders others write into too (`stabench phase`): their other files are kept
_BUILDING, _RETIRED, _BUILT = ".publishing-", ".published-", "BUILT"  # + pid; BUILT lists what the build holds


def publish(results_dir="results/runs", to="results", command: str | None = None) -> list[Path]:
    """Publish the run records under `results_dir` into `to`: their run.json and curve.csv under `to`/records/
    (see `copy_records`), and from those copies LEADERBOARD.md, leaderboard.csv (long: a row per group, method
    and metric), aggregate.csv (`table.aggregates`), the figures under `to`/figures/ and the web page
    `to`/site/index.html; returns the paths written (the records as one folder).

    The tables are made from the published copies, so `stabench table --results <to>/records` prints them
    again; figures read the runs' other artifacts where they are, never through a link. The whole publication
    is built in a hidden folder inside `to` and swapped in at once (`PUBLICATION`), so an interrupted publish
    leaves the old one whole; other files in `to` are left alone.
    """
    runs = load_runs(results_dir)
    if runs.empty:
        raise StabenchError(f"no run records under `{results_dir}`; train some with `stabench run` or `stabench sweep`")
    to = Path(to)
    build = to / f"{_BUILDING}{os.getpid()}"
    try:
        if to.exists() and not to.is_dir():
            raise NotADirectoryError(20, "it is a file")
        to.mkdir(parents=True, exist_ok=True)
        _recover(to)
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir()
        for folder in KEPT:  # what others put there stays; this publication's files replace their old copies
            if (to / folder).is_dir():
                shutil.copytree(to / folder, build / folder, symlinks=True)
        written = _build(runs, results_dir, to, build, command)
        (build / _BUILT).write_text("\n".join(name for name in PUBLICATION if (build / name).exists()))
        _swap(build, to)
    except OSError as error:
        raise StabenchError(f"cannot publish to `{to}`: {error.strerror or error}") from None
    finally:
        if not (build / _BUILT).is_file():  # never built, or swapped; a swap cut short is finished by `_recover`
            shutil.rmtree(build, ignore_errors=True)
            shutil.rmtree(to / f"{_RETIRED}{os.getpid()}", ignore_errors=True)
    return [to / path.relative_to(build) for path in written]


@contextlib.contextmanager
def _signals_deferred():
    """Ctrl-C and SIGTERM wait until the block is done (a few renames), then stop as they would have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = {signum: signal.signal(signum, lambda number, frame: caught.append(number))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    if caught:
        raise KeyboardInterrupt


def _swap(build: Path, to: Path) -> None:
    """Move the publication built in `build` into `to`, its old entries set aside first and then deleted.
    Interrupted (kill -9) half way, `_recover` finishes it: `build`'s BUILT says what belongs to it."""
    built = set((build / _BUILT).read_text().split())
    retired = to / f"{_RETIRED}{build.name.removeprefix(_BUILDING)}"
    retired.mkdir(exist_ok=True)
    with _signals_deferred():
        for name in PUBLICATION:
            if name in built and not (build / name).exists():
                continue  # moved in already, by the swap this one finishes
            if (to / name).exists() or (to / name).is_symlink():
                os.replace(to / name, retired / name)
            if name in built:
                os.replace(build / name, to / name)
        (build / _BUILT).unlink()  # swapped: nothing left to finish
    shutil.rmtree(retired, ignore_errors=True)


def _recover(to: Path) -> None:
    """Finish what an earlier publish into `to` left, killed or stopped by an error (in this process, or in one
    that is gone): a swap it began is completed, its other folders removed."""
    for prefix in (_BUILDING, _RETIRED):  # a swap to finish needs the old entries it set aside
        for child in sorted(to.iterdir()):
            pid = child.name.removeprefix(prefix)
            if child.name.startswith(prefix) and pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
                if prefix == _BUILDING and (child / _BUILT).is_file() and (to / f"{_RETIRED}{pid}").is_dir():
                    _swap(child, to)
                shutil.rmtree(child, ignore_errors=True)


def _build(runs: pd.DataFrame, results_dir, to: Path, build: Path, command: str | None) -> list[Path]:
    """Write the publication of `runs` into `build`, its text naming the paths it will have under `to`;
    returns the paths written (the records as one folder)."""
    records = copy_records(runs, build / RECORDS)
    published = load_runs(records)
    runs = runs[runs.run_id.isin(set(published.run_id))]  # less those whose run.json is a link
    for folder in ("figures", SITE):
        (build / folder).mkdir(exist_ok=True)
    tables, found = leaderboards(published), aggregates(published)
    again = f"stabench table --results {shlex.quote(str(to / RECORDS))}"
    lines = ["# stabench leaderboard", ""]
    if command:
        lines += ["Produced by:", "", "```bash", command, "```", ""]
    lines += [f"{len(runs)} runs from `{results_dir}`. {_seen(runs)}", "",
              f"The web page: [{SITE}/index.html]({SITE}/index.html). The records behind every number (run.json and "
              f"curve.csv of each run): [{RECORDS}/]({RECORDS}/); `{again}` prints every table below again, "
              f"`{again} --aggregate` the aggregates.", "",
              f"The libraries the runs were made with, as pip constraints: [{CONSTRAINTS}]({CONSTRAINTS}) "
              f"(`python -m pip install -c {(to / CONSTRAINTS).as_posix()} -e .`).", "", NOTE, ""]
    sections, written = [], []
    aggregate_stems = slugs(list(found))
    for name, aggregate in found.items():
        figures = aggregate_figures(aggregate, aggregate_stems[name], build / "figures")
        written += [path for _, path in figures]
        lines += [f"## {escape_markdown(name)}", "", format_aggregate(aggregate, "md"), "",
                  *(line for caption, path in figures for line in (f"![{caption}](figures/{path.name})", ""))]
        sections.append(aggregate_section(aggregate, [(caption, f"../figures/{path.name}")
                                                      for caption, path in figures]))
    grouped = {name: group for task in sorted(set(runs.task)) for name, group in groups(runs, task).items()}
    stems = slugs(list(grouped))
    for name, group in grouped.items():
        lines += [f"## {escape_markdown(name)}", "", format_table(tables[name], "md"), ""]
        figures = []
        for kind, caption, draw in FIGURES:
            path = build / "figures" / f"{kind}_{stems[name]}.png"
            if draw(group, f"{name}\n{caption}", path):
                written.append(path)
                figures.append((caption, f"../figures/{path.name}"))
                lines += [f"![{caption}](figures/{path.name})", ""]
        sections.append(leaderboard_section(name, tables[name], _record_links(group), figures))
    _write_text(build / CONSTRAINTS, constraints_text(runs, to))
    _write_text(build / "LEADERBOARD.md", "\n".join(lines))
    _write_text(build / "leaderboard.csv", csv_text(long_table(tables)))
    outputs = [build / "LEADERBOARD.md", build / "leaderboard.csv"]
    if found:  # none: an earlier publish's aggregate.csv, of runs no longer published, goes with the swap
        _write_text(build / "aggregate.csv", csv_text(aggregate_long(found)))
        outputs.append(build / "aggregate.csv")
    outputs.append(build / CONSTRAINTS)
    preamble = _preamble(runs, results_dir, to, command, again)
    _write_text(build / SITE / "index.html", page("stabench leaderboard", preamble, sections))
    return [*outputs, build / SITE / "index.html", records, *written]
