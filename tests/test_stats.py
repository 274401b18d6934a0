"""The statistics module: exact where the mathematics gives a number, properties elsewhere."""
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.stats import norm

from stabench import stats


def spread(n, mean=5.0, sd=2.0):
    """n evenly spread draws from N(mean, sd²): the same spread whatever n, no luck involved."""
    return mean + sd * norm.ppf((np.arange(n) + 0.5) / n)


def test_interquartile_mean_of_known_arrays():
    assert stats.interquartile_mean(np.arange(1.0, 9.0)) == 4.5  # the mean of 3, 4, 5, 6
    assert stats.interquartile_mean([7.0, 1.0, 100.0, 2.0]) == 4.5  # order does not matter; outliers drop out
    # three runs a ≤ b ≤ c: a quarter of a's and c's third and all of b's lie in the middle half
    assert stats.interquartile_mean([0.0, 3.0, 12.0]) == pytest.approx((0 + 4 * 3 + 12) / 6)
    values = np.random.default_rng(0).normal(size=(6, 12))
    assert stats.interquartile_mean(values) == pytest.approx(scipy_stats.trim_mean(values, 0.25, axis=-1))
    assert stats.interquartile_mean(values[:, :8], values[:, 8:], axis=-1).shape == (6,)  # vectorized


def test_each_task_weighs_the_same_in_the_interquartile_mean():
    small, large = np.array([1.0, 2.0, 3.0, 4.0]), np.arange(10.0, 90.0, 10.0)
    assert stats.interquartile_mean(small, large) == pytest.approx(14.25)  # 3 and 4, then 10 to 40 at half weight
    assert stats.interquartile_mean(small, large) == pytest.approx(stats.interquartile_mean(np.repeat(small, 2), large))
    # equal runs per task: rliable's aggregate_iqm of all runs pooled
    assert stats.interquartile_mean(small, large[:4]) == pytest.approx(
        scipy_stats.trim_mean(np.concatenate([small, large[:4]]), 0.25))


def test_probability_of_improvement_of_disjoint_samples_is_one_or_zero_and_ties_count_half():
    high, low = [5.0, 6.0, 7.0], [1.0, 2.0]
    assert stats.probability_of_improvement(high, low) == 1.0
    assert stats.probability_of_improvement(low, high) == 0.0
    assert stats.probability_of_improvement([1.0, 1.0], [1.0, 1.0]) == 0.5
    assert stats.probability_of_improvement([1.0, 3.0], [2.0]) == 0.5  # one pair above, one below
    # tasks average: one task won outright, one lost outright
    assert stats.probability_of_improvement(high, low, low, high) == 0.5
    estimate = stats.improvement([high], [low])  # every run above: each resample says 1, no interval to give
    assert (estimate.value, estimate.low, estimate.high, estimate.method) == (1.0, 1.0, 1.0, "separated")
    assert stats.improvement([low], [high]).method == "separated"
    assert stats.improvement([[1.0, 6.0, 7.0]], [low]).method == "BCa"
    assert stats.chance_of_separation(5, 5) == 1 / 252 and stats.chance_of_separation(3, 2) == 1 / 10
    with pytest.raises(ValueError, match="same, non-empty list of tasks"):
        stats.improvement([high, high], [low])


def test_a_cells_interval_is_the_student_t_interval_of_the_mean_and_needs_no_seed():
    values = spread(12)
    estimate = stats.mean_interval(values)
    half = scipy_stats.t.ppf(0.975, 11) * values.std(ddof=1) / np.sqrt(12)
    assert estimate == stats.Estimate(pytest.approx(values.mean()), pytest.approx(values.mean() - half),
                                      pytest.approx(values.mean() + half), "t")
    # at 3 seeds the t interval reaches past the seeds' own range, as a mean of 3 draws must
    three = stats.mean_interval([212.0, 276.0, 550.0])
    assert three.low < 0 < 792 < three.high
    few, many = stats.mean_interval(spread(4)), stats.mean_interval(spread(40))
    assert many.high - many.low < (few.high - few.low) / 2  # about 1/sqrt(10) as wide, and wider t at 3 dof


def bca_coverage(draw, seeds, trials=300, resamples=2000):
    """The share of `trials` samples whose 95 % BCa interval (percentile where BCa is undefined) holds the mean."""
    rng = np.random.default_rng(1)
    samples, truth = draw(rng, (trials, seeds))
    held = 0
    for sample in samples:
        if np.all(sample == sample[0]):
            held += sample[0] == truth
            continue
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = scipy_stats.bootstrap((sample,), np.mean, n_resamples=resamples, method="BCa", rng=rng)
        low, high = result.confidence_interval
        if not (np.isfinite(low) and np.isfinite(high)):
            low, high = np.percentile(result.bootstrap_distribution, [2.5, 97.5])
        held += low <= truth <= high
    return held / trials


def test_the_coverage_simulation_that_chose_the_t_interval():
    """Normal, skewed, heavy-tailed and ceiling-bounded seeds at 3, 5 and 10 seeds: the t interval keeps its
    nominal 95 % on normal data and covers at least about as often as BCa everywhere; BCa under-covers at few
    seeds (about 75 % at 3 on normal data). The t coverages are what the table notes print."""
    for seeds in (3, 5, 10):
        measured = stats.interval_coverage(seeds)
        assert set(measured) == set(stats.DISTRIBUTIONS)
        assert 0.94 <= measured["normal"] <= 0.96
        for name, draw in stats.DISTRIBUTIONS.items():
            bca = bca_coverage(draw, seeds)
            assert measured[name] >= bca - 0.05, (name, seeds, measured[name], bca)  # 300 trials: ±0.025 s.e.
            if seeds == 3 and name == "normal":
                assert bca < 0.82
    assert stats.interval_coverage(3)["at a ceiling (modes of 8)"] < 0.8  # 22 % of 3-seed samples are all 8
    note = stats.coverage_note([3, 10, 1])
    assert note.startswith("[low, high]: the Student-t interval of the mean (nominal 95%)")
    assert "at 3 seeds 95% normal" in note and "at 10 seeds" in note and "at 1 seeds" not in note


def test_two_methods_are_separated_only_where_the_data_separate_them():
    assert not stats.separated([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert stats.separated(spread(10, mean=5.0, sd=0.1), spread(10, mean=6.0, sd=0.1))
    assert stats.separated([8.0, 8.0, 8.0], [7.0, 7.0, 7.0]) and not stats.separated([8.0] * 3, [8.0] * 5)
    assert not stats.separated([8.0, 8.0, 8.0], [7.9, 8.0, 7.8])  # 8 against a near miss at 3 seeds
    assert not stats.separated([2.8e-45, 2.8e-45], [1.26e-44, 1.26e-44])  # float32 subnormals are 0
    assert not stats.separated([4.0], [1.0, 1.0])  # one value cannot be told from anything


def test_equal_values_have_no_interval_to_estimate_and_say_so():
    # a deterministic task (dirac) gives every seed the same number: [8, 8] from a bootstrap would dress that
    # up as an estimate
    assert stats.mean_interval([8.0, 8.0, 8.0]) == stats.Estimate(8.0, 8.0, 8.0, "all equal")
    # equal values whose resampled means would differ in the last bit are equal too
    assert stats.mean_interval([0.7] * 5) == stats.Estimate(0.7, 0.7, 0.7, "all equal")
    assert stats.mean_interval([0.0, 0.0, 1.0]).method == "t"
    assert stats.iqm([[1.0, 1.0], [1.0, 1.0, 1.0]]).method == "all equal"
    lone = stats.mean_interval([4.0])
    assert lone.value == 4.0 and np.isnan(lone.low) and np.isnan(lone.high) and lone.method is None
    with pytest.raises(ValueError, match="at least one value"):
        stats.mean_interval([])


def test_the_iqm_interval_is_stratified_by_task():
    tasks = [spread(10, mean=0.3, sd=0.1), spread(5, mean=0.7, sd=0.1)]
    estimate = stats.iqm(tasks)
    assert estimate.method == "BCa" and estimate.low < estimate.value < estimate.high
    assert estimate.value == pytest.approx(stats.interquartile_mean(*tasks))
    # one task wholly below 0.5, the other wholly above: every stratified resample keeps half the weight above
    share, low, high = stats.performance_profile([[0.1, 0.2, 0.3], [0.8, 0.9]], [0.5])
    assert share[0] == low[0] == high[0] == 0.5


def test_performance_profile_counts_runs_above_each_threshold_tasks_weighing_the_same():
    thresholds = [0.0, 0.25, 0.5, 0.75, 1.0]
    share, low, high = stats.performance_profile([[0.1, 0.6, 1.0, 1.0], [0.3, 0.8]], thresholds)
    # task 1 above τ: 4, 3, 3, 2, 0 of 4; task 2: 2, 2, 1, 1, 0 of 2
    assert list(share) == pytest.approx([1.0, 0.875, 0.625, 0.5, 0.0])
    assert np.all(low <= share + 1e-12) and np.all(share <= high + 1e-12)
    again = stats.performance_profile([[0.1, 0.6, 1.0, 1.0], [0.3, 0.8]], thresholds)
    assert all(np.array_equal(a, b) for a, b in zip(again, (share, low, high)))  # seeded
    single, low, high = stats.performance_profile([[0.4]], [0.0, 0.5])
    assert list(single) == [1.0, 0.0] and np.isnan(low).all() and np.isnan(high).all()
