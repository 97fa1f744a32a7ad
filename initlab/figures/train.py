"""A training job's own figures, from its files: loss and accuracy by step, fastai's per-layer
statistics by step (``plot_layer_stats``) and ``color_dim`` over the steps.

Reads ``train_steps`` and ``train_layers`` (Parquet, else CSV), ``train_histogram.csv`` and
the job's summary; every curve is the median over trials with the 10-90 % band. No torch:
the report's training section uses the same readers. Unlike fastai's ``color_dim`` (raw
values binned in [0, 10]), the bins are log10|x| over the whole range the file holds, with
exact zeros (bottom row) and non-finite values (top row) kept apart.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from initlab import store
from initlab.figures.style import BAND_ALPHA, LEGEND, save
from initlab.labels import label
from initlab.numbers import bands

CURVES_PNG = "train_curves.png"
LAYER_STATS_PNG = "train_layer_stats.png"
COLOR_DIM_PNG = "train_color_dim.png"
#: the columns read from train_layers (the settings columns repeat on every row: not read)
LAYER_COLUMNS = ("trial", "step", "layer", "module", "module_type", "mean", "std", "near_zero",
                 "zero_frac", "finite")
STEP_COLUMNS = ("trial", "step", "train_loss", "train_acc", "eval_loss", "eval_acc", "lr",
                "momentum")
#: fastai's ActivationStats threshold, when the job's settings do not say
NEAR_ZERO = 0.05


class TrainFilesError(ValueError):
    """A training job's files cannot be read; the message is one line naming the file."""


def has_training(job_dir: Path) -> bool:
    stem = Path(job_dir) / store.TRAIN_STEPS
    return any(stem.with_suffix(f".{ext}").exists() for ext in ("parquet", "csv"))


def _read(job_dir: Path, stem: str, wanted: tuple[str, ...], needed: tuple[str, ...]
          ) -> pd.DataFrame:
    """``stem.parquet`` (else ``stem.csv``), the ``wanted`` columns it has; ``needed`` ones
    missing: TrainFilesError."""
    job_dir = Path(job_dir)
    names = set(wanted)
    parquet, csv = job_dir / f"{stem}.parquet", job_dir / f"{stem}.csv"
    if not parquet.exists() and not csv.exists():
        raise TrainFilesError(f"{job_dir}: neither {parquet.name} nor {csv.name} exists")
    try:
        if parquet.exists():
            import pyarrow.parquet as pq

            have = pq.ParquetFile(parquet).schema_arrow.names
            frame = pd.read_parquet(parquet, columns=[c for c in have if c in names])
        else:
            frame = pd.read_csv(csv, usecols=lambda c: c in names)
    except Exception as exc:
        raise TrainFilesError(f"{job_dir}: {stem} unreadable ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
    if missing := [c for c in needed if c not in frame.columns]:
        raise TrainFilesError(f"{job_dir}: {stem} lacks {', '.join(missing)}")
    return frame


def read_steps(job_dir: Path) -> pd.DataFrame:
    """One row per (trial, step): loss and accuracy of the training batch and held out."""
    return _read(job_dir, store.TRAIN_STEPS, STEP_COLUMNS, ("trial", "step", "train_loss"))


def read_layers(job_dir: Path) -> pd.DataFrame:
    """One row per (trial, recorded step, layer): the statistics the figures draw."""
    return _read(job_dir, store.TRAIN_LAYERS, LAYER_COLUMNS, ("trial", "step", "layer", "std"))


def read_histogram(job_dir: Path) -> pd.DataFrame | None:
    """``step, layer, bin, log10_lo, log10_hi, count``; None when the job recorded none."""
    path = Path(job_dir) / store.TRAIN_HISTOGRAM_CSV
    try:
        return pd.read_csv(path) if path.exists() else None
    except Exception as exc:
        raise TrainFilesError(f"{path}: unreadable ({type(exc).__name__})") from None


def by_step(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                       np.ndarray]:
    """(steps, median, 10 %, 90 %) of ``column`` over trials, steps where any trial has it."""
    wide = frame.pivot_table(index="trial", columns="step", values=column, aggfunc="first",
                             dropna=False)
    wide = wide.loc[:, wide.notna().any(axis=0)]
    med, lo, hi = bands(wide.to_numpy(dtype=float))
    return wide.columns.to_numpy(dtype=float), med, lo, hi


def band_line(ax, x, med, lo, hi, color, label, lw=1.8, alpha=BAND_ALPHA, **kw) -> None:
    ok = np.isfinite(med)
    ax.fill_between(x, lo, hi, where=np.isfinite(lo) & np.isfinite(hi), color=color,
                    alpha=alpha, lw=0)
    ax.plot(x[ok], med[ok], color=color, lw=lw, label=label, **kw)


def wrap(text: str, inches: float, size: float) -> str:
    """``text`` folded to the width of ``inches`` at ``size`` points (about 0.55 em a glyph)."""
    return "\n".join(textwrap.fill(line, max(20, int(inches * 72 / (0.55 * size))))
                     for line in text.split("\n"))


def log_axis(ax) -> None:
    """A log y axis labelled in plain numbers (0.5, 2, 10), minor labels where it spans
    less than two decades."""
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    low, high = ax.get_ylim()
    ax.yaxis.set_minor_formatter(plain if high / low < 100 else NullFormatter())


def is_classification(steps: pd.DataFrame) -> bool:
    return "train_acc" in steps and bool(np.isfinite(steps["train_acc"].to_numpy(float)).any())


def curves(steps: pd.DataFrame, title: str, chance: float | None = None) -> Figure:
    """Loss (log axis) and accuracy by step: the training batch of each step (thin) and the
    held-out set where evaluated (thick, dots); median over trials, band 10-90 %."""
    kinds = ["loss", "acc"] if is_classification(steps) else ["loss"]
    fig = Figure(figsize=(5 * len(kinds), 4), layout="constrained")
    axs = np.atleast_1d(fig.subplots(1, len(kinds)))
    for ax, kind in zip(axs, kinds, strict=True):
        band_line(ax, *by_step(steps, f"train_{kind}"), "C0", "training batch", lw=1.0,
                  alpha=0.12)
        if f"eval_{kind}" in steps and steps[f"eval_{kind}"].notna().any():
            band_line(ax, *by_step(steps, f"eval_{kind}"), "C1", "held-out", marker="o",
                      ms=3)
        if kind == "loss":
            values = steps["train_loss"].to_numpy(float)
            if (values[np.isfinite(values)] > 0).all():
                log_axis(ax)
            ax.set_ylabel("loss (log axis)", fontsize=10)
        else:
            if chance is not None:
                ax.axhline(chance, color="gray", ls="--", lw=1, label=f"chance {chance:.2f}")
            ax.set_ylim(-0.02, 1.02)
            ax.set_ylabel("accuracy", fontsize=10)
        ax.set_xlabel("step (updates)", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(**{**LEGEND, "fontsize": 9})
    fig.suptitle(wrap(title + "\nmedian over trials, band 10-90 %", fig.get_figwidth(), 10),
                 fontsize=10)
    return fig


def typed_layers(frame: pd.DataFrame) -> list[int]:
    """The layers after the input (layer 0) of the most common module type: a chain's hidden
    layers (not its readout), a CNN's convolutions (not its batchnorms)."""
    kinds = frame[frame["layer"] > 0].drop_duplicates("layer").sort_values("layer")
    if kinds.empty:
        return sorted(frame["layer"].unique())
    if "module_type" not in kinds:
        return kinds["layer"].tolist()
    common = kinds["module_type"].value_counts().index[0]
    return kinds.loc[kinds["module_type"] == common, "layer"].tolist()


def default_layers(frame: pd.DataFrame) -> list[int]:
    """First, middle and last of ``typed_layers``."""
    inner = typed_layers(frame)
    return list(dict.fromkeys([inner[0], inner[(len(inner) - 1) // 2], inner[-1]]))


def layer_name(frame: pd.DataFrame, layer: int) -> str:
    """``layer 3 (Conv2d 6)``: the row's index with its module, where the file names it."""
    rows = frame[frame["layer"] == layer]
    if "module" not in rows or rows.empty:
        return f"layer {layer}"
    module = str(rows["module"].iloc[0])
    kind = str(rows["module_type"].iloc[0]) if "module_type" in rows else ""
    words = " ".join(w for w in (kind if kind != module else "", module) if w)
    return f"layer {layer} ({words})"


STAT_AXES = (("mean", "mean"), ("std", "std (log axis)"), ("near_zero", "% near zero"))


def layer_stats(layers: pd.DataFrame, title: str, chosen: list[int] | None = None,
                near_zero: float = NEAR_ZERO, axs=None) -> Figure | None:
    """fastai's ``plot_layer_stats`` over trials: mean, std and % of |x| <= ``near_zero``
    against step, one line per chosen layer (default: first, middle, last). ``axs``: three
    axes to draw on (the report's small multiples); else a figure of its own."""
    chosen = chosen or default_layers(layers)
    fig = None
    if axs is None:
        fig = Figure(figsize=(6.4, 8), layout="constrained")
        axs = fig.subplots(3, 1, sharex=True)
    for n, layer in enumerate(chosen):
        rows = layers[layers["layer"] == layer]
        color = f"C{n}"
        for ax, (stat, _) in zip(axs, STAT_AXES, strict=True):
            if stat not in rows:
                continue
            x, med, lo, hi = by_step(rows, stat)
            scale = 100.0 if stat == "near_zero" else 1.0
            if stat == "std":
                med, lo, hi = (np.where(v > 0, v, np.nan) for v in (med, lo, hi))
            band_line(ax, x, med * scale, lo * scale, hi * scale, color,
                      layer_name(layers, layer))
            if "finite" in rows:  # dotted: where most trials of the layer stopped being finite
                share = 1 - rows.groupby("step")["finite"].mean()
                if (share > 0.5).any():
                    ax.axvline(float(share.index[share > 0.5][0]), color=color, ls=":", lw=1.2)
    for ax, (stat, ylabel) in zip(axs, STAT_AXES, strict=True):
        ax.set_ylabel(ylabel, fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(True, alpha=0.3)
        if stat == "std" and ax.lines:
            log_axis(ax)
        if stat == "near_zero" and ax.lines:
            top = max(np.nanmax(np.append(line.get_ydata(), 0)) for line in ax.lines)
            ax.set_ylim(-1, min(101, max(5, 1.15 * top)))
    axs[-1].set_xlabel("step (updates)", fontsize=10)
    if fig is not None:
        axs[0].legend(**{**LEGEND, "fontsize": 9})
        fig.suptitle(wrap(f"{title}\nper layer over training: median over trials, band "
                          f"10-90 %; near zero: |x| <= {near_zero:g}", 6.4, 10), fontsize=10)
    return fig


@dataclass(frozen=True)
class ColorDim:
    """One layer's histograms over the steps: ``grid`` (bins + 2, steps) of counts; row 0 the
    exact zeros, rows 1..bins the log10|x| bins from ``lo`` in ``width`` decades, the last
    row the non-finite values."""

    steps: np.ndarray
    lo: float
    width: float
    grid: np.ndarray

    @property
    def bins(self) -> int:
        return self.grid.shape[0] - 2


def value_span(rows: pd.DataFrame) -> tuple[float, float, float]:
    """(lowest edge, highest edge, bin width) of the value bins holding counts in ``rows``."""
    values = rows[rows["bin"] == "value"]
    if not len(values):
        return -1.0, 1.0, 0.25
    width = float((values["log10_hi"] - values["log10_lo"]).min())
    return float(values["log10_lo"].min()), float(values["log10_hi"].max()), width


def color_dim_grid(hist: pd.DataFrame, layer: int,
                   span: tuple[float, float, float] | None = None) -> ColorDim:
    """The counts of ``layer`` from the histogram file over the full range of its bins (or
    ``span``, ``value_span``'s triple, to share one range between jobs)."""
    rows = hist[hist["layer"] == layer]
    if rows.empty:
        raise TrainFilesError(f"no histogram rows for layer {layer}")
    steps = np.sort(rows["step"].unique())
    lo, hi, width = span or value_span(rows)
    nbins = max(1, round((hi - lo) / width))
    grid = np.zeros((nbins + 2, len(steps)))
    col = np.searchsorted(steps, rows["step"].to_numpy())
    kind = rows["bin"].to_numpy()
    idx = np.where(kind == "nonfinite", nbins + 1, 0)  # exact zeros: row 0
    val = kind == "value"
    idx[val] = 1 + np.clip(np.round((rows["log10_lo"].to_numpy()[val] - lo) / width)
                           .astype(int), 0, nbins - 1)
    np.add.at(grid, (idx, col), rows["count"].to_numpy(dtype=float))
    return ColorDim(steps=steps, lo=lo, width=width, grid=grid)


def edges(centres, log: bool = False) -> np.ndarray:
    """Cell boundaries around ``centres``: midpoints (geometric when ``log``), ends mirrored."""
    x = np.log(centres) if log else np.asarray(centres, dtype=float)
    half = np.diff(x) / 2 if x.size > 1 else np.array([0.5])
    e = np.concatenate([[x[0] - half[0]], x[:-1] + half, [x[-1] + half[-1]]])
    return np.exp(e) if log else e


def draw_color_dim(ax, cd: ColorDim, near_zero: float | None = NEAR_ZERO, fontsize: float = 9):
    """Draw ``cd`` on ``ax`` (colour: log(1 + count)); returns the mesh."""
    y = np.arange(cd.bins + 3) - 0.5
    ax.set_facecolor("#f0f0f0")  # a bin with no value: light grey, apart from the colour scale
    mesh = ax.pcolormesh(edges(cd.steps), y,
                         np.ma.masked_equal(np.log1p(cd.grid), 0), cmap="viridis", shading="flat")
    hi = cd.lo + cd.bins * cd.width
    decades = list(range(math.ceil(cd.lo), math.floor(hi) + 1))
    decades = decades[::max(1, math.ceil(len(decades) / 8))]
    at = {d: 1 + (d - cd.lo) / cd.width - 0.5 for d in decades}
    gap = max(1.5, 0.06 * (cd.bins + 2))  # no decade label on top of the 0 or NaN/inf one
    at = {d: y for d, y in at.items() if gap <= y <= cd.bins + 1 - gap}
    ax.set_yticks([0, *at.values(), cd.bins + 1], ["0", *(f"1e{d}" for d in at), "NaN/inf"],
                  fontsize=fontsize)
    for edge in (0.5, cd.bins + 0.5):
        ax.axhline(edge, color="white", lw=1.0)
    if near_zero and cd.lo < math.log10(near_zero) < hi:
        ax.axhline(1 + (math.log10(near_zero) - cd.lo) / cd.width - 0.5, color="white",
                   ls="--", lw=0.9)
    ax.tick_params(axis="x", labelsize=fontsize)
    return mesh


def color_dim_words(cd: ColorDim) -> str:
    """What the marked rows hold: the largest share of exact zeros and of non-finite values."""
    shares = cd.grid[[0, -1]] / np.maximum(cd.grid.sum(axis=0), 1)
    return "; ".join(f"{what}: up to {100 * row.max():.3g} % (step {cd.steps[row.argmax()]})"
                     if row.max() > 0 else f"no {what}"
                     for what, row in zip(("exact zeros", "non-finite"), shares, strict=True))


def color_dim(hist: pd.DataFrame, layer: int, title: str, near_zero: float | None = NEAR_ZERO
              ) -> Figure:
    """fastai's ``color_dim`` of one layer over the steps: x step, y log10|x| (full range),
    colour log(1 + count over trials); exact zeros the bottom row, NaN/inf the top one."""
    cd = color_dim_grid(hist, layer)
    fig = Figure(figsize=(7, 4.6), layout="constrained")
    ax = fig.subplots()
    mesh = draw_color_dim(ax, cd, near_zero)
    ax.set_xlabel("step (updates)", fontsize=10)
    ax.set_ylabel("|x| (log10 bins); rows: exact 0 (bottom), NaN/inf (top)", fontsize=9)
    fig.colorbar(mesh, ax=ax).set_label("log(1 + count over trials); grey: none", fontsize=9)
    dashed = f"; dashed: |x| = {near_zero:g}" if near_zero else ""
    ax.set_title(wrap(f"{title}\ncolor_dim: histogram of |x| at each recorded step{dashed}\n"
                      + color_dim_words(cd), 6, 9), fontsize=9)
    return fig


def settings(summary: dict[str, Any]) -> dict[str, Any]:
    return summary.get("settings") or summary


def job_title(summary: dict[str, Any]) -> str:
    """``scaled(sigma_w2=1.76), tanh, depth 16 width 64, 4 trials; rmsprop lr 0.001
    constant 300 steps``: what was trained, and how."""
    s = settings(summary)
    shape = (f"depth {s.get('depth')} width {s.get('width')}" if s.get("model", "chain")
             == "chain" else label(s, "model"))
    how = " ".join(str(w) for w in (s.get("train_optimizer"), "train_lr" in s and
                                    f"lr {s['train_lr']:g}", s.get("train_schedule"),
                                    "train_steps" in s and f"{s['train_steps']} steps") if w)
    what = ", ".join([label(s, "init"), str(s.get("activation")), shape,
                      f"{s.get('trials')} trials"])
    return what + (f"; {how}" if how else "")


def chosen_layer(frame: pd.DataFrame, layer: int | None = None) -> int:
    """``layer`` (negative: from the end); default the last of ``typed_layers`` before the
    output (fastai's ``color_dim(-2)`` of its CNN). ``frame``: train_layers or histogram."""
    layers = sorted(frame["layer"].unique())
    if layer is None:
        typed = [n for n in typed_layers(frame) if n != layers[-1]]
        return typed[-1] if typed else layers[max(0, len(layers) - 2)]
    if layer < 0:
        return layers[max(0, len(layers) + layer)]
    if layer not in layers:
        raise TrainFilesError(f"layer {layer} not recorded; layers 0..{layers[-1]}")
    return layer


def draw_training(job_dir: Path, summary: dict[str, Any] | None = None,
                  layers: list[int] | None = None, hist_layer: int | None = None) -> list[Path]:
    """A training job's figures, written into ``job_dir`` (nothing for a job that did not
    train): loss and accuracy, per-layer statistics, and color_dim of ``hist_layer``."""
    job_dir = Path(job_dir)
    if not has_training(job_dir):
        return []
    if summary is None:
        summary = json.loads((job_dir / store.SUMMARY_JSON).read_text())
    title = job_title(summary)
    near = float(settings(summary).get("train_near_zero") or NEAR_ZERO)
    steps = read_steps(job_dir)
    chance = (summary.get("training") or {}).get("chance")
    paths = [save(curves(steps, title, chance), job_dir / CURVES_PNG)]
    frame = read_layers(job_dir)
    paths.append(save(layer_stats(frame, title, layers, near), job_dir / LAYER_STATS_PNG))
    hist = read_histogram(job_dir)
    if hist is not None and len(hist):
        layer = chosen_layer(frame, hist_layer)
        paths.append(save(color_dim(hist, layer, f"{title}\n{layer_name(frame, layer)}", near),
                          job_dir / COLOR_DIM_PNG))
    return paths
