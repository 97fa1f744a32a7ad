"""Signal propagation with biases: the variance map, the correlation map, their fixed points.

Weights W_l ~ N(0, sigma_w2 / fan_in), biases b_l ~ N(0, sigma_b2), the chain
h_l = W_l x_{l-1} + b_l, x_l = phi(h_l). Layer 0 is the input x_0 (second
moment q_0 per unit, pairwise cosine c_0 between inputs); layer l >= 1 is the
pre-activation h_l. In the mean-field limit (Poole et al. 2016, Schoenholz et
al. 2017):

    q_1 = sigma_w2 q_0 + sigma_b2,   c_1 = (sigma_w2 c_0 q_0 + sigma_b2) / q_1,
    q_l = sigma_w2 E[phi(u1)^2] + sigma_b2,
    c_l = (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q_l,        l >= 2,

with (u1, u2) Gaussian of variances q_{l-1} and correlation c_{l-1}. c is
the cosine q_12 / sqrt(q_11 q_22) of the *pre-activations* of two inputs, from
raw second moments (an activation's mean, sigmoid's or softplus's, is
included), as the engine measures it.

Fixed points. ``q_star`` is the fixed point of q -> f(q) = sigma_w2 E[phi^2]
+ sigma_b2 that the chain reaches from q_1 (f is increasing for every
built-in activation, so the iterates move monotonically to the nearest fixed
point on the side f(q_1) - q_1 points to): 0 or inf when they vanish or
grow past 1e12 (then the slopes below are the limits, taken at 1e-12 and
1e12). It attracts when chi_q = f'(q*) < 1. ``c_star``: at any q the
correlation map M(c) is a power series in c with non-negative coefficients
(Hermite expansion of phi), so on [0, 1] it is increasing and convex with
M(1) = 1: if M'(1) <= 1 (ordered or marginal) c* = 1, otherwise a single
c* in [0, 1) attracts, found by safeguarded Newton. Inputs with c_0 >= 0 stay
in [0, 1].

Slopes: chi_1 = sigma_w2 E[phi'(h)^2], chi_q = f'(q*) = sigma_w2 E[phi phi' h] / q*
(the slope of the map; Schoenholz et al. write it chi_1 + sigma_w2 E[phi'' phi]
in their xi_q, the same after integrating by parts, but this form needs no phi'',
which ReLU lacks), chi_c = M'(c*) = sigma_w2 q E[phi'(u1) phi'(u2)] / f(q)
(= sigma_w2 E[phi' phi'] at a finite fixed point; = chi_1 when c* = 1). Depth
scales xi_q = -1 / ln(chi_q), xi_c = -1 / ln(chi_c) (Schoenholz et al. 2017,
Sec. 3), inf when chi >= 1 - MARGINAL (no exponential convergence).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from initlab.activations import get_activation
from initlab.theory.quadrature import one_input, two_inputs

Q_LOW, Q_HIGH = 1e-12, 1e12
_QGRID = np.logspace(-12, 12, 97)  # 4 points a decade to bracket fixed points
# |slope - 1| <= MARGINAL is marginal (neither attracts nor repels), |f(q1) - q1| <= MARGINAL q1
# makes q1 itself the fixed point (ReLU at sigma_w2 = 2: every q is one): rounding in the
# slopes and maps is ~1e-14 (measured), far below.
MARGINAL = 1e-10


def resolve(activation: Callable | str, params: dict | None = None) -> Callable:
    """An activation callable from a name (with its parameters) or a callable itself."""
    return get_activation(activation, params) if isinstance(activation, str) else activation


def depth_scale(chi: float) -> float:
    """-1 / ln(chi): inf for chi >= 1 - MARGINAL (no exponential convergence), 0 for chi <= 0."""
    if not chi > 0:
        return 0.0
    return math.inf if chi >= 1 - MARGINAL else -1.0 / math.log(chi)


def variance_map(act: Callable, sigma_w2, sigma_b2, q) -> np.ndarray:
    """f(q) = sigma_w2 E[phi(h)^2] + sigma_b2, h ~ N(0, q) (arrays broadcast)."""
    return np.asarray(sigma_w2) * one_input(act, q, slopes=False)["m2"] + np.asarray(sigma_b2)


def reached_q(act: Callable, sigma_w2, sigma_b2, q1, points: int = 128, iterations: int = 80,
              tol: float = 1e-14) -> np.ndarray:
    """The fixed point of the variance map that iterates started at q1 approach (0 or inf
    where they vanish or pass 1e12), for arrays of (sigma_w2, sigma_b2, q1), vectorised:
    bracketed on a log grid, then safeguarded Newton in ln q to ``tol`` (linear, halving,
    at a marginal root such as ReLU's; 80 steps cover the bracket's 0.58 to 1e-14)."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                   for a in (sigma_w2, sigma_b2, q1)))
    shape = arrays[0].shape or (1,)
    sw, sb, q1 = (a.ravel() for a in arrays)
    m2 = one_input(act, _QGRID, points, slopes=False)["m2"]
    g = sw[..., None] * m2 + sb[..., None] - _QGRID  # f(q) - q on the grid, per cell
    g1 = sw * one_input(act, q1, points, slopes=False)["m2"] + sb - q1
    g1 = np.where(np.abs(g1) <= MARGINAL * q1, 0.0, g1)
    above, below = _QGRID > q1[..., None], _QGRID < q1[..., None]
    # rising (g1 > 0): first grid point above q1 where g <= 0; falling: last below with g >= 0
    up = np.where(above & (g <= 0), np.arange(len(_QGRID)), len(_QGRID)).min(axis=-1)
    down = np.where(below & (g >= 0), np.arange(len(_QGRID)), -1).max(axis=-1)
    out = np.where(g1 > 0, np.where(up < len(_QGRID), np.nan, np.inf),
                   np.where(g1 < 0, np.where(down >= 0, np.nan, 0.0), q1))
    upi, downi = np.clip(up, 0, len(_QGRID) - 1), np.clip(down, 0, len(_QGRID) - 1)
    lo = np.where(g1 > 0, np.maximum(_QGRID[np.maximum(upi - 1, 0)], q1), _QGRID[downi])
    hi = np.where(g1 > 0, _QGRID[upi], np.minimum(_QGRID[np.minimum(downi + 1,
                                                                      len(_QGRID) - 1)], q1))
    todo = np.flatnonzero(np.isnan(out))
    lo, hi, x = np.log(lo[todo]), np.log(hi[todo]), (np.log(lo[todo]) + np.log(hi[todo])) / 2
    for _ in range(iterations):  # safeguarded Newton in x = ln q on G(x) = f(e^x) - e^x
        if not todo.size:
            break
        q = np.exp(x)
        mom = one_input(act, q, points)
        g, dg = sw[todo] * mom["m2"] + sb[todo] - q, q * (sw[todo] * mom["dm2"] - 1)
        lo, hi = np.where(g >= 0, x, lo), np.where(g >= 0, hi, x)  # g(lo) >= 0 > g(hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = x - g / dg
        nxt = np.where((step > lo) & (step < hi), step, (lo + hi) / 2)
        done = (np.abs(nxt - x) <= tol) | (g == 0) | (hi - lo <= tol)
        out[todo[done]] = np.exp(np.where(g[done] == 0, x[done], nxt[done]))
        keep = ~done
        todo, x, lo, hi = todo[keep], nxt[keep], lo[keep], hi[keep]
    out[todo] = np.exp(x)
    return out.reshape(shape)


def variance_fixed_points(activation: Callable | str, sigma_w2: float, sigma_b2: float = 0.0,
                          activation_params: dict | None = None) -> list[tuple[float, float]]:
    """Every fixed point of the variance map in [1e-12, 1e12] as (q*, slope f'(q*)), slope < 1
    attracting, > 1 repelling; q* = 0 is listed when sigma_b2 = 0 and phi(0) = 0 (its slope
    the limit at 1e-12). Empty: none (the chain's variance runs off to 0 or inf). Roots are
    bracketed by sign changes of f(q) - q on the log grid (4 a decade; two roots closer than
    that can be missed) and refined by ``reached_q`` from inside each bracket."""
    act = resolve(activation, activation_params)
    g = variance_map(act, sigma_w2, sigma_b2, _QGRID) - _QGRID
    found = []
    if sigma_b2 == 0 and one_input(act, np.zeros(1), slopes=False)["m2"][0] == 0:
        found.append(0.0)
    for i in np.flatnonzero(np.sign(g[:-1]) != np.sign(g[1:])):
        if g[i] > 0:  # an attracting-type root: the iteration from the bracket's left end
            found.append(float(reached_q(act, sigma_w2, sigma_b2, _QGRID[i])[0]))
        else:  # a repelling root: g goes - to +; bisect directly
            lo, hi = math.log(_QGRID[i]), math.log(_QGRID[i + 1])
            for _ in range(60):
                mid = (lo + hi) / 2
                q = math.exp(mid)
                lo, hi = (lo, mid) if variance_map(act, sigma_w2, sigma_b2, q) - q > 0 \
                    else (mid, hi)
            found.append(math.exp((lo + hi) / 2))
    out = []
    for q in sorted(set(found)):
        mom = one_input(act, np.array([min(max(q, Q_LOW), Q_HIGH)]))
        out.append((q, float(sigma_w2 * mom["dm2"][0])))
    return out


@dataclass(frozen=True)
class PhaseParams:
    """Fixed points and slopes of the mean-field maps at (sigma_w2, sigma_b2): plain data."""

    sigma_w2: float
    sigma_b2: float
    q_star: float
    q_attracting: bool
    chi_q: float
    xi_q: float
    chi_1: float
    c_star: float
    c_attracting: bool
    chi_c: float
    xi_c: float

    def as_dict(self) -> dict[str, float | bool]:
        return asdict(self)


def _slopes_at(act: Callable, sigma_w2: float, sigma_b2: float, q: float) -> tuple[float, float]:
    """(chi_q, chi_1) at q (clipped into [1e-12, 1e12] for the limits 0 and inf)."""
    qe = min(max(q, Q_LOW), Q_HIGH)
    mom = one_input(act, np.array([qe]))
    return float(sigma_w2 * mom["dm2"][0]), float(sigma_w2 * mom["d2"][0])


def correlation_slope(act: Callable, sigma_w2, sigma_b2, q, c, points: int = 64):
    """M(c) and M'(c) of the correlation map at input variance q (arrays broadcast). At
    c = 1 the one-input rule gives them (M = 1, M' = sigma_w2 q E[phi'^2] / f(q)), which
    also spares the ordered cells of a phase diagram the two-input rule."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                   for a in (sigma_w2, sigma_b2, q, c)))
    shape = arrays[0].shape
    sw, sb, q, c = (a.ravel() for a in arrays)
    m, dm = np.ones_like(q), np.empty_like(q)
    one = c >= 1
    if one.any():
        mom = one_input(act, q[one], 2 * points)
        with np.errstate(divide="ignore", invalid="ignore"):  # q = 0 (zero weights): NaN slope
            dm[one] = sw[one] * q[one] * mom["d2"] / (sw[one] * mom["m2"] + sb[one])
    two = ~one
    if two.any():
        r = two_inputs(act, q[two], c[two], points=points)
        nxt = sw[two] * r["m2"] + sb[two]
        m[two] = (sw[two] * r["k"] + sb[two]) / nxt
        dm[two] = sw[two] * q[two] * r["dk"] / nxt
    return m.reshape(shape), dm.reshape(shape)


def c_star_at(act: Callable, sigma_w2, sigma_b2, q, points: int = 64,
              iterations: int = 60, tol: float = 1e-13) -> np.ndarray:
    """The attracting fixed point in [0, 1] of the correlation map at variance q (arrays).

    g(c) = M(c) - c is convex on [0, 1] with g(0) >= 0 and g(1) = 0; when M'(1) > 1 it
    has one root c* < 1 and g' < 0 on [0, c*], so Newton from c = 0 climbs to c*
    monotonically (quadratically; linearly, halving, as c* -> 1 at the edge). Safeguard:
    a step leaving the bracket [lo, hi] (g(lo) >= 0 > g(hi)) is replaced by bisection."""
    sw, sb, q = (np.atleast_1d(np.asarray(a, dtype=np.float64)).copy() for a in
                 np.broadcast_arrays(sigma_w2, sigma_b2, q))
    _, slope1 = correlation_slope(act, sw, sb, q, np.ones_like(q), points)
    out = np.ones_like(q)
    todo = np.flatnonzero(slope1 > 1 + MARGINAL)
    c, lo, hi = np.zeros(todo.size), np.zeros(todo.size), np.ones(todo.size)
    for _ in range(iterations):
        if not todo.size:
            break
        m, dm = correlation_slope(act, sw[todo], sb[todo], q[todo], c, points)
        g, dg = m - c, dm - 1
        lo, hi = np.where(g >= 0, c, lo), np.where(g >= 0, hi, c)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(dg < 0, c - g / dg, np.nan)
        nxt = np.where((step > lo) & (step < hi), step, (lo + hi) / 2)
        done = (np.abs(nxt - c) <= tol) | (g == 0)
        out[todo[done]] = np.where(g[done] == 0, c[done], nxt[done])
        keep = ~done
        todo, c, lo, hi = todo[keep], nxt[keep], lo[keep], hi[keep]
    out[todo] = c
    return out


def phase_params(activation: Callable | str, sigma_w2: float, sigma_b2: float = 0.0,
                 input_second_moment: float = 1.0, activation_params: dict | None = None,
                 points: int = 64) -> PhaseParams:
    """q*, c*, chi_q, chi_1, chi_c, xi_q, xi_c at (sigma_w2, sigma_b2) (module docstring)."""
    act = resolve(activation, activation_params)
    q1 = sigma_w2 * input_second_moment + sigma_b2
    q_star = float(reached_q(act, sigma_w2, sigma_b2, q1)[0])
    chi_q, chi_1 = _slopes_at(act, sigma_w2, sigma_b2, q_star)
    qe = min(max(q_star, Q_LOW), Q_HIGH)
    c_star = float(c_star_at(act, sigma_w2, sigma_b2, qe, points)[0])
    _, chi_c = correlation_slope(act, sigma_w2, sigma_b2, qe, c_star, points)
    chi_c = float(chi_c[()])
    return PhaseParams(
        sigma_w2=float(sigma_w2), sigma_b2=float(sigma_b2), q_star=q_star,
        q_attracting=chi_q < 1 - MARGINAL, chi_q=chi_q, xi_q=depth_scale(chi_q), chi_1=chi_1,
        c_star=c_star, c_attracting=chi_c < 1 - MARGINAL, chi_c=chi_c, xi_c=depth_scale(chi_c),
    )


def propagate(activation: Callable | str, sigma_w2, sigma_b2, depth: int, c0: float = 0.0,
              input_second_moment: float = 1.0, activation_params: dict | None = None,
              points: int = 64) -> dict[str, np.ndarray]:
    """Joint recursion of q and c from the inputs: arrays ``q``, ``c`` of shape
    (depth + 1, *cells) for arrays of (sigma_w2, sigma_b2) (shape () for scalars)."""
    act = resolve(activation, activation_params)
    sw, sb = np.broadcast_arrays(np.asarray(sigma_w2, dtype=np.float64),
                                 np.asarray(sigma_b2, dtype=np.float64))
    shape, sw, sb = sw.shape, sw.reshape(-1), sb.reshape(-1)
    q = np.full((depth + 1, sw.size), np.nan)
    c = np.full((depth + 1, sw.size), np.nan)
    q[0], c[0] = input_second_moment, c0
    if depth >= 1:
        q[1] = sw * input_second_moment + sb
        with np.errstate(divide="ignore", invalid="ignore"):
            c[1] = (sw * c0 * input_second_moment + sb) / q[1]
    for layer in range(2, depth + 1):
        ok = np.isfinite(q[layer - 1]) & (q[layer - 1] > 0) & np.isfinite(c[layer - 1])
        if not ok.any():
            break
        r = two_inputs(act, q[layer - 1, ok], c[layer - 1, ok], points=points, slopes=False)
        q[layer, ok] = sw[ok] * r["m2"] + sb[ok]
        with np.errstate(divide="ignore", invalid="ignore"):
            c[layer, ok] = np.clip((sw[ok] * r["k"] + sb[ok]) / q[layer, ok], -1.0, 1.0)
    return {"q": q.reshape(depth + 1, *shape), "c": c.reshape(depth + 1, *shape)}
