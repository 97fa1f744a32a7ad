"""The order-to-chaos figure: measured and theory final correlation over (sigma_w2, sigma_b2).

Drawn on a ``matplotlib.figure.Figure`` (no pyplot). Both panels share one colour
scale; the chi_1 = 1 edge from the theory is drawn on both and labelled, the two
phases are named where they lie, and the cell where measurement and theory differ
most is marked.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib import patheffects
from matplotlib.figure import Figure

from initlab.report.phase import PhaseGrid, edge_at, gaps

OUTLINE = [patheffects.withStroke(linewidth=3, foreground="black")]
BOX = {"boxstyle": "round,pad=0.25", "fc": "white", "ec": "none", "alpha": 0.8}


def cell_edges(values: list[float]) -> np.ndarray:
    """Boundaries of cells centred on ``values`` (midpoints; the ends mirrored)."""
    v = np.asarray(values, dtype=float)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[:-1] + v[1:]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def _labels(ax, grid: PhaseGrid) -> None:
    """Name the phases where they lie and the edge on its curve."""
    b_mid = (min(grid.sigma_b2) + max(grid.sigma_b2)) / 2
    e = edge_at(grid, b_mid)
    w_lo, w_hi = min(grid.sigma_w2), max(grid.sigma_w2)
    if math.isfinite(e):
        ax.text((w_lo + e) / 2, b_mid, "ordered\n(corr → 1)", ha="center", va="center",
                fontsize=11, bbox=BOX)
        ax.text((e + w_hi) / 2, b_mid, "chaotic\n(corr → c* < 1)", ha="center",
                va="center", fontsize=11, bbox=BOX)
    ok = np.isfinite(grid.edge_w2)
    if ok.any():
        ax.plot(grid.edge_w2[ok], grid.edge_b2[ok], color="white", lw=2.2, path_effects=OUTLINE,
                label="edge (theory)")
        top = np.flatnonzero(ok)[-max(1, ok.sum() // 6)]
        ax.annotate(r"edge: $\chi_1 = 1$", (grid.edge_w2[top], grid.edge_b2[top]),
                    xytext=(18, -10), textcoords="offset points", fontsize=11, ha="left",
                    va="top", bbox=BOX, arrowprops={"arrowstyle": "-", "color": "white",
                                                    "lw": 1.5})


def _panels(axs, grid: PhaseGrid, vmin: float, narrow: bool, last: bool,
            several: bool):
    """One activation's pair of panels (measured, theory); returns the last mesh."""
    x, y = cell_edges(grid.sigma_w2), cell_edges(grid.sigma_b2)
    meas = ", ".join(w for w in [f"width {grid.width}" if grid.width else "",
                                 f"median of {grid.trials} trials" if grid.trials else ""] if w)
    who = f"{grid.act_label}: " if several else ""
    partial = ""
    if grid.missing:
        cells = len(grid.sigma_w2) * len(grid.sigma_b2)
        partial = f"\npartial: {grid.missing} of {cells} cells not finished (grey)"
    titles = [who + (f"measured\n({meas})" if meas else "measured") + partial,
              who + "mean-field theory\n(infinite width)"]
    image = None
    for n, (ax, data, title) in enumerate(zip(axs, (grid.measured, grid.theory), titles,
                                              strict=True)):
        ax.set_facecolor("#dddddd")
        image = ax.pcolormesh(x, y, np.ma.masked_invalid(data), cmap="viridis", vmin=vmin,
                              vmax=1.0, shading="flat")
        _labels(ax, grid)
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(y[0], y[-1])
        ax.set_title(title.replace("\n", " ") if narrow else title, fontsize=11)
        ax.tick_params(labelsize=10)
        if narrow or n == 0:
            ax.set_ylabel(r"$\sigma_b^2$  (bias variance)", fontsize=11)
        if (last and n == 1) or (not narrow and last):
            ax.set_xlabel(r"$\sigma_w^2$  (weight variance × fan_in)", fontsize=11)
    g = gaps(grid)
    if g["at"] is not None:
        w, b, m, t = g["at"]
        axs[0].plot([w], [b], marker="o", ms=11, mfc="none", mec="red", mew=2)
        axs[0].annotate(f"largest gap {g['largest']:+.2f}", (w, b), xytext=(0, 10),
                        textcoords="offset points", ha="center", fontsize=10, color="red",
                        bbox=BOX)
    if grid.edge_note:
        axs[1].text(0.5, 0.02, grid.edge_note, transform=axs[1].transAxes, ha="center",
                    fontsize=8, bbox=BOX)
    return image


def phase_diagram(grids: PhaseGrid | list[PhaseGrid], narrow: bool = False) -> Figure:
    """Left: measured final corr; right: theory's; same colour scale, edge on both; a row
    of two panels per activation.

    ``narrow``: the panels stacked, measured on top, the colour bar below (for phones:
    540 px wide, the text still ~11 px when shown at 375 px)."""
    grids = [grids] if isinstance(grids, PhaseGrid) else list(grids)
    both = np.concatenate([a[np.isfinite(a)] for g in grids for a in (g.measured, g.theory)])
    vmin = min(0.0, float(both.min())) if both.size else 0.0
    rows = len(grids)
    if narrow:
        fig = Figure(figsize=(5.4, 0.6 + 4.0 * rows * 2), layout="constrained")
        axs = fig.subplots(2 * rows, 1).reshape(rows, 2)
    else:
        fig = Figure(figsize=(9, 0.6 + 3.7 * rows), layout="constrained")
        axs = fig.subplots(rows, 2, sharey="row", squeeze=False)
    image = None
    for r, grid in enumerate(grids):
        image = _panels(axs[r], grid, vmin, narrow, r == rows - 1, rows > 1)
    bar = fig.colorbar(image, ax=axs.ravel().tolist(), shrink=0.95 if rows == 1 else 0.6,
                       pad=0.02, orientation="horizontal" if narrow else "vertical")
    bar.set_label("correlation of two inputs at the last layer\n(1 = merged into one)",
                  fontsize=10)
    g = grids[0]
    where = [f"depth {g.depth}" if g.depth else "", f"c0 = {g.c0}" if g.c0 is not None else ""]
    head = ", ".join(w for w in where if w)
    acts = ", ".join(x.act_label for x in grids)
    partial = " (partial grid)" if any(x.missing for x in grids) else ""
    fig.suptitle(f"Order to chaos: {acts}" + (f", {head}" if head else "") + partial,
                 fontsize=12)
    return fig
