"""summary.json: one run in a few numbers — final statistics, verdict, and the seed's numbers.

"Final" values are taken at the last layer, median over trials (the run's
typical trial), with the 10-90 % band over trials beside them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from initlab import theory
from initlab.chain import ChainResult
from initlab.verdict import Thresholds, first_nonfinite_layer, overall, trial_verdicts

REFERENCE_META = ("source", "code", "note")


def _num(value: float | None) -> float | None:
    """JSON-safe float: NaN, inf (and None) become None (JSON has neither)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def fmt(value: Any, digits: int = 4) -> str:
    """A number for people: ``digits`` significant digits; None (JSON's NaN) and NaN as nan."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


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
            "settings": spec.describe(),
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
    summary.update(_theory_fields(result))
    if result.grads is not None:
        summary.update(_gradient_fields(result))
    summary.update(_fluctuation_fields(result))
    same = _identical_units_layer(stats)
    if same is not None:
        summary["identical_units_layer"] = same
    if reference:
        summary["reference"] = compare(reference, summary)
    return summary


def _identical_units_layer(stats: dict[str, np.ndarray]) -> int | None:
    """First layer where, in most trials, every unit carries the same non-zero value."""
    same = (stats["unit_std"][:, 1:] == 0) & (stats["zero_frac"][:, 1:] < 1)
    first = np.where(same.any(axis=1), same.argmax(axis=1) + 1, -1)
    hit = first[first > 0]
    return int(np.median(hit)) if len(hit) * 2 > len(first) else None


def _theory_fields(result: ChainResult) -> dict[str, Any]:
    curves = theory.for_chain(result.spec, result.draw)
    if curves is None:
        return {"theory_final_mean": None, "theory_final_std": None,
                "predicted_overflow_layer": None, "predicted_underflow_layer": None}
    dtype = result.spec.dtype
    return {
        "theory_final_mean": _num(curves["mean"][-1]),
        "theory_final_std": _num(curves["std"][-1]),
        "predicted_overflow_layer": _num(
            theory.overflow_layer(result.draw.sigma_w2, dtype) if result.spec.activation == "none"
            else theory.crossing(curves["std"], np.finfo(dtype).max)),
        "predicted_underflow_layer": _num(
            theory.crossing(curves["std"], np.finfo(dtype).smallest_subnormal)),
    }


def _gradient_fields(result: ChainResult) -> dict[str, Any]:
    """Gradient at the input (layer 0) and at the first weights: medians over trials."""
    curves = theory.for_chain(result.spec, result.draw)
    g = result.grads
    with np.errstate(invalid="ignore"):
        return {
            "input_grad_std": _num(_median(g["grad_x_std"][:, 0])),
            "first_weight_grad_std": _num(_median(g["grad_w_std"][:, 1])),
            "last_weight_grad_std": _num(_median(g["grad_w_std"][:, -1])),
            "theory_input_grad_std": _num(curves["grad_std"][0]) if curves else None,
        }


def _fluctuation_fields(result: ChainResult) -> dict[str, Any]:
    """Spread over trials of ln(|x_L|^2 / |x_0|^2) beside Hanin & Rolnick's prediction."""
    rms = result.stats["rms"]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ratio = 2 * (np.log(rms[:, -1]) - np.log(rms[:, 0]))
    ok = log_ratio[np.isfinite(log_ratio)]
    if result.spec.batch > 1:  # the prediction is for one input vector; rms pools the batch
        return {"log_norm_ratio_mean": None, "log_norm_ratio_var": None,
                "predicted_log_norm_ratio_mean": None, "predicted_log_norm_ratio_var": None}
    try:
        predicted = theory.hanin_rolnick(result.spec, result.draw)
    except ValueError:  # ln(sigma_w2) with zero weights: math domain error
        predicted = None
    fields = {}
    if result.draw.sigma_w2 == 0:  # W = 0: x_l = 0 from layer 1 on, so ln|x_L|^2 = -inf
        fields["log_norm_ratio_note"] = ("zero weights: the signal is 0 after layer 1 and has "
                                         "no log-norm; no Hanin-Rolnick prediction")
    return {
        **fields,
        "log_norm_ratio_mean": _num(ok.mean()) if len(ok) else None,
        "log_norm_ratio_var": _num(ok.var(ddof=1)) if len(ok) > 1 else None,
        "predicted_log_norm_ratio_mean": _num(predicted[0]) if predicted else None,
        "predicted_log_norm_ratio_var": _num(predicted[1]) if predicted else None,
    }


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
