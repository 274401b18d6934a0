import math

import pytest
import torch

from stabench.metrics import kl_to_uniform, mode_metrics
from stabench.tasks.mog import ring_centres

CENTRES = ring_centres(8, 2.0)
STD = 0.02


def test_all_samples_at_one_centre_is_one_mode_with_kl_ln8():
    samples = CENTRES[3].repeat(2500, 1)
    metrics = mode_metrics(samples, CENTRES, STD)
    assert metrics["modes_captured"] == 1
    assert metrics["high_quality"] == 1.0
    assert metrics["kl"] == pytest.approx(math.log(8), abs=1e-12)


def test_samples_spread_evenly_cover_all_modes_with_kl_zero():
    generator = torch.Generator().manual_seed(0)
    samples = CENTRES.repeat(300, 1) + STD * 0.5 * torch.randn(2400, 2, generator=generator, dtype=torch.float64)
    metrics = mode_metrics(samples, CENTRES, STD)
    assert metrics["modes_captured"] == 8
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-12)


def test_samples_far_from_all_centres_capture_nothing():
    samples = torch.zeros(2500, 2)  # the ring's centre is 100 std from every mode
    metrics = mode_metrics(samples, CENTRES, STD)
    assert metrics["modes_captured"] == 0
    assert metrics["high_quality"] == 0.0
    assert math.isnan(metrics["kl"])


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
