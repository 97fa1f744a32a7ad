"""Hooks that reduce each hooked module's output (and its gradient) to statistics on the spot.

Nothing is kept but numbers: a forward hook takes the module's output, reduces
it (``initlab.stats.layer_stats``, its histogram and the batch correlation)
and lets it go; with gradients it registers a tensor hook on that output,
which reduces dL/d(output) when the backward pass reaches it. Tensor hooks
(not ``register_full_backward_hook``) so that in-place activations after a
module (``nn.ReLU(inplace=True)``) keep working; they die with the graph.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from initlab.columns import hist_edges
from initlab.stats import layer_stats, log_histogram, mean_std


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first floating-point tensor in ``value``, depth-first (tuples, lists, dict values
    in order, dataclass-like objects are not searched); None if there is none."""
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else None
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        for item in value:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def as_columns(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(1, features, batch) float64: one column per sample (batch first); a tensor whose first
    dimension is not the batch counts as one sample."""
    x = x.detach()
    rows = batch if x.dim() >= 1 and x.shape[0] == batch else 1
    return x.reshape(rows, -1).to(torch.float64).T.unsqueeze(0)


def signal_stats(x: torch.Tensor, batch: int,
                 hist_dtype: str | None) -> tuple[dict, torch.Tensor | None]:
    """Statistics of one signal (name -> 0-d tensor, ``corr`` included) and its histogram
    (None when ``hist_dtype`` is None: the histogram costs more than the statistics)."""
    cols = as_columns(x, batch)
    stats = {name: v[0, 0] for name, v in layer_stats(cols).items()}  # corr among them
    return stats, None if hist_dtype is None else log_histogram(cols, hist_dtype)[0]


def grad_stats(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (unbiased, over every value) of a gradient, in float64: ``mean_std``,
    the two statistics the gradient columns hold (the full ``layer_stats`` of a 512x512
    weight gradient cost 5x as much, 2/3 of a 20-layer MLP's trial)."""
    mean, std = mean_std(g.detach().reshape(1, -1, 1))
    return mean[0, 0], std[0, 0]


def matches(labels: tuple[str, str], patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(label, p) for label in labels for p in patterns)


def select(model: nn.Module, include: Sequence[str] | None,
           exclude: Sequence[str] | None) -> dict[nn.Module, str]:
    """Module -> name of the modules to hook: leaves with parameters by default; with
    ``include``, every module whose name or class name (``ReLU``) matches a pattern; minus
    ``exclude``'s matches. The model itself is named ``""``."""
    chosen = {}
    for name, module in model.named_modules():
        labels = (name, type(module).__name__)
        if include is not None:
            hit = matches(labels, include)
        else:
            hit = (next(module.children(), None) is None
                   and next(module.parameters(recurse=False), None) is not None)
        if hit and not matches(labels, exclude or ()):
            chosen.setdefault(module, name or type(module).__name__)
    return chosen


class Recorder:
    """Forward hooks on the chosen modules; per trial, one entry per call, in call order."""

    def __init__(self, names: dict[nn.Module, str], batch: int, hist_dtype: str | None,
                 gradients: bool, hist_only: Sequence[str] | None = None) -> None:
        self.names, self.batch, self.hist_dtype = names, batch, hist_dtype
        self.gradients = gradients
        #: fnmatch patterns (module name or class): only those modules' outputs get a
        #: histogram, the others an empty one (None: every module)
        self.hist_only = hist_only
        self.handles: list[Any] = []
        self.start_trial()

    def start_trial(self) -> None:
        self.keys: list[tuple[str, int]] = []
        self.types: list[str] = []
        self.modules: list[nn.Module] = []
        self.shapes: list[tuple[int, ...]] = []
        self.stats: list[dict] = []
        self.hists: list[torch.Tensor] = []
        self.grads: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._calls: dict[str, int] = {}

    def attach(self) -> None:
        for module in self.names:
            self.handles.append(module.register_forward_hook(self._forward))

    def detach(self) -> None:
        while self.handles:
            self.handles.pop().remove()

    def _forward(self, module: nn.Module, args: Any, output: Any) -> None:
        x = first_tensor(output)
        if x is None or x.dim() == 0:  # no signal, or the loss itself: not a layer
            return
        name = self.names[module]
        call = self._calls.get(name, 0)
        self._calls[name] = call + 1
        index = len(self.keys) + 1  # layer 0 is the input
        self.keys.append((name, call))
        self.types.append(type(module).__name__)
        self.modules.append(module)
        self.shapes.append(tuple(x.shape[1:]) if x.shape[0] == self.batch else tuple(x.shape))
        want = self.hist_only is None or matches((name, type(module).__name__), self.hist_only)
        stats, hist = signal_stats(x, self.batch, self.hist_dtype if want else None)
        if hist is None and self.hist_dtype is not None:  # not asked for: no counts
            hist = torch.zeros(len(hist_edges(self.hist_dtype)) + 1, dtype=torch.int64,
                               device=x.device)
        self.stats.append(stats)
        self.hists.append(hist)
        if self.gradients and x.requires_grad:
            x.register_hook(lambda g, i=index: self._grad(i, g))

    def _grad(self, index: int, g: torch.Tensor) -> None:
        self.grads[index] = grad_stats(g)


def no_gradient_message(out: Any) -> str | None:
    """Why no backward pass can start from a model's output ``out``; None when it can."""
    y = first_tensor(out)
    if y is not None and (y.requires_grad or y.device.type == "meta"):
        return None
    got = ("None" if out is None else f"a {out.dtype} tensor"
           if isinstance(out, torch.Tensor) else type(out).__name__)
    why = (f"its output holds no floating-point tensor (it returned {got})" if y is None
           else "its output does not depend on the input or on any parameter")
    return (f"gradients=true needs the model's output to start the backward pass from, but "
            f"{why}; return one, or set gradients=false")


def no_module_message(include: list[str] | None, exclude: list[str] | None,
                      key: str = "", model: str = "this model") -> str:
    """Why the probe has nothing to hook, in one line naming the patterns (``key``: how the
    caller spells them, ``model.`` on the command line)."""
    chosen = (f"{key}include={include}" if include is not None else "the default (every leaf "
              "module with parameters)") + (f" minus {key}exclude={exclude}" if exclude else "")
    return (f"no module to probe: {chosen} matches no module of {model}; patterns match "
            "module names (as model.named_modules() gives them) or class names (Conv2d)")
