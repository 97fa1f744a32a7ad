"""Verdict rules on hand-made statistics."""

from __future__ import annotations

import numpy as np
import pytest

from initlab.verdict import Thresholds, first_nonfinite_layer, overall, trial_verdicts


def stats(std_rows, finite_rows=None, zero_rows=None):
    std = np.array(std_rows, dtype=float)
    return {
        "std": std,
        "finite": np.array(finite_rows, dtype=bool) if finite_rows else np.isfinite(std),
        "zero_frac": np.array(zero_rows, dtype=float) if zero_rows else np.zeros_like(std),
    }


def test_each_verdict_and_its_layer():
    s = stats([[1, 1, 1, 1], [1, 10, 1e5, 1e9], [1, 0.1, 1e-5, 0], [1, 1e3, np.nan, np.nan]])
    names, layers = trial_verdicts(s, Thresholds(explode_std=1e4, vanish_std=1e-4))
    assert names == ["stable", "exploded", "vanished", "exploded"]
    assert layers == [None, 2, 2, 2]


def test_all_zero_layer_is_vanished_even_with_a_zero_threshold_crossing_later():
    s = stats([[1, 0.5, 0.5]], zero_rows=[[0, 1.0, 0]])
    assert trial_verdicts(s, Thresholds()) == (["vanished"], [1])


def test_input_layer_is_not_judged():
    s = stats([[1e-9, 1, 1]])
    assert trial_verdicts(s, Thresholds())[0] == ["stable"]


def test_overall_is_the_most_common_with_counts():
    out = overall(["stable", "exploded", "exploded"], [None, 28, 30])
    assert out == {"verdict": "exploded", "verdict_layer": 29,
                   "verdict_counts": {"exploded": 2, "vanished": 0, "stable": 1}}


def test_first_nonfinite_layer():
    finite = np.array([[True, True, False], [True, True, True]])
    assert first_nonfinite_layer(finite).tolist() == [2, -1]


def test_thresholds_must_be_ordered():
    with pytest.raises(ValueError, match="need 0 < vanish_std < explode_std"):
        Thresholds(explode_std=1e-3, vanish_std=1.0)
