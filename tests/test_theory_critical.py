"""The edge of chaos (initlab.theory.critical, .diagram) against independent computations.

The independent reference for "chi_1 = 1 at an attracting fixed point" is a plain
trapezoid rule on a uniform grid of step 1e-4 over each half [-12, 0], [0, 12] sd, not the
Gauss-Legendre code. Its error: spectrally small for smooth integrands; a kink of phi or a
jump of phi' at 0 (ReLU, leaky ReLU, SELU) sits at the halves' shared end, evaluated at
+-1e-200 so each half sees its own one-sided phi', and Euler-Maclaurin leaves h^2 / 12 *
(the integrand's end derivatives) ~ 1e-9. So 1e-7 (relative) is the tolerance for
f(q*) = q* and chi_1 = 1 checked this way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initlab.activations import get_activation
from initlab.theory import (
    chi1_curve,
    critical_for,
    critical_point,
    phase_diagram,
    phase_params,
    propagate,
)

BUILTINS = ["none", "tanh", "relu", "leaky_relu", "sigmoid", "gelu", "selu", "silu",
            "softplus"]
TRAPEZOID = 1e-7
HALF = np.linspace(0, 12, 120_001)
HALF[0] = 1e-200  # one-sided at the kink


def trapezoid_moments(act, q):
    """(E[phi(h)^2], E[phi'(h)^2], d E[phi^2] / dq) for h ~ N(0, q) by the trapezoid rule."""
    total = np.zeros(3)
    for z in (HALF, -HALF):
        pdf = np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
        h = torch.from_numpy(math.sqrt(q) * z).requires_grad_(True)
        y = act(h)
        (dy,) = torch.autograd.grad(y.sum(), h)
        y, dy = y.detach().numpy(), dy.numpy()
        total += np.abs([np.trapezoid(y**2 * pdf, z), np.trapezoid(dy**2 * pdf, z),
                         np.trapezoid(y * dy * z * pdf, z) / math.sqrt(q)])
    return tuple(total)


@pytest.fixture(scope="module")
def table():
    return {name: critical_point(name) for name in BUILTINS}


@pytest.mark.parametrize("name", BUILTINS)
def test_critical_point_is_a_fixed_point_with_chi_1_one_by_the_trapezoid_rule(table, name):
    point = table[name].phase
    act = get_activation(name)
    m2, d2, dm2 = trapezoid_moments(act, point.q_star)
    assert point.sigma_w2 * m2 + point.sigma_b2 == pytest.approx(point.q_star, rel=TRAPEZOID)
    assert point.sigma_w2 * dm2 <= 1 + TRAPEZOID  # attracts, or marginal (ReLU, none)
    if table[name].rule == "chi_1 = 1":
        assert point.sigma_w2 * d2 == pytest.approx(1.0, rel=TRAPEZOID)
    else:  # softplus: chi_1 < 1 at every finite attracting q*; the rule stops at q_max
        assert name == "softplus" and point.q_star == pytest.approx(100.0, rel=1e-6)
        assert point.sigma_w2 * d2 < 1


def test_cached_lookup_by_name_is_the_same_point(table):
    assert critical_for("tanh") == table["tanh"]
    assert critical_for("tanh") is critical_for("tanh", {})  # cached
    a = {"negative_slope": 0.2}
    assert critical_for("leaky_relu", a).sigma_w2 == pytest.approx(2 / 1.04, rel=1e-12)
    with pytest.raises(ValueError, match="not a known activation"):
        critical_for("no_such_activation")


def test_marginal_activations_get_kaiming_and_no_bias(table):
    """ReLU: chi_1 = sigma_w2 / 2, leaky: sigma_w2 (1 + a^2) / 2, linear: sigma_w2."""
    assert table["relu"].sigma_w2 == pytest.approx(2.0, rel=1e-12)
    assert table["leaky_relu"].sigma_w2 == pytest.approx(2 / (1 + 0.01**2), rel=1e-12)
    assert table["none"].sigma_w2 == pytest.approx(1.0, rel=1e-12)
    a = 0.2
    leaky = critical_point("leaky_relu", activation_params={"negative_slope": a})
    assert leaky.sigma_w2 == pytest.approx(2 / (1 + a**2), rel=1e-12)
    for name in ("relu", "leaky_relu", "none"):
        assert table[name].sigma_b2 == 0.0


def test_mean_field_correlations_do_not_collapse_at_the_critical_points(table):
    """From c0 = 0.5, c_100 < 1 - 1e-3 for every activation but softplus, whose chi_1 < 1 at
    every stable variance makes two inputs merge (1 - c_100 ~ 1e-10). The margins are
    >= 1.4e-3 against quadrature errors <= 1e-10 (test_theory_phase)."""
    for name, point in table.items():
        c = propagate(name, point.sigma_w2, point.sigma_b2, depth=100, c0=0.5)["c"]
        if name == "softplus":
            assert 1 - c[100] < 1e-6
        else:
            assert c[100] < 1 - 1e-3, name


def test_tanh_edge_at_schoenholz_fig_1():
    """Schoenholz et al. 2017, Fig. 1: at sigma_b2 = 0.05 the transition sits at sigma_w2 ~
    1.76. The figure's axis is read to about +-0.05 (a tick every 0.5 on a 1-4 axis)."""
    point = critical_point("tanh", sigma_b2=0.05)
    assert point.sigma_w2 == pytest.approx(1.76, abs=0.05)
    assert point.phase.chi_1 == pytest.approx(1.0, abs=1e-10)
    assert point.phase.q_attracting and point.phase.c_star == 1.0


def test_tanh_edge_goes_to_one_as_the_bias_vanishes():
    """Small q: E[tanh^2] = q - 2q^2 + 17q^3/3, E[tanh'^2] = 1 - 2q + 7q^2, so chi_1 = 1 at
    the fixed point needs sigma_w2 = 1 + 2q + O(q^2) with sigma_b2 = 4q^3/3 + O(q^4): the
    edge is 1 + 2 (3 sigma_b2 / 4)^(1/3) (1 + O(q)). q = 9e-4 and 9e-5 below: relative
    error of the excess O(q) ~ 1e-3; we allow 1e-2. At sigma_b2 = 0 it is 1 (q* -> 0):
    above 1, q* = (sigma_w2 - 1) / 2 and chi_1 - 1 = 7 q*^2, so rounding (~1e-14) in chi_1
    hides sigma_w2 - 1 below ~1e-7: allow 1e-6."""
    b = np.array([0.0, 1e-9, 1e-12])
    edge = chi1_curve("tanh", b, np.linspace(0.5, 4, 71))
    assert edge[0] == pytest.approx(1.0, abs=1e-6)
    excess = 2 * (3 * b[1:] / 4) ** (1 / 3)
    np.testing.assert_allclose(edge[1:] - 1, excess, rtol=1e-2)


def test_no_attracting_fixed_point_is_an_error():
    """GELU without a bias: f(q)/q rises from sigma_w2/4 to sigma_w2/2, so every positive
    fixed point repels (initlab.theory docstring); critical_point says so."""
    with pytest.raises(ValueError, match="no attracting fixed point"):
        critical_point("gelu", sigma_b2=0.0)


def test_plug_in_activation_gets_a_critical_point():
    """erf (not in the registry): chi_1 = sigma_w2 (4/pi) / sqrt(1 + 4 q*) = 1 and
    q* = sigma_w2 (2/pi) arcsin(2q*/(1+2q*)) + sigma_b2 in closed form (Williams 1997)."""
    point = critical_point(torch.erf, sigma_b2=0.05).phase
    q, w = point.q_star, point.sigma_w2
    assert w * 4 / math.pi / math.sqrt(1 + 4 * q) == pytest.approx(1.0, rel=1e-10)
    assert w * 2 / math.pi * math.asin(2 * q / (1 + 2 * q)) + 0.05 == pytest.approx(q, rel=1e-10)


def test_phase_diagram_agrees_with_the_pointwise_theory():
    """The vectorised grid (24-point rule, c* by vectorised Newton) against phase_params
    (64 points) and critical_point (a separate search): the 24-point rule errs by <= 3e-10
    for tanh (measured against 96 points), which moves c* by <= 3e-10 / (1 - chi_c); cells
    with chi_c < 0.99 are compared to 1e-6. The edge is a bisection to 1e-13 on both sides."""
    w, b = np.linspace(0.5, 4, 8), np.array([0.0, 0.05, 0.3])
    grid = phase_diagram("tanh", w, b)
    assert grid["chi_1"].shape == grid["c_star"].shape == (3, 8)
    for i, bias in enumerate(b):
        for j, gain in enumerate(w):
            p = phase_params("tanh", gain, bias)
            assert grid["chi_1"][i, j] == pytest.approx(p.chi_1, rel=1e-9)
            if p.chi_c < 0.99:
                assert grid["c_star"][i, j] == pytest.approx(p.c_star, abs=1e-6)
            assert (grid["c_star"][i, j] == 1.0) == (grid["chi_1"][i, j] <= 1 + 1e-10)
    assert grid["edge_sigma_w2"][1] == pytest.approx(critical_point("tanh", 0.05).sigma_w2,
                                                     rel=1e-9)
    assert grid["edge_sigma_w2"][0] == pytest.approx(1.0, abs=1e-6)  # see the test above
