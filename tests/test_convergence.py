"""The convergence table on the Dirac-GAN: each method under both schedules from each seed's start, beside
the published expectation; refused and failed methods keep a row that says why."""
import math

import pytest

from stabench.convergence import CONVERGES, DIVERGES, SCHEDULES, convergence_table
from stabench.methods import METHODS
from stabench.methods.vanilla import Vanilla

pytestmark = pytest.mark.usefixtures("one_thread")


def by_cell(table):
    return {(row.method, row.schedule): row for row in table.rows}


@pytest.fixture(scope="module")
def smoke_table(tmp_path_factory):
    return convergence_table(methods=["vanilla", "consensus", "vanilla-sn"], budget="smoke", seeds=(0, 1, 2),
                             out=tmp_path_factory.mktemp("runs"))


def test_simultaneous_vanilla_spirals_out(smoke_table):
    row = by_cell(smoke_table)["vanilla", "simultaneous"]
    # the plain GAN's field is σ(ψθ)·(-θ, ψ), a rotation: each simultaneous step multiplies |(ψ, θ)| by
    # √(1 + α²σ²) > 1, so the distance from (0, 0) only grows from its start at 1, from every start
    assert max(row.metrics["theta_distance"], row.metrics["psi_distance"]) > 1 / math.sqrt(2)
    assert row.steps_to_converge is None and (row.converged, row.starts) == (0, 3)
    assert row.expected == DIVERGES and "| vanilla | simultaneous |" in smoke_table.markdown
    assert "| from 0 of 3 starts |" in smoke_table.markdown


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_consensus_converges(smoke_table, schedule):
    row = by_cell(smoke_table)["consensus", schedule]
    assert (row.converged, row.starts) == (3, 3) and row.steps_to_converge is not None
    assert row.metrics["theta_distance"] < 1e-3 and row.metrics["psi_distance"] < 1e-3
    assert row.expected == CONVERGES and row.note == ""


def test_a_refused_method_keeps_a_row_with_its_reason(smoke_table):
    reason = ("failed: spectral normalization needs a linear or convolutional layer in D; "
              "this task's D (Slope) has none")
    for schedule in SCHEDULES:
        row = by_cell(smoke_table)["vanilla-sn", schedule]
        assert row.note == reason and row.converged is None and row.metrics == {}
    row = f"| vanilla-sn | simultaneous | n/a | n/a | — | — | no published claim |  | {reason} |"
    assert row in smoke_table.markdown


def test_the_table_is_written_with_one_row_per_method_and_schedule(smoke_table):
    assert smoke_table.path.name == "convergence.md" and smoke_table.path.parent.name == "dirac"
    assert smoke_table.path.read_text() == smoke_table.markdown
    rows = [line for line in smoke_table.markdown.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [line.split(" | ")[:2] for line in rows] == [
        [f"| {method}", schedule] for method in ("vanilla", "consensus", "vanilla-sn") for schedule in SCHEDULES]
    assert "not the unclipped WGAN" in smoke_table.markdown


def test_finished_records_are_reused(smoke_table):
    again = convergence_table(methods=["consensus"], budget="smoke", seeds=(0, 1, 2),
                              out=smoke_table.path.parent.parent)
    assert [row.steps_to_converge for row in again.rows] == [
        by_cell(smoke_table)["consensus", schedule].steps_to_converge for schedule in SCHEDULES]
    assert len(list((smoke_table.path.parent / "consensus").iterdir())) == 6  # a record per schedule and start


class Broken(Vanilla):
    """A method whose G direction raises, with Markdown in its message."""

    def g_direction(self, game, point, batch, params, ctx):
        raise RuntimeError("no | `field` *here*")


@pytest.fixture
def broken_method():
    method = METHODS.register(Broken("broken-test", "raises"))
    yield method.name
    METHODS.unregister(method.name)


def test_a_failed_method_keeps_a_row_and_its_error_is_escaped(tmp_path, broken_method):
    table = convergence_table(methods=[broken_method], budget="smoke", seeds=(0,), out=tmp_path)
    assert [row.note for row in table.rows] == ["failed: RuntimeError: no | `field` *here*"] * 2
    assert "failed: RuntimeError: no \\| \\`field\\` \\*here\\* |" in table.markdown


@pytest.mark.slow
def test_r1_converges_within_3000_steps(tmp_path):
    # R1's eigenvalues at (0, 0) are -γ/2 ± √(γ²/4 - 1/4) with γ = 10: the slow one, -0.025, needs
    # ln(1e-3) / ln(1 - 0.1·0.025) ≈ 2760 steps of lr 0.1
    table = convergence_table(methods=["r1"], budget="quick", steps=3000, seeds=(0, 1), out=tmp_path)
    for row in table.rows:
        assert row.converged == 2 and row.steps_to_converge is not None
        assert row.metrics["theta_distance"] < 1e-3 and row.expected == CONVERGES


def test_unknown_method_is_one_line(invoke, tmp_path):
    result = invoke("convergence", "--methods", "vanilla,vanila", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert result.output == ("stabench: error: unknown method `vanila`. Did you mean `vanilla`? "
                             "See `stabench list methods`.\n")
    assert not any(tmp_path.iterdir())  # refused before any run


@pytest.mark.parametrize("args, message", [
    (["--task", "lq1d"], "task `lq1d` reports no steps_to_converge; a convergence table needs a task with a known "
                         "equilibrium such as `dirac`"),
    (["--budget", "long"], "unknown budget `long` for task `dirac`; choose from smoke, quick, paper"),
    (["--steps", "0"], "`--steps` must be at least 1, got 0"),
])
def test_convergence_mistakes_are_one_line_and_exit_2(invoke, tmp_path, args, message):
    result = invoke("convergence", *args, "--out", str(tmp_path))
    assert result.exit_code == 2 and result.output == f"stabench: error: {message}\n"


def test_the_command_prints_the_table_and_where_it_is(invoke, tmp_path):
    result = invoke("convergence", "--methods", "consensus", "--budget", "smoke", "--seeds", "0-1", "--quiet",
                    "--out", str(tmp_path))
    assert result.exit_code == 0
    table = (tmp_path / "dirac" / "convergence.md").read_text()
    assert result.output == table + f"wrote {tmp_path / 'dirac' / 'convergence.md'}\n"
    assert "| consensus | simultaneous |" in table


def test_each_seed_starts_the_dirac_gan_at_its_own_angle_at_distance_one():
    import torch

    from stabench.cell import resolve
    from stabench.errors import StabenchError
    from stabench.tasks.dirac import MESCHEDER_START

    starts = []
    for seed in range(10):
        game = resolve("vanilla", "dirac", seed=seed).build_game(torch.device("cpu"))
        starts.append((game.discriminator.psi.item(), game.generator.theta.item()))
    assert all(math.isclose(math.hypot(*start), 1.0, rel_tol=1e-6) for start in starts)
    assert len({round(math.atan2(theta, psi), 4) for psi, theta in starts}) == 10  # ten different starts
    again = resolve("vanilla", "dirac", seed=3).build_game(torch.device("cpu"))
    assert (again.discriminator.psi.item(), again.generator.theta.item()) == starts[3]
    fixed = resolve("vanilla", "dirac", seed=7, overrides=MESCHEDER_START).build_game(torch.device("cpu"))
    assert (fixed.discriminator.psi.item(), fixed.generator.theta.item()) == (1.0, 1.0)
    with pytest.raises(StabenchError, match="set both `init_psi` and `init_theta`"):
        resolve("vanilla", "dirac", overrides={"init_psi": 1.0}).build_game(torch.device("cpu"))
