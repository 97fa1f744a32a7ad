"""Gaussian expectations of an activation by quadrature, one input and two.

One input: E[f(Z)], Z ~ N(0, 1), by Gauss-Legendre on [-12, 0] and [0, 12]
standard deviations rather than Gauss-Hermite: ReLU-like activations have a
kink at 0, where Gauss-Hermite converges slowly (0.4 % error in E[relu] with
201 nodes); splitting there makes each piece smooth and the result exact to
~1e-12. The tails beyond 12 sd weigh exp(-72) ~ 5e-32.

Two inputs of equal variance q and correlation c:
u1 = sqrt(q) z1, u2 = sqrt(q) (c z1 + s z2), s = sqrt(1 - c^2), z1, z2
independent N(0, 1). The outer rule in z1 is the split rule above (kink of
phi(u1) at z1 = 0); for each outer node the inner rule in z2 is split at the
kink of phi(u2), z2 = -c z1 / s, so both kinks fall on piece boundaries. At
c = +-1 (s = 0) u2 = +-u1 does not depend on z2 and the split point is
irrelevant (set to 0): no 0/0. The outer rule is also split at +-8 s / |c|,
where the inner integral bends (see ``_outer_rule``). With 64 points a piece
the closed forms (ReLU's arc-cosine kernel, erf's arcsin kernel up to q = 10)
are met to 1e-14 at every c in [-1, 1]; a steep activation at large variance
needs more (erf at q = 50: 5e-10 with 64 points, 2e-14 with 96). Derivatives
phi' come from autograd, so any torch function works, a user's plug-in
included (ReLU's kink: a.e. is enough).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

import numpy as np
import torch

REACH = 12.0


@cache
def _legendre(points: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(points)


def _pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)


@cache
def _rule(points: int = 128, reach: float = REACH) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights w with sum(w * f(z)) = E[f(Z)], Z ~ N(0, 1), split at 0
    (cached, read-only)."""
    x, w = _legendre(points)
    half = reach / 2 * (x + 1)  # [0, reach]
    nodes = np.concatenate([-half[::-1], half])
    weights = np.concatenate([w[::-1], w]) * reach / 2 * _pdf(nodes)
    nodes.flags.writeable = weights.flags.writeable = False
    return nodes, weights


_NODES, _WEIGHTS = _rule()


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one intra-op thread while the theory evaluates: on a loaded machine its
    thread pool made a 16k-element tanh 40x slower (19 ms against 0.4 ms, measured)."""
    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads != 1:
            torch.set_num_threads(threads)


def values(act: Callable, h: np.ndarray) -> np.ndarray:
    """phi(h) (float64) at an array of points."""
    with _one_thread(), torch.no_grad():
        return act(torch.from_numpy(np.ascontiguousarray(h, dtype=np.float64))).numpy()


def values_and_slopes(act: Callable, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """phi(h) and phi'(h) (autograd, float64) at an array of points."""
    with _one_thread():
        x = torch.from_numpy(np.ascontiguousarray(h, dtype=np.float64)).requires_grad_(True)
        y = act(x)
        (slope,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
        if slope is None:  # a constant activation
            slope = torch.zeros_like(x)
        return y.detach().numpy(), slope.detach().numpy()


def symmetric_mean(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum(w * y) over the rule's nodes (the last axis), summed as pairs y(z) + y(-z): the
    nodes are symmetric about 0, so an odd phi (none, tanh) gives exactly 0, not the
    rounding of a huge sum (a linear chain's mean at q = 1e246 would otherwise be +-1e107
    of noise)."""
    half = y.shape[-1] // 2
    return (y[..., half:] + y[..., :half][..., ::-1]) @ weights[half:]


def gaussian_moments(act: Callable, q: float) -> tuple[float, float]:
    """(E[phi(h)], E[phi(h)^2]) for h ~ N(0, q); inf where they overflow (a chain that
    explodes: the caller reads inf, no warning is printed). E[phi] of an odd phi is
    exactly 0 (``symmetric_mean``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        y = values(act, np.sqrt(q) * _NODES)
        return float(symmetric_mean(y, _WEIGHTS)), float(_WEIGHTS @ (y * y))


def derivative_second_moment(act: Callable, q: float) -> float:
    """E[phi'(h)^2] for h ~ N(0, q), phi' by autograd at the quadrature nodes."""
    _, slope = values_and_slopes(act, np.sqrt(q) * _NODES)
    return float(_WEIGHTS @ (slope**2))


def one_input(act: Callable, q: np.ndarray | float, points: int = 128,
              slopes: bool = True) -> dict[str, np.ndarray]:
    """Moments of phi(h), h ~ N(0, q), for an array of q > 0 (vectorised):

    ``m1`` E[phi], ``m2`` E[phi^2], ``d2`` E[phi'^2], and ``dm2`` = d E[phi^2] / dq
    = E[phi(h) phi'(h) h] / q (differentiate E[phi(sqrt(q) z)^2] under the integral;
    needs phi' only, so ReLU's kink costs nothing, unlike the Stein form
    (E[phi'^2] + E[phi phi''])). ``slopes=False``: ``m1`` and ``m2`` only (no autograd).
    """
    q = np.asarray(q, dtype=np.float64)
    nodes, weights = _rule(points)
    h = np.sqrt(q)[..., None] * nodes
    if not slopes:
        y = values(act, h)
        return {"m1": symmetric_mean(y, weights), "m2": (y * y) @ weights}
    y, dy = values_and_slopes(act, h)
    return {
        "m1": symmetric_mean(y, weights),
        "m2": (y * y) @ weights,
        "d2": (dy * dy) @ weights,
        "dm2": (y * dy * nodes) @ weights / np.sqrt(q),
    }


def _inner_rule(c: np.ndarray, z1: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z2 and weights (shape z1.shape + (3 points,)) of E over z2 on [-R, a], [a, b],
    [b, R] with {a, b} = {0, kink}: the kink -c z1 / s of phi(sqrt(q) (c z1 + s z2)),
    clipped to the reach, falls on a boundary, and no piece is longer than R, so the
    Gaussian is resolved as well as by the one-input rule's halves."""
    x, w = _legendre(points)
    s = np.sqrt(np.maximum((1 - c) * (1 + c), 0.0))[..., None]
    cz = c[..., None] * z1
    with np.errstate(divide="ignore", invalid="ignore"):
        kink = np.where(s > 0, -cz / np.where(s > 0, s, 1.0), 0.0)
    kink = np.clip(kink, -REACH, REACH)
    a, b = np.minimum(kink, 0.0)[..., None], np.maximum(kink, 0.0)[..., None]
    pieces = [(np.full_like(a, -REACH), a), (a, b), (b, np.full_like(b, REACH))]
    nodes = np.concatenate([lo + (hi - lo) * (x + 1) / 2 for lo, hi in pieces], axis=-1)
    weights = np.concatenate([(hi - lo) / 2 * w for lo, hi in pieces], axis=-1)
    return nodes, weights * _pdf(nodes)


def _outer_rule(c: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z1 and weights (shape c.shape + (4 points,)) on [-R, -w], [-w, 0], [0, w],
    [w, R], w = min(8 s / |c|, R / 2): after the inner integral, a kink of phi at 0 becomes
    a bend of width s / |c| in z1 (phi smoothed by a Gaussian of sd sqrt(q) s, seen at
    sqrt(q) c z1), which 8 widths contain to exp(-32); as c -> +-1 it narrows to nothing."""
    x, w = _legendre(points)
    s = np.sqrt(np.maximum((1 - c) * (1 + c), 0.0))
    with np.errstate(divide="ignore"):
        width = np.minimum(8 * s / np.abs(c), REACH / 2)[..., None]
    inner = width * (x + 1) / 2
    outer = width + (REACH - width) * (x + 1) / 2
    nodes = np.concatenate([-outer[..., ::-1], -inner[..., ::-1], inner, outer], axis=-1)
    wi, wo = width / 2 * w, (REACH - width) / 2 * w
    weights = np.concatenate([wo[..., ::-1], wi[..., ::-1], wi, wo], axis=-1)
    return nodes, weights * _pdf(nodes)


def two_inputs(act: Callable, q: np.ndarray | float, c: np.ndarray | float,
               points: int = 64, slopes: bool = True) -> dict[str, np.ndarray]:
    """E[phi(u1) phi(u2)] (``k``) and E[phi'(u1) phi'(u2)] (``dk``) for (u1, u2) Gaussian with
    variances q, q and correlation c (arrays broadcast together; vectorised), and the
    one-input E[phi(u1)^2] (``m2``) on the same outer rule, so that ``k == m2`` at c = 1 to
    rounding. ``points`` Gauss-Legendre nodes per piece, 12 points^2 evaluations per (q, c)."""
    q, c = np.broadcast_arrays(np.asarray(q, dtype=np.float64),
                               np.clip(np.asarray(c, dtype=np.float64), -1.0, 1.0))
    z1, w1 = _outer_rule(c, points)
    z2, w2 = _inner_rule(c, z1, points)
    root = np.sqrt(q)[..., None]
    s = np.sqrt(np.maximum((1 - c) * (1 + c), 0.0))[..., None, None]
    u2 = root[..., None] * (c[..., None, None] * z1[..., None] + s * z2)
    if slopes:
        y1, dy1 = values_and_slopes(act, root * z1)
        y2, dy2 = values_and_slopes(act, u2)
    else:
        y1, y2 = values(act, root * z1), values(act, u2)
    out = {
        "k": np.einsum("...i,...i->...", y1 * np.einsum("...ij,...ij->...i", y2, w2), w1),
        "m2": np.einsum("...i,...i->...", y1 * y1, w1),
    }
    if slopes:
        out["dk"] = np.einsum("...i,...i->...",
                              dy1 * np.einsum("...ij,...ij->...i", dy2, w2), w1)
    return out
