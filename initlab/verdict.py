"""Verdict: did a trial's signal explode, vanish, or stay stable — and at which layer?

Per trial, over layers 1..depth (layer 0 is the input):

* ``exploded`` at the first layer with a non-finite value or ``std > explode_std``;
* ``vanished`` at the first layer with ``std < vanish_std`` or every value 0;

where ``std`` is the spread over the units of each input vector (``unit_std``:
a layer whose units all carry the same value has lost the signal, whatever
the batch), the pooled ``std`` for tables that lack it.
* ``stable`` otherwise (layer ``None``).

When both happen, the earlier layer decides. A run's verdict is the most
common one over its trials, reported with the counts of each.
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
    """Where a signal's std counts as exploded or vanished (values from the config)."""

    explode_std: float = 1e4
    vanish_std: float = 1e-4

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.vanish_std, self.explode_std)):
            raise ValueError(
                f"thresholds vanish_std={self.vanish_std!r}, explode_std={self.explode_std!r} "
                "are not allowed; both must be finite numbers"
            )
        if not 0 < self.vanish_std < self.explode_std:
            raise ValueError(
                f"thresholds vanish_std={self.vanish_std!r}, explode_std={self.explode_std!r} "
                "are not allowed; need 0 < vanish_std < explode_std"
            )


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
