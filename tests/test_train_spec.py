"""TrainSpec's checks, fastai's 1cycle schedule against its formula and published shape, and
the optimizers' hyper-parameters per update (initlab.train.spec, .schedule, .optim)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from initlab.rules import SpecError
from initlab.train.optim import make_optimizer, set_hypers
from initlab.train.schedule import combined_cos, one_cycle, sched_cos, schedule
from initlab.train.spec import TrainSpec


@pytest.mark.parametrize("kwargs, words", [
    ({"steps": 0}, "train.steps=0"),
    ({"steps": 2.5}, "train.steps=2.5"),
    ({"batch_size": True}, "train.batch_size=True"),
    ({"optimizer": "lbfgs"}, "allowed: sgd, momentum, adam, rmsprop"),
    ({"lr": 0.0}, "train.lr=0.0"),
    ({"lr": float("nan")}, "train.lr=nan"),
    ({"lr": float("inf")}, "train.lr=inf"),
    ({"schedule": "cosine"}, "allowed: constant, one_cycle"),
    ({"momentum": 1.0}, "train.momentum=1.0"),
    ({"optimizer": "sgd", "momentum": 0.9}, "use optimizer=momentum"),
    ({"sqr_mom": -0.1}, "train.sqr_mom=-0.1"),
    ({"eps": 0}, "train.eps=0"),
    ({"weight_decay": -1e-4}, "train.weight_decay=-0.0001"),
    ({"div": 0.5}, "train.div=0.5"),
    ({"pct_start": 1.0}, "train.pct_start=1.0"),
    ({"moms": (0.95, 0.85)}, "moms must be three numbers"),
    ({"moms": (0.95, 1.2, 0.95)}, "moms must be three numbers"),
    ({"record_every": 0}, "train.record_every=0"),
    ({"eval_every": -3}, "train.eval_every=-3"),
    ({"data": "mnist"}, "allowed: digits, teacher, custom"),
    ({"data": "custom"}, "needs train.data_params._target_"),
    ({"data_params": [1, 2]}, "train.data_params=[1, 2]"),
    ({"data_seed": -1}, "train.data_seed=-1"),
    ({"near_zero": -0.05}, "train.near_zero=-0.05"),
    ({"pass_fraction": 1.5}, "train.pass_fraction=1.5"),
    ({"histogram": "yes"}, "train.histogram='yes'"),
])
def test_bad_values_are_one_line_spec_errors(kwargs, words):
    with pytest.raises(SpecError) as info:
        TrainSpec(**kwargs)
    message = str(info.value)
    assert "\n" not in message and words in message, message


def test_recorded_and_evaluated_steps_include_first_and_last():
    spec = TrainSpec(steps=25, record_every=10, eval_every=7)
    assert spec.record_steps() == [0, 10, 20, 25]
    assert spec.eval_steps() == [0, 7, 14, 21, 25]
    assert TrainSpec(steps=1, record_every=10).record_steps() == [0, 1]


def test_sched_cos_is_fastais_formula():
    # fastai/callback/schedule.py: start + (1 + cos(pi * (1 - pos))) * (end - start) / 2
    for start, end in ((1.0, 3.0), (0.95, 0.85)):
        for pos in np.linspace(0, 1, 11):
            want = start + (1 + math.cos(math.pi * (1 - pos))) * (end - start) / 2
            assert sched_cos(start, end, pos) == want
        assert sched_cos(start, end, 0.0) == pytest.approx(start, abs=1e-15)
        assert sched_cos(start, end, 1.0) == end


def test_one_cycle_matches_the_formula_update_by_update():
    steps, lr_max, pct = 200, 0.06, 0.25
    lr, mom = one_cycle(steps, lr_max)
    for i in range(steps):
        pos = i / steps  # fastai's pct_train at before_batch
        if pos < pct:
            p = pos / pct
            want_lr = lr_max / 25 + (1 + math.cos(math.pi * (1 - p))) * (lr_max - lr_max / 25) / 2
            want_mom = 0.95 + (1 + math.cos(math.pi * (1 - p))) * (0.85 - 0.95) / 2
        else:
            p = (pos - pct) / (1 - pct)
            want_lr = lr_max + (1 + math.cos(math.pi * (1 - p))) * (lr_max / 1e5 - lr_max) / 2
            want_mom = 0.85 + (1 + math.cos(math.pi * (1 - p))) * (0.95 - 0.85) / 2
        assert lr[i] == pytest.approx(want_lr, rel=1e-14), i
        assert mom[i] == pytest.approx(want_mom, rel=1e-14), i


def test_one_cycle_has_fastais_published_shape():
    steps, lr_max = 400, 1e-2
    lr, mom = one_cycle(steps, lr_max)
    assert lr[0] == pytest.approx(lr_max / 25, rel=1e-12)  # div = 25
    assert mom[0] == pytest.approx(0.95, rel=1e-12)
    peak = int(np.argmax(lr))
    assert peak == steps // 4 and lr[peak] == pytest.approx(lr_max, rel=1e-12)  # pct_start
    assert int(np.argmin(mom)) == peak and mom[peak] == pytest.approx(0.85, rel=1e-12)
    assert np.all(np.diff(lr[:peak + 1]) > 0) and np.all(np.diff(lr[peak:]) < 0)
    # The last update runs at pos = (n - 1) / n: the cosine's distance from its end is
    # (lr_max - lr_max / 1e5) (1 - cos(pi / (0.75 n))) / 2 ~ lr_max (pi / (0.75 n))^2 / 4.
    gap = lr_max * (math.pi / (0.75 * steps)) ** 2 / 4
    assert lr[-1] - lr_max / 1e5 == pytest.approx(gap, rel=1e-3)
    end = combined_cos(0.25, lr_max / 25, lr_max, lr_max / 1e5, 1.0)
    assert end == pytest.approx(lr_max / 1e5, rel=1e-9)  # cos(0) = 1: exact up to rounding
    assert mom[-1] == pytest.approx(0.95, abs=1e-4)


def test_schedule_cycles_momentum_only_where_the_optimizer_has_one():
    for opt, cycles in (("momentum", True), ("adam", True), ("sgd", False), ("rmsprop", False)):
        spec = TrainSpec(steps=40, optimizer=opt, schedule="one_cycle", lr=0.1)
        lr, mom = schedule(spec)
        assert lr[10] == pytest.approx(0.1)
        assert bool(mom[10] == pytest.approx(0.85)) is cycles, opt
        assert spec.cycles_momentum is cycles
    spec = TrainSpec(steps=40, optimizer="rmsprop", momentum=0.9, schedule="one_cycle")
    assert spec.cycles_momentum and schedule(spec)[1][10] == pytest.approx(0.85)
    lr, mom = schedule(TrainSpec(steps=5, lr=0.3, optimizer="momentum", momentum=0.8))
    assert list(lr) == [0.3] * 5 and list(mom) == [0.8] * 5


def test_optimizers_are_torchs_with_the_hyper_parameters_of_each_update():
    p = [torch.zeros(3, requires_grad=True)]
    adam = make_optimizer(p, TrainSpec(optimizer="adam", sqr_mom=0.99, eps=1e-6))
    assert isinstance(adam, torch.optim.Adam)
    assert adam.param_groups[0]["betas"] == (0.9, 0.99) and adam.param_groups[0]["eps"] == 1e-6
    set_hypers(adam, 0.01, 0.85)
    assert adam.param_groups[0]["lr"] == 0.01 and adam.param_groups[0]["betas"] == (0.85, 0.99)
    rms = make_optimizer(p, TrainSpec(optimizer="rmsprop"))
    assert isinstance(rms, torch.optim.RMSprop) and rms.param_groups[0]["alpha"] == 0.99
    set_hypers(rms, 0.02, 0.85)  # no momentum buffer: its momentum stays 0
    assert rms.param_groups[0]["momentum"] == 0.0 and rms.param_groups[0]["lr"] == 0.02
    sgd = make_optimizer(p, TrainSpec(optimizer="momentum"))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    set_hypers(sgd, 0.1, 0.85)
    assert sgd.param_groups[0]["momentum"] == 0.85
    assert make_optimizer(p, TrainSpec(optimizer="sgd")).param_groups[0]["momentum"] == 0.0


def test_describe_is_flat():
    d = TrainSpec(schedule="one_cycle", data="teacher", data_params={"inputs": 8}).describe()
    assert d["train_moms"] == "0.95/0.85/0.95" and d["train_data_inputs"] == 8
    assert all(not isinstance(v, (dict, list, tuple)) for v in d.values())
