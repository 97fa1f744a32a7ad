"""The batched path: every trial of a plain ``nn.Sequential`` in one pass (``torch.func``).

A model qualifies when it is an ``nn.Sequential`` of ``Linear``/``ConvNd``
layers, parameter-free activations (``torch.nn`` ones or ``initlab.models.Activation``),
``Flatten`` and ``Identity``, and nothing else (no buffers, no nested containers).
Each trial's parameters are drawn exactly as on the loop path
(``initlab.probing.weights.prepare``), stacked along a leading trial dimension,
and each child runs once over all trials with ``torch.func.vmap`` of
``functional_call`` (a ConvNd becomes one grouped convolution). Statistics are
reduced per trial from the (trials, features, batch) signal, as the chain does.
Trials are cut into chunks to bound the memory (``budget``): the signals kept for
the backward pass, or one layer's signal without gradients.

By default (``batched=None``) the probe takes this path on CUDA, where one launch per
layer instead of one per trial and layer is the point, and on a CPU only for a
``small`` model (at most ``SMALL_PARAMS`` parameters and ``SMALL_VALUES`` signal
values a trial), where per-trial overhead outweighs the compute; larger models run
faster trial by trial on a CPU. The figures behind these limits are in
``benchmarks/README.md`` (``benchmarks/probe_bench.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from initlab.columns import hist_edges
from initlab.models import Activation
from initlab.probing.record import matches
from initlab.stats import layer_stats, log_histogram, mean_std

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_FREE = (nn.Flatten, nn.Identity)
#: Bytes the signals of one chunk may take.
BUDGET = 1 << 30
#: A model this small takes the batched path on a CPU too (see the measurements above:
#: 128 x 10 Linear, 165 k parameters and 45 k values, is faster batched; 256 x 10, 658 k
#: parameters, is slower with gradients; simple_cnn, 200 k values, is not faster).
SMALL_PARAMS = 1 << 18
SMALL_VALUES = 1 << 16


def eligible(model: nn.Module) -> bool:
    """Whether ``model`` can take the batched path."""
    if type(model) is not nn.Sequential or next(model.buffers(), None) is not None:
        return False
    for child in model:
        if isinstance(child, _LAYERS):
            if {n for n, _ in child.named_parameters()} - {"weight", "bias"}:
                return False
        elif next(child.parameters(), None) is not None or next(child.children(), None):
            return False
        elif not (isinstance(child, (*_FREE, Activation))
                  or type(child).__module__ == "torch.nn.modules.activation"):
            return False
    return True


def small(model: nn.Sequential, x0: torch.Tensor, hooked: list[int]) -> bool:
    """Whether one trial of ``model`` on ``x0`` is small enough that the batched path is
    the faster one on a CPU: parameters <= ``SMALL_PARAMS`` and values of the input and
    of the hooked children's outputs <= ``SMALL_VALUES`` (counted by one forward pass
    without gradients, stopped as soon as the count passes the limit)."""
    if sum(p.numel() for p in model.parameters()) > SMALL_PARAMS:
        return False
    values = x0.numel()
    x = x0
    with torch.no_grad():
        for i, child in enumerate(model):
            if values > SMALL_VALUES:
                return False
            x = child(x)
            if i in hooked:
                values += x.numel()
    return values <= SMALL_VALUES


def _columns(x: torch.Tensor) -> torch.Tensor:
    """(trials, batch, ...) -> (trials, features, batch) float64."""
    return x.detach().reshape(x.shape[0], x.shape[1], -1).to(torch.float64).transpose(1, 2)


def _reduce(x: torch.Tensor, hist_dtype: str | None) -> tuple[dict, torch.Tensor | None]:
    cols = _columns(x)
    stats = {name: v[:, 0] for name, v in layer_stats(cols).items()}  # corr among them
    hist = None if hist_dtype is None else log_histogram(cols, hist_dtype)[0]
    return stats, hist


def _grad(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per trial mean and std of a (trials, ...) gradient over all its values."""
    mean, std = mean_std(g.detach().reshape(g.shape[0], -1, 1))
    return mean[:, 0], std[:, 0]


def run_chunk(template: nn.Sequential, params: list[dict[str, torch.Tensor]],
              x0: torch.Tensor, hooked: list[int], g_of: Any, gradients: bool,
              hist_dtype: str | None, hist_only: list[str] | None = None) -> dict[str, Any]:
    """One chunk of trials. ``params[i]``: child i's stacked parameters (trials, ...);
    ``x0``: (trials, batch, ...); ``hooked``: the children whose outputs are layers;
    ``g_of(y)``: the output gradient for the stacked output ``y``; ``hist_only``: fnmatch
    patterns of the children (index or class name) whose outputs get a histogram (None:
    all; the others an empty one). Returns per layer (input first) the statistics
    (trials,), histograms, gradient statistics and shapes."""
    out: dict[str, Any] = {"stats": [], "hists": [], "grads": {}, "wgrads": {}, "shapes": []}
    if gradients and x0.is_floating_point():
        x0 = x0.detach().clone().requires_grad_(True)
    stats, hist = _reduce(x0, hist_dtype)
    out["stats"].append(stats)
    out["hists"].append(hist)
    out["shapes"].append(tuple(x0.shape[2:]))
    weights: dict[int, torch.Tensor] = {}
    x = x0
    with torch.set_grad_enabled(gradients):
        for i, child in enumerate(template):
            p = params[i]
            if gradients and "weight" in p:
                p = {**p, "weight": p["weight"].detach().requires_grad_(True)}
            x = vmap(lambda q, xx, c=child: functional_call(c, q, (xx,)))(p, x)
            if i in hooked:
                index = len(out["stats"])
                want = hist_only is None or matches((str(i), type(child).__name__), hist_only)
                stats, hist = _reduce(x, hist_dtype if want else None)
                if hist is None and hist_dtype is not None:
                    hist = torch.zeros(len(hist_edges(hist_dtype)) + 1, dtype=torch.int64,
                                       device=x.device)
                out["stats"].append(stats)
                out["hists"].append(hist)
                out["shapes"].append(tuple(x.shape[2:]))
                if "weight" in p:
                    weights[index] = p["weight"]
                if gradients and x.requires_grad:
                    x.register_hook(lambda g, k=index: out["grads"].__setitem__(k, _grad(g)))
        if gradients and x.requires_grad:
            leaves = [x0] if x0.requires_grad else []
            got = torch.autograd.grad(x, leaves + list(weights.values()), g_of(x),
                                      allow_unused=True)
            if leaves:
                out["grads"][0] = _grad(got[0])
            for index, gw in zip(weights, got[len(leaves):], strict=True):
                if gw is not None:
                    out["wgrads"][index] = _grad(gw)
    return out


def chunk_size(trials: int, layer_bytes: list[int], gradients: bool,
               budget: int = BUDGET) -> int:
    """Trials per chunk so that a chunk's signals fit in ``budget`` bytes; ``layer_bytes``:
    one trial's signal sizes. With gradients every signal is kept (twice: the output and
    what autograd saves); without, the largest one with its float64 copies (x4)."""
    per_trial = 2 * sum(layer_bytes) if gradients else 4 * max(layer_bytes)
    return max(1, min(trials, budget // max(per_trial, 1)))
