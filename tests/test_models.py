"""Built-in models (initlab.models) against the seeds' numbers and the He/ReLU theory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from initlab.inputs import gaussian_inputs
from initlab.models import conv_chain, input_shape, simple_cnn
from initlab.probing import probe
from initlab.verdict import Thresholds, overall, trial_verdicts

# small tensors: one torch thread each (tests/conftest.py::one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")


def test_conv_chain_takes_199_to_1_in_99_valid_3x3_convolutions():
    # Seed 001, question 3: 199x199 > 197x197 > ... > 1x1 in 99 convolutions.
    model = conv_chain(channels=1)
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert len(convs) == 99
    assert all(c.kernel_size == (3, 3) and c.padding == (0, 0) for c in convs)
    assert input_shape("conv_chain", channels=1) == (1, 199, 199)
    sizes, x = [], torch.randn(1, *input_shape("conv_chain", channels=1))
    with torch.no_grad():
        for conv in convs:
            x = conv(x)
            sizes.append(x.shape[-1])
    assert sizes == list(range(197, 0, -2))
    assert tuple(x.shape) == (1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"\(or depth <= 99\)"):
        conv_chain(depth=100)


def test_simple_cnn_is_fastais_with_the_1168_parameter_layer():
    model = simple_cnn()
    convs = [m for m in model if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [
        (1, 8, 5), (8, 16, 3), (16, 32, 3), (32, 64, 3), (64, 10, 3)]
    assert all(c.stride == (2, 2) and c.padding[0] == c.kernel_size[0] // 2 for c in convs)
    # Seed 002, question 15: the 8 -> 16 layer has 1,168 parameters (8 * 16 * 9 + 16).
    assert sum(p.numel() for p in convs[1].parameters()) == 1168
    result = probe(simple_cnn, gaussian_inputs(input_shape("simple_cnn"), 2), trials=1,
                   gradients=False, histogram=False)
    # fastai's chapter: 28x28 -> 14 -> 7 -> 4 -> 2 -> 1, then 10 logits.
    assert result.shapes == [(1, 28, 28), (8, 14, 14), (16, 7, 7), (32, 4, 4), (64, 2, 2),
                             (10, 1, 1)]
    assert tuple(simple_cnn()(torch.zeros(3, 1, 28, 28)).shape) == (3, 10)


def test_conv_chain_kaiming_follows_the_finite_width_drift_and_normal_explodes():
    channels, depth, trials = 8, 99, 4
    shape = input_shape("conv_chain", channels=channels)
    kw = dict(trials=trials, gradients=False, include=["Activation"], histogram=False)
    he = probe(lambda: conv_chain(channels=channels), gaussian_inputs(shape, 1),
               init="kaiming", **kw)
    assert he.stats["finite"].all()
    # He/ReLU keeps E[q] but not its typical value: Hanin & Rolnick (2018), with the width
    # n = channels (weights are shared over positions), ln q_L - ln q_1 ~ N(-5/2 (L-1)/n,
    # 5 (L-1)/n), so ln std moves by N(-5/4 (L-1)/n, 5/4 (L-1)/n). The median over T trials
    # has sd 1.25 sd / sqrt(T); 4 sd. (Measured: about -10 for 8 channels: the chain is at
    # the edge of vanishing, which a depth/width of 12 predicts.)
    ratio = np.log(he.stats["std"][:, depth] / he.stats["std"][:, 1])
    mean, sd = -1.25 * (depth - 1) / channels, math.sqrt(1.25 * (depth - 1) / channels)
    assert abs(np.median(ratio) - mean) < 4 * 1.25 * sd / math.sqrt(trials)
    assert "exploded" not in trial_verdicts(he.stats, Thresholds())[0]
    normal = probe(lambda: conv_chain(channels=channels), gaussian_inputs(shape, 1),
                   init="normal", **{**kw, "trials": 2})
    # N(0, 1) weights multiply E[x^2] by fan_in = 72 per layer (halved by ReLU): 1e4 is
    # crossed within a few layers.
    verdict = overall(*trial_verdicts(normal.stats, Thresholds()))
    assert verdict["verdict"] == "exploded" and verdict["verdict_layer"] <= 6


def test_conv_gains_use_torchs_conv_fan_in():
    """sigma_w2 = fan_in * Var(W) with fan_in = C * 9 (torch's, for a Conv2d). The reference
    is torch itself: nn.Conv2d's own default draw (kaiming_uniform_(a=sqrt(5)): Var = 1 /
    (3 fan_in)) over 64 * 64 * 9 = 36,864 weights; a uniform's sample variance has relative
    standard error sqrt(0.8 / n) = 0.47 %, so 5 standard errors is 2.3 %."""
    from initlab.prediction import conv_gains

    assert conv_gains("kaiming", {}, "zero", {}, 16) == pytest.approx((2.0, 0.0))
    assert conv_gains("xavier", {}, "zero", {}, 16) == pytest.approx((1.0, 0.0))
    assert conv_gains("normal", {"std": 0.1}, "zero", {}, 4) == pytest.approx((36 * 0.01, 0.0))
    assert conv_gains("constant", {}, "zero", {}, 4) is None  # not zero-mean: no theory
    sigma_w2, sigma_b2 = conv_gains("torch_default", {}, "torch_default", {}, 64)
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 64, 3)
    measured = conv.weight.detach().double().var().item() * 64 * 9
    assert measured == pytest.approx(sigma_w2, rel=0.023)
    assert sigma_w2 == pytest.approx(1 / 3)
    assert sigma_b2 == pytest.approx(1 / (3 * 64 * 9))  # U(-1/sqrt(fan_in), 1/sqrt(fan_in))


def test_model_spec_builds_in_its_dtype_and_describes_its_settings():
    from initlab.modelspec import ModelSpec

    spec = ModelSpec(model="conv_chain", init="kaiming", activation="tanh", bias="zero",
                     trials=2, batch=1, seed=0, device="cpu", dtype="float64", gradients=False,
                     channels=3, depth=2, size=7)
    model = spec.factory()()
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert [m.bias for m in model if isinstance(m, nn.Conv2d)] == [None, None]  # bias=zero
    assert spec.shape() == (3, 7, 7)
    described = spec.describe(depth=2, width=3)
    assert {k: described[k] for k in ("model", "model_channels", "model_size", "activation",
                                      "depth", "width")} == {
        "model": "conv_chain", "model_channels": 3, "model_size": 7, "activation": "tanh",
        "depth": 2, "width": 3}
