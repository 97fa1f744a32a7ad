"""Drawing from keyed random streams: the one place where weights, inputs and output
gradients are drawn (their seeds: ``initlab.streams``).

Random streams are keyed, not sequential. Layer ``l`` of trial ``t`` draws its
base matrix from a generator seeded by ``(seed, l, t)``, the input of trial
``t`` from ``(seed, t)``, and the output gradient of trial ``t`` from its own
``(seed, t)`` stream. So a layer's weights can be drawn again on their own (the
backward pass does), a run with fewer trials or layers draws a prefix of a
larger one's numbers, and every scheme transforms the *same* N(0, 1) matrices
(common random numbers: paired comparisons; see ``initlab.schemes``).

Every base distribution comes from one N(0, 1) draw by ``from_normal_``:
``normal`` is the draw, ``uniform`` is erf(Z / sqrt 2) (U(-1, 1)), ``orthogonal``
is the Q of its QR. ``fill_base_`` (one tensor, one generator: ``init_``) and
``fill_layer_`` (one layer of the engine, every base of a group, keyed streams)
both go through it.

Two drawing modes, the same distributions, each with every promise of its own
(same seed, same numbers; prefixes; shared draws), not the same numbers:

* ``trial`` (CPU): one generator and one ``normal_`` per trial, from the
  (seed, layer, trial) streams above, trials spread over Python threads.
* ``blocked`` (CUDA, any accelerator): trials in fixed blocks of ``BLOCK``
  (block b = trials [b BLOCK, (b + 1) BLOCK)), one generator seeded by the
  (seed, layer, block) stream and ONE ``normal_`` of shape (BLOCK, ...) per
  block, so a layer of T trials is ceil(T / BLOCK) launches instead of T (100,000
  launches at 1000 trials x 100 layers become 1,600). A block is always drawn
  whole (a block cut by the end of a run or chunk is drawn into a scratch
  buffer and its rows copied), so a trial's numbers depend only on its block's
  key, never on the chunk or the trial count: prefixes hold.

``draw_mode(device)`` picks the mode; ``forced_mode`` overrides it (tests run
the blocked path on CPU with it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch

from initlab.streams import (
    bias_block_seed,
    bias_seed,
    common_input_block_seed,
    common_input_seed,
    gradient_block_seed,
    gradient_seed,
    input_block_seed,
    input_seed,
    weight_block_seed,
    weight_seed,
)

#: Bases transformed from one N(0, 1) draw (first present is drawn, the others derived).
NORMAL_FAMILY = ("normal", "uniform", "orthogonal")
BASES = ("zero", *NORMAL_FAMILY, "constant", "custom")

#: Trials per block in the blocked mode: one generator and one ``normal_`` launch per block
#: and layer. 64 makes a launch write 64 x width^2 numbers (64 MB at width 512, float32),
#: far past a launch's fixed cost, while a run of 100 trials draws at most 28 unused.
BLOCK = 64
#: The drawing modes (module docstring): per-trial keyed streams, or blocks of trials.
MODES = ("trial", "blocked")
_FORCED_MODE: ContextVar[str | None] = ContextVar("initlab_draw_mode", default=None)


def draw_mode(device: Any = "cpu") -> str:
    """``blocked`` on any device but the CPU (a launch per trial is the cost there), ``trial``
    on the CPU (threads over trials use every core); ``forced_mode`` overrides both."""
    forced = _FORCED_MODE.get()
    if forced is not None:
        return forced
    return "trial" if torch.device(device).type == "cpu" else "blocked"


@contextmanager
def forced_mode(mode: str) -> Iterator[None]:
    """Draw in ``mode`` on every device inside the block (tests of the blocked path on CPU)."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not allowed; allowed: {', '.join(MODES)}")
    token = _FORCED_MODE.set(mode)
    try:
        yield
    finally:
        _FORCED_MODE.reset(token)


def block_chunk(chunk: int, trials: int) -> int:
    """``chunk`` trials cut to whole blocks (at least one) when the run has more than a chunk,
    so chunks start on block boundaries and no block is drawn twice."""
    return chunk if chunk >= trials else max(BLOCK, chunk // BLOCK * BLOCK)


def fill_blocked_(out: torch.Tensor, trials: range, seed_of: Callable[[int], int]) -> None:
    """N(0, 1) into ``out`` (len(trials), ...), row i for trial ``trials[i]``, block by block.

    Block b is one ``normal_`` of shape (BLOCK, ...) from a generator seeded
    ``seed_of(b)``: straight into ``out``'s rows when the chunk holds the whole
    block (a contiguous slice: the very numbers a fresh (BLOCK, ...) tensor gets),
    else into a scratch block whose rows are copied. Either way trial
    ``b BLOCK + r`` is row r of block b's draw, whatever ``trials`` is.
    """
    if trials.step != 1:
        raise ValueError(f"trials={trials!r}: blocked draws need consecutive trials")
    if not trials:
        return
    gen = torch.Generator(device=out.device)
    scratch: torch.Tensor | None = None
    for block in range(trials.start // BLOCK, (trials.stop - 1) // BLOCK + 1):
        lo, hi = max(trials.start, block * BLOCK), min(trials.stop, (block + 1) * BLOCK)
        rows = out[lo - trials.start : hi - trials.start]
        gen.manual_seed(seed_of(block))
        if hi - lo == BLOCK and rows.is_contiguous():
            rows.normal_(generator=gen)
            continue
        if scratch is None:
            scratch = torch.empty(BLOCK, *out.shape[1:], dtype=out.dtype, device=out.device)
        scratch.normal_(generator=gen)
        rows.copy_(scratch[lo - block * BLOCK : hi - block * BLOCK])


def uniform_from_normal_(tensor: torch.Tensor) -> torch.Tensor:
    """Map N(0, 1) values to U(-1, 1) in place: erf(z / sqrt(2)) = 2 Phi(z) - 1."""
    return torch.erf(tensor.mul_(1.0 / math.sqrt(2.0)), out=tensor)


def orthogonalize_(tensor: torch.Tensor) -> torch.Tensor:
    """Replace each (..., out, in) matrix by the Q of its QR decomposition, as torch.nn.init.

    Batched over leading dimensions; for out < in the transpose is decomposed.
    Signs follow diag(R), which makes Q Haar-distributed (Mezzadri 2007).
    """
    wide = tensor.shape[-2] < tensor.shape[-1]
    a = tensor.transpose(-2, -1) if wide else tensor
    q, r = torch.linalg.qr(a)
    q = q * torch.diagonal(r, dim1=-2, dim2=-1).sign().unsqueeze(-2)
    return tensor.copy_(q.transpose(-2, -1) if wide else q)


def from_normal_(z: torch.Tensor, base: str, out: torch.Tensor | None = None) -> torch.Tensor:
    """The ``base`` (one of ``NORMAL_FAMILY``) made from the N(0, 1) draw ``z``.

    Into ``out`` (``z`` left alone), or in place when ``out`` is None or ``z``.
    """
    if out is None or out is z:
        if base == "uniform":
            return uniform_from_normal_(z)
        return orthogonalize_(z) if base == "orthogonal" else z
    if base == "uniform":  # erf(Z / sqrt 2), written straight into its own buffer
        return torch.erf(torch.mul(z, 1.0 / math.sqrt(2.0), out=out), out=out)
    out.copy_(z)
    return orthogonalize_(out) if base == "orthogonal" else out


def fill_base_(tensor: torch.Tensor, base: str, generator: torch.Generator | None = None,
               fill: Callable[..., Any] | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place with the base distribution: 0, N(0, 1), U(-1, 1) or the QR of
    the same normal draw, ones, or a plug-in's own (``fill(tensor, generator)``)."""
    if base == "zero":
        return tensor.zero_()
    if base == "constant":
        return tensor.fill_(1.0)
    if base == "custom":
        return fill(tensor, generator)
    if base not in NORMAL_FAMILY:
        raise ValueError(f"base={base!r} is not allowed; allowed: {', '.join(BASES)}")
    return from_normal_(tensor.normal_(generator=generator), base)


def fill_layer_(mats: dict[str, torch.Tensor], seed: int, layer: int, trials: range,
                fill: Callable[..., Any] | None = None, mode: str | None = None,
                use: Callable[[int], None] | None = None) -> None:
    """Draw one layer's base matrices, ``mats[base]`` of shape (len(trials), out, in).

    One N(0, 1) draw feeds every base of ``NORMAL_FAMILY`` present: per trial
    from its (seed, layer, trial) stream, or in the blocked ``mode`` per block
    of trials from its (seed, layer, block) stream (``fill_blocked_``). A plug-in
    (``custom``) fills its own matrix per trial from the trial's stream in either
    mode (it takes one matrix and a generator); ``constant`` is ones. ``zero``
    needs no buffer. ``mode`` None: ``draw_mode`` of the buffers' device.

    Per trial (the CPU's mode) each drawing thread derives the trial's other bases from
    its normal draw and then calls ``use(i)`` (i: the trial's position in the chunk)
    while the trial's matrices are still in its core's cache: the engine multiplies them
    into the signal there, instead of reading every matrix back from memory afterwards.
    In the blocked mode ``use`` runs for each trial after the whole layer is drawn.
    """
    if "constant" in mats:
        mats["constant"].fill_(1.0)
    family = [base for base in NORMAL_FAMILY if base in mats]
    device = next(iter(mats.values())).device if mats else torch.device("cpu")
    blocked = (mode or draw_mode(device)) == "blocked"
    if blocked or not (family or "custom" in mats):
        if family and blocked:
            fill_blocked_(mats[family[0]], trials, lambda b: weight_block_seed(seed, layer, b))
            _derive(mats, family, slice(None))
        if "custom" in mats:
            _on_every_core(_drawer(mats, [], fill, seed, layer, trials, None), len(trials),
                           device, custom=True)
        for i in range(len(trials)) if use is not None else ():
            use(i)
        return
    _on_every_core(_drawer(mats, family, fill, seed, layer, trials, use), len(trials), device,
                   custom="custom" in mats)


def _derive(mats: dict[str, torch.Tensor], family: list[str], rows) -> None:
    """The family's other bases from the normal draw in ``mats[family[0]][rows]``, then that
    base itself (derived first, while it is still the normal draw)."""
    if not family:
        return
    z = mats[family[0]][rows]
    for base in family[1:]:
        from_normal_(z, base, out=mats[base][rows])
    from_normal_(z, family[0])


def _drawer(mats: dict[str, torch.Tensor], family: list[str], fill, seed: int, layer: int,
            trials: range, use: Callable[[int], None] | None) -> Callable[[range], None]:
    """What one drawing thread does for its part of the trials: draw, derive, use."""

    def draw(part: range) -> None:  # trials part (positions in the chunk), own generator
        gen = torch.Generator(device=next(iter(mats.values())).device)
        for i in part:
            key = weight_seed(seed, layer, trials[i])
            if family:
                mats[family[0]][i].normal_(generator=gen.manual_seed(key))
                _derive(mats, family, i)
            if "custom" in mats:
                fill(mats["custom"][i], gen.manual_seed(key))
            if use is not None:
                use(i)

    return draw


def draw_threads() -> int:
    """Python threads drawing trials at once: torch's thread count (which the joblib
    launcher and the test workers already split between processes)."""
    return max(1, torch.get_num_threads())


def _on_every_core(draw: Callable[[range], None], count: int, device: torch.device,
                   custom: bool = False) -> None:
    """Run ``draw`` over ``range(count)`` cut into one contiguous part per thread.

    ``Tensor.normal_`` runs on one core and releases the GIL, so trials drawn in
    parallel threads, each with its own generator, use every core. Each trial
    still draws from its own keyed stream, so the numbers do not depend on the
    thread count. While the threads run, torch's own thread pool is held to one
    thread (each drawing thread's erf, QR and product run on its own core, not on
    every core at once). A plug-in's fill (``custom``) may not be thread-safe, and
    CUDA draws are launched, not computed, here: both stay in one thread.
    """
    if device.type != "cpu":
        draw(range(count))
        return
    threads = 1 if custom else min(draw_threads(), count)
    bounds = [count * k // threads for k in range(threads + 1)]
    parts = [range(bounds[k], bounds[k + 1]) for k in range(threads)]
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # every trial's work on one thread: the same numbers however
    try:  # many threads draw (a product's rounding may depend on its thread count)
        if threads == 1:
            draw(parts[0])
            return
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for done in [pool.submit(draw, part) for part in parts]:
                done.result()  # re-raise a thread's error here
    finally:
        torch.set_num_threads(torch_threads)


def fill_biases_(vecs: dict[str, torch.Tensor], seed: int, layer: int, trials: range,
                 mode: str | None = None) -> None:
    """Draw one layer's bias bases, ``vecs[base]`` of shape (len(trials), width).

    As for weights: one N(0, 1) vector per trial from its (seed, layer, trial)
    bias stream (in the blocked ``mode``: one (BLOCK, width) draw per block from
    its (seed, layer, block) stream) feeds ``normal`` and ``uniform`` (its erf),
    so every bias scheme scales the same draw (paired comparisons); ``constant``
    is ones.
    """
    if "constant" in vecs:
        vecs["constant"].fill_(1.0)
    family = [base for base in ("normal", "uniform") if base in vecs]
    if not family:
        return
    z = vecs[family[0]]
    if (mode or draw_mode(z.device)) == "blocked":
        fill_blocked_(z, trials, lambda b: bias_block_seed(seed, layer, b))
    else:
        gen = torch.Generator(device=z.device)
        for i, trial in enumerate(trials):
            z[i].normal_(generator=gen.manual_seed(bias_seed(seed, layer, trial)))
    for base in family[1:]:
        from_normal_(z, base, out=vecs[base])
    from_normal_(z, family[0])


def _normal_columns(seed: int, width: int, batch: int, trials: range, dtype: torch.dtype,
                    device: Any, mode: str | None,
                    seeds: tuple[Callable[[int, int], int], Callable[[int, int], int]]
                    ) -> torch.Tensor:
    """N(0, 1) (len(trials), width, batch): per trial from ``seeds[0](seed, trial)``, or in
    the blocked mode per block from ``seeds[1](seed, block)``."""
    x = torch.empty(len(trials), width, batch, dtype=dtype, device=device)
    per_trial, per_block = seeds
    if (mode or draw_mode(x.device)) == "blocked":
        fill_blocked_(x, trials, lambda block: per_block(seed, block))
        return x
    gen = torch.Generator(device=x.device)
    for i, trial in enumerate(trials):
        x[i].normal_(generator=gen.manual_seed(per_trial(seed, trial)))
    return x


def input_columns(seed: int, width: int, batch: int, trials: range, correlation: float = 0.0,
                  dtype: torch.dtype = torch.float32, device: Any = "cpu",
                  mode: str | None = None) -> torch.Tensor:
    """Inputs x_0, shape (len(trials), width, batch): N(0, I) columns, or with
    ``correlation`` = c0 > 0 ``sqrt(1 - c0) z_b + sqrt(c0) z`` with one shared column z
    per trial (from its own stream), so every unit has variance 1 and two inputs of a
    trial have correlation c0. c0 = 0 draws exactly the independent inputs."""
    x = _normal_columns(seed, width, batch, trials, dtype, device, mode,
                        (input_seed, input_block_seed))
    c0 = float(correlation)
    if c0 > 0:
        common = _normal_columns(seed, width, 1, trials, dtype, device, mode,
                                 (common_input_seed, common_input_block_seed))
        x.mul_(math.sqrt(1.0 - c0)).add_(common, alpha=math.sqrt(c0))
    return x


def gradient_columns(seed: int, width: int, batch: int, trials: range,
                     dtype: torch.dtype = torch.float32, device: Any = "cpu",
                     mode: str | None = None) -> torch.Tensor:
    """The output gradient g_L ~ N(0, I), shape (len(trials), width, batch): the backward
    pass starts from the loss <g_L, x_L>."""
    return _normal_columns(seed, width, batch, trials, dtype, device, mode,
                           (gradient_seed, gradient_block_seed))
