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


def test_tanh_with_unit_gain_decays_slowly():
    std = mean_field("tanh", 1.0, 100)["std"]
    assert np.all(np.diff(std[1:]) < 0)
    assert std[100] == pytest.approx(0.0712, abs=5e-4)
