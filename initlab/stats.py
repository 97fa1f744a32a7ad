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
    "std": "standard deviation over units and batch, unbiased (N - 1), like torch's x.std()",
    "unit_std": "standard deviation over units of each input vector, averaged over the batch "
                "(0 when every unit carries the same value; the verdict uses it)",
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
    unit_std = x.to(torch.float64).std(dim=1, correction=1).mean(dim=1)
    return {
        "mean": mean,
        "std": std,
        "unit_std": unit_std,
        "rms": flat.square().mean(dim=1).sqrt(),
        "zero_frac": (flat == 0).to(torch.float64).mean(dim=1),
        "abs_max": flat.abs().amax(dim=1),
        "finite": torch.isfinite(flat).all(dim=1),
    }


#: Width of one histogram bin, in decades of |x|.
HIST_STEP = 0.25
#: log10|x| range per dtype: from below the smallest subnormal to above the largest value.
HIST_RANGE = {"float32": (-46.0, 39.0), "float64": (-324.0, 309.0)}


def hist_edges(dtype: str) -> torch.Tensor:
    """Fixed bin edges in log10|x| for a dtype (float64 values)."""
    lo, hi = HIST_RANGE[dtype]
    return torch.arange(lo, hi + HIST_STEP / 2, HIST_STEP, dtype=torch.float64)


def log_histogram(x: torch.Tensor, dtype: str) -> torch.Tensor:
    """Counts over all trials of one layer: ``[zeros, non-finite, bin_0, ..., bin_k]``.

    Bins are fixed, log-spaced in |x| (``hist_edges``), so histograms of every
    layer and every job line up. Exact zeros and non-finite values get their
    own counts, since log10|x| has no place for them.
    """
    flat = x.reshape(-1).to(torch.float64)
    finite = torch.isfinite(flat)
    zero = flat == 0
    values = flat[finite & ~zero].abs().log10()
    lo, hi = HIST_RANGE[dtype]
    bins = round((hi - lo) / HIST_STEP)
    counts = torch.histc(values.clamp(lo, hi), bins=bins, min=lo, max=hi)
    head = torch.stack([zero.sum(), (~finite).sum()]).to(counts.dtype)
    return torch.cat([head, counts]).to(torch.int64)
