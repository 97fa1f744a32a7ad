"""The look every figure shares: saving, the theory line, the band, number and axis style.

One place for what a reader must be able to rely on across the per-job figures and the
report's panels: the measurement is a solid median line over a 10-90 % band, the
mean-field prediction is dashed, and a PNG is written whole with no timestamp in it
(a rerun gives the same bytes). Figures are ``matplotlib.figure.Figure`` objects, never
pyplot, so importing this leaves a notebook's backend and figure list alone.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from initlab.store import write_with

#: Pixels per inch of every PNG.
DPI = 100
#: The prediction on a panel with one measured line: black, dashed.
THEORY_ONE = {"color": "k", "ls": "--", "lw": 1.2}
#: The prediction of one of several lines: dashed, in that line's colour.
THEORY_MANY = {"ls": "--", "lw": 1.3, "alpha": 0.9}
BAND_ALPHA = 0.2
LEGEND = {"fontsize": 8, "framealpha": 0.85}


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
