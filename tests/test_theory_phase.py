"""Variance and correlation maps with a bias, against closed forms (initlab.theory.phase).

Error budget used below: the two-input rule integrates each smooth piece with 64
Gauss-Legendre nodes (points=64) against a Gaussian; for the entire functions met here
(polynomials, arcsin-type kernels of erf, the pieces of ReLU split at its kink) that is
exact to rounding, measured 3e-15 (ReLU) and 3e-15 (erf) at 201 values of c. We allow
1e-12 per map evaluation (300x margin), and since each map below has slope <= 1 near the
tracked values, errors add at most linearly over depth: depth * 1e-12.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initlab.theory import (
    correlation_slope,
    phase_params,
    propagate,
    two_inputs,
    variance_fixed_points,
)

PER_MAP = 1e-12


def arccos_map(c):
    """ReLU, sigma_w2 = 2, no bias: the arc-cosine kernel of degree 1 (Cho & Saul 2009)."""
    return (np.sqrt(1 - c**2) + (np.pi - np.arccos(c)) * c) / np.pi


C_VALUES = np.concatenate([np.linspace(-1, 1, 41), [-1 + 1e-12, -1 + 1e-6, 1 - 1e-6, 1 - 1e-12]])


# ------------------------------------------------------------------------ ReLU


@pytest.mark.parametrize("q", [1.0, 3.7, 1e-4])
def test_relu_correlation_map_is_the_arc_cosine_kernel(q):
    """M(c) is independent of q for a positively homogeneous phi; M'(c) = (pi - arccos c)/pi
    (the derivative of the kernel, = 2 E[1{u1>0} 1{u2>0}]). Also finite at c = +-1."""
    m, dm = correlation_slope(torch.relu, 2.0, 0.0, q, C_VALUES)
    np.testing.assert_allclose(m, arccos_map(C_VALUES), rtol=0, atol=PER_MAP)
    np.testing.assert_allclose(dm, (np.pi - np.arccos(C_VALUES)) / np.pi, rtol=0, atol=PER_MAP)


def test_relu_chain_correlations_follow_the_iterated_kernel_and_chi_1_is_one():
    out = propagate("relu", 2.0, 0.0, depth=40, c0=0.3)
    expected = [0.3, 0.3]  # layer 1: (sigma_w2 c0 + 0) / sigma_w2
    for _ in range(39):
        expected.append(arccos_map(expected[-1]))
    np.testing.assert_allclose(out["c"], expected, rtol=0, atol=40 * PER_MAP)
    np.testing.assert_allclose(out["q"], 2.0 ** np.minimum(np.arange(41), 1), rtol=1e-12)
    p = phase_params("relu", 2.0, 0.0)
    assert p.chi_1 == pytest.approx(1.0, abs=PER_MAP)  # sigma_w2 E[1{h>0}] = 2 / 2
    assert p.c_star == 1.0 and p.chi_c == pytest.approx(1.0, abs=PER_MAP)
    assert not p.q_attracting and not p.c_attracting  # marginal: slope 1, neither way
    assert math.isinf(p.xi_c)


def test_relu_without_a_fixed_point():
    """chi_1 = sigma_w2 / 2 at every q; above 2 the variance grows without bound (q* = inf),
    below 2 with no bias it vanishes (q* = 0), with a bias q* = sigma_b2 / (1 - sigma_w2/2)."""
    grow = phase_params("relu", 3.0, 0.1)
    assert math.isinf(grow.q_star) and grow.chi_1 == pytest.approx(1.5, rel=1e-12)
    assert phase_params("relu", 1.0, 0.0).q_star == 0.0
    held = phase_params("relu", 1.5, 0.1)
    assert held.q_star == pytest.approx(0.1 / (1 - 0.75), rel=1e-12)
    assert held.q_attracting and held.chi_q == pytest.approx(0.75, rel=1e-12)


# ------------------------------------------------------------------------ erf


def erf_kernel(q, c):
    """E[erf(u1) erf(u2)], variances q, correlation c (Williams 1997)."""
    return 2 / np.pi * np.arcsin(2 * q * c / (1 + 2 * q))


def erf_chain(sigma_w2, sigma_b2, depth, c0):
    q, c = [1.0, sigma_w2 + sigma_b2], [c0, (sigma_w2 * c0 + sigma_b2) / (sigma_w2 + sigma_b2)]
    for _ in range(depth - 1):
        nq = sigma_w2 * erf_kernel(q[-1], 1.0) + sigma_b2
        c.append((sigma_w2 * erf_kernel(q[-1], c[-1]) + sigma_b2) / nq)
        q.append(nq)
    return np.array(q), np.array(c)


ERF_POINTS = [(1.5, 0.1), (4.0, 0.05), (0.8, 0.0), (2.5, 0.3)]


@pytest.mark.parametrize(("sigma_w2", "sigma_b2"), ERF_POINTS)
def test_erf_plug_in_follows_williams_closed_form(sigma_w2, sigma_b2):
    """A plug-in activation (torch.erf, not in the registry) through the joint recursion.
    q is well conditioned (map slope < 1 here); c is compared in absolute terms."""
    out = propagate(torch.erf, sigma_w2, sigma_b2, depth=30, c0=0.5)
    q, c = erf_chain(sigma_w2, sigma_b2, 30, 0.5)
    np.testing.assert_allclose(out["q"], q, rtol=30 * PER_MAP)
    np.testing.assert_allclose(out["c"], c, rtol=0, atol=30 * PER_MAP)


def erf_fixed_point(sigma_w2, sigma_b2):
    """q* = sigma_w2 (2/pi) arcsin(2q/(1+2q)) + sigma_b2 by bisection on the closed form
    (the map is increasing and concave, so f(q) - q changes sign once on (0, inf) when
    sigma_b2 > 0; with sigma_b2 = 0 and sigma_w2 (4/pi) <= 1, q* = 0)."""
    g = lambda q: sigma_w2 * erf_kernel(q, 1.0) + sigma_b2 - q  # noqa: E731
    lo, hi = 1e-300, 1e6
    if g(lo) <= 0:
        return 0.0
    for _ in range(200):
        mid = math.sqrt(lo * hi) if hi / lo > 4 else (lo + hi) / 2
        lo, hi = (mid, hi) if g(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize(("sigma_w2", "sigma_b2"), ERF_POINTS)
def test_erf_fixed_points_and_slopes(sigma_w2, sigma_b2):
    """q*, chi_1 = sigma_w2 (4/pi) / sqrt(1 + 4q), chi_q = f'(q*) = sigma_w2 (4/pi) /
    ((1 + 2q) sqrt(1 + 4q)), and in the chaotic phase c* and chi_c = sigma_w2 (4/pi) /
    sqrt((1 + 2q)^2 - (2qc)^2) against the closed form. Rounding in f(q*) - q* (1e-15)
    moves q* by 1e-15 / (1 - chi_q): rtol 1e-10 covers chi_q up to 0.9999."""
    p = phase_params(torch.erf, sigma_w2, sigma_b2)
    q = erf_fixed_point(sigma_w2, sigma_b2)
    assert p.q_star == pytest.approx(q, rel=1e-10, abs=1e-300)
    qe = max(q, 1e-12)  # q* = 0: the slopes are the limits (the code takes them at 1e-12)
    chi_1 = sigma_w2 * 4 / np.pi / math.sqrt(1 + 4 * qe)
    assert p.chi_1 == pytest.approx(chi_1, rel=1e-10)
    assert p.chi_q == pytest.approx(sigma_w2 * 4 / np.pi / ((1 + 2 * qe) * math.sqrt(1 + 4 * qe)),
                                    rel=1e-10)
    assert p.q_attracting == (p.chi_q < 1)
    if chi_1 <= 1:
        assert p.c_star == 1.0 and p.chi_c == pytest.approx(chi_1, rel=1e-10)
        return
    # chaotic: the closed-form map's fixed point below 1 by bisection (convex, one root)
    m = lambda c: (sigma_w2 * erf_kernel(q, c) + sigma_b2) / q  # noqa: E731
    lo, hi = 0.0, 1.0 - 1e-9
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if m(mid) > mid else (lo, mid)
    c_star = (lo + hi) / 2
    chi_c = sigma_w2 * 4 / np.pi / math.sqrt((1 + 2 * q) ** 2 - (2 * q * c_star) ** 2)
    # c* error = map error / (1 - chi_c): 1e-12 / (1 - chi_c)
    assert p.c_star == pytest.approx(c_star, abs=PER_MAP / (1 - chi_c))
    assert p.chi_c == pytest.approx(chi_c, rel=1e-9)
    assert p.c_attracting and p.xi_c == pytest.approx(-1 / math.log(chi_c), rel=1e-8)


def test_erf_derivative_moment_and_two_input_kernel_at_the_extremes():
    """E[erf'(h)^2] = (4/pi) / sqrt(1 + 4q); the kernel at c = -1, 0, 1 (no 0/0). Up to
    q = 10 (erf(3.2 z)); steeper (q = 50) needs more than 64 points (measured 5e-10)."""
    for q in (0.01, 1.0, 10.0):
        c = np.array([-1.0, -1 + 1e-13, 0.0, 1 - 1e-13, 1.0])
        r = two_inputs(torch.erf, q, c)
        np.testing.assert_allclose(r["k"], erf_kernel(q, c), rtol=0, atol=PER_MAP)
        np.testing.assert_allclose(r["dk"], 4 / np.pi / np.sqrt((1 + 2 * q) ** 2
                                                                 - (2 * q * c) ** 2),
                                   rtol=1e-11)
        assert r["dk"][-1] == pytest.approx(4 / np.pi / math.sqrt(1 + 4 * q), rel=1e-11)


# ------------------------------------------------------------------------ linear


@pytest.mark.parametrize(("sigma_w2", "sigma_b2", "c0"), [(1.0, 0.0, 0.5), (0.7, 0.2, -0.3),
                                                         (1.3, 0.05, 0.9)])
def test_linear_chain_against_the_literal_recursion(sigma_w2, sigma_b2, c0):
    """No activation: q_l = sigma_w2 q_{l-1} + sigma_b2, c_l = (sigma_w2 q_{l-1} c_{l-1} +
    sigma_b2) / q_l; the quadrature integrates these quadratics exactly (rounding only)."""
    q, c = [1.0], [c0]
    for _ in range(25):
        nq = sigma_w2 * q[-1] + sigma_b2
        c.append((sigma_w2 * q[-1] * c[-1] + sigma_b2) / nq)
        q.append(nq)
    out = propagate("none", sigma_w2, sigma_b2, depth=25, c0=c0)
    np.testing.assert_allclose(out["q"], q, rtol=1e-12)
    np.testing.assert_allclose(out["c"], c, rtol=0, atol=25 * PER_MAP)


def test_layer_one_convention_for_any_activation():
    """Layer 0 is the inputs (cosine c0); layer 1 the first pre-activation:
    c_1 = (sigma_w2 c0 + sigma_b2) / (sigma_w2 + sigma_b2), whatever phi is."""
    for act in ("tanh", "sigmoid", "softplus", torch.erf):
        out = propagate(act, 1.7, 0.2, depth=3, c0=0.4)
        assert out["c"][0] == 0.4 and out["q"][0] == 1.0
        assert out["c"][1] == pytest.approx((1.7 * 0.4 + 0.2) / 1.9, rel=1e-15)
        assert out["q"][1] == pytest.approx(1.9, rel=1e-15)


def test_propagate_is_vectorised_over_cells():
    """A grid of (sigma_w2, sigma_b2) gives the same numbers as one cell at a time (the same
    arithmetic on different array shapes: allow a few ulps per layer)."""
    w = np.array([[1.0, 2.0], [3.0, 0.5]])
    b = np.array([[0.0, 0.05], [0.1, 0.3]])
    grid = propagate("tanh", w, b, depth=10, c0=0.5)
    for i in range(2):
        for j in range(2):
            one = propagate("tanh", w[i, j], b[i, j], depth=10, c0=0.5)
            np.testing.assert_allclose(grid["c"][:, i, j], one["c"], rtol=1e-13)
            np.testing.assert_allclose(grid["q"][:, i, j], one["q"], rtol=1e-13)


def test_phase_params_are_plain_json_data():
    import json

    p = phase_params("tanh", 3.0, 0.05)
    data = json.loads(json.dumps(p.as_dict()))  # inf serialises as Infinity
    assert set(data) >= {"q_star", "c_star", "chi_1", "chi_c", "xi_q", "xi_c",
                         "q_attracting", "c_attracting"}
    assert all(type(v) in (float, bool) for v in p.as_dict().values())


def test_all_variance_fixed_points_with_their_stability():
    """erf, sigma_w2 = 4, no bias: q = 0 repels (slope sigma_w2 * 4/pi = 5.09) and the
    closed-form positive root attracts; GELU, sigma_w2 = 2.5, no bias: q = 0 attracts with
    slope sigma_w2 / 4 (GELU'(0) = 1/2) and the positive root repels (f(q)/q rises through
    1); ReLU with sigma_w2 > 2 and a bias has none (the variance grows without bound)."""
    points = variance_fixed_points(torch.erf, 4.0, 0.0)
    assert [q for q, _ in points][0] == 0.0 and len(points) == 2
    assert points[0][1] == pytest.approx(4 * 4 / np.pi, rel=1e-9)  # the limit, taken at 1e-12
    assert points[1][0] == pytest.approx(erf_fixed_point(4.0, 0.0), rel=1e-10)
    assert points[1][1] < 1
    gelu = variance_fixed_points("gelu", 2.5, 0.0)
    assert len(gelu) == 2 and gelu[0] == (0.0, pytest.approx(2.5 / 4, rel=1e-9))
    assert gelu[1][1] > 1
    assert variance_fixed_points("relu", 3.0, 0.1) == []
