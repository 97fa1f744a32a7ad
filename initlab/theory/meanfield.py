"""Mean-field theory of the chain: what an infinitely wide layer would do.

For zero-mean weights of variance ``sigma_w2 / fan_in`` and biases of
variance ``sigma_b2`` (0: none), the pre-activation of layer l is Gaussian
with variance

    q_l = sigma_w2 * E[x_{l-1}^2] + sigma_b2,

and the post-activation moments are E[phi(h)] and E[phi(h)^2] for
h ~ N(0, q_l), computed by quadrature (``initlab.theory.quadrature``), so any
activation works. Two inputs, fixed points and the phase diagram: ``phase``,
``critical``, ``diagram``.
(Poole et al., "Exponential expressivity in deep neural networks through
transient chaos", NeurIPS 2016; Schoenholz et al., "Deep Information
Propagation", ICLR 2017.) Finite width adds fluctuations around this curve
that grow with depth/width (Hanin & Rolnick 2018).
"""

from __future__ import annotations

import math

import numpy as np

from initlab.activations import get_activation
from initlab.theory.quadrature import derivative_second_moment, gaussian_moments


def mean_field(
    activation: str,
    sigma_w2: float,
    depth: int,
    input_second_moment: float = 1.0,
    activation_params: dict | None = None,
    fixed_q: float | None = None,
    sigma_b2: float = 0.0,
) -> dict[str, np.ndarray]:
    """Predicted per-layer ``mean``, ``std`` and ``second_moment`` for layers 0..depth.

    Layer 0 is the input x_0 ~ N(0, input_second_moment). ``sigma_w2`` is
    fan_in * Var(W) of the scheme (1 for ``scaled``, 2 for ``kaiming``),
    ``sigma_b2`` the bias variance. ``fixed_q`` pins every pre-activation
    variance (LSUV normalizes it to 1). The backward gain sigma_w2 E[phi'(h)^2]
    does not involve the bias except through q.
    """
    act = get_activation(activation, activation_params)
    mean = np.zeros(depth + 1)
    second = np.zeros(depth + 1)
    chi = np.full(depth + 1, np.nan)  # backward gain of layer l: E[g_{l-1}^2] / E[g_l^2]
    second[0] = input_second_moment
    for layer in range(1, depth + 1):
        q = fixed_q if fixed_q is not None else sigma_w2 * second[layer - 1] + sigma_b2
        gain = q / second[layer - 1] if fixed_q is not None and second[layer - 1] > 0 \
            else sigma_w2
        if np.isfinite(q):
            chi[layer] = gain * derivative_second_moment(act, q)
        if not np.isfinite(q) or q == 0.0:
            m, s = gaussian_moments(act, 0.0) if q == 0.0 else (np.nan, np.nan)
        else:
            m, s = gaussian_moments(act, q)
        mean[layer], second[layer] = m, s
    std = np.sqrt(np.maximum(second - mean**2, 0.0))
    grad = np.ones(depth + 1)  # E[(dL/dx_l)^2] for g_L ~ N(0, I), going back from the output
    with np.errstate(over="ignore", invalid="ignore"):
        for layer in range(depth, 0, -1):
            grad[layer - 1] = chi[layer] * grad[layer]
    return {"mean": mean, "std": std, "second_moment": second, "grad_std": np.sqrt(grad)}


def critical_sigma_w2(activation: str, activation_params: dict | None = None) -> float:
    """The gain of ``init=critical``: sigma_w2 = 1 / E[phi(z)^2], z ~ N(0, 1).

    It makes q* = 1 a fixed point of q_l = sigma_w2 E[phi(sqrt(q_{l-1}) z)^2].
    Whether the chain *settles* there depends on the slope of that map at q*
    (``fixed_point_slope``): below 1 it attracts (tanh, sigmoid, softplus,
    SELU), at 1 it is marginal (ReLU, leaky ReLU, no activation). For GELU and
    SiLU it is above 1: without a bias their map q -> f(q) has no attracting
    fixed point for any gain (f(q)/q rises from sigma_w2/4 at small q to
    sigma_w2/2 at large q), so a deep chain drifts to 0 or infinity whatever
    Gaussian gain it gets; critical picks the fixed point all the same.
    """
    act = get_activation(activation, activation_params)
    _, second = gaussian_moments(act, 1.0)
    if not second > 0:
        raise ValueError(f"activation={activation!r} has E[phi(z)^2] = 0; no critical gain")
    return 1.0 / second


def fixed_point_slope(activation: str, activation_params: dict | None = None,
                      step: float = 1e-4) -> float:
    """dq_l / dq_{l-1} at q* = 1 under the critical gain: < 1 attracts, > 1 repels."""
    act = get_activation(activation, activation_params)
    sigma_w2 = critical_sigma_w2(activation, activation_params)
    up, down = gaussian_moments(act, 1 + step)[1], gaussian_moments(act, 1 - step)[1]
    return sigma_w2 * (up - down) / (2 * step)


def for_chain(spec, recipe) -> dict[str, np.ndarray] | None:
    """Mean-field curves for a spec and its recipe; None where the theory does not apply
    (constant weights or a constant bias are not zero-mean).

    ``mean``, ``std``, ``grad_std`` by layer, and ``corr``: the cosine of two
    inputs' pre-activations (layer 0: the inputs' c0), tracked jointly with the
    variance (``phase.propagate``); NaN with one input per trial, under LSUV (its
    rescaling is not in the map) and with shared weights.
    """
    bias = spec.bias_recipe()
    if recipe.base == "constant" or bias.base == "constant":
        return None
    curves = mean_field(
        spec.activation,
        recipe.sigma_w2,
        spec.depth,
        activation_params=spec.activation_params,
        fixed_q=1.0 if recipe.normalize else None,
        sigma_b2=bias.sigma_b2,
    )
    if recipe.normalize or spec.batch < 2 or spec.weights == "shared":
        # one input has no pair; LSUV's rescaling is not in the map; one matrix reused at
        # every layer breaks the independence between layers that the correlation map assumes
        curves["corr"] = np.full(spec.depth + 1, np.nan)
    else:
        from initlab.theory.phase import propagate

        curves["corr"] = propagate(spec.activation, recipe.sigma_w2, bias.sigma_b2, spec.depth,
                                   c0=float(spec.input_correlation),
                                   activation_params=spec.activation_params)["c"]
    return curves


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


def crossing(std: np.ndarray, level: float) -> float | None:
    """Fractional layer where a std curve crosses ``level`` (log-linear interpolation)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.where(std > 0, std, np.nan))
    target = math.log(level)
    for layer in range(1, len(logs)):
        a, b = logs[layer - 1], logs[layer]
        if not (np.isfinite(a) and np.isfinite(b)) or a == b:
            continue
        if (a - target) * (b - target) <= 0:
            return layer - 1 + (target - a) / (b - a)
    return None


def hanin_rolnick(spec, recipe) -> tuple[float, float] | None:
    """Predicted (mean, variance) of ln(|x_L|^2 / |x_0|^2) over weight draws, or None.

    Hanin & Rolnick, "How to start training: the effect of initialization and
    architecture", NeurIPS 2018; with beta = sum_l 1/n_l = depth / width and
    Gaussian weights of variance sigma_w2 / fan_in:

    * no activation: mean depth * ln(sigma_w2) - beta,         variance 2 beta;
    * ReLU:          mean depth * ln(sigma_w2 / 2) - 5 beta/2, variance 5 beta.

    Given only for those two cases (other activations have no closed form).
    """
    if recipe.base != "normal" or spec.weights != "fresh" or recipe.normalize:
        return None
    beta = spec.depth / spec.width
    if spec.activation == "none":
        return spec.depth * math.log(recipe.sigma_w2) - beta, 2 * beta
    if spec.activation == "relu":
        return spec.depth * math.log(recipe.sigma_w2 / 2) - 2.5 * beta, 5 * beta
    return None
