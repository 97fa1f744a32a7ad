"""Per-layer statistics of a recorded step of a batched run, by the init-time functions.

The batched chain's layers are signals of shape (rows, batch, features) (rows = configs
x trials, batch first as in training). Layers of one shape are stacked and reduced in
one call of ``initlab.stats.layer_stats`` / ``mean_std`` / ``log_histogram`` (the
functions the init-time measurement uses, in float64) over a (layers x rows, features,
batch) view: per row and layer, the statistic of that layer's (features x batch)
values, as the probe takes it per trial over ``as_columns`` (features, batch). Layers
are stacked up to ``CHUNK_VALUES`` values a call: small layers share a call (a 60-layer
chain of width 64 costs ~20 reductions a recorded step, not ~1,200, each a parallel
region on a CPU), large ones get their own (no gigabyte-sized float64 copies: stacking
31 layers of width 512 x 16 trials' weight gradients, 130 M values, spent ~5 s a
recorded step in allocation and copies alone).
"""

from __future__ import annotations

import math

import torch

from initlab.stats import layer_stats, log_histogram, mean_std
from initlab.train.record import near_zero_fraction

#: Values per stacked call: 2^20 (8 MiB in float64).
CHUNK_VALUES = 1 << 20


def runs(shapes: list[tuple[int, ...]], cap: int = CHUNK_VALUES) -> list[tuple[int, int]]:
    """(start, stop) of runs of equal consecutive shapes, each holding at most ``cap``
    values (at least one item)."""
    out, start = [], 0
    for i in range(1, len(shapes) + 1):
        size = math.prod(shapes[start])
        if i == len(shapes) or shapes[i] != shapes[start] or (i - start + 1) * size > cap:
            out.append((start, i))
            start = i
    return out


def _columns(stacked: torch.Tensor) -> torch.Tensor:
    """(k, rows, batch, n) -> (k rows, n, batch) float64, contiguous: one copy, after which
    ``layer_stats``' conversion is a no-op and its reductions run over contiguous memory
    (on the transposed view they cost ~5x as much)."""
    k, rows, batch, n = stacked.shape
    out = torch.empty((k * rows, n, batch), dtype=torch.float64, device=stacked.device)
    return out.copy_(stacked.reshape(k * rows, batch, n).transpose(1, 2))


def signal_stats(stacked: torch.Tensor, near_zero: float) -> dict[str, torch.Tensor]:
    """``layer_stats`` and the near-zero fraction of k stacked layers (k, rows, batch, n):
    name -> (rows, k)."""
    k, rows = stacked.shape[:2]
    cols = _columns(stacked.detach())
    stats = {name: v.view(k, rows).T for name, v in layer_stats(cols).items()}
    stats["near_zero"] = near_zero_fraction(cols, near_zero).view(k, rows).T
    return stats


def grad_stats(stacked: torch.Tensor, prefix: str) -> dict[str, torch.Tensor]:
    """``mean_std`` over every value of each of k stacked gradients (k, rows, ...):
    {prefix_mean, prefix_std} -> (rows, k)."""
    k, rows = stacked.shape[:2]
    mean, std = mean_std(stacked.detach().reshape(k * rows, -1, 1))
    return {f"{prefix}_mean": mean.view(k, rows).T, f"{prefix}_std": std.view(k, rows).T}


def histograms(stacked: torch.Tensor, configs: int, dtype: str) -> torch.Tensor:
    """log10|x| counts of k stacked layers (k, configs x trials, batch, n), summed over each
    config's trials: (configs, k, 2 + bins). ``log_histogram`` sums over its first
    dimension (trials) and keeps ``groups`` apart along the last, so the layers and
    configs become groups: (trials, n, k x configs x batch)."""
    k, rows, batch, n = stacked.shape
    trials = rows // configs
    x = stacked.detach().reshape(k, configs, trials, batch, n).permute(2, 4, 0, 1, 3)
    counts = log_histogram(x.reshape(trials, n, k * configs * batch), dtype, k * configs)
    return counts.view(k, configs, -1).transpose(0, 1)
