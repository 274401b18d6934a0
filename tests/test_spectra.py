"""Jacobian spectra: closed forms on the Dirac GAN, Arnoldi against dense, run records, the CLI, phase portraits."""
import csv
import json
import math

import numpy as np
import pytest
import torch

from stabench.game import squared_norm
from stabench.methods.base import Method
from stabench.cell import resolve
from stabench.phase import phase_panel
from stabench.runner import make_context, run
from stabench.spectra import (
    analysis_field, arnoldi_eigenvalues, by_real_part, dense_jacobian, game_spectrum, jacobian_operator, summarize,
)
from stabench.records import RUN_FILE, SPECTRUM_FILE, STATE_FILE

MOG_TINY = {"batch_size": 32, "latent_dim": 4, "hidden": 8}  # 163 parameters
MOG_SMALL = {"batch_size": 64, "latent_dim": 8, "hidden": 12}  # 339 parameters


pytestmark = pytest.mark.usefixtures("one_thread")


def built(cell):
    """The cell's game, freshly built from its seeds, and its training context."""
    game = cell.task.build(cell.task_params, cell.seeds, torch.device("cpu"))
    return game, make_context(cell, game)


def test_summary_counts_with_the_stated_tolerance():
    eigenvalues = np.array([0, 1e-9, -1 + 2j, -1 - 2j, 0.5, 1e-12 + 3j, -4])
    summary = summarize(eigenvalues, complete=True)
    assert summary["spectral_radius"] == 4.0
    assert summary["zero_tolerance"] == pytest.approx(4e-6)
    assert summary["n_zero"] == 2  # 0 and 1e-9; 1e-12 + 3i has a tiny real part but is no zero
    assert summary["n_positive"] == 1  # 0.5; real parts within the tolerance are not counted
    assert summary["max_real"] == 0.5
    assert summary["max_imag"] == 3.0
    assert summary["n_eigenvalues"] == 7 and summary["complete"] is True
    assert summarize(np.array([0.0, 1e-8]), complete=False)["max_real"] is None  # all zero: no max over nonzero


def test_by_real_part_keeps_conjugate_pairs_together():
    ordered = by_real_part(np.array([-1 - 1j, 2, -1 + 1j, 0]))
    assert ordered.tolist() == [2, 0, -1 + 1j, -1 - 1j]


# The Dirac GAN (Mescheder et al. 2018, the `dirac` task): data δ₀, G(z) = θ, D(x) = ψx. At (ψ, θ) = (0, 0) J_DD = 0, so
# J = [[0, -f'(0)], [f'(0), -2ηf'(0)²]] and λ = -ηf'(0)² ± sqrt(η²f'(0)⁴ - f'(0)²).

@pytest.mark.parametrize("method, overrides, f1, eta", [
    ("vanilla", {}, 0.5, 0.0), ("gradreg", {"loss": "wgan", "eta": 0}, 1.0, 0.0),
    ("gradreg", {"eta": 1.0}, 0.5, 1.0), ("gradreg", {"loss": "wgan", "eta": 0.5}, 1.0, 0.5),
    ("gradreg", {"loss": "wgan", "eta": 2.0}, 1.0, 2.0),  # overdamped: two real eigenvalues
])
def test_dirac_gan_eigenvalues_are_the_closed_form(method, overrides, f1, eta):
    cell = resolve(method, "dirac", overrides=overrides)
    spectrum = game_spectrum(cell, *built(cell), at_equilibrium=True)
    root = np.sqrt(complex(eta**2 * f1**4 - f1**2))
    expected = by_real_part(np.array([-eta * f1**2 + root, -eta * f1**2 - root]))
    np.testing.assert_allclose(spectrum.eigenvalues, expected, atol=1e-12)
    assert spectrum.field_norm == 0.0 and spectrum.solver == "dense"


def small_mog_field(method):
    cell = resolve(method, "mog", overrides=MOG_SMALL)
    field_map, _ = analysis_field(cell)
    return cell, field_map, field_map.flatten(field_map.game.point())


def test_jacobian_vector_products_are_the_dense_jacobians_columns():
    cell = resolve("gradreg", "mog", overrides=MOG_TINY)
    field_map, _ = analysis_field(cell)
    theta = field_map.flatten(field_map.game.point())
    J = dense_jacobian(field_map, theta)
    operator = jacobian_operator(field_map, theta)
    v = np.random.default_rng(0).standard_normal(field_map.size)
    np.testing.assert_allclose(operator.matvec(v), J.numpy() @ v, rtol=0, atol=1e-12 * np.abs(J.numpy()).max())


@pytest.mark.parametrize("method", ["vanilla", "gradreg"])
def test_arnoldi_finds_the_dense_eigenvalues_of_largest_real_part(method):
    _, field_map, theta = small_mog_field(method)
    assert 300 < field_map.size < 1000
    dense = by_real_part(np.linalg.eigvals(dense_jacobian(field_map, theta).numpy()))
    k = 6
    assert dense[k - 1].real - dense[k].real > 1e-3  # the top k are well separated from the rest
    found, converged = arnoldi_eigenvalues(jacobian_operator(field_map, theta), k)
    assert converged
    found = by_real_part(found)
    np.testing.assert_allclose(found[:k], dense[:k], rtol=0, atol=1e-6)
    largest = sorted(dense, key=abs)[-k:]
    for value in largest:  # and the k of largest modulus
        assert np.abs(found - value).min() < 1e-6


def test_a_large_system_goes_to_arnoldi_and_says_its_counts_are_partial():
    cell = resolve("vanilla", "mog", overrides=MOG_TINY)
    game, ctx = built(cell)
    full = game_spectrum(cell, game, ctx)
    partial = game_spectrum(cell, game, ctx, k=4, dense_limit=100)
    assert full.solver == "dense" and len(full.eigenvalues) == 163
    assert partial.solver == "arnoldi" and not partial.summary["complete"]
    assert partial.summary["max_real"] == pytest.approx(full.summary["max_real"], abs=1e-8)
    assert partial.summary["spectral_radius"] == pytest.approx(full.summary["spectral_radius"], abs=1e-8)


def test_the_spectrum_leaves_the_live_game_untouched():
    cell = resolve("gradreg", "mog", overrides=MOG_TINY)
    game, ctx = built(cell)
    before = {name: p.detach().clone() for name, p in game.generator.named_parameters()}
    game_spectrum(cell, game, ctx, k=2, dense_limit=10)
    assert all(p.dtype == torch.float32 and torch.equal(p, before[name]) for name, p in game.generator.named_parameters())
    assert not game.differentiable


class NormPenalty(Method):
    """G descends V + ‖∇_D V‖ (not squared): not differentiable where ∇_D V = 0, as at an equilibrium."""

    def g_direction(self, game, point, batch, params, ctx):
        value = game.value(point, batch, "gan")
        return game.gradient(value + squared_norm(game.gradient(value, point.d, create_graph=True)).sqrt(), point.g)


def test_a_field_that_is_not_differentiable_is_one_clear_error():
    cell = resolve(NormPenalty("norm-penalty", "test"), "lq1d")
    with pytest.raises(Exception) as error:
        game_spectrum(cell, *built(cell), at_equilibrium=True)
    assert str(error.value) == ("the Jacobian of `norm-penalty`'s field is not finite at this point "
                                "(the field is not differentiable there)")


def test_spectrum_json_has_eigenvalues_summary_config_and_the_data_distribution(invoke):
    result = invoke("spectrum", "--method", "vanilla", "--task", "lq", "--at", "equilibrium", "--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert len(report["eigenvalues"]) == 12 and all(len(pair) == 2 for pair in report["eigenvalues"])
    summary = report["summary"]
    assert set(summary) >= {"max_real", "n_positive", "n_zero", "spectral_radius", "max_imag", "zero_tolerance"}
    assert summary["n_zero"] == 2 and summary["n_positive"] == 0 and summary["max_real"] < 0
    assert summary["field_norm"] == 0.0
    assert report["config"]["dim"] == 2 and report["config"]["schedule"] == "alternating"
    assert report["task_params"]["mean"] == [1.0, -0.5]
    assert report["task_params"]["cov"][0][1] == pytest.approx(0.5 / math.sqrt(2))
    assert report["eigenvalues"][-1][0] == pytest.approx(-summary["spectral_radius"])  # largest |λ| is real here


def test_spectrum_prints_a_summary_for_a_person(invoke):
    result = invoke("spectrum", "--method", "gradreg", "--task", "lq1d", "--set", "loss=wgan", "--set", "eta=0")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "gradreg on lq1d at equilibrium, seed 0: 2 parameters, dense Jacobian, |h| = 0"
    assert "n_positive 0" in lines[1] and "max_imag 0.6667" in lines[1]
    assert lines[3:] == ["    +0 +0.666667i", "    +0 -0.666667i"]


@pytest.mark.parametrize("task, nearby", [("lq", "46.4"), ("lq1d", "20")])
def test_a_task_equilibrium_that_is_no_equilibrium_of_the_method_says_so(invoke, task, nearby):
    """WGAN-GP's penalty E(‖∇ₓD‖ − 1)² has a kink at ∇ₓD = 0, the task's equilibrium D = 0: torch's
    subgradient gives h = 0 there, but any step away meets a field of size about λ pushing D away."""
    result = invoke("spectrum", "--method", "wgan-gp", "--task", task, "--at", "equilibrium")
    assert result.exit_code == 2
    assert result.output == (f"stabench: error: the equilibrium of task `{task}` is not an equilibrium of `wgan-gp`: "
                             f"|h| = 0 there and up to {nearby} within 1e-06 of it\n")
    for method in ("vanilla", "gradreg", "wgan", "unrolled10"):  # smooth fields, h = 0 there: analysed as before
        assert invoke("spectrum", "--method", method, "--task", task, "--at", "equilibrium").exit_code == 0


def test_an_unrolled_spectrum_where_no_optimizer_state_exists_says_what_it_is_of(invoke):
    """At an equilibrium nothing has trained: Adam's first step from empty state has slope lr/eps (1e5 here),
    which is no property of the game. The unroll replays plain gradient steps at the lr instead, and says so."""
    result = invoke("spectrum", "--method", "unrolled1", "--task", "lq", "--at", "equilibrium", "--json")
    report = json.loads(result.output)
    assert report["summary"]["notes"] == ("no optimizer state exists at this point: D's update is replayed as plain "
                                          "gradient steps at lr=0.001, not adam")
    assert report["summary"]["spectral_radius"] < 100  # not the 1e11 of an unroll through stateless Adam
    assert report["summary"]["n_positive"] == 0
    assert "note: no optimizer state exists" in invoke("spectrum", "--method", "unrolled1", "--task", "lq").output


def test_a_run_folders_spectrum_replays_the_recorded_optimizer_state(tmp_path, invoke):
    record = run("unrolled1", "lq", budget="smoke", steps=30, out=tmp_path, progress=False)
    report = json.loads(invoke("spectrum", "--at", str(record.path), "--json").output)
    assert "notes" not in report["summary"]
    assert report["summary"]["max_real"] == pytest.approx(record.spectrum["max_real"], rel=1e-9)


def test_phase_portrait_of_an_unrolled_gan(tmp_path, invoke):
    out = tmp_path / "unrolled.png"
    result = invoke("phase", "--task", "lq1d", "--method", "unrolled1", "--steps", "20", "--out", str(out))
    assert result.exit_code == 0 and out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, message", [
    (["--method", "vanilla", "--task", "mog"],
     "task `mog` has no known equilibrium; use `--at init` or a run directory"),
    (["--method", "vanilla", "--task", "lq", "--k", "0"], "`--k` must be at least 1, got 0"),
    (["--task", "lq"], "name `--method` and `--task` (only a run folder supplies them)"),
    (["--method", "vanilla", "--task", "lq", "--at", "nowhere"],
     "`nowhere` is not a run record (no run.json); pass equilibrium, init or a run folder"),
    (["--method", "vanilla", "--task", "lqq"], "unknown task `lqq`. Did you mean `lq`? See `stabench list tasks`."),
])
def test_spectrum_mistakes_are_one_line_and_exit_2(invoke, args, message):
    result = invoke("spectrum", *args)
    assert result.exit_code == 2
    assert result.output == f"stabench: error: {message}\n"


def test_a_run_records_its_spectrum_and_final_parameters(tmp_path, invoke):
    record = run("gradreg", "mog", budget="smoke", steps=20, overrides=MOG_TINY, out=tmp_path, progress=False)
    folder = record.path
    on_disk = json.loads((folder / RUN_FILE).read_text())
    assert on_disk["spectrum"]["solver"] == "dense" and on_disk["spectrum"]["n_eigenvalues"] == 163
    with open(folder / SPECTRUM_FILE) as handle:
        rows = list(csv.DictReader(handle))
    recorded = np.array([float(row["real"]) + 1j * float(row["imag"]) for row in rows])
    assert len(recorded) == 163
    assert on_disk["spectrum"]["max_real"] == pytest.approx(recorded.real.max())
    state = torch.load(folder / STATE_FILE, weights_only=True)
    assert set(state) == {"discriminator", "generator", "d_optimizer", "g_optimizer", "method_state"}
    # the same point and batch, from the record alone: the same eigenvalues
    result = invoke("spectrum", "--at", str(folder), "--json")
    assert result.exit_code == 0
    again = np.array([complex(*pair) for pair in json.loads(result.output)["eigenvalues"]])
    np.testing.assert_allclose(again, recorded, rtol=0, atol=1e-12)
    # another method's field at the run's parameters; the task must be the run's
    other = json.loads(invoke("spectrum", "--at", str(folder), "--method", "vanilla", "--json").output)
    assert other["method"] == "vanilla" and other["config"]["hidden"] == 8
    wrong = invoke("spectrum", "--at", str(folder), "--task", "lq")
    assert wrong.exit_code == 2 and wrong.output == f"stabench: error: the run at `{folder}` is on task `mog`, not `lq`\n"


def test_no_spectrum_skips_it_and_keeps_the_parameters(tmp_path, invoke):
    result = invoke("run", "--method", "vanilla", "--task", "lq1d", "--budget", "smoke", "--steps", "5",
                    "--no-spectrum", "--json", "--out", str(tmp_path))
    record = json.loads(result.output)
    assert record["spectrum"] is None
    folder = tmp_path / "lq1d" / "vanilla" / record["run_id"]
    assert not (folder / SPECTRUM_FILE).exists() and (folder / STATE_FILE).exists()


def test_a_diverged_run_records_why_it_has_no_spectrum(tmp_path):
    # the WGAN's linear loss never saturates: with steps this large the orbit flies off to infinity
    record = run("gradreg", "lq1d", budget="smoke", steps=50, out=tmp_path, progress=False,
                 overrides={"loss": "wgan", "eta": 0, "optimizer": "sgd", "lr": 100})
    assert record.status == "diverged"
    assert set(record.spectrum) == {"error"}
    assert not (record.path / SPECTRUM_FILE).exists()


def test_a_run_folder_without_final_parameters_is_one_clear_error(tmp_path, invoke):
    record = run("vanilla", "lq1d", budget="smoke", steps=2, out=tmp_path, progress=False, spectrum=False)
    (record.path / STATE_FILE).unlink()
    result = invoke("spectrum", "--at", str(record.path))
    assert result.exit_code == 2
    assert result.output == f"stabench: error: run `{record.path}` has no state.pt (no final parameters were saved)\n"


def test_phase_panel_holds_the_population_field_and_trajectories():
    cell = resolve("gradreg", "lq1d", overrides={"loss": "wgan", "eta": 0})
    panel = phase_panel(cell, "WGAN", resolution=5, steps=10)
    w2, a = np.meshgrid(panel.d_axis, panel.g_axis)
    # the WGAN field is polynomial, so the quadrature batch gives the population field exactly:
    # ẇ₂ = E x² - a² E z² = (1 - a²)/3, ȧ = 2 w₂ a E z² = 2 w₂ a / 3
    np.testing.assert_allclose(panel.field[0], (1 - a**2) / 3, atol=1e-14)
    np.testing.assert_allclose(panel.field[1], 2 * w2 * a / 3, atol=1e-14)
    assert panel.labels == ("w2", "a") and panel.equilibrium == (0.0, 1.0)
    assert panel.d_axis.tolist() == [-1, -0.5, 0, 0.5, 1] and panel.g_axis.tolist() == [0, 0.5, 1, 1.5, 2]
    assert [points.shape for points in panel.trajectories] == [(11, 2), (11, 2)]
    assert panel.trajectories[0][0].tolist() == [0.0, 0.75]


def test_phase_draws_a_png(tmp_path, invoke):
    out = tmp_path / "phase.png"
    result = invoke("phase", "--task", "lq1d", "--method", "gradreg", "--set", "eta=0.5", "--steps", "20",
                    "--out", str(out))
    assert result.exit_code == 0 and result.output == f"phase portrait: {out}\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--task", "lq", "--method", "vanilla"],
     "a phase portrait needs one scalar parameter per player (like `lq1d`); `lq` has 12 parameters"),
    (["--grid", "--method", "vanilla"],
     "`--grid` draws `gradreg` with both losses and four values of eta; leave out `--method`"),
    (["--grid", "--set", "eta=1"], "`--grid` sets eta itself; leave it out"),
    ([], "name `--method` (or draw the paper's whole figure with `--grid`)"),
])
def test_phase_mistakes_are_one_line_and_exit_2(invoke, tmp_path, args, message):
    result = invoke("phase", *args, "--steps", "1", "--out", str(tmp_path / "x.png"))
    assert result.exit_code == 2
    assert result.output == f"stabench: error: {message}\n"


@pytest.mark.slow
def test_phase_grid_draws_figure_3(tmp_path, invoke):
    out = tmp_path / "grid.png"
    result = invoke("phase", "--grid", "--steps", "50", "--out", str(out))
    assert result.exit_code == 0 and out.stat().st_size > 50_000

