"""The gradient verdict (initlab.verdict.gradient_verdicts) against closed forms.

Going back from the output, the verdict names the first layer where
std(dL/dx_l) / std(dL/dx_L) leaves [grad_vanish, grad_explode] (or dL/dx_l is not
finite). Each test puts that crossing where a closed form says it must be.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import cpu

from initlab.chain import run_chain
from initlab.summary import summarize
from initlab.verdict import Thresholds, gradient_ratios, gradient_verdicts


def verdicts(result, thresholds: Thresholds | None = None):
    return gradient_verdicts(result.grads["grad_x_std"], result.stats["finite"],
                             thresholds or Thresholds())


@pytest.mark.parametrize(("gain", "expected", "layers_back"),
                         # g^k passes 1e4 at k = ln(1e4) / ln(1.5) = 22.7 -> k = 23;
                         # g^k falls under 1e-4 at k = ln(1e4) / ln 2 = 13.3 -> k = 14
                         [(1.5, "exploded", 23), (0.5, "vanished", 14)])
def test_a_linear_chain_crosses_where_g_to_the_l_does(gain, expected, layers_back):
    """Orthogonal weights times g, no activation: W^T v has exactly g times v's norm, so the
    gradient's norm scales by g per layer back. Its std is sqrt((|v|^2 - n m^2) / (n - 1))
    with m the mean; n m^2 / |v|^2 is a chi^2_1 / n draw, below 9 / 256 = 3.5 % for the
    largest of these 164 vectors' (chi^2_1 passes 9 with probability 0.3 %), so a std
    ratio is g^k within 2 x 1.8 % < 5 %: far inside the margins of the crossings (1.5^23
    = 1.12 x 1e4 and 1.5^22 = 0.75 x 1e4; 0.5^14 = 0.61 x 1e-4 and 0.5^13 = 1.22 x 1e-4):
    every trial crosses at exactly L - k."""
    depth = 40
    result = run_chain(cpu(init="orthogonal", init_params={"gain": gain}, activation="none",
                           width=256, depth=depth, trials=4, gradients=True, dtype="float64"))
    ratio = gradient_ratios(result.grads["grad_x_std"])
    k = np.arange(depth, -1, -1)  # layers back from the output
    np.testing.assert_allclose(ratio, np.broadcast_to(gain ** k, ratio.shape), rtol=0.05)
    names, layers = verdicts(result)
    assert names == [expected] * 4 and layers == [depth - layers_back] * 4
    summary = summarize(result, Thresholds())
    assert (summary["grad_verdict"], summary["grad_verdict_layer"]) == (expected,
                                                                          depth - layers_back)
    assert summary["theory_grad_ratio"] == pytest.approx(gain ** depth, rel=1e-9)


def test_kaiming_relu_gradients_stay_in_the_finite_width_band():
    """He-initialised ReLU keeps E|g|^2 (the mean-field gain is exactly 1), and ln of the
    squared gradient ratio fluctuates over trials like the forward pass's (Hanin & Rolnick
    2018: mean -5 beta / 2, variance 5 beta, beta = depth / width). At width 512, depth
    100 (beta = 0.195) every trial is stable (the thresholds sit at |ln r^2| = 18.4, more
    than 15 standard deviations away), each trial's ln r^2 lies within 5 sd (sqrt(5 beta))
    of the mean, and the mean over 16 trials lies within 4 standard errors (from the
    measured variance) of -5 beta / 2."""
    depth, width, trials = 100, 512, 16
    result = run_chain(cpu(init="kaiming", activation="relu", width=width, depth=depth,
                           trials=trials, gradients=True))
    names, _ = verdicts(result)
    assert names == ["stable"] * trials
    beta = depth / width
    log_r2 = 2 * np.log(gradient_ratios(result.grads["grad_x_std"])[:, 0])
    assert np.all(np.abs(log_r2 + 2.5 * beta) < 5 * math.sqrt(5 * beta)), log_r2
    se = math.sqrt(log_r2.var(ddof=1) / trials)
    assert abs(log_r2.mean() + 2.5 * beta) < 4 * se, (log_r2.mean(), -2.5 * beta, se)
    assert summarize(result, Thresholds())["theory_grad_ratio"] == pytest.approx(1, rel=1e-6)


@pytest.mark.parametrize(("sigma_w2", "expected", "thresholds"),
                         [(1.0, "vanished", Thresholds()),
                          (3.0, "exploded", Thresholds(grad_explode=1e2))])
def test_tanh_on_both_sides_of_the_edge_crosses_where_chi_1_says(sigma_w2, expected, thresholds):
    """tanh, sigma_b2 = 0.05: the edge of chaos is sigma_w2 = 1.76. Ordered (1.0: chi_1 =
    0.76) the gradient's std shrinks by sqrt(chi_1) a layer back, chaotic (3.0: chi_1 =
    1.21) it grows; the mean-field curve (which follows q_l from the inputs to q*) crosses
    the threshold at a layer the median trial must match.

    Band, from the width and the trial count: each trial's crossing layer scatters because
    ln r sums one fluctuating log-gain per layer (variance O(1/width)); its spread over
    trials, sd, is measured here. The median of 16 trials has standard error 1.25 sd / 4;
    the mean-field ln r is the log of the *mean* square, above the mean log by half the
    variance of ln r, (sd * s)^2 / 2 with s the slope |ln chi_1| / 2 per layer, i.e. a
    bias of sd^2 s / 2 layers; plus one layer for integer crossing points. Band: 1 + 3
    standard errors + the bias."""
    depth, trials = 100, 16
    result = run_chain(cpu(init="scaled", init_params={"sigma_w2": sigma_w2}, activation="tanh",
                           bias="normal", bias_params={"sigma_b2": 0.05}, width=256,
                           depth=depth, trials=trials, gradients=True))
    names, layers = verdicts(result, thresholds)
    assert names.count(expected) == trials
    curve = result.curve("grad_x_std")
    ratio = (curve / curve[-1])[-2::-1]  # layers L-1, ..., 0
    level = thresholds.grad_vanish if expected == "vanished" else thresholds.grad_explode
    crossed = ratio < level if expected == "vanished" else ratio > level
    theory = depth - 1 - int(np.argmax(crossed))
    summary = summarize(result, thresholds)
    chi_1 = summary["phase"]["chi_1"]
    assert (chi_1 < 1) == (expected == "vanished")
    sd = float(np.std(layers, ddof=1))
    slope = abs(math.log(chi_1)) / 2
    band = 1 + 3 * 1.2533 * sd / math.sqrt(trials) + sd**2 * slope / 2
    assert abs(np.median(layers) - theory) <= band, (np.median(layers), theory, band)
    assert summary["grad_verdict"] == expected
    assert abs(summary["grad_verdict_layer"] - theory) <= band


def test_zero_weights_vanish_at_the_first_layer_back():
    """W = 0: dL/dx_{L-1} = W_L^T (...) = 0 exactly."""
    result = run_chain(cpu(init="zero", activation="tanh", width=16, depth=6, trials=3,
                           gradients=True))
    assert verdicts(result) == (["vanished"] * 3, [5] * 3)
    summary = summarize(result, Thresholds())
    assert summary["grad_ratio"] == 0 and summary["grad_verdict"] == "vanished"


def test_a_gradient_through_an_overflowed_signal_is_not_finite():
    """N(0, 1) weights and ReLU overflow float32 near layer 30: ReLU's slope at an inf or NaN
    is 0 or 1 in arithmetic, but the gradient there means nothing. It is an explosion at
    the first layer back, not a vanishing, and the input gradient is not reported as 0."""
    result = run_chain(cpu(init="normal", activation="relu", width=64, depth=60, trials=2,
                           gradients=True))
    assert not result.stats["finite"][:, -1].any()
    assert verdicts(result) == (["exploded"] * 2, [59] * 2)
    summary = summarize(result, Thresholds())
    assert summary["input_grad_std"] is None and summary["grad_ratio"] is None


def test_without_gradients_there_is_no_gradient_verdict():
    summary = summarize(run_chain(cpu(width=8, depth=3, trials=2, gradients=False)),
                        Thresholds())
    assert summary["grad_verdict"] is None and "gradients off" in summary["grad_verdict_note"]


@pytest.mark.parametrize("bad", [{"grad_explode": 1e-5}, {"grad_vanish": 0.0},
                                 {"grad_explode": float("inf")}, {"grad_vanish": True}])
def test_gradient_thresholds_are_checked_like_the_forward_ones(bad):
    with pytest.raises(ValueError, match="thresholds grad_vanish=.*grad_explode=.*not allowed"):
        Thresholds(**bad)
