"""The engine: run the chain ``x_l = act(W_l @ x_{l-1} + b_l)`` and reduce per-layer statistics.

``ChainSpec``s in, ``Result``s (NumPy arrays, with the mean-field prediction beside them,
``initlab.prediction``) out. No Hydra, no files, no plots, no pandas.

How it computes:

* **Trials are a tensor dimension.** The signal is ``(trials, width, batch)``
  and each layer is one ``torch.bmm`` over all trials at once. Trials are cut
  into chunks only to bound memory (``MEMORY_BUDGET``), never looped one by one.
* **Layers stream.** One layer's weights are drawn at a time. With gradients the
  backward pass takes each layer's weights from the forward pass when a chunk's fit
  in ``keep_fraction`` of the free memory, else draws them again from their keyed
  stream, so memory stays flat in depth (``initlab.layout.keep_budget``).
* **Random streams are keyed** (``initlab.draws``): same seed, same numbers; a
  run with fewer trials or layers is a prefix of a larger one.
* **Specs that differ only in scheme and activation share a pass**
  (``run_many``): a ``GroupLayout`` puts their columns side by side, each
  layer's base matrices are drawn once for all of them, and observers
  (``initlab.observers``) reduce every layer as it goes, on the device, and copy
  to NumPy once per chunk.
* **Draws without per-trial loops on CUDA**: there the streams are keyed by
  blocks of trials (``initlab.draws``, blocked mode): one launch per block and
  layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

from initlab import prediction
from initlab.backward import backward
from initlab.layout import (
    ARENA,
    MEMORY_BUDGET,
    GroupLayout,
    draw_inputs,
    group_key,
    keep_budget,
)
from initlab.observers import GradientStats, Histogram, LayerStats, Progress
from initlab.result import Result
from initlab.spec import ChainSpec


def chain_result(spec: ChainSpec, stats: dict, hist, grads: dict | None,
                 device: str) -> Result:
    """A ``Result`` of the chain: the arrays, the spec's settings and its prediction."""
    curves, predictions = prediction.chain(spec)
    return Result(settings=spec.describe(), stats=stats, grads=grads, hist=hist,
                  hist_dtype=spec.dtype, theory=curves, predictions=predictions,
                  device=device, spec=spec)


def cut(result: Result, depth: int) -> Result:
    """The result of the same chain cut at ``depth`` layers (forward statistics only).

    Layer l's signal does not depend on the layers after it, and every layer's
    weights come from its own (seed, layer, trial) stream, so a deeper run holds
    every shallower one exactly.
    """
    spec = result.spec
    if result.grads is not None:
        raise ValueError("a gradient pass depends on the depth; prefixes have none")
    if not 1 <= depth <= spec.depth:
        raise ValueError(f"depth={depth} is not allowed; need 1 <= depth <= {spec.depth}")
    stats = {name: values[:, : depth + 1].copy() for name, values in result.stats.items()}
    hist = None if result.hist is None else result.hist[: depth + 1].copy()
    return chain_result(dataclasses.replace(spec, depth=depth), stats, hist, None,
                        result.device)


def run_chain(spec: ChainSpec, budget: int = MEMORY_BUDGET,
              progress: Callable[[int], object] | None = None,
              keep: int | None = None) -> Result:
    """Run every trial of ``spec`` through the chain and return per-layer statistics.

    With ``spec.gradients``, a backward pass follows: ``g_L ~ N(0, I)`` is
    back-propagated from the output (the gradient of the loss <g_L, x_L>).

    ``progress``, when given, is called with the number of trial-layers done
    after each layer of each chunk, e.g. a progress bar's ``update``.
    """
    return run_many([spec], budget, progress, keep)[0]


def run_many(specs: Sequence[ChainSpec], budget: int = MEMORY_BUDGET,
             progress: Callable[[int], object] | None = None,
             keep: int | None = None) -> list[Result]:
    """Run several specs, drawing each layer's base matrices once for all that can share them.

    Specs with the same ``group_key`` (all settings but scheme and activation)
    run as one pass (``run_group``). Every config sees exactly the weights and
    inputs it would see alone (common random numbers), so the results equal
    separate runs up to the rounding of the wider matmul.
    """
    groups: dict[tuple, list[int]] = {}
    for i, spec in enumerate(specs):
        groups.setdefault(group_key(spec), []).append(i)
    results: list[Result | None] = [None] * len(specs)
    for members in groups.values():
        done = run_group([specs[i] for i in members], budget, progress, keep)
        for i, result in zip(members, done, strict=True):
            results[i] = result
    return results


def run_group(specs: Sequence[ChainSpec], budget: int = MEMORY_BUDGET,
              progress: Callable[[int], object] | None = None,
              keep: int | None = None) -> list[Result]:
    """One batched pass over a group of specs with one ``group_key``; results in their order.

    ``keep``: bytes the forward pass's weights may take to be kept for the backward
    pass (default ``keep_budget``); a chunk whose weights do not fit redraws them.
    Kept or redrawn, they are the same numbers (keyed streams).
    """
    layout = GroupLayout.build(specs, budget)
    ref, k = layout.ref, layout.configs
    stats, hist = LayerStats(k, ref.trials, ref.depth), Histogram(k, ref.depth, ref.dtype)
    observers: list[Any] = [stats, hist]
    if progress is not None:
        observers.append(Progress(progress, k))
    grads = GradientStats(k, ref.trials, ref.depth) if ref.gradients else None
    keep = keep_budget(layout.device, ref.keep_fraction) if keep is None else keep
    with torch.no_grad():
        for trials in layout.chunks():
            # The weights first: the largest allocation fails before any work is done.
            mats = layout.new_weights(trials)
            kept = {} if grads is not None and layout.kept_bytes(trials) <= keep else None
            # the arena holds what this pass keeps: depth - 1 kept layers and the one in hand
            ARENA.limit = (layout.kept_bytes(trials) + layout.weight_bytes(trials)
                           if kept is not None else 0)
            x0, pre, post, gains, mats = _forward(layout, mats, trials, observers, kept)
            for obs in observers:  # the chunk's statistics to NumPy: one copy each
                obs.finish(trials)
            if grads is not None:
                backward(layout, mats, trials, x0, pre, gains, grads, kept, post=post)
                grads.finish(trials)  # (the backward pass hands every buffer back)
            else:
                ARENA.give(mats)
    results: list[Result | None] = [None] * k
    for pos, index in enumerate(layout.order):
        results[index] = chain_result(
            layout.specs[pos], stats.values[pos], hist.counts[pos],
            None if grads is None else grads.values[pos], str(layout.device))
    return results


def _unit_std(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Divide each trial's (width, batch) block by its std (left alone where the std is 0).

    Returns the result and the (float64) divisors.
    """
    std = h.reshape(h.shape[0], -1).to(torch.float64).std(dim=1)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return h / std.to(h.dtype).view(-1, 1, 1), std


def _forward(layout: GroupLayout, mats: dict[str, torch.Tensor], trials: range,
             observers: Sequence[Any], kept: dict[int, dict] | None = None
             ) -> tuple[torch.Tensor, list, list, list, dict[str, torch.Tensor]]:
    """The chain for one chunk of trials, every config at once; each layer goes to the
    observers. Returns x_0, the pre- and post-activations and gains (when gradients
    follow) and the
    last layer's weights; ``kept``, when given, receives layers 1..depth-1's weights.

    Per-config work is done on the (trials, width, configs, batch) view with one
    broadcast op (scales, biases) or once per run of configs sharing an
    activation, not once per config.
    """
    ref = layout.ref
    t, n, k, b = len(trials), ref.width, layout.configs, ref.batch
    x0 = draw_inputs(ref, trials, layout.device, layout.mode).repeat(1, 1, k)  # same x_0
    for obs in observers:
        obs.layer(0, trials, x0)
    redraw = ref.weights == "fresh"
    scales = torch.tensor([d.scale for d in layout.recipes], dtype=ref.torch_dtype,
                          device=layout.device)
    coefs = _bias_coefficients(layout)
    lsuv = [pos for pos, recipe in enumerate(layout.recipes) if recipe.normalize]
    x, pre, post, gains, bias = x0, [], [], [], None
    for layer in range(1, ref.depth + 1):
        # (scale * W) @ x computed as W @ (scale * x): width*batch products instead of
        # width^2, and the product overflows or underflows where (scale * W) @ x would
        # (up to one rounding).
        scaled = (x.view(t, n, k, b) * scales.view(1, 1, k, 1)).view(t, n, k * b)
        if layer == 1 or redraw:
            if kept is not None and layer > 1:  # keep the previous layer's, draw afresh
                kept[layer - 1], mats = mats, layout.new_weights(trials)
            h = torch.zeros_like(scaled)
            layout.draw_weights(mats, layer, trials, use=layout.product(mats, scaled, h))
            bias = _layer_bias(layout, layer, trials, coefs)
        else:
            h = layout.matmul(mats, scaled)
        gain = scales.to(torch.float64).expand(t, k).clone() if ref.gradients else None
        for pos in lsuv:  # LSUV: unit std per trial on the batch (of W x, before b)
            cols = layout.columns[pos]
            h[:, :, cols], std = _unit_std(h[:, :, cols])
            if gain is not None:  # the backward pass's effective scale
                gain[:, pos] /= std
        if bias is not None:
            h.view(t, n, k, b).add_(bias.unsqueeze(-1))
        x = torch.empty_like(h)
        for cols, act in layout.act_runs:
            x[:, :, cols] = act(h[:, :, cols])
        for obs in observers:
            obs.layer(layer, trials, x, h)
        if ref.gradients:
            pre.append(h)
            post.append(x)
            gains.append(gain)
    return x0, pre, post, gains, mats


def _bias_coefficients(layout: GroupLayout) -> dict[str, torch.Tensor]:
    """Per bias base, each config's scale (0 for a config on another base), on the device:
    built once per chunk, not per layer (a host-to-device copy each)."""
    return {base: torch.tensor([r.scale if r.base == base else 0.0 for r in layout.biases],
                               dtype=layout.ref.torch_dtype, device=layout.device)
            for base in layout.bias_bases}


def _layer_bias(layout: GroupLayout, layer: int, trials: range,
                coefs: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """Every config's bias for ``layer``, (trials, width, configs); None when none has one."""
    vecs = layout.draw_biases(layer, trials)
    if vecs is None:
        return None
    ref = layout.ref
    out = torch.zeros(len(trials), ref.width, layout.configs, dtype=ref.torch_dtype,
                      device=layout.device)
    for base, vec in vecs.items():  # one broadcast per base: each config's scale, 0 if other
        out.addcmul_(vec.unsqueeze(-1), coefs[base])
    return out
