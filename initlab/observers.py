"""Per-layer observers of the engine (as fastai's hooks / ``ActivationStats``).

The engine calls ``observer.layer(layer, trials, signal, pre)`` after each layer
of each chunk of trials, with the signal (post-activation) and the
pre-activation of every config of a group side by side (``(trials, width,
configs * batch)``, config ``pos`` in column block ``pos``; at layer 0 both are
the input), and ``observer.finish(trials)`` when the chunk is done.
An observer reduces what it needs on the signal's device into a per-chunk
device buffer, and ``finish`` copies that buffer to NumPy once: one
device-to-host copy (on CUDA, one synchronization) per chunk, not one per
layer. The engine asks for the arrays at the end. Adding a measurement is
adding an observer, not editing the loop.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from initlab.columns import GRAD_STATS, STATS, hist_edges
from initlab.stats import layer_stats, log_histogram, mean_std


def _chunk_buffer(depth: int, names: int, trials: range, configs: int,
                  device: torch.device, fill: float | None = None) -> torch.Tensor:
    """(depth + 1, names, trials, configs) float64 on ``device``: one chunk's statistics."""
    shape = (depth + 1, names, len(trials), configs)
    if fill is None:
        return torch.empty(shape, dtype=torch.float64, device=device)
    return torch.full(shape, fill, dtype=torch.float64, device=device)


class LayerStats:
    """``STATS`` per config: name -> (trials, depth + 1)."""

    def __init__(self, configs: int, trials: int, depth: int) -> None:
        self.configs, self.depth = configs, depth
        shape = (trials, depth + 1)
        self.values = [{name: np.empty(shape, dtype=bool if name == "finite" else np.float64)
                        for name in STATS} for _ in range(configs)]
        self._chunk: torch.Tensor | None = None

    def layer(self, layer: int, trials: range, signal: torch.Tensor,
              pre: torch.Tensor | None = None) -> None:
        stats = layer_stats(signal, self.configs, pre)
        if self._chunk is None:
            self._chunk = _chunk_buffer(self.depth, len(STATS), trials, self.configs,
                                        signal.device)
        torch.stack([stats[name].to(torch.float64) for name in STATS], out=self._chunk[layer])

    def finish(self, trials: range) -> None:
        """Copy the chunk's statistics to NumPy (one copy) and start a new chunk."""
        if self._chunk is None:
            return
        chunk = self._chunk.cpu().numpy()  # (depth + 1, names, trials, configs)
        self._chunk = None
        rows = slice(trials.start, trials.stop)
        for pos, out in enumerate(self.values):
            for s, name in enumerate(STATS):  # finite: 1.0 / 0.0 -> True / False
                out[name][rows] = chunk[:, s, :, pos].T


class Histogram:
    """Counts of log10|x| per config and layer over all trials (``initlab.stats.log_histogram``):
    (depth + 1, 2 + bins) with zeros, non-finite, then the bins."""

    def __init__(self, configs: int, depth: int, dtype: str) -> None:
        self.configs, self.dtype = configs, dtype
        bins = len(hist_edges(dtype)) - 1
        self.counts = [np.zeros((depth + 1, 2 + bins), dtype=np.int64) for _ in range(configs)]
        self._chunk: torch.Tensor | None = None  # (configs, depth + 1, 2 + bins) on the device

    def layer(self, layer: int, trials: range, signal: torch.Tensor,
              pre: torch.Tensor | None = None) -> None:
        counts = log_histogram(signal, self.dtype, self.configs)
        if self._chunk is None:
            self._chunk = torch.zeros((self.configs, *self.counts[0].shape), dtype=torch.int64,
                                      device=signal.device)
        self._chunk[:, layer] += counts

    def finish(self, trials: range) -> None:
        """Add the chunk's counts to the totals (one copy) and start a new chunk."""
        if self._chunk is None:
            return
        chunk = self._chunk.cpu().numpy()
        self._chunk = None
        for pos, out in enumerate(self.counts):
            out += chunk[pos]


class Progress:
    """Calls ``update(trial-layers done)`` after each layer: every config of every trial counts."""

    def __init__(self, update: Callable[[int], object], configs: int) -> None:
        self.update, self.configs = update, configs

    def layer(self, layer: int, trials: range, signal: torch.Tensor,
              pre: torch.Tensor | None = None) -> None:
        self.update(len(trials) * self.configs)

    def finish(self, trials: range) -> None:
        """Nothing held per chunk."""


class GradientStats:
    """``GRAD_STATS`` per config: dL/dx_l by ``layer`` (the backward signal), dL/dW_l by
    ``weights``; NaN where not computed (dL/dW_0 does not exist)."""

    def __init__(self, configs: int, trials: int, depth: int) -> None:
        self.configs, self.depth = configs, depth
        self.values = [{name: np.full((trials, depth + 1), np.nan) for name in GRAD_STATS}
                       for _ in range(configs)]
        self._chunk: torch.Tensor | None = None  # (depth + 1, GRAD_STATS, trials, configs)

    def _buffer(self, trials: range, device: torch.device) -> torch.Tensor:
        if self._chunk is None:  # NaN: what is not computed stays NaN
            self._chunk = _chunk_buffer(self.depth, len(GRAD_STATS), trials, self.configs,
                                        device, fill=float("nan"))
        return self._chunk

    def layer(self, layer: int, trials: range, signal: torch.Tensor) -> None:
        chunk = self._buffer(trials, signal.device)
        mean, std = mean_std(signal, self.configs)
        chunk[layer, 0] = mean
        chunk[layer, 1] = std

    def weights(self, layer: int, trials: range, pos: int, mean: torch.Tensor,
                std: torch.Tensor) -> None:
        chunk = self._buffer(trials, mean.device)
        chunk[layer, 2, :, pos] = mean
        chunk[layer, 3, :, pos] = std

    def finish(self, trials: range) -> None:
        """Copy the chunk's statistics to NumPy (one copy) and start a new chunk."""
        if self._chunk is None:
            return
        chunk = self._chunk.cpu().numpy()
        self._chunk = None
        rows = slice(trials.start, trials.stop)
        for pos, out in enumerate(self.values):
            for s, name in enumerate(GRAD_STATS):
                out[name][rows] = chunk[:, s, :, pos].T
