"""The report's figures, drawn on ``matplotlib.figure.Figure`` objects (no pyplot state).

Importing this module leaves a notebook's matplotlib backend alone; each
figure is saved as PNG straight from its Figure and dropped.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from initlab import store
from initlab.columns import theory_column
from initlab.figures import panels
from initlab.figures.style import LEGEND
from initlab.labels import label
from initlab.report.load import JobRecord
from initlab.report.tables import (
    Summary,
    grad_fields,
    grid_layout,
    in_panel,
    panel_keys,
    panel_title,
)


def verdict_text(summary: dict) -> str:
    """The forward verdict, short: ``exploded @4``."""
    if not summary.get("verdict"):
        return "?"
    layer = summary.get("verdict_layer")
    return summary["verdict"] + (f" @{layer}" if layer is not None else "")


def grad_text(summary: dict) -> str:
    """The gradient verdict, short: ``grad exploded @91``, ``grad off``, ``grad not recorded``
    (a summary from before gradient verdicts)."""
    verdict = grad_fields(summary)["grad_verdict"]
    if verdict == "gradients off":
        return "grad off"
    layer = summary.get("grad_verdict_layer")
    return "grad " + verdict + (f" @{layer}" if layer is not None else "")


def heatmap(table: Summary) -> Figure:
    """log10(median final std) over the two main axes, one panel per value of the others."""
    ok = table.ok
    rows, cols, panels = grid_layout(table.axes)
    row_vals = table.values[rows] if rows else [None]
    col_vals = table.values[cols] if cols else [None]
    keys = panel_keys(table, panels)
    # a cell is 1.9 x 0.75 in, narrower and flatter beyond a 14 x 10 in figure (a 16 x 12
    # sweep), where its words shrink to 6 pt
    cell_w = min(1.9, 14 / (len(col_vals) * len(keys)))
    cell_h = min(0.75, 10 / len(row_vals))
    small = cell_w < 1.2 or cell_h < 0.5
    fig = Figure(figsize=(1.8 + cell_w * len(col_vals) * len(keys), 1.4 + cell_h * len(row_vals)),
                 layout="constrained")  # keeps the suptitle off the panel titles
    axs = fig.subplots(1, len(keys), squeeze=False)
    logs = [math.log10(s) for j in ok if (s := j.summary.get("final_std")) is not None and s > 0]
    span = max([abs(v) for v in logs] + [1.0])
    norm = TwoSlopeNorm(vmin=-span, vcenter=0.0, vmax=span)
    image = None
    for ax, key in zip(axs[0], keys, strict=True):
        grid = np.full((len(row_vals), len(col_vals)), np.nan)
        ax.set_facecolor("#dddddd")
        for job in ok:
            if not in_panel(table, job, panels, key):
                continue
            i = row_vals.index(table.at(job, rows)) if rows else 0
            k = col_vals.index(table.at(job, cols)) if cols else 0
            std = job.summary.get("final_std")
            if std is not None and std > 0:
                grid[i, k] = math.log10(std)
            text = "NaN" if std is None else ("0" if std == 0 else f"{std:.2g}")
            dark = not np.isnan(grid[i, k]) and abs(grid[i, k]) > 0.6 * span
            ax.text(k, i, f"{verdict_text(job.summary)}\n{grad_text(job.summary)}\nstd {text}",
                    ha="center",
                    va="center", fontsize=6 if small else 7,
                    color="white" if dark else "black")
        image = ax.imshow(grid, cmap="RdBu_r", norm=norm, aspect="auto")
        ax.set_xticks(range(len(col_vals)), [str(v) for v in col_vals], fontsize=8)
        ax.set_yticks(range(len(row_vals)), [str(v) for v in row_vals], fontsize=8)
        ax.set_xlabel(cols or "")
        ax.set_ylabel(rows or "")
        ax.set_title(panel_title(panels, key), fontsize=9)
    if image is not None:
        bar = fig.colorbar(image, ax=axs[0].tolist(), shrink=0.9)
        bar.set_label("log10(final std), median over trials\n(grey: NaN or 0)", fontsize=8)
    fig.suptitle("Final-layer std: blue vanished, red exploded, white ~1 (held)", fontsize=10)
    return fig


def by_layer_panels(table: Summary) -> list[str]:
    """The axes the by-layer figures draw a panel for: a swept model (models have their own
    layers: one panel each) and a swept activation; the other axes are lines."""
    return [a for a in ("model", "activation") if a in table.axes]


def by_layer(table: Summary, stat: str, jobs: list[JobRecord] | None = None,
             note: str = "") -> Figure:
    """Median and 10-90 % band of ``stat`` per layer (``initlab.figures.panels``); a line per
    setting, a panel per activation (and per model, when models are swept).

    ``jobs`` (default: every finished one) are the lines drawn; ``note`` says which when
    they are a selection, under the title."""
    ok = [j for j in (table.ok if jobs is None else jobs) if j.layers is not None]
    panel_axes = by_layer_panels(table)
    lines = [a for a in table.axes if a not in panel_axes]
    keys = panel_keys(table, panel_axes)
    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig = Figure(figsize=(5.2 * ncols, 3.8 * nrows), layout="constrained")
    axs = fig.subplots(nrows, ncols, squeeze=False)
    line_keys = list(dict.fromkeys(tuple(table.at(j, a) for a in lines) for j in ok))
    colors = matplotlib.colormaps["tab10" if len(line_keys) <= 10 else "tab20"]
    for n, key in enumerate(keys):
        ax = axs[n // ncols][n % ncols]
        drawn = []
        for job in (j for j in ok if in_panel(table, j, panel_axes, key)):
            lk = tuple(table.at(job, a) for a in lines)
            drawn.append(panels.Line(", ".join(str(v) for v in lk) or job.name,
                                     _wide(job.layers, stat), _curve(job.layers, stat),
                                     colors(line_keys.index(lk) % colors.N)))
        model = dict(zip(panel_axes, key, strict=True)).get("model", table.fixed.get("model"))
        panels.draw(ax, drawn, stat, no_theory=f"no theory line for model {model}" if model
                    not in (None, "chain", "conv_chain") else "no mean-field theory here")
        ax.set_title(panel_title(panel_axes, key), fontsize=9)
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(title=", ".join(lines) or None, title_fontsize=7, **LEGEND)
    for n in range(len(keys), nrows * ncols):
        axs[n // ncols][n % ncols].axis("off")
    what = {"std": "std (log axis)", "mean": "mean (symmetric log axis)",
            "grad_x_std": "gradient std, dL/dx_l (log axis)",
            "corr": "correlation of two inputs' pre-activations"}[stat]
    title = (f"{what} by layer: median over trials, band 10-90 %, dashed: mean-field "
             "theory; gaps are 0 or NaN")
    wrap = 62 * ncols  # characters of a 10-pt title across the panels: no wider than they are
    fig.suptitle("\n".join(textwrap.fill(t, wrap) for t in (title, note) if t), fontsize=10)
    return fig


def _wide(frame: pd.DataFrame, column: str) -> np.ndarray:
    """(trials, layers) of a per-layer column."""
    return frame.pivot(index="trial", columns="layer", values=column).to_numpy(dtype=float)


def _curve(frame: pd.DataFrame, stat: str) -> np.ndarray:
    """The prediction of ``stat`` by layer (NaN where the table has none)."""
    column = theory_column(stat)
    first = frame[frame["trial"] == frame["trial"].min()].sort_values("layer")
    if column not in first:
        return np.full(len(first), np.nan)
    return first[column].to_numpy(dtype=float)


def color_dim(job: JobRecord) -> Figure:
    """fastai-style colour_dim over depth: layer x log10|x| bins, colour log(1 + count)."""
    hist = pd.read_csv(job.path / store.HISTOGRAM_CSV)
    depth = int(hist["layer"].max())
    values = hist[hist["bin"] == "value"]
    lo = math.floor(values["log10_lo"].min()) if len(values) else -1
    hi = math.ceil(values["log10_hi"].max()) if len(values) else 1
    step = float((values["log10_hi"] - values["log10_lo"]).iloc[0]) if len(values) else 1.0
    nbins = max(1, round((hi - lo) / step))
    grid = np.zeros((nbins + 2, depth + 1))  # row 0: zeros, last row: non-finite
    for row in hist.itertuples():
        if row.bin == "zero":
            grid[0, row.layer] += row.count
        elif row.bin == "nonfinite":
            grid[-1, row.layer] += row.count
        else:
            idx = min(nbins - 1, max(0, round((row.log10_lo - lo) / step)))
            grid[1 + idx, row.layer] += row.count
    fig = Figure(figsize=(8, 4.8))  # saved with a tight box: its long title widens it
    ax = fig.subplots()
    image = ax.imshow(np.log1p(grid), origin="lower", aspect="auto", cmap="viridis",
                      extent=(-0.5, depth + 0.5, -0.5, nbins + 1.5), interpolation="nearest")
    decades = list(range(math.ceil(lo), math.floor(hi) + 1))
    decades = decades[::max(1, math.ceil(len(decades) / 10))]
    ax.set_yticks([0] + [1 + (d - lo) / step - 0.5 for d in decades] + [nbins + 1],
                  ["0"] + [f"1e{d}" for d in decades] + ["NaN/inf"], fontsize=8)
    for y in (0.5, nbins + 0.5):
        ax.axhline(y, color="white", lw=0.8)
    ax.set_xlabel("layer")
    ax.set_ylabel("|x| (log bins; bottom row: exact 0)")
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    s = job.settings
    ax.set_title(f"{job.name}: init={label(s, 'init')}, activation={label(s, 'activation')}, "
                 f"{s.get('trials')} trials — histogram of |x| by layer", fontsize=9)
    return fig
