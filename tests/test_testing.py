"""initlab.testing: the regression helpers a user puts in their own CI."""

from __future__ import annotations

import pytest

from initlab.testing import assert_explodes, assert_stable, assert_vanishes

TINY = {"depth": 3, "width": 8, "trials": 2}


def test_a_zero_init_vanishes_at_layer_1():
    # W = 0: x_1 = act(0) = 0 for relu, so every trial is gone at layer 1 exactly.
    assert_vanishes(init="zero", activation="relu", by_layer=1, **TINY)


def test_a_failed_expectation_says_what_the_chain_did():
    with pytest.raises(AssertionError, match=r"expected stable, but init=zero .* vanished at "
                                             r"layer 1 .*trials: 2 vanished"):
        assert_stable(init="zero", activation="relu", **TINY)
    with pytest.raises(AssertionError, match="expected exploded"):
        assert_explodes(init="zero", activation="relu", **TINY)


def test_overrides_are_typed_as_on_the_command_line():
    # normal with std 100 and no activation: the std grows x(100 * sqrt(8)) a layer, past the
    # default explode threshold 1e4 at layer 2 (283**2 = 8e4), so exploded by layer 2.
    assert_explodes("init=normal", "init.std=100", "activation=none", by_layer=2, **TINY)


def test_a_bad_setting_is_the_command_line_message():
    with pytest.raises(ValueError, match=r"^width=1 is not allowed; width must be an integer >= 2"):
        assert_stable(width=1)
