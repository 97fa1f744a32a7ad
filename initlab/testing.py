"""Regression-test helpers: guard an initialization's behaviour in your own CI.

    from initlab.testing import assert_stable, assert_vanishes, assert_explodes

    def test_my_init_keeps_a_deep_relu_chain_alive():
        assert_stable(init="kaiming", activation="relu", depth=100, trials=16)

    def test_pytorch_default_init_is_not_enough_for_relu():
        assert_vanishes(init="torch_default", activation="relu", by_layer=40)

    def test_two_inputs_stay_apart_on_the_edge_of_chaos():
        assert_no_collapse("init=scaled", "init.sigma_w2=1.76", "bias=normal",
                           "bias.sigma_b2=0.05", activation="tanh", depth=50)

Settings are the command line's: keyword arguments (``init``, ``activation``,
``depth``, ``width``, ``trials``, ``seed``, ``dtype``, ...; dotted ones such as
``init.std`` as ``**{"init.std": 0.01}``) or override strings exactly as typed
after ``initlab`` (``"init=normal", "init.std=0.01"``, ``"experiments=..."``).
They are composed through the same Hydra configs, so thresholds, presets and
plug-ins behave as on the command line. A failure says what was expected and
what the chain did: verdict, layer, trial counts and the std there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from initlab import config
from initlab.chain import ChainResult, run_chain
from initlab.validate import UsageError, check_args, compose_overrides
from initlab.verdict import overall, trial_verdicts

__all__ = ["assert_correlation", "assert_explodes", "assert_no_collapse", "assert_stable",
           "assert_vanishes", "chain"]


def chain(*overrides: str, **settings: Any) -> tuple[ChainResult, dict[str, Any]]:
    """Run the chain the command line would run; return (result, overall verdict)."""
    args = [*overrides, *(f"{k}={_text(v)}" for k, v in settings.items())]
    try:
        check_args(args)
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    cfg = compose_overrides(args)
    result = run_chain(config.spec_from_config(cfg))
    verdict = overall(*trial_verdicts(result.stats, config.thresholds_from_config(cfg)))
    return result, verdict


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def _describe(result: ChainResult, verdict: dict[str, Any]) -> str:
    s = result.spec
    params = "".join(f" init.{k}={v}" for k, v in s.init_params.items())
    what = f"init={s.init}{params} activation={s.activation} depth={s.depth} width={s.width}"
    counts = ", ".join(f"{v} {k}" for k, v in verdict["verdict_counts"].items() if v)
    layer = verdict["verdict_layer"]
    std = np.median(result.stats["std"], axis=0)
    at = f" at layer {layer} (median std there {std[layer]:.3g})" if layer is not None else ""
    return (f"{what} {verdict['verdict']}{at}; trials: {counts}; "
            f"final median std {std[-1]:.3g}")


def assert_stable(*overrides: str, **settings: Any) -> ChainResult:
    """The chain neither explodes nor vanishes (most trials stable)."""
    result, verdict = chain(*overrides, **settings)
    if verdict["verdict"] != "stable":
        raise AssertionError(f"expected stable, but {_describe(result, verdict)}")
    return result


def assert_vanishes(*overrides: str, by_layer: int | None = None, **settings: Any) -> ChainResult:
    """The chain vanishes (most trials), at or before ``by_layer`` when given."""
    return _assert_fails("vanished", by_layer, overrides, settings)


def assert_explodes(*overrides: str, by_layer: int | None = None, **settings: Any) -> ChainResult:
    """The chain explodes (most trials), at or before ``by_layer`` when given."""
    return _assert_fails("exploded", by_layer, overrides, settings)


def _assert_fails(expected: str, by_layer, overrides, settings) -> ChainResult:
    result, verdict = chain(*overrides, **settings)
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


def _corr_chain(overrides, settings) -> tuple[ChainResult, dict[str, Any]]:
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides} | set(settings)
    defaults = {k: v for k, v in CORR_DEFAULTS.items() if k not in given}
    result, verdict = chain(*overrides, **defaults, **settings)
    if result.spec.batch < 2:
        raise ValueError(f"batch={result.spec.batch} is not allowed here; a correlation between "
                         "inputs needs batch >= 2")
    return result, verdict


def _corr_at(result: ChainResult, at_layer: int | None) -> tuple[int, float, float, float]:
    """(layer, median, q10, q90) over trials of ``corr`` at ``at_layer`` (default: last)."""
    depth = result.spec.depth
    layer = depth if at_layer is None else int(at_layer)
    if not 0 <= layer <= depth:
        raise ValueError(f"at_layer={at_layer} is not allowed; at_layer must be in 0..{depth}")
    values = result.stats["corr"][:, layer]
    with np.errstate(invalid="ignore"):
        q10, med, q90 = np.quantile(values, [0.1, 0.5, 0.9])
    return layer, float(med), float(q10), float(q90)


def _describe_corr(result: ChainResult, verdict: dict[str, Any], layer: int, med: float,
                   q10: float, q90: float) -> str:
    from initlab.theory import for_chain

    s = result.spec
    curves = for_chain(s, result.recipe)
    theory = f", theory {curves['corr'][layer]:.4g}" if curves is not None else ""
    bias = s.bias_recipe()
    params = "".join(f" init.{k}={v}" for k, v in s.init_params.items())
    what = (f"init={s.init}{params} bias={s.describe()['bias']} (sigma_b2={bias.sigma_b2:.3g}) "
            f"activation={s.activation} width={s.width} c0={s.input_correlation:g}")
    return (f"{what}: median corr at layer {layer} {med:.6g} (10-90 % of {s.trials} trials: "
            f"{q10:.4g} .. {q90:.4g}{theory}); variance verdict {verdict['verdict']}")


def assert_correlation(*overrides: str, at_layer: int | None = None, above: float | None = None,
                       below: float | None = None, **settings: Any) -> ChainResult:
    """The median over trials of ``corr`` (cosine of two inputs' pre-activations) at
    ``at_layer`` (default: the last) lies strictly between ``above`` and ``below``.

    Runs with batch=2, input_correlation=0.5 and gradients=false unless given.
    """
    if above is None and below is None:
        raise ValueError("assert_correlation needs above=, below= or both")
    result, verdict = _corr_chain(overrides, settings)
    layer, med, q10, q90 = _corr_at(result, at_layer)
    ok = (above is None or med > above) and (below is None or med < below)
    if not ok:
        bounds = " and ".join(t for t in (f"above {above:g}" if above is not None else "",
                                          f"below {below:g}" if below is not None else "") if t)
        raise AssertionError(f"expected the median corr at layer {layer} {bounds}, but "
                             f"{_describe_corr(result, verdict, layer, med, q10, q90)}")
    return result


def assert_no_collapse(*overrides: str, at_layer: int | None = None, collapse: float = 1e-3,
                       decorrelate: float = 0.05, **settings: Any) -> ChainResult:
    """Two inputs neither collapse nor decorrelate by ``at_layer`` (default: the last).

    *Collapsed* (the ordered phase: the chain forgets which input it saw): the median
    corr is within ``collapse`` of 1. *Decorrelated* (the chaotic phase: it forgets
    how similar they were): the median corr is within ``decorrelate`` of the chaotic
    fixed point c* < 1 of the mean-field correlation map (``initlab.theory.phase_params``;
    c* = 0 where the theory does not apply). A chain whose variance explodes or
    vanishes fails too (its corr means nothing). Runs with batch=2,
    input_correlation=0.5 and gradients=false unless given.
    """
    result, verdict = _corr_chain(overrides, settings)
    layer, med, q10, q90 = _corr_at(result, at_layer)
    c_star = _chaotic_c_star(result)
    problem = None
    if verdict["verdict"] != "stable":
        problem = "the variance did not stay stable"
    elif not np.isfinite(med):
        problem = "corr is not finite"
    elif 1 - med < collapse:
        problem = f"collapsed (1 - corr = {1 - med:.3g} < {collapse:g})"
    elif c_star is not None and abs(med - c_star) < decorrelate:
        problem = (f"decorrelated (|corr - c*| = {abs(med - c_star):.3g} < {decorrelate:g}, "
                   f"c* = {c_star:.4g})")
    if problem:
        raise AssertionError(
            f"expected two inputs to stay apart but not forget their similarity by layer "
            f"{layer} (1 - corr >= {collapse:g}, |corr - c*| >= {decorrelate:g}), but they "
            f"{problem}: {_describe_corr(result, verdict, layer, med, q10, q90)}")
    return result


def _chaotic_c_star(result: ChainResult) -> float | None:
    """The attracting c* < 1 of the correlation map (chaotic phase), 0 without a theory,
    None when c* = 1 (ordered or on the edge: only collapse can happen)."""
    from initlab.summary import phase_fields

    phase = phase_fields(result)
    if phase is None:
        return 0.0
    c_star = phase["c_star"]
    return c_star if c_star is not None and c_star < 1 else None
