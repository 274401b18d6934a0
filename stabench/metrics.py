"""Shared metric helpers: mode assignment, histograms and KL against uniform."""
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
    assigned modes ‖ uniform), undefined (NaN) when no sample is high quality. Samples that are not
    finite are never high quality.
    """
    samples = samples.detach().double().cpu()
    centres = centres.double().cpu()
    distances = torch.cdist(samples, centres) / std
    nearest_distance, nearest = distances.min(dim=1)
    high_quality = nearest_distance < 3.0  # NaN compares False
    counts = torch.bincount(nearest[high_quality], minlength=len(centres))
    return {
        "modes_captured": int((counts > 0).sum()),
        "high_quality": float(high_quality.double().mean()),
        "kl": kl_to_uniform(counts),
    }
