"""Statistics of few runs, on scipy: the interval of a mean over seeds (Student-t, chosen by the coverage it
keeps at 3 to 10 seeds; see `interval_coverage`), the test that separates two methods, bootstrap intervals
(BCa, else percentile) and the aggregate measures of Agarwal et al. 2021 ("Deep RL at the edge of the
statistical precipice", rliable): interquartile mean, probability of improvement and performance profiles
over several tasks.

Why Student-t for a cell: in simulation (tests/test_stats.py) a nominal 95 % BCa interval of the mean covers
about 75 % at 3 seeds on normal data, 87 % at 5 and 90 % at 10, and never reaches past the seeds' own range;
the t interval keeps 95 % on normal data at every seed count, covers more than BCa on skewed and
ceiling-bounded data, and does not depend on a resampling seed. What it keeps on each kind of data at a
table's seed counts is measured (`interval_coverage`) and printed under the table, not assumed.

The `rliable` package itself is not used: its last release (1.2.0) pins `arch < 8`, and arch 7.2 fails
to import under pandas 3 (it calls a private pandas decorator whose signature changed), while arch 8
rejects the `random_state=None` rliable passes; it would also pull in statsmodels and seaborn. The few
functions it offers are written here on `scipy.stats` (`bootstrap`, `mannwhitneyu`).

Across tasks, a *sample* is one task's scores (one per run). Bootstraps are stratified as rliable's:
scipy resamples each sample on its own, so every resample keeps each task's number of runs. Every
bootstrap is seeded: the same scores give the same interval.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 20_000  # the aggregates' bounds then move by under 1 % of their width between resampling seeds
SEED = 0
BCA, PERCENTILE, EQUAL, STUDENT, SEPARATED = "BCa", "percentile", "all equal", "t", "separated"
SIGNIFICANCE = 0.05  # two methods are separated where Welch's t-test rejects equal means at this level
# Below float32's smallest normal number a value is rounding noise around 0 (float32 trains every network here).
FLOAT_FLOOR = float(np.finfo(np.float32).tiny)


@dataclass(frozen=True)
class Estimate:
    """A statistic and its bootstrap interval; `method` says how the interval was made (`BCA`, or
    `PERCENTILE` where BCa is undefined), `EQUAL` where every sample is one value repeated (nothing to
    estimate: the interval is that value), None where there is no interval (a sample of fewer than 2)."""

    value: float
    low: float
    high: float
    method: str | None


def _samples(samples) -> list[np.ndarray]:
    return [np.asarray(sample, dtype=float) for sample in samples]


def bootstrap(samples: Sequence, statistic: Callable, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
              seed: int = SEED) -> Estimate:
    """`statistic(*samples, axis=-1)` (vectorized: it reduces the last axis, any leading axes are resamples)
    with its BCa interval from `scipy.stats.bootstrap`, each sample resampled on its own.

    Where each sample is one value repeated (a deterministic task gives every seed the same number) there is
    nothing to resample: the interval is the value itself and `method` is `EQUAL`. BCa is undefined where the
    bootstrap distribution is otherwise degenerate (two samples that never overlap) or its jackknife is: there
    the percentile interval of the same resamples is given instead, and `method` says so.
    """
    samples = _samples(samples)
    value = float(statistic(*samples, axis=-1))
    if min(len(sample) for sample in samples) < 2:  # scipy's jackknife needs two values; one is no interval
        return Estimate(value, math.nan, math.nan, None)
    if all(np.all(sample == sample[0]) for sample in samples):  # every resample is the samples themselves
        return Estimate(value, value, value, EQUAL)
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        # scipy warns, then returns NaN, where BCa is undefined; the fallback below handles exactly that case
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap(samples, statistic, n_resamples=resamples, confidence_level=confidence,
                                 method=BCA, axis=-1, vectorized=True, rng=rng)
    low, high = result.confidence_interval
    spread = np.ptp(result.bootstrap_distribution)
    # a statistic that differs between resamples only in the last bit has no spread, though scipy takes it for some
    degenerate = spread <= 1e-12 * max(1.0, float(np.abs(result.bootstrap_distribution).max()))
    if np.isfinite(low) and np.isfinite(high) and not degenerate:
        return Estimate(value, float(low), float(high), BCA)
    # the same resamples, read by their percentiles: no second draw
    result = stats.bootstrap(samples, statistic, n_resamples=0, confidence_level=confidence, method=PERCENTILE,
                             axis=-1, vectorized=True, bootstrap_result=result, rng=rng)
    low, high = result.confidence_interval
    return Estimate(value, float(low), float(high), PERCENTILE)


def mean_interval(values, confidence: float = CONFIDENCE) -> Estimate:
    """The mean of `values` (one per seed, no NaN) with its Student-t interval, mean ± t·s/√n (`method`
    `STUDENT`); `EQUAL` where every value is the same, no interval below two values."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("mean_interval needs at least one value")
    value = float(values.mean())
    if values.size < 2:
        return Estimate(value, math.nan, math.nan, None)
    if np.all(values == values[0]):
        return Estimate(value, value, value, EQUAL)
    half = float(stats.t.ppf((1 + confidence) / 2, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))
    return Estimate(value, value - half, value + half, STUDENT)


def _exponential(rng, shape):
    return rng.exponential(1.0, shape), 1.0


def _lognormal(rng, shape):
    return rng.lognormal(0.0, 1.0, shape), math.exp(0.5)


def _modes_of_8(rng, shape):
    """Modes captured out of 8: every mode with chance 0.6, else 4 to 7 (mean 7.0), as the mog runs scatter."""
    return np.where(rng.random(shape) < 0.6, 8.0, rng.integers(4, 8, shape).astype(float)), 0.6 * 8 + 0.4 * 5.5


# The kinds of data a cell's seeds are, each a draw (rng, shape) -> (values, their true mean).
DISTRIBUTIONS = {"normal": lambda rng, shape: (rng.normal(0.0, 1.0, shape), 0.0),
                 "skewed (exponential)": _exponential, "heavy-tailed (lognormal, sigma 1)": _lognormal,
                 "at a ceiling (modes of 8)": _modes_of_8}
COVERAGE_TRIALS = 20_000


def t_coverage(draw, seeds: int, trials: int = COVERAGE_TRIALS, seed: int = SEED,
               confidence: float = CONFIDENCE) -> float:
    """The share of `trials` samples of `seeds` values from `draw` whose `mean_interval` holds the true mean."""
    values, truth = draw(np.random.default_rng(seed), (trials, seeds))
    mean, spread = values.mean(axis=1), values.std(axis=1, ddof=1) / math.sqrt(seeds)
    half = stats.t.ppf((1 + confidence) / 2, seeds - 1) * spread  # all-equal samples: half 0, as mean_interval
    return float(np.mean((mean - half <= truth) & (truth <= mean + half)))


@lru_cache(maxsize=None)
def interval_coverage(seeds: int) -> dict[str, float]:
    """The measured coverage of `mean_interval` at `seeds` values on each of `DISTRIBUTIONS` (seeded simulation,
    `COVERAGE_TRIALS` samples each): what a cell's interval keeps at that seed count."""
    return {name: t_coverage(draw, seeds) for name, draw in DISTRIBUTIONS.items()}


def coverage_note(seed_counts) -> str:
    """One sentence: the interval and the coverage measured for it at each of `seed_counts` (2 and more)."""
    counts = sorted({int(n) for n in seed_counts if n >= 2})
    if not counts:
        return ""
    parts = []
    for n in counts:
        found = interval_coverage(n)
        parts.append(f"at {n} seeds " + ", ".join(f"{share:.0%} {name}" for name, share in found.items()))
    return (f"[low, high]: the Student-t interval of the mean (nominal {CONFIDENCE:.0%}); the coverage measured for "
            f"it by simulation ({COVERAGE_TRIALS:,} samples a case) is " + "; ".join(parts) + ".")


def separated(first, second) -> bool:
    """Whether two methods' values (one per seed) have different means: Welch's two-sided t-test at
    `SIGNIFICANCE`, on values below `FLOAT_FLOOR` in size taken as 0. Two spreadless samples are separated
    exactly where they differ; a sample of one value cannot be told from anything."""
    first, second = (np.where(np.abs(np.asarray(v, dtype=float)) < FLOAT_FLOOR, 0.0, np.asarray(v, dtype=float))
                     for v in (first, second))
    if len(first) < 2 or len(second) < 2:
        return False
    if np.ptp(first) == 0 and np.ptp(second) == 0:
        return bool(first[0] != second[0])
    with warnings.catch_warnings():  # scipy warns of precision where one sample has no spread; the test stands
        warnings.simplefilter("ignore", RuntimeWarning)
        return bool(stats.ttest_ind(first, second, equal_var=False).pvalue < SIGNIFICANCE)


def _broadcast(samples, axis: int) -> list[np.ndarray]:
    """The samples with their reduced axis last and their other axes broadcast to one shape: in scipy's
    jackknife one sample carries a leading axis the others lack."""
    samples = [np.moveaxis(np.asarray(sample, dtype=float), axis, -1) for sample in samples]
    batch = np.broadcast_shapes(*(sample.shape[:-1] for sample in samples))
    return [np.broadcast_to(sample, (*batch, sample.shape[-1])) for sample in samples]


def interquartile_mean(*tasks, axis: int = -1):
    """The interquartile mean of the runs of all `tasks` (one array of scores each), every task weighing the
    same (its runs share its weight): the mean of the middle half of that distribution, a run straddling the
    25 % or 75 % point counted in part.

    With equal runs per task and a multiple of 4 runs in all, this is rliable's `aggregate_iqm`
    (`scipy.stats.trim_mean(scores, 0.25)`); weighting keeps a task with 10 seeds from counting twice as much
    as one with 5.
    """
    tasks = _broadcast(tasks, axis)
    values = np.concatenate(tasks, axis=-1)
    # whole-number weights (4·lcm/n a run, the quartiles at lcm·T and 3·lcm·T) keep the 25 % and 75 % points exact
    sizes = [task.shape[-1] for task in tasks]
    unit = math.lcm(*sizes)
    weights = np.concatenate([np.full(size, 4 * unit // size) for size in sizes])
    order = np.argsort(values, axis=-1, kind="stable")
    ordered, mass = np.take_along_axis(values, order, axis=-1), weights[order]
    end = np.cumsum(mass, axis=-1)
    quarter = unit * len(tasks)
    inside = np.clip(np.minimum(end, 3 * quarter) - np.maximum(end - mass, quarter), 0, None)
    return (inside * ordered).sum(axis=-1) / (2 * quarter)


def probability_of_improvement(*pairs, axis: int = -1):
    """P(X > Y) of Agarwal et al.: for each task, the chance that a run of X scores above a run of Y (a tie
    counts a half), the Mann-Whitney U of X over Y divided by the number of pairs; averaged over tasks.
    `pairs` is x_1, y_1, x_2, y_2, ...: each task's scores of X, then of Y."""
    pairs = _broadcast(pairs, axis)
    xs, ys = pairs[0::2], pairs[1::2]
    return np.mean([stats.mannwhitneyu(x, y, axis=-1, method="asymptotic").statistic / (x.shape[-1] * y.shape[-1])
                    for x, y in zip(xs, ys)], axis=0)


def iqm(tasks: Sequence, resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """The interquartile mean over `tasks` (each one array of run scores), with its stratified interval."""
    return bootstrap(tasks, interquartile_mean, resamples=resamples, seed=seed)


def improvement(x_tasks: Sequence, y_tasks: Sequence, resamples: int = RESAMPLES, seed: int = SEED) -> Estimate:
    """P(X > Y) over tasks (`x_tasks[i]` and `y_tasks[i]` the scores of X and of Y on task i), with its
    stratified interval: each task's runs of X and of Y resampled on their own."""
    if len(x_tasks) != len(y_tasks) or not len(x_tasks):
        raise ValueError("improvement needs the scores of both methods on the same, non-empty list of tasks")
    pairs = [sample for pair in zip(x_tasks, y_tasks) for sample in pair]
    value = float(probability_of_improvement(*_samples(pairs)))
    if value in (0.0, 1.0):  # every run above (below) every other: each resample says the same, no interval
        return Estimate(value, value, value, SEPARATED)
    return bootstrap(pairs, probability_of_improvement, resamples=resamples, seed=seed)


def chance_of_separation(runs: int, other_runs: int) -> float:
    """The chance that every one of `runs` scores above every one of `other_runs` where both come from one
    distribution (no ties): 1 / C(runs + other_runs, runs), the exact one-sided Mann-Whitney p-value of it."""
    return 1.0 / math.comb(runs + other_runs, runs)


def performance_profile(tasks: Sequence, thresholds, resamples: int = 2_000, seed: int = SEED,
                        confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run-score distribution of Agarwal et al.: for each threshold τ, the share of runs scoring above τ,
    every task weighing the same; returns (share, low, high), each of len(thresholds), the band a stratified
    percentile bootstrap (BCa has no meaning for a step function of the resamples)."""
    thresholds = np.asarray(thresholds, dtype=float)

    def share(*samples, axis=-1):
        above = [(sample[..., None, :] > thresholds[:, None]).mean(axis=-1) for sample in _broadcast(samples, axis)]
        return np.moveaxis(np.mean(above, axis=0), -1, 0)  # scipy wants the thresholds first, resamples after

    tasks = _samples(tasks)
    curve = share(*tasks)
    if min(len(task) for task in tasks) < 2:
        return curve, np.full_like(curve, np.nan), np.full_like(curve, np.nan)
    result = stats.bootstrap(tasks, share, n_resamples=resamples, confidence_level=confidence, method=PERCENTILE,
                             axis=-1, vectorized=True, rng=np.random.default_rng(seed))
    return curve, np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)
