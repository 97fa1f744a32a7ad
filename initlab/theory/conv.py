"""Mean-field theory of a chain of valid k x k convolutions, x_l = phi(conv_l(x_{l-1}) + b_l).

Forward: every output value of a valid (unpadded) convolution is a sum over
fan_in = C k^2 inputs (``C`` channels, a k x k patch) with zero-mean weights
of variance sigma_w2 / fan_in, so its pre-activation has

    q_l = sigma_w2 * E[x_{l-1}^2] + sigma_b2,

the chain's map (``meanfield.mean_field``) with the chain's sigma_w2 = fan_in *
Var(W): sharing a kernel across positions changes no single value's
distribution. Two inputs x, x' meet only at the same position (the weights of
different kernel taps are independent), so their covariance follows the
chain's correlation map too (``phase.propagate``; Xiao et al., "Dynamical
isometry and a mean field theory of CNNs", ICML 2018, for stationary inputs).

Backward: an input position of a valid convolution feeds up to k^2 outputs;
near the border fewer, and the output is (k - 1) smaller on each side. Summed
over positions, sum_p E[g_{l-1}(p)^2] = sigma_w2 E[phi'(h)^2] sum_o E[g_l(o)^2]
exactly (each output reads k^2 inputs), so the *mean* square gradient of a
layer of side s_{l-1} = s_l + k - 1 is the chain's times (s_l / s_{l-1})^2.
Over the chain the factors telescope: the gradient std at layer l is the
chain's times s_L / s_l (seed 001's 199 -> 1 chain: 1/199 at the input).
"""

from __future__ import annotations

import numpy as np

from initlab.theory.meanfield import mean_field
from initlab.theory.phase import propagate


def conv_chain_curves(activation: str, sigma_w2: float, sigma_b2: float, sizes: list[int],
                      activation_params: dict | None = None, q0: float = 1.0,
                      c0: float | None = None) -> dict[str, np.ndarray]:
    """Per-layer ``mean``, ``std``, ``corr`` and ``grad_std`` (layers 0..depth) of a valid
    conv chain whose signal has side ``sizes[l]`` at layer l (``sizes[0]``: the input).

    ``q0``: the inputs' E[x_0^2]; ``c0``: their cosine (None: one input per trial, ``corr``
    NaN). ``corr`` is the pre-activations' cosine (the inputs' at layer 0), as the chain's.
    ``grad_std``: the chain's, times s_L / s_l (the border effect, module docstring), for
    a loss <g, x_L> with g ~ N(0, I).
    """
    depth = len(sizes) - 1
    curves = mean_field(activation, sigma_w2, depth, input_second_moment=q0,
                        activation_params=activation_params, sigma_b2=sigma_b2)
    side = np.asarray(sizes, dtype=float)
    curves["grad_std"] = curves["grad_std"] * side[-1] / side
    if c0 is None:
        curves["corr"] = np.full(depth + 1, np.nan)
    else:
        curves["corr"] = propagate(activation, sigma_w2, sigma_b2, depth, c0=float(c0),
                                   input_second_moment=q0,
                                   activation_params=activation_params)["c"]
    return curves
