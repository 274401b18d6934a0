import math

import pytest
import torch

from stabench.metrics import kl_to_uniform, mean_mode_distance, mode_metrics, tail_means
from stabench.tasks.mog import ring_centres

CENTRES = ring_centres(8, 2.0)
STD = 0.02


def test_all_samples_at_one_centre_is_one_mode_with_kl_ln8():
    samples = CENTRES[3].repeat(2500, 1)
    metrics = mode_metrics(samples, CENTRES, STD)
    assert metrics["modes_captured"] == 1
    assert metrics["high_quality"] == 1.0
    assert metrics["kl"] == pytest.approx(math.log(8), abs=1e-12) and metrics["kl_defined"] == 1


def test_samples_spread_evenly_cover_all_modes_with_kl_zero():
    generator = torch.Generator().manual_seed(0)
    samples = CENTRES.repeat(300, 1) + STD * 0.5 * torch.randn(2400, 2, generator=generator, dtype=torch.float64)
    metrics = mode_metrics(samples, CENTRES, STD)
    assert metrics["modes_captured"] == 8
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-12)


def test_samples_far_from_all_centres_capture_nothing_and_kl_is_ln_k_marked_undefined():
    samples = torch.zeros(2500, 2)  # the ring's centre is 100 std from every mode
    metrics = mode_metrics(samples, CENTRES, STD)
    assert metrics["modes_captured"] == 0
    assert metrics["high_quality"] == 0.0
    # no high-quality sample: an empty histogram, scored as all mass on one mode
    assert metrics["kl"] == pytest.approx(math.log(8), abs=1e-12) and metrics["kl_defined"] == 0


def test_real_data_scores_the_three_sigma_mass_and_kl_near_zero():
    generator = torch.Generator().manual_seed(0)
    which = torch.randint(8, (200_000,), generator=generator)
    samples = CENTRES[which] + STD * torch.randn(200_000, 2, generator=generator, dtype=torch.float64)
    metrics = mode_metrics(samples, CENTRES, STD)
    assert metrics["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=1e-3)  # 0.989: the ceiling
    assert metrics["modes_captured"] == 8 and metrics["kl"] < 1e-4


def test_mean_mode_distance_is_in_data_units():
    assert mean_mode_distance(CENTRES.repeat(3, 1), CENTRES) == 0.0
    assert mean_mode_distance(torch.zeros(10, 2), CENTRES) == pytest.approx(2.0, abs=1e-12)  # the radius
    off = torch.stack([CENTRES[0] + torch.tensor([0.3, 0.4], dtype=torch.float64), CENTRES[5]])
    assert mean_mode_distance(off, CENTRES) == pytest.approx(0.25, abs=1e-12)  # (0.5 + 0) / 2


def test_tail_means_average_the_last_rows_or_all_of_fewer():
    curve = [{"step": 50 * i, "kl": float(i), "modes_captured": 8 - i} for i in range(1, 9)]
    assert tail_means(curve, ["kl", "modes_captured"], 5) == {"kl": 6.0, "modes_captured": 2.0}  # rows 4..8
    assert tail_means(curve[:3], ["kl"], 5) == {"kl": 2.0}


def test_high_quality_is_the_three_sigma_ball():
    inside = CENTRES[0] + torch.tensor([2.9 * STD, 0.0], dtype=torch.float64)
    outside = CENTRES[1] + torch.tensor([0.0, 3.1 * STD], dtype=torch.float64)
    metrics = mode_metrics(torch.stack([inside, outside]), CENTRES, STD)
    assert metrics["high_quality"] == 0.5
    assert metrics["modes_captured"] == 1


def test_non_finite_samples_are_misses():
    samples = torch.cat([CENTRES[:2], torch.full((2, 2), float("nan"))])
    metrics = mode_metrics(samples, CENTRES, STD)
    assert metrics["modes_captured"] == 2
    assert metrics["high_quality"] == 0.5


def test_kl_to_uniform_of_a_two_bin_skew():
    # p = (3/4, 1/4) against (1/2, 1/2)
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kl_to_uniform(torch.tensor([3, 1])) == pytest.approx(expected, abs=1e-12)
