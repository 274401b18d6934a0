"""Each method against its definition: exact identities, finite differences, torch.optim itself."""
import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import stabench
from stabench.cell import resolve
from stabench.context import Context
from stabench.game import Batch, Game
from stabench.methods import METHODS
from stabench.methods.unrolled import Unrolled
from stabench.methods.wgan import WGAN, gradient_penalty, interpolation_weights
from stabench.optim import DifferentiableOptimizer, make_optimizer
from stabench.records import CURVE_FILE, read_rows
from stabench.runner import make_context, train
from stabench.seeds import sub_seed
from stabench.tasks.base import TaskParams

TINY = {"batch_size": 32, "latent_dim": 8, "hidden": 16}  # mog with small networks, for speed
DOUBLE = torch.float64


def seeded_(module: nn.Module, seed: int, scale: float = 0.7) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(scale * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))
    return module


def tiny_game(discriminator: nn.Module | None = None, seed: int = 0) -> Game:
    """A smooth 2-D game in float64 (tanh units, so finite differences see no kinks)."""
    discriminator = discriminator or nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    generator = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    sampling = torch.Generator().manual_seed(seed + 1)
    return Game(
        seeded_(discriminator.to(DOUBLE), seed), seeded_(generator.to(DOUBLE), seed + 2),
        lambda n: torch.randn(n, 2, generator=sampling, dtype=DOUBLE) + torch.tensor([1.0, -0.5], dtype=DOUBLE),
        lambda n: torch.randn(n, 3, generator=sampling, dtype=DOUBLE),
    )


def params_of(method, **overrides):
    return method.Params(**{**method.defaults(), **overrides})


def central_difference(function, parameters: dict, h: float = 1e-5) -> dict:
    """∂function()/∂parameters by central differences, perturbing the live parameters in place."""
    def evaluate_with(flat, i, entry):
        with torch.no_grad():
            flat[i] = entry
        return function().item()

    gradient = {}
    for name, parameter in parameters.items():
        flat, result = parameter.data.view(-1), torch.empty_like(parameter.data).view(-1)
        for i in range(flat.numel()):
            original = flat[i].item()
            up, down = evaluate_with(flat, i, original + h), evaluate_with(flat, i, original - h)
            flat[i] = original
            result[i] = (up - down) / (2 * h)
        gradient[name] = result.view_as(parameter)
    return gradient


def assert_dicts_close(actual: dict, expected: dict, **tolerance):
    assert actual.keys() == expected.keys()
    for name in actual:
        torch.testing.assert_close(actual[name], expected[name], **tolerance, msg=lambda m: f"{name}: {m}")


def gan_value(discriminator, generator, batch):
    """V of the saturating GAN, written out independently of stabench.game."""
    real, fake = discriminator(batch.real).squeeze(-1), discriminator(generator(batch.latent)).squeeze(-1)
    return -F.softplus(-real).mean() - F.softplus(fake).mean()


# --- the differentiable optimizer steps, against torch.optim ---------------------------------------

OPTIMIZERS = {
    "adam": TaskParams(optimizer="adam", lr=0.05, beta1=0.5, beta2=0.9),
    "rmsprop": TaskParams(optimizer="rmsprop", lr=0.01),
    "sgd": TaskParams(optimizer="sgd", lr=0.1),
}


def context(game: Game, kind: str = "adam", noise_seed: int = 0) -> Context:
    """A training context over `game` with the optimizer settings OPTIMIZERS[kind]."""
    return Context(game, OPTIMIZERS[kind], noise_seed)


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_differentiable_steps_equal_torch_optim_from_any_state(kind):
    network = seeded_(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).to(DOUBLE), 0)
    optimizer = make_optimizer(network.parameters(), OPTIMIZERS[kind])
    named = dict(network.named_parameters())
    gradients = torch.Generator().manual_seed(1)

    def random_direction():
        """Random, but zero on a dead unit's weights (whose second moments stay exactly 0)."""
        direction = {name: torch.randn(p.shape, generator=gradients, dtype=DOUBLE) for name, p in named.items()}
        direction["0.weight"][0] = 0
        return direction

    for starting_steps in (0, 2):  # from a fresh optimizer, then from one with moments and a step count
        for _ in range(starting_steps):
            for name, parameter in named.items():
                parameter.grad = random_direction()[name]
            optimizer.step()
        functional = DifferentiableOptimizer(optimizer, named)
        params = {name: p.detach().clone() for name, p in named.items()}
        for _ in range(3):
            direction = random_direction()
            params = functional.step(params, direction)
            for name, parameter in named.items():
                parameter.grad = direction[name]
            optimizer.step()
            assert_dicts_close(params, {name: p.detach() for name, p in named.items()}, rtol=1e-13, atol=1e-15)
            for name, parameter in named.items():
                for key, value in optimizer.state[parameter].items():
                    copied = functional.state[name][key]
                    if key == "step":
                        assert copied == float(value)
                    else:
                        torch.testing.assert_close(copied, value, rtol=1e-13, atol=1e-15)


def test_unrolling_an_unsupported_optimizer_setting_is_refused():
    network = nn.Linear(2, 1)
    with pytest.raises(ValueError, match="momentum"):
        DifferentiableOptimizer(torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9),
                                dict(network.named_parameters()))
    with pytest.raises(ValueError, match="AdamW"):
        DifferentiableOptimizer(torch.optim.AdamW(network.parameters()), dict(network.named_parameters()))


# --- unrolled ------------------------------------------------------------------------------------

def test_unrolled_with_k_0_is_exactly_the_vanilla_field():
    game = tiny_game()
    batch = game.sample_batch(16)
    vanilla, unrolled = METHODS.get("vanilla"), Unrolled("unrolled0", "k = 0", k=0)
    ctx = context(game)
    expected = vanilla.field(game, game.point(), batch, params_of(vanilla), ctx)
    actual = unrolled.field(game, game.point(), batch, params_of(unrolled), ctx)
    for mine, theirs in ((actual.d, expected.d), (actual.g, expected.g)):
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[name], theirs[name]) for name in mine)


def game_with_trained_optimizer(kind: str) -> tuple[Game, Context]:
    """A tiny game whose D optimizer has taken two real steps (non-zero moments, step count 2), and its context."""
    game = tiny_game()
    ctx = context(game, kind)
    vanilla = METHODS.get("vanilla")
    for _ in range(2):
        direction = vanilla.d_direction(game, game.point(), game.sample_batch(16), params_of(vanilla), ctx)
        for name, parameter in game.discriminator.named_parameters():
            parameter.grad = direction[name]
        ctx.d_optimizer.step()
    return game, ctx


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("k", [1, 3])
def test_unrolled_generator_gradient_is_the_derivative_through_k_torch_optim_steps(kind, k):
    game, ctx = game_with_trained_optimizer(kind)
    batch = game.sample_batch(16)
    unrolled = Unrolled(f"unrolled{k}", "", k=k)
    direction = unrolled.g_direction(game, game.point(), batch, params_of(unrolled), ctx)

    def value_after_unrolling():
        """V(D_k, G), with D_k taken by a copy of the real torch optimizer (its state included)."""
        discriminator = copy.deepcopy(game.discriminator)
        optimizer = type(ctx.d_optimizer)(discriminator.parameters(), **ctx.d_optimizer.defaults)
        optimizer.load_state_dict(copy.deepcopy(ctx.d_optimizer.state_dict()))  # else moments are shared
        for _ in range(k):
            ascent = torch.autograd.grad(gan_value(discriminator, game.generator, batch),
                                         list(discriminator.parameters()))
            for parameter, gradient in zip(discriminator.parameters(), ascent):
                parameter.grad = -gradient
            optimizer.step()
        return gan_value(discriminator, game.generator, batch)

    expected = central_difference(value_after_unrolling, game.point().g)
    assert_dicts_close(direction, expected, rtol=1e-6, atol=1e-9)
    # the unroll matters at these settings: the plain GAN's gradient is far from it
    vanilla = METHODS.get("vanilla").g_direction(game, game.point(), batch, params_of(METHODS.get("vanilla")), ctx)
    assert max((direction[n] - vanilla[n]).abs().max() for n in direction) > 1e-3


def test_unrolling_leaves_the_real_discriminator_and_its_optimizer_untouched():
    game, ctx = game_with_trained_optimizer("adam")
    parameters = {name: p.detach().clone() for name, p in game.discriminator.named_parameters()}
    state = copy.deepcopy(ctx.d_optimizer.state_dict())
    unrolled = METHODS.get("unrolled10")
    unrolled.g_direction(game, game.point(), game.sample_batch(16), params_of(unrolled), ctx)
    assert all(torch.equal(p, parameters[name]) for name, p in game.discriminator.named_parameters())
    after = ctx.d_optimizer.state_dict()["state"]
    assert all(torch.equal(after[i][key], value) for i, entry in state["state"].items() for key, value in entry.items())


def test_unrolling_through_a_dead_unit_gives_a_finite_gradient():
    """A zero D gradient makes Adam's second moment 0, where √ has an infinite derivative."""
    game = tiny_game(discriminator=nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)))
    with torch.no_grad():
        game.discriminator[0].bias[0] = -100.0  # unit 0 never fires: its weights get zero gradients
    unrolled = METHODS.get("unrolled10")
    direction = unrolled.g_direction(game, game.point(), game.sample_batch(16), params_of(unrolled), context(game))
    assert all(torch.isfinite(t).all() for t in direction.values())


def test_unrolled_discriminator_takes_one_ordinary_step():
    game, ctx = game_with_trained_optimizer("adam")
    batch = game.sample_batch(16)
    vanilla, unrolled = METHODS.get("vanilla"), METHODS.get("unrolled10")
    expected = vanilla.d_direction(game, game.point(), batch, params_of(vanilla), ctx)
    actual = unrolled.d_direction(game, game.point(), batch, params_of(unrolled), ctx)
    assert all(torch.equal(actual[name], expected[name]) for name in expected)
    assert unrolled.schedule(params_of(unrolled)).d_steps == 1


# --- gradreg -------------------------------------------------------------------------------------

@pytest.mark.parametrize("nonsaturating", [False, True])
def test_gradreg_penalty_gradient_is_the_derivative_of_eta_times_squared_d_gradient(nonsaturating):
    """gradreg's G direction is vanilla's (either G loss) plus the gradient of η‖∇_D V‖² of V."""
    game = tiny_game()
    batch = game.sample_batch(16)
    gradreg, vanilla = METHODS.get("gradreg"), METHODS.get("vanilla")
    eta = 0.5
    penalty_direction = {
        name: regularised - plain for (name, regularised), plain in zip(
            gradreg.g_direction(game, game.point(), batch,
                                params_of(gradreg, eta=eta, nonsaturating=nonsaturating), context(game)).items(),
            vanilla.g_direction(game, game.point(), batch, params_of(vanilla, nonsaturating=nonsaturating),
                                context(game)).values())
    }

    def penalty():
        d_gradient = torch.autograd.grad(gan_value(game.discriminator, game.generator, batch),
                                         list(game.discriminator.parameters()))
        return eta * sum((g * g).sum() for g in d_gradient)

    expected = central_difference(penalty, game.point().g)
    assert_dicts_close(penalty_direction, expected, rtol=1e-6, atol=1e-9)


# --- wgan and wgan-gp ----------------------------------------------------------------------------

def test_wgan_field_is_gradient_descent_ascent_on_the_linear_objective():
    game = tiny_game()
    batch = game.sample_batch(16)
    wgan = METHODS.get("wgan")
    field = wgan.field(game, game.point(), batch, params_of(wgan), context(game))
    critic = game.discriminator(batch.real).mean() - game.discriminator(game.generator(batch.latent)).mean()
    d_ascent = torch.autograd.grad(critic, list(game.discriminator.parameters()), retain_graph=True)
    g_descent = torch.autograd.grad(critic, list(game.generator.parameters()))
    assert_dicts_close(field.d, {n: -g for n, g in zip(field.d, d_ascent)}, rtol=1e-14, atol=1e-15)
    assert_dicts_close(field.g, dict(zip(field.g, g_descent)), rtol=1e-14, atol=1e-15)


def test_wgan_gp_penalty_on_a_linear_critic_is_lambda_times_squared_norm_excess():
    game = tiny_game(discriminator=nn.Linear(2, 1))
    batch = game.sample_batch(16)
    wgan_gp = METHODS.get("wgan-gp")
    params = params_of(wgan_gp, gp_weight=3.0)
    weight = game.discriminator.weight
    with torch.no_grad():
        weight.mul_(2)  # ‖w‖ well away from 1, where the penalty and its gradient are not small
    fake = game.generator(batch.latent).detach()  # the penalty needs no graph from its inputs
    alpha = interpolation_weights(game, context(game, noise_seed=5), batch)
    penalty = params.gp_weight * gradient_penalty(game, game.point().d, batch.real, fake, alpha)
    torch.testing.assert_close(penalty, params.gp_weight * (weight.norm() - 1) ** 2, rtol=1e-15, atol=0)

    def critic_loss():  # what the critic descends: λ(‖w‖ - 1)² - (E D(x) - E D(G(z)))
        value = game.discriminator(batch.real).mean() - game.discriminator(game.generator(batch.latent)).mean()
        return params.gp_weight * (weight.norm() - 1) ** 2 - value

    direction = wgan_gp.d_direction(game, game.point(), batch, params, context(game))
    assert_dicts_close(direction, central_difference(critic_loss, game.point().d), rtol=1e-8, atol=1e-10)


def test_wgan_gp_critic_direction_matches_a_finite_difference_on_a_nonlinear_critic():
    game = tiny_game()
    batch = game.sample_batch(16)
    wgan_gp = METHODS.get("wgan-gp")
    params = params_of(wgan_gp, gp_weight=2.0)
    direction = wgan_gp.d_direction(game, game.point(), batch, params, context(game, noise_seed=7))
    alpha = torch.rand((16, 1), generator=torch.Generator().manual_seed(sub_seed(7, batch.index)), dtype=DOUBLE)
    hidden, output = game.discriminator[0], game.discriminator[2]

    def critic_loss():
        """λ E(‖∇ₓD(x̂)‖ - 1)² - V, the input gradient of D(x) = v·tanh(Wx + b) + c in closed form."""
        fake = game.generator(batch.latent)
        mixed = alpha * batch.real + (1 - alpha) * fake
        slope = 1 - torch.tanh(hidden(mixed)) ** 2
        input_gradient = (slope * output.weight) @ hidden.weight
        penalty = ((input_gradient.norm(dim=1) - 1) ** 2).mean()
        return params.gp_weight * penalty - (game.discriminator(batch.real).mean() - game.discriminator(fake).mean())

    assert_dicts_close(direction, central_difference(critic_loss, game.point().d), rtol=1e-7, atol=1e-10)


def test_wgan_gp_field_is_a_function_of_parameters_batch_and_seed():
    """The same batch and noise seed draw the same interpolation weights however often the field is asked
    for (so its Jacobian is the Jacobian of one function); another seed or another batch draws others."""
    game = tiny_game()
    batch = game.sample_batch(16, index=3)
    wgan_gp = METHODS.get("wgan-gp")
    params = params_of(wgan_gp)

    def direction(seed, on=batch):
        return wgan_gp.d_direction(game, game.point(), on, params, context(game, noise_seed=seed))

    first, again, other = direction(1), direction(1), direction(2)
    renumbered = direction(1, Batch(batch.real, batch.latent, index=4))
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert any(not torch.equal(first[name], other[name]) for name in first)
    assert any(not torch.equal(first[name], renumbered[name]) for name in first)


class ClipWatcher(WGAN):
    """WGAN that records the largest |D parameter| each time the runner asks it for a direction."""

    def __init__(self):
        super().__init__("wgan", "records D's largest weight")
        self.largest = []

    def _watch(self, game):
        self.largest.append(max(float(p.detach().abs().max()) for p in game.discriminator.parameters()))

    def d_direction(self, game, point, batch, params, ctx):
        self._watch(game)
        return super().d_direction(game, point, batch, params, ctx)

    def g_direction(self, game, point, batch, params, ctx):
        self._watch(game)
        return super().g_direction(game, point, batch, params, ctx)


@pytest.mark.parametrize("schedule", ["alternating", "simultaneous"])
def test_wgan_clipping_keeps_every_d_parameter_inside_the_box_after_every_step(schedule):
    clip = 0.01
    watcher = ClipWatcher()
    cell = resolve(watcher, "mog", budget="smoke", steps=4,
                   overrides={**TINY, "clip": clip, "lr": 0.1, "schedule": schedule})
    game = cell.task.build(cell.task_params, cell.seeds, torch.device("cpu"))
    train(cell, game, make_context(cell, game), torch.device("cpu"))
    watcher._watch(game)  # and after the last step
    assert watcher.largest[0] > clip  # before any D step the weights are outside: clipping has work to do
    assert len(watcher.largest) > 10 and all(value <= clip for value in watcher.largest[1:])


def test_wgan_without_clipping_leaves_weights_alone():
    game = tiny_game()
    before = {name: p.detach().clone() for name, p in game.discriminator.named_parameters()}
    wgan = METHODS.get("wgan")
    wgan.constrain(game, params_of(wgan, clip=0.0))
    assert all(torch.equal(p, before[name]) for name, p in game.discriminator.named_parameters())
    wgan.constrain(game, params_of(wgan, clip=0.05))
    assert all(torch.equal(p, before[name].clamp(-0.05, 0.05)) for name, p in game.discriminator.named_parameters())


# --- every method on mog, and the command line ----------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS.names())
def test_every_registered_method_runs_on_mog_at_the_smoke_budget(tmp_path, method):
    record = stabench.run(method, "mog", budget="smoke", overrides=TINY, out=tmp_path, progress=False)
    assert record.status == "completed" and record.timing["steps"] == 300
    assert record.config["schedule"] == "alternating"
    assert 0 <= record.metrics["modes_captured"] <= 8 and math.isfinite(record.metrics["high_quality"])


@pytest.mark.parametrize("method", METHODS.names())
def test_every_registered_method_runs_with_simultaneous_updates(tmp_path, method):
    record = stabench.run(method, "mog", budget="smoke", steps=3, overrides={**TINY, "schedule": "simultaneous"},
                          out=tmp_path, progress=False)
    assert record.status == "completed" and record.config["schedule"] == "simultaneous"


def test_mog_reference_settings_reach_the_resolved_config():
    wgan = resolve("wgan", "mog").config
    assert (wgan["optimizer"], wgan["lr"], wgan["clip"], wgan["n_critic"]) == ("rmsprop", 5e-5, 0.01, 5)
    wgan_gp = resolve("wgan-gp", "mog").config
    assert (wgan_gp["gp_weight"], wgan_gp["n_critic"], wgan_gp["beta1"], wgan_gp["beta2"]) == (0.1, 5, 0.5, 0.9)
    assert METHODS.get("wgan-gp").defaults()["gp_weight"] == 10.0
    assert resolve("wgan", "mog", overrides={"clip": "0.05"}).config["clip"] == 0.05
    assert (resolve("unrolled1", "mog").config["k"], resolve("unrolled10", "mog").config["k"]) == (1, 10)


def test_a_row_name_means_one_algorithm_on_every_task():
    """Reference settings may scale a method (lr, eta, gp_weight), never switch its algorithm: no choice, flag or
    step count of a method differs from its registered default on any task."""
    from stabench.hyperparams import field_types
    from stabench.references import references_of
    from stabench.context import TrainingParams
    algorithm_switches = {"n_critic", "k"}
    for method in METHODS:
        name = method.name
        types = field_types(method.Params)
        switches = {key for key, kind in types.items() if kind is bool or getattr(kind, "__origin__", None) is not None
                    and str(kind).startswith("typing.Literal")} | (algorithm_switches & set(types))
        for reference in references_of(name):
            changed = {key: value for key, value in reference.settings.items()
                       if key in switches and value != method.defaults()[key]}
            assert not changed, f"{name} on {reference.task} switches {changed}: give the variant its own name"
            assert not set(reference.settings) - set(types) - set(field_types(TrainingParams)) - set(
                field_types(resolve(name, reference.task).task.Params))


def test_the_non_saturating_variants_have_their_own_names():
    assert METHODS.get("vanilla-ns").defaults()["nonsaturating"] and not METHODS.get("vanilla").defaults()["nonsaturating"]
    assert METHODS.get("gradreg-ns").defaults()["nonsaturating"]
    assert resolve("vanilla", "stacked-mnist").config["nonsaturating"] is False
    assert (resolve("wgan", "lq").config["clip"], resolve("wgan-noclip", "lq").config["clip"]) == (0.01, 0.0)
    assert [resolve(f"unrolled{k}", "mog").config["k"] for k in (5, 15)] == [5, 15]


def test_list_methods_shows_every_method_with_its_defaults_on_a_task(invoke):
    output = invoke("list", "methods", "--task", "mog").output
    for name in ("vanilla", "gradreg", "wgan", "wgan-gp", "unrolled1", "unrolled10"):
        assert f"\n{name}  (version 1)\n" in f"\n{output}"
    wgan_block = output.split("\nwgan  (version 1)\n")[1].split("\nwgan-gp  (version 1)\n")[0]
    assert "optimizer=rmsprop" in wgan_block and "clip=0.01" in wgan_block and "n_critic=5" in wgan_block
    assert "reference settings from: the original WGAN recipe" in wgan_block


def test_list_methods_without_a_task_shows_each_tasks_reference_settings(invoke):
    output = invoke("list", "methods", "--verbose").output
    assert "    on mog: optimizer=rmsprop lr=5e-05  [the original WGAN recipe" in output
    assert ("    on mog: gp_weight=0.1 n_critic=5 beta1=0.5 beta2=0.9  "
            "[the WGAN-GP toy script (igul222/improved_wgan_training, gan_toy.py)]\n") in output


@pytest.mark.parametrize("nonsaturating", [False, True])
def test_gradreg_records_its_penalty_share_in_the_curve(nonsaturating, tmp_path):
    gradreg = METHODS.get("gradreg")
    game = tiny_game()
    batch = game.sample_batch(16)
    params = params_of(gradreg, eta=0.3, nonsaturating=nonsaturating)
    found = gradreg.diagnostics(game, game.point(), batch, params, context(game))
    with torch.enable_grad():
        value = gan_value(game.discriminator, game.generator, batch)
        d_gradient = torch.autograd.grad(value, list(game.discriminator.parameters()))
    penalty = 0.3 * sum(float((g * g).sum()) for g in d_gradient)
    fake_logits = game.discriminator(game.generator(batch.latent)).squeeze(-1).detach()
    own = float(F.softplus(-fake_logits).mean()) if nonsaturating else float(value.detach())  # -E log D(G(z)) = E softplus(-logit)
    assert found["penalty"] == pytest.approx(penalty, rel=1e-12)
    assert found["objective"] == pytest.approx(own, rel=1e-12)
    assert found["penalty_share"] == pytest.approx(penalty / (abs(own) + penalty), rel=1e-12)
    record = stabench.run("gradreg", "mog", budget="smoke", steps=4, overrides={**TINY, "eval_samples": 100},
                          out=tmp_path, progress=False, spectrum=False)
    curve = read_rows(Path(record.path), CURVE_FILE)
    assert len(curve) >= 2 and curve["penalty_share"].between(0, 1).all()
    assert METHODS.get("vanilla").diagnostics(game, game.point(), batch, params_of(METHODS.get("vanilla")),
                                              context(game)) == {}


def test_g_lr_sets_gs_learning_rate_alone_and_its_replay_without_state():
    cell = resolve("unrolled1", "mog", budget="smoke", overrides={"lr": 3e-4, "g_lr": 1e-4})
    game = cell.build_game(torch.device("cpu"))
    ctx = make_context(cell, game)
    assert (ctx.d_optimizer.param_groups[0]["lr"], ctx.g_optimizer.param_groups[0]["lr"]) == (3e-4, 1e-4)
    stateless = Context(game, cell.task_params, 0, optimizer_state_known=False)
    stateless.replay("g")
    assert "G's update is replayed as plain gradient steps at lr=0.0001" in stateless.notes[0]
    same = resolve("unrolled1", "mog", budget="smoke", overrides={"lr": 3e-4})
    assert make_context(same, same.build_game(torch.device("cpu"))).g_optimizer.param_groups[0]["lr"] == 3e-4
