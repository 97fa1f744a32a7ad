"""A training job's own figures (initlab.figures.train), from synthetic job directories with
known numbers (tests/training_jobs.py): what is drawn equals what the files hold."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from training_jobs import STEPS, VALUE_BINS, chain_settings, hist_table, write_job

from initlab.figures import train as T

CNN_TYPES = ["input", "Conv2d", "BatchNorm2d", "Conv2d", "BatchNorm2d", "Conv2d"]


def cnn_settings() -> dict:
    return {"model": "simple_cnn", "model_batchnorm": True, "init": "kaiming",
            "activation": "relu", "depth": 5}


@pytest.fixture
def chain_job(tmp_path):
    return write_job(tmp_path / "chain", chain_settings(1.0, 4))


@pytest.mark.parametrize("kind", ["chain", "model", "regression", "no histogram", "csv only"])
def test_a_figure_per_job_kind(tmp_path, kind):
    """Every kind of training job draws its figures: curves and per-layer statistics always,
    color_dim when it recorded histograms."""
    settings = cnn_settings() if kind == "model" else chain_settings(1.0, 4)
    job = write_job(tmp_path / "job", settings, regression=kind == "regression",
                    histogram=kind != "no histogram", csv_only=kind == "csv only",
                    layers=6 if kind == "model" else None,
                    types=CNN_TYPES if kind == "model" else None)
    paths = T.draw_training(job)
    names = sorted(p.name for p in paths)
    expected = [T.COLOR_DIM_PNG, T.CURVES_PNG, T.LAYER_STATS_PNG]
    if kind == "no histogram":
        expected.remove(T.COLOR_DIM_PNG)
    assert names == sorted(expected)
    for path in paths:
        assert path.parent == job and path.stat().st_size > 10_000


def test_a_job_that_did_not_train_draws_nothing(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"status": "ok"}))
    assert T.draw_training(tmp_path) == []


def test_curves_are_the_median_and_band_over_trials(chain_job):
    steps = T.read_steps(chain_job)
    x, med, lo, hi = T.by_step(steps, "eval_acc")
    wide = steps.pivot(index="trial", columns="step", values="eval_acc").dropna(axis=1)
    assert list(x) == list(wide.columns)
    np.testing.assert_allclose(med, wide.median().to_numpy())
    np.testing.assert_allclose(lo, wide.quantile(0.1).to_numpy())
    np.testing.assert_allclose(hi, wide.quantile(0.9).to_numpy())
    fig = T.curves(steps, "t", chance=0.1)
    held = [line for line in fig.axes[1].lines if line.get_label() == "held-out"][0]
    np.testing.assert_allclose(held.get_ydata(), med)
    assert len(fig.axes) == 2


def test_a_regression_job_has_no_accuracy_panel(tmp_path):
    job = write_job(tmp_path / "r", chain_settings(1.0, 4), regression=True)
    assert len(T.curves(T.read_steps(job), "t").axes) == 1


def test_layer_stats_draw_each_layers_median_over_trials(chain_job):
    frame = T.read_layers(chain_job)
    fig = T.layer_stats(frame, "t", chosen=[2])
    std_axis = fig.axes[1]
    line = std_axis.lines[0]
    expected = frame[frame["layer"] == 2].groupby("step")["std"].median()
    np.testing.assert_allclose(line.get_xdata(), expected.index)
    np.testing.assert_allclose(line.get_ydata(), expected.to_numpy())
    near = fig.axes[2].lines[0].get_ydata()
    np.testing.assert_allclose(near, 100 * frame[frame["layer"] == 2].groupby("step")[
        "near_zero"].median().to_numpy())


def test_default_layers_are_first_middle_last_of_the_main_kind(chain_job, tmp_path):
    frame = T.read_layers(chain_job)  # input, 5 x Linear+tanh (layers 1..5), Linear readout
    assert T.default_layers(frame) == [1, 3, 5]
    assert T.chosen_layer(frame) == 5  # the last hidden layer, not the readout
    assert T.chosen_layer(frame, -1) == 6 and T.chosen_layer(frame, 2) == 2
    cnn = T.read_layers(write_job(tmp_path / "cnn", cnn_settings(), layers=6, types=CNN_TYPES))
    assert T.default_layers(cnn) == [1, 3, 5]  # the convolutions, not the batchnorms
    assert T.chosen_layer(cnn) == 3  # the convolution before the output convolution


def test_color_dim_grid_equals_the_histogram_files_counts(chain_job):
    hist = T.read_histogram(chain_job)
    cd = T.color_dim_grid(hist, 1)
    # the full range of the file: from 1e-20 to 1e12.25, not fastai's [0, 10]
    assert cd.lo == -20.0 and cd.lo + cd.bins * cd.width == 12.25 and cd.width == 0.25
    assert list(cd.steps) == list(STEPS)
    rows = hist[hist["layer"] == 1]
    for row in rows.itertuples():
        col = list(cd.steps).index(row.step)
        r = ({"zero": 0, "nonfinite": cd.bins + 1}[row.bin] if row.bin != "value"
             else 1 + round((row.log10_lo - cd.lo) / cd.width))
        assert cd.grid[r, col] == row.count
    assert cd.grid.sum() == rows["count"].sum()
    assert list(cd.grid[0]) == [5 + s for s in STEPS]  # exact zeros: the bottom row
    assert list(cd.grid[-1]) == [0, 0, 0, 7, 7]  # non-finite: the top row
    for lo, count in VALUE_BINS:
        assert list(cd.grid[1 + round((lo - cd.lo) / cd.width)]) == [count + 1] * len(STEPS)


def test_color_dim_draws_the_grid_and_marks_zero_and_nonfinite_rows(chain_job):
    hist = T.read_histogram(chain_job)
    fig = T.color_dim(hist, 1, "t")
    mesh = [c for c in fig.axes[0].collections if isinstance(c, QuadMesh)][0]
    cd = T.color_dim_grid(hist, 1)
    np.testing.assert_allclose(mesh.get_array().filled(0).reshape(cd.grid.shape),
                               np.log1p(cd.grid))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "0" and labels[-1] == "NaN/inf"
    assert {"1e-15", "1e10"} <= set(labels)  # decades over the whole range
    assert "exact zeros: up to" in fig.axes[0].get_title()
    assert "non-finite: up to" in fig.axes[0].get_title()


def test_a_shared_span_pads_the_grid(chain_job):
    hist = hist_table(3)
    cd = T.color_dim_grid(hist, 0, (-24.0, 16.0, 0.25))
    assert cd.bins == 160 and cd.grid.sum() == hist[hist["layer"] == 0]["count"].sum()
