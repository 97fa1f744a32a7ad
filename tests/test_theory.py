"""Mean-field theory against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from initlab.activations import get_activation
from initlab.theory import gaussian_moments, mean_field


def test_linear_chain_std_is_sigma_w_to_the_layer():
    for sigma_w2 in (0.5, 1.0, 2.0):
        std = mean_field("none", sigma_w2, 30)["std"]
        np.testing.assert_allclose(std, math.sqrt(sigma_w2) ** np.arange(31), rtol=1e-10)


def test_relu_halves_the_second_moment_when_sigma_w2_is_1():
    m2 = mean_field("relu", 1.0, 40)["second_moment"]
    np.testing.assert_allclose(m2, 0.5 ** np.arange(41), rtol=1e-10, atol=0)


def test_kaiming_relu_fixed_point():
    out = mean_field("relu", 2.0, 50)
    np.testing.assert_allclose(out["mean"][1:], 1 / math.sqrt(math.pi), rtol=1e-10)
    np.testing.assert_allclose(out["std"][1:], math.sqrt(1 - 1 / math.pi), rtol=1e-10)


def test_gaussian_moments_of_tanh_against_numerical_integration():
    q = 0.7
    z = np.linspace(-12, 12, 400_001)
    pdf = np.exp(-z**2 / 2) / math.sqrt(2 * math.pi)
    ref = np.trapezoid(np.tanh(math.sqrt(q) * z) ** 2 * pdf, z)
    mean, second = gaussian_moments(get_activation("tanh"), q)
    assert mean == pytest.approx(0.0, abs=1e-12)
    assert second == pytest.approx(ref, rel=1e-8)


def _trapezoid_tanh_chain(sigma_w2: float, sigma_b2: float, depth: int) -> np.ndarray:
    """q_l = sigma_w2 E[tanh(h)^2] + sigma_b2 iterated with a plain trapezoid rule on a
    uniform grid (independent of the Gauss-Legendre code); returns std of x_l."""
    z = np.linspace(-12, 12, 24_001)
    pdf = np.exp(-z**2 / 2) / math.sqrt(2 * math.pi)
    second, std = 1.0, [1.0]
    for _ in range(depth):
        x = np.tanh(math.sqrt(sigma_w2 * second + sigma_b2) * z)
        second = np.trapezoid(x**2 * pdf, z)
        std.append(math.sqrt(second - np.trapezoid(x * pdf, z) ** 2))
    return np.array(std)


def test_tanh_with_unit_gain_decays_slowly():
    """Against the trapezoid chain: the trapezoid rule on a smooth, Gaussian-decaying
    integrand with step 1e-3 is exact to far below 1e-13 (error ~ exp(-2 pi^2 / h^2)), the
    tails past 12 sd weigh 1e-32, and the map q -> E[tanh(sqrt(q) z)^2] has slope <= 1, so
    per-layer rounding (~1e-15) adds at most linearly over 100 layers: rtol 1e-10."""
    std = mean_field("tanh", 1.0, 100)["std"]
    assert np.all(np.diff(std[1:]) < 0)
    np.testing.assert_allclose(std, _trapezoid_tanh_chain(1.0, 0.0, 100), rtol=1e-10)


def test_mean_field_with_bias_against_the_trapezoid_chain():
    std = mean_field("tanh", 1.76, 50, sigma_b2=0.05)["std"]
    np.testing.assert_allclose(std, _trapezoid_tanh_chain(1.76, 0.05, 50), rtol=1e-10)


def test_linear_chain_with_bias_is_a_geometric_series():
    """q_l = sigma_w2 q_{l-1} + sigma_b2 exactly (the quadrature integrates z^2 exactly)."""
    q = 1.0
    expected = [1.0]
    for _ in range(20):
        q = 0.9 * q + 0.3
        expected.append(q)
    second = mean_field("none", 0.9, 20, sigma_b2=0.3)["second_moment"]
    np.testing.assert_allclose(second, expected, rtol=1e-12)


def test_an_odd_activations_predicted_mean_is_exactly_zero_at_every_scale():
    """E[phi(h)] = 0 for odd phi (none, tanh) by symmetry; the rule's nodes come in +-z
    pairs, so the prediction is exactly 0, not rounding noise times sqrt(q): N(0, 1)
    weights without an activation reach q ~ 512^100 (the column held +-1e123 before)."""
    for activation, sigma_w2 in (("none", 512.0), ("tanh", 512.0), ("tanh", 1.0)):
        curves = mean_field(activation, sigma_w2, 100)
        assert (curves["mean"] == 0).all(), activation
    relu = mean_field("relu", 2.0, 3)["mean"]  # not odd: sqrt(q / (2 pi)), here 1/sqrt(pi)
    assert relu[1:] == pytest.approx(1 / np.sqrt(np.pi), rel=1e-12)
