"""Signal propagation beyond the seed: theory beside measurement, finite-width fluctuation,
gradients (checked against torch.autograd), the newer schemes and activations, plug-ins."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initlab import config
from initlab.activations import ACTIVATIONS, get_activation
from initlab.chain import input_seed, layer_weights, output_gradient, run_chain
from initlab.schemes import BUILTIN_SCHEMES, make_draw
from initlab.spec import ChainSpec
from initlab.summary import summarize
from initlab.testing import assert_explodes, assert_stable, assert_vanishes
from initlab.theory import (
    critical_sigma_w2,
    crossing,
    fixed_point_slope,
    mean_field,
    overflow_layer,
)
from initlab.validate import compose_overrides
from initlab.verdict import Thresholds, overall, trial_verdicts

BUILTIN_ACTIVATIONS = ["none", "tanh", "relu", "leaky_relu", "sigmoid", "gelu", "selu", "silu",
                       "softplus"]


def verdict(result) -> str:
    return overall(*trial_verdicts(result.stats, Thresholds()))["verdict"]


# ------------------------------------------------------------------------ theory


def test_predicted_float32_overflow_of_normal_weights_is_layer_28_4():
    """std_l = sqrt(512)^l passes 3.4e38 at ln(3.4e38) / ln(sqrt(512)) = 28.44."""
    assert overflow_layer(512.0, "float32") == pytest.approx(28.44, abs=0.01)
    curve = mean_field("none", 512.0, 40)["std"]
    assert crossing(curve, float(np.finfo(np.float32).max)) == pytest.approx(28.44, abs=0.01)
    result = run_chain(ChainSpec(init="normal", activation="none", depth=40, trials=4))
    assert summarize(result, Thresholds())["predicted_overflow_layer"] == pytest.approx(28.44,
                                                                                     abs=0.01)


@pytest.mark.parametrize(
    ("init", "activation"),
    [("scaled", "none"), ("kaiming", "relu"), ("scaled", "tanh"), ("xavier", "tanh"),
     ("critical", "softplus"), ("critical", "sigmoid"), ("lecun", "selu"), ("orthogonal", "tanh"),
     ("kaiming", "leaky_relu")],
)
def test_theory_agrees_with_the_measured_median(init, activation):
    """Hanin & Rolnick bound the finite width's effect on ln(std) by the He/ReLU case: a
    shift of at most 5 beta / 4 and a spread of sqrt(5 beta) / 2 per trial (beta =
    depth / width), so the median over T trials lies within LN_BAND of theory."""
    result = run_chain(ChainSpec(init=init, activation=activation, depth=20, trials=32))
    frame = result.frame()
    last = frame[frame.layer == 20]
    measured, predicted = np.median(last["std"]), last["theory_std"].iloc[0]
    band = ln_band(depth=20, width=512, trials=32)
    assert abs(math.log(measured / predicted)) < band
    # The mean over units: per trial theory times the same factor, plus sampling over
    # 512 units (sd = std / sqrt(512)); for the median of 32 trials, 4 standard errors.
    mean_measured, mean_predicted = np.median(last["mean"]), last["theory_mean"].iloc[0]
    sampling = 4 * 1.2533 * predicted / math.sqrt(512 * 32)
    assert abs(mean_measured - mean_predicted) < abs(mean_predicted) * (math.exp(band) - 1) \
        + sampling


def ln_band(depth: int, width: int, trials: int) -> float:
    """Allowed |ln(median / theory)|: the He/ReLU shift 5 beta / 4 plus 4 standard errors of a
    median of ``trials`` draws with sd sqrt(5 beta) / 2."""
    beta = depth / width
    return 1.25 * beta + 4 * 1.2533 * math.sqrt(5 * beta) / 2 / math.sqrt(trials)


def test_critical_gain_is_kaiming_for_relu_and_leaky_relu():
    assert critical_sigma_w2("relu") == pytest.approx(2.0, rel=1e-10)
    assert critical_sigma_w2("none") == pytest.approx(1.0, rel=1e-10)
    a = 0.2
    assert critical_sigma_w2("leaky_relu", {"negative_slope": a}) == pytest.approx(
        2 / (1 + a**2), rel=1e-10)
    leaky = make_draw("critical", 512, 512, context={"activation": "leaky_relu",
                                                      "activation_params": {"negative_slope": a}})
    assert leaky.std == pytest.approx(make_draw("kaiming", 512, 512, {"negative_slope": a}).std)


ATTRACTING = [a for a in BUILTIN_ACTIVATIONS if a not in ("gelu", "silu")]


@pytest.mark.parametrize("activation", ATTRACTING)
def test_critical_makes_every_activation_with_a_fixed_point_stable_at_depth_100(activation):
    result = run_chain(ChainSpec(init="critical", activation=activation, depth=100, trials=8))
    assert verdict(result) == "stable"
    sigma_w2 = critical_sigma_w2(activation)
    # q* = 1 is a fixed point of q_l = sigma_w2 E[phi(sqrt(q_{l-1}) z)^2] ...
    start = mean_field(activation, sigma_w2, 1, input_second_moment=1 / sigma_w2)
    assert sigma_w2 * start["second_moment"][1] == pytest.approx(1.0, rel=1e-10)
    assert fixed_point_slope(activation) <= 1 + 1e-6
    # ... and the chain, started from x_0 ~ N(0, 1), settles on a finite non-zero one.
    q = sigma_w2 * mean_field(activation, sigma_w2, 100)["second_moment"]
    assert 0.1 < q[-1] < 10 and q[-1] == pytest.approx(q[-2], rel=1e-3)


@pytest.mark.parametrize("activation", ["gelu", "silu"])
def test_gelu_and_silu_have_no_attracting_fixed_point(activation):
    """Without a bias, f(q)/q = sigma_w2 E[phi(sqrt(q) z)^2] / q rises from sigma_w2/4 to
    sigma_w2/2: any fixed point repels, so no Gaussian gain holds a deep chain (measured:
    the verdict flips from vanished to exploded within a few per cent of the gain)."""
    assert fixed_point_slope(activation) > 1.1
    act = get_activation(activation)
    from initlab.theory import gaussian_moments

    ratios = [gaussian_moments(act, q)[1] / q for q in (1e-4, 1e-2, 1.0, 1e2, 1e4)]
    assert all(b > a for a, b in zip(ratios, ratios[1:], strict=False))
    assert ratios[0] == pytest.approx(0.25, rel=0.02) and ratios[-1] == pytest.approx(0.5,
                                                                                    rel=0.02)


def test_every_activation_is_listed_as_a_config_option():
    assert set(BUILTIN_ACTIVATIONS) <= set(ACTIVATIONS)


def test_gradient_theory_closed_forms():
    """Backward: E[g_{l-1}^2] = sigma_w2 E[phi'(h)^2] E[g_l^2]: 1 for Kaiming/ReLU, 1/2 per
    layer for ReLU with sigma_w2 = 1, sigma_w2^L for a linear chain."""
    np.testing.assert_allclose(mean_field("relu", 2.0, 30)["grad_std"], 1.0, rtol=1e-10)
    np.testing.assert_allclose(mean_field("relu", 1.0, 30)["grad_std"],
                               np.sqrt(0.5) ** (30 - np.arange(31)), rtol=1e-10)
    np.testing.assert_allclose(mean_field("none", 1.5, 10)["grad_std"],
                               np.sqrt(1.5) ** (10 - np.arange(11)), rtol=1e-10)


# ------------------------------------------------------------ finite-width fluctuation


@pytest.mark.parametrize(("init", "activation", "mean_per_beta", "var_per_beta"),
                         [("kaiming", "relu", -2.5, 5.0), ("scaled", "none", -1.0, 2.0)])
def test_fluctuation_matches_hanin_rolnick(init, activation, mean_per_beta, var_per_beta):
    """ln(|x_L|^2/|x_0|^2) has mean c1 beta and variance c2 beta (beta = depth/width).
    1024 trials give the sample variance a standard error of var * sqrt(2/1023) = 4.4 %; the
    prediction is first order in 1/width (at width 128 the exact per-layer variance is 3 %
    above it), so the band is 4 standard errors plus 5 %."""
    width, depth, trials = 128, 32, 1024
    beta = depth / width
    result = run_chain(ChainSpec(init=init, activation=activation, width=width, depth=depth,
                                 trials=trials))
    s = summarize(result, Thresholds())
    assert s["predicted_log_norm_ratio_var"] == pytest.approx(var_per_beta * beta)
    assert s["predicted_log_norm_ratio_mean"] == pytest.approx(mean_per_beta * beta, abs=1e-9)
    var = var_per_beta * beta
    assert abs(s["log_norm_ratio_var"] - var) < 4 * var * math.sqrt(2 / (trials - 1)) + 0.05 * var
    se_mean = math.sqrt(var / trials)
    assert abs(s["log_norm_ratio_mean"] - mean_per_beta * beta) < 4 * se_mean + 0.05 * var


# ------------------------------------------------------------------------ gradients


@pytest.mark.parametrize(("init", "activation", "batch", "weights"),
                         [("kaiming", "relu", 3, "fresh"), ("xavier", "tanh", 1, "fresh"),
                          ("orthogonal", "gelu", 2, "shared"), ("lsuv", "tanh", 4, "fresh")])
def test_gradients_match_torch_autograd(init, activation, batch, weights):
    spec = ChainSpec(init=init, activation=activation, width=24, depth=6, trials=3, batch=batch,
                     weights=weights, dtype="float64", gradients=True, seed=4)
    result = run_chain(spec)
    act = get_activation(activation)
    for trial in range(spec.trials):
        gen = torch.Generator().manual_seed(input_seed(spec.seed, trial))
        x = torch.empty(24, batch, dtype=torch.float64).normal_(generator=gen)
        xs, ws = [x.requires_grad_(True)], []
        for layer in range(1, spec.depth + 1):
            w = layer_weights(spec, layer, range(trial, trial + 1))[0]
            if init == "lsuv":  # the rescaling LSUV applied on this batch (a constant)
                w = w / (w @ xs[-1]).detach().std()
            w.requires_grad_(True)
            ws.append(w)
            xs.append(act(w @ xs[-1]))
            xs[-1].retain_grad()
        g = output_gradient(spec, range(trial, trial + 1))[0]
        (xs[-1] * g).sum().backward()
        ref_x = [t.grad.std().item() for t in xs]
        ref_w = [w.grad.std().item() for w in ws]
        np.testing.assert_allclose(result.grads["grad_x_std"][trial], ref_x, rtol=1e-8)
        np.testing.assert_allclose(result.grads["grad_w_std"][trial, 1:], ref_w, rtol=1e-8)
        np.testing.assert_allclose(result.grads["grad_w_mean"][trial, 1:],
                                   [w.grad.mean().item() for w in ws], rtol=1e-7, atol=1e-12)


def test_gradients_follow_theory_and_vanish_with_xavier_relu():
    kaiming = run_chain(ChainSpec(init="kaiming", activation="relu", depth=20, trials=16,
                                  gradients=True))
    # backward theory: E[g^2] stays 1; the same finite-width band as the forward signal
    median = np.median(kaiming.grads["grad_x_std"][:, 0])
    assert abs(math.log(median)) < ln_band(depth=20, width=512, trials=16)
    xavier = run_chain(ChainSpec(init="xavier", activation="relu", depth=100, trials=4,
                                 gradients=True))
    assert np.median(xavier.grads["grad_x_std"][:, 0]) < 1e-13  # 2^-50 ~ 9e-16 by theory


def test_backward_pass_redraws_weights_instead_of_keeping_them(monkeypatch):
    """One buffer of weights per base distribution, refilled depth times going forward and
    depth - 1 times going back (the last layer's are still in hand): nothing is kept per layer."""
    import initlab.chain as chain

    fills, allocated = [], []
    real_fill, real_empty = chain._fill_sources, torch.empty

    def counting_fill(mats, *args):
        fills.append({id(m) for m in mats.values()})
        return real_fill(mats, *args)

    def counting_empty(*shape, **kw):
        tensor = real_empty(*shape, **kw)
        if len(shape) == 3 and shape[1] == shape[2] == 64:
            allocated.append(tensor)
        return tensor

    monkeypatch.setattr(chain, "_fill_sources", counting_fill)
    monkeypatch.setattr(chain.torch, "empty", counting_empty)
    depth = 200
    result = chain.run_chain(ChainSpec(width=64, depth=depth, trials=2, gradients=True,
                                       init="scaled", activation="tanh"))
    assert len(fills) == 2 * depth - 1
    assert len({i for f in fills for i in f}) == 1  # the same buffer every time
    assert len(allocated) == 1
    assert np.isfinite(result.grads["grad_x_std"]).all()


def test_float32_overflow_layer_matches_a_literal_loop():
    """The engine scales x before the shared matmul; the first non-finite layer must be the
    one (s * W) @ x gives."""
    spec = ChainSpec(init="normal", activation="none", width=16, depth=80, trials=4)
    result = run_chain(spec)
    engine = np.argmin(result.stats["finite"], axis=1)
    for trial in range(spec.trials):
        gen = torch.Generator().manual_seed(input_seed(spec.seed, trial))
        x = torch.empty(16, 1).normal_(generator=gen)
        layer = 0
        while torch.isfinite(x).all():
            layer += 1
            x = layer_weights(spec, layer, range(trial, trial + 1))[0] @ x
        assert engine[trial] == layer


# ------------------------------------------------------------ newer schemes


def test_lsuv_gives_every_layer_unit_std():
    result = run_chain(ChainSpec(init="lsuv", activation="none", depth=30, trials=2, batch=4))
    np.testing.assert_allclose(result.stats["std"][:, 1:], 1.0, rtol=1e-5)


def test_orthogonal_linear_chain_preserves_norms():
    result = run_chain(ChainSpec(init="orthogonal", activation="none", depth=50, trials=3,
                                 dtype="float64"))
    np.testing.assert_allclose(result.stats["rms"][:, -1], result.stats["rms"][:, 0], rtol=1e-10)


@pytest.mark.parametrize("batch", [1, 4])
def test_constant_weights_make_every_unit_equal(batch):
    result = run_chain(ChainSpec(init="constant", activation="tanh", depth=10, trials=3,
                                 batch=batch))
    assert (result.stats["unit_std"][:, 1:] == 0).all()
    assert (result.stats["mean"][:, 1:] != 0).all()
    summary = summarize(result, Thresholds())
    assert summary["identical_units_layer"] == 1
    assert summary["verdict"] == "vanished" and summary["verdict_layer"] == 1


def test_fused_sweep_equals_separate_runs():
    """Shared draws: the configs of one pass see the weights they would see alone."""
    from initlab.chain import run_many

    specs = [ChainSpec(init=i, activation=a, width=64, depth=15, trials=3, batch=2,
                       dtype="float64", gradients=True)
             for i in ("zero", "normal", "scaled", "xavier", "kaiming", "orthogonal", "lsuv")
             for a in ("none", "tanh", "relu")]
    together = run_many(specs)
    for spec, fused in zip(specs, together, strict=True):
        alone = run_chain(spec)
        for name in ("mean", "std", "unit_std", "rms", "abs_max"):
            np.testing.assert_allclose(fused.stats[name], alone.stats[name], rtol=1e-10,
                                       atol=1e-300, err_msg=f"{spec.init}/{spec.activation}")
        for name in ("grad_x_std", "grad_w_std"):
            np.testing.assert_allclose(fused.grads[name], alone.grads[name], rtol=1e-10,
                                       atol=1e-300)


def test_torch_default_vanishes_in_a_deep_relu_chain():
    """Var(W) = 1/(3 fan_in): E[x^2] shrinks by 6 per ReLU layer."""
    m2 = mean_field("relu", make_draw("torch_default", 512, 512).sigma_w2, 10)["second_moment"]
    np.testing.assert_allclose(m2[1:] / m2[:-1], 1 / 6, rtol=1e-9)
    assert_vanishes(init="torch_default", activation="relu", depth=100, trials=4, by_layer=12)


def test_every_scheme_runs_with_every_activation_briefly():
    for init in BUILTIN_SCHEMES:
        for activation in BUILTIN_ACTIVATIONS:
            result = run_chain(ChainSpec(init=init, activation=activation, width=16, depth=3,
                                         trials=2, batch=2, gradients=True))
            assert result.frame().shape[0] == 2 * 4


# ------------------------------------------------------------ testing helpers


def test_assert_helpers_pass_on_the_seed_behaviour():
    assert_stable(init="kaiming", activation="relu", depth=50, trials=4)
    assert_vanishes("init=xavier", "activation=relu", by_layer=30, trials=4)
    assert_explodes(init="normal", activation="none", by_layer=5, trials=2)


def test_assert_helpers_say_what_the_chain_did():
    with pytest.raises(AssertionError, match=r"expected stable, but init=xavier .*activation=relu"
                                             r".* vanished at layer 2\d \(median std there"):
        assert_stable(init="xavier", activation="relu", trials=4)
    with pytest.raises(AssertionError, match="expected exploded by layer 2, but .* exploded at "
                                             "layer 3"):
        assert_explodes(init="normal", activation="none", by_layer=2, trials=2)
    with pytest.raises(ValueError, match="init=lecunn is not an option"):
        assert_stable(init="lecunn")


# ------------------------------------------------------------ plug-ins


def test_torch_style_plugin_scheme_draws_what_torch_draws():
    cfg = compose_overrides(["experiments=custom", "width=64", "depth=3", "trials=2"])
    spec = config.spec_from_config(cfg)
    assert spec.init == "trunc_normal" and spec.activation == "hardtanh"
    w = layer_weights(spec, 2, range(1, 2))[0]
    from initlab.chain import weight_seed

    ref = torch.nn.init.trunc_normal_(torch.empty(64, 64), std=0.0625, a=-0.25, b=0.25,
                                      generator=torch.Generator().manual_seed(weight_seed(0, 2, 1)))
    torch.testing.assert_close(w, ref, rtol=0, atol=0)
    assert verdict(run_chain(spec)) == "stable"


def test_custom_activation_gets_a_working_critical_init():
    assert_stable("experiments=custom_critical", trials=4)
    cfg = compose_overrides(["experiments=custom_critical"])
    spec = config.spec_from_config(cfg)
    hardtanh = get_activation("hardtanh", {"min_val": -1.0, "max_val": 1.0})
    z = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = 1 / hardtanh(z).pow(2).mean().item()
    assert spec.draw().sigma_w2 == pytest.approx(expected, rel=0.01)


def test_bad_plugin_target_is_one_line():
    from initlab.plugins import PluginError, register

    with pytest.raises(PluginError, match=r"_target_='nope.missing' cannot be imported"):
        register("init", "x", "nope.missing")


def test_a_deeper_run_holds_every_shallower_one():
    deep = run_chain(ChainSpec(init="xavier", activation="tanh", width=64, depth=40, trials=3))
    for depth in (1, 10, 25):
        alone = run_chain(ChainSpec(init="xavier", activation="tanh", width=64, depth=depth,
                                    trials=3))
        cut = deep.prefix(depth)
        assert cut.spec == alone.spec
        for name in alone.stats:
            np.testing.assert_array_equal(cut.stats[name], alone.stats[name])
        np.testing.assert_array_equal(cut.hist, alone.hist)


def test_fused_launcher_cuts_depth_sweeps_from_the_deepest_run():
    from initlab import fusion

    overrides = [["init=scaled", "activation=tanh", f"depth={d}", "width=32", "trials=2",
                  "gradients=false"] for d in (5, 20, 10)]
    configs = [compose_overrides(o) for o in overrides]
    try:
        assert fusion.precompute(configs) == 1
        for cfg in configs:
            spec = config.spec_from_config(cfg)
            ready = fusion.take(spec)
            alone = run_chain(spec)
            np.testing.assert_array_equal(ready.stats["std"], alone.stats["std"])
    finally:
        fusion.clear()
