"""Training data (initlab.train.data): the fixed digits split, the teacher task, a user's data
with one-line errors, and each trial's keyed batch order."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from initlab.rules import SpecError
from initlab.train.data import (
    TEST_FRACTION,
    batch_order,
    digits,
    digits_split,
    load_data,
    teacher,
)
from initlab.train.spec import TrainSpec


def test_digits_split_is_fixed_stratified_and_complete():
    train, test = digits_split()
    again = digits_split()
    assert torch.equal(train, again[0]) and torch.equal(test, again[1])
    assert len(train) + len(test) == 1797 and not set(train.tolist()) & set(test.tolist())
    data = digits()
    labels = torch.cat([data.y_train, data.y_test])
    counts = torch.bincount(data.y_test, minlength=10)
    totals = torch.bincount(labels, minlength=10)
    # per class round(0.2 n_c) images held out: 35..37 of 174..183
    assert torch.equal(counts, torch.round(TEST_FRACTION * totals.double()).long())
    assert len(data.y_test) == 359 and data.chance == pytest.approx(37 / 359)


def test_digits_are_standardised_on_the_training_set_and_resized():
    flat = digits()
    assert flat.x_train.shape == (1438, 64) and flat.outputs == 10
    assert abs(float(flat.x_train.mean())) < 1e-12
    assert float(flat.x_train.std()) == pytest.approx(1.0, rel=1e-12)
    assert abs(float(flat.x_test.mean())) < 0.1  # the held-out set: nearly so
    img = digits((3, 28, 28))
    assert img.x_train.shape == (1438, 3, 28, 28)
    assert torch.equal(img.x_train[:, 0], img.x_train[:, 2])
    assert img.x_train.stride(1) == 0  # channels repeated as a view, not copied
    assert float(img.x_train[:, 0].std()) == pytest.approx(1.0, rel=1e-9)  # 1.1e6 sums
    assert torch.equal(img.y_train, flat.y_train)
    with pytest.raises(SpecError, match="64 values or an image"):
        digits((10,))


def test_teacher_is_fixed_by_data_seed_of_any_shape():
    a = teacher(None, 0, samples=500, inputs=12, classes=4)
    b = teacher(None, 0, samples=500, inputs=12, classes=4)
    c = teacher(None, 1, samples=500, inputs=12, classes=4)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)
    assert a.x_train.shape == (400, 12) and a.x_test.shape == (100, 12)
    # centred logits: every class present, none far above the others
    counts = torch.bincount(torch.cat([a.y_train, a.y_test]), minlength=4)
    assert counts.min() > 50
    img = teacher((2, 5, 5), 0, samples=100)
    assert img.x_train.shape == (80, 2, 5, 5) and img.task == "classify"
    reg = teacher(None, 0, samples=100, task="regress", classes=3, noise=0.1)
    assert reg.y_train.shape == (80, 3) and reg.y_train.is_floating_point()
    assert np.isnan(reg.chance)


@pytest.mark.parametrize("params, words", [
    ({"colour": 1}, "train.data_params.colour does not apply to data=teacher"),
    ({"classes": 0}, "train.data_params.classes=0"),
    ({"depth": -1}, "train.data_params.depth=-1"),
    ({"task": "rank"}, "allowed: classify, regress"),
    ({"test_fraction": 1.0}, "train.data_params.test_fraction=1.0"),
])
def test_teacher_parameters_are_checked(params, words):
    with pytest.raises(SpecError) as info:
        load_data(TrainSpec(data="teacher", data_params=params))
    assert words in str(info.value) and "\n" not in str(info.value)


@pytest.fixture()
def user_data(monkeypatch):
    module = types.ModuleType("user_data_for_tests")
    rng = np.random.default_rng(0)

    def good(n=100, dict_out=False):
        x = rng.normal(size=(n, 5)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int64)
        out = (x[:80], y[:80], x[80:], y[80:])
        keys = ("x_train", "y_train", "x_test", "y_test")
        return dict(zip(keys, out, strict=True)) if dict_out else out

    module.good = good
    module.regress = lambda: (np.ones((10, 2)), np.ones(10), np.ones((5, 2)), np.ones(5))
    module.short = lambda: (np.ones((10, 2)), np.ones(9, dtype=int), np.ones((5, 2)),
                            np.ones(5, dtype=int))
    module.wrong = lambda: {"x_train": 1}
    module.raises = lambda: 1 / 0
    monkeypatch.setitem(sys.modules, "user_data_for_tests", module)
    return "user_data_for_tests"


def test_custom_data_from_a_users_function(user_data):
    spec = TrainSpec(data="custom", data_params={"_target_": f"{user_data}.good", "n": 90},
                     batch_size=16)
    data = load_data(spec, (5,))
    assert data.task == "classify" and data.outputs == 2 and len(data.x_test) == 10
    assert data.x_train.dtype == torch.float32
    spec = TrainSpec(data="custom", data_params={"_target_": f"{user_data}.good",
                                                 "dict_out": True}, batch_size=8)
    assert len(load_data(spec).x_train) == 80
    reg = load_data(TrainSpec(data="custom", batch_size=2,
                              data_params={"_target_": f"{user_data}.regress"}))
    assert reg.task == "regress" and reg.y_train.shape == (10, 1)


@pytest.mark.parametrize("target, words", [
    ("short", "must be non-empty and of equal lengths"),
    ("wrong", "returned a dict without"),
    ("raises", "failed: ZeroDivisionError"),
    ("missing", "has no attribute 'missing'"),
])
def test_custom_data_errors_are_one_line(user_data, target, words):
    spec = TrainSpec(data="custom", data_params={"_target_": f"{user_data}.{target}"},
                     batch_size=2)
    with pytest.raises(SpecError if target != "missing" else ValueError) as info:
        load_data(spec)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_custom_data_must_fit_the_model(user_data):
    spec = TrainSpec(data="custom", data_params={"_target_": f"{user_data}.good"}, batch_size=8)
    with pytest.raises(SpecError, match="do not fit the model's input"):
        load_data(spec, (1, 28, 28))


def test_batch_size_beyond_the_training_set_is_refused():
    with pytest.raises(SpecError, match="train.batch_size=2000 .* 1438 samples"):
        load_data(TrainSpec(batch_size=2000))


def test_batch_order_is_keyed_per_trial_and_epoch():
    a = batch_order(100, 30, 10, seed=3, trials=[0, 1, 2])
    b = batch_order(100, 30, 10, seed=3, trials=[2])
    assert a.shape == (3, 10, 30)
    assert torch.equal(a[2], b[0])  # trial 2 alone: the same batches
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a[0], batch_order(100, 30, 10, seed=4, trials=[0])[0])
    # 3 batches an epoch (the last 10 samples dropped): within an epoch no repeats
    for epoch in range(3):
        seen = a[0, 3 * epoch:3 * epoch + 3].reshape(-1)
        assert len(set(seen.tolist())) == 90
    assert torch.equal(batch_order(100, 30, 4, 3, [0])[0], a[0, :4])  # fewer steps: prefix
