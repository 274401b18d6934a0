"""Rotation against potential (Berard et al. 2020): the Jacobian's symmetric and antisymmetric parts
against closed forms on lq1d, Lanczos/Arnoldi against dense, the path angle against hand computations,
and `landscape` on a run folder end to end (files, figure, CLI)."""
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stabench.cell import resolve
from stabench.landscape import (
    DEFAULT_ALPHAS, PATH_COLUMNS, dense_parts, jacobian_parts, landscape, load_run, part_operators, path_angle,
    path_angle_figure,
)
from stabench.methods.base import Method
from stabench.publish import publish
from stabench.records import LANDSCAPE_FILE, PATH_ANGLE_FIGURE, PATH_ANGLE_FILE, STATE_FILE
from stabench.runner import run
from stabench.spectra import analysis_field, dense_jacobian

pytestmark = pytest.mark.usefixtures("one_thread")

MOG_TINY = {"batch_size": 16, "latent_dim": 4, "hidden": 8}  # 163 parameters

# f'(0) and f''(0) of each loss; tests/test_lq.py's closed form of lq1d's J at (w₂, a) = (0, 1):
# J_DD = 2f''(0) E x⁴, J_DG = -2f'(0) E z², and G's row -J_DG(1 + 2ηJ_DD), -2ηJ_DG² (Lemma F.1).
DERIVATIVES = {"gan": (0.5, -0.25), "wgan": (1.0, 0.0)}


def lq1d_closed_form(loss, eta):
    f1, f2 = DERIVATIVES[loss]
    J_DD, J_DG = 2 * f2 / 5, -2 * f1 / 3
    return np.array([[J_DD, J_DG], [-J_DG * (1 + 2 * eta * J_DD), -2 * eta * J_DG**2]])


def at_equilibrium(method, overrides):
    cell = resolve(method, "lq1d", overrides=overrides)
    field_map, equilibrium = analysis_field(cell)
    return field_map, field_map.flatten(equilibrium)


@pytest.mark.parametrize("method, overrides, loss, eta, symmetric, rotation_modulus", [
    # the GAN: J = [[-0.1, -1/3], [1/3, 0]]: S = diag(-0.1, 0), A's eigenvalues ±i/3
    ("vanilla", {}, "gan", 0.0, [0.0, -0.1], 1 / 3),
    # the WGAN: J = [[0, -2/3], [2/3, 0]] is antisymmetric: S = 0, A's eigenvalues ±2i/3
    ("gradreg", {"loss": "wgan", "eta": 0}, "wgan", 0.0, [0.0, 0.0], 2 / 3),
    # gradreg η = 0.5: J = [[-0.1, -1/3], [0.3, -1/9]]: S has off-diagonal entries, A's eigenvalues ±i(1/3 + 0.3)/2
    ("gradreg", {"eta": 0.5}, "gan", 0.5, None, (1 / 3 + 0.3) / 2),
])
def test_lq1d_symmetric_and_antisymmetric_parts_are_the_closed_forms(method, overrides, loss, eta, symmetric,
                                                                     rotation_modulus):
    field_map, theta = at_equilibrium(method, overrides)
    J = dense_jacobian(field_map, theta).numpy()
    closed = lq1d_closed_form(loss, eta)
    np.testing.assert_allclose(J, closed, rtol=0, atol=1e-12)
    if symmetric is None:
        S = (closed + closed.T) / 2
        trace, det = np.trace(S), np.linalg.det(S)
        root = math.sqrt(trace**2 / 4 - det)
        symmetric = [trace / 2 + root, trace / 2 - root]
    parts = jacobian_parts(field_map, theta, k=2)
    assert parts.solver == "dense" and parts.n_parameters == 2
    np.testing.assert_allclose(parts.symmetric_top, symmetric, rtol=0, atol=1e-12)
    np.testing.assert_allclose(parts.symmetric_bottom, symmetric[::-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(parts.antisymmetric, [1j * rotation_modulus, -1j * rotation_modulus], rtol=0, atol=1e-12)
    assert parts.antisymmetric_norm == pytest.approx(rotation_modulus, abs=1e-12)
    assert parts.symmetric_norm == pytest.approx(max(abs(value) for value in symmetric), abs=1e-12)
    if method == "vanilla":
        assert parts.rotation == pytest.approx((1 / 3) / 0.1, rel=1e-10)
    if loss == "wgan":
        assert parts.rotation == math.inf  # a pure rotation
    # the parts recombine to J's own eigenvalues where both are known: S and A of a 2x2 J
    np.testing.assert_allclose(sorted(np.linalg.eigvals((J + J.T) / 2)), sorted(symmetric), atol=1e-12)


def test_dense_parts_of_a_random_matrix_are_numpys():
    J = np.random.default_rng(0).standard_normal((7, 7))
    parts = dense_parts(J, k=3)
    S_values = np.sort(np.linalg.eigvals((J + J.T) / 2).real)
    A_values = np.linalg.eigvals((J - J.T) / 2)
    np.testing.assert_allclose(parts.symmetric_top, S_values[::-1][:3], atol=1e-12)
    np.testing.assert_allclose(parts.symmetric_bottom, S_values[:3], atol=1e-12)
    assert np.abs(parts.antisymmetric.real).max() == 0.0
    moduli = np.sort(np.abs(A_values))[::-1]
    np.testing.assert_allclose(np.abs(parts.antisymmetric), moduli[:3], atol=1e-12)
    assert parts.antisymmetric[0].imag > 0 and parts.antisymmetric[1] == np.conj(parts.antisymmetric[0])
    assert parts.rotation == pytest.approx(moduli[0] / np.abs(S_values).max())


def tiny_mog(method="vanilla"):
    cell = resolve(method, "mog", overrides=MOG_TINY)
    field_map, _ = analysis_field(cell)
    return field_map, field_map.flatten(field_map.game.point())


def test_the_part_operators_are_the_dense_parts():
    field_map, theta = tiny_mog("gradreg")
    J = dense_jacobian(field_map, theta).numpy()
    S, A = part_operators(field_map, theta)
    v = np.random.default_rng(1).standard_normal(field_map.size)
    scale = np.abs(J).max()
    np.testing.assert_allclose(S.matvec(v), (J + J.T) / 2 @ v, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(A.matvec(v), (J - J.T) / 2 @ v, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("method", ["vanilla", "gradreg"])
def test_lanczos_and_arnoldi_find_the_dense_parts(method):
    field_map, theta = tiny_mog(method)
    assert field_map.size == 163
    k = 4
    dense = jacobian_parts(field_map, theta, k=k)
    found = jacobian_parts(field_map, theta, k=k, dense_limit=50)
    assert dense.solver == "dense" and found.solver == "lanczos/arnoldi" and found.converged
    scale = dense.symmetric_norm
    np.testing.assert_allclose(found.symmetric_top, dense.symmetric_top, rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(found.symmetric_bottom, dense.symmetric_bottom, rtol=0, atol=1e-8 * scale)
    np.testing.assert_allclose(found.antisymmetric, dense.antisymmetric, rtol=0, atol=1e-8 * scale)
    assert found.rotation == pytest.approx(dense.rotation, rel=1e-8)
    # not vacuous: both parts are present on this network, and the S search reaches both ends
    assert dense.symmetric_top[0] > 0 > dense.symmetric_bottom[0] and dense.antisymmetric_norm > 1e-3


# --- the path angle -------------------------------------------------------------------------------

CURVATURE = (1.0, 3.0)  # f = ½(c_D w₂² + c_G (a - 1)²)


class Potential(Method):
    """Both players descend one potential f: h = -∇f, J = -diag(c_D, c_G) (symmetric), minimum (0, 1)."""

    def potential(self, point):
        return 0.5 * (CURVATURE[0] * point.d["w2"] ** 2 + CURVATURE[1] * (point.g["a"] - 1) ** 2)

    def d_direction(self, game, point, batch, params, ctx):
        return game.gradient(self.potential(point), point.d)

    def g_direction(self, game, point, batch, params, ctx):
        return game.gradient(self.potential(point), point.g)


def test_a_potential_game_points_along_the_line_to_its_minimum():
    cell = resolve(Potential("potential", "test"), "lq1d")
    field_map, _ = analysis_field(cell)
    start, end = torch.tensor([0.4, 0.2], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    alphas = [0.0, 0.5, 0.9, 1.0, 1.1, 1.2]
    path = path_angle(field_map, start, end, alphas)
    # θ(α) - θ₁ = (α - 1)Δ, so h = -H(θ(α) - θ₁) = (1 - α)HΔ with H = diag(c_D, c_G)
    delta, H = np.array([-0.4, 0.8]), np.diag(CURVATURE)
    cosine = delta @ H @ delta / (np.linalg.norm(H @ delta) * np.linalg.norm(delta))
    sign = np.sign(1 - np.array(alphas))
    before, after = sign > 0, sign < 0
    np.testing.assert_allclose(path.cos_joint[before], cosine, atol=1e-12)
    np.testing.assert_allclose(path.cos_joint[after], -cosine, atol=1e-12)
    assert 0.8 < cosine < 0.99  # the anisotropic H turns h off the line, a little
    for player in (path.cos_d, path.cos_g):  # one parameter per player: each block is along the line exactly
        np.testing.assert_allclose(player[before], 1.0, atol=1e-12)
        np.testing.assert_allclose(player[after], -1.0, atol=1e-12)
    np.testing.assert_allclose(path.field_norm, np.abs(1 - np.array(alphas)) * np.linalg.norm(H @ delta), atol=1e-12)
    np.testing.assert_allclose(path.projection, (1 - np.array(alphas)) * (delta @ H @ delta) / np.linalg.norm(delta),
                               atol=1e-12)
    assert path.field_norm[3] == 0 and math.isnan(path.cos_joint[3])  # at the minimum h = 0: no angle
    parts = jacobian_parts(field_map, end, k=2)
    np.testing.assert_allclose(parts.symmetric_top, [-1.0, -3.0], atol=1e-12)
    assert parts.antisymmetric_norm == 0.0 and parts.rotation == 0.0


def test_the_wgan_on_lq1d_rotates_around_its_equilibrium():
    """The WGAN's population field on lq1d (V = w₂(1 - a²)/3): h = ((1 - a²)/3, 2aw₂/3), exact on the
    quadrature batch. On the line from (0.3, 0.6) to the equilibrium (0, 1) the angle is worked out by hand."""
    field_map, end = at_equilibrium("gradreg", {"loss": "wgan", "eta": 0})
    start = torch.tensor([0.3, 0.6], dtype=torch.float64)
    alphas = np.array([0.0, 0.25, 0.5, 0.75, 0.95, 1.1])
    path = path_angle(field_map, start, end, alphas)
    w2, a = 0.3 * (1 - alphas), 0.6 + 0.4 * alphas
    h = np.stack([(1 - a**2) / 3, 2 * a * w2 / 3], axis=1)
    delta = np.array([-0.3, 0.4])
    np.testing.assert_allclose(path.cos_joint, h @ delta / (np.linalg.norm(h, axis=1) * 0.5), atol=1e-9)
    np.testing.assert_allclose(path.cos_d, np.sign(h[:, 0] * delta[0]), atol=1e-9)
    np.testing.assert_allclose(path.cos_g, np.sign(h[:, 1] * delta[1]), atol=1e-9)
    np.testing.assert_allclose(path.field_norm, np.linalg.norm(h, axis=1), atol=1e-9)
    # near the equilibrium h ≈ J(θ - θ₁) with J antisymmetric: h ⟂ the line, |cos| → 0 at α → 1
    assert abs(path.cos_joint[4]) < 0.05 < abs(path.cos_joint[0])


# --- a run folder end to end ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Short lq runs of the plain GAN and gradreg (the records `landscape` reads)."""
    out = tmp_path_factory.mktemp("runs")
    return {name: run(name, "lq", budget="smoke", steps=50, out=out, progress=False, spectrum=False)
            for name in ("vanilla", "gradreg")}


def test_landscape_of_a_run_writes_both_files_and_returns_the_summary(runs):
    record = runs["vanilla"]
    report = landscape(record.path, k=3)
    folder = Path(record.path)
    with open(folder / PATH_ANGLE_FILE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == PATH_COLUMNS and len(rows) == len(DEFAULT_ALPHAS)
    assert [float(row["alpha"]) for row in rows] == list(DEFAULT_ALPHAS)
    stored = json.loads((folder / LANDSCAPE_FILE).read_text())
    assert set(stored) >= {"symmetric_top", "symmetric_bottom", "antisymmetric", "rotation", "n_parameters", "solver",
                           "path_angle", "field_norm"}
    assert stored["n_parameters"] == 12 and stored["solver"] == "dense" and stored["k"] == 3
    assert len(stored["symmetric_top"]) == 3 and all(len(pair) == 2 for pair in stored["antisymmetric"])
    assert stored["rotation"] == pytest.approx(report["rotation"]) and stored["run_id"] == record.run_id
    assert "notes" not in stored  # the recorded Adam state was loaded: nothing replayed as plain steps

    # the same numbers by hand: θ₀ the seed's initial game, θ₁ the state file, the field on the fixed batch
    loaded = load_run(record.path)
    field_map, _ = analysis_field(loaded.cell, loaded.game, loaded.ctx)
    end = field_map.flatten(field_map.game.point())
    initial = loaded.cell.task.build(loaded.cell.task_params, loaded.cell.seeds, torch.device("cpu"))
    start = field_map.flatten(initial.point()).double()
    assert not torch.equal(start, end)  # it trained
    state = torch.load(folder / STATE_FILE, weights_only=True)
    saved = [state["discriminator"][name] for name in field_map.d_shapes] + [state["generator"][name]
                                                                              for name in field_map.g_shapes]
    assert torch.equal(end, torch.cat([value.reshape(-1) for value in saved]).double())
    for index in (0, 20, 40, 48):
        alpha = DEFAULT_ALPHAS[index]
        h = field_map.at((1 - alpha) * start + alpha * end).numpy()
        delta = (end - start).numpy()
        assert float(rows[index]["cos_joint"]) == pytest.approx(h @ delta / np.linalg.norm(h) / np.linalg.norm(delta),
                                                               abs=1e-12)
        assert float(rows[index]["field_norm"]) == pytest.approx(np.linalg.norm(h), abs=1e-12)
    J = dense_jacobian(field_map, end).numpy()
    S = np.linalg.eigvalsh((J + J.T) / 2)
    np.testing.assert_allclose(stored["symmetric_top"], S[::-1][:3], atol=1e-12)
    np.testing.assert_allclose(stored["symmetric_bottom"], S[:3], atol=1e-12)
    moduli = np.sort(np.abs(np.linalg.eigvals((J - J.T) / 2)))[::-1]
    np.testing.assert_allclose([abs(im) for _, im in stored["antisymmetric"]], moduli[:3], atol=1e-12)
    assert report["path_angle"]["alpha"] == 1.0
    assert report["path_angle"]["cos_joint"] == pytest.approx(float(rows[40]["cos_joint"]))


def test_the_initial_point_is_the_runs(tmp_path):
    """θ₀ is where training began: one Adam step of lr 1e-6 moves each parameter about 1e-6 from it."""
    record = run("vanilla", "lq", budget="smoke", steps=1, overrides={"lr": 1e-6}, out=tmp_path, progress=False,
                 spectrum=False)
    report = landscape(record.path, k=1, alphas=[0.0, 1.0])
    assert 0 < report["distance"] < 1e-5
    loaded = load_run(record.path)
    other = loaded.cell.task.build(loaded.cell.task_params, resolve("vanilla", "lq", seed=1).seeds,
                                   torch.device("cpu"))
    field_map, _ = analysis_field(loaded.cell, loaded.game, loaded.ctx)
    moved = field_map.flatten(field_map.game.point()) - field_map.flatten(other.point()).double()
    assert float(moved.norm()) > 0.01  # another seed's initial point is far: the check can fail


def test_path_angle_figure_draws_one_line_per_run(runs, tmp_path):
    for record in runs.values():
        landscape(record.path, k=2, alphas=np.linspace(0, 1.2, 13))
    path = path_angle_figure([(runs["vanilla"].path, "vanilla"), (runs["gradreg"].path, "gradreg")],
                             tmp_path / "figures" / "path_angle.png")
    assert path.is_file() and path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_cli_prints_a_summary_and_errors_in_one_line(runs, invoke, tmp_path):
    record = runs["gradreg"]
    result = invoke("landscape", "--at", str(record.path), "--k", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"gradreg on lq, seed 0 (completed run {record.run_id}): 12 parameters, dense")
    assert lines[1].startswith("  rotation ‖A‖/‖S‖ = ")
    assert lines[-1] == f"  wrote {PATH_ANGLE_FILE}, {PATH_ANGLE_FIGURE} and {LANDSCAPE_FILE} in {record.path}"
    assert len(lines) <= 8
    as_json = json.loads(invoke("landscape", "--at", str(record.path), "--k", "2", "--json").output)
    assert as_json["method"] == "gradreg" and len(as_json["symmetric_top"]) == 2

    missing = invoke("landscape", "--at", str(tmp_path))
    assert missing.exit_code == 2
    assert missing.output == f"stabench: error: `{tmp_path}` is not a run record (no run.json)\n"
    bad_k = invoke("landscape", "--at", str(record.path), "--k", "0")
    assert bad_k.exit_code == 2 and bad_k.output == "stabench: error: `--k` must be at least 1, got 0\n"


def test_a_run_with_landscape_gets_its_files_and_figures_and_publish_draws_the_group(tmp_path):
    for method in ("vanilla", "gradreg"):
        record = run(method, "lq1d", budget="smoke", steps=100, out=tmp_path / "runs", progress=False,
                              landscape=True)
        assert all((record.path / name).is_file() for name in (LANDSCAPE_FILE, PATH_ANGLE_FILE, PATH_ANGLE_FIGURE))
    written = publish(tmp_path / "runs", tmp_path / "out")
    assert [path.name for path in written if path.name.startswith("path_angle_")] == [
        "path_angle_lq1d-version-1-budget-smoke-steps-100.png"]
