"""The mixture tasks: `grid25` (25 Gaussians on a grid), and what it shares with `mog` (one mixture class)."""
import csv
import math
from pathlib import Path

import pytest
import torch


import stabench
from stabench import records
from stabench.cell import resolve
from stabench.hyperparams import defaults
from stabench.metrics import mode_metrics
from stabench.seeds import Seeds
from stabench.tasks import TASKS
from stabench.tasks import mixture
from stabench.tasks.mog import MogParams

GRID = TASKS.get("grid25")
PARAMS = GRID.Params()
CENTRES = GRID.centres(PARAMS)
TINY = {"batch_size": 16, "latent_dim": 4, "hidden": 8, "eval_samples": 200}


def test_grid25_is_mogs_mixture_on_the_veegan_grid():
    mog = TASKS.get("mog")
    assert isinstance(GRID, mixture.GaussianMixture) and isinstance(mog, mixture.GaussianMixture)
    expected = {(x, y) for x in (-4.0, -2.0, 0.0, 2.0, 4.0) for y in (-4.0, -2.0, 0.0, 2.0, 4.0)}
    assert CENTRES.dtype == torch.float64 and {tuple(c) for c in CENTRES.tolist()} == expected and len(CENTRES) == 25
    assert (PARAMS.std, PARAMS.d_input_scale) == (0.05, 0.125)  # the grid's reach 4 seen as 0.5, as mog's radius 2
    assert GRID.budgets == mog.budgets and GRID.metric_directions == mog.metric_directions


def test_mogs_defaults_are_the_reference_networks():
    assert (TASKS.get("mog").name, TASKS.get("mog").version) == ("mog", 1)
    assert defaults(MogParams) == {
        "batch_size": 512, "optimizer": "adam", "lr": 1e-4, "beta1": 0.5, "beta2": 0.999, "eps": 1e-8,
        "std": 0.02, "latent_dim": 256, "hidden": 128, "g_layers": 2, "d_layers": 1, "init": "orthogonal",
        "init_gain": 0.8, "d_input_scale": 0.25, "eval_samples": 2500, "n_modes": 8, "radius": 2.0, "g_lr": None}
    game = resolve("vanilla", "mog").build_game(torch.device("cpu"))
    shapes = lambda network: [tuple(p.shape) for p in network.parameters()]  # noqa: E731
    assert shapes(game.generator) == [(128, 256), (128,), (128, 128), (128,), (2, 128), (2,)]
    assert shapes(game.discriminator) == [(128, 2), (128,), (1, 128), (1,)]


def test_the_gulrajani_toy_recipe_builds_gan_toys_networks():
    cell = resolve("wgan-gp", "mog", recipe="gulrajani-toy")
    game = cell.build_game(torch.device("cpu"))
    for network, inputs, outputs in ((game.generator, 2, 2), (game.discriminator, 2, 1)):
        linear = [m for m in network.modules() if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linear] == [(inputs, 512), (512, 512), (512, 512), (512, outputs)]
        # He-uniform hidden weights: U(±√(6/fan_in)); Glorot-uniform output: U(±√(6/(fan_in + fan_out)))
        for m in linear[:-1]:
            bound = math.sqrt(6 / m.in_features)
            assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.95 * bound
        assert linear[-1].weight.abs().max() <= math.sqrt(6 / (512 + outputs))
        assert all(float(m.bias.detach().abs().max()) == 0.0 for m in linear)
    assert game.discriminator[0].scale == 1.0
    config = cell.config
    assert (config["gp_weight"], config["n_critic"], config["lr"], config["beta1"], config["beta2"],
            config["batch_size"]) == (0.1, 5, 1e-4, 0.5, 0.9, 256)
    assert cell.steps == 3000 and cell.recipe == "gulrajani-toy"
    clipped = resolve("wgan", "mog", recipe="gulrajani-toy").config
    assert (clipped["optimizer"], clipped["lr"], clipped["clip"]) == ("rmsprop", 5e-5, 0.01)
    assert cell.run_id != resolve("wgan-gp", "mog", overrides={
        key: value for key, value in config.items() if key in resolve("wgan-gp", "mog").config}).run_id


def test_one_centre_is_one_mode_with_kl_ln25_and_all_centres_are_25_with_kl_zero():
    one = mode_metrics(CENTRES[12].repeat(500, 1), CENTRES, PARAMS.std)
    assert (one["modes_captured"], one["high_quality"], one["kl_defined"]) == (1, 1.0, 1)
    assert one["kl"] == pytest.approx(math.log(25), abs=1e-12)
    every = mode_metrics(CENTRES.repeat(40, 1), CENTRES, PARAMS.std)
    assert (every["modes_captured"], every["high_quality"]) == (25, 1.0)
    assert every["kl"] == pytest.approx(0.0, abs=1e-12)


def rigged_game(params, point=(4.3, 4.4)):
    """A grid25 game whose G puts every sample at `point` and whose D is the first coordinate, D(x) = x₀."""
    game = GRID.build(params, Seeds.derive(0), torch.device("cpu"))
    with torch.no_grad():
        last = game.generator[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor(point))
        first, second = game.discriminator[1], game.discriminator[3]
        for layer in (first, second):
            layer.weight.zero_()
            layer.bias.zero_()
        first.weight[0, 0], first.weight[1, 0] = 1.0, -1.0  # relu(s x₀) − relu(−s x₀) = s x₀
        second.weight[0, 0], second.weight[0, 1] = 1 / params.d_input_scale, -1 / params.d_input_scale
    return game


def test_evaluate_reports_the_drift_diagnostics():
    params = GRID.Params(**TINY)
    game = rigged_game(params)
    assert game.discriminate(game.point().d, torch.tensor([[1.5, 3.0], [-2.0, 0.0]])).tolist() == [1.5, -2.0]
    metrics = GRID.evaluate(game, params, torch.Generator().manual_seed(0))
    # (4.3, 4.4) is 0.5 from the mode (4, 4), 10 std: no sample is high quality
    assert metrics["mean_mode_distance"] == pytest.approx(0.5, abs=1e-6)
    assert (metrics["modes_captured"], metrics["high_quality"], metrics["kl_defined"]) == (0, 0.0, 0)
    assert metrics["kl"] == pytest.approx(math.log(25), abs=1e-12)
    # E x₀ over the grid is 0, so the gap is about 0 − 4.3 (200 real samples of std about 2.8 in x₀)
    assert metrics["critic_gap"] == pytest.approx(-4.3, abs=0.6)
    assert set(metrics) - set(GRID.metric_directions) == {"kl_defined", "mean_mode_distance", "critic_gap"}


def test_evaluation_is_repeatable_and_leaves_the_training_streams_alone():
    params = GRID.Params(**TINY)
    evaluated, untouched = (GRID.build(params, Seeds.derive(5), torch.device("cpu")) for _ in range(2))
    first = GRID.evaluate(evaluated, params, torch.Generator().manual_seed(1))
    assert GRID.evaluate(evaluated, params, torch.Generator().manual_seed(1)) == first
    after, fresh = evaluated.sample_batch(16), untouched.sample_batch(16)
    assert torch.equal(after.real, fresh.real) and torch.equal(after.latent, fresh.latent)


def test_summarize_reads_the_first_full_capture_and_the_last_five_means():
    modes = [1, 3, 25, 20, 24, 25, 22]
    defined = [0, 1, 1, 1, 1, 1, 0]
    curve = [{"step": 50 * i, "wall_seconds": 0.5 * i, "modes_captured": m, "high_quality": i / 10,
              "kl": 0.1 * i, "kl_defined": d} for i, (m, d) in enumerate(zip(modes, defined))]
    summary = GRID.summarize(curve, PARAMS)
    assert summary == pytest.approx({
        "steps_to_all_modes": 100, "seconds_to_all_modes": 1.0,
        "modes_captured_last5": (25 + 20 + 24 + 25 + 22) / 5, "high_quality_last5": 0.4, "kl_last5": 0.4,
        "kl_last5_defined": 0.8})
    never = GRID.summarize(curve[:2], PARAMS)
    assert never["steps_to_all_modes"] is None and never["seconds_to_all_modes"] is None
    assert never["modes_captured_last5"] == 2.0  # fewer than five evaluations: all of them


def test_the_sample_figure_shows_the_25_centres(monkeypatch, tmp_path):
    drawn = {}
    monkeypatch.setattr(mixture, "scatter_samples",
                        lambda samples, centres, path, title, radius: drawn.update(centres=centres, radius=radius))
    params = GRID.Params(**TINY)
    GRID.save_samples(rigged_game(params), params, tmp_path / "samples.png", torch.Generator().manual_seed(0), "t")
    assert torch.equal(drawn["centres"], CENTRES)
    assert drawn["radius"] == 4.0  # the axes reach 1.5 × 4: every centre is inside


def test_a_grid25_run_records_the_diagnostics_in_its_curve(tmp_path, one_thread):
    record = stabench.run("vanilla", "grid25", seed=0, budget="smoke", steps=4, overrides=TINY, device="cpu",
                          out=tmp_path, progress=False, spectrum=False)
    assert record.status == "completed", record.error
    with open(Path(record.path) / records.CURVE_FILE) as file:
        curve = list(csv.DictReader(file))
    assert [row["step"] for row in curve] == ["0", "4"]
    assert {"mean_mode_distance", "critic_gap", "kl_defined"} <= set(curve[0])
    assert record.metrics["modes_captured_last5"] == pytest.approx(
        sum(float(row["modes_captured"]) for row in curve) / 2)
    assert record.metric_directions == GRID.metric_directions
