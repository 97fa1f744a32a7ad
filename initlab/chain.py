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
  larger one's numbers, and every scheme transforms the *same* N(0, 1) matrices
  (common random numbers: paired comparisons; see ``initlab.schemes``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from initlab.activations import get_activation
from initlab.schemes import Draw, orthogonalize_, uniform_from_normal_
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


def layer_weights(spec: ChainSpec, layer: int, trials: range, device: Any = "cpu") -> torch.Tensor:
    """The weights W_layer (len(trials), width, width) that ``run_chain`` uses for ``layer``.

    Drawn by the engine's own ``_fill_sources``, then scaled: what the engine
    multiplies, without the LSUV rescaling (which depends on the data).
    """
    draw = spec.draw()
    source = 1 if spec.weights == "shared" else layer
    w = torch.zeros(len(trials), spec.width, spec.width, dtype=spec.torch_dtype, device=device)
    if draw.base != "zero":
        _fill_sources({draw.base: w}, draw, spec.seed, source, trials)
    return w.mul_(draw.scale)


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


def trial_chunk(spec: ChainSpec, budget: int = MEMORY_BUDGET, configs: int = 1,
                matrices: int = 1) -> int:
    """How many trials run together so that one layer's weights fit in ``budget`` bytes.

    ``configs`` specs share each trial's ``matrices`` weight matrices (``run_many``).
    """
    item = torch.finfo(spec.torch_dtype).bits // 8
    per_trial = matrices * spec.width * spec.width * item
    columns = configs * spec.width * spec.batch
    per_trial += 4 * columns * 8  # signal, activation, float64 copy for stats
    if spec.gradients:  # pre-activations kept for the backward pass
        per_trial += spec.depth * columns * item
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

    def prefix(self, depth: int) -> ChainResult:
        """The result of the same chain cut at ``depth`` layers (forward statistics only).

        Layer l's signal does not depend on the layers after it, and every
        layer's weights come from its own (seed, layer, trial) stream, so a
        deeper run holds every shallower one exactly.
        """
        if self.grads is not None:
            raise ValueError("a gradient pass depends on the depth; prefixes have none")
        if not 1 <= depth <= self.spec.depth:
            raise ValueError(f"depth={depth} is not allowed; need 1 <= depth <= {self.spec.depth}")
        spec = dataclasses.replace(self.spec, depth=depth)
        stats = {name: values[:, : depth + 1].copy() for name, values in self.stats.items()}
        hist = None if self.hist is None else self.hist[: depth + 1].copy()
        return ChainResult(spec=spec, stats=stats, device=self.device, draw=self.draw, hist=hist)

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
    return run_many([spec], budget, progress)[0]


def group_key(spec: ChainSpec) -> tuple:
    """Specs with the same key can run as one pass (``run_many``): all but scheme and activation."""
    return (spec.width, spec.depth, spec.trials, spec.batch, spec.seed, spec.dtype, spec.device,
            spec.weights, spec.gradients)


def run_many(
    specs: list[ChainSpec],
    budget: int = MEMORY_BUDGET,
    progress: Callable[[int], None] | None = None,
) -> list[ChainResult]:
    """Run several specs, drawing each layer's base matrices once for all that can share them.

    Specs that differ only in scheme and activation (same width, depth, trials,
    batch, seed, dtype, device, weights) run as one pass: each layer draws one
    N(0, 1) matrix per trial for all of them (uniform-family schemes use its erf,
    orthogonal ones its QR), and all configs sharing a matrix go through one
    ``bmm`` as extra columns. Every config sees exactly the
    weights and inputs it would see alone (common random numbers), so the
    results equal separate runs up to the rounding of the wider matmul.
    """
    results: list[ChainResult | None] = [None] * len(specs)
    groups: dict[tuple, list[int]] = {}
    for i, spec in enumerate(specs):
        key = group_key(spec)
        if spec.draw().base == "custom":  # a plug-in draws its own matrices
            key = (*key, "custom", i)
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        for i, result in zip(members, _run_group([specs[i] for i in members], budget, progress),
                             strict=True):
            results[i] = result
    return results


def _fill_sources(mats: dict[str, torch.Tensor], draw_of_custom: Draw | None, seed: int,
                  layer: int, trials: range) -> None:
    """Draw this layer's base matrices: one N(0, 1) draw per trial feeds the normal, uniform
    (erf of it) and orthogonal (its QR) bases; a plug-in fills its own; constant is ones.

    Every scheme thus starts from the same matrix of a (seed, layer, trial) stream.
    """
    if "constant" in mats:
        mats["constant"].fill_(1.0)
    gen = torch.Generator(device=next(iter(mats.values())).device) if mats else None
    drawn = [src for src in ("normal", "uniform", "orthogonal") if src in mats]
    for i, trial in enumerate(trials):
        key = weight_seed(seed, layer, trial)
        if drawn:
            mats[drawn[0]][i].normal_(generator=gen.manual_seed(key))
        if "custom" in mats:
            draw_of_custom.fill(mats["custom"][i], gen.manual_seed(key))
    base = mats[drawn[0]] if drawn else None
    if "orthogonal" in mats and base is not mats["orthogonal"]:
        mats["orthogonal"].copy_(base)  # before the uniform transform may overwrite base
    if "uniform" in mats:  # erf(Z / sqrt 2), written straight into its own buffer
        if base is mats["uniform"]:
            uniform_from_normal_(base)
        else:
            torch.erf(torch.mul(base, 1.0 / math.sqrt(2.0), out=mats["uniform"]),
                      out=mats["uniform"])
    if "orthogonal" in mats:
        orthogonalize_(mats["orthogonal"])


def _run_group(specs: list[ChainSpec], budget: int, progress) -> list[ChainResult]:
    """The engine proper: every spec of a compatible group in one batched pass."""
    ref = specs[0]
    device = resolve_device(ref.device)
    draws = [s.draw() for s in specs]
    acts = [get_activation(s.activation, s.activation_params) for s in specs]
    k_count, n, b = len(specs), ref.width, ref.batch
    # Configs sharing a matrix sit side by side, so one bmm serves them all.
    order = sorted(range(k_count), key=lambda k: draws[k].base)
    cols = {k: slice(pos * b, (pos + 1) * b) for pos, k in enumerate(order)}
    sources: dict[str, list[int]] = {}
    for k in order:
        sources.setdefault(draws[k].base, []).append(k)
    blocks = {src: slice(cols[ks[0]].start, cols[ks[-1]].stop) for src, ks in sources.items()}
    needed = [src for src in sources if src != "zero"]
    custom = next((d for d in draws if d.base == "custom"), None)
    chunk = trial_chunk(ref, budget, configs=k_count, matrices=max(1, len(needed)))
    shape = (ref.trials, ref.depth + 1)
    outs = [{name: np.empty(shape, dtype=bool if name == "finite" else np.float64)
             for name in STATS} for _ in specs]
    grads = [{name: np.full(shape, np.nan) for name in GRAD_STATS} if ref.gradients else None
             for _ in specs]
    hists = [np.zeros((ref.depth + 1, 2 + len(hist_edges(ref.dtype)) - 1), dtype=np.int64)
             for _ in specs]

    def record(layer: int, trials: range, signal: torch.Tensor) -> None:
        stats = {name: v.cpu().numpy() for name, v in layer_stats(signal, k_count).items()}
        counts = log_histogram(signal, ref.dtype, k_count).cpu().numpy()
        for pos, k in enumerate(order):  # column block pos holds config k
            for name, values in stats.items():
                outs[k][name][trials.start : trials.stop, layer] = values[:, pos]
            hists[k][layer] += counts[pos]
        if progress is not None:
            progress(len(trials) * k_count)

    redraw = ref.weights == "fresh" and any(src in needed for src in
                                            ("normal", "uniform", "orthogonal", "custom"))
    with torch.no_grad():
        for start in range(0, ref.trials, chunk):
            trials = range(start, min(ref.trials, start + chunk))
            t_count = len(trials)
            # The weights first: the largest allocation fails before any work is done.
            mats = {src: torch.empty(t_count, n, n, dtype=ref.torch_dtype, device=device)
                    for src in needed}
            x0 = draw_inputs(ref, trials, device).repeat(1, 1, k_count)  # same x_0 for all
            record(0, trials, x0)
            x, pre, gains = x0, [], []
            for layer in range(1, ref.depth + 1):
                if layer == 1 or redraw:
                    source_layer = 1 if ref.weights == "shared" else layer
                    _fill_sources(mats, custom, ref.seed, source_layer, trials)
                # (scale * W) @ x computed as W @ (scale * x): width*batch products instead
                # of width^2, and the product overflows or underflows where (scale * W) @ x
                # would (up to one rounding).
                scaled = x.clone()
                for k in range(k_count):
                    if draws[k].scale != 1.0:
                        scaled[:, :, cols[k]] *= draws[k].scale
                h = torch.zeros_like(x)
                for src, block in blocks.items():
                    if src != "zero":
                        h[:, :, block] = torch.bmm(mats[src], scaled[:, :, block])
                gain = torch.empty(t_count, k_count, dtype=torch.float64, device=device)
                nxt = torch.empty_like(x)
                for k in range(k_count):
                    hk = h[:, :, cols[k]]
                    gain[:, k] = draws[k].scale
                    if draws[k].normalize:  # LSUV: unit std per trial on the batch
                        hk, std = _unit_std(hk)
                        h[:, :, cols[k]] = hk
                        gain[:, k] /= std
                    nxt[:, :, cols[k]] = acts[k](hk)
                x = nxt
                record(layer, trials, x)
                if ref.gradients:
                    pre.append(h)
                    gains.append(gain)
            if ref.gradients:
                _backward(ref, specs, acts, mats, blocks, cols, custom, trials, x0, pre, gains,
                          grads)
    return [ChainResult(spec=s, stats=outs[k], device=str(device), draw=draws[k],
                        hist=hists[k], grads=grads[k]) for k, s in enumerate(specs)]


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


def _backward(ref, specs, acts, mats, blocks, cols, custom, trials, x0, pre, gains,
              grads) -> None:
    """Back-propagate g_L through every config of a group, redrawing the shared matrices."""
    rows = slice(trials.start, trials.stop)
    k_count = len(specs)

    order = sorted(range(k_count), key=lambda k: cols[k].start)

    def record_x(layer: int, g: torch.Tensor) -> None:
        stats = layer_stats(g, k_count)
        mean, std = stats["mean"].cpu().numpy(), stats["std"].cpu().numpy()
        for pos, k in enumerate(order):
            grads[k]["grad_x_mean"][rows, layer] = mean[:, pos]
            grads[k]["grad_x_std"][rows, layer] = std[:, pos]

    g = output_gradient(ref, trials, x0.device).repeat(1, 1, k_count)
    record_x(ref.depth, g)
    for layer in range(ref.depth, 0, -1):
        h = pre[layer - 1]
        g_h = torch.empty_like(g)
        for k in range(k_count):
            c = cols[k]
            g_h[:, :, c] = _activation_vjp(acts[k], h[:, :, c], g[:, :, c])  # dL/dh_l
            x_prev = x0[:, :, c] if layer == 1 else acts[k](pre[layer - 2][:, :, c])
            mean, std = _weight_grad_stats(g_h[:, :, c], x_prev)
            grads[k]["grad_w_mean"][rows, layer] = mean.cpu().numpy()
            grads[k]["grad_w_std"][rows, layer] = std.cpu().numpy()
        if ref.weights == "fresh" and layer < ref.depth:  # layer L's are still in hand
            _fill_sources(mats, custom, ref.seed, layer, trials)
        # dL/dx_{l-1} = W_l^T g_h = base^T (gain * g_h), gain per trial under LSUV
        for k in range(k_count):
            g_h[:, :, cols[k]] *= gains[layer - 1][:, k].to(g_h.dtype).view(-1, 1, 1)
        g = torch.zeros_like(g_h)
        for src, block in blocks.items():
            if src != "zero":
                g[:, :, block] = torch.bmm(mats[src].transpose(1, 2), g_h[:, :, block])
        record_x(layer - 1, g)
