"""Shared metric helpers: mode assignment, histograms and KL against uniform, means over a curve's tail."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def kl_to_uniform(counts: Tensor) -> float:
    """KL(histogram ‖ uniform over all bins), natural log; NaN for an empty histogram."""
    total = counts.sum()
    if total == 0:
        return math.nan
    p = counts.double() / total
    nonzero = p > 0
    return float((p[nonzero] * torch.log(p[nonzero] * len(counts))).sum())


def mode_metrics(samples: Tensor, centres: Tensor, std: float) -> dict[str, float]:
    """Mode coverage of 2-D samples by the VEEGAN/PacGAN protocol.

    A sample is high quality when ‖(x − μ)/σ‖ < 3 for its nearest mode μ, and is then assigned to
    it; a mode is captured when it has at least one high-quality sample; `kl` is KL(histogram of the
    assigned modes ‖ uniform). Samples that are not finite are never high quality. Real data scores
    high_quality 1 − e^{−4.5} ≈ 0.989 (the mass of a 2-D Gaussian within 3σ).

    With no high-quality sample the histogram is empty and its KL undefined: `kl` is then ln K (K
    modes), the KL of all mass on one mode, the worst a generator that captures anything can score,
    and `kl_defined` is 0 (1 when the KL was measured).
    """
    samples = samples.detach().double().cpu()
    centres = centres.double().cpu()
    distances = torch.cdist(samples, centres) / std
    nearest_distance, nearest = distances.min(dim=1)
    high_quality = nearest_distance < 3.0  # NaN compares False
    counts = torch.bincount(nearest[high_quality], minlength=len(centres))
    defined = bool(high_quality.any())
    return {
        "modes_captured": int((counts > 0).sum()),
        "high_quality": float(high_quality.double().mean()),
        "kl": kl_to_uniform(counts) if defined else math.log(len(centres)),
        "kl_defined": int(defined),
    }


def mean_mode_distance(samples: Tensor, centres: Tensor) -> float:
    """The mean Euclidean distance of the samples to their nearest centre, in the samples' units."""
    return float(torch.cdist(samples.detach().double().cpu(), centres.double().cpu()).min(dim=1).values.mean())


# Mode metrics are also reported as their mean over the last LAST evaluations: one snapshot of a GAN that
# oscillates between modes says little.
LAST = 5


def tail_means(curve: list[dict[str, float]], names, count: int) -> dict[str, float]:
    """The mean of each of `names` over the last `count` rows of `curve` (all of them when it has fewer)."""
    tail = curve[-count:]
    return {name: sum(row[name] for row in tail) / len(tail) for name in names}
