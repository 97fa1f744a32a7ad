"""Mean-field theory of the chain: what an infinitely wide layer would do.

For zero-mean weights of variance ``sigma_w2 / fan_in`` and no bias, the
pre-activation of layer l is Gaussian with variance

    q_l = sigma_w2 * E[x_{l-1}^2],

and the post-activation moments are E[phi(h)] and E[phi(h)^2] for
h ~ N(0, q_l), computed by quadrature, so any activation works. The rule is
Gauss-Legendre on [-12, 0] and [0, 12] standard deviations rather than plain
Gauss-Hermite: ReLU-like activations have a kink at 0, where Gauss-Hermite
converges slowly (0.4 % error in E[relu] with 201 nodes); splitting there
makes each piece smooth, and the result exact to ~1e-12.
(Poole et al., "Exponential expressivity in deep neural networks through
transient chaos", NeurIPS 2016; Schoenholz et al., "Deep Information
Propagation", ICLR 2017.) Finite width adds fluctuations around this curve
that grow with depth/width (Hanin & Rolnick 2018).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from initlab.activations import get_activation


def _rule(points: int = 128, reach: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights w with sum(w * f(z)) = E[f(Z)], Z ~ N(0, 1), split at 0."""
    x, w = np.polynomial.legendre.leggauss(points)
    half = reach / 2 * (x + 1)  # [0, reach]
    nodes = np.concatenate([-half[::-1], half])
    weights = np.concatenate([w[::-1], w]) * reach / 2
    weights = weights * np.exp(-(nodes**2) / 2) / np.sqrt(2 * np.pi)
    return nodes, weights


_NODES, _WEIGHTS = _rule()


def gaussian_moments(act: Callable, q: float) -> tuple[float, float]:
    """(E[phi(h)], E[phi(h)^2]) for h ~ N(0, q)."""
    h = torch.from_numpy(np.sqrt(q) * _NODES)
    y = act(h).numpy()
    return float(_WEIGHTS @ y), float(_WEIGHTS @ (y * y))


def mean_field(
    activation: str,
    sigma_w2: float,
    depth: int,
    input_second_moment: float = 1.0,
    activation_params: dict | None = None,
    fixed_q: float | None = None,
) -> dict[str, np.ndarray]:
    """Predicted per-layer ``mean``, ``std`` and ``second_moment`` for layers 0..depth.

    Layer 0 is the input x_0 ~ N(0, input_second_moment). ``sigma_w2`` is
    fan_in * Var(W) of the scheme (1 for ``scaled``, 2 for ``kaiming``).
    ``fixed_q`` pins every pre-activation variance (LSUV normalizes it to 1).
    """
    act = get_activation(activation, activation_params)
    mean = np.zeros(depth + 1)
    second = np.zeros(depth + 1)
    second[0] = input_second_moment
    for layer in range(1, depth + 1):
        q = fixed_q if fixed_q is not None else sigma_w2 * second[layer - 1]
        if not np.isfinite(q) or q == 0.0:
            m, s = gaussian_moments(act, 0.0) if q == 0.0 else (np.nan, np.nan)
        else:
            m, s = gaussian_moments(act, q)
        mean[layer], second[layer] = m, s
    std = np.sqrt(np.maximum(second - mean**2, 0.0))
    return {"mean": mean, "std": std, "second_moment": second}


def critical_sigma_w2(activation: str, activation_params: dict | None = None) -> float:
    """sigma_w2 that makes q* = 1 a fixed point: 1 / E[phi(z)^2], z ~ N(0, 1)."""
    _, second = gaussian_moments(get_activation(activation, activation_params), 1.0)
    if not second > 0:
        raise ValueError(f"activation={activation!r} has E[phi(z)^2] = 0; no critical gain")
    return 1.0 / second


def for_chain(spec, draw) -> dict[str, np.ndarray] | None:
    """Mean-field curves for a spec and its draw; None where the theory does not apply
    (constant weights are not zero-mean)."""
    if draw.base == "constant":
        return None
    return mean_field(
        spec.activation,
        draw.sigma_w2,
        spec.depth,
        activation_params=spec.activation_params,
        fixed_q=1.0 if draw.normalize else None,
    )


def overflow_layer(sigma_w2: float, dtype: str = "float32", width: int = 512) -> float:
    """Layer at which a linear chain's largest value passes ``dtype``'s maximum.

    std_l = sigma_w^l, so ln(max) / ln(sigma_w) for the std itself (28.4 for
    N(0,1) weights at width 512 in float32); positive only when sigma_w2 > 1.
    """
    limit = float(np.finfo(np.dtype(dtype)).max)
    if sigma_w2 <= 1.0:
        return math.inf
    return math.log(limit) / (0.5 * math.log(sigma_w2))


def underflow_layer(sigma_w2: float, dtype: str = "float32") -> float:
    """Layer at which a linear chain's std falls below ``dtype``'s smallest subnormal."""
    tiny = float(np.finfo(np.dtype(dtype)).smallest_subnormal)
    if sigma_w2 >= 1.0:
        return math.inf
    if sigma_w2 == 0.0:
        return 1.0
    return math.log(tiny) / (0.5 * math.log(sigma_w2))
