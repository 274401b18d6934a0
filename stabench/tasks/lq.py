"""The linear-quadratic GANs of the paper: `lq` (Appendix D, a Gaussian) and `lq1d` (Figure 3).

Both have a known equilibrium, so their Jacobian spectra can be checked against the paper's closed
forms (`stabench spectrum --at equilibrium`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from stabench.errors import StabenchError
from stabench.game import Batch, Game, Point
from stabench.hyperparams import hyperparameter
from stabench.plots import compare_samples
from stabench.tasks.base import Budget, Task, TaskParams

BUDGETS = {  # as for `mog`
    "smoke": Budget(steps=300, eval_every=50),
    "quick": Budget(steps=20_000, eval_every=250, spectrum_every=500),  # a dense spectrum of a few parameters
    "paper": Budget(steps=100_000, eval_every=1000, spectrum_every=2000),
}


@dataclass
class LqParams(TaskParams):
    """`mean`: `dim` numbers separated by commas, e.g. `1,-0.5`. `cov`: rows separated by `;`, entries
    by commas, e.g. `1,0.3;0.3,0.5`, symmetric positive definite. Empty means the default for `dim`:
    μ_i = (-1)^i / (i+1) and Σ_ij = 0.5^|i-j| / sqrt((i+1)(j+1)) (i, j from 0; correlated, not isotropic).
    """

    dim: int = 2
    mean: str = ""
    cov: str = ""
    # the initial point is this far (per entry, Gaussian) from D = 0, G = (I, 0)
    init_scale: float = hyperparameter(0.1, at_least=0)
    # The exact evaluation batch of spectra: whitened, so its mean and covariance are exact; its third
    # and fourth moments (in J_DD) are off the population's by about 1/sqrt(spectrum_batch).
    spectrum_batch: int = hyperparameter(16384, at_least=2)
    batch_size: int = hyperparameter(256, at_least=1)
    lr: float = hyperparameter(1e-3, above=0)

    def __post_init__(self):
        data_distribution(self)  # a malformed mean or cov is the user's mistake: say so before any work


def _numbers(text: str, key: str) -> list[float]:
    try:
        numbers = [float(item) for item in text.split(",")]
    except ValueError:
        numbers = []
    if not numbers or not all(map(math.isfinite, numbers)):
        raise StabenchError(f"`{key}` expects finite numbers separated by commas, got {text!r}")
    return numbers


def data_distribution(params: LqParams) -> tuple[torch.Tensor, torch.Tensor]:
    """μ and Σ (float64) of the data, from the task parameters; a one-line error when they are malformed."""
    n = params.dim
    if n < 1:
        raise StabenchError(f"`dim` must be at least 1, got {n}")
    index = torch.arange(n, dtype=torch.float64)
    if params.mean:
        mean = torch.tensor(_numbers(params.mean, "mean"), dtype=torch.float64)
        if len(mean) != n:
            raise StabenchError(f"`mean` has {len(mean)} entries but `dim` is {n}")
    else:
        mean = (-1.0) ** index / (index + 1)
    if params.cov:
        rows = [_numbers(row, "cov") for row in params.cov.split(";")]
        if len(rows) != n or any(len(row) != n for row in rows):
            raise StabenchError(f"`cov` must be {n}x{n} (rows separated by `;`), got {params.cov!r}")
        cov = torch.tensor(rows, dtype=torch.float64)
        if not torch.allclose(cov, cov.T, rtol=0, atol=1e-12):
            raise StabenchError(f"`cov` must be symmetric, got {params.cov!r}")
        if torch.linalg.eigvalsh(cov).min() <= 0:
            raise StabenchError(f"`cov` must be positive definite, got {params.cov!r}")
    else:
        scale = 1 / torch.sqrt(index + 1)
        cov = 0.5 ** (index[:, None] - index[None, :]).abs() * scale[:, None] * scale[None, :]
    return mean, cov


def sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric positive semi-definite square root (negative rounding errors clipped to zero)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def gaussian_kl(mean_p, cov_p, mean_q, cov_q) -> float:
    """KL(N(mean_p, cov_p) ‖ N(mean_q, cov_q)), natural log; infinite when cov_p is singular."""
    sign, logdet_p = torch.linalg.slogdet(cov_p)
    if sign <= 0:
        return math.inf
    difference = mean_q - mean_p
    trace = torch.trace(torch.linalg.solve(cov_q, cov_p))
    mahalanobis = difference @ torch.linalg.solve(cov_q, difference)
    return float(0.5 * (trace + mahalanobis - len(mean_p) + torch.linalg.slogdet(cov_q)[1] - logdet_p))


def gaussian_w2(mean_p, cov_p, mean_q, cov_q) -> float:
    """The 2-Wasserstein distance between two Gaussians: ‖m_p-m_q‖² + tr(P + Q - 2(Q^½PQ^½)^½), rooted."""
    root_q = sqrt_psd(cov_q)
    cross = sqrt_psd(root_q @ cov_p @ root_q)
    squared = ((mean_p - mean_q) ** 2).sum() + torch.trace(cov_p + cov_q - 2 * cross)
    return float(squared.clamp(min=0).sqrt())


class Quadratic(nn.Module):
    """D(x) = xᵀW₂x + w₁ᵀx with W₂ a full dim×dim matrix (Appendix D); one logit per row of x."""

    def __init__(self, dim: int):
        super().__init__()
        self.W2 = nn.Parameter(torch.zeros(dim, dim))
        self.w1 = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return ((x @ self.W2) * x).sum(-1, keepdim=True) + (x @ self.w1).unsqueeze(-1)


class Affine(nn.Module):
    """G(z) = Az + b."""

    def __init__(self, dim: int):
        super().__init__()
        self.A = nn.Parameter(torch.eye(dim))
        self.b = nn.Parameter(torch.zeros(dim))

    def forward(self, z):
        return z @ self.A.T + self.b


def whitened_normal(n: int, dim: int, generator: torch.Generator, dtype) -> torch.Tensor:
    """n standard normal draws moved so that their empirical mean is 0 and covariance (1/n) I exactly."""
    if n <= dim:
        raise StabenchError(f"`spectrum_batch` must exceed `dim` for an exact evaluation batch, got {n} <= {dim}")
    z = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    z = z - z.mean(0)
    cholesky = torch.linalg.cholesky(z.T @ z / n)
    return torch.linalg.solve_triangular(cholesky, z.T, upper=False).T.to(dtype)


def _dtype_and_device(module: nn.Module):
    parameter = next(module.parameters())
    return parameter.dtype, parameter.device


class LinearQuadraticGaussian(Task):
    """N(μ, Σ) with a quadratic D and a linear G: the paper's Appendix D system."""

    name = "lq"
    version = 1
    description = "N(mean, cov) in `dim` dims, quadratic D, linear G (paper App. D); closed-form KL and W2"
    Params = LqParams
    budgets = BUDGETS
    metric_directions = {
        "kl": "min", "wasserstein2": "min", "cov_error": "min", "mean_error": "min", "disc_norm": "min",
    }

    def build(self, params, seeds, device):
        init = torch.Generator().manual_seed(seeds.init)
        n, scale = params.dim, params.init_scale
        discriminator, generator = Quadratic(n), Affine(n)
        with torch.no_grad():
            discriminator.W2.copy_(scale * torch.randn(n, n, generator=init))
            discriminator.w1.copy_(scale * torch.randn(n, generator=init))
            generator.A.add_(scale * torch.randn(n, n, generator=init))
            generator.b.copy_(scale * torch.randn(n, generator=init))
        mean, cov = data_distribution(params)
        mean, root = mean.float().to(device), sqrt_psd(cov).float().to(device)
        sampling = torch.Generator(device=device).manual_seed(seeds.data)

        def sample_real(size):
            return torch.randn(size, n, generator=sampling, device=device) @ root.T + mean

        def sample_latent(size):
            return torch.randn(size, n, generator=sampling, device=device)

        return Game(discriminator.to(device), generator.to(device), sample_real, sample_latent, streams=(sampling,))

    def equilibrium(self, game, params, generator):
        """A = Σ^½, b = μ, W₂ = 0, w₁ = 0; latents whitened, real samples = G(latents) at the equilibrium."""
        dtype, device = _dtype_and_device(game.generator)
        mean, cov = data_distribution(params)
        n = params.dim
        point = Point(
            d={"W2": torch.zeros(n, n, dtype=dtype, device=device), "w1": torch.zeros(n, dtype=dtype, device=device)},
            g={"A": sqrt_psd(cov).to(dtype=dtype, device=device), "b": mean.to(dtype=dtype, device=device)},
        )
        latent = whitened_normal(params.spectrum_batch, n, generator, dtype).to(device)
        with torch.no_grad():
            real = game.generate(point.g, latent)
        return point, Batch(real, latent)

    def describe(self, params):
        mean, cov = data_distribution(params)
        return {**super().describe(params), "mean": mean.tolist(), "cov": cov.tolist()}

    def evaluate(self, game, params, generator):
        mean, cov = data_distribution(params)
        A = game.generator.A.detach().double().cpu()
        b = game.generator.b.detach().double().cpu()
        W2 = game.discriminator.W2.detach()
        # W₂'s antisymmetric part does not change D(x) = xᵀW₂x + w₁ᵀx, and no gradient step moves it
        size = torch.cat([((W2 + W2.T) / 2).flatten(), game.discriminator.w1.detach()])
        if not (torch.isfinite(A).all() and torch.isfinite(b).all()):
            return {"kl": math.nan, "wasserstein2": math.nan, "cov_error": math.nan, "mean_error": math.nan,
                    "disc_norm": float(size.double().norm())}
        generated_cov = A @ A.T
        return {
            "kl": gaussian_kl(b, generated_cov, mean, cov),
            "wasserstein2": gaussian_w2(b, generated_cov, mean, cov),
            "cov_error": float(torch.linalg.matrix_norm(generated_cov - cov)),
            "mean_error": float((b - mean).norm()),
            "disc_norm": float(size.double().norm()),  # sqrt(‖sym W₂‖²_F + ‖w₁‖²): 0 at the equilibrium
        }

    def save_samples(self, game, params, path: Path, generator, title):
        mean, cov = data_distribution(params)
        latent = torch.randn(1000, params.dim, generator=generator, dtype=torch.float64)
        real = latent @ sqrt_psd(cov).T + mean
        _, device = _dtype_and_device(game.generator)
        with torch.no_grad():
            fake = game.generator(torch.randn(1000, params.dim, generator=generator).to(device)).double().cpu()
        compare_samples(real, fake, path, title)


QUADRATURE_PANELS = 64


def chebyshev_quadrature(panels: int) -> torch.Tensor:
    """Equally weighted points on [-1, 1] whose mean integrates U[-1, 1] exactly for every polynomial
    of degree ≤ 5, and any smooth function to O(panels⁻⁶): 4-point Chebyshev quadrature on each of
    `panels` equal subintervals. So mean x² = 1/3 and mean x⁴ = 1/5, the moments in the Jacobian."""
    inner, outer = math.sqrt((1 - 2 / math.sqrt(5)) / 3), math.sqrt((1 + 2 / math.sqrt(5)) / 3)
    nodes = torch.tensor([-outer, -inner, inner, outer], dtype=torch.float64)
    centres = -1 + (2 * torch.arange(panels, dtype=torch.float64) + 1) / panels
    return (centres[:, None] + nodes[None, :] / panels).reshape(-1)


@dataclass
class Lq1dParams(TaskParams):
    batch_size: int = hyperparameter(256, at_least=1)
    lr: float = hyperparameter(1e-3, above=0)


class Square(nn.Module):
    """D(x) = w₂x²."""

    def __init__(self):
        super().__init__()
        self.w2 = nn.Parameter(torch.tensor(0.0))

    def forward(self, x):
        return self.w2 * x**2


class Scale(nn.Module):
    """G(z) = az."""

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.0))

    def forward(self, z):
        return self.a * z


class LinearQuadratic1d(Task):
    """x, z ~ U[-1, 1], D(x) = w₂x², G(z) = az: the paper's Figure 3, equilibrium (w₂, a) = (0, 1)."""

    name = "lq1d"
    version = 1
    description = "the paper's Figure 3: x, z ~ U[-1,1], D(x) = w2*x^2, G(z) = a*z; equilibrium (0, 1)"
    Params = Lq1dParams
    budgets = BUDGETS
    metric_directions = {"distance": "min", "wasserstein2": "min", "disc_norm": "min"}

    def build(self, params, seeds, device):
        init = torch.Generator().manual_seed(seeds.init)
        discriminator, generator = Square(), Scale()
        with torch.no_grad():  # w₂ in [-0.5, 0.5], a in [0.5, 1.5]: near the equilibrium, a > 0
            discriminator.w2.copy_(torch.rand((), generator=init) - 0.5)
            generator.a.copy_(torch.rand((), generator=init) + 0.5)
        sampling = torch.Generator(device=device).manual_seed(seeds.data)

        def sample_uniform(size):
            return 2 * torch.rand(size, 1, generator=sampling, device=device) - 1

        return Game(discriminator.to(device), generator.to(device), sample_uniform, sample_uniform,
                    streams=(sampling,))

    def equilibrium(self, game, params, generator):
        """(w₂, a) = (0, 1) on a quadrature batch: exact, its Jacobian the population one, and the field
        elsewhere the population field to about 1e-10 (what Figure 3's streamlines show)."""
        dtype, device = _dtype_and_device(game.generator)
        point = Point(d={"w2": torch.tensor(0.0, dtype=dtype, device=device)},
                      g={"a": torch.tensor(1.0, dtype=dtype, device=device)})
        latent = chebyshev_quadrature(QUADRATURE_PANELS).to(dtype=dtype, device=device)[:, None]
        with torch.no_grad():
            real = game.generate(point.g, latent)
        return point, Batch(real, latent)

    def evaluate(self, game, params, generator):
        w2, a = float(game.discriminator.w2.detach()), float(game.generator.a.detach())
        # G(z) = az with z ~ U[-1, 1] is U[-|a|, |a|]: a = -1 is the same distribution as a = 1
        return {
            "distance": math.hypot(w2, abs(a) - 1),
            "wasserstein2": abs(abs(a) - 1) / math.sqrt(3),  # quantiles a(2u-1) against (2u-1)
            "disc_norm": abs(w2),
        }

    def save_samples(self, game, params, path: Path, generator, title):
        real = 2 * torch.rand(2000, 1, generator=generator, dtype=torch.float64) - 1
        _, device = _dtype_and_device(game.generator)
        with torch.no_grad():
            fake = game.generator((2 * torch.rand(2000, 1, generator=generator) - 1).to(device)).double().cpu()
        compare_samples(real, fake, path, title)
