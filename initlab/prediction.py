"""What the theory predicts for one job: per-layer curves and scalar predictions.

The bridge between a job's settings and ``initlab.theory`` (which knows only
activations and numbers): it turns a chain's spec, or a conv chain's, into the
mean-field curves drawn beside every measurement (``Result.theory``, keyed by the
statistic they predict) and the scalars summary.json reports beside the measured
ones (``Result.predictions``): the layer where the std passes the dtype's largest
or smallest number, Hanin & Rolnick's finite-width spread, the phase quantities.
Where no theory applies, ``theory_note`` says why.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from initlab import theory
from initlab.biases import make_bias
from initlab.numbers import num
from initlab.schemes import make_recipe

PHASE_NOTE = ("mean-field fixed points at this job's (sigma_w2, sigma_b2, activation) for "
              "unit-variance inputs (initlab.theory.phase_params); null: infinite or undefined")


def _keyed(curves: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The theory's curves keyed by the statistic they predict (``grad_std`` is dL/dx's)."""
    out = {k: curves[k] for k in ("mean", "std", "corr") if k in curves}
    if "grad_std" in curves:
        out["grad_x_std"] = curves["grad_std"]
    return out


def _limits(curves: dict[str, np.ndarray] | None, dtype: str) -> dict[str, float | None]:
    if curves is None:
        return {"predicted_overflow_layer": None, "predicted_underflow_layer": None}
    info = np.finfo(np.dtype(dtype))
    return {"predicted_overflow_layer": num(theory.crossing(curves["std"], info.max)),
            "predicted_underflow_layer": num(theory.crossing(curves["std"],
                                                             info.smallest_subnormal))}


def chain(spec) -> tuple[dict[str, np.ndarray] | None, dict[str, Any]]:
    """(curves, predictions) of a ``ChainSpec``."""
    recipe, bias = spec.weight_recipe(), spec.bias_recipe()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        curves = theory.for_chain(spec, recipe)
    predictions: dict[str, Any] = {"weight_std": recipe.std, **_limits(curves, spec.dtype)}
    if curves is None:
        predictions["theory_note"] = "none for constant weights or biases (not zero-mean)"
    elif spec.activation == "none":  # closed form where the curve overflows in float64
        predictions["predicted_overflow_layer"] = num(
            theory.overflow_layer(recipe.sigma_w2, spec.dtype))
    predictions.update(_fluctuation(spec, recipe), phase=_phase_fields(spec, recipe, bias))
    return (None if curves is None else _keyed(curves)), predictions


def _fluctuation(spec, recipe) -> dict[str, Any]:
    """Hanin & Rolnick's prediction of ln(|x_L|^2 / |x_0|^2) over trials (one input)."""
    out: dict[str, Any] = {"predicted_log_norm_ratio_mean": None,
                           "predicted_log_norm_ratio_var": None}
    if spec.batch > 1:  # the prediction is for one input vector; rms pools the batch
        return out
    if recipe.sigma_w2 == 0:  # W = 0: x_l = 0 from layer 1 on, so ln|x_L|^2 = -inf
        out["log_norm_ratio_note"] = ("zero weights: the signal is 0 after layer 1 and has "
                                      "no log-norm; no Hanin-Rolnick prediction")
        return out
    predicted = theory.hanin_rolnick(spec, recipe)
    if predicted:
        out.update(predicted_log_norm_ratio_mean=num(predicted[0]),
                   predicted_log_norm_ratio_var=num(predicted[1]))
    return out


def _phase_applies(spec, recipe, bias) -> bool:
    """The phase theory holds for zero-mean weights with a variance (normal, uniform,
    orthogonal, or a plug-in that states its std), drawn fresh at every layer, and a
    zero-mean bias, without LSUV (shared: one matrix at every layer is not the map's
    fresh draws)."""
    if recipe.normalize or spec.weights == "shared" or bias.base == "constant":
        return False
    if recipe.base == "custom":
        return bool(recipe.custom_std)
    return recipe.base in ("normal", "uniform", "orthogonal")


#: The sigma_w2 range searched for the edge of chaos (log-spaced), and the points the
#: recorded edge has: sigma_b2 from 0 to ``_edge_span`` of the job's sigma_b2.
EDGE_SEARCH = np.geomspace(1e-2, 1e3, 96)
EDGE_POINTS = 48


@lru_cache(maxsize=512)
def _phase(activation: str, params: tuple, sigma_w2: float, sigma_b2: float) -> dict:
    """phase_params as a JSON-safe dict, and ``edge``: the chi_1 = 1 curve (sigma_w2 per
    sigma_b2, null where there is none in 1e-2..1e3) over 0..``_edge_span(sigma_b2)``,
    which the report draws from the files alone; cached on its arguments (a sweep asks
    for the same point once per job; one call costs ~0.01-0.06 s, an edge ~0.5 s)."""
    kwargs = {"activation_params": dict(params) or None}
    phase = theory.phase_params(activation, sigma_w2, sigma_b2, **kwargs)
    fields = {k: (v if isinstance(v, bool) else num(v)) for k, v in phase.as_dict().items()}
    fields["edge"] = edge_curve(activation, params, sigma_b2)
    return fields


def edge_curve(activation: str, params: tuple, sigma_b2: float) -> dict[str, list]:
    """The chi_1 = 1 curve a job at ``sigma_b2`` records: ``sigma_b2`` and ``sigma_w2`` lists
    (``params``: the activation's parameters as sorted (key, value) pairs)."""
    return _edge(activation, params, _edge_span(sigma_b2))


def _edge_span(sigma_b2: float) -> float:
    """0.3, or the power of two times 0.3 that holds twice ``sigma_b2``: every job of a
    sweep records the same few curves, each covering the sweep's sigma_b2 up to its own."""
    span = 0.3
    while span < 2 * sigma_b2:
        span *= 2
    return span


@lru_cache(maxsize=64)
def _edge(activation: str, params: tuple, span: float) -> dict[str, list]:
    b2 = np.linspace(0.0, span, EDGE_POINTS)
    w2 = theory.chi1_curve(activation, b2, EDGE_SEARCH, dict(params) or None)
    return {"sigma_b2": [float(b) for b in b2], "sigma_w2": [num(w) for w in w2]}


def _phase_fields(spec, recipe, bias) -> dict[str, Any] | None:
    """q_star, c_star, chi_1, chi_c, xi_q, xi_c (and the attracting flags) or None."""
    if not _phase_applies(spec, recipe, bias):
        return None
    params = tuple(sorted((k, v) for k, v in (spec.activation_params or {}).items()
                          if v is not None))
    try:
        fields = _phase(spec.activation, params, float(recipe.sigma_w2), float(bias.sigma_b2))
    except (ValueError, TypeError, KeyError):  # an activation the quadrature cannot take
        return None
    return {**fields, "note": PHASE_NOTE}


def conv_gains(init: str, init_params: dict | None, bias: str, bias_params: dict | None,
               channels: int, kernel: int = 3) -> tuple[float, float] | None:
    """(sigma_w2, sigma_b2) of a C -> C k x k convolution under the schemes, with torch's
    fans (fan_in = fan_out = C k^2); None where the theory does not apply (constant
    weights or a constant bias are not zero-mean), as for the chain."""
    fan = channels * kernel * kernel
    recipe = make_recipe(init, fan, fan, init_params)
    bias_recipe = make_bias(bias, fan, bias_params)
    if recipe.base == "constant" or bias_recipe.base == "constant":
        return None
    return float(recipe.sigma_w2), float(bias_recipe.sigma_b2)


def model(spec, sizes: list[int] | None, q0: float, c0: float | None,
          measured_input: tuple[float, float] | None = None,
          ) -> tuple[dict[str, np.ndarray] | None, dict[str, Any]]:
    """(curves, predictions) of a ``ModelSpec``: a conv chain's (``initlab.theory.conv``,
    fan_in = C * 9, the layers' sides ``sizes``), else none, with the note saying why.
    ``q0``, ``c0``: the inputs' E[x_0^2] and cosine (None: one input per trial).
    ``measured_input``: the (mean, std) of inputs the theory did not draw (real images):
    the curves start from them at layer 0, where the maps, which assume zero-mean
    N(0, q0) inputs, would say mean 0 and std sqrt(q0)."""
    none = {"predicted_overflow_layer": None, "predicted_underflow_layer": None,
            "predicted_log_norm_ratio_mean": None, "predicted_log_norm_ratio_var": None,
            "phase": None}
    if spec.model != "conv_chain":
        return None, {**none, "theory_note": f"none applies to model={spec.model}"}
    gains = conv_gains(spec.init, spec.init_params, spec.bias, spec.bias_params, spec.channels)
    if gains is None:
        return None, {**none, "theory_note": "none for constant weights or biases"}
    from initlab.theory.conv import conv_chain_curves

    with np.errstate(over="ignore", invalid="ignore"):
        curves = conv_chain_curves(spec.activation, gains[0], gains[1], sizes,
                                   spec.activation_params or None, q0=q0, c0=c0)
    keyed = _keyed(curves)
    if measured_input is not None:
        for stat, value in zip(("mean", "std"), measured_input, strict=True):
            keyed[stat] = np.array(keyed[stat], dtype=float)
            keyed[stat][0] = value
    return keyed, {**none, **_limits(curves, spec.dtype),
                            "theory_note": "mean-field maps of the chain with fan_in = "
                                           "channels * 9 (initlab.theory.conv)"}
