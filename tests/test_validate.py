"""initlab.validate: a sweep over separable groups is checked without composing every
combination, and that shortcut gives exactly the configs full composition gives."""

from __future__ import annotations

import itertools

import pytest
from omegaconf import OmegaConf

from initlab.validate import UsageError, _combinations, _composer, check_args


class _Override:
    def __init__(self, key: str) -> None:
        self.key_or_group = key

    def get_key_element(self) -> str:
        return self.key_or_group


SWEEP = [("init", ["xavier", "kaiming", "critical"]), ("activation", ["tanh", "relu"]),
         ("bias", ["zero", "normal"])]
FIXED = ["depth=3", "init.gain=1.5"]


def test_swapping_group_nodes_gives_the_configs_that_composing_each_combination_gives():
    groups = [(_Override(key), values) for key, values in SWEEP]
    calls = []
    with _composer() as compose_with:

        def composed(choice):
            calls.append(choice)
            return compose_with([*(f"{k}={v}" for (k, _), v in zip(SWEEP, choice, strict=True)),
                                 *FIXED])

        fast = [OmegaConf.to_container(c) for c in _combinations(groups, composed)]
        assert len(calls) == 3 + 2 + 2  # one per value, not one per combination (12)
        full = [OmegaConf.to_container(composed(choice))
                for choice in itertools.product(*[values for _, values in SWEEP])]
    assert fast == full


def test_a_bad_combination_is_still_caught_on_the_shortcut():
    with pytest.raises(UsageError, match="gain"):
        check_args(["-m", "init=scaled,xavier", "activation=tanh,relu", "init.gain=-1"])

