"""summary.json: one run in a few numbers — final statistics, verdict, and the seed's numbers.

"Final" values are taken at the last layer, median over trials (the run's
typical trial), with the 10-90 % band over trials beside them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from initlab.chain import ChainResult
from initlab.verdict import Thresholds, first_nonfinite_layer, overall, trial_verdicts

REFERENCE_META = ("source", "code", "note")


def _num(value: float) -> float | None:
    """JSON-safe float: NaN and inf become None (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _median(values: np.ndarray) -> float:
    return float(np.median(values))  # NaN when any trial is NaN: the typical trial is broken


def summarize(
    result: ChainResult,
    thresholds: Thresholds,
    reference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary of one run (``summary.json``), JSON-ready."""
    spec, stats = result.spec, result.stats
    names, layers = trial_verdicts(stats, thresholds)
    nonfinite = first_nonfinite_layer(stats["finite"])
    broken = nonfinite[nonfinite >= 0]
    final = {name: result.final(name) for name in ("mean", "std", "rms")}
    with np.errstate(invalid="ignore", over="ignore"):
        summary: dict[str, Any] = {
            **spec.describe(),
            "device": result.device,
            "weight_std": result.draw.std,
            **overall(names, layers),
            "first_nonfinite_layer": int(np.median(broken)) if len(broken) else None,
            "nonfinite_trials": int(len(broken)),
            "final_mean": _num(_median(final["mean"])),
            "final_std": _num(_median(final["std"])),
            "final_rms": _num(_median(final["rms"])),
            "final_mean_q10": _num(np.quantile(final["mean"], 0.1)),
            "final_mean_q90": _num(np.quantile(final["mean"], 0.9)),
            "final_std_q10": _num(np.quantile(final["std"], 0.1)),
            "final_std_q90": _num(np.quantile(final["std"], 0.9)),
            "mean_of_means": _num(np.mean(final["mean"])),
            "root_mean_square": _num(np.sqrt(np.mean(final["rms"] ** 2))),
            "thresholds": {
                "explode_std": thresholds.explode_std,
                "vanish_std": thresholds.vanish_std,
            },
        }
    if reference:
        summary["reference"] = compare(reference, summary)
    return summary


def compare(reference: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Put each number the source reports beside the same quantity measured here."""
    rows = []
    for key, seed_value in reference.items():
        if key in REFERENCE_META:
            continue
        rows.append(
            {
                "quantity": key,
                "seed": _num(seed_value) if isinstance(seed_value, (int, float)) else seed_value,
                "measured": summary.get(key),
            }
        )
    meta = {k: reference[k] for k in REFERENCE_META if k in reference}
    return {**meta, "rows": rows}
