"""initlab.validate: a sweep over separable groups is checked without composing every
combination, and that shortcut gives exactly the configs full composition gives."""

from __future__ import annotations

import itertools

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from initlab.validate import Axis, UsageError, _combinations, _composer, check_args

SWEEP = [("init", ["xavier", "kaiming", "critical"]), ("activation", ["tanh", "relu"]),
         ("bias", ["zero", "normal"])]
FIXED = ["depth=3", "init.gain=1.5"]


def _axes(sweep):
    parsed = OverridesParser.create().parse_overrides([f"{k}={','.join(v)}" for k, v in sweep])
    return [Axis(o, list(o.sweep_iterator()), list(o.sweep_string_iterator())) for o in parsed]


def test_swapping_group_nodes_gives_the_configs_that_composing_each_combination_gives():
    groups = _axes(SWEEP)
    calls = []
    with _composer() as compose_with:

        def composed(choice):
            calls.append(choice)
            return compose_with([*(a.line(i) for a, i in zip(groups, choice, strict=True)),
                                 *FIXED])

        fast = [OmegaConf.to_container(c) for c in _combinations(groups, composed)]
        assert len(calls) == 3  # the i-th value of each group together, not 12 combinations
        full = [OmegaConf.to_container(composed(list(choice)))
                for choice in itertools.product(*[range(len(v)) for _, v in SWEEP])]
    assert fast == full


def test_a_bad_combination_is_still_caught_on_the_shortcut():
    with pytest.raises(UsageError, match="gain"):
        check_args(["-m", "init=scaled,xavier", "activation=tanh,relu", "init.gain=-1"])



# --- every job of a sweep is checked before the first starts (issue 15, item 1) ----------


def test_a_presets_own_swept_values_are_checked_against_the_command_lines_scheme(
        tmp_path, monkeypatch, capsys):
    """experiments=phase_diagram sweeps init.sigma_w2, a parameter kaiming does not take:
    refused before any job, not 192 failed jobs."""
    from conftest import main_in_process, one_line

    monkeypatch.chdir(tmp_path)
    code, err = main_in_process(["experiments=phase_diagram", "init=kaiming"], capsys)
    assert code == 2
    assert one_line(err) == ("initlab: error: init.sigma_w2=0.5 does not apply to "
                             "init='kaiming'; its parameters: mode, distribution, negative_slope")
    assert not (tmp_path / "outputs").exists()


def test_the_presets_sweep_meets_the_command_lines_sweep_as_hydra_runs_it():
    """The command line replaces a preset's swept key in place (Hydra's basic sweeper):
    a bad value swept on the command line is caught, a preset value it replaced is not."""
    with pytest.raises(UsageError, match=r"^init.sigma_w2=-1.0 is not allowed"):
        check_args(["experiments=phase_diagram", "init.sigma_w2=1,-1"])
    check_args(["experiments=phase_diagram", "bias.sigma_b2=0.1"])


def test_every_combination_is_checked_not_only_the_first_256():
    """trials=0 comes after 257 seeds; the bad pair (batch=1, input_correlation=0.5) after
    299 depths."""
    with pytest.raises(UsageError, match=r"^trials=0 is not allowed; trials must be an "
                                         r"integer >= 1$"):
        check_args(["-m", "trials=1,0", "seed=range(0,257)", "depth=1", "width=2"])
    with pytest.raises(UsageError, match=r"input_correlation=0.5 needs batch >= 2"):
        check_args(["-m", "batch=2,1", "depth=range(1,300)", "input_correlation=0.5"])


@pytest.mark.parametrize("args, message", [
    # each value is fine beside the other axis' first value; only the pair fails
    (["-m", "batch=2,1", "input_correlation=0,0.5"], r"input_correlation=0.5 needs batch >= 2"),
    (["-m", "model=conv_chain,simple_cnn", "model.size=199,5", "model.depth=2,3"],
     r"model.size=5 is too small for depth=3"),
    (["-m", "model=chain,conv_chain", "depth=100,5"],
     r"depth=5 does not apply to model=conv_chain"),
])
def test_a_value_whose_validity_depends_on_another_axis_is_caught_in_the_pair(args, message):
    with pytest.raises(UsageError, match=message):
        check_args(args)


def test_a_valid_preset_sweep_passes_and_an_independent_setting_is_checked_value_by_value():
    check_args(["experiments=all_pairs"])
    check_args(["experiments=journey"])
    with pytest.raises(UsageError, match=r"^seed=-1 is not allowed"):
        check_args(["-m", "init=scaled,kaiming", "seed=0,1,-1"])
