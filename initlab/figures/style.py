"""The look every figure shares: saving, the theory line, the band, number and axis style.

One place for what a reader must be able to rely on across the per-job figures and the
report's panels: the measurement is a solid median line over a 10-90 % band, the
mean-field prediction is dashed, and a PNG is written whole with no timestamp in it
(a rerun gives the same bytes). Figures are ``matplotlib.figure.Figure`` objects, never
pyplot, so importing this leaves a notebook's backend and figure list alone.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from initlab.store import write_with

#: Pixels per inch of every PNG.
DPI = 100
#: The prediction on a panel with one measured line: black, dashed.
THEORY_ONE = {"color": "k", "ls": "--", "lw": 1.4}
#: The prediction of one of several lines: dashed, in a dark shade of that line's colour
#: (``dark``), drawn over the measurement.
THEORY_MANY = {"ls": (0, (4, 2)), "lw": 1.5, "zorder": 3}
BAND_ALPHA = 0.2
LEGEND = {"fontsize": 8, "framealpha": 0.85}
#: Width (inches) of a report figure: 10.7 in at 100 dpi is shown 1:1 in the report's
#: 1076-px column; a narrow one (phones) is shown 366 px wide, 0.76 of its 480 px.
WIDE = 10.7
NARROW = 4.8
#: The report's column in CSS px on a 1200-px and on a 390-px screen.
COLUMN_PX = {False: 1076, True: 366}
#: Smallest text (CSS px, as shown) a report figure may have: on a 1200-px screen 8 pt
#: shown 1:1 (11.1 px), on a 390-px phone 9 px.
MIN_TEXT_PX = {False: 11.0, True: 9.0}


def dark(color, amount: float = 0.45) -> tuple[float, float, float]:
    """``color`` mixed with ``amount`` of black: a theory line beside its measurement."""
    r, g, b = to_rgb(color)
    return (r * (1 - amount), g * (1 - amount), b * (1 - amount))


def shown_px(points: float, fig_width_in: float, narrow: bool) -> float:
    """How tall text of ``points`` is on screen, in CSS px, in a figure ``fig_width_in``
    wide saved at ``DPI``: shrunk to the report's column, never enlarged."""
    natural = fig_width_in * DPI
    return points * DPI / 72 * min(1.0, COLUMN_PX[narrow] / natural)


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` as PNG, whole (temp file, then rename).

    A figure with a layout engine (constrained, tight) already fits its labels: it is
    saved as laid out, drawn once. Only a figure without one gets the tight bounding
    box, which costs a second full draw.
    """
    tight = "tight" if fig.get_layout_engine() is None else None
    write_with(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=DPI,
                                                   bbox_inches=tight,
                                                   metadata={"Software": None}))
    return Path(path)
