"""`stabench publish`: the leaderboard as Markdown and CSV, with its figures."""
from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

import pandas as pd

from stabench.errors import StabenchError
from stabench.plots import subplots
from stabench.records import CURVE_FILE, SAMPLES_FILE, SPECTRUM_FILE, read_rows, write_file_atomically
from stabench.table import csv_text, escape_markdown, format_table, groups, leaderboards, load_runs, long_table

NOTE = ("Each metric: the mean over seeds [its 95% bootstrap confidence interval]; ↑ larger is better, ↓ smaller "
        "is better; the best method in bold. `diverged or failed`: the share of runs that went non-finite or "
        "raised (runs interrupted by a person are left out). Failed runs have no metrics; diverged runs are evaluated as "
        "they stopped. (k/n): only k of n "
        "runs have a value. `wall s`: seconds of training, evaluation excluded. Runs of different task versions, "
        "budgets, step counts or data are never pooled: each such group has its own table.")


def _write_text(path: Path, text: str) -> None:
    write_file_atomically(path, lambda temporary: temporary.write_text(text))


def literal(text: str) -> str:
    """Text that matplotlib draws as it is: a `$` from a record never starts mathtext."""
    return str(text).replace("$", r"\$")


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

    have = runs.loc[[(Path(p) / SAMPLES_FILE).is_file() and readable_picture(Path(p) / SAMPLES_FILE)
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
    figure.suptitle(literal(title), fontsize=9)
    figure.tight_layout()
    _save(figure, path)
    return True


def _per_run_plot(runs: pd.DataFrame, name: str, x: str, y: str, draw, labels: tuple[str, str], title: str,
                  path: Path) -> bool:
    """`draw(axes, xs, ys, colour, label)` for each run whose csv `name` has columns `x` and `y`, a colour per
    variant; False when no run has such a file."""
    from matplotlib import rcParams

    colours = rcParams["axes.prop_cycle"].by_key()["color"]
    figure, axes = subplots(figsize=(6, 4.5))
    drawn = False
    for index, (variant, rows) in enumerate(runs.groupby("variant")):
        labelled = False
        for run_path in rows.sort_values("seed").path:
            table = read_rows(Path(run_path), name)
            if table is not None and {x, y} <= set(table.columns):
                draw(axes, table[x], table[y], colours[index % len(colours)], None if labelled else literal(variant))
                drawn = labelled = True
    if not drawn:
        return False
    axes.set_xlabel(labels[0])
    axes.set_ylabel(labels[1])
    axes.set_title(literal(title), fontsize=9)
    axes.legend(fontsize=7)
    figure.tight_layout()
    _save(figure, path)
    return True


def spectrum_plot(runs: pd.DataFrame, title: str, path: Path) -> bool:
    """Eigenvalues of each run's final Jacobian (spectrum.csv) in the complex plane, a colour per variant."""
    def draw(axes, real, imag, colour, label):
        axes.scatter(real, imag, s=12, alpha=0.6, color=colour, label=label)
        axes.axvline(0.0, color="black", linewidth=0.6, linestyle="--")  # right of it: locally unstable

    return _per_run_plot(runs, SPECTRUM_FILE, "real", "imag", draw, ("Re λ", "Im λ"), title, path)


def modes_plot(runs: pd.DataFrame, title: str, path: Path) -> bool:
    """Modes captured against seconds of training (curve.csv), one line per seed, a colour per variant."""
    def draw(axes, seconds, modes, colour, label):
        axes.plot(seconds, modes, color=colour, alpha=0.6, linewidth=1.0, label=label)

    return _per_run_plot(runs, CURVE_FILE, "wall_seconds", "modes_captured", draw,
                         ("wall seconds of training", "modes captured"), title, path)


FIGURES = [("samples", "final samples", samples_grid), ("spectrum", "eigenvalues of the Jacobian", spectrum_plot),
           ("modes", "modes captured against wall seconds", modes_plot)]


def _seen(runs: pd.DataFrame) -> str:
    devices = ", ".join(f"{device} ({count} runs)" for device, count in runs.device.value_counts().items())
    versions = ", ".join(f"{column[len('versions.'):]} {' / '.join(sorted(runs[column].dropna().astype(str).unique()))}"
                         for column in runs if column.startswith("versions."))
    return escape_markdown(f"Devices: {devices}. Versions: {versions or 'not recorded'}.")


def slugs(names: list[str]) -> dict[str, str]:
    """A file-name stem for each group name: its letters and digits, with a short hash where two names
    would otherwise share one (`foo-bar` and `foo_bar`)."""
    plain = {name: re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-") for name in names}
    shared = {slug for slug in plain.values() if list(plain.values()).count(slug) > 1}
    return {name: f"{slug}-{hashlib.sha1(name.encode()).hexdigest()[:6]}" if slug in shared else slug
            for name, slug in plain.items()}


def publish(results_dir="results/runs", to="results", command: str | None = None) -> list[Path]:
    """Write `to`/LEADERBOARD.md, `to`/leaderboard.csv (long: a row per group, method and metric) and the
    figures under `to`/figures/ from the run records under `results_dir`; return the paths written."""
    runs = load_runs(results_dir)
    if runs.empty:
        raise StabenchError(f"no run records under `{results_dir}`; train some with `stabench run` or `stabench sweep`")
    to = Path(to)
    (to / "figures").mkdir(parents=True, exist_ok=True)
    tables = leaderboards(runs)
    lines = ["# stabench leaderboard", ""]
    if command:
        lines += ["Produced by:", "", "```bash", command, "```", ""]
    lines += [f"{len(runs)} runs from `{results_dir}`. {_seen(runs)}", "", NOTE, ""]
    written = []
    grouped = {name: group for task in sorted(set(runs.task)) for name, group in groups(runs, task).items()}
    stems = slugs(list(grouped))
    for name, group in grouped.items():
        lines += [f"## {escape_markdown(name)}", "", format_table(tables[name], "md"), ""]
        for kind, caption, draw in FIGURES:
            path = to / "figures" / f"{kind}_{stems[name]}.png"
            if draw(group, f"{name}\n{caption}", path):
                written.append(path)
                lines += [f"![{caption}](figures/{path.name})", ""]
    _write_text(to / "LEADERBOARD.md", "\n".join(lines))
    _write_text(to / "leaderboard.csv", csv_text(long_table(tables)))
    return [to / "LEADERBOARD.md", to / "leaderboard.csv", *written]
