"""Per-layer observers of the engine (as fastai's hooks / ``ActivationStats``).

The engine calls ``observer.layer(layer, trials, signal, pre)`` after each layer
of each chunk of trials, with the signal (post-activation) and the
pre-activation of every config of a group side by side (``(trials, width,
configs * batch)``, config ``pos`` in column block ``pos``; at layer 0 both are
the input).
An observer reduces what it needs and keeps it per config position; the
engine asks for the arrays at the end. Adding a measurement is adding an
observer, not editing the loop.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from initlab.stats import STATS, hist_edges, layer_stats, log_histogram, mean_std

#: Gradient statistics per trial and layer (columns of the per-layer table when computed):
#: dL/dx_l over units and batch, and dL/dW_l over the entries of the matrix (layer >= 1).
GRAD_STATS = ("grad_x_mean", "grad_x_std", "grad_w_mean", "grad_w_std")


class LayerStats:
    """``STATS`` per config: name -> (trials, depth + 1)."""

    def __init__(self, configs: int, trials: int, depth: int) -> None:
        self.configs = configs
        shape = (trials, depth + 1)
        self.values = [{name: np.empty(shape, dtype=bool if name == "finite" else np.float64)
                        for name in STATS} for _ in range(configs)]

    def layer(self, layer: int, trials: range, signal: torch.Tensor,
              pre: torch.Tensor | None = None) -> None:
        stats = {name: v.cpu().numpy()
                 for name, v in layer_stats(signal, self.configs, pre).items()}
        for pos, out in enumerate(self.values):
            for name, values in stats.items():
                out[name][trials.start : trials.stop, layer] = values[:, pos]


class Histogram:
    """Counts of log10|x| per config and layer over all trials (``initlab.stats.log_histogram``):
    (depth + 1, 2 + bins) with zeros, non-finite, then the bins."""

    def __init__(self, configs: int, depth: int, dtype: str) -> None:
        self.configs, self.dtype = configs, dtype
        bins = len(hist_edges(dtype)) - 1
        self.counts = [np.zeros((depth + 1, 2 + bins), dtype=np.int64) for _ in range(configs)]

    def layer(self, layer: int, trials: range, signal: torch.Tensor,
              pre: torch.Tensor | None = None) -> None:
        counts = log_histogram(signal, self.dtype, self.configs).cpu().numpy()
        for pos, out in enumerate(self.counts):
            out[layer] += counts[pos]


class Progress:
    """Calls ``update(trial-layers done)`` after each layer: every config of every trial counts."""

    def __init__(self, update: Callable[[int], object], configs: int) -> None:
        self.update, self.configs = update, configs

    def layer(self, layer: int, trials: range, signal: torch.Tensor,
              pre: torch.Tensor | None = None) -> None:
        self.update(len(trials) * self.configs)


class GradientStats:
    """``GRAD_STATS`` per config: dL/dx_l by ``layer`` (the backward signal), dL/dW_l by
    ``weights``; NaN where not computed (dL/dW_0 does not exist)."""

    def __init__(self, configs: int, trials: int, depth: int) -> None:
        self.configs = configs
        self.values = [{name: np.full((trials, depth + 1), np.nan) for name in GRAD_STATS}
                       for _ in range(configs)]

    def layer(self, layer: int, trials: range, signal: torch.Tensor) -> None:
        mean, std = (v.cpu().numpy() for v in mean_std(signal, self.configs))
        rows = slice(trials.start, trials.stop)
        for pos, out in enumerate(self.values):
            out["grad_x_mean"][rows, layer] = mean[:, pos]
            out["grad_x_std"][rows, layer] = std[:, pos]

    def weights(self, layer: int, trials: range, pos: int, mean: torch.Tensor,
                std: torch.Tensor) -> None:
        rows = slice(trials.start, trials.stop)
        self.values[pos]["grad_w_mean"][rows, layer] = mean.cpu().numpy()
        self.values[pos]["grad_w_std"][rows, layer] = std.cpu().numpy()
