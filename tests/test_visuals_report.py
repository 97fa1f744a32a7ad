"""What a reader sees in the report (issue 17): the verdict heatmap's colours tell non-finite,
exactly 0 and finite apart, the worst explosion looks the worst, and every report figure's
text is readable where the HTML shows it (1076 px on a 1200-px screen, 366 px on a 390-px
phone)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from initlab.figures.style import COLUMN_PX, DPI, MIN_TEXT_PX
from initlab.report import figures, render
from initlab.report.load import JobRecord
from initlab.report.tables import tabulate

INITS = ("zero", "normal", "scaled", "kaiming")
ACTS = ("none", "tanh", "relu")


def shown_sizes(fig: Figure, narrow: bool) -> list[tuple[float, str]]:
    """(CSS px as shown in the report's column, text) of every visible text in ``fig``: the
    PNG is saved as ``style.save`` saves it, then shrunk to the column if wider."""
    buf = io.BytesIO()
    tight = "tight" if fig.get_layout_engine() is None else None
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches=tight)
    width = Image.open(io.BytesIO(buf.getvalue())).width
    scale = min(1.0, COLUMN_PX[narrow] / width)
    return [(t.get_fontsize() * DPI / 72 * scale, t.get_text()) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip()]


def assert_readable(fig: Figure, narrow: bool) -> None:
    floor = MIN_TEXT_PX[narrow]
    small = [(round(px, 1), text) for px, text in shown_sizes(fig, narrow) if px < floor]
    screen = "390" if narrow else "1200"
    assert not small, f"text under {floor} px on a {screen}-px screen: {small}"


def _job(n: int, init: str, act: str, **summary) -> JobRecord:
    settings = {"init": init, "activation": act, "depth": 100, "width": 512, "trials": 16}
    summary = {"status": "ok", "verdict": "stable", "verdict_layer": None,
               "grad_verdict": "stable", **settings, **summary}
    return JobRecord(name=f"{n}_{init}_{act}", path=None, status="ok", summary=summary,
                     settings=settings)


def default_like() -> list[JobRecord]:
    """The default sweep's final stds: overflow (None, with non-finite trials), exact 0, a
    mild explosion (1e15), vanishing (5e-16) and held."""
    finals = {("zero", a): 0.0 for a in ACTS}
    finals |= {("normal", "none"): None, ("normal", "tanh"): 0.98, ("normal", "relu"): None,
               ("scaled", "none"): 0.87, ("scaled", "tanh"): 0.065, ("scaled", "relu"): 4.7e-16,
               ("kaiming", "none"): 9.8e14, ("kaiming", "tanh"): 0.55, ("kaiming", "relu"): 0.53}
    jobs = []
    for n, ((init, act), std) in enumerate(finals.items()):
        extra = {"first_nonfinite_layer": 29, "nonfinite_trials": 16,
                 "verdict": "exploded", "verdict_layer": 3} if std is None else {}
        jobs.append(_job(n, init, act, final_std=std, **extra))
    return jobs


def _cell_colours(fig: Figure) -> dict[tuple[int, int], tuple]:
    """(row, col) -> RGBA of the heatmap's first panel, read from the drawn image."""
    image = fig.axes[0].images[0]
    data = np.ma.getdata(image.get_array())
    rgba = image.cmap(image.norm(data))
    return {(i, k): tuple(np.round(rgba[i, k], 4)) for i in range(data.shape[0])
            for k in range(data.shape[1])}


@pytest.mark.parametrize("narrow", [False, True])
def test_heatmap_colours_nonfinite_zero_and_finite_apart(narrow):
    table = tabulate(default_like())
    fig = figures.heatmap(table, narrow=narrow)
    colours = _cell_colours(fig)
    rows, cols = table.values["init"], table.values["activation"]
    at = {(rows[i], cols[k]): c for (i, k), c in colours.items()}
    nan, zero = at[("normal", "none")], at[("zero", "none")]
    finite = {c for key, c in at.items() if key[0] not in ("normal", "zero")
              or key == ("normal", "tanh")}
    assert nan != zero
    assert nan not in finite and zero not in finite
    assert at[("normal", "relu")] == nan and at[("zero", "relu")] == zero
    # the worst explosion looks the worst: the overflowed cell lies beyond the scale's top,
    # the mild explosion (1e15) inside it; exact 0 beyond its bottom
    image = fig.axes[0].images[0]
    data = np.ma.getdata(image.get_array())
    i, k = rows.index("normal"), cols.index("none")
    assert image.norm(data[i, k]) > 1 >= image.norm(data[rows.index("kaiming"), k])
    assert image.norm(data[rows.index("zero"), k]) < 0
    # both have a legend patch, and the title says what the colours mean
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert any("non-finite" in t for t in labels) and any("exactly 0" in t for t in labels)
    title = fig.get_suptitle()
    assert "log10" in title and "red" in title and "blue" in title
    assert_readable(fig, narrow)


def test_heatmap_has_no_missing_colour_for_a_failed_median():
    """A job whose median is None with no non-finite trial (not measured) is left blank,
    not painted as an overflow."""
    jobs = default_like()
    jobs[3].summary.pop("first_nonfinite_layer")
    jobs[3].summary.pop("nonfinite_trials")
    assert figures._std_cell(jobs[3].summary)[0] == "none"


@pytest.mark.parametrize("narrow", [False, True])
def test_phase_sweep_heatmap_puts_sigma_w2_along_x(narrow):
    """The preset's 16 x 12 grid: sigma_w2 along x as on the diagram, its text readable."""
    jobs = []
    grid = [(0.5 + 0.25 * i, 0.025 * k) for i in range(16) for k in range(12)]
    for n, (w, b) in enumerate(grid):
        settings = {"init": "scaled", "init_sigma_w2": w, "bias": "normal", "bias_sigma_b2": b,
                    "activation": "tanh"}
        jobs.append(JobRecord(name=f"{n}", path=None, status="ok", settings=settings,
                              summary={"status": "ok", "verdict": "stable", "final_std": w,
                                       **settings}))
    fig = figures.heatmap(tabulate(jobs), narrow=narrow)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "init.sigma_w2" and ax.get_ylabel() == "bias.sigma_b2"
    # sigma_b2 grows upwards, as on the phase diagram
    assert ax.get_ylim()[0] < ax.get_ylim()[1]
    assert_readable(fig, narrow)


def test_css_lets_every_figure_shrink_to_a_phone():
    widths = [int(w) for w in re.findall(r"min-width:\s*(\d+)px", render.CSS)]
    assert all(w <= 390 for w in widths), widths
    assert ".scroll{overflow-x:auto" in render.CSS  # tables scroll in their own box
