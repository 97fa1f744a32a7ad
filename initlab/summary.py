"""summary.json: one job in a few numbers — verdict, final statistics beside their
prediction, and the seed's numbers — for every kind of job, from its ``Result``.

"Final" values are taken at the last layer, median over trials (the job's
typical trial), with the 10-90 % band over trials beside them. NumPy only: the
predictions come with the result (``initlab.prediction``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from initlab.numbers import median_band, num
from initlab.result import Result
from initlab.verdict import (
    Thresholds,
    backward_finite,
    first_nonfinite_layer,
    gradient_ratios,
    gradient_verdicts,
    overall,
    overall_gradient,
    trial_verdicts,
)

REFERENCE_META = ("source", "code", "note")


def summarize(result: Result, thresholds: Thresholds,
              reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary of one job (``summary.json`` without ``status`` and ``seconds``)."""
    stats = result.stats
    summary: dict[str, Any] = {**result.settings, "settings": dict(result.settings),
                               "device": result.device}
    summary.update(_verdict_fields(stats, thresholds))
    summary.update(_final_fields(stats))
    summary["thresholds"] = {"explode_std": thresholds.explode_std,
                             "vanish_std": thresholds.vanish_std,
                             "grad_explode": thresholds.grad_explode,
                             "grad_vanish": thresholds.grad_vanish}
    summary.update(result.predictions)
    curve = result.curve
    summary.update(theory_final_mean=num(curve("mean")[-1]), theory_final_std=num(curve("std")[-1]))
    summary.update(_gradient_verdict_fields(result, thresholds))
    if result.grads is not None:
        summary.update(_gradient_fields(result))
    summary.update(_fluctuation_fields(result))
    summary.update(_correlation_fields(result))
    if result.modules is None:
        same = _identical_units_layer(stats, result.settings["width"], result.hist_dtype)
        if same is not None:
            summary["identical_units_layer"] = same
    else:
        summary.update(modules=list(result.modules), module_types=list(result.module_types))
    if reference:
        summary["reference"] = compare(reference, summary)
    return summary


def _verdict_fields(stats: dict[str, np.ndarray], thresholds: Thresholds) -> dict[str, Any]:
    names, layers = trial_verdicts(stats, thresholds)
    nonfinite = first_nonfinite_layer(stats["finite"])
    broken = nonfinite[nonfinite >= 0]
    return {**overall(names, layers),
            "first_nonfinite_layer": int(np.median(broken)) if len(broken) else None,
            "nonfinite_trials": int(len(broken))}


def _final_fields(stats: dict[str, np.ndarray]) -> dict[str, Any]:
    final = {name: stats[name][:, -1] for name in ("mean", "std", "rms")}
    with np.errstate(invalid="ignore", over="ignore"):
        return {**median_band(final["mean"], "final_mean"),
                **median_band(final["std"], "final_std"),
                "final_rms": num(np.median(final["rms"])),
                "mean_of_means": num(np.mean(final["mean"])),
                "root_mean_square": num(np.sqrt(np.mean(final["rms"] ** 2)))}


def _identical_units_layer(stats: dict[str, np.ndarray], width: int, dtype: str) -> int | None:
    """First layer where, in most trials, every unit carries the same non-zero value.

    "The same" up to rounding: units computed by one matrix product of identical rows can
    still differ where the BLAS sums rows in different blocks (another order, another
    rounding; CPU-dependent). Each unit is a width-term sum, so two differ by at most
    ~2 width eps |x|; a spread below 4 width eps rms is no signal.
    """
    eps = float(np.finfo(np.dtype(dtype)).eps)
    level = 4 * width * eps * stats["rms"][:, 1:]
    same = (stats["unit_std"][:, 1:] <= level) & (stats["zero_frac"][:, 1:] < 1)
    first = np.where(same.any(axis=1), same.argmax(axis=1) + 1, -1)
    hit = first[first > 0]
    return int(np.median(hit)) if len(hit) * 2 > len(first) else None


def _gradient_fields(result: Result) -> dict[str, Any]:
    """Gradient at the input (layer 0) and at the first and last weights: medians over
    trials (null where a gradient went back through a non-finite forward signal), the
    input's beside its prediction."""
    g = result.grads
    finite = backward_finite(g["grad_x_std"], result.stats["finite"])
    with np.errstate(invalid="ignore"):
        return {
            "input_grad_std": num(np.median(np.where(finite[:, 0], g["grad_x_std"][:, 0],
                                                     np.nan))),
            "first_weight_grad_std": num(np.median(g["grad_w_std"][:, 1])),
            "last_weight_grad_std": num(np.median(g["grad_w_std"][:, -1])),
            "theory_input_grad_std": num(result.curve("grad_x_std")[0]),
        }


GRADIENTS_OFF = "gradients off (gradients=false): no backward pass, no gradient verdict"


def _gradient_verdict_fields(result: Result, thresholds: Thresholds) -> dict[str, Any]:
    """The gradient's verdict (``initlab.verdict.gradient_verdicts``) with its counts, and
    the growth ratio std(dL/dx_0) / std(dL/dx_L) over trials (median, 10-90 %) beside the
    mean-field prediction (the ratio of the predicted gradient std at layer 0 and at the
    output: chi_1^(L/2) for the chain, with the border factor for a conv chain)."""
    grads = result.grads
    if grads is None or not np.isfinite(grads["grad_x_std"][:, -1]).any():
        return {"grad_verdict": None, "grad_verdict_layer": None, "grad_verdict_counts": None,
                "grad_verdict_note": GRADIENTS_OFF if grads is None else
                "no gradient reached the output layer: no gradient verdict"}
    names, layers = gradient_verdicts(grads["grad_x_std"], result.stats["finite"], thresholds)
    finite = backward_finite(grads["grad_x_std"], result.stats["finite"])
    ratio = np.where(finite[:, 0], gradient_ratios(grads["grad_x_std"])[:, 0], np.nan)
    curve = result.curve("grad_x_std")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        theory = curve[0] / curve[-1]
    return {**overall_gradient(names, layers), **median_band(ratio, "grad_ratio"),
            "theory_grad_ratio": num(theory)}


def _fluctuation_fields(result: Result) -> dict[str, Any]:
    """Spread over trials of ln(|x_L|^2 / |x_0|^2) (one input per trial; the prediction
    beside it comes with the result)."""
    if int(result.settings.get("batch", 1)) > 1:  # rms pools the batch: no single norm
        return {"log_norm_ratio_mean": None, "log_norm_ratio_var": None}
    rms = result.stats["rms"]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ratio = 2 * (np.log(rms[:, -1]) - np.log(rms[:, 0]))
    ok = log_ratio[np.isfinite(log_ratio)]
    return {"log_norm_ratio_mean": num(ok.mean()) if len(ok) else None,
            "log_norm_ratio_var": num(ok.var(ddof=1)) if len(ok) > 1 else None}


def _correlation_fields(result: Result) -> dict[str, Any]:
    """The cosine of two inputs at the last layer (median and 10-90 % over trials) beside
    the mean-field prediction (None with one input per trial)."""
    fields: dict[str, Any] = {"final_corr": None, "final_corr_q10": None,
                              "final_corr_q90": None, "final_theory_corr": None}
    if int(result.settings.get("batch", 1)) < 2:
        return fields
    fields.update(median_band(result.stats["corr"][:, -1], "final_corr"))
    fields["final_theory_corr"] = num(result.curve("corr")[-1])
    return fields


def compare(reference: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Put each number the source reports beside the same quantity measured here."""
    rows = []
    for key, seed_value in reference.items():
        if key in REFERENCE_META:
            continue
        seed = num(seed_value) if isinstance(seed_value, (int, float)) else seed_value
        rows.append({"quantity": key, "seed": seed, "measured": summary.get(key)})
    meta = {k: reference[k] for k in REFERENCE_META if k in reference}
    return {**meta, "rows": rows}
