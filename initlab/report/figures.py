"""The report's figures, drawn on ``matplotlib.figure.Figure`` objects (no pyplot state).

Importing this module leaves a notebook's matplotlib backend alone; each
figure is saved as PNG straight from its Figure and dropped.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from initlab import store
from initlab.columns import theory_column
from initlab.figures import panels
from initlab.figures.style import NARROW, WIDE
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


#: Colours of the two cells a log colour scale cannot place: a final std that overflowed
#: (NaN/inf: beyond the reddest red) and one that is exactly 0 (beyond the bluest blue).
NONFINITE = "#1a0008"
ZERO = "#000d26"
HATCH = {"nonfinite": "xx", "zero": "//"}


def _std_cell(summary: dict) -> tuple[str, float]:
    """(kind, log10 of the final std): kind "value", "nonfinite", "zero" or "none"."""
    std = summary.get("final_std")
    if std is None or not math.isfinite(std):
        broken = summary.get("first_nonfinite_layer") is not None or summary.get(
            "nonfinite_trials")
        return ("nonfinite" if broken or std is not None else "none"), math.nan
    return ("zero", math.nan) if std <= 0 else ("value", math.log10(std))


def _cell_text(summary: dict, kind: str, full: bool) -> str:
    std = summary.get("final_std")
    text = {"nonfinite": "non-finite", "zero": "0", "none": "?"}.get(kind) or f"{std:.2g}"
    if not full:
        return text
    return f"{verdict_text(summary)}\n{grad_text(summary)}\nstd {text}"


@dataclass
class _Heat:
    """A heatmap's layout, shared by its panels."""

    rows: str | None
    cols: str | None
    row_vals: list
    col_vals: list
    font: float
    cell_w: float
    full: bool
    short: bool
    span: float
    numeric: bool

    @property
    def em(self) -> float:
        return self.font / 72  # inches


def heatmap(table: Summary, narrow: bool = False) -> Figure:
    """log10(median final std) over the two main axes, one panel per value of the others;
    overflowed (non-finite) and exactly-0 cells in colours of their own, hatched, beyond
    either end of the scale. ``narrow``: for a phone (panels stacked, scale below)."""
    rows, cols, panel_axes = grid_layout(table.axes)
    row_vals = table.values[rows] if rows else [None]
    col_vals = table.values[cols] if cols else [None]
    keys = panel_keys(table, panel_axes)
    font = 8.5 if narrow else 8.0  # >= 9 px as shown at either width (style.shown_px)
    avail = NARROW - 1.05 if narrow else WIDE - 2.9  # less the row labels and the scale
    per_row = 1 if narrow else max(1, min(len(keys), int(avail // (0.9 * len(col_vals)))))
    cell_w = min(1.9, avail / (per_row * len(col_vals)))
    cell_h = min(0.75, (5.0 if narrow else 5.5) / len(row_vals))
    em = font / 72  # inches
    finite = [v for j in table.ok if (v := _std_cell(j.summary))[0] == "value"]
    heat = _Heat(rows, cols, row_vals, col_vals, font, cell_w,
                 full=cell_w >= 16.8 * 0.6 * em and cell_h >= 3.6 * em,  # 3 lines of text
                 short=cell_w >= 5 * 0.6 * em and cell_h >= 1.4 * em,
                 span=max([abs(v) for _, v in finite] + [1.0]),
                 numeric=bool(rows) and all(isinstance(v, (int, float)) for v in row_vals))
    prows = math.ceil(len(keys) / per_row)
    width = (NARROW if narrow else min(WIDE, 2.9 + cell_w * len(col_vals) * per_row))
    height = 2.2 + (1.0 if narrow else 0.4) + prows * (cell_h * len(row_vals) + 0.7)
    fig = Figure(figsize=(width, height), layout="constrained")
    axs = fig.subplots(prows, per_row, squeeze=False)
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(over=NONFINITE, under=ZERO,
                                                         bad="#ffffff")
    norm = TwoSlopeNorm(vmin=-heat.span, vcenter=0.0, vmax=heat.span)
    image, kinds = None, set()
    for n, key in enumerate(keys):
        ax = axs[n // per_row][n % per_row]
        grid = _heat_cells(ax, table, panel_axes, key, heat, kinds)
        image = ax.imshow(grid, cmap=cmap, norm=norm, aspect="auto",
                          origin="lower" if heat.numeric else "upper")
        _heat_axes(ax, heat, panel_title(panel_axes, key) if panel_axes else None)
    for n in range(len(keys), prows * per_row):
        axs[n // per_row][n % per_row].axis("off")
    _heat_keys(fig, axs, image, kinds, font, narrow)
    title = ("Final-layer std, median over trials. Colour: log10(std); white ≈ 1 (held), "
             "red grew (exploding), blue shrank (vanishing)")
    if not (heat.full or heat.short):
        title += "; the verdicts are in the Verdicts table"
    fig.suptitle(textwrap.fill(title, int(width * 72 / (0.55 * (font + 2)))),
                 fontsize=font + 2)
    return fig


def _heat_cells(ax, table: Summary, panel_axes: list[str], key: tuple, heat: _Heat,
                kinds: set) -> np.ndarray:
    """One panel's values (non-finite beyond the top, 0 beyond the bottom), its hatches
    and its cell texts; the kinds of cell it holds are added to ``kinds``."""
    span = heat.span
    grid = np.full((len(heat.row_vals), len(heat.col_vals)), np.nan)
    for job in table.ok:
        if not in_panel(table, job, panel_axes, key):
            continue
        i = heat.row_vals.index(table.at(job, heat.rows)) if heat.rows else 0
        k = heat.col_vals.index(table.at(job, heat.cols)) if heat.cols else 0
        kind, value = _std_cell(job.summary)
        grid[i, k] = {"value": value, "nonfinite": 2 * span, "zero": -2 * span}.get(
            kind, np.nan)
        if kind in HATCH:
            kinds.add(kind)
            ax.add_patch(Rectangle((k - 0.5, i - 0.5), 1, 1, fill=False, lw=0,
                                   hatch=HATCH[kind], edgecolor=(1, 1, 1, 0.45)))
        dark = kind in HATCH or (kind == "value" and abs(value) > 0.6 * span)
        if heat.full or heat.short:
            box = {"boxstyle": "round,pad=0.2", "ec": "none", "alpha": 0.85,
                   "fc": NONFINITE if kind == "nonfinite" else ZERO} if kind in HATCH else None
            ax.text(k, i, _cell_text(job.summary, kind, heat.full), ha="center",
                    va="center", fontsize=heat.font, color="white" if dark else "black",
                    bbox=box)
    return grid


def _heat_axes(ax, heat: _Heat, title: str | None) -> None:
    labels = [str(v) for v in heat.col_vals]
    turn = max(map(len, labels)) * 0.6 * heat.em > heat.cell_w * 0.95
    ax.set_xticks(range(len(heat.col_vals)), labels, fontsize=heat.font,
                  rotation=90 if turn else 0)
    ax.set_yticks(range(len(heat.row_vals)), [str(v) for v in heat.row_vals],
                  fontsize=heat.font)
    ax.set_xlabel(heat.cols or "", fontsize=heat.font + 1)
    ax.set_ylabel(heat.rows or "", fontsize=heat.font + 1)
    if title:
        ax.set_title(title, fontsize=heat.font + 1)


def _heat_keys(fig: Figure, axs, image, kinds: set, font: float, narrow: bool) -> None:
    """The colour scale, and legend patches for the non-finite and zero cells shown."""
    if image is not None:
        bar = fig.colorbar(image, ax=axs.ravel().tolist(), shrink=0.9, extend="both",
                           orientation="horizontal" if narrow else "vertical",
                           **({"pad": 0.02, "aspect": 30} if narrow else {"aspect": 30}))
        bar.set_label("log10(final std), median over trials", fontsize=font + 1)
        bar.ax.tick_params(labelsize=font)
    patches = [Patch(facecolor=NONFINITE, edgecolor=(1, 1, 1, 0.6), hatch=HATCH["nonfinite"],
                     label="non-finite: overflowed to inf/NaN (beyond the reddest red)"),
               Patch(facecolor=ZERO, edgecolor=(1, 1, 1, 0.6), hatch=HATCH["zero"],
                     label="exactly 0: vanished completely (beyond the bluest blue)")]
    shown = [p for p, k in zip(patches, ("nonfinite", "zero"), strict=True) if k in kinds]
    if shown:
        fig.legend(handles=shown, loc="outside lower center", fontsize=font,
                   ncols=1 if narrow else len(shown), frameon=False)


def _panel_legend(sub, ax, title: str | None, inches: float, font: float) -> None:
    """A panel's legend under it, its entries wrapped to the panel's width, in as many
    columns (up to 3) as fit."""
    handles, labels = ax.get_legend_handles_labels()
    chars = int(0.9 * inches * 72 / (0.6 * font)) - 5
    labels = [textwrap.fill(t, chars, subsequent_indent="  ") for t in labels]
    fit = int(chars / (max(len(x) for t in labels for x in t.split("\n")) + 5))
    sub.legend(handles, labels, title=title, title_fontsize=font, loc="outside lower center",
               fontsize=font, ncols=max(1, min(3, len(labels), fit)))


def by_layer_panels(table: Summary) -> list[str]:
    """The axes the by-layer figures draw a panel for: a swept model (models have their own
    layers: one panel each) and a swept activation; the other axes are lines."""
    return [a for a in ("model", "activation") if a in table.axes]


def by_layer(table: Summary, stat: str, jobs: list[JobRecord] | None = None,
             note: str = "", narrow: bool = False) -> Figure:
    """Median and 10-90 % band of ``stat`` per layer (``initlab.figures.panels``); a line per
    setting, a panel per activation (and per model, when models are swept), each panel's
    legend below it. ``narrow``: the panels stacked, for a phone.

    ``jobs`` (default: every finished one) are the lines drawn; ``note`` says which when
    they are a selection, under the title."""
    ok = [j for j in (table.ok if jobs is None else jobs) if j.layers is not None]
    panel_axes = by_layer_panels(table)
    lines = [a for a in table.axes if a not in panel_axes]
    keys = panel_keys(table, panel_axes)
    ncols = 1 if narrow else min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    font = 8.5 if narrow else 8.0  # >= 9 px as shown at either width (style.shown_px)
    width = NARROW if narrow else min(WIDE, 7.0 if ncols == 1 else 1.2 + 3.6 * ncols)
    fig = Figure(figsize=(width, 1.0 + (4.6 if narrow else 4.4) * nrows), layout="constrained")
    # a subfigure per panel: its legend goes under its axes and tick labels, laid out
    subs = fig.subfigures(nrows, ncols, squeeze=False)
    line_keys = list(dict.fromkeys(tuple(table.at(j, a) for a in lines) for j in ok))
    colors = matplotlib.colormaps["tab10" if len(line_keys) <= 10 else "tab20"]
    for n, key in enumerate(keys):
        sub = subs[n // ncols][n % ncols]
        ax = sub.subplots()
        drawn, sel = [], [j for j in ok if in_panel(table, j, panel_axes, key)]
        for job in sel:
            lk = tuple(table.at(job, a) for a in lines)
            finite = _wide(job.layers, "finite") if "finite" in job.layers else None
            drawn.append(panels.Line(", ".join(str(v) for v in lk) or _settings_words(job),
                                     _wide(job.layers, stat), _curve(job.layers, stat),
                                     colors(line_keys.index(lk) % colors.N), finite))
        model = dict(zip(panel_axes, key, strict=True)).get("model", table.fixed.get("model"))
        marks = None
        if len(sel) == 1:
            s = sel[0].summary
            marks = panels.Marks(s.get("thresholds"), s.get("verdict"), s.get("verdict_layer"))
        panels.draw(ax, drawn, stat, no_theory=f"no theory line for model {model}" if model
                    not in (None, "chain", "conv_chain") else "no mean-field theory here",
                    dtype=str(table.fixed.get("dtype", "float32")), marks=marks)
        if panel_axes:
            ax.set_title(panel_title(panel_axes, key), fontsize=font + 1)
        ax.set_xlabel("layer (0 = input)", fontsize=font + 1)
        ax.set_ylabel(ax.get_ylabel(), fontsize=font + 1)
        ax.tick_params(labelsize=font)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _panel_legend(sub, ax, ", ".join(lines) or None, width / ncols, font)
    what = {"std": "std (log axis)", "mean": "mean (symmetric log axis)",
            "grad_x_std": "gradient std, dL/dx_l (log axis)",
            "corr": "correlation of two inputs' pre-activations"}[stat]
    title = (f"{what} by layer: median over trials, band 10-90 %, dashed: mean-field "
             "theory; the legend names layers without a point (0 or non-finite)")
    wrap = int(width * 72 / (0.55 * (font + 2)))  # characters across the figure
    fig.suptitle("\n".join(textwrap.fill(t, wrap) for t in (title, note) if t),
                 fontsize=font + 2)
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


def color_dim(job: JobRecord, narrow: bool = False) -> Figure:
    """fastai-style colour_dim over depth: layer x log10|x| bins, colour log(1 + count).
    ``narrow``: for a phone (the colour bar below)."""
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
    font = 8.5 if narrow else 8.0
    size = (NARROW, 5.6) if narrow else (8, 4.8)
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.log1p(grid), origin="lower", aspect="auto", cmap="viridis",
                      extent=(-0.5, depth + 0.5, -0.5, nbins + 1.5), interpolation="nearest")
    # decade labels no closer than ~1.6 lines of text to each other or to the "0" and
    # "NaN/inf" rows
    axes_px = (size[1] - (2.4 if narrow else 1.6)) * 100
    gap = 1.6 * font * 100 / 72 * (nbins + 2) / axes_px
    decades = list(range(math.ceil(lo), math.floor(hi) + 1))
    every = max(1, math.ceil(len(decades) / max(1, int((nbins + 2) / gap) - 2)))
    decades = decades[::every]
    at = {d: 1 + (d - lo) / step - 0.5 for d in decades}
    decades = [d for d in decades if gap <= at[d] <= nbins + 1 - gap]
    ax.set_yticks([0] + [at[d] for d in decades] + [nbins + 1],
                  ["0"] + [f"1e{d}" for d in decades] + ["NaN/inf"], fontsize=font)
    ax.tick_params(labelsize=font)
    for y in (0.5, nbins + 0.5):
        ax.axhline(y, color="white", lw=0.8)
    ax.set_xlabel("layer (0 = input)", fontsize=font + 1)
    ax.set_ylabel("|x| (log bins)\nbottom row: exact 0, top: NaN/inf", fontsize=font + 1)
    bar = fig.colorbar(image, ax=ax, orientation="horizontal" if narrow else "vertical",
                       **({"pad": 0.02, "aspect": 30} if narrow else {}))
    bar.set_label("log(1 + count)", fontsize=font + 1)
    bar.ax.tick_params(labelsize=font)
    s = job.settings
    title = (f"{job.name}: init={label(s, 'init')}, activation={label(s, 'activation')}, "
             f"{s.get('trials')} trials — histogram of |x| by layer")
    ax.set_title(textwrap.fill(title, int(size[0] * 0.8 * 72 / (0.6 * (font + 1)))),
                 fontsize=font + 1)
    return fig


def _settings_words(job) -> str:
    """A line's name when nothing varies (a single run): what ran, not its directory's
    timestamp: ``scaled(sigma_w2=1.76), tanh, bias normal(sigma_b2=0.05)``."""
    s = job.settings
    words = [label(s, "init"), label(s, "activation")]
    if s.get("model", "chain") != "chain":
        words.insert(0, str(s.get("model")))
    if s.get("bias") not in (None, "zero"):
        words.append(f"bias {label(s, 'bias')}")
    return ", ".join(words)
