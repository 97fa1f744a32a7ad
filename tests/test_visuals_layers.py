"""What the by-layer figures show a reader (issue 17, items 2, 4, 5, 7, 10): readable text at
both widths, legends under the axes, the theory dashed and dark with a "theory" entry, a
line with no point saying why, gradients through an overflowed signal never reading as 0,
symmetric-log and colour_dim tick labels that do not overlap, the thresholds marked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from initlab.figures import panels
from initlab.report import document, figures
from initlab.report.load import JobRecord
from initlab.report.tables import tabulate
from tests.test_visuals_report import assert_readable

DEPTH, TRIALS, BREAK = 12, 4, 5


def _layers(init: str, act: str) -> pd.DataFrame:
    """A job's tidy table: zero init is 0 from layer 1; normal overflows at layer BREAK (its
    ReLU gradient is then exactly 0, its linear one non-finite below the top layers);
    kaiming holds with a tiny signed mean."""
    rng = np.random.default_rng(len(init) * 7 + len(act))
    rows = []
    for t in range(TRIALS):
        for layer in range(DEPTH + 1):
            std, mean, grad, finite = 1.0, rng.normal() * 1e-3, 1.0, True
            if init == "zero" and layer:
                std = mean = grad = 0.0
            if init == "normal":
                std, mean = 22.0 ** layer, rng.normal() * 22.0 ** layer
                grad = (0.0 if act == "relu" else np.nan) if layer < DEPTH - 3 else 3.0
                if layer >= BREAK:
                    std = mean = np.nan
                    finite = False
            rows.append({"trial": t, "layer": layer, "std": std, "mean": mean,
                         "finite": finite, "grad_x_std": grad,
                         "theory_std": {"zero": 0.0, "normal": 22.0 ** layer}.get(init, 1.0),
                         "theory_mean": 0.0, "theory_grad_x_std": 1.0})
    return pd.DataFrame(rows)


def _jobs(acts=("none", "relu")) -> list[JobRecord]:
    jobs = []
    for n, (init, act) in enumerate((i, a) for i in ("zero", "normal", "kaiming") for a in acts):
        settings = {"init": init, "activation": act, "depth": DEPTH, "width": 64,
                    "trials": TRIALS}
        broken = init == "normal"
        summary = {"status": "ok", **settings, "verdict": "exploded" if broken else "stable",
                   "final_std": None if broken else (0.0 if init == "zero" else 1.0),
                   "first_nonfinite_layer": BREAK if broken else None,
                   "grad_verdict": "exploded" if broken else "stable", "grad_ratio": None
                   if broken else 1.0}
        jobs.append(JobRecord(name=f"{n}_{init}_{act}", path=None, status="ok",
                              summary=summary, settings=settings, layers=_layers(init, act)))
    return jobs


def _legend(ax) -> list[str]:
    """The panel's legend (its subfigure's), lines unwrapped."""
    legend = ax.get_figure(root=False).legends[0]
    return [t.get_text().replace("\n  ", " ") for t in legend.get_texts()]


@pytest.mark.parametrize("narrow", [False, True])
@pytest.mark.parametrize("stat", ["std", "mean", "grad_x_std"])
def test_by_layer_text_is_readable_at_both_widths(stat, narrow):
    assert_readable(figures.by_layer(tabulate(_jobs()), stat, narrow=narrow), narrow)


def test_legends_say_why_a_line_is_missing_and_sit_below_the_data():
    fig = figures.by_layer(tabulate(_jobs()), "std")
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]  # activation=none
    labels = _legend(ax)
    assert "zero: no line, 0 from layer 1" in labels
    assert f"normal (non-finite from layer {BREAK})" in labels
    assert "kaiming" in labels
    assert any(t.startswith("theory") for t in labels)
    legend = ax.get_figure(root=False).legends[0].get_window_extent()
    assert legend.y1 <= ax.get_tightbbox().y0  # under the axes and their labels
    assert legend.x0 >= 0 and legend.x1 <= fig.bbox.x1  # inside the figure


def test_theory_is_dark_and_dashed():
    fig = figures.by_layer(tabulate(_jobs()), "std")
    ax = fig.axes[0]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() not in ("-", "None")
              and len(line.get_xdata()) > 1]
    assert dashed
    for line in dashed:
        assert sum(to_rgb(line.get_color())) / 3 < 0.45  # dark on white


def test_gradients_through_an_overflowed_signal_do_not_read_as_zero():
    jobs = _jobs()
    fig = figures.by_layer(tabulate(jobs), "grad_x_std")
    relu = _legend(fig.axes[1])
    assert f"normal (0 at layers 0-{DEPTH - 4}, through the non-finite signal)" in relu, relu
    FigureCanvasAgg(fig).draw()
    for ax in fig.axes:  # a long note wraps: every legend inside the figure
        box = ax.get_figure(root=False).legends[0].get_window_extent()
        assert box.x0 >= 0 and box.x1 <= fig.bbox.x1, (box, fig.bbox)
    linear = _legend(fig.axes[0])
    assert f"normal (non-finite at layers 0-{DEPTH - 4})" in linear, linear
    # the Jobs table: "non-finite", never 0 or nan
    section = document.jobs_table(tabulate(jobs))
    table = section[1][1]
    rows = {r[0]: dict(zip(table.header, r, strict=True)) for r in table.rows}
    broken = rows["3_normal_relu"]
    assert broken["final_std"] == "non-finite" and broken["grad_ratio"] == "non-finite"
    assert rows["0_zero_none"]["final_std"] == "0"


def test_a_single_job_panel_marks_the_vanishing_threshold_and_the_verdict_layer():
    fig = Figure()
    ax = fig.subplots()
    values = np.array([[0.5 ** k for k in range(40)]] * 3)
    line = panels.Line("median", values, values[0])
    panels.draw(ax, [line], "std", marks=panels.Marks({"vanish_std": 1e-4,
                                                       "explode_std": 1e4}, "vanished", 14))
    labels = ax.get_legend_handles_labels()[1]
    assert "vanishing threshold 0.0001" in labels and "vanished at layer 14" in labels
    assert not any("explosion" in t for t in labels)  # far from it: not drawn


def _overlaps(labels) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent()) for t in labels
             if t.get_visible() and t.get_text()]
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:]
            if ba.overlaps(bb)]


@pytest.mark.parametrize("narrow", [False, True])
def test_symlog_mean_tick_labels_do_not_overlap(narrow):
    fig = figures.by_layer(tabulate(_jobs()), "mean", narrow=narrow)
    FigureCanvasAgg(fig).draw()
    for ax in fig.axes:
        ticks = ax.yaxis.get_majorticklabels()
        assert len([t for t in ticks if t.get_text()]) >= 3
        assert not _overlaps(ticks), _overlaps(ticks)


@pytest.mark.parametrize("narrow", [False, True])
def test_color_dim_labels_do_not_collide(tmp_path, narrow):
    rows = []
    for layer in range(DEPTH + 1):
        rows.append({"layer": layer, "bin": "zero", "log10_lo": np.nan, "log10_hi": np.nan,
                     "count": 3})
        rows.append({"layer": layer, "bin": "nonfinite", "log10_lo": np.nan,
                     "log10_hi": np.nan, "count": 2})
        for lo in np.arange(-10.0, 1.0, 0.25):
            rows.append({"layer": layer, "bin": "value", "log10_lo": lo,
                         "log10_hi": lo + 0.25, "count": 5})
    pd.DataFrame(rows).to_csv(tmp_path / "histogram.csv", index=False)
    job = JobRecord(name="4_normal_tanh", path=tmp_path, status="ok",
                    settings={"init": "normal", "activation": "tanh", "trials": 4})
    fig = figures.color_dim(job, narrow=narrow)
    FigureCanvasAgg(fig).draw()
    ticks = fig.axes[0].yaxis.get_majorticklabels()
    texts = [t.get_text() for t in ticks]
    assert texts[0] == "0" and texts[-1] == "NaN/inf" and "1e-5" in texts
    assert not _overlaps(ticks), _overlaps(ticks)
    assert_readable(fig, narrow)


def test_a_single_runs_line_is_named_by_its_settings_not_its_directory():
    (job,) = [j for j in _jobs(("relu",)) if j.settings["init"] == "kaiming"]
    job = JobRecord(name="2026-12-04_13-44-00-123456", path=None, status="ok",
                    summary=job.summary, settings=job.settings, layers=job.layers)
    fig = figures.by_layer(tabulate([job]), "std")
    assert _legend(fig.axes[0])[0] == "kaiming, relu"
