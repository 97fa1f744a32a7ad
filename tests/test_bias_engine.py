"""Biases and correlated inputs in the engine, against torch and literal recomputations.

The chain is x_l = act(W_l x_{l-1} + b_l); b_l comes from its own keyed stream
(seed, layer, trial) (initlab.draws.fill_biases_), and the inputs of a trial
have pairwise correlation c0 (initlab.draws.draw_inputs).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initlab.chain import run_chain, run_many
from initlab.layout import draw_inputs, layer_biases, layer_weights
from initlab.streams import common_input_seed, input_seed
from tests.conftest import assert_gradients_are_autograds, cpu

EPS64 = np.finfo(np.float64).eps
C_KS = 1.949  # Kolmogorov's c(alpha) for alpha = 0.001: sqrt(-ln(alpha / 2) / 2)


def ks_two_sample(a: np.ndarray, b: np.ndarray) -> float:
    """max |F_a - F_b| over the pooled sample (the two-sample Kolmogorov-Smirnov D)."""
    a, b = np.sort(a), np.sort(b)
    pooled = np.concatenate([a, b])
    fa = np.searchsorted(a, pooled, side="right") / a.size
    fb = np.searchsorted(b, pooled, side="right") / b.size
    return float(np.abs(fa - fb).max())


def ks_uniform(a: np.ndarray, bound: float) -> float:
    """One-sample D against U(-bound, bound)."""
    a = np.sort(a)
    cdf = (a + bound) / (2 * bound)
    n = a.size
    return float(max((np.arange(1, n + 1) / n - cdf).max(), (cdf - np.arange(n) / n).max()))


@pytest.fixture(scope="module")
def linear512() -> tuple[np.ndarray, np.ndarray]:
    """nn.Linear(512, 512)'s default weights (one layer) and biases (8 layers)."""
    torch.manual_seed(0)
    layers = [torch.nn.Linear(512, 512) for _ in range(8)]
    return (layers[0].weight.detach().numpy().ravel(),
            torch.cat([m.bias.detach() for m in layers]).numpy())


def test_torch_default_with_its_bias_is_nn_linears_default(linear512):
    torch_w, torch_b = linear512
    spec = cpu(init="torch_default", bias="torch_default", width=512, depth=8, trials=1)
    w = layer_weights(spec, 1, range(1)).numpy().ravel()
    b = torch.cat([layer_biases(spec, layer, range(1))[0] for layer in range(1, 9)]).numpy()
    bound = 1 / math.sqrt(512)  # kaiming_uniform_(a=sqrt 5) and the bias: U(+-1/sqrt(fan_in))
    for ours, theirs in ((w, torch_w), (b, torch_b)):
        n, m = ours.size, theirs.size
        # Support: inside the bound (float32 rounding of the bound itself: 1 ulp), and n
        # uniform draws come within a fraction ~1/n of it (P[max < (1 - 0.02) bound] =
        # 0.98^n < 1e-40 for n = 4096).
        assert np.abs(ours).max() <= bound * (1 + 2**-23)
        assert np.abs(ours).max() >= bound * (1 - 0.02)
        # Same distribution as nn.Linear's: two-sample KS at alpha = 0.001,
        # D_crit = c(alpha) sqrt((n + m) / (n m)) (0.0054 for the 262,144 weights,
        # 0.043 for the 4,096 biases); and one-sample against the uniform CDF.
        assert ks_two_sample(ours, theirs) < C_KS * math.sqrt((n + m) / (n * m))
        assert ks_uniform(ours.astype(np.float64), bound) < C_KS / math.sqrt(n)
        assert ks_uniform(theirs.astype(np.float64), bound) < C_KS / math.sqrt(m)  # the check


def test_same_seed_same_numbers_and_prefixes_with_a_bias():
    kw = {"init": "scaled", "init_params": {"sigma_w2": 1.76}, "activation": "tanh",
          "bias": "normal", "bias_params": {"sigma_b2": 0.05}, "width": 64, "batch": 2,
          "input_correlation": 0.5}
    big = run_chain(cpu(depth=12, trials=4, **kw))
    again = run_chain(cpu(depth=12, trials=4, **kw))
    for name in ("std", "mean", "corr"):
        np.testing.assert_array_equal(big.stats[name], again.stats[name])
    # Fewer trials / layers: the same keyed draws and the same per-trial computation.
    fewer = run_chain(cpu(depth=12, trials=2, **kw))
    shallow = run_chain(cpu(depth=5, trials=4, **kw))
    for name in ("std", "corr"):
        np.testing.assert_array_equal(big.stats[name][:2], fewer.stats[name])
        np.testing.assert_array_equal(big.stats[name][:, :6], shallow.stats[name])
    np.testing.assert_array_equal(layer_biases(big.spec, 3, range(4))[:2],
                                  layer_biases(big.spec, 3, range(2)))
    other = run_chain(cpu(depth=12, trials=4, seed=1, **kw))
    assert not np.array_equal(big.stats["std"], other.stats["std"])
    # The bias matters (else the tests above would not see it).
    no_bias = run_chain(cpu(depth=12, trials=4, **{**kw, "bias": "zero", "bias_params": {}}))
    assert not np.array_equal(big.stats["std"], no_bias.stats["std"])


@pytest.mark.numerics
def test_a_sweep_over_bias_schemes_in_one_pass_equals_separate_runs():
    """Error argument as tests/test_fusion.py's: float64, a config's columns go through the
    same width-term dot products alone or in the wider pass, only the blocking may differ:
    ~ width * eps relative per layer for each computation, adding over the layers with gain
    ~ 1 (tanh, sigma_w2 = 1.76 near the edge); a factor 10 for the tails:
    rtol = 20 * depth * width * eps. The bias addition is the same elementwise op."""
    depth, width = 10, 32
    biases = [("zero", {}), ("normal", {"sigma_b2": 0.05}), ("uniform", {"bound": 0.3}),
              ("torch_default", {}), ("constant", {"value": 0.1})]
    specs = [cpu(init="scaled", init_params={"sigma_w2": 1.76}, activation="tanh", bias=b,
                 bias_params=p, width=width, depth=depth, trials=2, batch=2,
                 input_correlation=0.5, dtype="float64") for b, p in biases]
    rtol = 20 * depth * width * EPS64
    for spec, fused in zip(specs, run_many(specs), strict=True):
        alone = run_chain(spec)
        for name in ("std", "rms", "corr"):
            np.testing.assert_allclose(fused.stats[name], alone.stats[name], rtol=rtol, atol=0,
                                       err_msg=f"{spec.bias} {name}")


def test_biases_are_paired_across_schemes():
    # Every bias scheme scales the same N(0, 1) vector z: normal with sigma_b2 = 1 is z
    # itself (times 1.0, exact) and uniform with bound 1 is erf(z / sqrt 2) computed by the
    # same float op on the same numbers, so the relation is exact.
    kw = {"width": 64, "depth": 3, "trials": 3, "dtype": "float64"}
    z = layer_biases(cpu(bias="normal", bias_params={"sigma_b2": 1.0}, **kw), 2, range(3))
    u = layer_biases(cpu(bias="uniform", bias_params={"bound": 1.0}, **kw), 2, range(3))
    torch.testing.assert_close(u, torch.erf(z * (1.0 / math.sqrt(2.0))), rtol=0, atol=0)
    small = layer_biases(cpu(bias="normal", bias_params={"sigma_b2": 0.04}, **kw), 2, range(3))
    torch.testing.assert_close(small, z * 0.2, rtol=2 * EPS64, atol=0)  # one rounding of 0.2
    const = layer_biases(cpu(bias="constant", bias_params={"value": 0.1}, **kw), 2, range(3))
    assert (const == 0.1).all()
    assert (layer_biases(cpu(**kw), 2, range(3)) == 0).all()


def test_the_backward_pass_with_a_bias_is_autograds():
    """The engine's gradient statistics against torch.autograd on the same chain, with a
    bias and correlated inputs, in float64 (``assert_gradients_are_autograds``: the
    reference and its error argument, 40 * depth * width * eps = 2.8e-12 here)."""
    assert_gradients_are_autograds(cpu(
        init="scaled", init_params={"sigma_w2": 1.76}, activation="tanh", bias="normal",
        bias_params={"sigma_b2": 0.3}, width=32, depth=6, trials=2, batch=3,
        input_correlation=0.5, dtype="float64", gradients=True))


def test_c0_zero_draws_exactly_the_independent_inputs_of_before():
    spec = cpu(width=64, depth=1, trials=3, batch=4)
    x = draw_inputs(spec, range(3))
    gen = torch.Generator()
    for t in range(3):  # the seeds' literal draw: one N(0, 1) (width, batch) block per trial
        expected = torch.empty(64, 4).normal_(generator=gen.manual_seed(input_seed(0, t)))
        torch.testing.assert_close(x[t], expected, rtol=0, atol=0)
    # c0 > 0 mixes in one shared column per trial from its own stream: sqrt(1 - c0) z_b +
    # sqrt(c0) z (float32: two roundings of a product and one of the sum, <= 3 ulp).
    c0 = 0.5
    xc = draw_inputs(cpu(width=64, depth=1, trials=3, batch=4, input_correlation=c0), range(3))
    for t in range(3):
        common = torch.empty(64, 1).normal_(generator=gen.manual_seed(common_input_seed(0, t)))
        torch.testing.assert_close(xc[t], math.sqrt(1 - c0) * x[t] + math.sqrt(c0) * common,
                                   rtol=4 * 2**-23, atol=4 * 2**-23 * 8)


def test_correlated_inputs_have_cosine_c0_within_the_sampling_band():
    # Two width-n Gaussian vectors with correlation c: their sample cosine has sd
    # ~ (1 - c^2) / sqrt(n) (the Fisher delta method for a correlation coefficient), bias
    # O((1 - c^2) c / n) ~ 7e-4 here (below the band). A trial's 'corr' averages its
    # batch (batch - 1) / 2 = 6 pairs (correlated with each other through the shared
    # column, so counted as one: conservative); over T trials the mean has se (1 - c0^2) /
    # sqrt(n T) = 0.75 / sqrt(512 * 64) = 0.0041; 4 se. Every trial within 5 sd of c0.
    c0, width, trials = 0.5, 512, 64
    result = run_chain(cpu(width=width, depth=1, trials=trials, batch=4, input_correlation=c0))
    corr0 = result.stats["corr"][:, 0]
    sd = (1 - c0**2) / math.sqrt(width)
    assert abs(corr0.mean() - c0) < 4 * sd / math.sqrt(trials)
    assert np.abs(corr0 - c0).max() < 5 * sd
    # The per-trial spread is that sd (not far smaller: the draws are not all one column;
    # the sample sd of 64 trials is within ~ +-18 % (1 / sqrt(2 * 63)) of the truth at 2 sd;
    # averaging 6 correlated pairs shrinks it by at most sqrt(6)).
    assert sd / math.sqrt(6) * 0.6 < corr0.std(ddof=1) < sd * 1.4
    # And a literal recomputation of the statistic on the inputs themselves (float64: exact
    # up to a few roundings of a 512-term sum).
    x = draw_inputs(result.spec, range(trials)).double()
    u = x / x.norm(dim=1, keepdim=True)
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    literal = torch.stack([(u[:, :, a] * u[:, :, b]).sum(dim=1) for a, b in pairs]).mean(dim=0)
    np.testing.assert_allclose(corr0, literal.numpy(), rtol=0, atol=1e-12)
