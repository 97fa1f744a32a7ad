"""Mean-field theory of the chain h_l = W_l x_{l-1} + b_l, x_l = phi(h_l).

Modules: ``quadrature`` (Gaussian expectations of any activation, one input
and two), ``meanfield`` (per-layer mean/std/gradient curves beside the
measurement), ``phase`` (variance and correlation maps with a bias, their
fixed points q* and c*, chi_1, chi_c, depth scales xi_q and xi_c),
``critical`` (the chi_1 = 1 point for any activation), ``diagram`` (the
order-to-chaos phase diagram over sigma_w2 x sigma_b2). References: Poole et
al., "Exponential expressivity in deep neural networks through transient
chaos", NeurIPS 2016; Schoenholz et al., "Deep Information Propagation", ICLR
2017; Cho & Saul 2009 (arc-cosine kernel); Williams 1997 (erf kernel).

What "critical" means (``critical_point``; the rule in ``critical``): sigma_w2
with chi_1 = sigma_w2 E[phi'(h)^2] = 1 at the fixed point q* that unit-variance
inputs reach, q* in [1e-3, 100] and not repelling, at the activation's default
sigma_b2 (or the caller's); if chi_1 = 1 is out of reach, the admissible point
whose chi_1 is nearest 1. c_100 is the mean-field cosine at layer 100 from
inputs with cosine c_0 = 0.5 (``propagate``):

    activation  sigma_b2  sigma_w2  rule       q*      chi_1   chi_q   xi_c   c_100
    none        0         1         chi_1 = 1  1       1.0000  1.0000  inf    0.5000
    tanh        0.05      1.761     chi_1 = 1  0.57    1.0000  0.5182  inf    0.9389
    relu        0         2         chi_1 = 1  2       1.0000  1.0000  inf    0.9965
    leaky_relu  0         1.9998    chi_1 = 1  2       1.0000  1.0000  inf    0.9964
    sigmoid     0.05      103.13    chi_1 = 1  45.73   1.0000  0.0601  inf    0.9976
    gelu        0.2       1.9707    chi_1 = 1  4.471   1.0000  0.9932  inf    0.9932
    selu        0.05      0.90177   chi_1 = 1  0.8273  1.0000  0.7370  inf    0.9566
    silu        1         1.967     chi_1 = 1  39.39   1.0000  0.9867  inf    0.9968
    softplus    0.05      1.9953    nearest    100     0.9193  0.9967  11.88  1.0000

(leaky_relu with negative_slope 0.01: sigma_w2 = 2 / (1 + 0.01^2).)

- none, relu, leaky_relu: no bias and Kaiming's gain. The variance map is
  the identity (chi_q = 1, marginal): every q is a fixed point and the chain
  keeps the q it starts with; chi_1 = 1 exactly; c = 1 is marginally stable,
  so correlations creep to 1 algebraically (ReLU: 1 - c_l -> 9 pi^2 / (2 l^2))
  instead of exponentially. With a bias their q* is finite only for chi_1 < 1.
- tanh: Schoenholz et al.'s Fig. 1 point (sigma_b2 = 0.05, sigma_w2 = 1.76).
  Without a bias the edge is sigma_w2 = 1 with q* = 0 (the signal fades).
- sigmoid: phi' <= 1/4, so chi_1 = 1 needs sigma_w2 ~ 103 (q* ~ 46, units
  nearly saturated); the old 1 / E[phi(z)^2] gain (3.4) sits deep in the
  ordered phase (chi_1 ~ 0.15: two inputs merge within a few layers).
- gelu, silu: no attracting q* without a bias (f(q)/q rises from sigma_w2/4
  to sigma_w2/2). With one, E[phi'(h)^2] overshoots 1/2 at moderate q (GELU
  0.511 near q = 10, SiLU 0.508 near q = 43), so chi_1 = 1 is reached at a
  finite attracting q* just below sigma_w2 = 2, and only for a large enough
  bias (GELU sigma_b2 >~ 0.2, SiLU ~ 1; smaller biases keep q* small and
  chi_1 < 0.8). chi_q ~ 0.99: q approaches q* over ~100 layers (GELU:
  q_100 = 3.26 against q* = 4.47).
- selu: SELU's own point (sigma_w2 = 1, no bias) is slightly chaotic
  (chi_1 = 1.07, c* = 0); with sigma_b2 = 0.05 the edge is sigma_w2 = 0.90.
- softplus: E[phi'^2] = E[sigmoid(h)^2] < 1/2 and E[phi^2] > q/2 at every q,
  so sigma_w2 >= 2 diverges and every finite attracting q* has chi_1 < 1:
  chi_1 -> 1 only as q* -> inf. The rule takes q* = 100 (chi_1 = 0.92).
  No Gaussian (sigma_w2, sigma_b2) with a stable variance keeps two softplus
  inputs apart at depth 100 (even sigma_w2 = 2, sigma_b2 = 0 gives
  1 - c_100 = 2e-10): softplus is ordered.
"""

from initlab.theory.critical import DEFAULT_SIGMA_B2, CriticalPoint, critical_for, critical_point
from initlab.theory.diagram import chi1_curve, phase_diagram
from initlab.theory.meanfield import (
    critical_sigma_w2,
    crossing,
    fixed_point_slope,
    for_chain,
    hanin_rolnick,
    mean_field,
    overflow_layer,
    underflow_layer,
)
from initlab.theory.phase import (
    PhaseParams,
    c_star_at,
    correlation_slope,
    depth_scale,
    phase_params,
    propagate,
    reached_q,
    variance_fixed_points,
    variance_map,
)
from initlab.theory.quadrature import (
    derivative_second_moment,
    gaussian_moments,
    one_input,
    two_inputs,
)

__all__ = [
    "DEFAULT_SIGMA_B2", "CriticalPoint", "PhaseParams",
    "c_star_at", "chi1_curve", "correlation_slope", "critical_for", "critical_point",
    "critical_sigma_w2", "crossing", "depth_scale", "derivative_second_moment",
    "fixed_point_slope", "for_chain", "gaussian_moments", "hanin_rolnick", "mean_field",
    "one_input", "overflow_layer", "phase_diagram", "phase_params", "propagate", "reached_q",
    "two_inputs", "underflow_layer", "variance_fixed_points", "variance_map",
]
