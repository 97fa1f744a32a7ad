"""Bias recipes against torch: nn.Linear's own biases and torch.nn.init's distributions."""

from __future__ import annotations

import math

import pytest
import torch

from initlab.biases import make_bias

N_LAYERS, WIDTH = 200, 512  # 102,400 bias values from nn.Linear


@pytest.fixture(scope="module")
def linear_biases() -> torch.Tensor:
    """The biases nn.Linear(512, 512) draws by default, over many layers."""
    torch.manual_seed(0)
    return torch.cat([torch.nn.Linear(WIDTH, WIDTH).bias.detach() for _ in range(N_LAYERS)])


def test_torch_default_is_nn_linears_bias(linear_biases):
    recipe = make_bias("torch_default", fan_in=WIDTH)
    assert recipe.base == "uniform"
    # Support: every value inside the bound, and with n = 102,400 uniform draws the largest |b|
    # falls short of the bound by a fraction ~1/n (P[max < (1 - 1e-3) bound] = (1 - 1e-3)^n ~ 0).
    top = linear_biases.abs().max().item()
    assert top <= recipe.scale
    assert top >= recipe.scale * (1 - 1e-3)
    # Second moment: the sample mean of b^2 has relative sd sqrt(Var(U^2)) / E[U^2] / sqrt(n)
    # = sqrt(4/5) / sqrt(n) ~ 0.0028 for a uniform; 5 sd.
    n = linear_biases.numel()
    rel = abs(linear_biases.square().mean().item() / recipe.sigma_b2 - 1)
    assert rel < 5 * math.sqrt(0.8 / n)


@pytest.mark.parametrize(
    ("name", "params", "torch_fill"),
    [
        ("normal", {"sigma_b2": 0.05}, lambda b: torch.nn.init.normal_(b, 0.0, math.sqrt(0.05))),
        ("uniform", {"bound": 0.3}, lambda b: torch.nn.init.uniform_(b, -0.3, 0.3)),
        ("constant", {"value": 0.1}, lambda b: torch.nn.init.constant_(b, 0.1)),
        ("zero", {}, torch.nn.init.zeros_),
    ],
)
def test_sigma_b2_is_the_second_moment_of_torchs_draw(name, params, torch_fill):
    recipe = make_bias(name, WIDTH, params)
    b = torch_fill(torch.empty(200_000, dtype=torch.float64))
    # Relative sd of a sample second moment: sqrt(kurtosis - 1) / sqrt(n) <= sqrt(2 / n) ~ 0.0032
    # (normal: kurtosis 3; uniform 1.8; constant and zero: exact); 5 sd.
    assert b.square().mean().item() == pytest.approx(recipe.sigma_b2, rel=5 * math.sqrt(2 / 2e5),
                                                     abs=1e-15)
    assert b.mean().item() == pytest.approx(recipe.mean, abs=5 * math.sqrt(recipe.sigma_b2 / 2e5))


def test_bad_values_name_the_parameter_and_what_is_allowed():
    with pytest.raises(ValueError, match=r"bias\.sigma_b2=-1.0 is not allowed; .* >= 0"):
        make_bias("normal", WIDTH, {"sigma_b2": -1})
    with pytest.raises(ValueError, match=r"bias\.std is not a parameter of bias=normal; "
                                         r"allowed: sigma_b2"):
        make_bias("normal", WIDTH, {"std": 1})
    with pytest.raises(ValueError, match="bias='cosine' is not allowed; allowed: zero, normal"):
        make_bias("cosine", WIDTH)
