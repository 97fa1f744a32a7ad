"""The edge of chaos for any activation: (sigma_w2, sigma_b2) with chi_1 = 1.

Rule (``critical_point``). Fix sigma_b2 (the caller's, else ``DEFAULT_SIGMA_B2``
of the activation, 0.05 for a plug-in). Call sigma_w2 *admissible* when the
fixed point q* that unit-variance inputs reach is finite, in [Q_MIN, q_max],
and does not repel (chi_q = f'(q*) <= 1; marginal counts: ReLU at sigma_w2 = 2,
sigma_b2 = 0 keeps every q). Then:

1. ``chi_1 = 1``: the smallest admissible sigma_w2 with chi_1 = sigma_w2
   E[phi'(h)^2] = 1 at q* (a sign change of chi_1 - 1 between admissible points
   of a 60-a-decade grid over [0.05, 1000] plus the bias-free gain 1 / E[phi(z)^2],
   refined by bisection; or a grid point where it is 1 to 1e-12).
2. ``nearest``: if chi_1 = 1 is never reached at an admissible point, the
   admissible sigma_w2 whose chi_1 is nearest 1, pushed by bisection to the
   edge of the admissible set (to 1e-9 relative) when chi_1 moves towards 1
   there. For ReLU-like activations with a bias, chi_1 < 1 at every finite
   attracting q* and tends to 1 only as q* -> inf: this is the largest
   sigma_w2 with q* <= q_max, so q_max sets how close to 1 chi_1 gets.
3. no admissible sigma_w2 at all (GELU or SiLU without a bias): ValueError.

The resulting table, and what the rule means for each activation: the package
docstring (initlab/theory/__init__.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from initlab.activations import ACTIVATIONS
from initlab.theory.phase import (
    MARGINAL,
    Q_HIGH,
    Q_LOW,
    PhaseParams,
    phase_params,
    reached_q,
    resolve,
)
from initlab.theory.quadrature import gaussian_moments, one_input

#: sigma_b2 that ``critical_point`` uses when none is given; a plug-in gets PLUGIN_SIGMA_B2.
DEFAULT_SIGMA_B2 = {
    "none": 0.0, "relu": 0.0, "leaky_relu": 0.0,  # marginal: every q is a fixed point
    "tanh": 0.05,  # Schoenholz et al. 2017, Fig. 1
    "sigmoid": 0.05, "selu": 0.05, "gelu": 0.2, "silu": 1.0, "softplus": 0.05,
}
PLUGIN_SIGMA_B2 = 0.05
Q_MIN, Q_MAX = 1e-3, 100.0
_GRID = np.logspace(np.log10(0.05), 3, int(60 * (3 - np.log10(0.05))) + 1)


@dataclass(frozen=True)
class CriticalPoint:
    """Where ``critical`` puts an activation: the rule that applied and the phase there."""

    rule: str  # "chi_1 = 1" or "nearest"
    phase: PhaseParams

    @property
    def sigma_w2(self) -> float:
        return self.phase.sigma_w2

    @property
    def sigma_b2(self) -> float:
        return self.phase.sigma_b2

    def as_dict(self) -> dict:
        return asdict(self)


def _scan(act: Callable, sigma_w2: np.ndarray, sigma_b2: float,
          q_max: float) -> tuple[np.ndarray, np.ndarray]:
    """(admissible, chi_1 - 1) at each sigma_w2."""
    q = reached_q(act, sigma_w2, sigma_b2, sigma_w2 + sigma_b2)
    mom = one_input(act, np.clip(q, Q_LOW, Q_HIGH))
    ok = np.isfinite(q) & (q >= Q_MIN) & (q <= q_max) & (sigma_w2 * mom["dm2"] <= 1 + MARGINAL)
    return ok, sigma_w2 * mom["d2"] - 1


def _edges(act: Callable, sigma_b2: float, q_max: float, grid: np.ndarray, ok: np.ndarray,
           iterations: int = 40) -> np.ndarray:
    """The admissible end of each grid step where admissibility changes, pushed by bisection
    (in log sigma_w2, 40 halvings of a 4 % step: 1e-13 relative) to the edge."""
    i = np.flatnonzero(ok[:-1] != ok[1:])
    a = np.log(np.where(ok[i], grid[i], grid[i + 1]))
    b = np.log(np.where(ok[i], grid[i + 1], grid[i]))
    for _ in range(iterations):
        mid = (a + b) / 2
        inside, _ = _scan(act, np.exp(mid), sigma_b2, q_max)
        a, b = np.where(inside, mid, a), np.where(inside, b, mid)
    return np.exp(a)


def critical_point(activation: Callable | str, sigma_b2: float | None = None,
                   activation_params: dict | None = None, q_max: float = Q_MAX) -> CriticalPoint:
    """(sigma_w2, sigma_b2) on the chi_1 = 1 curve, or the nearest admissible point (module
    docstring); ValueError when no sigma_w2 gives a fixed point that does not repel."""
    act = resolve(activation, activation_params)
    if sigma_b2 is None:
        name = activation if isinstance(activation, str) else None
        sigma_b2 = DEFAULT_SIGMA_B2.get(name, PLUGIN_SIGMA_B2)
    try:
        return _critical_point(act, activation, sigma_b2, q_max)
    except ValueError:
        raise
    except (ArithmeticError, RuntimeError, TypeError) as exc:  # a degenerate plug-in
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(
            f"init=critical cannot place activation={activation!r} on the edge of chaos: its "
            f"mean-field maps fail ({type(exc).__name__}: {text}); critical needs an "
            "activation whose output is a differentiable function of its input") from None


def _critical_point(act: Callable, activation: Callable | str, sigma_b2: float,
                    q_max: float) -> CriticalPoint:
    grid = _GRID
    second = gaussian_moments(act, 1.0)[1]
    if second > 0:
        grid = np.unique(np.append(grid, 1.0 / second))
    ok, d = _scan(act, grid, sigma_b2, q_max)
    if not ok.any():
        raise ValueError(_no_fixed_point(activation, sigma_b2, q_max))
    grid = np.unique(np.concatenate([grid, _edges(act, sigma_b2, q_max, grid, ok)]))
    ok, d = _scan(act, grid, sigma_b2, q_max)
    good = np.flatnonzero(ok)
    exact = good[np.abs(d[good]) <= 1e-12]
    crossings = [i for i, j in zip(good, good[1:], strict=False)
                 if j == i + 1 and (d[i] < 0) != (d[j] < 0)]
    if exact.size and (not crossings or exact[0] <= crossings[0]):
        return CriticalPoint("chi_1 = 1", phase_params(act, float(grid[exact[0]]), sigma_b2))
    if crossings:
        i = crossings[0]
        lo, hi, below = np.log(grid[i]), np.log(grid[i + 1]), d[i] < 0
        for _ in range(45):  # 45 halvings of a <= 4 % step: 1e-15 relative
            mid = (lo + hi) / 2
            _, dm = _scan(act, np.array([np.exp(mid)]), sigma_b2, q_max)
            lo, hi = (mid, hi) if (dm[0] < 0) == below else (lo, mid)
        return CriticalPoint("chi_1 = 1", phase_params(act, float(np.exp(lo)), sigma_b2))
    best = good[np.argmin(np.abs(d[good]))]
    return CriticalPoint("nearest", phase_params(act, float(grid[best]), sigma_b2))


def _no_fixed_point(activation: Callable | str, sigma_b2: float, q_max: float) -> str:
    """Why no sigma_w2 is admissible, with the sigma_b2 that could help."""
    if sigma_b2 >= q_max:  # q* >= sigma_b2 whatever sigma_w2: above the admissible range
        fix = f"give sigma_b2 < {q_max:g} (the fixed point q* is at least sigma_b2)"
    elif sigma_b2 > 0:
        fix = "give another sigma_b2"
    else:
        fix = "give sigma_b2 > 0"
    return (f"init=critical with sigma_b2={sigma_b2:g}: activation={activation!r} has no "
            f"attracting fixed point q* in [{Q_MIN:g}, {q_max:g}] for any sigma_w2 in "
            f"[0.05, 1000]; {fix}")


@lru_cache(maxsize=256)
def _cached(name: str, fn: Callable, params: tuple, sigma_b2: float | None,
            q_max: float) -> CriticalPoint:
    return critical_point(name, sigma_b2, dict(params) or None, q_max)


def critical_for(activation: str, activation_params: dict | None = None,
                 sigma_b2: float | None = None, q_max: float = Q_MAX) -> CriticalPoint:
    """``critical_point`` for a registered activation name, cached on (name, its function,
    parameters, sigma_b2, q_max): a scheme drawing many layers or jobs pays ~0.1-1 s once."""
    if activation not in ACTIVATIONS:
        return critical_point(activation, sigma_b2, activation_params, q_max)  # says why
    params = tuple(sorted((k, v) for k, v in (activation_params or {}).items() if v is not None))
    return _cached(activation, ACTIVATIONS[activation], params, sigma_b2, q_max)
