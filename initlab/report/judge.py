"""Seed says / measured: is a number a source document reports a plausible draw from what
we measured? The seed reports single runs; we have trials."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def _is_nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def judge(quantity: str, seed: Any, final: pd.DataFrame) -> tuple[bool | None, str]:
    """Is the seed's number a plausible draw from what we measured? -> (pass, rule).

    ``final`` holds the job's last layer, one row per trial (mean, std, rms, finite)
    and, for ``first_nonfinite_layer``, a column of that name. The seed reports
    *one* run, so a per-trial quantity passes when the seed's value lies within
    the 2-98 % range of our trials; a quantity averaged over trials
    (``mean_of_means``, ``root_mean_square``) passes within 4 standard errors.
    NaN passes only against NaN, 0 only against 0.
    """
    per_trial = {"final_mean": "mean", "final_std": "std", "final_rms": "rms"}
    if quantity in per_trial:
        values = final[per_trial[quantity]].to_numpy(dtype=float)
        if _is_nan(seed):
            return bool(np.isnan(values).mean() > 0.5), "NaN in most trials"
        values = values[np.isfinite(values)]
        if not len(values):
            return False, "no finite trial"
        if seed == 0:
            return bool(np.median(values) == 0), "0 in most trials"
        lo, hi = np.quantile(values, [0.02, 0.98])
        return bool(lo <= seed <= hi), f"within 2-98 % of trials [{lo:.3g}, {hi:.3g}]"
    if quantity == "first_nonfinite_layer":
        layers = final[quantity].dropna().to_numpy(dtype=float)
        if not len(layers):
            return False, "no trial became non-finite"
        lo, hi = layers.min() - 1, layers.max() + 1
        return bool(lo <= seed <= hi), f"within trials' range +-1 [{lo:.0f}, {hi:.0f}]"
    if quantity in ("mean_of_means", "root_mean_square"):
        if quantity == "mean_of_means":
            values = final["mean"].to_numpy(dtype=float)
            center, se = values.mean(), values.std() / math.sqrt(len(values))
        else:
            sq = final["rms"].to_numpy(dtype=float) ** 2
            center = math.sqrt(sq.mean())
            se = sq.std() / math.sqrt(len(sq)) / (2 * center)  # delta method
        lo, hi = center - 4 * se, center + 4 * se
        return bool(lo <= seed <= hi), f"within 4 standard errors [{lo:.4g}, {hi:.4g}]"
    return None, "no rule for this quantity"


#: The columns ``judge`` reads from a job's per-layer table.
JUDGED_COLUMNS = ["trial", "layer", "mean", "std", "rms", "finite"]


def final_layer(layers: pd.DataFrame) -> pd.DataFrame:
    """The last layer of each trial, with each trial's first non-finite layer."""
    layers = layers[JUDGED_COLUMNS]
    last = layers[layers["layer"] == layers["layer"].max()].set_index("trial")
    bad = layers[~layers["finite"].astype(bool)].groupby("trial")["layer"].min()
    return last.assign(first_nonfinite_layer=bad.reindex(last.index)).reset_index()
