"""Every random stream of a cell, derived from its one seed by numpy's SeedSequence.

Streams are independent by construction (no additive offsets that could collide between cells), and
each is a 32-bit integer: torch's CPU generator keeps 32 bits of a seed, so a larger seed would
alias another.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stabench.errors import StabenchError

MAX_SEED = 2**32 - 1  # seeds are 0 ... 2³² − 1: every one of them names a different run
STREAMS = ("init", "data", "evaluation", "noise", "spectrum")


def check_seed(seed) -> int:
    """`seed` as an int in 0 ... MAX_SEED, or a one-line error."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise StabenchError(f"a seed is an integer from 0 to {MAX_SEED}, got {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise StabenchError(f"a seed is an integer from 0 to {MAX_SEED} (2^32 - 1), got {seed}")
    return int(seed)


@dataclass(frozen=True)
class Seeds:
    """The seeds of a cell's streams: network initialisation, data sampling, evaluation latents, a
    method's own random draws, and the evaluation batch of spectra."""

    init: int
    data: int
    evaluation: int
    noise: int
    spectrum: int

    @classmethod
    def derive(cls, seed: int) -> "Seeds":
        children = np.random.SeedSequence(check_seed(seed)).spawn(len(STREAMS))
        return cls(*(int(child.generate_state(1, np.uint32)[0]) for child in children))


def sub_seed(seed: int, index: int) -> int:
    """The seed of draw number `index` of the stream `seed` (a method's noise for batch `index`)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint32)[0])
