"""Signal propagation beyond the seed: theory beside measurement, finite-width fluctuation,
gradients (checked against torch.autograd), the newer schemes and activations, plug-ins."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from initlab import activations, config
from initlab.activations import ACTIVATIONS, get_activation
from initlab.chain import run_chain, run_many
from initlab.layout import draw_inputs, layer_weights, output_gradient
from initlab.schemes import BUILTIN_SCHEMES, make_recipe
from initlab.spec import ChainSpec
from initlab.streams import input_seed
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

#: The activations the command line offers: one option file each in conf/activation.
CONF = Path(__file__).resolve().parents[1] / "conf"
BUILTIN_ACTIVATIONS = sorted(p.stem for p in (CONF / "activation").glob("*.yaml"))


def cpu(**settings) -> ChainSpec:
    """A spec with the engine settings these tests rely on spelled out (not the defaults)."""
    settings.setdefault("gradients", False)
    return ChainSpec(device="cpu", **settings)


#: Engine settings for the ``initlab.testing`` helpers (they take the command line's defaults).
QUIET = {"gradients": False, "device": "cpu"}
EPS32, EPS64 = 2.0**-24, float(np.finfo(np.float64).eps)  # unit roundoffs (EPS64 = 2 u)


def verdict(result) -> str:
    return overall(*trial_verdicts(result.stats, Thresholds()))["verdict"]


# ------------------------------------------------------------------------ theory


def test_predicted_float32_overflow_of_normal_weights_is_layer_28_4():
    """std_l = sqrt(512)^l passes 3.4e38 at ln(3.4e38) / ln(sqrt(512)) = 28.44 (closed form).
    The crossing of a mean-field curve is interpolated between layers in log space, exact
    for a geometric curve, so rel=1e-9 (float64 logs) holds for all three routes."""
    closed = math.log(float(np.finfo(np.float32).max)) / math.log(math.sqrt(512))
    assert overflow_layer(512.0, "float32") == pytest.approx(closed, rel=1e-9)
    curve = mean_field("none", 512.0, 40)["std"]
    assert crossing(curve, float(np.finfo(np.float32).max)) == pytest.approx(closed, rel=1e-9)
    result = run_chain(cpu(init="normal", activation="none", depth=40, trials=2))
    predicted = summarize(result, Thresholds())["predicted_overflow_layer"]
    assert predicted == pytest.approx(closed, rel=1e-9)


MEDIAN_CASES = [("scaled", "none"), ("kaiming", "relu"), ("scaled", "tanh"), ("xavier", "tanh"),
                ("critical", "softplus"), ("critical", "sigmoid"), ("lecun", "selu"),
                ("orthogonal", "tanh"), ("kaiming", "leaky_relu")]
#: Trial count for a median against theory at depth 20: the effect to see is a gain wrong by
#: 5 % per layer, 20 ln(1.05) / 2 = 0.49 in ln(std). At width 256 (beta = 0.078) one trial's
#: sd is sqrt(5 beta) / 2 = 0.31; a median's standard error 1.2533 * 0.31 / sqrt(T) below
#: 0.49 / 4 needs T >= 10, and the whole band (shift 5 beta / 4 plus 4 standard errors)
#: stays below 0.49 from T = 18 (T = 20: 0.45). The property is width-independent
#: (mean-field theory); width 256 costs a quarter of 512 per trial (an eighth for the QR).
MEDIAN_SIZE = {"width": 256, "depth": 20, "trials": 20}


@pytest.fixture(scope="module")
def medians() -> dict[tuple[str, str], object]:
    """MEDIAN_CASES in one engine pass (one draw per base matrix for all)."""
    specs = [cpu(init=i, activation=a, **MEDIAN_SIZE) for i, a in MEDIAN_CASES]
    return dict(zip(MEDIAN_CASES, run_many(specs), strict=True))


@pytest.mark.parametrize(("init", "activation"), MEDIAN_CASES)
def test_theory_agrees_with_the_measured_median(medians, init, activation):
    """Hanin & Rolnick bound the finite width's effect on ln(std) by the He/ReLU case: a
    shift of at most 5 beta / 4 and a spread of sqrt(5 beta) / 2 per trial (beta =
    depth / width), so the median over T trials lies within LN_BAND of theory (T: see
    MEDIAN_SIZE)."""
    width, depth, trials = MEDIAN_SIZE["width"], MEDIAN_SIZE["depth"], MEDIAN_SIZE["trials"]
    assert ln_band(depth, width, trials) < 20 * math.log(1.05) / 2
    frame = medians[(init, activation)].frame()
    last = frame[frame.layer == depth]
    measured, predicted = np.median(last["std"]), last["theory_std"].iloc[0]
    band = ln_band(depth=depth, width=width, trials=trials)
    assert abs(math.log(measured / predicted)) < band
    # The mean over units: per trial theory times the same factor, plus sampling over
    # the units (sd = std / sqrt(width)); for the median of the trials, 4 standard errors.
    mean_measured, mean_predicted = np.median(last["mean"]), last["theory_mean"].iloc[0]
    sampling = 4 * 1.2533 * predicted / math.sqrt(width * trials)
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
    leaky = make_recipe("critical", 512, 512, context={"activation": "leaky_relu",
                                                      "activation_params": {"negative_slope": a}})
    assert leaky.std == pytest.approx(make_recipe("kaiming", 512, 512, {"negative_slope": a}).std)


ATTRACTING = [a for a in BUILTIN_ACTIVATIONS if a not in ("gelu", "silu")]


@pytest.fixture(scope="module")
def critical_chains() -> dict[str, object]:
    """critical x every attracting activation at depth 100, in one engine pass. The verdict
    is the majority of trials; at beta = 100/512 one trial's ln(std) has sd <= sqrt(5 beta)
    / 2 = 0.5, so 4 trials suffice to sit far inside the stable range (1e-4 .. 1e4)."""
    specs = [cpu(init="critical", activation=a, depth=100, trials=4) for a in ATTRACTING]
    return dict(zip(ATTRACTING, run_many(specs), strict=True))


@pytest.mark.parametrize("activation", ATTRACTING)
def test_critical_makes_every_activation_with_a_fixed_point_stable_at_depth_100(
        critical_chains, activation):
    assert verdict(critical_chains[activation]) == "stable"
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
    """conf/activation (what a user can pick) and the engine's built-ins are the same set."""
    assert set(BUILTIN_ACTIVATIONS) == set(activations.BUILTIN_ACTIVATIONS)
    assert set(BUILTIN_ACTIVATIONS) <= set(ACTIVATIONS)
    assert {p.stem for p in (CONF / "init").glob("*.yaml")} == set(BUILTIN_SCHEMES)


def test_gradient_theory_closed_forms():
    """Backward: E[g_{l-1}^2] = sigma_w2 E[phi'(h)^2] E[g_l^2]: 1 for Kaiming/ReLU, 1/2 per
    layer for ReLU with sigma_w2 = 1, sigma_w2^L for a linear chain."""
    np.testing.assert_allclose(mean_field("relu", 2.0, 30)["grad_std"], 1.0, rtol=1e-10)
    np.testing.assert_allclose(mean_field("relu", 1.0, 30)["grad_std"],
                               np.sqrt(0.5) ** (30 - np.arange(31)), rtol=1e-10)
    np.testing.assert_allclose(mean_field("none", 1.5, 10)["grad_std"],
                               np.sqrt(1.5) ** (10 - np.arange(11)), rtol=1e-10)


# ------------------------------------------------------------ finite-width fluctuation


FLUCTUATION_SIZE = {"width": 128, "depth": 32, "trials": 1024}


@pytest.fixture(scope="module")
def fluctuations() -> dict[tuple[str, str], object]:
    """He/ReLU and the scaled linear chain in one pass (they share every N(0, 1) draw)."""
    cases = [("kaiming", "relu"), ("scaled", "none")]
    specs = [cpu(init=i, activation=a, **FLUCTUATION_SIZE) for i, a in cases]
    return dict(zip(cases, run_many(specs), strict=True))


@pytest.mark.parametrize(("init", "activation", "mean_per_beta", "var_per_beta"),
                         [("kaiming", "relu", -2.5, 5.0), ("scaled", "none", -1.0, 2.0)])
def test_fluctuation_matches_hanin_rolnick(fluctuations, init, activation, mean_per_beta,
                                           var_per_beta):
    """ln(|x_L|^2/|x_0|^2) has mean c1 beta and variance c2 beta (beta = depth/width).
    1024 trials give the sample variance a standard error of var * sqrt(2/1023) = 4.4 %; the
    prediction is first order in 1/width (at width 128 the exact per-layer variance is 3 %
    above it), so the band is 4 standard errors plus 5 %."""
    width, depth, trials = (FLUCTUATION_SIZE[k] for k in ("width", "depth", "trials"))
    beta = depth / width
    s = summarize(fluctuations[(init, activation)], Thresholds())
    assert s["predicted_log_norm_ratio_var"] == pytest.approx(var_per_beta * beta)
    assert s["predicted_log_norm_ratio_mean"] == pytest.approx(mean_per_beta * beta, abs=1e-9)
    var = var_per_beta * beta
    assert abs(s["log_norm_ratio_var"] - var) < 4 * var * math.sqrt(2 / (trials - 1)) + 0.05 * var
    se_mean = math.sqrt(var / trials)
    assert abs(s["log_norm_ratio_mean"] - mean_per_beta * beta) < 4 * se_mean + 0.05 * var


# ------------------------------------------------------------------------ gradients


@pytest.mark.numerics
@pytest.mark.parametrize(("init", "activation", "batch", "weights"),
                         [("kaiming", "relu", 3, "fresh"), ("xavier", "tanh", 1, "fresh"),
                          ("orthogonal", "gelu", 2, "shared"), ("lsuv", "tanh", 4, "fresh")])
def test_gradients_match_torch_autograd(init, activation, batch, weights):
    """The engine (bmm over trials, W @ (s x), weights redrawn going back) against a literal
    autograd loop (mm, (s W) @ x, weights kept), float64: the two sum in different orders.

    Error argument: each layer's dot products of n = 24 terms differ by <= n * eps relative
    to |W||x| (Higham's gamma_n), ~ sqrt(n) times |W x| for Gaussian W; forward and back
    that is 2 * depth * n * sqrt(n) * eps = 3e-13 over the chain, times the condition of
    the activation's derivative (tanh': cosh(h)^2 <= e^(2|h|), |h| < 4 at these sizes:
    3e3; LSUV's rescaling divides by a std, condition ~1): 1e-9, and a factor 10 for the
    constants gives the rtol 1e-8 (a wrong derivative or a weight off by one draw misses
    by O(1)). The mean of dL/dW is a cancelling sum: its error is on the scale of the std
    (atol = rtol * the std)."""
    spec = ChainSpec(init=init, activation=activation, width=24, depth=6, trials=3, batch=batch,
                     weights=weights, dtype="float64", gradients=True, seed=4, device="cpu")
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
                                   [w.grad.mean().item() for w in ws], rtol=1e-8,
                                   atol=1e-8 * max(ref_w))


def test_gradients_follow_theory_and_vanish_with_xavier_relu():
    # backward theory: E[g^2] stays 1; the same finite-width band and trial-count argument
    # as the forward signal (MEDIAN_SIZE)
    kaiming = run_chain(cpu(init="kaiming", activation="relu", gradients=True, **MEDIAN_SIZE))
    median = np.median(kaiming.grads["grad_x_std"][:, 0])
    assert abs(math.log(median)) < ln_band(MEDIAN_SIZE["depth"], MEDIAN_SIZE["width"],
                                           MEDIAN_SIZE["trials"])
    # 1e-13 is 100x theory's 2^-50 ~ 9e-16: at width 256 (beta = 0.39) one trial's
    # ln(std) has sd sqrt(5 beta) / 2 = 0.7, so ln(100) = 4.6 is 6.5 sd; 2 trials suffice.
    xavier = run_chain(cpu(init="xavier", activation="relu", width=256, depth=100, trials=2,
                           gradients=True))
    assert np.median(xavier.grads["grad_x_std"][:, 0]) < 1e-13  # 2^-50 ~ 9e-16 by theory


def overflow_window(spec: ChainSpec, trial: int) -> tuple[int, int]:
    """The layers where float32 may and where it must first overflow in ``trial``: the
    chain recomputed in float64 (no overflow below 1.8e308) from the float32 weights and
    input the engine uses, which the float64 products represent exactly.

    Error argument: float32 sums a dot product of n terms with error <= n u (|W||x|)_i
    (u = 2^-24, Higham's gamma_n), and errors of earlier layers carry through a Gaussian
    linear layer with gain ~1 relatively; after l layers the float32 value is within a
    factor 1 + delta_l, delta_l = 4 l n u (a factor 4 for the carried errors and the
    order of the sum). A partial sum is bounded by (|W||x|)_i. So layer l *may* overflow
    once max_i (|W||x|)_i (1 + delta_l) >= finfo.max and *must* once
    max_i |W x|_i > finfo.max (1 + delta_l); between the two only rounding decides.
    """
    fmax, n = float(np.finfo(np.float32).max), spec.width
    x = draw_inputs(spec, range(trial, trial + 1))[0].double()
    may = None
    for layer in range(1, spec.depth + 1):
        w = layer_weights(spec, layer, range(trial, trial + 1))[0].double()
        delta = 4 * layer * n * EPS32
        if may is None and float((w.abs() @ x.abs()).max()) * (1 + delta) >= fmax:
            may = layer
        x = w @ x
        if float(x.abs().max()) > fmax * (1 + delta):
            return may, layer
    raise AssertionError("the chain never overflows; make it deeper")


@pytest.mark.numerics
def test_float32_overflow_layer_matches_a_float64_reference():
    """The engine computes W @ (s x) with bmm, in float32; the first non-finite layer is the
    one where the exact chain passes finfo.max, or the layer before it only when the exact
    value is within rounding of the edge (``overflow_window``); otherwise it is exact."""
    spec = cpu(init="normal", activation="none", width=16, depth=80, trials=8)
    result = run_chain(spec)
    engine = np.argmin(result.stats["finite"], axis=1)
    windows = [overflow_window(spec, trial) for trial in range(spec.trials)]
    for trial, (may, must) in enumerate(windows):
        assert must - may <= 1, (trial, may, must)  # the window is one rounding wide at most
        assert may <= engine[trial] <= must, (trial, engine[trial], may, must)
        assert result.stats["finite"][trial, :may].all()


# ------------------------------------------------------------ newer schemes


@pytest.mark.numerics
def test_lsuv_gives_every_layer_unit_std():
    """LSUV divides each layer's float32 pre-activation by its float64 std cast to float32:
    one rounding of the divisor and one per element, so the std is 1 within 2 u = 1.2e-7
    (plus the float64 std's own 1e-16). rtol = 1e-5 leaves a factor 80, and a wrong divisor
    (ddof, batch or unit axis: a factor sqrt(n/(n-1)) = 1 + 1.2e-4 at width 128 x batch 4)
    still fails. Width-independent, so width 128."""
    result = run_chain(cpu(init="lsuv", activation="none", width=128, depth=30, trials=2,
                           batch=4))
    np.testing.assert_allclose(result.stats["std"][:, 1:], 1.0, rtol=1e-5)


@pytest.mark.numerics
def test_orthogonal_linear_chain_preserves_norms():
    """An orthogonal Q from Householder QR in float64 is orthogonal to ~ n eps, and each
    matmul rounds by <= n eps relative in norm (gamma_n): the norm after L layers is kept
    within 2 L n eps = 2 * 50 * 128 * 2.2e-16 = 2.8e-12 relative (worst case; a factor 10
    more for the QR's constant): a scheme off by 1e-11 per layer already fails."""
    width, depth = 128, 50
    result = run_chain(cpu(init="orthogonal", activation="none", width=width, depth=depth,
                           trials=3, dtype="float64"))
    np.testing.assert_allclose(result.stats["rms"][:, -1], result.stats["rms"][:, 0],
                               rtol=10 * 2 * depth * width * EPS64)


@pytest.mark.parametrize("batch", [1, 4])
def test_constant_weights_make_every_unit_equal(batch):
    """Exact equality is the contract here (``identical_units_layer`` tests unit_std == 0):
    every unit is the same dot product of the same numbers, one row of a constant matrix.
    Width 64, a multiple of every SIMD row block, keeps all rows in the same kernel path
    (a scalar tail without FMA could round its rows differently)."""
    result = run_chain(cpu(init="constant", activation="tanh", width=64, depth=10, trials=3,
                           batch=batch))
    assert (result.stats["unit_std"][:, 1:] == 0).all()
    assert (result.stats["mean"][:, 1:] != 0).all()
    summary = summarize(result, Thresholds())
    assert summary["identical_units_layer"] == 1
    assert summary["verdict"] == "vanished" and summary["verdict_layer"] == 1


def test_torch_default_vanishes_in_a_deep_relu_chain():
    """Var(W) = 1/(3 fan_in): E[x^2] shrinks by 6 per ReLU layer."""
    m2 = mean_field("relu", make_recipe("torch_default", 512, 512).sigma_w2, 10)["second_moment"]
    np.testing.assert_allclose(m2[1:] / m2[:-1], 1 / 6, rtol=1e-9)
    assert_vanishes(init="torch_default", activation="relu", depth=20, trials=4, by_layer=12,
                    **QUIET)


def test_every_scheme_runs_with_every_activation_briefly():
    """Each pair runs alone, forward and back: every statistic is computed and finite at a
    size where nothing can overflow (std grows at most 4x a layer over 3 layers). (The
    table built from a result is tested in test_chain.py::test_frame_is_tidy.)"""
    for init in BUILTIN_SCHEMES:
        for activation in BUILTIN_ACTIVATIONS:
            label = f"{init}/{activation}"
            result = run_chain(cpu(init=init, activation=activation, width=16, depth=3,
                                   trials=2, batch=2, gradients=True))
            assert result.stats["finite"].all(), label
            for name, values in {**result.stats, **result.grads}.items():
                assert values.shape == (2, 4), (label, name)
                if name == "corr":  # a cosine; 0 / 0 where a pre-activation is all zero
                    # (zero weights, or ReLU of a constant layer's negative sum)
                    assert np.isfinite(values[:, 0]).all(), label
                    # |cos| <= 1 up to the float32 dot products: n u = 16 * 6e-8 = 1e-6
                    assert (np.isnan(values) | (np.abs(values) <= 1 + 1e-6)).all(), label
                elif name not in ("finite", "grad_w_mean", "grad_w_std"):
                    assert np.isfinite(values).all(), (label, name)
            assert np.isfinite(result.grads["grad_w_std"][:, 1:]).all(), label


# ------------------------------------------------------------ testing helpers


def test_assert_helpers_pass_on_the_seed_behaviour():
    assert_stable(init="kaiming", activation="relu", depth=50, trials=4, **QUIET)
    assert_vanishes("init=xavier", "activation=relu", by_layer=30, depth=40, trials=4, **QUIET)
    assert_explodes(init="normal", activation="none", by_layer=5, depth=10, trials=2, **QUIET)


def test_assert_helpers_say_what_the_chain_did():
    with pytest.raises(AssertionError, match=r"expected stable, but init=xavier .*activation=relu"
                                             r".* vanished at layer 2\d \(median std there"):
        assert_stable(init="xavier", activation="relu", depth=40, trials=4, **QUIET)
    with pytest.raises(AssertionError, match="expected exploded by layer 2, but .* exploded at "
                                             "layer 3"):
        assert_explodes(init="normal", activation="none", by_layer=2, depth=10, trials=2,
                        **QUIET)
    with pytest.raises(ValueError, match="init=lecunn is not an option"):
        assert_stable(init="lecunn")


# ------------------------------------------------------------ plug-ins


def test_torch_style_plugin_scheme_draws_what_torch_draws():
    cfg = compose_overrides(["experiments=custom", "width=64", "depth=3", "trials=2",
                             "gradients=false", "device=cpu"])
    spec = config.spec_from_config(cfg)
    assert spec.init == "trunc_normal" and spec.activation == "hardtanh"
    w = layer_weights(spec, 2, range(1, 2))[0]
    from initlab.streams import weight_seed

    ref = torch.nn.init.trunc_normal_(torch.empty(64, 64), std=0.0625, a=-0.25, b=0.25,
                                      generator=torch.Generator().manual_seed(weight_seed(0, 2, 1)))
    torch.testing.assert_close(w, ref, rtol=0, atol=0)  # the same draw, the same code
    assert verdict(run_chain(spec)) == "stable"


def test_custom_activation_gets_a_working_critical_init():
    """init=critical for a plug-in (hardtanh on [-1, 1]) puts the chain on chi_1 = 1,
    checked with closed forms instead of initlab's quadrature: for h ~ N(0, q), a = 1/sqrt(q),
    E[hardtanh(h)^2] = q (erf(a/sqrt 2) - 2 a phi(a)) + 1 - erf(a/sqrt 2) (integrate z^2 by
    parts on |z| < a) and chi_1 = sigma_w2 P(|h| < 1) = sigma_w2 erf(a/sqrt 2), at the fixed
    point q* = sigma_w2 E[hardtanh(h)^2] + sigma_b2 (iterated here to convergence).
    abs = 1e-3 is the accuracy a critical gain needs: chi_1 = 1 +- 1e-3 moves the gradient
    norm over 100 layers by at most (1 +- 1e-3)^50 = 5 %, while Xavier's or Kaiming's gain
    misses chi_1 by > 10 %."""
    assert_stable("experiments=custom_critical", trials=4, **QUIET)
    spec = config.spec_from_config(compose_overrides(["experiments=custom_critical"]))
    draw = spec.weight_recipe()
    sigma_w2, sigma_b2 = draw.sigma_w2, draw.bias_sigma_b2

    def second_moment(q: float) -> float:
        a = 1 / math.sqrt(q)
        inside = math.erf(a / math.sqrt(2))
        return q * (inside - 2 * a * math.exp(-a * a / 2) / math.sqrt(2 * math.pi)) + 1 - inside

    q = 1.0
    for _ in range(10_000):
        q, previous = sigma_w2 * second_moment(q) + sigma_b2, q
    assert q == pytest.approx(previous, rel=1e-12)  # converged
    assert sigma_w2 * math.erf(1 / math.sqrt(2 * q)) == pytest.approx(1.0, abs=1e-3)


def test_bad_plugin_target_is_one_line():
    from initlab.plugins import PluginError, register

    with pytest.raises(PluginError, match=r"_target_='nope.missing' cannot be imported"):
        register("init", "x", "nope.missing")
