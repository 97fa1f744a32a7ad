"""Tidy pandas tables of an engine result: what ``layers.csv`` and ``histogram.csv`` hold.

The engine (``initlab.chain``) returns arrays; this module turns them into
tables, with the spec's settings as columns and the mean-field prediction
(``initlab.theory.for_chain``) beside each measurement.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from initlab.chain import ChainResult
from initlab.stats import STATS, hist_edges
from initlab.theory import UNSET, for_chain


def layers_frame(result: ChainResult, curves: dict | None | object = UNSET) -> pd.DataFrame:
    """One row per (trial, layer): settings, ``STATS``, gradient statistics, theory
    (``curves`` of ``for_chain`` when the caller has them already)."""
    trials, layers = result.stats["mean"].shape
    cols: dict[str, Any] = {
        "trial": np.repeat(np.arange(trials), layers),
        "layer": np.tile(np.arange(layers), trials),
    }
    for name in STATS:
        cols[name] = result.stats[name].reshape(-1)
    for name, values in (result.grads or {}).items():
        cols[name] = values.reshape(-1)
    if curves is UNSET:
        curves = for_chain(result.spec, result.recipe)
    names = ("mean", "std", "corr", "grad_std") if result.grads else ("mean", "std", "corr")
    for name in names:  # mean-field prediction beside each measurement
        column = "theory_grad_x_std" if name == "grad_std" else f"theory_{name}"
        cols[column] = (np.tile(curves[name], trials) if curves is not None
                        else np.full(trials * layers, np.nan))
    frame = pd.DataFrame(cols)
    for i, (key, value) in enumerate(result.spec.describe().items()):
        frame.insert(i, key, value)
    return frame


def histogram_frame(result: ChainResult) -> pd.DataFrame:
    """Sparse histogram: one row per (layer, bin) with a non-zero count.

    ``bin`` is ``zero``, ``nonfinite`` or ``value``; value bins cover
    ``log10_lo <= log10|x| < log10_hi``.
    """
    edges = hist_edges(result.spec.dtype).numpy()
    lo = np.concatenate([[np.nan, np.nan], edges[:-1]])
    hi = np.concatenate([[np.nan, np.nan], edges[1:]])
    kind = np.array(["zero", "nonfinite"] + ["value"] * (len(edges) - 1))
    layer, col = np.nonzero(result.hist)
    return pd.DataFrame({
        "layer": layer,
        "bin": kind[col],
        "log10_lo": lo[col],
        "log10_hi": hi[col],
        "count": result.hist[layer, col],
    })
