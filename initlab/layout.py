"""Where the configs of a shared pass sit, and how much memory a pass may take.

``group_key`` says which specs can share a pass; a ``GroupLayout`` (built once,
shared by the forward and backward pass) puts their columns side by side so
one ``torch.bmm`` per base distribution serves them all; ``trial_chunk`` and
``keep_budget`` size the trial chunks and the weights kept for the backward pass.

In the blocked drawing mode (``initlab.draws``: CUDA) chunks are whole blocks of
``BLOCK`` trials, so no block is drawn twice (its numbers would not change: a
block cut by a chunk is drawn whole and its rows copied; it would only cost).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from initlab.activations import get_activation
from initlab.biases import BiasRecipe
from initlab.draws import (
    block_chunk,
    draw_mode,
    fill_biases_,
    fill_layer_,
    gradient_columns,
    input_columns,
)
from initlab.schemes import WeightRecipe
from initlab.spec import KEEP_FRACTION, ChainSpec, resolve_device

#: Bytes of weights (one layer, all trials of a chunk) held at once (in the blocked mode
#: at least one block of ``BLOCK`` trials, whatever the budget).
MEMORY_BUDGET = 512 * 2**20


def keep_budget(device: torch.device, fraction: float = KEEP_FRACTION) -> int:
    """Bytes the kept weights may take: ``fraction`` of the free memory (the free GPU memory
    on CUDA), the spec's ``keep_fraction``; 0 when the free memory is unknown.

    With gradients, the forward pass's weights are kept for the backward pass (instead
    of drawn again) when all of a chunk's fit in it; otherwise they are redrawn and
    memory stays flat in depth. Kept or redrawn, the same numbers (keyed streams).
    """
    if fraction <= 0:
        return 0
    try:
        if device.type == "cuda":
            free = torch.cuda.mem_get_info(device)[0]
        else:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError, RuntimeError):
        return 0
    return int(fraction * free)

#: ChainSpec fields a group's configs may differ in; every other field is the group's key.
PER_CONFIG_FIELDS = ("init", "init_params", "activation", "activation_params", "bias",
                     "bias_params")


def trial_chunk(spec: ChainSpec, budget: int = MEMORY_BUDGET, configs: int = 1,
                matrices: int = 1) -> int:
    """How many trials run together so that one layer's weights fit in ``budget`` bytes.

    ``configs`` specs share each trial's ``matrices`` weight matrices (``run_many``).
    Not rounded to blocks: ``GroupLayout.build`` does that in the blocked mode.
    """
    item = torch.finfo(spec.torch_dtype).bits // 8
    per_trial = matrices * spec.width * spec.width * item
    columns = configs * spec.width * spec.batch
    per_trial += 4 * columns * 8  # signal, activation, float64 copy for stats
    if spec.gradients:  # pre-activations kept for the backward pass
        per_trial += 2 * spec.depth * columns * item  # pre- and post-activations
    return max(1, min(spec.trials, budget // per_trial))


def group_key(spec: ChainSpec) -> tuple:
    """Specs with the same key run as one pass (``run_many``): every ChainSpec field but
    ``PER_CONFIG_FIELDS``. A plug-in scheme draws its own matrices (which may depend on
    the activation), so its specs share a pass only with identical specs.

    ``keep_fraction`` stays in the key although it changes no number: a pass has one
    budget for kept weights, so specs asking for different ones run apart (merging them
    would have to pick one; a sweep over it is rare)."""
    key = tuple((f.name, repr(getattr(spec, f.name))) for f in dataclasses.fields(spec)
                if f.name not in PER_CONFIG_FIELDS)
    if spec.weight_recipe().base == "custom":
        key += tuple((name, repr(getattr(spec, name))) for name in PER_CONFIG_FIELDS)
    return key


class Arena:
    """Weight buffers handed back by a pass and reused by the next (in this call or a
    later one), so the kept weights of a backward pass (100 layers x 32 trials x 1 MB)
    are not fresh memory that the system must fault in and zero on every call.

    Holds buffers of one shape (a pass of another shape frees them first) and at most
    ``limit`` bytes; ``clear()`` frees them all (``release_memory``).
    """

    def __init__(self) -> None:
        self.free: list[torch.Tensor] = []
        self.limit = 0

    def take(self, shape: tuple[int, ...], dtype: torch.dtype,
             device: torch.device) -> torch.Tensor:
        for i, buf in enumerate(self.free):
            if buf.shape == shape and buf.dtype == dtype and buf.device == device:
                return self.free.pop(i)
        if self.free and self.free[0].shape != shape:
            self.clear()  # another shape: the old buffers would only hold memory
        return torch.empty(*shape, dtype=dtype, device=device)

    def give(self, bufs: dict[str, torch.Tensor]) -> None:
        for buf in bufs.values():
            if any(b is buf for b in self.free):
                raise RuntimeError("a weight buffer handed back twice")  # a bug, not input
            if sum(b.nbytes for b in self.free) + buf.nbytes <= self.limit:
                self.free.append(buf)

    def clear(self) -> None:
        self.free.clear()


#: The process's weight buffers (``Arena``); its limit is set by each pass to the bytes the
#: pass may keep (``keep_budget``).
ARENA = Arena()


def release_memory() -> None:
    """Free the weight buffers the engine keeps between calls (``ARENA``)."""
    ARENA.clear()


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
    #: ``initlab.draws`` drawing mode of every draw of the pass (``trial`` | ``blocked``)
    mode: str = "trial"

    @classmethod
    def build(cls, specs: Sequence[ChainSpec], budget: int = MEMORY_BUDGET) -> GroupLayout:
        keys = {group_key(s) for s in specs}
        if len(keys) != 1:
            raise ValueError("specs of one group must differ only in "
                             f"{', '.join(PER_CONFIG_FIELDS)}")
        recipes = [s.weight_recipe() for s in specs]
        act_key = [(s.activation, repr(sorted(s.activation_params.items()))) for s in specs]
        order = tuple(sorted(range(len(specs)), key=lambda k: (recipes[k].base, act_key[k])))
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
            base = recipes[k].base
            if base != "zero":
                start = blocks[base].start if base in blocks else columns[pos].start
                blocks[base] = slice(start, columns[pos].stop)
        ref = specs[0]
        device = resolve_device(ref.device)
        mode = draw_mode(device)
        chunk = trial_chunk(ref, budget, configs=len(specs), matrices=max(1, len(blocks)))
        if mode == "blocked":  # whole blocks: none drawn twice
            chunk = block_chunk(chunk, ref.trials)
        return cls(specs=tuple(specs[k] for k in order), order=order,
                   recipes=tuple(recipes[k] for k in order),
                   biases=tuple(specs[k].bias_recipe() for k in order),
                   acts=acts, columns=columns, act_runs=tuple(runs), blocks=blocks, chunk=chunk,
                   device=device, mode=mode)

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
        """One buffer per base matrix for a chunk, from the ``ARENA`` when it holds one of
        the shape (every value is overwritten by the next draw)."""
        shape = (len(trials), self.ref.width, self.ref.width)
        return {base: ARENA.take(shape, self.ref.torch_dtype, self.device)
                for base in self.blocks}

    def weight_bytes(self, trials: range) -> int:
        """One layer's weight buffers of a chunk."""
        item = torch.finfo(self.ref.torch_dtype).bits // 8
        return len(self.blocks) * len(trials) * self.ref.width ** 2 * item

    def kept_bytes(self, trials: range) -> int:
        """What keeping every layer's weights of a chunk would take (0: nothing to keep,
        e.g. shared weights, which the backward pass reuses anyway)."""
        if self.ref.weights != "fresh":
            return 0
        item = torch.finfo(self.ref.torch_dtype).bits // 8
        return ((self.ref.depth - 1) * len(self.blocks) * len(trials) * self.ref.width ** 2
                * item)

    def draw_weights(self, mats: dict[str, torch.Tensor], layer: int, trials: range,
                     use: Callable[[int], None] | None = None) -> None:
        """Fill the buffers with ``layer``'s base matrices (layer 1's under shared weights);
        ``use(i)``: what to do with trial i's matrices once drawn (``fill_layer_``)."""
        custom = next((d.fill for d in self.recipes if d.base == "custom"), None)
        source = 1 if self.ref.weights == "shared" else layer
        fill_layer_(mats, self.ref.seed, source, trials, custom, mode=self.mode, use=use)

    def product(self, mats: dict[str, torch.Tensor], x: torch.Tensor,
                out: torch.Tensor) -> Callable[[int], None]:
        """``use(i)`` for ``draw_weights``: trial i's base @ x into ``out`` (zeroed), block by
        block, as ``matmul`` computes it for the whole chunk, one trial at a time (called in
        the thread that drew the trial, while its matrix is in that core's cache)."""

        def use(i: int) -> None:
            for base, block in self.blocks.items():
                out[i][:, block] = torch.mm(x[i][:, block].T, mats[base][i].T).T

        return use

    @property
    def bias_bases(self) -> tuple[str, ...]:
        return tuple(sorted({b.base for b in self.biases} - {"zero"}))

    def draw_biases(self, layer: int, trials: range) -> dict[str, torch.Tensor] | None:
        """``layer``'s bias bases (len(trials), width) for the configs that have a bias."""
        if not self.bias_bases:
            return None
        vecs = {base: torch.empty(len(trials), self.ref.width, dtype=self.ref.torch_dtype,
                                  device=self.device) for base in self.bias_bases}
        fill_biases_(vecs, self.ref.seed, 1 if self.ref.weights == "shared" else layer, trials,
                     mode=self.mode)
        return vecs

    def matmul(self, mats: dict[str, torch.Tensor], x: torch.Tensor,
               transpose: bool = False) -> torch.Tensor:
        """base @ x (or base^T @ x) block by block; zero where the base is zero.

        Computed as (x^T base^T)^T (or (x^T base)^T): the same products, with the few
        columns of x as the rows of a row-major product that streams each matrix once;
        on CPU for batch 1 several times faster than ``bmm(base, x)``.
        """
        out = torch.zeros_like(x)
        for base, block in self.blocks.items():
            w = mats[base] if transpose else mats[base].transpose(1, 2)
            out[:, :, block] = torch.bmm(x[:, :, block].transpose(1, 2), w).transpose(1, 2)
        return out


# ------------------------------------------------------------------ what a spec draws


def layer_weights(spec: ChainSpec, layer: int, trials: range, device: Any = "cpu",
                  mode: str | None = None) -> torch.Tensor:
    """The weights W_layer (len(trials), width, width) that the engine uses for ``layer``.

    Drawn by ``fill_layer_``, then scaled: what the engine multiplies, without
    the LSUV rescaling (which depends on the data).
    """
    recipe = spec.weight_recipe()
    source = 1 if spec.weights == "shared" else layer
    w = torch.zeros(len(trials), spec.width, spec.width, dtype=spec.torch_dtype, device=device)
    if recipe.base != "zero":
        fill_layer_({recipe.base: w}, spec.seed, source, trials, recipe.fill, mode)
    return w.mul_(recipe.scale)


def layer_biases(spec: ChainSpec, layer: int, trials: range, device: Any = "cpu",
                 mode: str | None = None) -> torch.Tensor:
    """The biases b_layer (len(trials), width) that the engine adds for ``layer``."""
    recipe = spec.bias_recipe()
    source = 1 if spec.weights == "shared" else layer
    b = torch.zeros(len(trials), spec.width, dtype=spec.torch_dtype, device=device)
    if recipe.base != "zero":
        fill_biases_({recipe.base: b}, spec.seed, source, trials, mode)
    return b.mul_(recipe.scale)


def draw_inputs(spec: ChainSpec, trials: range, device: Any = "cpu",
                mode: str | None = None) -> torch.Tensor:
    """The inputs x_0 (len(trials), width, batch) of a spec (``draws.input_columns``)."""
    return input_columns(spec.seed, spec.width, spec.batch, trials, spec.input_correlation,
                         spec.torch_dtype, device, mode)


def output_gradient(spec: ChainSpec, trials: range, device: Any = "cpu",
                    mode: str | None = None) -> torch.Tensor:
    """g_L ~ N(0, I) (len(trials), width, batch) of a spec (``draws.gradient_columns``)."""
    return gradient_columns(spec.seed, spec.width, spec.batch, trials, spec.torch_dtype,
                            device, mode)
