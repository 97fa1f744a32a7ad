"""initlab.testing's correlation helpers: verdicts and messages on tanh's three phases.

Settings: tanh with b ~ N(0, 0.05) (Schoenholz et al. 2017, Fig. 1) at sigma_w2 = 1.0
(ordered: chi_1 = 0.76, xi_c = 3.6), 1.76 (the edge: chi_1 = 1.000) and 3.0 (chaotic:
c* = 0.30, xi_c = 9.1); two inputs with cosine 0.5, width 128, depth 30, 16 trials.
"""

from __future__ import annotations

import math

import pytest

from initlab.testing import assert_correlation, assert_no_collapse

TANH = ("init=scaled", "bias=normal", "bias.sigma_b2=0.05")
SMALL = {"activation": "tanh", "width": 128, "trials": 16}


def test_on_the_edge_two_inputs_neither_collapse_nor_decorrelate():
    # Mean field: c_30 = 0.80 on the edge (c* = 1 reached only algebraically), 0.2 from 1
    # and far from any chaotic c*; the 10-90 % band over trials at width 128 is ~0.7-0.9.
    result = assert_no_collapse(*TANH, "init.sigma_w2=1.76", depth=30, **SMALL)
    assert result.spec.batch == 2 and result.spec.input_correlation == 0.5  # the defaults


def test_in_the_ordered_phase_they_collapse_and_the_message_says_so():
    # sigma_w2 = 1: 1 - c_l shrinks by chi_c = 0.76 a layer, so 1 - c_30 ~ 0.5 * 0.76^29 ~
    # 1e-4 in mean field (3e-4 with the transient), well under the default collapse 1e-3; the
    # finite-width spread of 1 - c shrinks with it (the map contracts the noise too).
    with pytest.raises(AssertionError, match=r"expected two inputs to stay apart .* by layer 30"
                                             r".* but they collapsed \(1 - corr = .*"
                                             r"activation=tanh width=128 c0=0\.5: median corr "
                                             r"at layer 30 0\.999.*theory 0\.999"):
        assert_no_collapse(*TANH, "init.sigma_w2=1.0", depth=30, **SMALL)


def test_in_the_chaotic_phase_they_decorrelate_to_c_star():
    # sigma_w2 = 3: c* = 0.299 attracts with xi_c = 9.1, so |c_30 - c*| ~ 0.2 e^{-29/9.1} ~
    # 0.01 in mean field. Finite width: the per-trial cosine at layer 30 spreads with sd
    # ~0.17 over trials (measured: 10-90 % band 0.10 .. 0.55, i.e. 2.56 sd = 0.45), so the
    # median of 16 trials has se ~ 1.25 * 0.17 / 4 = 0.053; 'within 0.15 of c*' is ~3 se
    # (plus the 0.01 transient). The ordered and edge chains stay > 0.5 away from 0.299.
    with pytest.raises(AssertionError, match=r"but they decorrelated \(\|corr - c\*\| = .* "
                                             r"c\* = 0\.299"):
        assert_no_collapse(*TANH, "init.sigma_w2=3.0", depth=30, decorrelate=0.15, **SMALL)


def test_assert_correlation_checks_layer_1_against_the_closed_form():
    # c_1 = (sigma_w2 c0 + sigma_b2) / (sigma_w2 + sigma_b2) for unit-variance inputs. At
    # width n the per-trial cosine of two width-n Gaussian vectors has sd ~ (1 - c^2) / sqrt(n)
    # = 0.74 / sqrt(128) = 0.065; the median of 16 trials has se 1.25 * 0.065 / 4 = 0.020;
    # the bounds are c_1 +- 4 se.
    c1 = (1.76 * 0.5 + 0.05) / (1.76 + 0.05)
    se = 1.25 * (1 - c1**2) / math.sqrt(128) / math.sqrt(16)
    assert_correlation(*TANH, "init.sigma_w2=1.76", depth=1, at_layer=1, above=c1 - 4 * se,
                       below=c1 + 4 * se, **SMALL)
    with pytest.raises(AssertionError, match=r"expected the median corr at layer 1 below 0\.3, "
                                             r"but init=scaled init\.sigma_w2=1\.76 bias=normal "
                                             r"\(sigma_b2=0\.05\).*theory 0\.5138"):
        assert_correlation(*TANH, "init.sigma_w2=1.76", depth=1, at_layer=1, below=0.3, **SMALL)


def test_bad_requests_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"batch=1 is not allowed here; .* needs batch >= 2"):
        assert_correlation(depth=1, width=8, trials=2, batch=1, input_correlation=0, above=0)
    with pytest.raises(ValueError, match=r"at_layer=5 is not allowed; at_layer must be in 0\.\.1"):
        assert_correlation(depth=1, width=8, trials=2, at_layer=5, above=0)
    with pytest.raises(ValueError, match="needs above=, below= or both"):
        assert_correlation(depth=1, width=8, trials=2)
