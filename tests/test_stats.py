"""Per-layer statistics (initlab.stats) against literal NumPy recomputations.

The engine reduces a (trials, width, groups * batch) signal per trial and group with
few passes (std over (width, batch) of a 4-d view, norms, count_nonzero, one bincount
for the histogram); the references here take each group's block apart and apply the
definitions in ``STATS`` one by one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initlab import stats
from initlab.columns import HIST_RANGE, HIST_STEP
from initlab.stats import layer_stats, log_histogram, mean_std

EPS64 = np.finfo(np.float64).eps


def signal(trials=3, width=16, groups=3, batch=4, dtype=torch.float32, seed=0) -> torch.Tensor:
    """A signal with exact zeros (a relu's), scales differing by group and trial."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(trials, width, groups * batch, generator=gen, dtype=torch.float64)
    scale = torch.logspace(-3, 3, trials * groups, dtype=torch.float64).view(trials, 1, groups)
    x = (x.view(trials, width, groups, batch) * scale.unsqueeze(-1)).view_as(x)
    return x.relu().to(dtype)


def block(x: torch.Tensor, t: int, g: int, groups: int) -> np.ndarray:
    """Trial t's group g: its (width, batch) values, float64."""
    batch = x.shape[2] // groups
    return x[t, :, g * batch : (g + 1) * batch].double().numpy()


def reference(x: np.ndarray) -> dict[str, float]:
    """The definitions of ``STATS`` on one (width, batch) block."""
    flat = x.ravel()
    units = x / np.linalg.norm(x, axis=0)
    b = x.shape[1]
    pairs = [units[:, i] @ units[:, j] for i in range(b) for j in range(i + 1, b)]
    return {"mean": flat.mean(), "std": flat.std(ddof=1),
            "unit_std": x.std(axis=0, ddof=1).mean(), "rms": np.sqrt(np.mean(flat**2)),
            "zero_frac": np.mean(flat == 0), "abs_max": np.abs(flat).max(),
            "finite": np.isfinite(flat).all(), "corr": np.mean(pairs) if pairs else np.nan}


@pytest.mark.parametrize("batch", [1, 4])
def test_layer_stats_are_the_definitions_per_trial_and_group(batch):
    """Error argument: both sides sum n = width * batch = 64 float64 terms in different
    orders, each sum off by <= n eps relative to the sum of |terms| (Higham 2002, 4.2);
    the std's squares double it: rtol = 4 n eps. The mean cancels, so its error is
    bounded by n eps * mean|x| <= n eps * rms (atol)."""
    groups, width = 3, 16
    x = signal(width=width, groups=groups, batch=batch)
    n = width * batch
    got = {k: v.numpy() for k, v in layer_stats(x, groups).items()}
    for t in range(x.shape[0]):
        for g in range(groups):
            want = reference(block(x, t, g, groups))
            for name in ("std", "rms", "abs_max", "zero_frac"):
                np.testing.assert_allclose(got[name][t, g], want[name], rtol=4 * n * EPS64)
            assert abs(got["mean"][t, g] - want["mean"]) <= 4 * n * EPS64 * want["rms"]
            assert got["finite"][t, g] == want["finite"]
            if batch > 1:  # unit_std and corr: a std per column / a cosine per pair
                for name in ("unit_std", "corr"):
                    np.testing.assert_allclose(got[name][t, g], want[name],
                                               rtol=8 * n * EPS64)
            else:
                assert np.isnan(got["corr"][t, g])
    mean, std = mean_std(x, groups)
    np.testing.assert_array_equal(mean.numpy(), got["mean"])
    np.testing.assert_array_equal(std.numpy(), got["std"])


def test_non_finite_values_are_recorded_per_group_not_raised():
    x = signal(trials=2, groups=3, batch=2)
    x[0, 3, 0] = float("nan")  # trial 0, group 0
    x[1, 5, 3] = float("inf")  # trial 1, group 1
    x[1, 6, 4] = -float("inf")  # trial 1, group 2
    got = layer_stats(x, 3)
    assert got["finite"].tolist() == [[False, True, True], [True, False, False]]
    assert math.isnan(got["abs_max"][0, 0]) and math.isinf(got["abs_max"][1, 1])
    assert math.isinf(got["abs_max"][1, 2]) and np.isfinite(got["abs_max"][0, 1:].numpy()).all()


def test_a_float32_signal_near_its_largest_value_has_finite_statistics():
    """Squares of 3.4e38 overflow float32, not float64 (the module's promise)."""
    big = torch.finfo(torch.float32).max
    x = torch.full((1, 8, 2), big)
    x[0, ::2] = -big
    got = layer_stats(x, 1)
    for name in ("std", "rms", "unit_std", "abs_max"):
        assert np.isfinite(got[name].numpy()).all(), name
    assert got["rms"].item() == pytest.approx(big, rel=4 * 16 * EPS64)
    assert got["finite"].item()


def reference_histogram(x: np.ndarray, dtype: str) -> np.ndarray:
    """[zeros, non-finite, bins...] by the definition: bin floor((log10|x| - lo) / step),
    values beyond the range in the end bins."""
    lo, hi = HIST_RANGE[dtype]
    bins = round((hi - lo) / HIST_STEP)
    counts = np.zeros(2 + bins, dtype=np.int64)
    flat = x.ravel()
    counts[0] = np.sum(flat == 0)
    counts[1] = np.sum(~np.isfinite(flat))
    finite = flat[np.isfinite(flat) & (flat != 0)]
    index = np.floor((np.log10(np.abs(finite)) - lo) / HIST_STEP).astype(np.int64)
    np.add.at(counts, 2 + np.clip(index, 0, bins - 1), 1)
    return counts


@pytest.mark.parametrize("path", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log_histogram_is_the_binning_by_definition(dtype, path):
    """Counts per group equal the definition's exactly: NumPy's and torch's log10 may
    differ by an ulp (~1e-14 of |log10 x| <= 324), which moves a value across a bin edge
    with probability ~1e-14 / step per value: ~1e-10 for these 10^4 values."""
    torch_dtype = getattr(torch, dtype)
    info = torch.finfo(torch_dtype)
    groups = 3
    x = signal(trials=4, width=64, groups=groups, batch=10, dtype=torch_dtype)
    span = 30.0 if dtype == "float32" else 300.0  # spread |x| over most decades
    x = x * torch.logspace(-span, span, x.numel(), dtype=torch.float64).view_as(x).to(
        torch_dtype)
    flat = x.view(-1)
    flat[:6] = torch.tensor([float("nan"), float("inf"), -float("inf"), info.max, -info.max,
                             info.tiny * info.eps], dtype=torch_dtype)  # smallest subnormal
    # small CPU signals are binned in NumPy, others (and CUDA's) by torch: both paths here
    histogram = {"numpy": stats._log_histogram_numpy, "torch": stats._log_histogram_torch}
    got = histogram[path](x, dtype, groups).numpy()
    np.testing.assert_array_equal(got, log_histogram(x, dtype, groups).numpy())
    for g in range(groups):
        want = reference_histogram(np.concatenate([block(x, t, g, groups)
                                                   for t in range(x.shape[0])]), dtype)
        np.testing.assert_array_equal(got[g], want)
    assert got.sum() == x.numel()


@pytest.mark.parametrize("path", ["numpy", "torch"])
def test_log_histogram_of_values_beyond_the_range_uses_the_end_bins(path):
    """A float64 signal binned on the float32 range: 1e-60 and 1e60 have no bin of their
    own; they go to the first and last bins, zeros and NaN to their own counts."""
    x = torch.tensor([1e-60, 1e60, 0.0, float("nan"), 1.0], dtype=torch.float64).view(1, 5, 1)
    histogram = {"numpy": stats._log_histogram_numpy, "torch": stats._log_histogram_torch}
    got = histogram[path](x, "float32", 1)[0].numpy()
    lo, _ = HIST_RANGE["float32"]
    assert got[0] == 1 and got[1] == 1  # zeros, non-finite
    assert got[2] == 1 and got[-1] == 1  # the end bins
    assert got[2 + round(-lo / HIST_STEP)] == 1  # |x| = 1: log10 = 0
    assert got.sum() == 5
    assert x[0, 0, 0].item() == 1e-60  # the signal itself is left alone


def test_the_gpus_sync_free_count_is_bincounts_count():
    """count_codes(on_host=False) (the CUDA path: index_add_ of ones, no read-back) counts
    exactly what bincount counts: integers, so equal, not close."""
    from initlab.stats import count_codes

    gen = torch.Generator().manual_seed(3)
    code = torch.randint(0, 40, (5000,), generator=gen)
    code[:7] = 49  # the last code, and codes 40..48 absent
    host, device = count_codes(code, 50), count_codes(code, 50, on_host=False)
    assert host.dtype == device.dtype == torch.int64 and host.shape == (50,)
    assert torch.equal(host, device) and int(host.sum()) == 5000
