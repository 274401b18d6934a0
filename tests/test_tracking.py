"""The Jacobian spectrum tracked along training: against closed forms on lq1d, against dense eigenvalues."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

import stabench
from stabench.cell import resolve
from stabench.records import CURVE_FILE, TRACK_FILE, checkpoint_steps, read_state
from stabench.runner import Trainer, make_context
from stabench.spectra import SpectrumTracker

pytestmark = pytest.mark.usefixtures("one_thread")

# lq1d with plain gradient steps large enough to converge within a smoke-sized run (the batch is 256 samples)
CONVERGING = {"optimizer": "sgd", "lr": 0.05}


def tracked(record):
    curve = pd.read_csv(record.path / CURVE_FILE).dropna(subset=["max_real"])
    track = pd.read_csv(record.path / TRACK_FILE)
    return curve, track


def rightmost_at(track, step):
    rows = track[(track.step == step) & (track.search == "rightmost")]
    return np.sort_complex(rows.real.to_numpy() + 1j * rows.imag.to_numpy())


def test_the_tracked_gan_spectrum_converges_to_figure_3s_closed_form(tmp_path):
    """vanilla on lq1d: at (w₂, a) = (0, 1) λ = -1/20 ± i sqrt(1/9 - 1/400) (the paper's Figure 3)."""
    record = stabench.run("vanilla", "lq1d", budget="smoke", steps=3000, overrides=CONVERGING, out=tmp_path,
                          progress=False, spectrum_every=500)
    curve, track = tracked(record)
    assert curve.step.tolist() == [0, 500, 1000, 1500, 2000, 2500, 3000]
    closed = np.sort_complex(np.array([-0.05 + 1j * math.sqrt(1 / 9 - 1 / 400), -0.05 - 1j * math.sqrt(1 / 9 - 1 / 400)]))
    errors = [np.abs(rightmost_at(track, step) - closed).max() for step in curve.step]
    assert errors[-1] < 0.02 < errors[0]  # it starts away from the equilibrium and arrives
    assert curve.field_norm.iloc[-1] < 0.1 * curve.field_norm.iloc[0]


def test_the_tracked_wgan_spectrum_is_imaginary_up_to_its_trace(tmp_path):
    """The WGAN field on lq1d (population batch) has J = [[0, -2a/3], [2a/3, 2w₂/3]]: Re λ = w₂/3 at every
    point, and 0 at the equilibrium; the orbit keeps |Im λ| near 2/3."""
    record = stabench.run("gradreg", "lq1d", budget="smoke", steps=2000, out=tmp_path, progress=False,
                          overrides={"loss": "wgan", "eta": 0.0}, spectrum_every=250)
    curve, track = tracked(record)
    for _, row in curve.iterrows():
        values = rightmost_at(track, row.step)
        np.testing.assert_allclose(np.abs(values.real), row.disc_norm / 3, rtol=1e-9, atol=1e-12)
        assert abs(np.abs(values.imag).max() - 2 / 3) < 0.15


def test_gradreg_tracked_spectrum_turns_hurwitz_on_lq1d(tmp_path):
    record = stabench.run("gradreg", "lq1d", budget="smoke", steps=2000, overrides=CONVERGING, out=tmp_path,
                          progress=False, spectrum_every=1000)
    curve, _ = tracked(record)
    assert curve.max_real.iloc[-1] < 0 and curve.n_positive.iloc[-1] == 0


def test_arnoldi_tracking_agrees_with_dense_eigenvalues_at_every_tracked_step():
    cell = resolve("gradreg", "mog", overrides={"batch_size": 32, "latent_dim": 4, "hidden": 8, "lr": 1e-3})
    game = cell.task.build(cell.task_params, cell.seeds, torch.device("cpu"))
    ctx = make_context(cell, game)
    trainer = Trainer(cell, game, ctx)
    dense, arnoldi = SpectrumTracker(cell, k=4), SpectrumTracker(cell, k=4, dense_limit=10)
    for step in range(0, 31):
        if step % 10 == 0:
            full, found = dense(step, game, ctx), arnoldi(step, game, ctx)
            assert found.summary["spectrum_converged"]
            exact = [complex(r["real"], r["imag"]) for r in full.rows if r["search"] == "rightmost"]
            approximate = [complex(r["real"], r["imag"]) for r in found.rows if r["search"] == "rightmost"]
            np.testing.assert_allclose(np.sort_complex(approximate), np.sort_complex(exact), atol=1e-6)
            assert found.summary["max_real"] == pytest.approx(full.summary["max_real"], abs=1e-6)
            assert found.summary["field_norm"] == full.summary["field_norm"]
        trainer.step()


def test_checkpoints_are_kept_and_analysed_again(tmp_path, invoke):
    record = stabench.run("vanilla", "lq1d", budget="smoke", steps=400, out=tmp_path, progress=False, checkpoints=3)
    assert checkpoint_steps(record.path) == [100, 200, 300]
    assert set(read_state(record.path, 200)) == set(read_state(record.path))
    result = invoke("spectrum", "--at", str(record.path), "--step", "200")
    assert result.exit_code == 0 and f"at {record.path} step 200" in result.output
    missing = invoke("spectrum", "--at", str(record.path), "--step", "150")
    assert missing.output == f"stabench: error: run `{record.path}` keeps no state at step 150; steps kept: 100, 200, 300\n"


def test_tracked_columns_stay_out_of_the_metrics(tmp_path):
    record = stabench.run("vanilla", "lq1d", budget="smoke", steps=100, out=tmp_path, progress=False, spectrum_every=50)
    assert set(record.metrics) == {"distance", "wasserstein2", "disc_norm"}
    assert record.timing["tracking_seconds"] > 0


def test_a_tracked_point_past_its_time_takes_one_pass_and_a_failing_one_is_noted(tmp_path, monkeypatch):
    monkeypatch.setattr("stabench.spectra.TRACK_SECONDS", 1e-6)
    options = dict(budget="smoke", steps=20, progress=False, spectrum_every=10,
                   overrides={"batch_size": 16, "latent_dim": 4, "hidden": 48})
    record = stabench.run("vanilla", "mog", out=tmp_path / "a", **options)
    curve = pd.read_csv(record.path / CURVE_FILE).dropna(subset=["max_real"])
    assert curve.step.tolist() == [0, 10, 20] and "spectrum_error" not in curve

    def broken(*args, **kwargs):
        raise RuntimeError("no eigenvalues today")

    monkeypatch.setattr("stabench.spectra.arnoldi_searches", broken)
    record = stabench.run("vanilla", "mog", out=tmp_path / "b", **options)
    assert record.status == "completed"
    errors = pd.read_csv(record.path / CURVE_FILE).spectrum_error.dropna()
    assert errors.tolist() == ["RuntimeError: no eigenvalues today"] * 3


@pytest.mark.slow
def test_dirac_simultaneous_gradient_descent_spirals_out_and_gradreg_converges(tmp_path):
    """Mescheder et al.'s Dirac-GAN: the plain GAN's λ = ±i/2 (plus the step's own outward drift) never
    converges from (1, 1); gradreg's λ = -ηa² ± ... (Re -0.125 at η = 0.5) does."""
    options = dict(budget="quick", steps=1500, out=tmp_path, progress=False, spectrum=False)
    plain = stabench.run("vanilla", "dirac", overrides={"schedule": "simultaneous"}, **options)
    regularised = stabench.run("gradreg", "dirac", overrides={"schedule": "simultaneous"}, **options)
    assert plain.metrics["steps_to_converge"] is None and math.hypot(plain.metrics["theta_distance"],
                                                                       plain.metrics["psi_distance"]) > 1
    assert regularised.metrics["steps_to_converge"] is not None
    assert regularised.metrics["theta_distance"] < 1e-3
