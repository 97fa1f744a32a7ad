"""The seed's table (shared/seeds/001) as regression tests.

One 100-layer run is one sample of a wide distribution (finite width adds
fluctuations that grow with depth/width, Hanin & Rolnick 2018), so each
check runs T trials and compares the *median* over trials with mean-field
theory (``initlab.theory``) shifted by the finite-width correction, inside a
band of 4 standard errors of a median plus a small allowance for the
approximations. ln(std^2) of a trial's final layer is approximately normal with

    Gaussian linear layers, Var(W) = 1/n:  mean -beta,     variance 2*beta
    He-initialised ReLU layers:             mean -5*beta/2, variance 5*beta

for beta = depth / width (Hanin & Rolnick, "Which neural net architectures
give rise to exploding and vanishing gradients?", NeurIPS 2018).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from initlab.chain import ChainResult, run_chain
from initlab.spec import ChainSpec
from initlab.theory import mean_field
from initlab.verdict import Thresholds, overall, trial_verdicts

WIDTH, DEPTH, TRIALS = 512, 100, 32
BETA = DEPTH / WIDTH
SLACK = 0.1  # allowance, in ln(std), for O(beta^2) terms and the tanh/ReLU approximations


@cache
def journey(init: str, activation: str, std: float | None = None, trials: int = TRIALS,
            batch: int = 1) -> ChainResult:
    params = {} if std is None else {"std": std}
    return run_chain(ChainSpec(init=init, init_params=params, activation=activation,
                               width=WIDTH, depth=DEPTH, trials=trials, batch=batch))


def assert_median_std_in_band(result: ChainResult, theory_std: float, mean_ln_q: float,
                              var_ln_q: float) -> None:
    ln_std = np.log(result.final("std"))
    expected = math.log(theory_std) + mean_ln_q / 2
    se = 1.2533 * math.sqrt(var_ln_q / 4) / math.sqrt(len(ln_std))
    measured = float(np.median(ln_std))
    assert abs(measured - expected) <= 4 * se + SLACK, (
        f"median final std {math.exp(measured):.4g} outside "
        f"{math.exp(expected - 4 * se - SLACK):.4g} .. {math.exp(expected + 4 * se + SLACK):.4g}"
    )


def verdict(result: ChainResult) -> dict:
    return overall(*trial_verdicts(result.stats, Thresholds()))


def test_experiment_1_normal_explodes_to_nan_near_layer_29():
    """Seed: x.mean(), x.std() = nan, nan; 'it exploded at 29th multiplication'.
    Theory: std_l = sqrt(512)^l passes float32's 3.4e38 at l = ln(3.4e38)/ln(sqrt(512)) = 28.4."""
    result = journey("normal", "none", 1.0, trials=16, batch=16)
    first_bad = np.argmin(result.stats["finite"], axis=1)
    assert not result.stats["finite"][:, -1].any()
    assert ((first_bad >= 28) & (first_bad <= 30)).all(), first_bad
    assert np.isnan(result.final("std")).all() and np.isnan(result.final("mean")).all()
    assert verdict(result)["verdict"] == "exploded"


def test_experiment_2_small_normal_vanishes_to_exact_zero():
    """Seed: (0., 0.). Theory: std_l = (0.01 sqrt(512))^l = 0.226^l falls below float32's
    smallest subnormal (1.4e-45) at l = 69.5, after which every value is exactly 0."""
    result = journey("normal", "none", 0.01)
    assert (result.final("std") == 0).all() and (result.final("mean") == 0).all()
    all_zero = np.argmax(result.stats["zero_frac"] == 1.0, axis=1)
    assert ((all_zero >= 66) & (all_zero <= 73)).all(), all_zero
    assert verdict(result)["verdict"] == "vanished"


def test_experiment_3_scaled_linear_chain_holds():
    """Seed: std 0.8416 after 100 layers. Theory: std stays 1; median shrinks by e^{-beta/2}."""
    result = journey("scaled", "none")
    assert verdict(result)["verdict"] == "stable"
    assert_median_std_in_band(result, 1.0, -BETA, 2 * BETA)


@pytest.mark.parametrize(("init", "seed_std"), [("scaled", 0.0549), ("xavier", 0.0794)])
def test_experiments_4_5_tanh_decays_to_about_0_07(init, seed_std):
    """Seed: 0.0549 (scaled) and 0.0794 (Xavier); both have Var(W) = 1/512, and mean-field
    theory gives std 0.0712 at layer 100. The seed's single runs sit inside the same band."""
    theory = mean_field("tanh", 1.0, DEPTH)["std"][-1]
    assert theory == pytest.approx(0.0712, abs=0.0005)
    result = journey(init, "tanh")
    assert verdict(result)["verdict"] == "stable"
    assert_median_std_in_band(result, theory, -BETA, 2 * BETA)
    lo, hi = np.quantile(result.final("std"), [0.02, 0.98])
    assert lo < seed_std < hi


def test_experiment_5_xavier_relu_vanishes_near_1e_15():
    """Seed: std 5.69e-16. Theory: ReLU halves E[x^2] each layer when Var(W) = 1/n,
    so std_100 = 7.33e-16; with the finite-width shift the median is ~5.7e-16."""
    theory = mean_field("relu", 1.0, DEPTH)["std"][-1]
    # E[x_l^2] = 2^-l, so Var(x_100) = 2^-99 * (1/2 - 1/(2 pi)) = 2^-100 (1 - 1/pi).
    assert theory == pytest.approx(math.sqrt(2.0**-100 * (1 - 1 / math.pi)), rel=1e-6, abs=0)
    result = journey("xavier", "relu")
    assert verdict(result)["verdict"] == "vanished"
    assert_median_std_in_band(result, theory, -5 * BETA / 2, 5 * BETA)


def test_experiment_6_kaiming_relu_holds():
    """Seed: mean 0.4737, std 0.6989. Theory: mean 1/sqrt(pi) = 0.564, std sqrt(1-1/pi) = 0.826
    at every layer; finite width pulls the median down by e^{-5 beta/4} to ~0.65."""
    result = journey("kaiming", "relu")
    assert verdict(result)["verdict"] == "stable"
    assert_median_std_in_band(result, math.sqrt(1 - 1 / math.pi), -5 * BETA / 2, 5 * BETA)
    lo, hi = np.quantile(result.final("std"), [0.02, 0.98])
    assert lo < 0.6989 < hi


def test_zero_init_is_all_zeros():
    result = run_chain(ChainSpec(init="zero", activation="relu", depth=DEPTH, trials=2))
    assert (result.stats["zero_frac"][:, 1:] == 1).all()
    assert verdict(result) == {"verdict": "vanished", "verdict_layer": 1,
                               "verdict_counts": {"exploded": 0, "vanished": 2, "stable": 0}}


def test_relu_moments_of_one_layer_10000_samples():
    """Seed: 10,000 samples of relu(randn(512,512) @ randn(512)) give mean 9.019 and
    sqrt(mean square) 15.995. Theory: h ~ N(0, |x|^2), E|x| = sqrt(2) Gamma(256.5)/Gamma(256),
    so E[y] = E|x| / sqrt(2 pi) = 9.0225 and E[y^2] = E|x|^2 / 2 = 256 -> 16."""
    result = run_chain(ChainSpec(init="normal", activation="relu", depth=1, trials=10_000))
    means, rms = result.final("mean"), result.final("rms")
    e_norm = math.sqrt(2) * math.exp(math.lgamma(256.5) - math.lgamma(256))
    mean_theory = e_norm / math.sqrt(2 * math.pi)
    se_mean = means.std() / math.sqrt(len(means))
    assert abs(means.mean() - mean_theory) < 4 * se_mean
    assert abs(9.01886348772049 - mean_theory) < 4 * se_mean  # the seed's own number
    mean_square = (rms**2).mean()
    se_ms = (rms**2).std() / math.sqrt(len(rms))
    assert abs(mean_square - 256.0) < 4 * se_ms
    assert math.sqrt(mean_square) == pytest.approx(16.0, abs=0.1)
