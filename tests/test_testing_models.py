"""initlab.testing on models: verdicts, layers and messages against closed forms.

References: a linear chain's std_l = g^l (g = std * sqrt(n), unit inputs); a ReLU
chain's q_l = n std^2 q_{l-1} / 2; tanh(x) = x - x^3/3 + ... for a small signal; a
residual MLP's second-moment recursion; the arc-cosine kernel for a ReLU layer's
correlation (Cho & Saul 2009).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from initlab.testing import (
    assert_correlation,
    assert_explodes,
    assert_no_collapse,
    assert_stable,
    assert_vanishes,
)

# small tensors: one torch thread each (tests/conftest.py::one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")


def chain_of(width: int, depth: int, act: type[nn.Module] | None = None,
             bias: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers.append(nn.Linear(width, width, bias=bias))
        if act is not None:
            layers.append(act())
    return nn.Sequential(*layers)


def test_a_kaiming_relu_mlp_is_stable_in_three_lines():
    # He init keeps q_l = q_0 in mean field; 20 layers at width 128: ln std has sd
    # 0.5 sqrt(5 L / n) = 0.4 per trial (Hanin & Rolnick 2018), 23 sd from the thresholds.
    result = assert_stable(lambda: chain_of(128, 20, nn.ReLU), (128,), init="kaiming")
    assert result.depth == 20 and result.module_types[1:] == ["Linear"] * 20
    assert 0.3 < np.median(result.final("std")) < 3
    model = chain_of(128, 20, nn.ReLU)  # an instance: redrawn per trial, then given back
    before = model[0].weight.detach().clone()
    assert_stable(model, torch.randn(4, 128), init="kaiming")
    assert torch.equal(model[0].weight, before)


def test_a_linear_chain_explodes_exactly_where_the_closed_form_says():
    # No activation, W ~ N(0, std^2), unit Gaussian inputs: std_l = g^l with g = std sqrt(n)
    # = 3. The threshold 3^8.5 sits half a layer (ln 3 / 2 = 0.55) from std_8 and std_9;
    # per layer ln std moves by sd 1 / sqrt(2 n) = 0.044 (chi-square of n terms), over 9
    # layers 0.13: the margin is 4 sd per trial, and the verdict takes the median of 8.
    n, g = 256, 3.0
    explode = g**8.5
    make = lambda: chain_of(n, 12)  # noqa: E731
    kwargs = dict(init="normal", init_params={"std": g / math.sqrt(n)}, explode_std=explode)
    result = assert_explodes(make, (n,), by_layer=9, **kwargs)
    assert result.modules[9] == "8"
    with pytest.raises(AssertionError, match=r"expected stable, but model=<lambda> init=normal "
                                             r"init\.std=0\.1875 bias=model \(8 trials, batch 4, "
                                             r"every layer of 12 judged\) exploded at layer 9 "
                                             r"'8' \(Linear\), median std there [12]\.\d+e\+04; "
                                             r"trials: 8 exploded"):
        assert_stable(make, (n,), **kwargs)
    with pytest.raises(AssertionError, match=r"expected exploded by layer 8 '7', but .* "
                                             r"exploded at layer 9 '8'"):
        assert_explodes(make, (n,), by_layer="7", **kwargs)
    # The window: layers 1..8 alone never pass 3^8.5, so they are judged stable.
    assert_stable(make, (n,), depth_window=(1, "7"), **kwargs)
    assert_stable(make, (n,), depth_window=slice(0, 8), **kwargs)
    with pytest.raises(AssertionError, match=r"layers 1\.\.9 of 12 judged\) exploded at layer 9"):
        assert_stable(make, (n,), depth_window=(1, -4), **kwargs)


def test_normal_std_1_explodes_and_the_message_names_the_module():
    # W ~ N(0, 1) at width 100 with ReLU: pre-activation std_1 = sqrt(n) = 10, then x
    # sqrt(n / 2) = 7.07 a layer: 10, 71, 500, 3536, 25000. The first past 1e4 is layer 5
    # (ln margins 1.04 and 0.92 to the threshold; ln std has sd 0.5 sqrt(5 * 5 / 100) = 0.25
    # per trial at layer 5: 3.7 sd, and the verdict is the median of 8 trials).
    make = lambda: chain_of(100, 8, nn.ReLU)  # noqa: E731
    with pytest.raises(AssertionError, match=r"expected stable, but model=<lambda> init=normal "
                                             r"bias=zero .* exploded at layer 5 '8' \(Linear\)"):
        assert_stable(make, (100,), init="normal", bias="zero")
    assert_explodes(make, (100,), init="normal", bias="zero", by_layer=5)


def test_tanh_with_a_small_std_vanishes_where_the_closed_form_says():
    # g = std sqrt(n) = 0.25, no bias: pre-activations h_l = W tanh(h_{l-1}). For a small
    # signal tanh(x) = x (1 - x^2 / 3 ...): layer 1's tanh shrinks std 0.25 by ~6 %, later
    # ones by < 1 %, so std_l ~ 0.94 * 0.25^l: 2.2e-4 at layer 6, 5.7e-5 at layer 7. The
    # vanish threshold 1e-4 sits ln 0.8 and ln 0.56 from them; per-trial ln std has sd
    # 0.044 sqrt(7) = 0.12 (chi-square per layer, as above): > 4.5 sd.
    n = 256
    make = lambda: chain_of(n, 10, nn.Tanh)  # noqa: E731
    kwargs = dict(init="normal", init_params={"std": 0.25 / math.sqrt(n)})
    result = assert_vanishes(make, (n,), by_layer=7, **kwargs)
    assert result.modules[7] == "12"  # the 7th Linear of Linear, Tanh, Linear, ...
    with pytest.raises(AssertionError, match=r"vanished at layer 7 '12' \(Linear\), median std "
                                             r"there [5-6]\.\d+e-05"):
        assert_stable(make, (n,), **kwargs)
    with pytest.raises(AssertionError, match=r"expected vanished by layer 6 '10'"):
        assert_vanishes(make, (n,), by_layer=6, **kwargs)


class Block(nn.Module):
    """x + fc2(relu(fc1(x))): a pre-activation-free residual MLP block."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(n, n), nn.Linear(n, n)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))


def test_a_residual_block_under_torch_default_init_against_its_recursion():
    # torch's default Linear init: W ~ U with variance 1 / (3 n), b ~ U(+-1/sqrt(n)) with
    # variance 1 / (3 n). Second moment of the stream: fc1 gives q/3 + 1/(3n), ReLU halves
    # it (a zero-mean symmetric input), fc2 gives a third of that + 1/(3n):
    # q_{l+1} = q_l (1 + 1/18) + 1/(18 n) + 1/(3 n). Stable: q_20 = 2.95 q_0 + O(1/n).
    n, blocks, trials = 128, 20, 8
    make = lambda: nn.Sequential(*[Block(n) for _ in range(blocks)])  # noqa: E731
    result = assert_stable(make, (n,), include=["Block"], trials=trials)
    assert result.module_types[1:] == ["Block"] * blocks
    q = 1.0
    for _ in range(blocks):
        q = q * (1 + 1 / 18) + 1 / (18 * n) + 1 / (3 * n)
    ln_std = np.log(result.final("std"))
    # The median of T trials has se ~ 1.25 s / sqrt(T) (s: the trials' own sd); 4 se.
    se = 1.25 * ln_std.std(ddof=1) / math.sqrt(trials)
    assert abs(np.median(ln_std) - 0.5 * math.log(q)) < 4 * se + 1e-3, (ln_std, q)
    # The same blocks with N(0, 1) weights at width 256: fc1 multiplies q by n, ReLU halves
    # it, fc2 multiplies by n again: q_1 = 1 + n^2 / 2 (std 181), q_2 ~ q_1^2 (std 32769):
    # the stream passes 1e4 at block 2 (ln margins 4.0 below, 1.2 above; per-trial ln std
    # moves by ~ 1 / sqrt(n) per layer).
    wide = lambda: nn.Sequential(*[Block(256) for _ in range(4)])  # noqa: E731
    with pytest.raises(AssertionError, match=r"exploded at layer 2 '1' \(Block\)"):
        assert_stable(wide, (256,), include=["Block"], init="normal", trials=trials)


def test_correlation_of_a_relu_layer_is_the_arc_cosine_kernel():
    # Two inputs with cosine c0 = 0.5 (the default for a shape); layer 2 = W2 relu(W1 x):
    # its cosine is E[relu(u) relu(v)] / E[relu(u)^2] = (sqrt(1 - c^2) + (pi - acos c) c)/pi
    # = 0.609. Per trial the cosine of n-vectors has sd ~ (1 - c^2) / sqrt(n) = 0.04 per
    # layer (n = 256; inputs and 2 layers: ~0.064 together), the median of 16 trials
    # se 1.25 * 0.064 / 4 = 0.02; bounds +- 4 se.
    n, c = 256, 0.5
    c2 = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi
    make = lambda: nn.Sequential(nn.Linear(n, n, bias=False), nn.ReLU(),  # noqa: E731
                                 nn.Linear(n, n, bias=False))
    result = assert_correlation(make, (n,), init="kaiming", trials=16, at_layer=2,
                                above=c2 - 0.08, below=c2 + 0.08)
    assert result.settings["batch"] == 2
    with pytest.raises(AssertionError, match=r"expected the median corr at layer 2 below 0\.3, "
                                             r"but model=<lambda> init=kaiming bias=model: "
                                             r"median corr at layer 2 '2' \(Linear\) "
                                             r"0\.[56]\d+ \(10-90 % of 16"):
        assert_correlation(make, (n,), init="kaiming", trials=16, at_layer="2", below=0.3)


def test_a_layer_that_ignores_its_input_collapses_and_one_that_keeps_it_does_not():
    # W = 0 and b ~ N(0, 1): every sample's output is b, cosine exactly 1 (collapsed); the
    # variance is b's, ~1 over 32 units: stable. A kaiming layer keeps c0 = 0.5 +- 0.06.
    make = lambda: nn.Sequential(nn.Linear(32, 32))  # noqa: E731
    with pytest.raises(AssertionError, match=r"but they collapsed \(1 - corr = 0 < 0\.001\): "
                                             r"model=<lambda> init=zero bias=normal"):
        assert_no_collapse(make, (32,), init="zero", bias="normal", trials=4)
    assert_no_collapse(make, (32,), init="kaiming", bias="zero", trials=4)


def test_inputs_and_windows_are_checked_in_one_line():
    make = lambda: chain_of(8, 3)  # noqa: E731
    with pytest.raises(ValueError, match=r"^inputs='x' is not allowed; pass a batch-first"):
        assert_stable(make, "x")
    with pytest.raises(ValueError, match=r"^depth_window last='9' is not a probed module; "
                                         r"allowed: 0, 1, 2$"):
        assert_stable(make, (8,), depth_window=(1, "9"))
    with pytest.raises(ValueError, match=r"^depth_window first=4 is not allowed; layers are "
                                         r"1\.\.3"):
        assert_stable(make, (8,), depth_window=(4, 3))
    with pytest.raises(ValueError, match=r"selects no layer of the 3 probed"):
        assert_stable(make, (8,), depth_window=slice(5, None))
    with pytest.raises(ValueError, match=r"batch=1 is not allowed here"):
        assert_correlation(make, (8,), batch=1, above=0)
    with pytest.raises(ValueError, match=r"^batch=0 is not allowed; batch must be an integer"):
        assert_stable(make, (8,), batch=0)
    with pytest.raises(ValueError, match=r"^correlation=1\.0 is not allowed"):
        assert_correlation(make, (8,), correlation=1.0, above=0)
    x = torch.randn(4, 8)  # a tensor: the same batch every trial
    assert assert_stable(make, x, init="orthogonal", trials=2).settings["batch"] == 4
