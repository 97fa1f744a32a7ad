"""The backward pass's pieces: closed-form activation derivatives and the dL/dW statistics.

The engine multiplies by act'(h) in closed form for every built-in activation
(``initlab.activations.derivative``) and by autograd's for a plug-in; it reduces
dL/dW = g x^T per config from two Gram matrices without forming it
(``initlab.backward.weight_grad_stats``). Each is checked against the independent
computation: torch.autograd, the explicit matrix.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from initlab.activations import BUILTIN_ACTIVATIONS, derivative, get_activation, register
from initlab.backward import weight_grad_stats
from initlab.chain import run_chain, run_many
from initlab.layout import draw_inputs, layer_weights, output_gradient
from initlab.spec import ChainSpec

PARAMS = {"leaky_relu": {"negative_slope": 0.2}}


def points(dtype: torch.dtype) -> torch.Tensor:
    """A grid over [-30, 30], and the places where a derivative is delicate: 0 and the
    smallest numbers either side (the kinks of relu, leaky_relu, selu), the saturation
    of tanh and sigmoid, softplus' switch to x at 20 and e^x's underflow for selu."""
    info = torch.finfo(dtype)
    tiny = info.tiny * info.eps  # the smallest subnormal
    special = [0.0, tiny, -tiny, info.tiny, -info.tiny, 1e-30, -1e-30, 20.0, -20.0, 40.0,
               -40.0, -200.0, 9.0, -9.0, 1.0, -1.0]
    near_20 = torch.nextafter(torch.tensor([20.0, 20.0], dtype=dtype),
                              torch.tensor([0.0, 40.0], dtype=dtype))
    return torch.cat([torch.linspace(-30, 30, 6001, dtype=dtype),
                      torch.tensor(special, dtype=dtype), near_20])


def autograd_slope(act, x: torch.Tensor) -> torch.Tensor:
    xx = x.clone().requires_grad_(True)
    y = act(xx)
    (grad,) = torch.autograd.grad(y, xx, torch.ones_like(y))
    return grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", BUILTIN_ACTIVATIONS)
def test_closed_form_derivatives_are_autograds(name, dtype):
    """Error argument: each side evaluates a few (<= 4) rounded operations on terms of
    magnitude <= 1 + |act'(x)| (Phi(x) and x phi(x) for gelu, s and x s (1 - s) for silu,
    1 and tanh^2 for tanh), each within eps / 2 of exact plus an ulp for exp, erf or tanh:
    |closed - autograd| <= 2 sides x 2 eps (1 + |act'|) = 4 eps (1 + |act'|). At the kinks
    (x = 0) both follow torch's convention, else they would differ by O(1)."""
    act = get_activation(name, PARAMS.get(name))
    slope = derivative(act)
    assert slope is not None, f"{name} is built in: it needs a closed form"
    x = points(dtype)
    want = autograd_slope(act, x)
    got = slope(x, act(x))
    assert got.dtype == dtype
    eps = torch.finfo(dtype).eps
    bound = 4 * eps * (1 + want.abs())
    bad = (got - want).abs() > bound
    assert not bad.any(), f"{name}: x = {x[bad][:5].tolist()} got {got[bad][:5].tolist()} " \
                          f"autograd {want[bad][:5].tolist()}"


def test_a_plug_in_activation_gets_autograd_and_the_same_gradients(registries):
    """A plug-in (even one registered under a built-in's name) has no closed form: the
    backward pass differentiates it by autograd. A plug-in computing tanh gives the
    built-in tanh's gradient statistics: the same chain, derivatives 1 - y^2 both ways
    (rtol: one rounding per layer in the slope, 10 x depth eps64)."""
    def my_tanh(x):
        return torch.tanh(x)

    register("my_tanh", my_tanh)
    assert derivative(get_activation("my_tanh")) is None
    register("relu", lambda x: torch.relu(x))
    assert derivative(get_activation("relu")) is None
    kw = dict(init="xavier", width=16, depth=8, trials=2, batch=2, dtype="float64",
              gradients=True, device="cpu")
    plug, built = run_many([ChainSpec(activation="my_tanh", **kw),
                            ChainSpec(activation="tanh", **kw)])
    for name in built.grads:
        np.testing.assert_allclose(plug.grads[name], built.grads[name],
                                   rtol=10 * 8 * np.finfo(np.float64).eps, atol=0,
                                   equal_nan=True)


@pytest.mark.parametrize("batch", [1, 3])
def test_weight_gradient_statistics_are_those_of_the_explicit_matrix(batch):
    """mean and std over the entries of G = g x^T per trial and config, from Grams, equal
    those of G formed and reduced directly. Error argument: the sum of squares of n_out *
    n_in = 240 entries and the Gram route both err by <= 240 eps relative (all terms of
    the sum of squares are >= 0); the std doubles it: rtol 4 * 240 eps; the mean cancels:
    atol 4 * 240 eps * rms(G)."""
    trials, n_out, n_in, configs = 2, 12, 20, 3
    gen = torch.Generator().manual_seed(5)
    g = torch.randn(trials, n_out, configs * batch, generator=gen, dtype=torch.float64)
    x = torch.randn(trials, n_in, configs * batch, generator=gen, dtype=torch.float64)
    x = x + 0.5  # a nonzero mean, so the mean of G is not ~0
    mean, std = weight_grad_stats(g.float(), x.float(), configs)
    eps = np.finfo(np.float64).eps
    for t in range(trials):
        for c in range(configs):
            cols = slice(c * batch, (c + 1) * batch)
            G = (g[t, :, cols].float().double() @ x[t, :, cols].float().double().T).ravel()
            rms = G.square().mean().sqrt().item()
            assert abs(mean[t, c].item() - G.mean().item()) <= 4 * 240 * eps * rms
            np.testing.assert_allclose(std[t, c].item(), G.std().item(), rtol=4 * 240 * eps)


@pytest.mark.numerics
def test_engine_gradients_for_every_built_in_activation_are_autograds():
    """One shared pass over every built-in activation (each a run of configs with its own
    closed-form derivative), against torch.autograd through the same chain rebuilt from
    layer_weights / draw_inputs / output_gradient, in float64. Error argument as for the
    chain with a bias (test_bias_engine): 40 * depth * width * eps relative."""
    depth, width, trials, batch = 5, 24, 2, 2
    kw = dict(init="xavier", width=width, depth=depth, trials=trials, batch=batch,
              dtype="float64", gradients=True, device="cpu")
    specs = [ChainSpec(activation=name, activation_params=PARAMS.get(name, {}), **kw)
             for name in BUILTIN_ACTIVATIONS]
    rtol = 40 * depth * width * np.finfo(np.float64).eps
    for spec, result in zip(specs, run_many(specs), strict=True):
        act = get_activation(spec.activation, spec.activation_params)
        ws = [layer_weights(spec, layer, range(trials)).requires_grad_(True)
              for layer in range(1, depth + 1)]
        xs = [draw_inputs(spec, range(trials)).requires_grad_(True)]
        for w in ws:
            xs.append(act(torch.einsum("toi,tib->tob", w, xs[-1])))
            xs[-1].retain_grad()
        (xs[-1] * output_gradient(spec, range(trials))).sum().backward()
        for layer in range(depth + 1):
            grad = xs[layer].grad.reshape(trials, -1)
            np.testing.assert_allclose(result.grads["grad_x_std"][:, layer],
                                       grad.std(dim=1).numpy(), rtol=rtol, atol=0,
                                       err_msg=f"{spec.activation} dL/dx_{layer}")
        for layer, w in enumerate(ws, start=1):
            grad = w.grad.reshape(trials, -1)
            np.testing.assert_allclose(result.grads["grad_w_std"][:, layer],
                                       grad.std(dim=1).numpy(), rtol=rtol, atol=0,
                                       err_msg=f"{spec.activation} dL/dW_{layer}")


def test_the_default_chain_with_gradients_runs_alone_and_fused_alike():
    """float32, the default relu/kaiming pair and a tanh config: the fused pass's gradient
    statistics equal a lone run's up to the rounding of the wider products
    (rtol 20 * depth * width * eps32, as test_fusion argues for float64)."""
    kw = dict(width=32, depth=6, trials=2, gradients=True, device="cpu")
    alone = run_chain(ChainSpec(init="kaiming", activation="relu", **kw))
    fused = run_many([ChainSpec(init="kaiming", activation="relu", **kw),
                      ChainSpec(init="xavier", activation="tanh", **kw)])[0]
    rtol = 20 * 6 * 32 * np.finfo(np.float32).eps
    for name in ("grad_x_std", "grad_w_std"):
        np.testing.assert_allclose(fused.grads[name], alone.grads[name], rtol=rtol,
                                   equal_nan=True)


def test_the_forward_passs_activations_give_the_recomputed_numbers(monkeypatch):
    """``backward(..., post=)`` takes x_1..x_L from the forward pass instead of recomputing
    act(h_l): the same elementwise function of the same numbers, so the same statistics
    exactly (a shared pass of two activations, a bias and LSUV gains included)."""
    import initlab.backward as bw
    import initlab.chain as chain

    specs = [ChainSpec(init=init, activation=act, width=16, depth=5, trials=2, batch=2,
                       gradients=True, device="cpu", **extra)
             for init, act, extra in (("kaiming", "relu", {"bias": "normal"}),
                                      ("xavier", "tanh", {}), ("lsuv", "gelu", {}))]
    given = run_many(specs)  # the engine passes its activations (post=)
    calls = []

    def recomputing(layout, mats, trials, x0, pre, gains, grads, kept=None, post=None):
        calls.append(post is not None)
        return bw.backward(layout, mats, trials, x0, pre, gains, grads, kept, post=None)

    monkeypatch.setattr(chain, "backward", recomputing)
    recomputed = run_many(specs)
    assert calls and all(calls)  # the engine did hand its activations over
    for a, b in zip(given, recomputed, strict=True):
        for name in b.grads:
            np.testing.assert_array_equal(a.grads[name], b.grads[name])
