"""The screening study: how few steps and seeds place a method where the full protocol places it.

Every published record's `curve.csv` holds the metrics at every evaluation, so what a cheaper protocol (a
*screen*: some of the mode-coverage tasks, fewer steps, fewer seeds) would have said needs no new training:
a run's score at step S is its modes captured, averaged over its last 5 evaluations up to S, over the task's
modes, exactly as the full protocol scores a run at its last step (`table.coverage_scores`). A screen is
judged against the full protocol by the Kendall τ of the methods' IQM rankings and by the share of methods
whose verdict against `vanilla` (the interval of P(method > vanilla) above, below or across 1/2) is the same.
The screen is chosen on one half of the methods and its agreement is reported on the other half.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from stabench import stats
from stabench.records import CURVE_FILE, read_rows
from stabench.table import BASELINE, MODE_TASKS, load_runs

WINDOW = 5  # evaluations a run's score averages, as `_last5`
ABOVE, BELOW, ACROSS = "above", "below", "not separated"
CORES = 2  # the screen's cost is wall-clock on this many cores, one run per core


@dataclass(frozen=True)
class Screen:
    """A protocol: which tasks, how many steps on each, the first `seeds` seeds."""

    tasks: tuple[str, ...]
    steps: int
    seeds: int

    def label(self) -> str:
        return f"{'+'.join(self.tasks)} · {self.steps} steps · {self.seeds} seeds"


def verdict(estimate: stats.Estimate) -> str:
    """Where P(method > vanilla) stands: its interval above 1/2, below, or across it."""
    if estimate.low > 0.5:
        return ABOVE
    if estimate.high < 0.5:
        return BELOW
    return ACROSS


def protocol_runs(runs: pd.DataFrame, budget: str = "quick", steps_overridden: bool = False) -> pd.DataFrame:
    """The runs (from `load_runs`) a protocol reads: at `budget`, at its own step count or with `--steps` where
    `steps_overridden`, no recipe."""
    overridden = runs.steps_overridden.fillna(False).astype(bool)
    return runs[(runs.budget == budget) & runs.recipe.isna() & (overridden == steps_overridden)]


def curve_scores(runs: pd.DataFrame, budget: str = "quick", steps_overridden: bool = False) -> pd.DataFrame:
    """Every evaluation of every finished run among `runs` (from `load_runs`) of a mode-coverage task that the
    protocol reads (`protocol_runs`): columns task, method, seed, step, score, seconds (training seconds to that
    step, scaled by the run's total over training time so evaluation counts as a user pays it)."""
    runs = protocol_runs(runs, budget, steps_overridden)
    runs = runs[runs.task.isin(MODE_TASKS) & runs.status.isin(["completed", "diverged"])]
    parts = []
    for _, run in runs.iterrows():
        curve = read_rows(Path(run["path"]), CURVE_FILE)
        if curve is None or "modes_captured" not in curve:
            continue
        total, wall = run.get("timing.total_seconds", math.nan), run.get("timing.wall_seconds", math.nan)
        scale = total / wall if np.isfinite(total) and np.isfinite(wall) and wall > 0 else 1.0
        parts.append(pd.DataFrame({
            "task": run["task"], "method": run["method"], "seed": run["seed"], "step": curve.step,
            "score": curve.modes_captured.rolling(WINDOW, min_periods=1).mean() / MODE_TASKS[run["task"]],
            "seconds": curve.wall_seconds * scale}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["task", "method", "seed", "step", "score", "seconds"])


def at_step(scores: pd.DataFrame, screen: Screen) -> pd.DataFrame:
    """Each run's row at the screen's step (its last evaluation at or before it), first `seeds` seeds only."""
    chosen = scores[scores.task.isin(screen.tasks) & (scores.step <= screen.steps)]
    last = chosen.sort_values("step").groupby(["task", "method", "seed"], sort=False).tail(1)
    ranks = last.groupby(["task", "method"]).seed.rank(method="first")
    return last[ranks <= screen.seeds]


def judge(scores: pd.DataFrame, screen: Screen) -> pd.DataFrame:
    """Per method (run on every task of the screen): IQM, P(method > vanilla) with its interval and verdict,
    and the screen's cost (seconds on `CORES` cores, one run per core)."""
    at = at_step(scores, screen)
    per_method = {method: [rows[rows.task == task].sort_values("seed").score.to_numpy(float)
                           for task in screen.tasks]
                  for method, rows in at.groupby("method")}
    per_method = {method: tasks for method, tasks in per_method.items() if all(len(t) for t in tasks)}
    rows = []
    for method, tasks in per_method.items():
        better = (stats.improvement(tasks, per_method[BASELINE]) if method != BASELINE and BASELINE in per_method
                  else stats.Estimate(math.nan, math.nan, math.nan, None))
        cost = at[at.method == method].seconds.sum() / CORES
        rows.append({"method": method, "iqm": float(stats.interquartile_mean(*tasks)), "p": better.value,
                     "p_low": better.low, "p_high": better.high,
                     "verdict": verdict(better) if method != BASELINE else None, "seconds": cost})
    return pd.DataFrame(rows).set_index("method")


def agreement(screen: pd.DataFrame, full: pd.DataFrame, methods) -> tuple[float, float]:
    """Kendall τ-b of the IQMs of `methods` under the screen and the full protocol, and the share of them
    (vanilla left out) whose verdict is the same."""
    methods = [m for m in methods if m in screen.index and m in full.index]
    tau = scipy_stats.kendalltau(screen.loc[methods, "iqm"], full.loc[methods, "iqm"]).statistic
    judged = [m for m in methods if m != BASELINE]
    same = np.mean([screen.at[m, "verdict"] == full.at[m, "verdict"] for m in judged]) if judged else math.nan
    return float(tau), float(same)


def split(methods) -> tuple[list[str], list[str]]:
    """The fixed split: methods in alphabetical order, even positions choose the screen, odd ones judge it;
    vanilla, the baseline, is in both."""
    ordered = sorted(m for m in methods if m != BASELINE)
    return [BASELINE, *ordered[0::2]], [BASELINE, *ordered[1::2]]


CANDIDATE_STEPS = (1000, 2000, 3000, 5000, 10000, 20000)
CANDIDATE_SEEDS = (1, 2, 3, 5)
COST_LIMIT = 600.0  # seconds on 2 CPU cores for a method of vanilla's cost


def study(records, budget: str = "quick", full_seeds: int = 10) -> tuple[pd.DataFrame, Screen]:
    """Every candidate screen's agreement with the full protocol (all tasks, all steps, `full_seeds` seeds) on
    both halves of the methods and its cost for vanilla and unrolled10, and the screen chosen: the best
    agreement on the choosing half within `COST_LIMIT` for vanilla (then τ, then cost)."""
    scores = curve_scores(load_runs(records), budget)
    tasks = tuple(sorted(set(scores.task)))
    last = int(scores.step.max())
    full = judge(scores, Screen(tasks, last, full_seeds))
    choosing, judging = split(full.index)
    rows = []
    task_sets = [(task,) for task in tasks] + ([tasks] if len(tasks) > 1 else [])
    for task_set, steps, seeds in itertools.product(task_sets, CANDIDATE_STEPS, CANDIDATE_SEEDS):
        if steps > last:
            continue
        screen = Screen(task_set, steps, seeds)
        judged = judge(scores, screen)
        tau_choose, same_choose = agreement(judged, full, choosing)
        tau_judge, same_judge = agreement(judged, full, judging)
        rows.append({"screen": screen.label(), "tasks": "+".join(task_set), "steps": steps, "seeds": seeds,
                     "tau_choosing": tau_choose, "verdicts_choosing": same_choose,
                     "tau_held_out": tau_judge, "verdicts_held_out": same_judge,
                     "vanilla_seconds": judged.seconds.get(BASELINE, math.nan),
                     "unrolled10_seconds": judged.seconds.get("unrolled10", math.nan)})
    table = pd.DataFrame(rows)
    affordable = table[table.vanilla_seconds <= COST_LIMIT]
    best = affordable.sort_values(["verdicts_choosing", "tau_choosing", "vanilla_seconds"],
                                  ascending=[False, False, True]).iloc[0]
    chosen = Screen(tuple(best.tasks.split("+")), int(best.steps), int(best.seeds))
    return table, chosen
