"""Regression-test helpers: guard an initialization's behaviour in your own CI.

    from initlab.testing import assert_stable, assert_vanishes, assert_explodes

    def test_my_init_keeps_a_deep_relu_chain_alive():
        assert_stable(init="kaiming", activation="relu", depth=100, trials=16)

    def test_pytorch_default_init_is_not_enough_for_relu():
        assert_vanishes(init="torch_default", activation="relu", by_layer=40)

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

__all__ = ["assert_explodes", "assert_stable", "assert_vanishes", "chain"]


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
