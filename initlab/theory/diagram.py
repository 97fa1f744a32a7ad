"""The order-to-chaos phase diagram over (sigma_w2, sigma_b2), from theory, vectorised.

Per cell: q*, chi_1, chi_q, c*, chi_c, xi_c (definitions in ``phase``). Ordered
phase: chi_1 < 1, c* = 1, two inputs become one at depth scale xi_c. Chaotic
phase: chi_1 > 1, c* < 1, they decorrelate to c*. The edge: chi_1 = 1, where
xi_c diverges (Poole et al. 2016; Schoenholz et al. 2017, Fig. 1).
``chi1_curve`` gives the edge as sigma_w2 per sigma_b2 for plotting on top.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from initlab.theory.phase import (
    MARGINAL,
    Q_HIGH,
    Q_LOW,
    c_star_at,
    correlation_slope,
    reached_q,
    resolve,
)
from initlab.theory.quadrature import one_input

CHUNK = 256  # cells per bivariate evaluation: 256 * (2 * 32)^2 doubles = 8 MB a temporary


def _slopes(act: Callable, w: np.ndarray, b: np.ndarray, m0: float, points: int = 64):
    """q*, chi_1, chi_q per cell; the one-input rule costs 2 points nodes a cell, so it
    keeps 64 a half (1e-14) where the two-input rule of the grid drops to 24."""
    q = reached_q(act, w, b, w * m0 + b, points)
    mom = one_input(act, np.clip(q, Q_LOW, Q_HIGH), points)
    return q, w * mom["d2"], w * mom["dm2"]


def chi1_curve(activation: Callable | str, sigma_b2, sigma_w2_grid,
               activation_params: dict | None = None, input_second_moment: float = 1.0,
               iterations: int = 45) -> np.ndarray:
    """sigma_w2 with chi_1 = 1 at a fixed point that does not repel, per sigma_b2: the first
    sign change of chi_1 - 1 along ``sigma_w2_grid`` (ascending) refined by bisection (45
    halvings of a grid step: far below plotting precision); NaN where there is none."""
    act = resolve(activation, activation_params)
    b = np.atleast_1d(np.asarray(sigma_b2, dtype=np.float64))
    grid = np.asarray(sigma_w2_grid, dtype=np.float64)
    w2, b2 = np.meshgrid(grid, b)
    q, chi1, chiq = _slopes(act, w2, b2, input_second_moment)
    ok = np.isfinite(q) & (chiq <= 1 + MARGINAL)  # q* = 0 (the limit) counts: tanh, b = 0
    d = chi1 - 1
    change = ok[:, :-1] & ok[:, 1:] & ((d[:, :-1] < 0) != (d[:, 1:] < 0))
    has = change.any(axis=1)
    out = np.full(b.shape, np.nan)
    if not has.any():
        return out
    i = np.argmax(change, axis=1)[has]
    rows = np.flatnonzero(has)
    lo, hi = np.log(grid[i]), np.log(grid[i + 1])
    below = d[rows, i] < 0
    bb = b[has]
    for _ in range(iterations):
        mid = (lo + hi) / 2
        _, c1, _ = _slopes(act, np.exp(mid), bb, input_second_moment)
        stay = (c1 - 1 < 0) == below
        lo, hi = np.where(stay, mid, lo), np.where(stay, hi, mid)
    out[has] = np.exp((lo + hi) / 2)
    return out


def phase_diagram(activation: Callable | str, sigma_w2, sigma_b2,
                  activation_params: dict | None = None, input_second_moment: float = 1.0,
                  points: int = 24, iterations: int = 60) -> dict[str, np.ndarray]:
    """Theory on the grid sigma_b2 (rows) x sigma_w2 (columns): arrays of shape (nb, nw)
    ``q_star, chi_1, chi_q, c_star, chi_c, xi_c``, the axes, and the edge
    ``edge_sigma_w2`` per sigma_b2 (``chi1_curve``). ``points`` = 24 nodes per piece give
    E[phi phi] to ~1e-12 for ReLU and ~3e-10 for tanh (measured against 96 points); c*
    by safeguarded Newton (``phase.c_star_at``): far below what a heatmap shows."""
    act = resolve(activation, activation_params)
    w = np.asarray(sigma_w2, dtype=np.float64)
    b = np.asarray(sigma_b2, dtype=np.float64)
    w2, b2 = np.meshgrid(w, b)
    q, chi1, chiq = _slopes(act, w2.ravel(), b2.ravel(), input_second_moment)
    qe = np.clip(q, Q_LOW, Q_HIGH)
    c_star = np.empty_like(qe)
    chi_c = np.empty_like(qe)
    for start in range(0, qe.size, CHUNK):
        s = slice(start, start + CHUNK)
        c_star[s] = c_star_at(act, w2.ravel()[s], b2.ravel()[s], qe[s], points, iterations)
        chi_c[s] = correlation_slope(act, w2.ravel()[s], b2.ravel()[s], qe[s], c_star[s],
                                     points)[1]
    with np.errstate(divide="ignore"):
        xi_c = np.where(chi_c >= 1 - MARGINAL, np.inf,
                        np.where(chi_c > 0, -1 / np.log(np.clip(chi_c, 1e-300, None)), 0.0))
    shape = w2.shape
    return {
        "sigma_w2": w, "sigma_b2": b,
        "q_star": q.reshape(shape), "chi_1": chi1.reshape(shape), "chi_q": chiq.reshape(shape),
        "c_star": c_star.reshape(shape), "chi_c": chi_c.reshape(shape),
        "xi_c": xi_c.reshape(shape),
        "edge_sigma_w2": chi1_curve(act, b, w, input_second_moment=input_second_moment),
    }
