"""summary.json: one run in a few numbers — final statistics, verdict, and the seed's numbers.

"Final" values are taken at the last layer, median over trials (the run's
typical trial), with the 10-90 % band over trials beside them.
"""

from __future__ import annotations

import math
from functools import lru_cache
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
    curves: dict | None | object = theory.UNSET,
) -> dict[str, Any]:
    """The summary of one run (``summary.json``), JSON-ready; ``curves`` of
    ``theory.for_chain`` when the caller has them already."""
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
            "weight_std": result.recipe.std,
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
    if curves is theory.UNSET:
        curves = theory.for_chain(spec, result.recipe)
    summary.update(_theory_fields(result, curves))
    if result.grads is not None:
        summary.update(_gradient_fields(result, curves))
    summary.update(_fluctuation_fields(result))
    summary.update(_correlation_fields(result, curves))
    same = _identical_units_layer(stats, result.spec.width, result.spec.dtype)
    if same is not None:
        summary["identical_units_layer"] = same
    if reference:
        summary["reference"] = compare(reference, summary)
    return summary


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


def _theory_fields(result: ChainResult, curves: dict | None) -> dict[str, Any]:
    if curves is None:
        return {"theory_final_mean": None, "theory_final_std": None,
                "predicted_overflow_layer": None, "predicted_underflow_layer": None}
    dtype = result.spec.dtype
    return {
        "theory_final_mean": _num(curves["mean"][-1]),
        "theory_final_std": _num(curves["std"][-1]),
        "predicted_overflow_layer": _num(
            theory.overflow_layer(result.recipe.sigma_w2, dtype) if result.spec.activation == "none"
            else theory.crossing(curves["std"], np.finfo(dtype).max)),
        "predicted_underflow_layer": _num(
            theory.crossing(curves["std"], np.finfo(dtype).smallest_subnormal)),
    }


def _gradient_fields(result: ChainResult, curves: dict | None) -> dict[str, Any]:
    """Gradient at the input (layer 0) and at the first weights: medians over trials."""
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
        predicted = theory.hanin_rolnick(result.spec, result.recipe)
    except ValueError:  # ln(sigma_w2) with zero weights: math domain error
        predicted = None
    fields = {}
    if result.recipe.sigma_w2 == 0:  # W = 0: x_l = 0 from layer 1 on, so ln|x_L|^2 = -inf
        fields["log_norm_ratio_note"] = ("zero weights: the signal is 0 after layer 1 and has "
                                         "no log-norm; no Hanin-Rolnick prediction")
    return {
        **fields,
        "log_norm_ratio_mean": _num(ok.mean()) if len(ok) else None,
        "log_norm_ratio_var": _num(ok.var(ddof=1)) if len(ok) > 1 else None,
        "predicted_log_norm_ratio_mean": _num(predicted[0]) if predicted else None,
        "predicted_log_norm_ratio_var": _num(predicted[1]) if predicted else None,
    }


PHASE_NOTE = ("mean-field fixed points at this job's (sigma_w2, sigma_b2, activation) for "
              "unit-variance inputs (initlab.theory.phase_params); null: infinite or undefined")


def _phase_applies(result: ChainResult) -> bool:
    """The phase theory holds for zero-mean weights with a variance (normal, uniform,
    orthogonal, or a plug-in that states its std), drawn fresh at every layer, and a
    zero-mean bias, without LSUV."""
    draw = result.recipe
    if (draw.normalize or result.spec.weights == "shared"
            or result.spec.bias_recipe().base == "constant"):
        return False  # (shared: one matrix at every layer is not the map's fresh draws)
    if draw.base == "custom":
        return bool(draw.custom_std)
    return draw.base in ("normal", "uniform", "orthogonal")


@lru_cache(maxsize=512)
def _phase(activation: str, params: tuple, sigma_w2: float, sigma_b2: float) -> dict:
    """phase_params as a JSON-safe dict, cached on its arguments (a sweep asks for the
    same point once per job; one call costs ~0.01-0.06 s)."""
    phase = theory.phase_params(activation, sigma_w2, sigma_b2,
                                activation_params=dict(params) or None)
    return {k: (v if isinstance(v, bool) else _num(v)) for k, v in phase.as_dict().items()}


def phase_fields(result: ChainResult) -> dict[str, Any] | None:
    """q_star, c_star, chi_1, chi_c, xi_q, xi_c (and the attracting flags) or None."""
    if not _phase_applies(result):
        return None
    spec = result.spec
    params = tuple(sorted((k, v) for k, v in (spec.activation_params or {}).items()
                          if v is not None))
    try:
        fields = _phase(spec.activation, params, float(result.recipe.sigma_w2),
                        float(spec.bias_recipe().sigma_b2))
    except (ValueError, TypeError, KeyError):  # an activation the quadrature cannot take
        return None
    return {**fields, "note": PHASE_NOTE}


def _correlation_fields(result: ChainResult, curves: dict | None) -> dict[str, Any]:
    """The cosine of two inputs at the last layer (median and 10-90 % over trials) beside
    the mean-field prediction, and the phase quantities (None where they do not apply)."""
    corr = result.stats.get("corr")
    fields: dict[str, Any] = {"phase": phase_fields(result), "final_corr": None,
                              "final_corr_q10": None, "final_corr_q90": None,
                              "final_theory_corr": None}
    if corr is None or result.spec.batch < 2:
        return fields
    last = corr[:, -1]
    with np.errstate(invalid="ignore"):
        fields.update(final_corr=_num(_median(last)),
                      final_corr_q10=_num(np.quantile(last, 0.1)),
                      final_corr_q90=_num(np.quantile(last, 0.9)))
    if curves is not None and "corr" in curves:
        fields["final_theory_corr"] = _num(curves["corr"][-1])
    return fields


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
