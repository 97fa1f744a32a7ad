"""initlab.testing's gradient assertions against closed forms and their finite-width bands.

Reference: going back through a linear layer, dL/dx_{l-1} = W_l^T dL/dx_l, and with
W_ij ~ N(0, sigma_w2 / n), E|W^T v|^2 = sigma_w2 |v|^2 exactly; so after k layers the
gradient's std has grown by sigma_w2^(k/2) in mean square. At finite width n each layer
multiplies |v|^2 by chi^2_n / n (times sigma_w2): ln of it has mean -1/n and variance 2/n,
so ln r_k (r_k the std ratio after k layers) has mean (k/2) ln sigma_w2 - k/(2n) and
standard deviation at most sqrt(k / (2n)) (batch 1: one vector per trial).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from torch import nn

from initlab.spec import ChainSpec
from initlab.testing import (
    assert_gradients_explode,
    assert_gradients_stable,
    assert_gradients_vanish,
)

# small tensors: one torch thread each (tests/conftest.py::one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")


DEPTH, WIDTH, TRIALS = 40, 512, 8
LINEAR = dict(activation="none", depth=DEPTH, width=WIDTH, trials=TRIALS)
LN_T = math.log(1e4)  # the default thresholds 1e4 and 1e-4 in ln


def crossing(sigma_w2: float, threshold: float = LN_T) -> int:
    """Layers back where sigma_w2^(k/2) first passes the threshold (either side)."""
    return math.ceil(threshold / abs(0.5 * math.log(sigma_w2)))


def numbers(message: str) -> tuple[int, float, float]:
    """(layer, median ratio, theory) from a failure message."""
    layer = int(re.search(r" at layer (\d+) ", message).group(1))
    med = float(re.search(r"\) ([-+.e\d]+) \(10-90 %", message).group(1))
    theory = float(re.search(r"theory ([-+.e\dinf]+);", message).group(1))
    return layer, med, theory


@pytest.mark.parametrize("sigma_w2, assertion, wrong, verdict", [
    (2.0, assert_gradients_explode, assert_gradients_vanish, "exploded"),
    (0.5, assert_gradients_vanish, assert_gradients_explode, "vanished"),
])
def test_a_scaled_linear_chain_crosses_where_sigma_w2_to_the_k_over_2_does(
        sigma_w2, assertion, wrong, verdict):
    # (k/2) |ln sigma_w2| = 0.347 k passes ln 1e4 = 9.21 at k = 26.6: k = 27 back (layer 13).
    # Finite width moves ln r_27 by -27/1024 = -0.026 and spreads it by sd <= 0.16 per
    # trial; the thresholds sit 0.12-0.17 from r_27 and 0.17-0.22 from r_26, so a trial
    # crosses at 26, 27 or 28 back. Crossing 3 layers earlier (k = 25) or later (k = 30)
    # is 3.5+ sd from each trial's mean and out of reach of the median of 8: by_layer
    # = 40 - 28 passes, by_layer = 40 - 25 fails, and the layer named is 12, 13 or 14.
    k = crossing(sigma_w2)
    assert k == 27
    overrides = ("init=scaled", f"init.sigma_w2={sigma_w2}")
    result = assertion(*overrides, **LINEAR, by_layer=DEPTH - k - 1)
    assert result.grads is not None and result.spec.gradients
    with pytest.raises(AssertionError) as info:
        assertion(*overrides, **LINEAR, by_layer=DEPTH - k + 2)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"expected gradients {verdict} by layer {DEPTH - k + 2}, but "
                              f"init=scaled init.sigma_w2={sigma_w2} bias=zero "
                              f"activation=none depth={DEPTH} width={WIDTH}: gradients "
                              f"{verdict} at layer ")
    layer, med, theory = numbers(message)
    assert DEPTH - k - 1 <= layer <= DEPTH - k + 1
    back = DEPTH - layer
    # the mean-field ratio is the closed form sigma_w2^(k/2) exactly (no activation)
    assert theory == pytest.approx(sigma_w2 ** (back / 2), rel=2e-3)
    # the median of 8 trials: sd <= 1.25 x 0.16 / sqrt(8) = 0.07 in ln; a 3.5 sd band
    # around the finite-width mean (k/2) ln sigma_w2 - k / (2n)
    expected = (back / 2) * math.log(sigma_w2) - back / (2 * WIDTH)
    assert abs(math.log(med) - expected) < 0.25, (med, math.exp(expected))
    assert f"trials: {TRIALS} {verdict}" in message
    # the other direction fails outright, naming what happened
    with pytest.raises(AssertionError, match=rf"^expected gradients \w+, but .*: gradients "
                                             rf"{verdict} at layer 1[234] "):
        wrong(*overrides, **LINEAR)
    with pytest.raises(AssertionError, match=rf"^expected gradients stable, but .* {verdict} "):
        assert_gradients_stable(*overrides, **LINEAR)


def test_a_chain_spec_and_the_thresholds_of_the_command_line_are_taken():
    # grad_vanish = 1e-2: 0.347 k passes ln 100 = 4.61 at k = 13.3 -> 14 back (layer 26);
    # the margins (0.25 and 0.10 in ln; sd <= 0.12 per trial at k = 14) give 25..27 per
    # trial, and by_layer = 25 (two layers of slack for the median) passes.
    spec = ChainSpec(init="scaled", init_params={"sigma_w2": 0.5}, activation="none",
                     width=WIDTH, depth=DEPTH, trials=TRIALS, device="cpu", gradients=False)
    assert crossing(0.5, math.log(100)) == 14
    result = assert_gradients_vanish(spec, grad_vanish=1e-2, by_layer=DEPTH - 15)
    assert result.grads is not None  # gradients switched on for the assertion
    assert_gradients_vanish("init=scaled", "init.sigma_w2=0.5", **LINEAR,
                            **{"thresholds.grad_vanish": 1e-2}, by_layer=DEPTH - 15)
    with pytest.raises(AssertionError, match=r"thresholds grad_vanish=0\.01, grad_explode="):
        assert_gradients_stable(spec, grad_vanish=1e-2)
    with pytest.raises(ValueError, match=r"^with a ChainSpec, pass only grad_explode="):
        assert_gradients_stable(spec, depth=3)


def test_a_window_measures_the_growth_inside_it():
    # depth_window=(1, 20): the reference is dL/dx_20, and 20 layers of sigma_w2 = 2 grow
    # the std by 2^10 = 1024 (ln 6.93, 2.3 below ln 1e4 = 14 sd of sqrt(20/1024) = 0.14)
    result = assert_gradients_stable("init=scaled", "init.sigma_w2=2.0", **LINEAR,
                                     depth_window=(1, 20))
    with pytest.raises(AssertionError, match=r"gradients stable \(20 layers back from layer "
                                             r"20\); median std\(dL/dx_0\)/std\(dL/dx_20\) "
                                             r"1\.0\de\+03 .*theory 1\.02e\+03;"):
        assert_gradients_explode("init=scaled", "init.sigma_w2=2.0", **LINEAR,
                                 depth_window=(1, 20))
    assert result.depth == DEPTH


def test_kaiming_relu_is_stable_within_the_finite_width_band():
    # He init: the mean-field gain is exactly 1. Hanin & Rolnick (2018): ln r^2 has
    # variance ~5 beta, beta = depth / width = 50 / 256, so sd(ln r) ~ 0.5, and the
    # thresholds at |ln r| = 9.2 are 18 sd away for every one of the 8 trials.
    settings = dict(init="kaiming", activation="relu", depth=50, width=256, trials=8)
    result = assert_gradients_stable(**settings)
    ratio = result.grads["grad_x_std"][:, 0] / result.grads["grad_x_std"][:, -1]
    assert np.all(np.abs(np.log(ratio)) < 5 * 0.5)
    with pytest.raises(AssertionError) as info:
        assert_gradients_vanish(**settings)
    message = str(info.value)
    assert re.match(r"^expected gradients vanished, but init=kaiming .* activation=relu "
                    r"depth=50 width=256: gradients stable \(50 layers back from layer 50\); "
                    r"median std\(dL/dx_0\)/std\(dL/dx_50\) [.\d]+ \(10-90 %: [.\d]+ \.\. "
                    r"[.\d]+\), theory 1; trials: 8 stable; thresholds grad_vanish=0\.0001, "
                    r"grad_explode=10000$", message), message


def test_zero_weights_vanish_one_layer_back():
    # W = 0: dL/dx_{L-1} = W_L^T g = 0 exactly, ratio 0 < 1e-4 (the theory's 0 too)
    assert_gradients_vanish(init="zero", activation="tanh", depth=10, width=32, trials=4,
                            by_layer=9)
    with pytest.raises(AssertionError, match=r"gradients vanished at layer 9 \(1 layer back "
                                             r"from layer 10\); median std\(dL/dx_9\)/"
                                             r"std\(dL/dx_10\) 0 \(10-90 %: 0 \.\. 0\), "
                                             r"theory 0;"):
        assert_gradients_stable(init="zero", activation="tanh", depth=10, width=32, trials=4)


@pytest.mark.parametrize("bad, message", [
    (dict(gradients=False), r"^gradients=false is not allowed here"),
    (dict(by_layer=10), r"^by_layer=10 is not allowed; by_layer must be an integer >= 0 and <= 9 "
                              r"\(a layer the gradient reaches going back; the chain has 10 "),
    (dict(by_layer=-1), r"^by_layer=-1 is not allowed"),
    (dict(depth_window=("a", 3)), r"^depth_window=\('a', 3\) is not allowed for a chain"),
])
def test_refusals_are_one_line(bad, message):
    with pytest.raises(ValueError, match=message):
        assert_gradients_vanish(init="zero", depth=10, width=8, trials=2, **bad)


# --- models: nn.Sequential of Linear + Tanh through the probe ---------------------------

def tanh_mlp(width: int = 64, depth: int = 20) -> nn.Sequential:
    return nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width),
                                                              nn.Tanh())])


def mean_field_chi_1(sigma_w2: float) -> float:
    """chi_1 = sigma_w2 E[tanh'(h)^2], h ~ N(0, q*), q* = sigma_w2 E[tanh(h)^2] (no bias),
    by the trapezoid rule on a fine grid (sech^4(sqrt(q) z) is 1/sqrt(q) wide: too narrow
    for Gauss-Hermite nodes), independent of initlab.theory."""
    x = np.linspace(-12, 12, 240_001)
    w = np.exp(-x * x / 2)
    w = w / w.sum()
    q = sigma_w2
    for _ in range(200):
        q = sigma_w2 * float(np.sum(w * np.tanh(math.sqrt(q) * x) ** 2))
    return sigma_w2 * float(np.sum(w / np.cosh(np.minimum(math.sqrt(q) * np.abs(x), 300)) ** 4))


def test_a_tanh_mlp_with_unit_weights_explodes_going_back():
    # N(0, 1) weights at width 64: sigma_w2 = 64, q* = 57, chi_1 = 64 E[sech^4] = 4.48, so
    # the std grows by 2.1 per layer back and passes 1e4 after k* = 12.3 layers in mean
    # field. At finite width E ln r^2 <= ln E r^2 (Jensen; sech^4 is carried by the few
    # units near 0), so the median trial crosses no earlier than about k* (within a
    # layer): measured 13 back (layer 17), the ratio there 2.4e3 .. 2.8e4 over 10-90 % of
    # the trials (sd of ln r ~0.9). Within 2 k* = 25 layers it has certainly crossed;
    # 10 back needs a trial 6x above the median's ratio (2 sd), so by_layer 20 fails.
    chi_1 = mean_field_chi_1(64.0)
    k_star = 2 * LN_T / math.log(chi_1)
    assert 4.0 < chi_1 < 5.0 and 11 < k_star < 13.5
    depth = 30
    result = assert_gradients_explode(lambda: tanh_mlp(64, depth), (64,), init="normal",
                                      bias="zero", by_layer=depth - 25)
    assert result.module_types[1:] == ["Linear"] * depth
    with pytest.raises(AssertionError) as info:
        assert_gradients_explode(lambda: tanh_mlp(64, depth), (64,), init="normal",
                                 bias="zero", by_layer=depth - 10)
    message = str(info.value)
    assert re.match(r"^expected gradients exploded by layer 20 '38' \(Linear\), but "
                    r"model=<lambda> init=normal bias=zero \(8 trials, batch 4\): gradients "
                    r"exploded at layer (\d+) '\d+' \(Linear\) \(\d+ layers back from layer "
                    r"30\); median std\(dL/dx_\d+\)/std\(dL/dx_30\) [.\de+]+ \(10-90 %: .*\), "
                    r"no mean-field theory for a model; trials: \d+ exploded", message), message
    back = depth - int(re.search(r"at layer (\d+) ", message).group(1))
    assert k_star - 1 <= back <= 2 * k_star
    # a window of the first 5 layers: 2.1^5 = 43 inside it, stable
    assert_gradients_stable(lambda: tanh_mlp(64, depth), (64,), init="normal", bias="zero",
                            depth_window=(1, 5))


def test_a_xavier_tanh_mlp_keeps_its_gradients_and_a_small_gain_loses_them():
    # Xavier on square layers: sigma_w2 = 1, the signal's q_l falls like 1/(2l) and
    # chi_1 = E[sech^4] ~ 1 - 2 q_l, so r^2 shrinks like a power of the depth (prod of
    # 1 - 1/l), never by 1e-8 within 20 layers: stable.
    result = assert_gradients_stable(tanh_mlp, (64,), init="xavier")
    ratio = np.median(result.grads["grad_x_std"][:, 0] / result.grads["grad_x_std"][:, -1])
    assert 0.01 < ratio < 1
    # scaled sigma_w2 = 0.5: the signal shrinks by 0.5 per layer, tanh turns linear, and
    # the gradient vanishes like the linear chain's, 27 layers back (layer 13 of 40); at
    # width 64 sd(ln r_27) <= sqrt(27 / 128) = 0.46 per trial, a layer's step is 0.35:
    # by_layer = 40 - 30 leaves 3 layers (2.3 sd per trial, far more for the median of 8).
    assert_gradients_vanish(lambda: tanh_mlp(64, 40), (64,), init="scaled",
                            init_params={"sigma_w2": 0.5}, bias="zero", by_layer=10)
    with pytest.raises(ValueError, match=r"^gradients=False is not allowed here"):
        assert_gradients_stable(tanh_mlp, (64,), gradients=False)
