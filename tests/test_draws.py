"""Keyed random streams (initlab/draws.py) against torch's own generators and init functions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initlab import draws, schemes
from initlab.draws import fill_base_, fill_layer_
from initlab.layout import draw_inputs, layer_weights, output_gradient
from initlab.schemes import WeightRecipe
from initlab.spec import ChainSpec
from initlab.streams import gradient_seed, input_seed, weight_seed

EPS64 = torch.finfo(torch.float64).eps


def spec(**kw) -> ChainSpec:
    return ChainSpec(device="cpu", gradients=False, trials=kw.pop("trials", 3), **kw)


def torch_normal(seed: int, *shape: int) -> torch.Tensor:
    """The reference: torch's generator seeded with the stream's key, one normal draw."""
    return torch.empty(*shape, dtype=torch.float64).normal_(
        generator=torch.Generator().manual_seed(seed))


def test_each_trial_and_layer_has_its_own_stream():
    seeds = {weight_seed(7, layer, trial) for layer in range(1, 40) for trial in range(40)}
    seeds |= {input_seed(7, t) for t in range(40)} | {gradient_seed(7, t) for t in range(40)}
    assert len(seeds) == 39 * 40 + 80  # no two streams of a run collide
    assert all(0 <= s < 2**63 for s in seeds)  # what torch.Generator.manual_seed takes
    assert weight_seed(7, 1, 0) != weight_seed(8, 1, 0)


def test_a_layers_normal_base_is_torchs_draw_from_its_key():
    s = spec(init="scaled", width=16, dtype="float64")
    w = layer_weights(s, 3, range(1, 3))
    for i, trial in enumerate((1, 2)):
        ref = torch_normal(weight_seed(s.seed, 3, trial), 16, 16) / 4  # scaled: 1/sqrt(16)
        torch.testing.assert_close(w[i], ref, rtol=0, atol=0)  # the same draw, one product


def test_a_subset_of_trials_draws_the_same_matrices():
    s = spec(init="xavier", width=16, dtype="float64", trials=5)
    every = layer_weights(s, 2, range(5))
    np.testing.assert_array_equal(layer_weights(s, 2, range(3, 5)).numpy(), every[3:].numpy())


@pytest.mark.numerics
def test_every_base_of_a_layer_comes_from_one_normal_draw():
    n, trials = 16, range(2)
    mats = {b: torch.empty(2, n, n, dtype=torch.float64) for b in
            ("normal", "uniform", "orthogonal", "constant")}
    fill_layer_(mats, 5, 4, trials)
    for i, trial in enumerate(trials):
        z = torch_normal(weight_seed(5, 4, trial), n, n)
        torch.testing.assert_close(mats["normal"][i], z, rtol=0, atol=0)
        # U(-1, 1) as 2 Phi(z) - 1 by an independent formula (ndtr); both are within a few
        # ulps of the true value, which lies in (-1, 1): 4 eps absolute.
        ref = 2 * torch.special.ndtr(z) - 1
        torch.testing.assert_close(mats["uniform"][i], ref, rtol=0, atol=4 * EPS64)
        # torch.nn.init.orthogonal_ from the same draw: Householder QR is backward stable,
        # and Q moves by at most cond(Z) * n * eps (cond of a 16x16 Gaussian ~ 16-100).
        q = torch.nn.init.orthogonal_(torch.empty(n, n, dtype=torch.float64),
                                      generator=torch.Generator().manual_seed(
                                          weight_seed(5, 4, trial)))
        torch.testing.assert_close(mats["orthogonal"][i], q, rtol=0, atol=1000 * n * EPS64)
    assert (mats["constant"] == 1).all()


def test_uniform_alone_is_the_same_numbers_as_beside_normal():
    """The uniform buffer drawn on its own or derived next to a normal one: the same erf."""
    alone = {"uniform": torch.empty(2, 8, 8, dtype=torch.float64)}
    beside = {"normal": torch.empty(2, 8, 8, dtype=torch.float64),
              "uniform": torch.empty(2, 8, 8, dtype=torch.float64)}
    fill_layer_(alone, 1, 1, range(2))
    fill_layer_(beside, 1, 1, range(2))
    np.testing.assert_array_equal(alone["uniform"].numpy(), beside["uniform"].numpy())


@pytest.mark.numerics
def test_init_and_the_engine_draw_the_same_weights():
    """One drawing path: ``schemes.init_`` (torch-style, one tensor) and the engine's layer."""
    s = spec(init="kaiming", init_params={"distribution": "uniform"}, width=16,
             dtype="float64", trials=1)
    engine = layer_weights(s, 2, range(1))[0]
    w = schemes.init_(torch.empty(16, 16, dtype=torch.float64), "kaiming",
                      generator=torch.Generator().manual_seed(weight_seed(0, 2, 0)),
                      distribution="uniform")
    # the same normal draw and formula; a vectorized and a scalar erf may differ by an ulp
    torch.testing.assert_close(w, engine, rtol=4 * EPS64, atol=0)
    assert schemes.init_.__globals__["fill_base_"] is fill_base_  # the one drawing path


def test_a_plugin_fills_from_the_keyed_stream(monkeypatch):
    def laplace(fan_in, fan_out):
        def fill(tensor, generator):
            u = torch.empty_like(tensor).uniform_(-0.5, 0.5, generator=generator)
            return tensor.copy_(-u.sign() * torch.log1p(-2 * u.abs()))

        return WeightRecipe("custom", 1.0, fan_in, fan_out, fill=fill, custom_std=math.sqrt(2.0))

    monkeypatch.setitem(schemes.SCHEMES, "laplace", laplace)
    s = spec(init="laplace", width=8, dtype="float64", trials=2)
    w = layer_weights(s, 3, range(2))
    for trial in range(2):
        u = torch.empty(8, 8, dtype=torch.float64).uniform_(
            -0.5, 0.5, generator=torch.Generator().manual_seed(weight_seed(0, 3, trial)))
        torch.testing.assert_close(w[trial], -u.sign() * torch.log1p(-2 * u.abs()), rtol=0,
                                   atol=0)


def test_inputs_and_output_gradients_have_their_own_streams():
    s = spec(width=8, batch=3, dtype="float64", trials=2)
    x, g = draw_inputs(s, range(2)), output_gradient(s, range(2))
    for trial in range(2):
        torch.testing.assert_close(x[trial], torch_normal(input_seed(0, trial), 8, 3),
                                   rtol=0, atol=0)
        torch.testing.assert_close(g[trial], torch_normal(gradient_seed(0, trial), 8, 3),
                                   rtol=0, atol=0)
    assert not torch.equal(x, g)


def test_fill_base_refuses_an_unknown_base():
    with pytest.raises(ValueError, match="base='laplace' is not allowed; allowed: zero, normal"):
        draws.fill_base_(torch.empty(2, 2), "laplace")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_draws_do_not_depend_on_the_thread_count(threads):
    """Trials are drawn in parallel threads, each trial from its own keyed stream: the same
    numbers for any thread count (the same computation per trial, so exactly equal), for a
    chunk that does not start at trial 0 and does not split evenly."""
    from initlab.draws import fill_layer_

    def drawn(count: int) -> dict[str, torch.Tensor]:
        saved = torch.get_num_threads()
        torch.set_num_threads(count)
        try:
            mats = {base: torch.empty(7, 16, 16) for base in ("normal", "uniform")}
            fill_layer_(mats, seed=5, layer=3, trials=range(2, 9))
            return mats
        finally:
            torch.set_num_threads(saved)

    one, many = drawn(1), drawn(threads)
    assert all(torch.equal(one[base], many[base]) for base in one)
