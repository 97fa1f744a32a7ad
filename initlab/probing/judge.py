"""Verdicts on a probed model: which layers to judge (``depth_window``), what to say.

The chain's verdict (``initlab.verdict``) judges every layer 1..depth. A model's
layers are its hooked module calls in forward order (``Result.modules``;
layer 0 is the input), and a user may want only some of them judged — the body
of a network but not its classifier head, say, whose logits are allowed any
scale. ``depth_window`` picks them:

* ``None``: every layer 1..depth;
* a ``slice`` over the layers 1..depth as a Python list (``slice(-5, None)``:
  the last five; ``slice(0, 10)``: the first ten);
* ``(first, last)``, inclusive, each a layer index (1-based, as in the table;
  negative counts from the end, -1 is the last layer) or a module name as
  ``Result.modules`` spells it (``"body.3"``; ``first`` is that module's
  first call, ``last`` its last).

The verdict is then the chain's, on those columns alone: a trial exploded at
the first judged layer whose std passes ``explode_std`` (or is not finite),
vanished at the first whose std falls under ``vanish_std`` (or is all zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from initlab.result import Result
from initlab.verdict import Thresholds, overall, trial_verdicts

Window = slice | Sequence[int | str] | None


def layer_index(result: Result, where: int | str, label: str, last: bool = False) -> int:
    """A layer index in 1..depth for an index (negative: from the end) or a module name
    (its first call, or its last with ``last``); ``label`` names the argument in errors."""
    depth = result.depth
    if isinstance(where, str):
        hits = [i for i, name in enumerate(result.modules) if i and name == where]
        if not hits:
            named = ", ".join(dict.fromkeys(result.modules[1:]))
            raise ValueError(f"{label}={where!r} is not a probed module; allowed: {named}")
        return hits[-1] if last else hits[0]
    if isinstance(where, bool) or not isinstance(where, (int, np.integer)):
        raise ValueError(f"{label}={where!r} is not allowed; use a layer index or a module name")
    layer = int(where) + depth + 1 if where < 0 else int(where)
    if not 1 <= layer <= depth:
        raise ValueError(f"{label}={where} is not allowed; layers are 1..{depth} "
                         f"(or -{depth}..-1 from the end)")
    return layer


def window_layers(result: Result, depth_window: Window) -> list[int]:
    """The judged layers (indices into the result's columns, each in 1..depth), in order."""
    layers = list(range(1, result.depth + 1))
    if depth_window is None:
        chosen = layers
    elif isinstance(depth_window, slice):
        chosen = layers[depth_window]
    elif (isinstance(depth_window, Sequence) and not isinstance(depth_window, str)
          and len(depth_window) == 2):
        first = layer_index(result, depth_window[0], "depth_window first")
        last = layer_index(result, depth_window[1], "depth_window last", last=True)
        chosen = list(range(first, last + 1))
    else:
        raise ValueError(f"depth_window={depth_window!r} is not allowed; use None, a slice of "
                         "the layers, or (first, last) as layer indices or module names")
    if not chosen:
        raise ValueError(f"depth_window={depth_window!r} selects no layer of the "
                         f"{result.depth} probed")
    return chosen


def check_judgeable(result: Result, layers: list[int]) -> None:
    """ValueError when no judged layer has a std: each holds a single value per trial (a
    1-unit head with batch 1), whose spread is undefined (NaN, not 0). Such layers are
    otherwise left out of the verdict, which the others decide."""
    std, finite = result.stats["std"], result.stats["finite"]
    if all(np.isnan(std[:, i]).all() and finite[:, i].all() for i in layers):
        named = ", ".join(f"'{result.modules[i]}'" for i in layers[:5])
        more = ", ..." if len(layers) > 5 else ""
        raise ValueError(f"no verdict: every judged layer ({named}{more}) holds a single value "
                         "per trial (one unit, batch 1), and a std needs two; use batch >= 2, "
                         "or judge or hook layers with two or more units")


def window_verdict(result: Result, layers: list[int],
                   thresholds: Thresholds) -> dict[str, Any]:
    """``initlab.verdict.overall`` on the judged layers alone; ``verdict_layer`` is an
    index into the result's columns (the median over the trials that had the verdict).
    ValueError when no judged layer has a std (``check_judgeable``)."""
    check_judgeable(result, layers)
    columns = [0, *layers]
    names, hit = trial_verdicts({k: v[:, columns] for k, v in result.stats.items()},
                                thresholds)
    return overall(names, [None if h is None else columns[h] for h in hit])


def model_label(result: Result) -> str:
    """``model=... init=... init.std=... bias=...``, as the settings say."""
    return " ".join(f"{k.replace('_', '.', 1)}={v}" for k, v in result.settings.items()
                    if k in ("model", "init", "bias") or k.startswith(("init_", "bias_")))


def _at(result: Result, layer: int) -> str:
    return f"layer {layer} '{result.modules[layer]}' ({result.module_types[layer]})"


def describe(result: Result, verdict: dict[str, Any], layers: list[int]) -> str:
    """One paragraph: the model and its init, the judged layers, the verdict with the
    module where it happened and the median std there, the trial counts, the last layer."""
    s = result.settings
    std = np.median(result.stats["std"], axis=0)
    span = ("every layer" if layers == list(range(1, result.depth + 1))
            else f"layers {layers[0]}..{layers[-1]}")
    layer = verdict["verdict_layer"]
    at = (f" at {_at(result, layer)}, median std there {std[layer]:.3g}"
          if layer is not None else "")
    counts = ", ".join(f"{v} {k}" for k, v in verdict["verdict_counts"].items() if v)
    last = layers[-1]
    return (f"{model_label(result)} ({s['trials']} trials, batch {s['batch']}, {span} of "
            f"{result.depth} judged) {verdict['verdict']}{at}; trials: {counts}; median std at "
            f"{_at(result, last)} {std[last]:.3g}")
