"""Named recipes: their settings replace the reference ones, their budgets apply, and the recipe is part of
the run's identity, its record and its row label."""
import pytest

import stabench
from stabench.cell import resolve
from stabench.errors import StabenchError
from stabench.recipes import _RECIPES, get_recipe, recipes, register_recipe
from stabench.table import leaderboard, load_runs
from stabench.tasks.base import Budget

TINY = {"batch_size": 16, "latent_dim": 4, "hidden": 8, "eval_samples": 200}


@pytest.fixture
def tiny_recipe():
    """A recipe for vanilla and wgan on mog with tiny networks and a 4-step smoke budget."""
    register_recipe("tiny-toy", "mog", methods={"vanilla": {"lr": 3e-4}, "wgan": {"clip": 0.05}},
                    settings=TINY, source="a test", budgets={"smoke": Budget(steps=4, eval_every=2)})
    yield "tiny-toy"
    del _RECIPES["tiny-toy"]


def test_a_recipe_replaces_the_reference_settings_and_brings_its_budget(tiny_recipe):
    shared = resolve("wgan", "mog", budget="smoke")
    assert (shared.config["optimizer"], shared.config["lr"]) == ("rmsprop", 5e-5)  # the reference settings
    under = resolve("wgan", "mog", budget="smoke", recipe=tiny_recipe)
    assert (under.config["optimizer"], under.config["lr"], under.config["clip"]) == ("adam", 1e-4, 0.05)
    assert (under.config["hidden"], under.steps, under.eval_every) == (8, 4, 2)
    assert resolve("vanilla", "mog", budget="quick", recipe=tiny_recipe).steps == 20_000  # the task's own budget
    overridden = resolve("vanilla", "mog", budget="smoke", recipe=tiny_recipe, overrides={"lr": 1e-3})
    assert overridden.config["lr"] == 1e-3  # the user's overrides come last


def test_the_recipe_is_part_of_the_runs_identity_record_and_row_label(tiny_recipe, tmp_path):
    under = resolve("vanilla", "mog", budget="smoke", recipe=tiny_recipe)
    same_settings = resolve("vanilla", "mog", budget="smoke", steps=4, overrides=dict(under.config))
    assert under.config == same_settings.config and under.run_id != same_settings.run_id
    record = stabench.run("vanilla", "mog", budget="smoke", recipe=tiny_recipe, out=tmp_path, progress=False,
                          spectrum=False)
    assert record.recipe == tiny_recipe and record.status == "completed"
    stabench.run("vanilla", "mog", budget="smoke", steps=4, overrides=TINY, out=tmp_path, progress=False,
                 spectrum=False)
    tables = leaderboard(load_runs(tmp_path), "mog")
    labels = sorted(label for table in tables.values() for label in table["method"])
    assert labels[0].startswith("vanilla") and "vanilla [tiny-toy]" in labels


def test_a_recipe_for_other_methods_or_an_unknown_name_is_one_clear_line(tiny_recipe):
    with pytest.raises(StabenchError, match=r"recipe `tiny-toy` is for vanilla, wgan on `mog`, not `gradreg` on `mog`"):
        resolve("gradreg", "mog", recipe=tiny_recipe)
    with pytest.raises(StabenchError, match="Did you mean `tiny-toy`"):
        get_recipe("tiny-tay", "vanilla", "mog")
    with pytest.raises(StabenchError, match="needs a source"):
        register_recipe("nameless", "mog", methods={"vanilla": {}}, source="")


def test_the_built_in_recipes_resolve_for_every_method_they_name():
    for recipe in recipes():
        for method in recipe.methods:
            cell = resolve(method, recipe.task, recipe=recipe.name)
            assert cell.recipe == recipe.name
            for key, value in recipe.settings_for(method).items():
                assert cell.config[key] == value


def test_the_cli_lists_recipes_and_runs_one(tiny_recipe, invoke, tmp_path):
    listed = invoke("list", "recipes").output
    assert "gulrajani-toy  (on mog; budgets: smoke 100 steps, quick 3000 steps, paper 100000 steps)" in listed
    assert "    wgan-gp: gp_weight=0.1 n_critic=5 optimizer=adam lr=0.0001 beta1=0.5 beta2=0.9" in listed
    result = invoke("run", "--method", "vanilla", "--task", "mog", "--budget", "smoke", "--recipe", tiny_recipe,
                    "--no-spectrum", "--quiet", "--json")
    assert result.exit_code == 0 and '"recipe": "tiny-toy"' in result.output
    wrong = invoke("sweep", "--methods", "gradreg", "--tasks", "mog", "--seeds", "0", "--budget", "smoke",
                   "--recipe", tiny_recipe, "--out", str(tmp_path))
    assert wrong.exit_code == 2
    assert wrong.stderr.strip().endswith("recipe `tiny-toy` is for vanilla, wgan on `mog`, not `gradreg` on `mog`")
