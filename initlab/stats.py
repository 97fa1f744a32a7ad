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
    "corr": "mean cosine similarity q_ab / sqrt(q_aa q_bb) between the pre-activations of each "
            "pair of inputs of a trial (Poole et al. 2016); layer 0: the inputs; NaN for batch 1",
}


def batch_cosine(x: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Mean over pairs a < b of cos(x_a, x_b) for the ``batch`` columns of each trial and
    group: (trials, width, groups * batch) -> (trials, groups), in float64.

    With unit columns u_b, sum_{a != b} u_a.u_b = |sum_b u_b|^2 - batch, so the mean
    over the batch (batch - 1) / 2 pairs costs one sum, no Gram matrix. NaN for
    batch 1, and where a column is all zero or not finite.
    """
    trials, width, columns = x.shape
    batch = columns // groups
    if batch < 2:
        return torch.full((trials, groups), float("nan"), dtype=torch.float64, device=x.device)
    x4 = x.to(torch.float64).reshape(trials, width, groups, batch)
    norms = x4.norm(dim=1, keepdim=True)
    units = x4 / torch.where(norms > 0, norms, torch.nan)
    total = units.sum(dim=3).square().sum(dim=1)
    return (total - batch) / (batch * (batch - 1))


def mean_std(x: torch.Tensor, groups: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``layer_stats``' mean and std alone (the backward pass's per-layer need)."""
    trials, width, columns = x.shape
    flat = (x.to(torch.float64).reshape(trials, width, groups, columns // groups)
            .permute(0, 2, 1, 3).reshape(trials, groups, -1))
    std = (flat.std(dim=2, correction=1) if flat.shape[2] > 1
           else torch.full(flat.shape[:2], float("nan"), dtype=torch.float64, device=x.device))
    return flat.mean(dim=2), std


def layer_stats(x: torch.Tensor, groups: int = 1,
                pre: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Statistics of ``x`` (trials, width, groups * batch) -> name -> (trials, groups).

    The last dimension holds ``groups`` configurations side by side, ``batch``
    columns each (``initlab.chain.run_many``); every statistic is taken per
    trial and group. ``corr`` is taken on ``pre`` (the layer's pre-activation,
    same shape) when given, else on ``x``.
    """
    trials, width, columns = x.shape
    batch = columns // groups
    x4 = x.to(torch.float64).reshape(trials, width, groups, batch)
    flat = x4.permute(0, 2, 1, 3).reshape(trials, groups, width * batch)
    mean = flat.mean(dim=2)
    if width * batch > 1:
        std = flat.std(dim=2, correction=1)
    else:
        std = torch.full_like(mean, float("nan"))
    return {
        "mean": mean,
        "std": std,
        "unit_std": x4.std(dim=1, correction=1).mean(dim=2),
        "rms": flat.square().mean(dim=2).sqrt(),
        "zero_frac": (flat == 0).to(torch.float64).mean(dim=2),
        "abs_max": flat.abs().amax(dim=2),
        "finite": torch.isfinite(flat).all(dim=2),
        "corr": batch_cosine(x if pre is None else pre, groups),
    }


#: Width of one histogram bin, in decades of |x|.
HIST_STEP = 0.25
#: log10|x| range per dtype: from below the smallest subnormal to above the largest value.
HIST_RANGE = {"float32": (-46.0, 39.0), "float64": (-324.0, 309.0)}


def hist_edges(dtype: str) -> torch.Tensor:
    """Fixed bin edges in log10|x| for a dtype (float64 values)."""
    lo, hi = HIST_RANGE[dtype]
    return torch.arange(lo, hi + HIST_STEP / 2, HIST_STEP, dtype=torch.float64)


def log_histogram(x: torch.Tensor, dtype: str, groups: int = 1) -> torch.Tensor:
    """Counts over all trials of one layer, per group: (groups, 2 + bins) holding
    ``[zeros, non-finite, bin_0, ..., bin_k]``.

    Bins are fixed, log-spaced in |x| (``hist_edges``), so histograms of every
    layer and every job line up. Exact zeros and non-finite values get their
    own counts, since log10|x| has no place for them. One ``bincount`` serves
    every group.
    """
    trials, width, columns = x.shape
    lo, hi = HIST_RANGE[dtype]
    bins = round((hi - lo) / HIST_STEP)
    values = x.to(torch.float64)
    finite = torch.isfinite(values)
    zero = values == 0
    logs = values.abs().log10().nan_to_num(nan=lo, posinf=hi, neginf=lo)
    index = ((logs.clamp(lo, hi) - lo) / HIST_STEP).floor().clamp(0, bins - 1).to(torch.int64) + 2
    index = torch.where(zero, 0, torch.where(finite, index, 1))
    group = (torch.arange(columns, device=x.device) // (columns // groups)).view(1, 1, -1)
    code = (group * (bins + 2) + index).reshape(-1)
    counts = torch.bincount(code, minlength=groups * (bins + 2))
    return counts.view(groups, bins + 2)
