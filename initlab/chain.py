"""The engine: run the chain ``x_l = act(W_l @ x_{l-1} + b_l)`` and reduce per-layer statistics.

Pure: ``ChainSpec``s in, ``ChainResult``s (NumPy arrays) out. No Hydra, no
files, no plots, no pandas, no theory (``initlab.tables`` makes tables).

How it computes:

* **Trials are a tensor dimension.** The signal is ``(trials, width, batch)``
  and each layer is one ``torch.bmm`` over all trials at once. Trials are cut
  into chunks only to bound memory (``MEMORY_BUDGET``), never looped one by one.
* **Layers stream.** One layer's weights live in memory at a time:
  O(trials * width^2), whatever the depth; the backward pass draws them again.
* **Random streams are keyed** (``initlab.draws``): same seed, same numbers; a
  run with fewer trials or layers is a prefix of a larger one.
* **Specs that differ only in scheme and activation share a pass**
  (``run_many``): a ``GroupLayout`` puts their columns side by side, each
  layer's base matrices are drawn once for all of them, and observers
  (``initlab.observers``) reduce every layer as it goes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from initlab.activations import get_activation
from initlab.backward import backward
from initlab.biases import BiasRecipe
from initlab.draws import (  # noqa: F401  (re-exported: the engine's streams)
    draw_inputs,
    fill_biases_,
    fill_layer_,
    gradient_seed,
    input_seed,
    layer_weights,
    output_gradient,
    stream_seed,
    weight_seed,
)
from initlab.observers import (  # noqa: F401  (GRAD_STATS re-exported)
    GRAD_STATS,
    GradientStats,
    Histogram,
    LayerStats,
    Progress,
)
from initlab.schemes import WeightRecipe
from initlab.spec import ChainSpec, resolve_device

if TYPE_CHECKING:
    import pandas as pd

#: Bytes of weights (one layer, all trials of a chunk) held at once.
MEMORY_BUDGET = 512 * 2**20
#: With gradients, the forward pass's weights are kept for the backward pass (instead of
#: drawn again) when all of a chunk's fit in this fraction of the free memory (the free
#: GPU memory on CUDA); otherwise they are redrawn and memory stays flat in depth.
KEEP_FRACTION = 0.25


def keep_budget(device: torch.device) -> int:
    """Bytes the kept weights may take: ``KEEP_FRACTION`` of the free memory (0: unknown)."""
    try:
        if device.type == "cuda":
            free = torch.cuda.mem_get_info(device)[0]
        else:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError, RuntimeError):
        return 0
    return int(KEEP_FRACTION * free)

#: ChainSpec fields a group's configs may differ in; every other field is the group's key.
PER_CONFIG_FIELDS = ("init", "init_params", "activation", "activation_params", "bias",
                     "bias_params")


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
    recipe: WeightRecipe
    #: (depth + 1, 2 + bins) counts over all trials: zeros, non-finite, then log10|x| bins
    #: (``initlab.stats.log_histogram``).
    hist: np.ndarray | None = None
    #: ``GRAD_STATS`` name -> (trials, depth + 1), when the spec asked for gradients.
    grads: dict[str, np.ndarray] | None = None

    def frame(self) -> pd.DataFrame:
        """Tidy table, one row per (trial, layer): ``initlab.tables.layers_frame``."""
        from initlab.tables import layers_frame

        return layers_frame(self)

    def hist_frame(self) -> pd.DataFrame:
        """Tidy, sparse histogram: ``initlab.tables.histogram_frame``."""
        from initlab.tables import histogram_frame

        return histogram_frame(self)

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
        return ChainResult(spec=spec, stats=stats, device=self.device, recipe=self.recipe,
                           hist=hist)

    def final(self, name: str) -> np.ndarray:
        """Statistic ``name`` at the last layer, one value per trial."""
        return self.stats[name][:, -1]


def group_key(spec: ChainSpec) -> tuple:
    """Specs with the same key run as one pass (``run_many``): every ChainSpec field but
    ``PER_CONFIG_FIELDS``. A plug-in scheme draws its own matrices (which may depend on
    the activation), so its specs share a pass only with identical specs."""
    key = tuple((f.name, repr(getattr(spec, f.name))) for f in dataclasses.fields(spec)
                if f.name not in PER_CONFIG_FIELDS)
    if spec.weight_recipe().base == "custom":
        key += tuple((name, repr(getattr(spec, name))) for name in PER_CONFIG_FIELDS)
    return key


@dataclass(frozen=True)
class GroupLayout:
    """Where each config of a group sits: built once, shared by the forward and backward pass.

    Configs are ordered by base distribution, so the configs sharing a base
    matrix are one contiguous column block and one ``bmm`` serves them all.
    Config ``pos`` (``specs[pos]``) owns columns ``columns[pos]`` of the
    signal ``(trials, width, configs * batch)``.
    """

    specs: tuple[ChainSpec, ...]
    #: ``order[pos]``: index of ``specs[pos]`` in the list given to ``build``
    order: tuple[int, ...]
    recipes: tuple[WeightRecipe, ...]
    #: each config's bias recipe (zero: no bias); the bases drawn per layer are ``bias_bases``
    biases: tuple[BiasRecipe, ...]
    acts: tuple[Callable[[torch.Tensor], torch.Tensor], ...]
    columns: tuple[slice, ...]
    #: (columns, activation) of each run of neighbouring configs with the same activation:
    #: one call applies it to all of them (a 192-cell phase diagram: one call a layer)
    act_runs: tuple[tuple[slice, Callable[[torch.Tensor], torch.Tensor]], ...]
    #: base -> the columns of every config drawing from it (``zero`` has none: no matmul)
    blocks: dict[str, slice]
    chunk: int
    device: torch.device

    @classmethod
    def build(cls, specs: Sequence[ChainSpec], budget: int = MEMORY_BUDGET) -> GroupLayout:
        keys = {group_key(s) for s in specs}
        if len(keys) != 1:
            raise ValueError("specs of one group must differ only in "
                             f"{', '.join(PER_CONFIG_FIELDS)}")
        draws = [s.weight_recipe() for s in specs]
        act_key = [(s.activation, repr(sorted(s.activation_params.items()))) for s in specs]
        order = tuple(sorted(range(len(specs)), key=lambda k: (draws[k].base, act_key[k])))
        b = specs[0].batch
        columns = tuple(slice(pos * b, (pos + 1) * b) for pos in range(len(specs)))
        acts = tuple(get_activation(specs[k].activation, specs[k].activation_params)
                     for k in order)
        runs: list[tuple[slice, Callable]] = []
        for pos, k in enumerate(order):
            if runs and act_key[order[pos - 1]] == act_key[k]:
                runs[-1] = (slice(runs[-1][0].start, columns[pos].stop), runs[-1][1])
            else:
                runs.append((columns[pos], acts[pos]))
        blocks: dict[str, slice] = {}
        for pos, k in enumerate(order):
            base = draws[k].base
            if base != "zero":
                start = blocks[base].start if base in blocks else columns[pos].start
                blocks[base] = slice(start, columns[pos].stop)
        ref = specs[0]
        chunk = trial_chunk(ref, budget, configs=len(specs), matrices=max(1, len(blocks)))
        return cls(specs=tuple(specs[k] for k in order), order=order,
                   recipes=tuple(draws[k] for k in order),
                   biases=tuple(specs[k].bias_recipe() for k in order),
                   acts=acts, columns=columns, act_runs=tuple(runs), blocks=blocks, chunk=chunk,
                   device=resolve_device(ref.device))

    @property
    def ref(self) -> ChainSpec:
        """The settings every config shares (width, depth, trials, seed, ...)."""
        return self.specs[0]

    @property
    def configs(self) -> int:
        return len(self.specs)

    def chunks(self) -> list[range]:
        trials = self.ref.trials
        return [range(s, min(trials, s + self.chunk)) for s in range(0, trials, self.chunk)]

    def new_weights(self, trials: range) -> dict[str, torch.Tensor]:
        """One buffer per base matrix for a chunk (refilled layer by layer, never kept)."""
        n = self.ref.width
        return {base: torch.empty(len(trials), n, n, dtype=self.ref.torch_dtype,
                                  device=self.device) for base in self.blocks}

    def kept_bytes(self, trials: range) -> int:
        """What keeping every layer's weights of a chunk would take (0: nothing to keep,
        e.g. shared weights, which the backward pass reuses anyway)."""
        if self.ref.weights != "fresh":
            return 0
        item = torch.finfo(self.ref.torch_dtype).bits // 8
        return ((self.ref.depth - 1) * len(self.blocks) * len(trials) * self.ref.width ** 2
                * item)

    def draw_weights(self, mats: dict[str, torch.Tensor], layer: int, trials: range) -> None:
        """Fill the buffers with ``layer``'s base matrices (layer 1's under shared weights)."""
        custom = next((d.fill for d in self.recipes if d.base == "custom"), None)
        source = 1 if self.ref.weights == "shared" else layer
        fill_layer_(mats, self.ref.seed, source, trials, custom)

    @property
    def bias_bases(self) -> tuple[str, ...]:
        return tuple(sorted({b.base for b in self.biases} - {"zero"}))

    def draw_biases(self, layer: int, trials: range) -> dict[str, torch.Tensor] | None:
        """``layer``'s bias bases (len(trials), width) for the configs that have a bias."""
        if not self.bias_bases:
            return None
        vecs = {base: torch.empty(len(trials), self.ref.width, dtype=self.ref.torch_dtype,
                                  device=self.device) for base in self.bias_bases}
        fill_biases_(vecs, self.ref.seed, 1 if self.ref.weights == "shared" else layer, trials)
        return vecs

    def matmul(self, mats: dict[str, torch.Tensor], x: torch.Tensor,
               transpose: bool = False) -> torch.Tensor:
        """base @ x (or base^T @ x) block by block; zero where the base is zero."""
        out = torch.zeros_like(x)
        for base, block in self.blocks.items():
            w = mats[base].transpose(1, 2) if transpose else mats[base]
            out[:, :, block] = torch.bmm(w, x[:, :, block])
        return out


def run_chain(spec: ChainSpec, budget: int = MEMORY_BUDGET,
              progress: Callable[[int], object] | None = None,
              keep: int | None = None) -> ChainResult:
    """Run every trial of ``spec`` through the chain and return per-layer statistics.

    With ``spec.gradients``, a backward pass follows: ``g_L ~ N(0, I)`` is
    back-propagated from the output (the gradient of the loss <g_L, x_L>),
    each layer's weights drawn again from their (seed, layer, trial) stream
    instead of kept, so memory holds one layer's weights whatever the depth
    (plus the pre-activations, width x batch per layer).

    ``progress``, when given, is called with the number of trial-layers done
    after each layer of each chunk, e.g. a progress bar's ``update``.
    """
    return run_many([spec], budget, progress, keep)[0]


def run_many(specs: Sequence[ChainSpec], budget: int = MEMORY_BUDGET,
             progress: Callable[[int], object] | None = None,
             keep: int | None = None) -> list[ChainResult]:
    """Run several specs, drawing each layer's base matrices once for all that can share them.

    Specs with the same ``group_key`` (all settings but scheme and activation)
    run as one pass (``run_group``). Every config sees exactly the weights and
    inputs it would see alone (common random numbers), so the results equal
    separate runs up to the rounding of the wider matmul.
    """
    groups: dict[tuple, list[int]] = {}
    for i, spec in enumerate(specs):
        groups.setdefault(group_key(spec), []).append(i)
    results: list[ChainResult | None] = [None] * len(specs)
    for members in groups.values():
        done = run_group([specs[i] for i in members], budget, progress, keep)
        for i, result in zip(members, done, strict=True):
            results[i] = result
    return results


def run_group(specs: Sequence[ChainSpec], budget: int = MEMORY_BUDGET,
              progress: Callable[[int], object] | None = None,
              keep: int | None = None) -> list[ChainResult]:
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
    keep = keep_budget(layout.device) if keep is None else keep
    with torch.no_grad():
        for trials in layout.chunks():
            # The weights first: the largest allocation fails before any work is done.
            mats = layout.new_weights(trials)
            kept = {} if grads is not None and layout.kept_bytes(trials) <= keep else None
            x0, pre, gains, mats = _forward(layout, mats, trials, observers, kept)
            if grads is not None:
                backward(layout, mats, trials, x0, pre, gains, grads, kept)
    results: list[ChainResult | None] = [None] * k
    for pos, index in enumerate(layout.order):
        results[index] = ChainResult(
            spec=layout.specs[pos], stats=stats.values[pos], device=str(layout.device),
            recipe=layout.recipes[pos], hist=hist.counts[pos],
            grads=None if grads is None else grads.values[pos])
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
             ) -> tuple[torch.Tensor, list, list, dict[str, torch.Tensor]]:
    """The chain for one chunk of trials, every config at once; each layer goes to the
    observers. Returns x_0, the pre-activations and gains (when gradients follow) and the
    last layer's weights; ``kept``, when given, receives layers 1..depth-1's weights.

    Per-config work is done on the (trials, width, configs, batch) view with one
    broadcast op (scales, biases) or once per run of configs sharing an
    activation, not once per config.
    """
    ref = layout.ref
    t, n, k, b = len(trials), ref.width, layout.configs, ref.batch
    x0 = draw_inputs(ref, trials, layout.device).repeat(1, 1, k)  # same x_0 for all
    for obs in observers:
        obs.layer(0, trials, x0)
    redraw = ref.weights == "fresh"
    scales = torch.tensor([d.scale for d in layout.recipes], dtype=ref.torch_dtype,
                          device=layout.device)
    biased = [pos for pos, bias in enumerate(layout.biases) if bias.base != "zero"]
    lsuv = [pos for pos, draw in enumerate(layout.recipes) if draw.normalize]
    x, pre, gains, bias = x0, [], [], None
    for layer in range(1, ref.depth + 1):
        if layer == 1 or redraw:
            if kept is not None and layer > 1:  # keep the previous layer's, draw afresh
                kept[layer - 1], mats = mats, layout.new_weights(trials)
            layout.draw_weights(mats, layer, trials)
            bias = _layer_bias(layout, layer, trials, biased)
        # (scale * W) @ x computed as W @ (scale * x): width*batch products instead of
        # width^2, and the product overflows or underflows where (scale * W) @ x would
        # (up to one rounding).
        scaled = (x.view(t, n, k, b) * scales.view(1, 1, k, 1)).view(t, n, k * b)
        h = layout.matmul(mats, scaled)
        gain = scales.to(torch.float64).expand(t, k).clone()
        for pos in lsuv:  # LSUV: unit std per trial on the batch (of W x, before b)
            cols = layout.columns[pos]
            h[:, :, cols], std = _unit_std(h[:, :, cols])
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
            gains.append(gain)
    return x0, pre, gains, mats


def _layer_bias(layout: GroupLayout, layer: int, trials: range,
                biased: list[int]) -> torch.Tensor | None:
    """Every config's bias for ``layer``, (trials, width, configs); None when none has one."""
    vecs = layout.draw_biases(layer, trials)
    if vecs is None:
        return None
    ref = layout.ref
    out = torch.zeros(len(trials), ref.width, layout.configs, dtype=ref.torch_dtype,
                      device=layout.device)
    for pos in biased:
        recipe = layout.biases[pos]
        out[:, :, pos] = recipe.scale * vecs[recipe.base]
    return out
