"""Seed-batched training: seed s of a stacked model trains as the single run of seed s does, keeps a record
of the same form, freezes alone when it diverges; an unbatchable method trains one seed at a time, noted."""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import stabench
from stabench import batched, graphs
from stabench.cell import resolve
from stabench.methods import METHODS
from stabench.methods.base import vouches
from stabench.methods.vanilla import Vanilla
from stabench.records import CURVE_FILE, RUN_FILE, read_state
from stabench.registry import load_plugin
from stabench.runner import Trainer, make_context
from stabench.stacked import StackedContext, StackedGame
from stabench.sweep import CellOptions, jobs, plan

CPU = torch.device("cpu")
TINY = {"mog": {"batch_size": 16, "latent_dim": 4, "hidden": 8}, "lq": {"batch_size": 16}, "dirac": {}}
# Stacking changes only the order of float32 sums (batched matrix products), so a seed drifts from its single
# run by rounding alone: about 3e-7 of a tensor's largest entry after 200 steps of every method on mog and lq.
RTOL = 1e-5
STEPS = {"unrolled5": 60, "unrolled10": 30, "unrolled15": 20, "wgan": 80, "wgan-gp": 80}  # 5 critic steps each


def stacked_trained(cells, steps):
    games = [cell.build_game(CPU) for cell in cells]
    stacked = StackedGame.of(games)
    trainer = Trainer(cells[0], stacked, StackedContext(stacked, cells[0].task_params, [c.seeds.noise for c in cells]))
    for _ in range(steps):
        trainer.step()
    return stacked


def single_trained(cell, steps):
    game = cell.build_game(CPU)
    trainer = Trainer(cell, game, make_context(cell, game))
    for _ in range(steps):
        trainer.step()
    return game


def worst_drift(stacked, seed, game) -> float:
    """The largest difference between seed `seed` of `stacked` and `game`, relative to each tensor's largest entry."""
    worst = 0.0
    for stacked_net, net in ((stacked.discriminator, game.discriminator), (stacked.generator, game.generator)):
        for (name, p), (_, q) in zip(stacked_net.state_dict().items(), net.state_dict().items()):
            assert torch.isfinite(q).all(), name
            worst = max(worst, float((p[seed] - q).abs().max() / q.abs().max().clamp_min(1e-30)))
    return worst


def assert_seeds_match(method, task, steps, rtol):
    cells = [resolve(method, task, seed=seed, budget="smoke", overrides=TINY[task]) for seed in (0, 1)]
    stacked = stacked_trained(cells, steps)
    for i, cell in enumerate(cells):
        drift = worst_drift(stacked, i, single_trained(cell, steps))
        assert drift <= rtol, f"{method} on {task}, seed {cell.seed}: {drift:.2e}"


@pytest.mark.parametrize("method", METHODS.names())
def test_a_seed_of_a_stacked_model_trains_as_its_single_run_on_mog(method):
    assert_seeds_match(method, "mog", STEPS.get(method, 200), RTOL)


@pytest.mark.slow
@pytest.mark.parametrize("method", [name for name in METHODS.names() if name != "vanilla-sn"])  # lq's D has no layer
def test_a_seed_of_a_stacked_model_trains_as_its_single_run_on_lq(method):
    assert_seeds_match(method, "lq", STEPS.get(method, 200), RTOL)


@pytest.mark.parametrize("method", ["vanilla", "gradreg", "consensus", "sga", "unrolled5", "extra-adam"])
def test_on_the_dirac_gan_stacking_adds_no_rounding(method):
    """One parameter per player: no sum whose order stacking could change, so the seeds are exact."""
    assert_seeds_match(method, "dirac", 200, 0.0)


def run_both(tmp_path, method="gradreg", seeds=(0, 1), steps=60, **options):
    common = dict(budget="smoke", steps=steps, overrides=TINY["mog"], progress=False, spectrum=False)
    stacked = batched.run_seeds(method, "mog", seeds=list(seeds), out=tmp_path / "batched", batched=True,
                                **common, **options)
    alone = [stabench.run(method, "mog", seed=seed, out=tmp_path / "single", **common) for seed in seeds]
    return stacked, alone


def test_a_batched_seed_keeps_a_single_runs_record(tmp_path):
    stacked, alone = run_both(tmp_path)
    for mine, theirs in zip(stacked, alone):
        assert mine.run_id == theirs.run_id and mine.status == theirs.status == "completed"
        assert mine.path.relative_to(tmp_path / "batched") == theirs.path.relative_to(tmp_path / "single")
        mine_json, theirs_json = (json.loads((r.path / RUN_FILE).read_text()) for r in (mine, theirs))
        assert mine_json.keys() == theirs_json.keys()
        assert mine_json["config"] == theirs_json["config"] and mine_json["plugins"] == theirs_json["plugins"]
        assert mine_json["timing"]["steps"] == 60 and mine.notes and "batched" in mine.notes[0] and not theirs.notes
        assert (mine.path / CURVE_FILE).read_text().splitlines()[0] == (theirs.path / CURVE_FILE).read_text().splitlines()[0]
        assert sorted(p.name for p in mine.path.iterdir()) == sorted(p.name for p in theirs.path.iterdir())
        ours, single = read_state(mine.path), read_state(theirs.path)
        assert ours["d_optimizer"]["state"][0]["step"] == single["d_optimizer"]["state"][0]["step"] == 60
        for net in ("discriminator", "generator"):
            for name, value in single[net].items():
                torch.testing.assert_close(ours[net][name], value, rtol=0, atol=RTOL * float(value.abs().max()))
        assert mine.metrics["mean_mode_distance"] == pytest.approx(theirs.metrics["mean_mode_distance"], rel=1e-4)
        ours_curve, single_curve = (pd.read_csv(r.path / CURVE_FILE) for r in (mine, theirs))
        assert (ours_curve["penalty_share"] > 0).all()  # gradreg's diagnostics, measured on the seed's own game
        np.testing.assert_allclose(ours_curve["penalty_share"], single_curve["penalty_share"], rtol=1e-3)
    again = batched.run_seeds("gradreg", "mog", seeds=[1, 0], budget="smoke", steps=60, overrides=TINY["mog"],
                              out=tmp_path / "batched", progress=False, spectrum=False, batched=True)
    assert [r.seed for r in again] == [1, 0] and all(r.reused for r in again)


def test_a_diverged_seed_is_recorded_at_its_step_and_frozen_while_the_others_go_on(tmp_path, monkeypatch):
    """Seed 1 is poisoned (NaN) after iteration 70: the evaluation at step 100 finds it; seed 0 trains on to
    150 exactly as it would alone, untouched by its neighbour's NaN."""
    own = graphs.iteration

    def poisoned(trainer, device):
        step = own(trainer, device)

        def iteration():
            batch = step()
            if trainer.iterations == 70:
                with torch.no_grad():
                    for p in trainer.game.generator.parameters():
                        p[1] = float("nan")
            return batch

        iteration.note = step.note
        return iteration

    monkeypatch.setattr(graphs, "iteration", poisoned)
    stacked, alone = run_both(tmp_path, "vanilla", steps=150)
    assert [r.status for r in stacked] == ["completed", "diverged"]
    assert stacked[1].diverged_at_step == 100 and stacked[1].timing["steps"] == 100
    assert stacked[0].timing["steps"] == 150
    frozen = read_state(stacked[1].path)["generator"]
    assert all(torch.isnan(value).all() for value in frozen.values())
    ours, single = read_state(stacked[0].path), read_state(alone[0].path)
    for net in ("discriminator", "generator"):
        for name, value in single[net].items():
            torch.testing.assert_close(ours[net][name], value, rtol=0, atol=RTOL * float(value.abs().max()))


def test_an_unbatchable_plugin_trains_one_seed_at_a_time_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))  # the plugin is gone after the test
    before = set(sys.modules)
    try:
        load_plugin("examples/instance_noise_plugin.py")  # overrides both directions and draws with ctx.noise
        method = METHODS.get("instance-noise")
        assert not vouches(method, "batchable")
        records = batched.run_seeds(method, "mog", seeds=[0, 1], budget="smoke", steps=5, overrides=TINY["mog"],
                                    out=tmp_path, progress=False, spectrum=False, batched=True)
        assert [r.status for r in records] == ["completed", "completed"]
        assert all("instance-noise` does not say it is batchable" in r.notes[0] for r in records)
    finally:
        for name in set(sys.modules) - before:  # so that a later load of the file registers it again
            if name.startswith("stabench_plugin_"):
                del sys.modules[name]


def test_overriding_a_hook_of_a_batchable_family_needs_its_own_word():
    class Plain(Vanilla):
        """A subclass that only changes settings stays batchable."""

    class Mean(Vanilla):
        def g_direction(self, game, point, batch, params, ctx):  # `.mean()` would mix the seeds' scales
            return super().g_direction(game, point, batch, params, ctx)

    class Vouched(Vanilla):
        batchable = True

        def g_direction(self, game, point, batch, params, ctx):
            return super().g_direction(game, point, batch, params, ctx)

    class Inherits(Mean):  # vouching without defining the hook vouches for nothing
        batchable = True

    assert vouches(Plain("plain", ""), "batchable") and not vouches(Mean("mean", ""), "batchable")
    assert vouches(Vouched("vouched", ""), "batchable") and not vouches(Vouched("vouched", ""), "capturable")
    assert not vouches(Inherits("inherits", ""), "batchable")
    capturable = {name for name in METHODS.names() if vouches(METHODS.get(name), "capturable")}
    assert {"vanilla", "gradreg", "wgan", "r1", "consensus", "sga", "vanilla-sn"} <= capturable
    assert not capturable & {"wgan-gp", "unrolled1", "extra-adam", "optimistic", "lookahead"}


def test_a_stacked_context_draws_each_seeds_own_noise():
    cells = [resolve("wgan-gp", "mog", seed=seed, budget="smoke", overrides=TINY["mog"]) for seed in (3, 4)]
    games = [cell.build_game(CPU) for cell in cells]
    stacked = StackedGame.of(games)
    ctx = StackedContext(stacked, cells[0].task_params, [cell.seeds.noise for cell in cells])
    batch = stacked.sample_batch(16, 7)
    drawn = ctx.random(batch, lambda generator: torch.rand(16, generator=generator))
    for i, (cell, game) in enumerate(zip(cells, games)):
        alone = make_context(cell, game).random(stacked.seed_batch(batch, i), lambda g: torch.rand(16, generator=g))
        assert torch.equal(drawn[i], alone)
    with pytest.raises(TypeError, match="ctx.random"):
        ctx.noise(batch)


def test_a_cuda_sweep_groups_each_settings_seeds_into_one_job(tmp_path):
    cells = plan(["vanilla", "gradreg"], ["mog"], [0, 1, 2], budget="smoke", out=tmp_path)
    grouped = jobs(cells, batched=True)
    assert [[(c.method, c.seed) for c in job] for job in grouped] == [
        [("vanilla", 0), ("vanilla", 1), ("vanilla", 2)], [("gradreg", 0), ("gradreg", 1), ("gradreg", 2)]]
    assert jobs(cells, batched=False) == [(cell,) for cell in cells]
    assert not CellOptions().batched


def test_the_cli_trains_several_seeds_one_by_one_on_the_cpu_unless_asked(invoke, tmp_path):
    args = ["run", "--method", "vanilla", "--task", "mog", "--seeds", "0-1", "--budget", "smoke", "--steps", "5",
            "--set", "hidden=8", "--set", "latent_dim=4", "--set", "batch_size=16", "--no-spectrum", "--json"]
    one_by_one = json.loads(invoke(*args, "--out", str(tmp_path / "a")).output)
    together = json.loads(invoke(*args, "--batched", "--out", str(tmp_path / "b")).output)
    assert [r["seed"] for r in one_by_one] == [r["seed"] for r in together] == [0, 1]
    assert [r["run_id"] for r in one_by_one] == [r["run_id"] for r in together]
    assert all(not r["notes"] for r in one_by_one) and all("batched" in r["notes"][0] for r in together)
    refused = invoke("run", "--method", "vanilla", "--task", "mog", "--seeds", "0-1", "--landscape")
    assert refused.exit_code == 2 and "--landscape" in refused.output and len(refused.output.splitlines()) == 1
    assert Path(tmp_path / "a" / "mog" / "vanilla").is_dir()
