"""One statistic by layer on one axes: the drawing every by-layer figure shares.

A panel holds one or more ``Line``s (a job's statistic, or one line per job of a sweep):
the median over trials, the 10-90 % band, and the mean-field prediction dashed over it
(black for a single line, a dark shade of the line's colour for several; one legend entry
"theory"). The axis follows the statistic: log for a std, symmetric-log for a mean, linear
for a correlation. What a line cannot show is said: layers where every trial is non-finite
or a std is 0 (no point on a log axis) are named in the line's legend entry ("non-finite
from layer 29", "no line: 0 from layer 1"); a single line also gets marks: the first
non-finite layer, the dtype's largest value, the vanishing and explosion thresholds and
the layer of the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib import rcParams
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import SymmetricalLogLocator

from initlab.figures.style import BAND_ALPHA, THEORY_MANY, THEORY_ONE, dark
from initlab.numbers import bands

#: statistic -> y label
YLABELS = {"std": "std of x over units", "mean": "mean of x over units",
           "grad_x_std": "std of dL/dx_l", "grad_w_std": "std of dL/dW_l",
           "corr": "cosine between inputs' pre-activations"}
#: statistics drawn on a linear-ish axis (0 and negatives are values)
LINEAR = ("mean", "corr")


@dataclass
class Line:
    """One measured curve: ``values`` (trials, layers) of the statistic, its prediction
    ``theory`` (layers,), NaN where none applies."""

    label: str
    values: np.ndarray
    theory: np.ndarray
    color: str = "C0"
    #: (trials, layers) finiteness of the forward signal: the "non-finite from layer k"
    #: mark, and why a gradient through it is 0
    finite: np.ndarray | None = None
    #: the first layer the statistic exists at (1 for dL/dW: the input has no weights)
    first: int = 0


@dataclass
class Marks:
    """What a single job's panel marks besides its line: the verdict's thresholds
    (``summary.json``'s ``thresholds``) and the verdict with its layer."""

    thresholds: dict | None = None
    verdict: str | None = None
    verdict_layer: int | None = None


def draw(ax, lines: list[Line], stat: str, no_theory: str = "no mean-field theory here",
         dtype: str = "float32", marks: Marks | None = None) -> None:
    """Draw ``lines`` of ``stat`` on ``ax``; the legend names them, the prediction, and
    what is not drawn (no theory, a std that reached 0, non-finite layers). ``marks``: the
    panel is one job's (default: when it has one line), marked as ``_marks`` says."""
    theory_drawn, log = False, stat not in LINEAR
    single = len(lines) == 1
    for n, line in enumerate(lines):
        layers = np.arange(line.values.shape[1])
        values = np.where(line.values > 0, line.values, np.nan) if log else line.values
        med, lo, hi = bands(values)
        ax.fill_between(layers, lo, hi, where=np.isfinite(lo) & np.isfinite(hi),
                        color=line.color, alpha=BAND_ALPHA, lw=0)
        ok = np.isfinite(med)
        gap = gaps(line, stat)
        name = line.label
        if ok.sum() <= 1:  # nothing a reader could see: say why instead of a line
            name = f"{name}: no line, {gap or 'no finite value'}"
        elif gap and (not single or stat.startswith("grad")):
            name = f"{name} ({gap})"
        ax.plot(layers[ok], med[ok], color=line.color, lw=1.8, label=name,
                marker="o" if ok.sum() == 1 else None, ms=3)
        theory_drawn |= _theory(ax, line, log, single)
        if marks is not None and n == 0 or marks is None and single:
            _marks(ax, line, stat, layers, dtype, marks or Marks())
    if theory_drawn and not single:
        ax.plot([], [], color="k", label="theory (dashed, dark shade of its line)",
                **{k: v for k, v in THEORY_MANY.items() if k != "zorder"})
    if not theory_drawn:
        ax.plot([], [], " ", label=no_theory)
    _axis(ax, lines, stat)
    ax.set_ylabel(YLABELS.get(stat, stat))
    ax.grid(True, which="major", alpha=0.3)


def gaps(line: Line, stat: str) -> str:
    """The layers a line has no point at, in words: ``non-finite from layer 29``, ``0 from
    layer 1``, ``0 at layers 0-99, through the non-finite signal`` (a gradient), or ""."""
    med = bands(line.values)[0][line.first:]
    nonfinite = ~np.isfinite(med)  # every trial non-finite there
    zero = np.isfinite(med) & (med <= 0) if stat not in LINEAR else np.zeros_like(nonfinite)
    bad = nonfinite | zero
    if not bad.any():
        return ""
    what = ("non-finite" if not zero.any() else "0" if not nonfinite.any()
            else "0 or non-finite")
    idx = np.flatnonzero(bad) + line.first
    contiguous = idx[-1] - idx[0] + 1 == len(idx)
    if len(idx) == len(med):
        where = "at every layer"
    elif contiguous and idx[-1] == len(med) - 1 + line.first:
        where = f"from layer {idx[0]}"
    elif contiguous and idx[0] == line.first:
        where = f"at layers {line.first}-{idx[-1]}"
    else:
        where = f"at {len(idx)} of {len(med)} layers"
    signal_broke = line.finite is not None and not np.asarray(line.finite, dtype=bool).all()
    through = (", through the non-finite signal" if stat.startswith("grad") and zero.any()
               and signal_broke else "")
    return f"{what} {where}{through}"


def _theory(ax, line: Line, log: bool, single: bool) -> bool:
    curve = np.asarray(line.theory, dtype=float)
    ok = np.isfinite(curve) & ((curve > 0) if log else True)
    if not ok.any():
        return False
    layers = np.arange(len(curve))
    style = THEORY_ONE if single else {**THEORY_MANY, "color": dark(line.color)}
    ax.plot(layers[ok], curve[ok], label="mean-field theory" if single else None, **style)
    return True


def _marks(ax, line: Line, stat: str, layers: np.ndarray, dtype: str, marks: Marks) -> None:
    """What a single line's median cannot show: the dtype's largest value where the
    prediction passes it, a std that reached 0, the first non-finite layer, the verdict's
    thresholds where the signal comes near them and the layer of its verdict."""
    med = bands(line.values)[0]
    if stat == "std":
        limit = float(np.finfo(np.dtype(dtype)).max)
        theory = np.asarray(line.theory, dtype=float)
        if np.nanmax(np.where(np.isfinite(theory), theory, np.nan), initial=0) > limit:
            ax.axhline(limit, color="gray", ls="-.", lw=1, label=f"{dtype} max {limit:.2g}")
        zero = (med <= 0) & np.isfinite(med)
        if zero.any():
            ax.plot([], [], " ", label=f"std = 0 from layer {int(layers[zero][0])}")
        _thresholds(ax, line, med, marks)
    finite = line.finite if line.finite is not None else np.isfinite(line.values)
    broken = ~np.asarray(finite, dtype=bool).all(axis=0)
    if broken.any() and stat in ("std", "mean"):
        ax.axvline(layers[broken][0], color="r", ls=":",
                   label=f"non-finite from layer {int(layers[broken][0])}")
    if stat.startswith("grad"):
        gap = gaps(line, stat)
        bad = ~(np.isfinite(med) & (med > 0))
        if gap and bad.any() and bad[0]:  # a gradient flows back: its gap is at the start
            end = int(np.flatnonzero(~bad)[0]) if (~bad).any() else int(layers[-1])
            ax.axvline(end - 0.5, color="r", ls=":", label=f"dL/dx {gap}")


def _thresholds(ax, line: Line, med: np.ndarray, marks: Marks) -> None:
    """The vanishing and explosion thresholds (where the median comes within a decade of
    them) and the verdict's layer, as a vertical line in its colour."""
    limits = marks.thresholds or {}
    values = med[np.isfinite(med) & (med > 0)]
    if not values.size:
        return
    low, high = limits.get("vanish_std"), limits.get("explode_std")
    if low and values.min() < 10 * low:
        ax.axhline(low, color="tab:blue", ls="--", lw=0.9, alpha=0.8,
                   label=f"vanishing threshold {low:g}")
    if high and values.max() > high / 10:
        ax.axhline(high, color="tab:red", ls="--", lw=0.9, alpha=0.8,
                   label=f"explosion threshold {high:g}")
    if marks.verdict in ("vanished", "exploded") and marks.verdict_layer is not None:
        color = "tab:blue" if marks.verdict == "vanished" else "tab:red"
        ax.axvline(marks.verdict_layer, color=color, ls="-.", lw=1,
                   label=f"{marks.verdict} at layer {marks.verdict_layer}")


class _Spaced(SymmetricalLogLocator):
    """Symlog ticks no closer than ``gap`` label heights (a superscript ``10^n`` is about
    1.5 lines tall): 0 first, then the decades far from it, so -10^n, 0 and 10^n never
    print on top of each other."""

    def __init__(self, transform, gap: float = 1.8, **kw):
        super().__init__(transform, **kw)
        self.gap = gap

    def __call__(self):
        ticks = np.asarray(super().__call__(), dtype=float)
        if self.axis is None or ticks.size < 2:
            return ticks
        size = FontProperties(size=self.axis.get_tick_params().get(
            "labelsize", rcParams["ytick.labelsize"])).get_size_in_points()
        gap = self.gap * size * self.axis.figure.dpi / 72
        lo, hi = sorted(self.axis.get_view_interval())
        ticks = ticks[(ticks >= lo) & (ticks <= hi)]
        where = self.axis.axes.transData.transform(np.column_stack([np.zeros_like(ticks),
                                                                    ticks]))[:, 1]
        order = sorted(range(len(ticks)), key=lambda i: (ticks[i] != 0, -abs(ticks[i])))
        kept: list[int] = []
        for i in order:
            if all(abs(where[i] - where[j]) >= gap for j in kept):
                kept.append(i)
        return ticks[sorted(kept)]


def _axis(ax, lines: list[Line], stat: str) -> None:
    if stat == "corr":
        ax.axhline(1.0, color="gray", lw=0.5)
        ax.axhline(0.0, color="gray", lw=0.5)
        lows = [np.nanmin(bands(line.values)[1]) for line in lines
                if np.isfinite(line.values).any()]
        ax.set_ylim(min([-0.05, *(float(v) - 0.05 for v in lows if np.isfinite(v))]), 1.05)
    elif stat == "mean":
        spans = np.concatenate([np.abs(np.concatenate(bands(line.values)[1:]))
                                for line in lines])
        spans = spans[np.isfinite(spans) & (spans > 0)]
        linthresh = float(max(np.quantile(spans, 0.1), 1e-300)) if spans.size else 1.0
        ax.set_yscale("symlog", linthresh=linthresh)
        ax.yaxis.set_major_locator(_Spaced(ax.yaxis.get_transform()))
        lo, hi = ax.get_ylim()  # out to whole decades: the data's own decade is labelled

        def decade(v: float) -> float:  # a limit 3x past its decade's tick: the next one
            if abs(v) <= linthresh or abs(v) < 3 * 10 ** np.floor(np.log10(abs(v))):
                return v
            return float(np.sign(v) * 10 ** np.ceil(np.log10(abs(v))))
        if np.isfinite([lo, hi]).all() and max(abs(lo), abs(hi)) < 1e300:
            ax.set_ylim(decade(lo), decade(hi))
        ax.axhline(0.0, color="k", lw=0.5)
    else:
        positive = any((np.nan_to_num(line.values, nan=0, posinf=0) > 0).any()
                       or (np.nan_to_num(line.theory, nan=0, posinf=0) > 0).any()
                       for line in lines)
        if positive:
            ax.set_yscale("log")

