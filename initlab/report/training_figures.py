"""The training section's figures, each wide (a desktop's 1100-px column) and ``narrow`` (a
phone: 4.8 in wide, so 11-pt text is ~11.6 px shown 366 px wide), on ``Figure`` objects (no
pyplot), from what ``initlab.report.training`` collected (``tr``: its ``Trained``; ``grids``:
its ``TrainGrid`` list; the jobs' frames), passed in: this module sits below the section.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import patheffects, transforms
from matplotlib.figure import Figure

from initlab.figures import train as T
from initlab.figures.style import LEGEND
from initlab.labels import FAMILIES

NARROW = 4.8
#: font size (points) of the wide and the narrow layout
FONT = {False: 9, True: 11}
OUTLINE = [patheffects.withStroke(linewidth=3, foreground="black")]
#: lines a curves panel holds before the runs are split into panels
MAX_LINES = 8


def colors(values: list[Any]) -> dict[str, Any]:
    """repr(value) -> colour: a sequential map for numbers, tab10 otherwise."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    cmap = matplotlib.colormaps["plasma" if numeric else "tab10"]
    return {repr(v): cmap(0.85 * i / max(1, len(values) - 1) if numeric else i % 10)
            for i, v in enumerate(values)}


def _cells(ax, values: np.ndarray, runs: list[list[Any]], size: tuple[float, float],
           font: float, x=None, y=None) -> None:
    """On each cell of ``size`` (height, width) inches: the run's accuracy and, where two
    lines fit, the trials that trained (white on dark cells); nothing where one does not."""
    em = font / 72
    lines = 0 if size[1] < 2.6 * em else 2 if size[0] >= 3 * em else int(size[0] >= 1.4 * em)
    for i, row in enumerate(runs):
        for k, run in enumerate(row):
            if run is None or not lines:
                continue
            n, of = run.training.get("trained_trials"), run.training.get("trials")
            text = ("—" if math.isnan(values[i, k]) else f"{values[i, k]:.2f}") + (
                f"\n{n}/{of}" if n is not None and of and lines == 2 else "")
            ax.text(k if x is None else x[k], i if y is None else y[i], text, ha="center",
                    va="center", fontsize=font, color="white" if values[i, k] < 0.55 else "k")


def number(value: float) -> str:
    """``∞``, ``29470``, ``54.3``: a depth scale for people."""
    return "∞" if math.isinf(value) else f"{value:.0f}" if abs(value) >= 1e3 else f"{value:.3g}"


def show(value: Any) -> str:
    """A setting's value in a label: ``—`` for none, floats short."""
    if value is None:
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)


def axis(key: str) -> str:
    """``init_sigma_w2`` -> ``init.sigma_w2``, ``train_lr`` -> ``train.lr`` (as typed)."""
    for prefix in (*FAMILIES, "train"):
        if key.startswith(prefix + "_"):
            return f"{prefix}.{key[len(prefix) + 1:]}"
    return key


def heatmap(tr, narrow: bool = False) -> Figure:
    """Final held-out accuracy per config: a grid over the two naming settings when they
    fill half of it, else a column of configs named on the left."""
    font, keys = FONT[narrow], tr.naming
    grid = len(keys) == 2 and 2 * len(tr.runs) >= len(tr.values(keys[0])) * len(
        tr.values(keys[1]))
    cols, rows = (tr.values(keys[0]), tr.values(keys[1])) if grid else ([None], tr.runs)
    place = {r.name: (rows.index(tr.value(r, keys[1])), cols.index(tr.value(r, keys[0])))
             if grid else (i, 0) for i, r in enumerate(tr.runs)}
    width = NARROW if narrow else min(10.0, 2.2 + 1.2 * len(cols) + (0 if grid else 2.5))
    height = 1.6 + min(0.7, 7.0 / len(rows)) * len(rows)
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    values = np.full((len(rows), len(cols)), np.nan)
    cells: list[list[Any]] = [[None] * len(cols) for _ in rows]
    for r in tr.runs:
        i, k = place[r.name]
        values[i, k], cells[i][k] = r.final("acc"), r
    ax.set_facecolor("#dddddd")
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    _cells(ax, values, cells, ((height - 1.6) / len(rows),
                               (3.0 if narrow else width - (2.2 if grid else 4.7)) / len(cols)),
           font)
    ax.set_xticks(range(len(cols)), [show(v) for v in cols] if grid else [""], fontsize=font)
    one = len(keys) == 1  # a column of one setting's values
    ax.set_yticks(range(len(rows)), [show(v) for v in rows] if grid else
                  [show(tr.value(r, keys[0])) if one else tr.label(r) for r in rows],
                  fontsize=font)
    if grid or one:
        ax.set_xlabel(axis(keys[0]) if grid else "", fontsize=font)
        ax.set_ylabel(axis(keys[1] if grid else keys[0]), fontsize=font)
    bar = fig.colorbar(image, ax=ax, orientation="horizontal" if narrow else "vertical",
                       shrink=0.9)
    bar.set_label("held-out accuracy (median over trials)"
                  + ("; grey: not run" if np.isnan(values).any() else ""), fontsize=font)
    bar.ax.tick_params(labelsize=font)
    fig.suptitle(T.wrap("Final held-out accuracy (cells: accuracy, trials that trained)",
                        width, font + 1), fontsize=font + 1)
    return fig


def _groups(tr) -> tuple[str | None, list[tuple[str, list]]]:
    """(the setting each line stands for, [(panel title, runs)])."""
    line = tr.naming[0] if tr.naming else None
    rest = tr.naming[1:]
    if len(tr.runs) <= MAX_LINES or not rest:
        return line, [("", tr.runs)]
    panels: dict[str, list] = {}
    for run in tr.runs:
        panels.setdefault(tr.label(run, rest), []).append(run)
    return line, list(panels.items())


def _curve_source(run, kind: str) -> str:
    steps = run.steps
    held = f"eval_{kind}"
    if steps is not None and held in steps and steps[held].notna().groupby(
            steps["trial"]).sum().min() >= 4:
        return held
    return f"train_{kind}"


def curves(tr, narrow: bool = False) -> Figure:
    """Loss and accuracy against step, one line per config (median over trials, band
    10-90 %), held out where evaluated at least 4 times, else the training batch; a row of
    panels per value of the other settings when there are many configs."""
    font = FONT[narrow]
    line, groups = _groups(tr)
    kinds = ["loss", "acc"] if any(r.steps is not None and T.is_classification(r.steps)
                                   for r in tr.runs) else ["loss"]
    n = len(groups) * len(kinds)
    fig = Figure(figsize=(NARROW, 0.9 + 2.6 * n) if narrow else
                 (5 * len(kinds), 0.9 + 3.1 * len(groups)), layout="constrained")
    axs = fig.subplots(n, 1, squeeze=False).reshape(len(groups), len(kinds)) if narrow else \
        fig.subplots(len(groups), len(kinds), squeeze=False)
    many = len(groups) > 1  # then a line stands for a value of ``line``, else for a config
    palette = colors(tr.values(line) if many else [r.name for r in tr.runs])
    for g, (title, runs) in enumerate(groups):
        for k, kind in enumerate(kinds):
            ax = axs[g][k]
            for run in (r for r in runs if r.steps is not None):
                source = _curve_source(run, kind)
                color = palette[repr(tr.value(run, line) if many else run.name)]
                name = show(tr.value(run, line)) if many else tr.label(run)
                T.band_line(ax, *T.by_step(run.steps, source), color, name, alpha=0.12, lw=1.6)
            what = {"loss": "loss", "acc": "accuracy"}[kind]
            where = {"eval": "held-out", "train": "training batch"}
            sources = {where[_curve_source(r, kind).split("_")[0]] for r in runs}
            ax.set_ylabel(f"{' / '.join(sorted(sources))} {what}", fontsize=font)
            if kind == "loss" and ax.lines and all(
                    (ln.get_ydata()[np.isfinite(ln.get_ydata())] > 0).all() for ln in ax.lines):
                T.log_axis(ax)
            if kind == "acc":
                ax.set_ylim(-0.02, 1.02)
            ax.set_title(title, fontsize=font)
            ax.tick_params(labelsize=font - 1)
            ax.grid(True, alpha=0.3)
            ax.set_xlabel("step", fontsize=font)
        if g == 0:
            axs[0][-1].legend(**{**LEGEND, "fontsize": font - 1}, title_fontsize=font - 1,
                              title=axis(line) if many else None)
    fig.suptitle("Training curves: median over trials, band 10-90 %", fontsize=font + 1)
    return fig


def _grid_panel(ax, grid, font: float, room: tuple[float, float]) -> Any:
    logx = max(grid.sigma_w2) / min(grid.sigma_w2) >= 4
    logy = max(grid.depths) / min(grid.depths) >= 4
    x, y = T.edges(grid.sigma_w2, logx), T.edges(grid.depths, logy)
    ax.set_facecolor("#dddddd")
    mesh = ax.pcolormesh(x, y, np.ma.masked_invalid(grid.acc), cmap="viridis", vmin=0, vmax=1)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_xticks(grid.sigma_w2, [f"{w:g}" for w in grid.sigma_w2], fontsize=font)
    ax.set_yticks(grid.depths, [str(d) for d in grid.depths], fontsize=font)
    ax.minorticks_off()
    cells = [[grid.runs.get((w, d)) for w in grid.sigma_w2] for d in grid.depths]
    _cells(ax, grid.acc, cells, room, font, grid.sigma_w2, grid.depths)
    _six_xi_c(ax, grid, y[-1], font)
    found = boundaries(grid)
    tops = [y[grid.depths.index(b.deepest_trained) + 1] if b.deepest_trained else y[0]
            for b in found]
    if any(b.deepest_trained is not None or b.shallowest_failed is not None for b in found):
        ax.stairs(tops, x, baseline=None, color="red", lw=2.2, ls="--",
                  label="measured: above the deepest depth that trained")
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y[0], y[-1])
    _sides(ax, grid, x, font)
    ax.set_xlabel(r"$\sigma_w^2$ (weight variance × fan_in)", fontsize=font)
    ax.set_ylabel("depth (layers)", fontsize=font)
    return mesh


def _six_xi_c(ax, grid, top: float, font: float) -> None:
    """6 xi_c at each swept sigma_w2, joined; a value above the diagram (inf at the edge) is
    a triangle on its top edge, its number in the legend."""
    six, w2 = grid.six_xi_c, np.asarray(grid.sigma_w2)
    ok, over = np.isfinite(six), ~(six < top)
    words = ", ".join(f"{number(v)} at {w:g}"
                      for w, v in zip(w2[over], six[over], strict=True))
    ax.plot(w2[ok], six[ok], color="white", lw=2.2, marker="o", ms=5, path_effects=OUTLINE,
            label=r"6 $\xi_c$ (theory) at each $\sigma_w^2$"
            + (f"; ▲ above: {words}" if words else ""))
    ax.plot(w2[over], np.full(over.sum(), top), ls="", marker="^", ms=9, color="white",
            mec="black", clip_on=False)


def _sides(ax, grid, x: np.ndarray, font: float) -> None:
    """The chi_1 = 1 line (where the sweep brackets it) and the two phases named above."""
    above, edge = transforms.blended_transform_factory(ax.transData, ax.transAxes), grid.edge
    if not math.isfinite(edge):  # all one side: the table names it per column
        return
    ax.axvline(edge, color="white", ls=":", lw=1.6,
               label=rf"$\chi_1 = 1$ (edge of chaos) at $\sigma_w^2$ = {edge:.3g}")
    for at, text, ha in ((math.sqrt(x[0] * edge), "← ordered", "right"),
                         (math.sqrt(edge * x[-1]), "chaotic →", "left")):
        ax.text(at, 1.01, text, transform=above, ha=ha, va="bottom", fontsize=font)


@dataclass(frozen=True)
class Boundary:
    """One sigma_w2 column: the deepest depth that trained, the shallowest that did not, and
    how they sit against 6 xi_c."""

    sigma_w2: float
    side: str
    six_xi_c: float
    deepest_trained: int | None
    shallowest_failed: int | None
    relation: str  # "consistent", "trained beyond 6 ξ_c", "failed within 6 ξ_c", "?"
    monotone: bool


def boundaries(grid) -> list[Boundary]:
    out = []
    for k, w in enumerate(grid.sigma_w2):
        col = grid.trained[:, k]
        ok = [d for d, t in zip(grid.depths, col, strict=True) if t == 1]
        bad = [d for d, t in zip(grid.depths, col, strict=True) if t == 0]
        deep, shallow = (max(ok) if ok else None), (min(bad) if bad else None)
        six = float(grid.six_xi_c[k])
        relation = ("?" if math.isnan(six) or (deep is None and shallow is None) else
                    "trained beyond 6 ξ_c" if deep is not None and deep > six else
                    "failed within 6 ξ_c" if shallow is not None and shallow <= six else
                    "consistent")
        monotone = deep is None or shallow is None or deep < shallow
        out.append(Boundary(w, grid.side(k), six, deep, shallow, relation, monotone))
    return out


def trainability(grids: list, steps: str, narrow: bool = False, about: str = "") -> Figure:
    """Held-out accuracy per (sigma_w2, depth) cell with 6 xi_c over it: a panel per grid
    (side by side, or stacked when ``narrow``)."""
    font = FONT[narrow]
    n = len(grids)
    cols = 1 if narrow else min(2, n)
    rows = math.ceil(n / cols)
    per = 4.6 if narrow else 4.3
    fig = Figure(figsize=(NARROW if narrow else 1.2 + 5.2 * cols, 1.6 + per * rows),
                 layout="constrained")
    axs = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    mesh = None
    for ax, grid in zip(axs, grids, strict=False):
        room = ((per - 1.2) / len(grid.depths), (3.4 if narrow else 4.0) / len(grid.sigma_w2))
        mesh = _grid_panel(ax, grid, font, room)
        if grid.title:
            ax.set_title(grid.title, fontsize=font, pad=font * 1.8)
    for ax in axs[n:]:
        ax.axis("off")
    fig.legend(*axs[0].get_legend_handles_labels(), loc="outside lower center",
               **{**LEGEND, "fontsize": font - 1})
    bar = fig.colorbar(mesh, ax=list(axs[:n]), orientation="horizontal" if narrow else
                       "vertical", shrink=0.9)
    bar.set_label(f"held-out accuracy after {steps} (median over trials)", fontsize=font)
    bar.ax.tick_params(labelsize=font)
    fig.suptitle(T.wrap("Trainability: which depths train, against 6 ξ_c" + (
        f"\n{about}" if about else ""), fig.get_figwidth(), font + 1), fontsize=font + 1)
    return fig


def _blocks(fig: Figure, n: int, across: int, each: int = 1) -> list[np.ndarray]:
    """``n`` blocks of ``each`` stacked axes, ``across`` to a row; spare axes hidden."""
    down = math.ceil(n / across)
    grid = fig.subplots(each * down, across, squeeze=False)
    blocks = [grid[each * (i // across):each * (i // across + 1), i % across]
              for i in range(down * across)]
    for ax in (ax for block in blocks[n:] for ax in block):
        ax.axis("off")
    return blocks[:n]


def layer_panels(tr, frames: dict[str, Any], narrow: bool = False) -> Figure:
    """fastai's ``plot_layer_stats`` per config, side by side (stacked when ``narrow``):
    mean, std and % near zero against step for the first, middle and last layers."""
    font = FONT[narrow]
    runs = [r for r in tr.runs if frames.get(r.name) is not None]
    n, across = len(runs), 1 if narrow else min(3, len(runs))
    fig = Figure(figsize=(NARROW if narrow else 0.4 + 3.9 * across,
                          0.8 + 7.2 * math.ceil(n / across)),
                 layout="constrained")
    for column, run in zip(_blocks(fig, n, across, 3), runs, strict=True):
        near = float(run.settings.get("train_near_zero") or T.NEAR_ZERO)
        T.layer_stats(frames[run.name], "", near_zero=near, axs=list(column))
        column[0].set_title(tr.label(run), fontsize=font)
        column[0].legend(**{**LEGEND, "fontsize": font - 1})
        for ax in column:
            ax.tick_params(labelsize=font - 1)
            ax.yaxis.label.set_fontsize(font)
    fig.suptitle("Per layer over training: median over trials, band 10-90 %", fontsize=font + 1)
    return fig


def color_dims(tr, hists: dict[str, Any], frames: dict[str, Any], narrow: bool = False
               ) -> Figure:
    """``color_dim`` of each config's layer before the output, side by side on one range of
    |x| and one colour scale (stacked when ``narrow``)."""
    font = FONT[narrow]
    runs = [r for r in tr.runs if hists.get(r.name) is not None]
    chosen = {r.name: T.chosen_layer(frames.get(r.name, hists[r.name])) for r in runs}
    spans = [T.value_span(hists[r.name][hists[r.name]["layer"] == chosen[r.name]])
             for r in runs]
    span = (min(s[0] for s in spans), max(s[1] for s in spans), min(s[2] for s in spans))
    n, across = len(runs), 1 if narrow else min(3, len(runs))
    fig = Figure(figsize=(NARROW if narrow else 1.2 + 3.9 * across,
                          0.8 + (3.4 if narrow else 4.0) * math.ceil(n / across)),
                 layout="constrained")
    axs = [block[0] for block in _blocks(fig, n, across)]
    grids = [T.color_dim_grid(hists[r.name], chosen[r.name], span) for r in runs]
    top = max(float(np.log1p(g.grid).max()) for g in grids)
    mesh = None
    for ax, run, cd in zip(axs, runs, grids, strict=True):
        near = float(run.settings.get("train_near_zero") or T.NEAR_ZERO)
        mesh = T.draw_color_dim(ax, cd, near, fontsize=font - 1)
        mesh.set_clim(0, top)
        where = T.layer_name(frames.get(run.name, hists[run.name]), chosen[run.name])
        ax.set_title(T.wrap(f"{tr.label(run)}\n{where}", 3.6, font), fontsize=font)
        ax.set_xlabel("step", fontsize=font)
    bar = fig.colorbar(mesh, ax=axs, shrink=0.9,
                       orientation="horizontal" if narrow else "vertical")
    bar.set_label("log(1 + count); grey: none", fontsize=font)
    bar.ax.tick_params(labelsize=font - 1)
    fig.suptitle("color_dim: |x| by step (bottom row exact 0, top row NaN/inf)",
                 fontsize=font + 1)
    return fig


def swings(values: np.ndarray, factor: float = 2.0) -> list[tuple[int, int, int]]:
    """Rises by ``factor`` or more each followed by a fall by ``factor`` or more (fastai's
    "waves": activations that grow, then crash): (start, peak, end) indices of each."""
    out, low, peak = [], None, None
    for i, v in enumerate(values):
        if not (math.isfinite(v) and v > 0):
            continue
        if low is None or (peak is None and v < values[low]):
            low = i
        elif peak is None and v >= factor * values[low]:
            peak = i
        elif peak is not None and v > values[peak]:
            peak = i
        elif peak is not None and v <= values[peak] / factor:
            out.append((low, peak, i))
            low, peak = i, None
    return out


def layer_story(frame: pd.DataFrame, layer: int) -> str:
    """One layer over training in numbers: std and % near zero at the first and last
    recorded step (highest std and its step), and its rises and falls by 2x (``swings``)."""
    rows = frame[frame["layer"] == layer]
    x, std = T.by_step(rows, "std")[:2]
    if not np.isfinite(std).any():
        return f"{T.layer_name(frame, layer)}: no finite std"
    top = int(np.nanargmax(std))
    text = (f"{T.layer_name(frame, layer)}: std {std[0]:.3g} → {std[-1]:.3g} (highest "
            f"{std[top]:.3g} at step {x[top]:.0f})")
    if "near_zero" in rows:
        nz = 100 * T.by_step(rows, "near_zero")[1]
        text += f", near zero {nz[0]:.2g} % → {nz[-1]:.2g} %"
    found = swings(std)
    if found:
        a, b, c = found[0]
        text += (f"; its std rose and fell by 2x or more {len(found)} time"
                 f"{'s' if len(found) > 1 else ''}, first {std[a]:.3g} (step {x[a]:.0f}) → "
                 f"{std[b]:.3g} ({x[b]:.0f}) → {std[c]:.3g} ({x[c]:.0f})")
    return text
