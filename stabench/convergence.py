"""Does each method converge on a game with a known equilibrium? Every registered method under both
schedules, trained from each seed's start (`dirac`: Mescheder et al. 2018's Dirac-GAN, from a point at
distance 1 from the equilibrium at the seed's angle), set beside what the literature says should happen there.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from stabench.errors import StabenchError
from stabench.hyperparams import defaults, field_types
from stabench.methods import METHODS
from stabench.records import write_file_atomically
from stabench.runner import check_writable, run
from stabench.table import escape_markdown
from stabench.tasks import TASKS

SCHEDULES = ("simultaneous", "alternating")
SEEDS = tuple(range(10))  # starts a row is trained from
CONVERGES, DIVERGES, UNKNOWN = "converges", "does not converge", "no published claim"
TABLE_FILE = "convergence.md"


@dataclass(frozen=True)
class Claim:
    """What a source says a method does near the equilibrium, per schedule."""

    simultaneous: str
    alternating: str
    source: str

    def of(self, schedule: str) -> str:
        return self.simultaneous if schedule == "simultaneous" else self.alternating


# Claims on the Dirac-GAN. They are local (near (0, 0)) and hold for a small enough learning rate.
# Where a source analyses simultaneous steps only, the alternating schedule has no published claim.
_PENALTY = "Mescheder et al. 2018: locally, eigenvalues -γ/2 ± √(γ²/4 - f'(0)²) at (0, 0)"
DIRAC_CLAIMS = {
    "vanilla": Claim(DIVERGES, DIVERGES, "Mescheder et al. 2018: eigenvalues ±i f'(0) at (0, 0); simultaneous "
                                         "steps spiral out, alternating steps circle"),
    "vanilla-ns": Claim(DIVERGES, DIVERGES, "theory: the non-saturating G loss has vanilla's Jacobian at (0, 0)"),
    "gradreg": Claim(CONVERGES, CONVERGES, "Mescheder et al. 2018 (the N&K gradient penalty); Nagarajan & Kolter "
                                           "2017: locally"),
    "gradreg-ns": Claim(CONVERGES, CONVERGES, "theory: the non-saturating G loss has gradreg's Jacobian at (0, 0)"),
    "wgan": Claim(DIVERGES, DIVERGES, "Mescheder et al. 2018, for the WGAN without clipping (see the note below)"),
    "wgan-noclip": Claim(DIVERGES, DIVERGES, "Mescheder et al. 2018 (their WGAN: no clipping)"),
    "wgan-gp": Claim(DIVERGES, DIVERGES, "Mescheder et al. 2018"),
    "r1": Claim(CONVERGES, CONVERGES, _PENALTY),
    "r2": Claim(CONVERGES, CONVERGES, _PENALTY),
    "r1-ns": Claim(CONVERGES, CONVERGES, _PENALTY + "; the non-saturating G loss has the same Jacobian there"),
    "r2-ns": Claim(CONVERGES, CONVERGES, _PENALTY + "; the non-saturating G loss has the same Jacobian there"),
    "consensus": Claim(CONVERGES, CONVERGES, "Mescheder et al. 2018; Mescheder et al. 2017: locally"),
    "sga": Claim(CONVERGES, UNKNOWN, "theory: eigenvalues -λf'(0)² ± i f'(0) at (0, 0) (Balduzzi et al. 2018 "
                                     "analyse simultaneous steps)"),
    "extragradient": Claim(CONVERGES, UNKNOWN, "theory: eigenvalues -ηf'(0)² ± i f'(0) at (0, 0); Gidel et al. "
                                               "2019 on bilinear games (simultaneous steps)"),
    "extra-adam": Claim(CONVERGES, UNKNOWN, "with the task's SGD it is extragradient (Gidel et al. 2019, "
                                            "simultaneous steps)"),
    "optimistic": Claim(CONVERGES, UNKNOWN, "Daskalakis et al. 2018 on bilinear games (simultaneous steps)"),
    "optimistic-adam": Claim(CONVERGES, UNKNOWN, "with the task's SGD it is optimistic gradient descent "
                                                 "(Daskalakis et al. 2018, simultaneous steps)"),
    "lookahead": Claim(CONVERGES, UNKNOWN, "Chavdarova et al. 2021 on bilinear games (simultaneous steps)"),
    **{f"unrolled{k}": Claim(CONVERGES, CONVERGES, f"theory: with SGD, {k} unrolled step{'s make' if k > 1 else ' makes'} "
                                                   f"gradreg's Jacobian at (0, 0) with η = {k} × lr")
       for k in (1, 5, 10, 15)},
}
CLAIMS = {"dirac": DIRAC_CLAIMS}
NO_CLAIM = Claim(UNKNOWN, UNKNOWN, "")

# Markdown under the Dirac-GAN's table (ours, so not escaped).
DIRAC_NOTES = [
    "Each seed starts at distance 1 from (0, 0), at an angle drawn from the seed. converges: from how many of "
    "the starts (ψ, θ) stays within 1e-3 of (0, 0) from some evaluation to the end of the run; steps_to_converge: "
    "the median of that first evaluation over the starts that converge; final distances: medians over the starts.",
    "The claims are local and for a small enough learning rate: a method that converges slowly can miss the "
    "budget (compare the final distances).",
    "`wgan` clips ψ to [-0.01, 0.01] after each of its 5 critic steps (the original recipe): it is not the "
    "unclipped WGAN of Mescheder et al.'s claim; `wgan-noclip` (no clipping, one critic step) is.",
]
NOTES = {"dirac": DIRAC_NOTES}


@dataclass
class ConvergenceRow:
    """One method under one schedule, from several starts: how many converged, or why there are no numbers."""

    method: str
    schedule: str
    metrics: dict[str, float | None]  # the medians of the task's final distances over the starts
    steps_to_converge: float | None  # the median over the starts that converge
    converged: int | None  # starts that converge; None: the runs were refused or failed
    starts: int
    expected: str
    source: str
    note: str = ""  # why there are no numbers, or where runs diverged


@dataclass
class ConvergenceTable:
    """The rows, and the Markdown file they were written to."""

    rows: list[ConvergenceRow]
    path: Path
    markdown: str


def check_request(task, budget: str, steps: int | None) -> None:
    """Refuse, in one line and before any run, a task without `steps_to_converge`, a budget it lacks, or
    a step count below 1."""
    if "steps_to_converge" not in task.metric_directions:
        with_metric = [entry.name for entry in TASKS if "steps_to_converge" in entry.metric_directions]
        raise StabenchError(f"task `{task.name}` reports no steps_to_converge; a convergence table needs a task "
                            f"with a known equilibrium such as {', '.join(f'`{name}`' for name in with_metric)}")
    if budget not in task.budgets:
        raise StabenchError(f"unknown budget `{budget}` for task `{task.name}`; choose from {', '.join(task.budgets)}")
    if steps is not None and steps < 1:
        raise StabenchError(f"`--steps` must be at least 1, got {steps}")


def _median(values) -> float | None:
    found = [value for value in values if value is not None]
    return statistics.median(found) if found else None


def convergence_row(method: str, task: str, schedule: str, *, budget: str, steps: int | None, out: Path,
                    seeds=SEEDS) -> ConvergenceRow:
    """Train (or reuse the finished records of) one method under one schedule from each seed's start, and say
    from how many it converged."""
    claim = CLAIMS.get(task, {}).get(method, NO_CLAIM)
    row = ConvergenceRow(method, schedule, {}, None, None, len(seeds), claim.of(schedule), claim.source)
    records = []
    for seed in seeds:
        try:
            record = run(method, task, seed=seed, budget=budget, steps=steps, overrides={"schedule": schedule},
                         out=out, progress=False)
        except StabenchError as error:  # a setting this task refuses: the row says why
            row.note = f"not run: {error}"
            return row
        if record.status == "failed":
            row.note = f"failed: {record.error}"
            return row
        records.append(record)
    row.metrics = {name: _median(record.metrics.get(name) for record in records)
                   for name in records[0].metric_directions if name != "steps_to_converge"}
    reached = [record.metrics.get("steps_to_converge") for record in records]
    row.converged = sum(value is not None for value in reached)
    row.steps_to_converge = _median(reached)
    diverged = [record for record in records if record.status == "diverged"]
    if diverged:
        row.note = (f"diverged from {len(diverged)} of {len(records)} starts: non-finite at step "
                    + ", ".join(str(record.diverged_at_step) for record in diverged))
    return row


def convergence_table(task: str = "dirac", methods: list[str] | None = None, budget: str = "quick", *,
                      steps: int | None = None, out: str | Path = "results/runs", seeds=SEEDS,
                      progress: bool = False) -> ConvergenceTable:
    """Run every method (None: all registered) under both schedules on `task` from each of `seeds`' starts,
    records under `out` (a finished one is reused), and write the Markdown table `out/<task>/convergence.md`."""
    seeds = tuple(seeds)
    if not seeds:
        raise StabenchError("no seed named; a convergence table needs at least one start")
    task_entry = TASKS.get(task)
    check_request(task_entry, budget, steps)
    names = [METHODS.get(name).name for name in methods] if methods is not None else METHODS.names()
    if not names:
        raise StabenchError("no method named; name some, or leave `--methods` out for all")
    out = Path(out)
    check_writable(out)
    cells = [(name, schedule) for name in names for schedule in SCHEDULES]
    rows = [convergence_row(name, task_entry.name, schedule, budget=budget, steps=steps, out=out, seeds=seeds)
            for name, schedule in tqdm(cells, disable=not progress, unit="run", desc=f"convergence on {task}")]
    markdown = convergence_markdown(rows, task_entry, budget, steps or task_entry.budgets[budget].steps, seeds)
    path = out / task_entry.name / TABLE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomically(path, lambda temporary: temporary.write_text(markdown))
    return ConvergenceTable(rows, path, markdown)


def _number(value) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:.3g}"


def _converges(row: ConvergenceRow) -> str:
    return "—" if row.converged is None else f"from {row.converged} of {row.starts} starts"


def convergence_markdown(rows: list[ConvergenceRow], task, budget: str, steps: int, seeds=SEEDS) -> str:
    """The rows as a Markdown table under a header that says what was run; every text cell escaped."""
    settings = {**defaults(task.Params), **{key: value for key, value in task.budgets[budget].settings.items()
                                            if key in field_types(task.Params)}}
    metrics = [name for name in task.metric_directions if name != "steps_to_converge"]
    header = ["method", "schedule", *(f"final {name}" for name in metrics), "steps_to_converge", "converges",
              "expected", "source", "note"]
    lines = [f"# Convergence on `{escape_markdown(task.name)}`", "",
             f"{escape_markdown(task.description)}. Budget `{escape_markdown(budget)}`: {steps} steps, "
             f"{len(seeds)} starts (seeds {', '.join(map(str, seeds))}); "
             f"settings {escape_markdown(' '.join(f'{key}={value}' for key, value in settings.items()))}.", "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = [escape_markdown(row.method), row.schedule, *(_number(row.metrics.get(name)) for name in metrics),
                 _number(row.steps_to_converge) if row.steps_to_converge is not None else "—", _converges(row),
                 row.expected, escape_markdown(row.source), escape_markdown(row.note)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *(f"- {note}" for note in NOTES.get(task.name, [])), ""]
    return "\n".join(lines)
