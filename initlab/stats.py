"""Per-layer statistics of a batched signal, reduced in float64.

The signal of one layer has shape ``(trials, width, batch)``. Every statistic
is taken per trial over all ``width * batch`` values, as the seed's
``x.mean(), x.std()`` do over a whole tensor. Values are converted to float64
before squaring, so a float32 signal near its largest finite value (~3.4e38)
still has a finite std; NaN and inf in the signal are recorded, never raised.
"""

from __future__ import annotations

import torch

#: statistic -> meaning; the columns of the tidy per-layer table, in order.
STATS = {
    "mean": "mean over units (and batch)",
    "std": "standard deviation over units, unbiased (N - 1), like torch's x.std()",
    "rms": "root mean square, sqrt(mean(x^2))",
    "zero_frac": "fraction of values exactly 0",
    "abs_max": "largest |x| (NaN if any value is NaN)",
    "finite": "every value finite (no NaN, no inf)",
}


def layer_stats(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Statistics of ``x`` (trials, width, batch) -> name -> tensor of shape (trials,)."""
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    count = flat.shape[1]
    mean = flat.mean(dim=1)
    if count > 1:
        std = flat.std(dim=1, correction=1)
    else:
        std = torch.full_like(mean, float("nan"))
    return {
        "mean": mean,
        "std": std,
        "rms": flat.square().mean(dim=1).sqrt(),
        "zero_frac": (flat == 0).to(torch.float64).mean(dim=1),
        "abs_max": flat.abs().amax(dim=1),
        "finite": torch.isfinite(flat).all(dim=1),
    }
