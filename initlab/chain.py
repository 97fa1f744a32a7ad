"""The engine: run the chain ``x_l = act(W_l @ x_{l-1})`` and reduce per-layer statistics.

Pure: a ``ChainSpec`` in, a ``ChainResult`` (NumPy arrays) out. No Hydra, no
files, no plots.

How it computes:

* **Trials are a tensor dimension.** The signal is ``(trials, width, batch)``
  and each layer is one ``torch.bmm`` over all trials at once. Trials are cut
  into chunks only to bound memory (``MEMORY_BUDGET``), never looped one by one.
* **Layers stream.** One layer's weights live in memory at a time:
  O(trials * width^2), whatever the depth.
* **Random streams are keyed, not sequential.** Layer ``l`` of trial ``t``
  draws its base matrix from a generator seeded by ``(seed, l, t)``, and the
  input of trial ``t`` from ``(seed, t)``. So a layer's weights can be drawn
  again on their own, a run with fewer trials or layers draws a prefix of a
  larger one's numbers, and every scheme with the same base distribution multiplies
  the *same* matrices (common random numbers: paired comparisons).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from initlab.activations import get_activation
from initlab.schemes import Draw, fill_base_, orthogonalize_
from initlab.spec import ChainSpec, resolve_device
from initlab.stats import STATS, hist_edges, layer_stats, log_histogram
from initlab.theory import for_chain

#: Bytes of weights (one layer, all trials of a chunk) held at once.
MEMORY_BUDGET = 512 * 2**20

_MASK64 = (1 << 64) - 1
_INPUT_STREAM = 0x1A9B7C3D  # tags keep the input and weight streams apart
_WEIGHT_STREAM = 0x5EED0F17
_GRAD_STREAM = 0x6EAD1E57

#: Gradient statistics per trial and layer (columns of the per-layer table when computed):
#: dL/dx_l over units and batch, and dL/dW_l over the entries of the matrix (layer >= 1).
GRAD_STATS = ("grad_x_mean", "grad_x_std", "grad_w_mean", "grad_w_std")


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def stream_seed(seed: int, *key: int) -> int:
    """A 63-bit generator seed for the stream ``(seed, *key)`` (SplitMix64 hashing)."""
    z = _splitmix64(seed & _MASK64)
    for k in key:
        z = _splitmix64(z ^ (k & _MASK64))
    return z >> 1


def weight_seed(seed: int, layer: int, trial: int) -> int:
    """Seed of the base matrix of ``layer`` (1-based) in ``trial``."""
    return stream_seed(seed, _WEIGHT_STREAM, layer, trial)


def input_seed(seed: int, trial: int) -> int:
    """Seed of the input vectors x_0 of ``trial``."""
    return stream_seed(seed, _INPUT_STREAM, trial)


def fill_base(out: torch.Tensor, draw: Draw, seed: int, layer: int, trials: range) -> torch.Tensor:
    """Fill ``out`` (len(trials), n_out, n_in) with the base draws of ``layer``, trial by trial.

    Normal-family and orthogonal schemes start from the same N(0, 1) matrix of a
    (seed, layer, trial) stream, uniform-family ones from the same U(-1, 1) matrix.
    """
    base = draw.base
    if base in ("zero", "constant"):
        return fill_base_(out, base)
    gen = torch.Generator(device=out.device)
    for i, trial in enumerate(trials):
        gen.manual_seed(weight_seed(seed, layer, trial))
        if base == "custom":
            draw.fill(out[i], gen)
        else:
            fill_base_(out[i], "normal" if base == "orthogonal" else base, gen)
    if base == "orthogonal":  # one batched QR over the trials
        orthogonalize_(out)
    return out


def layer_weights(spec: ChainSpec, layer: int, trials: range, device: Any = "cpu") -> torch.Tensor:
    """The weights W_layer (len(trials), width, width) that ``run_chain`` uses for ``layer``."""
    draw = spec.draw()
    source = 1 if spec.weights == "shared" else layer
    w = torch.empty(len(trials), spec.width, spec.width, dtype=spec.torch_dtype, device=device)
    return fill_base(w, draw, spec.seed, source, trials).mul_(draw.scale)


def draw_inputs(spec: ChainSpec, trials: range, device: Any = "cpu") -> torch.Tensor:
    """Inputs x_0 ~ N(0, I): shape (len(trials), width, batch)."""
    x = torch.empty(len(trials), spec.width, spec.batch, dtype=spec.torch_dtype, device=device)
    gen = torch.Generator(device=x.device)
    for i, trial in enumerate(trials):
        gen.manual_seed(input_seed(spec.seed, trial))
        x[i].normal_(generator=gen)
    return x


def _unit_std(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Divide each trial's (width, batch) block by its std (left alone where the std is 0).

    Returns the result and the (float64) divisors.
    """
    std = h.reshape(h.shape[0], -1).to(torch.float64).std(dim=1)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return h / std.to(h.dtype).view(-1, 1, 1), std


def trial_chunk(spec: ChainSpec, budget: int = MEMORY_BUDGET) -> int:
    """How many trials run together so that one layer's weights fit in ``budget`` bytes."""
    per_trial = spec.width * spec.width * torch.finfo(spec.torch_dtype).bits // 8
    per_trial += 4 * spec.width * spec.batch * 8  # signal, activation, float64 copy for stats
    if spec.gradients:  # pre-activations kept for the backward pass
        per_trial += spec.depth * spec.width * spec.batch * torch.finfo(spec.torch_dtype).bits // 8
    return max(1, min(spec.trials, budget // per_trial))


@dataclass
class ChainResult:
    """Per-trial, per-layer statistics of one spec: ``stats[name]`` has shape (trials, depth + 1).

    Layer 0 is the input; layer l is the signal after the l-th matmul and activation.
    """

    spec: ChainSpec
    stats: dict[str, np.ndarray]
    device: str
    draw: Draw
    #: (depth + 1, 2 + bins) counts over all trials: zeros, non-finite, then log10|x| bins
    #: (``initlab.stats.log_histogram``).
    hist: np.ndarray | None = None
    #: ``GRAD_STATS`` name -> (trials, depth + 1), when the spec asked for gradients.
    grads: dict[str, np.ndarray] | None = None

    def hist_frame(self) -> pd.DataFrame:
        """Tidy, sparse histogram: one row per (layer, bin) with a non-zero count.

        ``bin`` is ``zero``, ``nonfinite`` or ``value``; value bins cover
        ``log10_lo <= log10|x| < log10_hi``.
        """
        edges = hist_edges(self.spec.dtype).numpy()
        lo = np.concatenate([[np.nan, np.nan], edges[:-1]])
        hi = np.concatenate([[np.nan, np.nan], edges[1:]])
        kind = np.array(["zero", "nonfinite"] + ["value"] * (len(edges) - 1))
        layer, col = np.nonzero(self.hist)
        return pd.DataFrame(
            {
                "layer": layer,
                "bin": kind[col],
                "log10_lo": lo[col],
                "log10_hi": hi[col],
                "count": self.hist[layer, col],
            }
        )

    def frame(self) -> pd.DataFrame:
        """Tidy table: one row per (trial, layer), the spec's settings as columns."""
        trials, layers = self.stats["mean"].shape
        cols: dict[str, Any] = {
            "trial": np.repeat(np.arange(trials), layers),
            "layer": np.tile(np.arange(layers), trials),
        }
        for name in STATS:
            cols[name] = self.stats[name].reshape(-1)
        for name, values in (self.grads or {}).items():
            cols[name] = values.reshape(-1)
        curves = for_chain(self.spec, self.draw)
        names = ("mean", "std", "grad_std") if self.grads else ("mean", "std")
        for name in names:  # mean-field prediction beside each measurement
            column = "theory_grad_x_std" if name == "grad_std" else f"theory_{name}"
            cols[column] = (np.tile(curves[name], trials) if curves is not None
                            else np.full(trials * layers, np.nan))
        frame = pd.DataFrame(cols)
        for i, (key, value) in enumerate(self.spec.describe().items()):
            frame.insert(i, key, value)
        return frame

    def final(self, name: str) -> np.ndarray:
        """Statistic ``name`` at the last layer, one value per trial."""
        return self.stats[name][:, -1]


def run_chain(
    spec: ChainSpec,
    budget: int = MEMORY_BUDGET,
    progress: Callable[[int], None] | None = None,
) -> ChainResult:
    """Run every trial of ``spec`` through the chain and return per-layer statistics.

    With ``spec.gradients``, a backward pass follows: ``g_L ~ N(0, I)`` is
    back-propagated from the output (the gradient of the loss <g_L, x_L>),
    each layer's weights drawn again from their (seed, layer, trial) stream
    instead of kept, so memory holds one layer's weights whatever the depth
    (plus the pre-activations, width x batch per layer).

    ``progress``, when given, is called with the number of trials after each
    layer of each chunk, e.g. a progress bar's ``update``.
    """
    device = resolve_device(spec.device)
    draw = spec.draw()
    act = get_activation(spec.activation, spec.activation_params)
    chunk = trial_chunk(spec, budget)
    shape = (spec.trials, spec.depth + 1)
    out = {name: np.empty(shape, dtype=bool if name == "finite" else np.float64) for name in STATS}
    grads = {name: np.full(shape, np.nan) for name in GRAD_STATS} if spec.gradients else None
    hist = np.zeros((spec.depth + 1, 2 + len(hist_edges(spec.dtype)) - 1), dtype=np.int64)

    def record(layer: int, trials: range, x: torch.Tensor) -> None:
        for name, values in layer_stats(x).items():
            out[name][trials.start : trials.stop, layer] = values.cpu().numpy()
        hist[layer] += log_histogram(x, spec.dtype).cpu().numpy()
        if progress is not None:
            progress(len(trials))

    redraw = spec.weights == "fresh" and draw.base not in ("zero", "constant")
    with torch.no_grad():
        for start in range(0, spec.trials, chunk):
            trials = range(start, min(spec.trials, start + chunk))
            # The weights first: the largest allocation fails before any work is done.
            w = torch.empty(len(trials), spec.width, spec.width, dtype=spec.torch_dtype,
                            device=device)
            x = draw_inputs(spec, trials, device)
            record(0, trials, x)
            x0, pre, gains = x, [], []
            for layer in range(1, spec.depth + 1):
                if layer == 1 or redraw:
                    fill_base(w, draw, spec.seed, layer, trials)
                # (scale * W) @ x computed as scale * (W @ x): width*batch products
                # instead of width^2, the same up to one rounding.
                h = torch.bmm(w, x)
                gain = torch.full((len(trials),), draw.scale, dtype=torch.float64, device=device)
                if draw.scale != 1.0:
                    h.mul_(draw.scale)
                if draw.normalize:  # LSUV: unit std per trial on the batch
                    h, std = _unit_std(h)
                    gain = gain / std
                x = act(h)
                record(layer, trials, x)
                if grads is not None:
                    pre.append(h)
                    gains.append(gain)
            if grads is not None:
                _backward(spec, draw, act, w, trials, x0, pre, gains, grads)
    return ChainResult(spec=spec, stats=out, device=str(device), draw=draw, hist=hist,
                       grads=grads)


def output_gradient(spec: ChainSpec, trials: range, device: Any = "cpu") -> torch.Tensor:
    """g_L ~ N(0, I), shape (len(trials), width, batch): the loss is <g_L, x_L>."""
    g = torch.empty(len(trials), spec.width, spec.batch, dtype=spec.torch_dtype, device=device)
    gen = torch.Generator(device=g.device)
    for i, trial in enumerate(trials):
        gen.manual_seed(stream_seed(spec.seed, _GRAD_STREAM, trial))
        g[i].normal_(generator=gen)
    return g


def _activation_vjp(act: Callable, h: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """g * act'(h), by autograd (so any activation, a plug-in too, works)."""
    with torch.enable_grad():
        hh = h.detach().requires_grad_(True)
        (out,) = torch.autograd.grad(act(hh), hh, g)
    return out


def _weight_grad_stats(g_h: torch.Tensor, x_prev: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Mean and std over entries of dL/dW = g_h @ x_prev^T (per trial), without forming it.

    sum_ij G_ij = sum_b (1.g_b)(1.x_b) and sum_ij G_ij^2 = sum_bb' (g_b.g_b')(x_b.x_b').
    """
    g64, x64 = g_h.to(torch.float64), x_prev.to(torch.float64)
    n_out, n_in = g64.shape[1], x64.shape[1]
    count = n_out * n_in
    total = (g64.sum(dim=1) * x64.sum(dim=1)).sum(dim=1)
    gram_g = torch.bmm(g64.transpose(1, 2), g64)
    gram_x = torch.bmm(x64.transpose(1, 2), x64)
    squares = (gram_g * gram_x).sum(dim=(1, 2))
    mean = total / count
    var = (squares - count * mean**2) / (count - 1)
    return mean, var.clamp_min(0).sqrt()


def _backward(spec, draw, act, w, trials, x0, pre, gains, grads) -> None:
    """Back-propagate g_L through the chain, redrawing each layer's weights."""
    rows = slice(trials.start, trials.stop)

    def record_x(layer: int, g: torch.Tensor) -> None:
        stats = layer_stats(g)
        grads["grad_x_mean"][rows, layer] = stats["mean"].cpu().numpy()
        grads["grad_x_std"][rows, layer] = stats["std"].cpu().numpy()

    g = output_gradient(spec, trials, w.device)
    record_x(spec.depth, g)
    for layer in range(spec.depth, 0, -1):
        h = pre[layer - 1]
        x_prev = x0 if layer == 1 else act(pre[layer - 2])
        g_h = _activation_vjp(act, h, g)  # dL/dh_l
        mean, std = _weight_grad_stats(g_h, x_prev)
        grads["grad_w_mean"][rows, layer] = mean.cpu().numpy()
        grads["grad_w_std"][rows, layer] = std.cpu().numpy()
        if layer == 1 or spec.weights == "fresh":
            fill_base(w, draw, spec.seed, 1 if spec.weights == "shared" else layer, trials)
        # dL/dx_{l-1} = W_l^T g_h with W_l = gain * base (gain per trial under LSUV)
        g = torch.bmm(w.transpose(1, 2), g_h) * gains[layer - 1].to(g_h.dtype).view(-1, 1, 1)
        record_x(layer - 1, g)
