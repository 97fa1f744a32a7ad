"""Tidy frames of a training record (initlab.train.tables) and the training verdict."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from initlab.columns import STATS
from initlab.train import ChainConfig, TrainSpec, train_chain
from initlab.train.tables import flat_settings, hist_frame, layer_frame, step_frame


@pytest.fixture(scope="module")
def record():
    torch.set_num_threads(1)
    spec = TrainSpec(steps=12, batch_size=16, record_every=5, eval_every=4)
    config = ChainConfig(init="scaled", init_params={"sigma_w2": 1.5}, activation="tanh",
                         width=8, depth=2)
    return train_chain([config], spec, trials=3, seed=0)[0]


def test_layer_frame_has_a_row_per_trial_step_and_layer(record):
    frame = layer_frame(record)
    assert len(frame) == 3 * 4 * 5  # trials x steps (0, 5, 10, 12) x layers
    assert {"trial", "step", "layer", "module", "module_type", *STATS, "near_zero",
            "grad_x_std", "grad_w_std", "init_sigma_w2", "train_lr"} <= set(frame.columns)
    row = frame[(frame.trial == 2) & (frame.step == 10) & (frame.layer == 3)].iloc[0]
    assert row["std"] == record.stats["std"][2, 2, 3]
    assert row["grad_w_std"] == record.grads["grad_w_std"][2, 2, 3]
    assert row["module"] == "layer_3" and row["init_sigma_w2"] == 1.5
    medians = frame.groupby(["step", "layer"])["std"].median()
    assert medians.loc[(0, 1)] == np.median(record.stats["std"][:, 0, 1])
    assert "init_params" not in frame.columns


def test_step_frame_has_a_row_per_trial_and_step(record):
    frame = step_frame(record, settings=False)
    assert len(frame) == 3 * 13 and list(frame.columns[:2]) == ["trial", "step"]
    evaluated = frame.dropna(subset=["eval_loss"])
    assert sorted(evaluated.step.unique()) == [0, 4, 8, 12]
    assert evaluated[evaluated.trial == 1].eval_acc.tolist() == list(record.eval_acc[1])
    assert frame.train_loss.tolist() == record.train_loss.reshape(-1).tolist()
    assert np.isnan(frame[frame.step == 12].lr).all()
    assert frame[frame.step == 0].lr.tolist() == [record.lr[0]] * 3


def test_hist_frame_counts_every_value(record):
    frame = hist_frame(record)
    counts = frame.groupby(["step", "layer"])["count"].sum()
    assert counts.loc[(0, 0)] == 3 * 16 * 64 and counts.loc[(12, 4)] == 3 * 16 * 10
    assert set(frame.bin) <= {"zero", "nonfinite", "value"}
    values = frame[frame.bin == "value"]
    assert (values.log10_hi - values.log10_lo).round(12).eq(0.25).all()


def test_flat_settings():
    flat = flat_settings({"init_params": {"gain": 2.0, "mode": None}, "moms": (0.9, 0.8),
                          "seed": 1})
    assert flat == {"init_gain": 2.0, "moms": "0.9/0.8", "seed": 1}


def test_verdict_and_summary(record):
    assert record.trained().shape == (3,)
    summary = record.summary()
    assert summary["verdict"] in ("trained", "did not train")
    assert summary["final_eval_acc"] == np.median(record.eval_acc[:, -1])
    bar = record.chance + record.pass_fraction * (1 - record.chance)
    assert (record.trained() == (record.eval_acc[:, -1] >= bar)).all()
    acc = record.eval_acc.copy()
    acc[:, -1] = [1.0, np.nan, 0.0]
    other = dataclasses.replace(record, eval_acc=acc)
    assert other.trained().tolist() == [True, False, False]  # NaN never passes
    assert other.verdict() == "did not train"  # 1 of 3: below half
    acc[:, -1] = [1.0, 1.0, 0.0]
    assert other.verdict() == "trained"


def test_the_verdict_is_the_median_trials_with_an_even_count_too(record):
    # 2 trials, one above the bar and one below: the verdict is the median's (their mean),
    # as the report's "the median trial's held-out accuracy reached the bar" says
    bar = record.chance + record.pass_fraction * (1 - record.chance)
    two = dataclasses.replace(record, eval_acc=record.eval_acc[:2].copy())
    two.eval_acc[:, -1] = [bar - 0.2, bar + 0.05]
    assert two.trained().tolist() == [False, True] and two.verdict() == "did not train"
    two.eval_acc[:, -1] = [bar - 0.05, bar + 0.2]
    assert two.verdict() == "trained"
