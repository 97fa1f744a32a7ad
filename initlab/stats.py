"""Per-layer statistics of a batched signal, reduced in float64.

The signal of one layer has shape ``(trials, width, batch)``. Every statistic
is taken per trial over all ``width * batch`` values, as the seed's
``x.mean(), x.std()`` do over a whole tensor. Values are converted to float64
before squaring, so a float32 signal near its largest finite value (~3.4e38)
still has a finite std; NaN and inf in the signal are recorded, never raised.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from initlab.columns import HIST_RANGE, HIST_STEP


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
    x4 = x.to(torch.float64).reshape(trials, width, groups, columns // groups)
    mean = x4.mean(dim=(1, 3))
    if width * (columns // groups) > 1:
        return mean, x4.std(dim=(1, 3), correction=1)
    return mean, torch.full_like(mean, float("nan"))


def layer_stats(x: torch.Tensor, groups: int = 1,
                pre: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Statistics of ``x`` (trials, width, groups * batch) -> name -> (trials, groups).

    The last dimension holds ``groups`` configurations side by side, ``batch``
    columns each (``initlab.chain.run_many``); every statistic is taken per
    trial and group. ``corr`` is taken on ``pre`` (the layer's pre-activation,
    same shape) when given, else on ``x``.

    Few passes over the signal, each reducing over (width, batch) of the
    (trials, width, groups, batch) view, since each is a parallel region on CPU
    (costly when the cores are shared): mean, std,
    rms = |x|_2 / sqrt(N), abs_max = |x|_inf (NaN if any value is NaN),
    ``finite`` read off abs_max (finite exactly when no value is NaN or inf),
    ``zero_frac`` = 1 - nonzeros / N, and the std over units of each column.
    """
    trials, width, columns = x.shape
    batch = columns // groups
    count = width * batch
    x4 = x.to(torch.float64).reshape(trials, width, groups, batch)
    dims = (1, 3)
    mean = x4.mean(dim=dims)  # a sum: exact cancellation where std_mean's running mean is not
    std = (x4.std(dim=dims, correction=1) if count > 1
           else torch.full_like(mean, float("nan")))
    abs_max = torch.linalg.vector_norm(x4, ord=float("inf"), dim=dims)
    return {
        "mean": mean,
        "std": std,
        "unit_std": x4.std(dim=1, correction=1).mean(dim=2),
        "rms": torch.linalg.vector_norm(x4, dim=dims) / math.sqrt(count),
        "zero_frac": (count - torch.count_nonzero(x4, dim=dims)).to(torch.float64) / count,
        "abs_max": abs_max,
        "finite": torch.isfinite(abs_max),
        "corr": batch_cosine(x if pre is None else pre, groups),
    }


def _covers(dtype: str, values: torch.dtype) -> bool:
    """Whether ``HIST_RANGE[dtype]`` holds log10|x| of every finite nonzero ``values`` number,
    from the smallest subnormal (tiny * eps, summed as logs: with denormals flushed to zero
    the product is 0) to the largest."""
    lo, hi = HIST_RANGE[dtype]
    info = torch.finfo(values)
    return lo <= math.log10(info.tiny) + math.log10(info.eps) and math.log10(info.max) < hi


#: Values up to which a CPU histogram runs in NumPy on one thread (beyond it torch's
#: parallel log10 pays for its start: ~1 ms of one core's work at 2^18 values).
SERIAL_LIMIT = 2**18


def log_histogram(x: torch.Tensor, dtype: str, groups: int = 1) -> torch.Tensor:
    """Counts over all trials of one layer, per group: (groups, 2 + bins) holding
    ``[zeros, non-finite, bin_0, ..., bin_k]``.

    Bins are fixed, log-spaced in |x| (``hist_edges``), so histograms of every
    layer and every job line up. Exact zeros and non-finite values get their
    own counts, since log10|x| has no place for them. One ``bincount`` serves
    every group.

    The bin of a finite nonzero x is floor((log10|x| - lo) / step), clamped to
    the range; log10 maps 0 to -inf and keeps inf and NaN, so one ``nan_to_num``
    sends zeros to index 0 and non-finite values to index 1 (no per-element
    branch). On CPU the same steps run in NumPy, on the calling thread: torch's
    CPU log10 is MKL's, which starts a parallel region for any size, and a
    parallel region costs ~10 us on idle cores but ~8 ms when other processes
    share them (benchmarks/engine_profile.py), the largest cost of a layer's
    statistics then (up to ``SERIAL_LIMIT`` values). Both compute log10 to within
    an ulp, so their counts differ only for a value within an ulp of a bin edge.
    """
    if x.device.type == "cpu" and x.numel() <= SERIAL_LIMIT:
        return _log_histogram_numpy(x, dtype, groups)
    return _log_histogram_torch(x, dtype, groups)


def _bins(dtype: str) -> tuple[float, float, int]:
    lo, hi = HIST_RANGE[dtype]
    return lo, hi, round((hi - lo) / HIST_STEP)


def _group_offsets(columns: int, groups: int, bins: int) -> np.ndarray:
    """+ 2 past the zero and non-finite counts, + each column's group block of codes."""
    return (np.arange(columns) // (columns // groups)) * (bins + 2) + 2.0


def _log_histogram_numpy(x: torch.Tensor, dtype: str, groups: int) -> torch.Tensor:
    trials, width, columns = x.shape
    lo, hi, bins = _bins(dtype)
    values = x.detach()
    if values.dtype not in (torch.float16, torch.float32, torch.float64):
        values = values.to(torch.float64)
    logs = np.abs(values.numpy(), dtype=np.float64)  # a float64 copy: x is left alone
    with np.errstate(divide="ignore", invalid="ignore"):
        np.log10(logs, out=logs)
    if not _covers(dtype, x.dtype):  # finite values beyond the range go to the end bins
        logs = np.where(np.isfinite(logs), np.clip(logs, lo, hi), logs)
    logs -= lo
    logs /= HIST_STEP  # >= 0 for finite x: its floor is the truncation to int64
    np.nan_to_num(logs, copy=False, nan=-1.0, posinf=-1.0, neginf=-2.0)
    np.minimum(logs, bins - 1, out=logs)
    logs += _group_offsets(columns, groups, bins)
    counts = np.bincount(logs.astype(np.int64).ravel(), minlength=groups * (bins + 2))
    return torch.from_numpy(counts.reshape(groups, bins + 2))


def _log_histogram_torch(x: torch.Tensor, dtype: str, groups: int) -> torch.Tensor:
    trials, width, columns = x.shape
    lo, hi, bins = _bins(dtype)
    logs = torch.abs(x).to(torch.float64).log10_()  # abs first: never x itself in place
    if not _covers(dtype, x.dtype):  # finite values beyond the range go to the end bins
        logs = torch.where(torch.isfinite(logs), logs.clamp(lo, hi), logs)
    # (log10|x| - lo) / step >= 0 for finite x: its floor is the truncation to int64
    index = (logs.sub_(lo).div_(HIST_STEP)
             .nan_to_num_(nan=-1.0, posinf=-1.0, neginf=-2.0).clamp_(max=bins - 1))
    offset = torch.from_numpy(_group_offsets(columns, groups, bins)).to(x.device)
    code = index.add_(offset.view(1, 1, -1)).to(torch.int64).reshape(-1)
    counts = count_codes(code, groups * (bins + 2), on_host=x.device.type == "cpu")
    return counts.view(groups, bins + 2)


def count_codes(code: torch.Tensor, size: int, on_host: bool = True) -> torch.Tensor:
    """How often each of 0..size-1 occurs in ``code`` (int64). ``bincount`` on the host;
    on a GPU ``index_add_`` of ones, since ``bincount`` reads the codes' range back to
    the host (a sync per layer, where statistics are meant to stay on the device)."""
    if on_host:
        return torch.bincount(code, minlength=size)
    counts = torch.zeros(size, dtype=torch.int64, device=code.device)
    return counts.index_add_(0, code, torch.ones_like(code))
