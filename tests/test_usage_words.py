"""Words for two common slips: several values without -m, and a misspelt option."""

from __future__ import annotations

from conftest import main_in_process, one_line


def test_several_values_without_m_say_use_m(capsys):
    code, err = main_in_process(["activation=relu,tanh"], capsys)
    assert code == 2
    assert one_line(err) == ("initlab: error: activation=relu,tanh lists several values, "
                             "which only a sweep runs: add -m (initlab -m "
                             "activation=relu,tanh ...)")


def test_a_preset_that_sweeps_takes_lists_without_m(capsys):
    # experiments=trainability runs as a sweep (hydra.mode=MULTIRUN): a list is its axis;
    # a bad value in it is refused before anything runs, so nothing is trained here
    code, err = main_in_process(["experiments=trainability", "depth=10,0"], capsys)
    assert code == 2 and "depth=0 is not allowed" in one_line(err)


def test_a_misspelt_option_gets_the_nearest_one(capsys):
    code, err = main_in_process(["-m", "init=kaimnig,xavier"], capsys)
    assert code == 2
    assert one_line(err).startswith("initlab: error: init=kaimnig is not an option; did you "
                                    "mean init=kaiming? allowed: constant, critical, kaiming")
    code, err = main_in_process(["activation=qwerty"], capsys)
    assert "did you mean" not in one_line(err)  # nothing near: no guess
