"""Verdicts: did a trial's signal (forward) and its gradient (backward) explode, vanish, or
stay stable — and at which layer?

**Forward** (``trial_verdicts``), per trial, over layers 1..depth (layer 0 is the input):

* ``exploded`` at the first layer with a non-finite value or ``std > explode_std``;
* ``vanished`` at the first layer with ``std < vanish_std`` or every value 0;

where ``std`` is the spread over the units of each input vector (``unit_std``:
a layer whose units all carry the same value has lost the signal, whatever
the batch), the pooled ``std`` for tables that lack it.
* ``stable`` otherwise (layer ``None``).

When both happen, the earlier layer decides.

**Backward** (``gradient_verdicts``), per trial, going back from the output: the
backward pass starts at the last layer with dL/dx_L = g ~ N(0, I) (std ~1) and
multiplies by one layer's Jacobian per step, so the ratio
r_l = std(dL/dx_l) / std(dL/dx_L) is how much the gradient has grown or shrunk after
L - l layers. The gradient ``exploded`` at the first layer, going back, where dL/dx_l
is not finite or r_l > ``grad_explode``; ``vanished`` at the first where
r_l < ``grad_vanish`` (an all-zero gradient has r_l = 0); ``stable`` otherwise. A
gradient that went back through a layer whose forward signal was not finite is not
finite either (``backward_finite``): the derivative at an overflowed value has no
meaning, even where the arithmetic gives a number (ReLU's slope at NaN is 0). The
layer reported is that first one met going back from the output (the highest index):
the gradient has crossed the threshold after L - l layers, and every layer below it
(closer to the input) receives a gradient at least that far out of scale.

A run's verdict (either one) is the most common one over its trials, reported with
the counts of each.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

VERDICTS = ("exploded", "vanished", "stable")


@dataclass(frozen=True)
class Thresholds:
    """Where a signal's std counts as exploded or vanished, and where the gradient's growth
    ratio does (values from the config: ``thresholds.*``)."""

    explode_std: float = 1e4
    vanish_std: float = 1e-4
    grad_explode: float = 1e4
    grad_vanish: float = 1e-4

    def __post_init__(self) -> None:
        for low, high in (("vanish_std", "explode_std"), ("grad_vanish", "grad_explode")):
            lo, hi = getattr(self, low), getattr(self, high)
            ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                     for v in (lo, hi))
            if not ok:
                raise ValueError(f"thresholds {low}={lo!r}, {high}={hi!r} are not allowed; "
                                 "both must be finite numbers")
            if not 0 < lo < hi:
                raise ValueError(f"thresholds {low}={lo!r}, {high}={hi!r} are not allowed; "
                                 f"need 0 < {low} < {high}")


def _first(mask: np.ndarray) -> np.ndarray:
    """Index of the first True per row, or -1 where a row has none."""
    hit = mask.any(axis=1)
    return np.where(hit, mask.argmax(axis=1), -1)


def first_nonfinite_layer(finite: np.ndarray) -> np.ndarray:
    """(trials, layers) bool -> first layer with a non-finite value per trial, -1 if none."""
    return _first(~finite)


def trial_verdicts(stats: dict[str, np.ndarray], thresholds: Thresholds) -> tuple[list[str], list]:
    """Per-trial verdicts and their layers (``None`` when stable)."""
    std = stats.get("unit_std", stats["std"])[:, 1:]
    with np.errstate(invalid="ignore"):
        exploded = ~stats["finite"][:, 1:] | (std > thresholds.explode_std)
        vanished = (std < thresholds.vanish_std) | (stats["zero_frac"][:, 1:] >= 1.0)
    first_explode, first_vanish = _first(exploded), _first(vanished)
    names, layers = [], []
    for e, v in zip(first_explode, first_vanish, strict=True):
        if e >= 0 and (v < 0 or e <= v):
            names.append("exploded")
            layers.append(int(e) + 1)
        elif v >= 0:
            names.append("vanished")
            layers.append(int(v) + 1)
        else:
            names.append("stable")
            layers.append(None)
    return names, layers


def overall(names: list[str], layers: list) -> dict[str, Any]:
    """The most common verdict (ties: exploded > vanished > stable), its median layer, counts."""
    counts = Counter(names)
    verdict = max(VERDICTS, key=lambda v: (counts[v], -VERDICTS.index(v)))
    hit = [layer for n, layer in zip(names, layers, strict=True) if n == verdict]
    layer = None if verdict == "stable" else int(np.median(hit))
    return {
        "verdict": verdict,
        "verdict_layer": layer,
        "verdict_counts": {v: counts[v] for v in VERDICTS},
    }


def gradient_ratios(grad_x_std: np.ndarray) -> np.ndarray:
    """(trials, layers) std(dL/dx_l) / std(dL/dx_L), L the last layer (NaN where a std is)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return grad_x_std / grad_x_std[:, -1:]


def backward_finite(grad_x_std: np.ndarray, forward_finite: np.ndarray) -> np.ndarray:
    """(trials, layers): dL/dx_l is finite and so is the forward signal at every layer after
    l, which the gradient went back through."""
    later = np.flip(np.logical_and.accumulate(np.flip(forward_finite, axis=1), axis=1), axis=1)
    through = np.concatenate([later[:, 1:], np.ones_like(later[:, :1])], axis=1)
    return np.isfinite(grad_x_std) & through


def gradient_verdicts(grad_x_std: np.ndarray, forward_finite: np.ndarray,
                      thresholds: Thresholds) -> tuple[list[str], list]:
    """Per-trial gradient verdicts and their layers (``None`` when stable), read going back
    from the output: see the module docstring. ``forward_finite`` (trials, layers): the
    forward signal's ``finite`` statistic."""
    ratio = gradient_ratios(grad_x_std)[:, -2::-1]  # layers L-1, L-2, ..., 0
    finite = backward_finite(grad_x_std, forward_finite)[:, -2::-1] & np.isfinite(ratio)
    with np.errstate(invalid="ignore"):
        exploded = ~finite | (ratio > thresholds.grad_explode)
        vanished = finite & (ratio < thresholds.grad_vanish)
    last = grad_x_std.shape[1] - 1
    names, layers = [], []
    for e, v in zip(_first(exploded), _first(vanished), strict=True):
        if e >= 0 and (v < 0 or e <= v):
            names.append("exploded")
            layers.append(last - 1 - int(e))
        elif v >= 0:
            names.append("vanished")
            layers.append(last - 1 - int(v))
        else:
            names.append("stable")
            layers.append(None)
    return names, layers


def overall_gradient(names: list[str], layers: list) -> dict[str, Any]:
    """``overall`` for the gradient verdicts, under ``grad_*`` keys."""
    return {f"grad_{k}": v for k, v in overall(names, layers).items()}
