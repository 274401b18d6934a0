"""The wave-2 stabilizers against their definitions: finite differences and dense Jacobians for each
direction, hand-written updates for the stateful ones, and closed-form equilibrium spectra on the
Dirac-GAN and on lq."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from stabench.cell import resolve
from stabench.context import Context
from stabench.errors import StabenchError
from stabench.game import Field, squared_norm
from stabench.methods import METHODS
from stabench.runner import Trainer, make_context
from stabench.spectra import FieldMap, analysis_field, by_real_part, dense_jacobian, game_spectrum
from stabench.tasks.base import TaskParams
from test_methods import assert_dicts_close, central_difference, params_of, tiny_game

pytestmark = pytest.mark.usefixtures("one_thread")

SGD = TaskParams(optimizer="sgd", lr=0.05)
ADAM = TaskParams(optimizer="adam", lr=0.05, beta1=0.5, beta2=0.9)


def method_and_params(name, **overrides):
    method = METHODS.get(name)
    return method, params_of(method, **overrides)


def plain(game, point, batch):
    """The plain GAN's descent directions, from the registered `vanilla`."""
    vanilla, params = method_and_params("vanilla")
    return vanilla.field(game, point, batch, params, Context(game, SGD, 0))


def flat(field: Field) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in (*field.d.values(), *field.g.values())])


# --- directions ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, penalised", [("r1", "real"), ("r2", "fake")])
def test_r1_r2_add_gamma_times_the_input_gradients_parameter_gradient_to_ds_direction(name, penalised):
    game = tiny_game()
    batch = game.sample_batch(16)
    method, params = method_and_params(name, gamma=3.0)
    direction = method.d_direction(game, game.point(), batch, params, Context(game, SGD, 0))

    def penalty():  # γ/2 E‖∇ₓD(x)‖², the input gradient by autograd, the parameter gradient by differences
        samples = batch.real if penalised == "real" else game.generator(batch.latent).detach()
        samples = samples.clone().requires_grad_(True)
        gradient, = torch.autograd.grad(game.discriminator(samples).sum(), samples)
        return 1.5 * gradient.pow(2).sum(1).mean()

    expected_extra = central_difference(penalty, dict(game.discriminator.named_parameters()))
    plain_d = plain(game, game.point(), batch).d
    assert_dicts_close({k: direction[k] - plain_d[k] for k in direction}, expected_extra, rtol=1e-6, atol=1e-8)


def test_r1_on_a_linear_discriminator_is_weight_decay_on_its_weight():
    game = tiny_game(discriminator=nn.Linear(2, 1))  # ∇ₓD = w everywhere: the penalty is γ/2 ‖w‖²
    batch = game.sample_batch(8)
    method, params = method_and_params("r1", gamma=4.0)
    direction = method.d_direction(game, game.point(), batch, params, Context(game, SGD, 0))
    plain_d = plain(game, game.point(), batch).d
    torch.testing.assert_close(direction["weight"] - plain_d["weight"], 4.0 * game.discriminator.weight.detach())
    torch.testing.assert_close(direction["bias"], plain_d["bias"])


def test_consensus_adds_gamma_times_the_gradient_of_half_the_squared_field():
    game = tiny_game()
    batch = game.sample_batch(16)
    method, params = method_and_params("consensus", gamma=0.7)
    field = method.field(game, game.point(), batch, params, Context(game, SGD, 0))

    def half_squared_field():
        with torch.enable_grad():
            return 0.5 * flat(plain(game, game.point(), batch)).pow(2).sum()

    expected = central_difference(half_squared_field, {**dict(game.discriminator.named_parameters()),
                                                       **{"g." + k: v for k, v in game.generator.named_parameters()}})
    plain_field = plain(game, game.point(), batch)
    for name in field.d:
        torch.testing.assert_close(field.d[name] - plain_field.d[name], 0.7 * expected[name], rtol=1e-6, atol=1e-8)
    for name in field.g:
        torch.testing.assert_close(field.g[name] - plain_field.g[name], 0.7 * expected["g." + name], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("align", [False, True])
def test_sga_is_xi_plus_lambda_a_transpose_xi_with_the_dense_antisymmetric_part(align):
    game = tiny_game()
    batch = game.sample_batch(16)
    method, params = method_and_params("sga", lam=0.3, align=align)
    actual = flat(method.field(game, game.point(), batch, params, Context(game, SGD, 0))).detach()
    vanilla, vanilla_params = method_and_params("vanilla")
    copied = copy.deepcopy(game)
    copied.differentiable = True
    field_map = FieldMap(vanilla, vanilla_params, copied, batch, Context(copied, SGD, 0))
    theta = field_map.flatten(copied.point())
    xi = -field_map.at(theta)  # h = -ξ
    hessian = -dense_jacobian(field_map, theta)  # H = ∂ξ
    antisymmetric = (hessian - hessian.T) / 2
    adjustment = antisymmetric.T @ xi
    sign = 1.0
    if align:
        hamiltonian_gradient = hessian.T @ xi
        sign = float(torch.sign((xi @ hamiltonian_gradient) * (adjustment @ hamiltonian_gradient) / len(xi) + 0.1))
    torch.testing.assert_close(actual, xi + 0.3 * sign * adjustment, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("eta", [None, 0.3])
def test_extragradient_takes_the_field_at_the_extrapolated_point(eta):
    game = tiny_game()
    batch = game.sample_batch(16)
    method, params = method_and_params("extragradient", extrapolation=eta)
    ctx = Context(game, SGD, 0)
    actual = method.field(game, game.point(), batch, params, ctx)
    step = SGD.lr if eta is None else eta
    moved = copy.deepcopy(game)
    here = plain(game, game.point(), batch)
    with torch.no_grad():
        for name, p in moved.discriminator.named_parameters():
            p -= step * here.d[name]
        for name, p in moved.generator.named_parameters():
            p -= step * here.g[name]
    torch.testing.assert_close(flat(actual), flat(plain(moved, moved.point(), batch)), rtol=1e-12, atol=1e-14)


def test_extra_adam_extrapolates_with_adams_own_step_and_state():
    game = tiny_game()
    ctx = Context(game, ADAM, 0)
    for index in range(3):  # give Adam moments and a step count
        warm = plain(game, game.point(), game.sample_batch(16, index))
        ctx.step("d", warm.d)
        ctx.step("g", warm.g)
    batch = game.sample_batch(16, 9)
    method, params = method_and_params("extra-adam")
    actual = method.field(game, game.point(), batch, params, ctx)
    moved = copy.deepcopy(game)
    moved_ctx = Context(moved, ADAM, 0)
    moved_ctx.load_state_dict(ctx.state_dict())
    here = plain(moved, moved.point(), batch)
    moved_ctx.step("d", here.d)
    moved_ctx.step("g", here.g)
    torch.testing.assert_close(flat(actual), flat(plain(moved, moved.point(), batch)), rtol=1e-10, atol=1e-12)


# --- stateful updates, against hand-written loops ------------------------------------------------------

def simultaneous_cell(name, **overrides):
    """A tiny-mog cell of `name` trained simultaneously with plain SGD (so updates are easy to write out)."""
    return resolve(name, "mog", overrides={"batch_size": 16, "latent_dim": 3, "hidden": 5, "optimizer": "sgd",
                                           "lr": 0.05, "schedule": "simultaneous", **overrides})


def parameters(game) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in (*game.discriminator.parameters(), *game.generator.parameters())])


def reference_steps(cell, steps, update):
    """Parameters after `steps` hand-written updates x ← update(x, F(x), t), F the plain field on the trainer's batches."""
    game = cell.build_game(torch.device("cpu"))
    numbered = Trainer(cell, game, make_context(cell, game))  # only for its batches, drawn in the trainer's order
    vanilla, params = method_and_params("vanilla")
    x = parameters(game)
    for t in range(steps):
        field_map = FieldMap(vanilla, params, game, numbered.batch(), Context(game, cell.task_params, 0))
        x = update(x, -field_map.at(x), t)
    return x


def trained(cell, steps):
    game = cell.build_game(torch.device("cpu"))
    ctx = make_context(cell, game)
    trainer = Trainer(cell, game, ctx)
    for _ in range(steps):
        trainer.step()
    return game, ctx, trainer


def test_optimistic_gradient_descent_is_x_minus_lr_times_twice_f_now_minus_f_before():
    cell = simultaneous_cell("optimistic")
    previous = {}

    def ogd(x, field, t):
        before = previous.get("f", field)
        previous["f"] = field
        return x - 0.05 * (2 * field - before)

    game, _, _ = trained(cell, 4)
    torch.testing.assert_close(parameters(game), reference_steps(cell, 4, ogd), rtol=1e-5, atol=1e-6)


def test_optimistic_adam_takes_twice_adams_step_minus_the_previous_one():
    cell = simultaneous_cell("optimistic-adam", optimizer="adam", lr=0.01)
    game = cell.build_game(torch.device("cpu"))
    adam_parameter = torch.nn.Parameter(parameters(game))
    adam = torch.optim.Adam([adam_parameter], lr=0.01, betas=(cell.task_params.beta1, cell.task_params.beta2),
                            eps=cell.task_params.eps)
    previous = {}

    def optimistic_adam(x, field, t):
        with torch.no_grad():
            adam_parameter.copy_(x)
        adam_parameter.grad = field.clone()
        adam.step()
        update = adam_parameter.detach() - x
        before = previous.get("update", update)
        previous["update"] = update
        return x + 2 * update - before

    trained_game, _, _ = trained(cell, 4)
    torch.testing.assert_close(parameters(trained_game), reference_steps(cell, 4, optimistic_adam), rtol=1e-5, atol=1e-6)


def test_lookahead_moves_slow_weights_alpha_towards_the_fast_ones_every_k_iterations():
    cell = simultaneous_cell("lookahead", k=2, alpha=0.25)
    slow = {}

    def lookahead(x, field, t):
        slow.setdefault("x", x.clone())
        fast = x - 0.05 * field
        if (t + 1) % 2 == 0:
            slow["x"] = slow["x"] + 0.25 * (fast - slow["x"])
            return slow["x"].clone()
        return fast

    game, _, _ = trained(cell, 5)
    torch.testing.assert_close(parameters(game), reference_steps(cell, 5, lookahead), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["optimistic", "optimistic-adam", "lookahead"])
def test_method_state_survives_saving_and_loading(name):
    cell = simultaneous_cell(name, optimizer="adam", lr=0.01)
    straight, _, _ = trained(cell, 6)
    game, ctx, trainer = trained(cell, 3)
    saved = copy.deepcopy({"d": game.discriminator.state_dict(), "g": game.generator.state_dict(), **ctx.state_dict()})
    resumed = cell.build_game(torch.device("cpu"))
    resumed.discriminator.load_state_dict(saved["d"])
    resumed.generator.load_state_dict(saved["g"])
    resumed.sample_real, resumed.sample_latent = game.sample_real, game.sample_latent  # the data stream goes on
    resumed_ctx = make_context(cell, resumed)
    resumed_ctx.load_state_dict(saved)
    resumed_trainer = Trainer(cell, resumed, resumed_ctx)
    resumed_trainer.batches, resumed_trainer.iterations = trainer.batches, trainer.iterations
    for _ in range(3):
        resumed_trainer.step()
    torch.testing.assert_close(parameters(resumed), parameters(straight))


# --- spectral normalization ----------------------------------------------------------------------------

def test_spectral_norm_trains_the_unnormalised_weights_of_a_d_with_unit_top_singular_values():
    cell = resolve("vanilla-sn", "mog", overrides={"batch_size": 16, "latent_dim": 3, "hidden": 6})
    game = cell.build_game(torch.device("cpu"))
    assert any("parametrizations.weight.original" in name for name in game.point().d)
    field_map, _ = analysis_field(cell)
    assert field_map.size == sum(p.numel() for p in (*game.discriminator.parameters(), *game.generator.parameters()))
    ctx = make_context(cell, game)
    trainer = Trainer(cell, game, ctx)
    for _ in range(30):
        trainer.step()
    for module in game.discriminator.modules():
        if isinstance(module, nn.Linear):
            top = torch.linalg.matrix_norm(module.weight.detach(), ord=2)  # the normalised weight
            assert top == pytest.approx(1.0, abs=0.02)
            assert torch.linalg.matrix_norm(module.parametrizations.weight.original.detach(), ord=2) != pytest.approx(1.0)


def test_spectral_norm_on_a_d_without_a_linear_layer_is_one_clear_error():
    with pytest.raises(StabenchError, match="needs a linear or convolutional layer"):
        resolve("vanilla-sn", "dirac").build_game(torch.device("cpu"))


# --- closed-form equilibrium spectra -------------------------------------------------------------------
# Dirac-GAN: the plain field's Jacobian is J = [[0, -a], [a, 0]] with a = f'(0) (1/2 GAN, 1 WGAN), J² = -a²I.

def dirac_eigenvalues(name, overrides):
    cell = resolve(name, "dirac", overrides=overrides)
    game = cell.build_game(torch.device("cpu"))
    return game_spectrum(cell, game, make_context(cell, game), at_equilibrium=True)


def pair(real, imaginary_squared):
    root = np.sqrt(complex(imaginary_squared))
    return by_real_part(np.array([real + root, real - root]))


@pytest.mark.parametrize("k", [1, 5, 10, 15])
def test_dirac_gan_unrolled_is_gradreg_with_eta_k_times_the_lr(k):
    """Linearised, k SGD steps of D (lr α, no optimizer state at the equilibrium) move ψ by -kαf'(0)θ, and G's
    gradient through them adds 2kαf'(0)²θ: J = [[0, -a], [a, -2kαa²]], gradreg's with η = kα."""
    a, alpha = 0.5, 0.1
    spectrum = dirac_eigenvalues(f"unrolled{k}", {})
    eta = k * alpha
    np.testing.assert_allclose(spectrum.eigenvalues, pair(-eta * a**2, eta**2 * a**4 - a**2), atol=1e-12)


@pytest.mark.parametrize("loss, a", [("gan", 0.5), ("wgan", 1.0)])
@pytest.mark.parametrize("name, overrides, expected", [
    ("r1", {"gamma": 0.3}, lambda a: pair(-0.15, 0.15**2 - a**2)),
    ("r2", {"gamma": 3.0}, lambda a: pair(-1.5, 1.5**2 - a**2)),
    ("consensus", {"gamma": 0.4}, lambda a: pair(-0.4 * a**2, -a**2)),
    ("sga", {"lam": 0.5}, lambda a: pair(-0.5 * a**2, -a**2)),
    ("sga", {"lam": 0.5, "align": False}, lambda a: pair(-0.5 * a**2, -a**2)),
    ("extragradient", {}, lambda a: pair(-0.1 * a**2, -a**2)),  # η = the task's lr, 0.1
    ("extragradient", {"extrapolation": 0.7}, lambda a: pair(-0.7 * a**2, -a**2)),
    ("extra-adam", {}, lambda a: pair(-0.1 * a**2, -a**2)),  # no Adam state at the equilibrium: SGD at the lr
    ("optimistic", {}, lambda a: pair(0.0, -a**2)),  # the plain field, labelled
    ("optimistic-adam", {}, lambda a: pair(0.0, -a**2)),
    ("lookahead", {}, lambda a: pair(0.0, -a**2)),
])
def test_dirac_gan_equilibrium_eigenvalues_of_every_stabilizer(name, overrides, expected, loss, a):
    spectrum = dirac_eigenvalues(name, {**overrides, "loss": loss})
    np.testing.assert_allclose(spectrum.eigenvalues, expected(a), atol=1e-12)
    assert spectrum.field_norm == 0.0
    if METHODS.get(name).spectrum_note:
        assert METHODS.get(name).spectrum_note in spectrum.notes


# lq (dim 2): each method's equilibrium Jacobian as a function of the plain one J, itself checked against the
# paper's Appendix D in test_lq.py.

LQ_D_SIZE = 2 * 2 + 2  # D's parameters (W₂, w₁) lead the lq (dim 2) parameter vector


def lq_jacobian(name, overrides=None):
    cell = resolve(name, "lq", overrides={"dim": 2, **(overrides or {})})
    field_map, equilibrium = analysis_field(cell)
    return dense_jacobian(field_map, field_map.flatten(equilibrium)), field_map


def input_gradient_moments(field_map) -> torch.Tensor:
    """E MᵀM over the batch, M = ∂(∇ₓD)/∂(W₂, w₁) for D(x) = xᵀW₂x + w₁ᵀx: ∂(∇ₓD)ᵢ/∂W₂ⱼₖ = δᵢⱼxₖ + δᵢₖxⱼ, ∂/∂w₁ⱼ = δᵢⱼ."""
    real = field_map.batch.real
    n = real.shape[1]
    eye = torch.eye(n, dtype=real.dtype)
    total = 0
    for x in real:
        by_w2 = torch.einsum("ij,k->ijk", eye, x) + torch.einsum("ik,j->ijk", eye, x)
        m = torch.cat([by_w2.reshape(n, n * n), eye], dim=1)
        total = total + m.T @ m
    return total / len(real)


@pytest.mark.parametrize("name, overrides, closed_form", [
    ("consensus", {"gamma": 0.5}, lambda J: J - 0.5 * J.T @ J),
    ("sga", {"lam": 0.8, "align": False}, lambda J: J + 0.8 * (J - J.T) @ J / 2),
    ("extragradient", {"extrapolation": 0.3}, lambda J: J + 0.3 * J @ J),
    ("optimistic", {}, lambda J: J),
    ("lookahead", {}, lambda J: J),
])
def test_lq_equilibrium_jacobian_of_every_stabilizer_is_its_closed_form_in_the_plain_one(name, overrides, closed_form):
    plain_jacobian, _ = lq_jacobian("vanilla")
    jacobian, _ = lq_jacobian(name, overrides)
    torch.testing.assert_close(jacobian, closed_form(plain_jacobian), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["r1", "r2"])
def test_lq_r1_r2_subtract_gamma_times_the_input_gradient_moments_from_ds_block(name):
    plain_jacobian, field_map = lq_jacobian("vanilla")
    jacobian, _ = lq_jacobian(name, {"gamma": 2.0})
    expected = plain_jacobian.clone()
    # At the equilibrium G's samples are the data's, so R2's moments are R1's.
    expected[:LQ_D_SIZE, :LQ_D_SIZE] -= 2.0 * input_gradient_moments(field_map)
    torch.testing.assert_close(jacobian, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k", [1, 5, 15])
def test_lq_unrolled_is_k_linearised_sgd_steps_of_d_seen_through_by_g(k):
    """D's k steps (no optimizer state at the equilibrium: SGD at the lr α) give δψₖ = Aᵏδψ + Sδθ with
    A = I + αJ_DD, S = Σ_(j<k) Aʲ αJ_DG; G differentiates V(θ, ψₖ(θ)) through them, so its row is
    J_GD δψₖ + J_GG δθ − Sᵀ(J_DD δψₖ + J_DG δθ). On dirac (J_DD = 0) this is gradreg's with η = kα."""
    plain_jacobian, _ = lq_jacobian("vanilla")
    jacobian, _ = lq_jacobian(f"unrolled{k}")
    lr = resolve(f"unrolled{k}", "lq").task_params.lr
    dd, dg = plain_jacobian[:LQ_D_SIZE, :LQ_D_SIZE], plain_jacobian[:LQ_D_SIZE, LQ_D_SIZE:]
    gd, gg = plain_jacobian[LQ_D_SIZE:, :LQ_D_SIZE], plain_jacobian[LQ_D_SIZE:, LQ_D_SIZE:]
    a = torch.eye(LQ_D_SIZE, dtype=dd.dtype) + lr * dd
    s = sum(torch.linalg.matrix_power(a, j) for j in range(k)) @ (lr * dg)
    a_k = torch.linalg.matrix_power(a, k)
    g_row = torch.cat([gd @ a_k - s.T @ dd @ a_k, gg + gd @ s - s.T @ dd @ s - s.T @ dg], dim=1)
    expected = torch.cat([torch.cat([dd, dg], dim=1), g_row])
    torch.testing.assert_close(jacobian, expected, rtol=1e-10, atol=1e-12)
