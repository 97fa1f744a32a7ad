"""Keyed random streams: the one place where weights, inputs and output gradients are drawn.

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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from initlab.spec import ChainSpec

#: Bases transformed from one N(0, 1) draw (first present is drawn, the others derived).
NORMAL_FAMILY = ("normal", "uniform", "orthogonal")
BASES = ("zero", *NORMAL_FAMILY, "constant", "custom")

_MASK64 = (1 << 64) - 1
_INPUT_STREAM = 0x1A9B7C3D  # tags keep the input, weight and gradient streams apart
_WEIGHT_STREAM = 0x5EED0F17
_GRAD_STREAM = 0x6EAD1E57


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


def gradient_seed(seed: int, trial: int) -> int:
    """Seed of the output gradient g_L of ``trial`` (the backward pass's start)."""
    return stream_seed(seed, _GRAD_STREAM, trial)


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
                fill: Callable[..., Any] | None = None) -> None:
    """Draw one layer's base matrices, ``mats[base]`` of shape (len(trials), out, in).

    One N(0, 1) draw per trial from its (seed, layer, trial) stream feeds every
    base of ``NORMAL_FAMILY`` present; a plug-in (``custom``) fills its own
    from the same stream; ``constant`` is ones. ``zero`` needs no buffer.
    """
    if "constant" in mats:
        mats["constant"].fill_(1.0)
    family = [base for base in NORMAL_FAMILY if base in mats]
    if family or "custom" in mats:
        gen = torch.Generator(device=next(iter(mats.values())).device)
        for i, trial in enumerate(trials):
            key = weight_seed(seed, layer, trial)
            if family:
                mats[family[0]][i].normal_(generator=gen.manual_seed(key))
            if "custom" in mats:
                fill(mats["custom"][i], gen.manual_seed(key))
    if family:
        z = mats[family[0]]
        for base in family[1:]:  # derived first, while z is still the normal draw
            from_normal_(z, base, out=mats[base])
        from_normal_(z, family[0])


def layer_weights(spec: ChainSpec, layer: int, trials: range, device: Any = "cpu") -> torch.Tensor:
    """The weights W_layer (len(trials), width, width) that the engine uses for ``layer``.

    Drawn by ``fill_layer_``, then scaled: what the engine multiplies, without
    the LSUV rescaling (which depends on the data).
    """
    draw = spec.draw()
    source = 1 if spec.weights == "shared" else layer
    w = torch.zeros(len(trials), spec.width, spec.width, dtype=spec.torch_dtype, device=device)
    if draw.base != "zero":
        fill_layer_({draw.base: w}, spec.seed, source, trials, draw.fill)
    return w.mul_(draw.scale)


def _normal_columns(spec: ChainSpec, trials: range, device: Any,
                    seed_of: Callable[[int, int], int]) -> torch.Tensor:
    x = torch.empty(len(trials), spec.width, spec.batch, dtype=spec.torch_dtype, device=device)
    gen = torch.Generator(device=x.device)
    for i, trial in enumerate(trials):
        x[i].normal_(generator=gen.manual_seed(seed_of(spec.seed, trial)))
    return x


def draw_inputs(spec: ChainSpec, trials: range, device: Any = "cpu") -> torch.Tensor:
    """Inputs x_0 ~ N(0, I): shape (len(trials), width, batch)."""
    return _normal_columns(spec, trials, device, input_seed)


def output_gradient(spec: ChainSpec, trials: range, device: Any = "cpu") -> torch.Tensor:
    """g_L ~ N(0, I), shape (len(trials), width, batch): the loss is <g_L, x_L>."""
    return _normal_columns(spec, trials, device, gradient_seed)
