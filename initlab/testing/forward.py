"""Forward-pass assertions (``initlab.testing``): the chain's and a model's signal
verdicts, and the correlation of two inputs. The package docstring shows their use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from initlab import config, rules
from initlab.chain import run_chain
from initlab.inputs import gaussian_inputs
from initlab.probing import judge as J
from initlab.probing import probe
from initlab.result import Result
from initlab.validate import UsageError, check_args, compose_overrides
from initlab.verdict import Thresholds, overall, trial_verdicts

__all__ = ["assert_correlation", "assert_explodes", "assert_no_collapse", "assert_stable",
           "assert_vanishes", "run_like_cli"]


def compose_like_cli(*overrides: str, **settings: Any) -> DictConfig:
    """The config the command line composes from these settings (checked as ``initlab``
    checks them; a bad one is a ValueError in one line)."""
    args = [*overrides, *(f"{k}={_text(v)}" for k, v in settings.items())]
    try:
        check_args(args)
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    return compose_overrides(args)


def run_like_cli(*overrides: str, **settings: Any) -> tuple[Result, dict[str, Any]]:
    """Run the chain the command line would run with these settings (checked and composed
    as ``initlab`` does); return (result, overall verdict)."""
    cfg = compose_like_cli(*overrides, **settings)
    result = run_chain(config.spec_from_config(cfg))
    verdict = overall(*trial_verdicts(result.stats, config.thresholds_from_config(cfg)))
    return result, verdict


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def _describe(result: Result, verdict: dict[str, Any]) -> str:
    s = result.spec
    params = "".join(f" init.{k}={v}" for k, v in s.init_params.items())
    what = f"init={s.init}{params} activation={s.activation} depth={s.depth} width={s.width}"
    counts = ", ".join(f"{v} {k}" for k, v in verdict["verdict_counts"].items() if v)
    layer = verdict["verdict_layer"]
    std = np.median(result.stats["std"], axis=0)
    at = f" at layer {layer} (median std there {std[layer]:.3g})" if layer is not None else ""
    return (f"{what} {verdict['verdict']}{at}; trials: {counts}; "
            f"final median std {std[-1]:.3g}")


def assert_stable(*overrides: Any, **settings: Any) -> Result | Result:
    """The chain (or a model, see the module docstring) neither explodes nor vanishes
    (most trials stable)."""
    if _is_model(overrides):
        return _model_verdict("stable", None, *overrides, **settings)
    result, verdict = run_like_cli(*overrides, **settings)
    if verdict["verdict"] != "stable":
        raise AssertionError(f"expected stable, but {_describe(result, verdict)}")
    return result


def assert_vanishes(*overrides: Any, by_layer: int | str | None = None,
                    **settings: Any) -> Result | Result:
    """The chain (or a model) vanishes (most trials), at or before ``by_layer`` when given
    (for a model: a layer index or a module name)."""
    if _is_model(overrides):
        return _model_verdict("vanished", by_layer, *overrides, **settings)
    return _assert_fails("vanished", by_layer, overrides, settings)


def assert_explodes(*overrides: Any, by_layer: int | str | None = None,
                    **settings: Any) -> Result | Result:
    """The chain (or a model) explodes (most trials), at or before ``by_layer`` when given
    (for a model: a layer index or a module name)."""
    if _is_model(overrides):
        return _model_verdict("exploded", by_layer, *overrides, **settings)
    return _assert_fails("exploded", by_layer, overrides, settings)


def _assert_fails(expected: str, by_layer, overrides, settings) -> Result:
    if by_layer is not None:  # a layer of the chain: 1..depth (layer 0 is the input)
        rules.integer("by_layer", by_layer, minimum=1, why=" (a layer of the chain, 1..depth)")
    result, verdict = run_like_cli(*overrides, **settings)
    if by_layer is not None:
        depth = result.spec.depth
        rules.integer("by_layer", by_layer, maximum=depth, why=f" (the chain has {depth} layers)")
    late = by_layer is not None and verdict["verdict_layer"] is not None and (
        verdict["verdict_layer"] > by_layer)
    if verdict["verdict"] != expected or late:
        when = f" by layer {by_layer}" if by_layer is not None else ""
        raise AssertionError(f"expected {expected}{when}, but {_describe(result, verdict)}")
    return result


# --- two inputs: the cosine between their pre-activations (statistic ``corr``) ------------

#: What the correlation helpers run unless told otherwise: two inputs with cosine 0.5 and
#: no backward pass (``corr`` is a forward statistic; the gradients would double the cost).
CORR_DEFAULTS = {"batch": 2, "input_correlation": 0.5, "gradients": False}


def _corr_chain(overrides, settings) -> tuple[Result, dict[str, Any]]:
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides} | set(settings)
    defaults = {k: v for k, v in CORR_DEFAULTS.items() if k not in given}
    result, verdict = run_like_cli(*overrides, **defaults, **settings)
    if result.spec.batch < 2:
        raise ValueError(f"batch={result.spec.batch} is not allowed here; a correlation between "
                         "inputs needs batch >= 2")
    return result, verdict


def _corr_at(result: Result, at_layer: int | None) -> tuple[int, float, float, float]:
    """(layer, median, q10, q90) over trials of ``corr`` at ``at_layer`` (default: last)."""
    depth = result.spec.depth
    layer = depth if at_layer is None else int(at_layer)
    if not 0 <= layer <= depth:
        raise ValueError(f"at_layer={at_layer} is not allowed; at_layer must be in 0..{depth}")
    values = result.stats["corr"][:, layer]
    with np.errstate(invalid="ignore"):
        q10, med, q90 = np.quantile(values, [0.1, 0.5, 0.9])
    return layer, float(med), float(q10), float(q90)


def _describe_corr(result: Result, verdict: dict[str, Any], layer: int, med: float,
                   q10: float, q90: float) -> str:
    s = result.spec
    curve = result.curve("corr")
    theory = f", theory {curve[layer]:.4g}" if np.isfinite(curve[layer]) else ""
    bias = s.bias_recipe()
    params = "".join(f" init.{k}={v}" for k, v in s.init_params.items())
    what = (f"init={s.init}{params} bias={s.describe()['bias']} (sigma_b2={bias.sigma_b2:.3g}) "
            f"activation={s.activation} width={s.width} c0={s.input_correlation:g}")
    return (f"{what}: median corr at layer {layer} {med:.6g} (10-90 % of {s.trials} trials: "
            f"{q10:.4g} .. {q90:.4g}{theory}); variance verdict {verdict['verdict']}")


def assert_correlation(*overrides: Any, at_layer: int | str | None = None,
                       above: float | None = None, below: float | None = None,
                       **settings: Any) -> Result | Result:
    """The median over trials of ``corr`` (cosine of two inputs' pre-activations) at
    ``at_layer`` (default: the last) lies strictly between ``above`` and ``below``.

    Runs with batch=2, input_correlation=0.5 and gradients=false unless given. On a
    model: ``corr`` of the hooked module's output between the samples of the batch;
    inputs given as a shape are drawn with batch=2, correlation=0.5 unless given.
    """
    if above is None and below is None:
        raise ValueError("assert_correlation needs above=, below= or both")
    if _is_model(overrides):
        return _model_correlation(overrides, settings, at_layer, above, below)
    result, verdict = _corr_chain(overrides, settings)
    layer, med, q10, q90 = _corr_at(result, at_layer)
    ok = (above is None or med > above) and (below is None or med < below)
    if not ok:
        bounds = " and ".join(t for t in (f"above {above:g}" if above is not None else "",
                                          f"below {below:g}" if below is not None else "") if t)
        raise AssertionError(f"expected the median corr at layer {layer} {bounds}, but "
                             f"{_describe_corr(result, verdict, layer, med, q10, q90)}")
    return result


def assert_no_collapse(*overrides: Any, at_layer: int | str | None = None,
                       collapse: float = 1e-3, decorrelate: float = 0.05,
                       **settings: Any) -> Result | Result:
    """Two inputs neither collapse nor decorrelate by ``at_layer`` (default: the last).

    *Collapsed* (the ordered phase: the chain forgets which input it saw): the median
    corr is within ``collapse`` of 1. *Decorrelated* (the chaotic phase: it forgets
    how similar they were): the median corr is within ``decorrelate`` of the chaotic
    fixed point c* < 1 of the mean-field correlation map (``initlab.theory.phase_params``;
    c* = 0 where the theory does not apply). A chain whose variance explodes or
    vanishes fails too (its corr means nothing). Runs with batch=2,
    input_correlation=0.5 and gradients=false unless given. On a model (as
    ``assert_correlation``): c* = 0 (no theory for an arbitrary model), and the
    variance verdict is taken on ``depth_window``.
    """
    if _is_model(overrides):
        return _model_no_collapse(overrides, settings, at_layer, collapse, decorrelate)
    result, verdict = _corr_chain(overrides, settings)
    layer, med, q10, q90 = _corr_at(result, at_layer)
    c_star = _chaotic_c_star(result)
    problem = _collapse_problem(verdict, med, c_star, collapse, decorrelate)
    if problem:
        raise AssertionError(
            f"expected two inputs to stay apart but not forget their similarity by layer "
            f"{layer} (1 - corr >= {collapse:g}, |corr - c*| >= {decorrelate:g}), but they "
            f"{problem}: {_describe_corr(result, verdict, layer, med, q10, q90)}")
    return result


def _collapse_problem(verdict: dict[str, Any], med: float, c_star: float | None,
                      collapse: float, decorrelate: float) -> str | None:
    """Why two inputs did not stay apart (None when they did)."""
    if verdict["verdict"] != "stable":
        return "the variance did not stay stable"
    if not np.isfinite(med):
        return "corr is not finite"
    if 1 - med < collapse:
        return f"collapsed (1 - corr = {1 - med:.3g} < {collapse:g})"
    if c_star is not None and abs(med - c_star) < decorrelate:
        return (f"decorrelated (|corr - c*| = {abs(med - c_star):.3g} < {decorrelate:g}, "
                f"c* = {c_star:.4g})")
    return None


def _chaotic_c_star(result: Result) -> float | None:
    """The attracting c* < 1 of the correlation map (chaotic phase), 0 without a theory,
    None when c* = 1 (ordered or on the edge: only collapse can happen)."""
    phase = result.predictions.get("phase")
    if phase is None:
        return 0.0
    c_star = phase["c_star"]
    return c_star if c_star is not None and c_star < 1 else None


# --- models: the same verdicts through the probe -------------------------------------------

def _is_model(args: tuple) -> bool:
    """A model call: the first positional argument is not an override string."""
    return bool(args) and not isinstance(args[0], str)


def _inputs(inputs: Any, batch: int, correlation: float):
    """A tensor or a callable as given; a per-sample shape -> Gaussian inputs."""
    if isinstance(inputs, torch.Tensor) or callable(inputs):
        return inputs
    if (isinstance(inputs, Sequence) and not isinstance(inputs, str) and inputs
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in inputs)):
        return gaussian_inputs(inputs, batch, correlation=correlation)
    raise ValueError(f"inputs={inputs!r} is not allowed; pass a batch-first tensor, a "
                     "per-sample shape such as (3, 32, 32), or a function (generator) -> batch")


def _probe_model(model: Any, inputs: Any, *, init: str = "model", init_params: dict | None = None,
                 bias: str = "model", bias_params: dict | None = None, trials: int = 8,
                 seed: int = 0, batch: int = 4, correlation: float = 0.0,
                 gradients: bool = False, include: Sequence[str] | None = None,
                 exclude: Sequence[str] | None = None, device: Any = None,
                 depth_window: J.Window = None, explode_std: float = Thresholds.explode_std,
                 vanish_std: float = Thresholds.vanish_std,
                 ) -> tuple[Result, list[int], dict[str, Any]]:
    """Probe the model (no histogram: the verdicts do not read it) and judge its window."""
    thresholds = Thresholds(explode_std=explode_std, vanish_std=vanish_std)
    result = probe(model, _inputs(inputs, batch, correlation), init=init,
                   init_params=init_params, bias=bias, bias_params=bias_params, trials=trials,
                   seed=seed, gradients=gradients, include=include, exclude=exclude,
                   device=device, histogram=False)
    if result.depth < 1:
        raise ValueError("the probe hooked no module of this model; name some with include=")
    layers = J.window_layers(result, depth_window)
    return result, layers, J.window_verdict(result, layers, thresholds)


def _model_verdict(expected: str, by_layer: int | str | None, *args: Any,
                   **settings: Any) -> Result:
    result, layers, verdict = _probe_model(*args, **settings)
    limit = None if by_layer is None else J.layer_index(result, by_layer, "by_layer", last=True)
    late = limit is not None and verdict["verdict_layer"] is not None and (
        verdict["verdict_layer"] > limit)
    if verdict["verdict"] != expected or late:
        when = "" if limit is None else f" by layer {limit} '{result.modules[limit]}'"
        raise AssertionError(f"expected {expected}{when}, but "
                             f"{J.describe(result, verdict, layers)}")
    return result


def _model_corr(args: tuple, settings: dict, at_layer: int | str | None):
    """Probe for a correlation (batch 2, correlation 0.5 unless given); the layer and the
    median and 10-90 % of ``corr`` there."""
    settings = {"batch": 2, "correlation": 0.5, **settings}
    result, layers, verdict = _probe_model(*args, **settings)
    if result.settings["batch"] < 2:
        raise ValueError(f"batch={result.settings['batch']} is not allowed here; a correlation "
                         "between inputs needs batch >= 2")
    layer = layers[-1] if at_layer is None else J.layer_index(result, at_layer, "at_layer")
    with np.errstate(invalid="ignore"):
        q10, med, q90 = np.quantile(result.stats["corr"][:, layer], [0.1, 0.5, 0.9])
    s = result.settings
    text = (f"{J.model_label(result)}: median corr at layer {layer} '{result.modules[layer]}' "
            f"({result.module_types[layer]}) {med:.6g} (10-90 % of {s['trials']} trials: "
            f"{q10:.4g} .. {q90:.4g}; inputs {result.stats['corr'][:, 0].mean():.3g}); "
            f"variance verdict {verdict['verdict']}")
    return result, verdict, layer, float(med), text


def _model_correlation(args, settings, at_layer, above, below) -> Result:
    result, _, layer, med, text = _model_corr(args, settings, at_layer)
    if not ((above is None or med > above) and (below is None or med < below)):
        bounds = " and ".join(t for t in (f"above {above:g}" if above is not None else "",
                                          f"below {below:g}" if below is not None else "") if t)
        raise AssertionError(f"expected the median corr at layer {layer} {bounds}, but {text}")
    return result


def _model_no_collapse(args, settings, at_layer, collapse, decorrelate) -> Result:
    result, verdict, layer, med, text = _model_corr(args, settings, at_layer)
    problem = _collapse_problem(verdict, med, 0.0, collapse, decorrelate)
    if problem:
        raise AssertionError(
            f"expected two inputs to stay apart but not forget their similarity by layer "
            f"{layer} (1 - corr >= {collapse:g}, |corr| >= {decorrelate:g}: no theory for a "
            f"model, c* = 0), but they {problem}: {text}")
    return result
