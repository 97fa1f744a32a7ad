"""Tidy pandas frames of a ``TrainingRecord`` (the one module of ``initlab.train`` that
imports pandas).

* ``layer_frame``: one row per (trial, recorded step, layer): ``trial, step, layer,
  module, module_type`` (as the init-time tables name a layer), the statistics
  (``initlab.columns.STATS``, ``near_zero``) and the gradient columns; so
  ``frame.groupby(["step", "layer"])["std"].median()`` is fastai's ``plot_layer_stats``
  over trials.
* ``step_frame``: one row per (trial, step), steps 0..steps: ``train_loss, train_acc``
  (the training batch of that step), ``eval_loss, eval_acc`` (NaN where not evaluated),
  ``lr, momentum`` (of the update that follows the step; NaN at the last step).
* ``hist_frame``: the histograms, sparse: one row per (step, layer, bin) with a count,
  the bins as the init-time ``histogram.csv`` names them.

With ``settings=True`` every row starts with the record's settings (nested dicts such as
``init_params`` flattened to ``init_<name>`` columns), so frames of many runs concatenate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from initlab.columns import hist_edges
from initlab.train.record import TrainingRecord


def flat_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``{'init_params': {'sigma_w2': 1.76}}`` -> ``{'init_sigma_w2': 1.76}``; others as
    they are (tuples and lists joined by '/')."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            prefix = key.removesuffix("_params")
            out.update({f"{prefix}_{k}": v for k, v in sorted(value.items()) if v is not None})
        elif isinstance(value, (tuple, list)):
            out[key] = "/".join(map(str, value))
        else:
            out[key] = value
    return out


def _with_settings(frame: pd.DataFrame, record: TrainingRecord, settings: bool) -> pd.DataFrame:
    if settings:
        for i, (key, value) in enumerate(flat_settings(record.settings).items()):
            frame.insert(i, key, value)
    return frame


def layer_frame(record: TrainingRecord, settings: bool = True) -> pd.DataFrame:
    """One row per (trial, recorded step, layer) (module docstring)."""
    trials, steps, layers = record.stats["mean"].shape
    n = trials * steps * layers
    cols: dict[str, Any] = {
        "trial": np.repeat(np.arange(trials), steps * layers),
        "step": np.tile(np.repeat(record.steps_recorded, layers), trials),
        "layer": np.tile(np.arange(layers), trials * steps),
        "module": np.tile(np.array(record.layer_names, dtype=object), trials * steps),
        "module_type": np.tile(np.array(record.layer_types, dtype=object), trials * steps),
    }
    for source in (record.stats, record.grads):
        for name, values in source.items():
            cols[name] = values.reshape(n)
    return _with_settings(pd.DataFrame(cols), record, settings)


def step_frame(record: TrainingRecord, settings: bool = True) -> pd.DataFrame:
    """One row per (trial, step), steps 0..steps (module docstring)."""
    trials, steps = record.train_loss.shape
    evals = np.full((trials, steps), np.nan), np.full((trials, steps), np.nan)
    evals[0][:, record.eval_steps] = record.eval_loss
    evals[1][:, record.eval_steps] = record.eval_acc
    lr = np.append(record.lr, np.nan)
    mom = np.append(record.momentum, np.nan)
    cols = {
        "trial": np.repeat(np.arange(trials), steps),
        "step": np.tile(np.arange(steps), trials),
        "train_loss": record.train_loss.reshape(-1),
        "train_acc": record.train_acc.reshape(-1),
        "eval_loss": evals[0].reshape(-1),
        "eval_acc": evals[1].reshape(-1),
        "lr": np.tile(lr, trials),
        "momentum": np.tile(mom, trials),
    }
    return _with_settings(pd.DataFrame(cols), record, settings)


def hist_frame(record: TrainingRecord, settings: bool = False) -> pd.DataFrame:
    """Sparse histograms: ``step, layer, bin, log10_lo, log10_hi, count`` (``bin``:
    ``zero``, ``nonfinite`` or ``value`` with log10_lo <= log10|x| < log10_hi)."""
    if record.hist is None:
        raise ValueError("this run recorded no histograms (train.histogram=false)")
    edges = hist_edges(record.hist_dtype)
    lo = np.concatenate([[np.nan, np.nan], edges[:-1]])
    hi = np.concatenate([[np.nan, np.nan], edges[1:]])
    kind = np.array(["zero", "nonfinite"] + ["value"] * (len(edges) - 1))
    r, layer, col = np.nonzero(record.hist)
    frame = pd.DataFrame({"step": record.steps_recorded[r], "layer": layer, "bin": kind[col],
                          "log10_lo": lo[col], "log10_hi": hi[col],
                          "count": record.hist[r, layer, col]})
    return _with_settings(frame, record, settings)
