"""Gradient assertions (``initlab.testing``): the backward verdict of a chain or a model.

The verdict is ``initlab.verdict.gradient_verdicts``'s: going back from the output, the
ratio r_l = std(dL/dx_l) / std(dL/dx_L) (L the last judged layer) is how much the
gradient has grown or shrunk after L - l layers; a trial *exploded* at the first layer
met going back where dL/dx_l is not finite or r_l > ``grad_explode``, *vanished* at the
first where r_l < ``grad_vanish``, else *stable*. The run's verdict is the most common
over trials, its layer the median layer of those trials.

``by_layer``: the crossing happened at that layer or above it (closer to the output),
i.e. the gradient was already out of scale when it got back to ``by_layer``.
``depth_window``: the judged layers (``initlab.probing.judge.window_layers``: None, a
slice, or (first, last)); the gradient is then measured against dL/dx at the window's
last layer, back to the window's input (layer first - 1), so a classifier head's
scale, left out of the window, does not enter the ratio.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from initlab import config, rules
from initlab.chain import run_chain
from initlab.probing import judge as J
from initlab.result import Result
from initlab.spec import ChainSpec
from initlab.testing.forward import _is_model, _probe_model, compose_like_cli
from initlab.verdict import Thresholds, backward_finite, gradient_ratios, gradient_verdicts, overall

__all__ = ["assert_gradients_explode", "assert_gradients_stable", "assert_gradients_vanish"]


def assert_gradients_stable(*args: Any, depth_window: J.Window = None,
                            **settings: Any) -> Result:
    """The gradient neither explodes nor vanishes going back (most trials stable).

    ``args``/``settings``: the forward helpers' (command-line overrides and settings,
    with ``thresholds.grad_explode``/``thresholds.grad_vanish``), or a ``ChainSpec``, or a
    model and its inputs with the probe's keywords (``grad_explode``/``grad_vanish`` for
    the thresholds). Returns the result (``result.grads`` holds the gradients)."""
    return _assert("stable", None, depth_window, args, settings)


def assert_gradients_vanish(*args: Any, by_layer: int | str | None = None,
                            depth_window: J.Window = None, **settings: Any) -> Result:
    """The gradient vanishes going back (most trials), at ``by_layer`` or above it when
    given (a layer index; for a model a module name too: its first call)."""
    return _assert("vanished", by_layer, depth_window, args, settings)


def assert_gradients_explode(*args: Any, by_layer: int | str | None = None,
                             depth_window: J.Window = None, **settings: Any) -> Result:
    """The gradient explodes (or turns non-finite) going back (most trials), at
    ``by_layer`` or above it when given."""
    return _assert("exploded", by_layer, depth_window, args, settings)


def _assert(expected: str, by_layer, depth_window, args: tuple, settings: dict) -> Result:
    result, thresholds = _run(args, settings)
    if result.grads is None or not np.isfinite(result.grads["grad_x_std"][:, -1]).any():
        raise ValueError("no gradient verdict: no gradient reached the output layer; run with "
                         "gradients on (a model: an output that depends on its input)")
    if result.modules is None and isinstance(depth_window, (tuple, list)) and any(
            isinstance(w, str) for w in depth_window):
        raise ValueError(f"depth_window={depth_window!r} is not allowed for a chain; its "
                         "layers have no module names, use (first, last) layer indices")
    layers = J.window_layers(result, depth_window)
    columns = [layers[0] - 1, *layers]
    verdict = _verdict(result, columns, thresholds)
    limit = None if by_layer is None else _limit(result, by_layer, columns)
    early = limit is not None and verdict["grad_verdict_layer"] is not None and (
        verdict["grad_verdict_layer"] < limit)
    if verdict["grad_verdict"] != expected or early:
        when = "" if limit is None else f" by layer {_name(result, limit)}"
        raise AssertionError(f"expected gradients {expected}{when}, but "
                             f"{describe(result, verdict, columns, thresholds)}")
    return result


def _run(args: tuple, settings: dict) -> tuple[Result, Thresholds]:
    """The result with gradients, and the gradient thresholds it is judged by."""
    if args and isinstance(args[0], ChainSpec):
        spec, rest = args[0], args[1:]
        if rest or set(settings) - {"grad_explode", "grad_vanish"}:
            raise ValueError("with a ChainSpec, pass only grad_explode= and grad_vanish= "
                             "(the spec holds every other setting)")
        return run_chain(dataclasses.replace(spec, gradients=True)), Thresholds(**settings)
    if _is_model(args):
        grad = {k: settings.pop(k) for k in ("grad_explode", "grad_vanish") if k in settings}
        if settings.get("gradients", True) is not True:
            raise ValueError("gradients=False is not allowed here: the gradient assertions "
                             "read the backward pass")
        result, _, _ = _probe_model(*args, **{**settings, "gradients": True})
        return result, Thresholds(**grad)
    given = {str(o).split("=", 1)[0].lstrip("+~") for o in args} | set(settings)
    cfg = compose_like_cli(*args, **({} if "gradients" in given else {"gradients": True}),
                           **settings)
    if not cfg.gradients:
        raise ValueError("gradients=false is not allowed here: the gradient assertions read "
                         "the backward pass")
    return run_chain(config.spec_from_config(cfg)), config.thresholds_from_config(cfg)


def _verdict(result: Result, columns: list[int], thresholds: Thresholds) -> dict[str, Any]:
    """``overall`` of the gradient verdicts on ``columns`` (the last one the reference),
    under ``grad_*`` keys, layers as indices into the result's columns."""
    grads = result.grads["grad_x_std"][:, columns]
    names, hit = gradient_verdicts(grads, result.stats["finite"][:, columns], thresholds)
    verdict = overall(names, [None if h is None else columns[h] for h in hit])
    return {f"grad_{k}": v for k, v in verdict.items()}


def _limit(result: Result, by_layer: int | str, columns: list[int]) -> int:
    """``by_layer`` as a column index among the judged ones (the reference excluded)."""
    if result.modules is None:  # the chain: gradient layers 0..depth-1 (depth: the output)
        layer = rules.integer("by_layer", by_layer, minimum=0, maximum=result.depth - 1,
                              why=f" (a layer the gradient reaches going back; the chain has "
                                  f"{result.depth} layers)")
    else:  # a model: 0 (its input), an index or a module name
        layer = 0 if by_layer == 0 else J.layer_index(result, by_layer, "by_layer")
    if not columns[0] <= layer < columns[-1]:
        raise ValueError(f"by_layer={by_layer!r} is not allowed; the judged gradients are at "
                         f"layers {columns[0]}..{columns[-1] - 1} (layer {columns[-1]} is "
                         "the reference)")
    return layer


def _name(result: Result, layer: int) -> str:
    if result.modules is None or layer == 0:
        return str(layer)
    return f"{layer} '{result.modules[layer]}' ({result.module_types[layer]})"


def _what(result: Result) -> str:
    if result.modules is not None:
        s = result.settings
        return f"{J.model_label(result)} ({s['trials']} trials, batch {s['batch']})"
    s = result.spec
    params = "".join(f" init.{k}={v}" for k, v in s.init_params.items())
    bias = s.describe()["bias"]
    return (f"init={s.init}{params} bias={bias} activation={s.activation} depth={s.depth} "
            f"width={s.width}")


def ratio_at(result: Result, layer: int, reference: int) -> tuple[float, float, float, int]:
    """Median, 10 % and 90 % over the finite trials of std(dL/dx_layer) /
    std(dL/dx_reference), and how many trials were not finite there."""
    grads = result.grads["grad_x_std"][:, [layer, reference]]
    finite = backward_finite(grads, result.stats["finite"][:, [layer, reference]])[:, 0]
    ratio = gradient_ratios(grads)[:, 0]
    ok = finite & np.isfinite(ratio)
    if not ok.any():
        return float("nan"), float("nan"), float("nan"), len(ratio)
    q10, med, q90 = np.quantile(ratio[ok], [0.1, 0.5, 0.9])
    return float(med), float(q10), float(q90), int((~ok).sum())


def describe(result: Result, verdict: dict[str, Any], columns: list[int],
             thresholds: Thresholds) -> str:
    """One line: what ran, the gradient verdict and its layer, the measured ratio there
    (median and 10-90 % over trials; at the window's input when stable) and the
    mean-field theory's ratio where initlab has one, the trial counts, the thresholds."""
    layer, ref = verdict["grad_verdict_layer"], columns[-1]
    at = columns[0] if layer is None else layer
    med, q10, q90, bad = ratio_at(result, at, ref)
    curve = result.curve("grad_x_std")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        theory = curve[at] / curve[ref]
    where = "" if layer is None else f" at layer {_name(result, layer)}"
    theory_text = (f", theory {theory:.3g}" if not np.isnan(theory)
                   else ", no mean-field theory for a model" if result.modules is not None
                   else "")
    nonfinite = f"; not finite in {bad} trials" if bad else ""
    counts = ", ".join(f"{v} {k}" for k, v in verdict["grad_verdict_counts"].items() if v)
    back = f"{ref - at} layer{'s' if ref - at != 1 else ''} back from layer {ref}"
    return (f"{_what(result)}: gradients {verdict['grad_verdict']}{where} ({back}); "
            f"median std(dL/dx_{at})/std(dL/dx_{ref}) {med:.3g} "
            f"(10-90 %: {q10:.3g} .. {q90:.3g}{nonfinite}){theory_text}; trials: {counts}; "
            f"thresholds grad_vanish={thresholds.grad_vanish:g}, "
            f"grad_explode={thresholds.grad_explode:g}")
