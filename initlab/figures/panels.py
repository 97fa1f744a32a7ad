"""One statistic by layer on one axes: the drawing every by-layer figure shares.

A panel holds one or more ``Line``s (a job's statistic, or one line per job of a sweep):
the median over trials, the 10-90 % band, and the mean-field prediction dashed beside
it (black for a single line, in the line's colour for several). The axis follows the
statistic: log for a std, symmetric-log for a mean, linear for a correlation. Layers
where a trial's signal is not finite are left out of that layer's band and marked; a
std that reaches 0 leaves a gap, and the legend says where.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from initlab.figures.style import BAND_ALPHA, THEORY_MANY, THEORY_ONE
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
    #: (trials, layers) finiteness of the signal, for the "non-finite from layer k" mark
    finite: np.ndarray | None = None


def draw(ax, lines: list[Line], stat: str, no_theory: str = "no mean-field theory here",
         dtype: str = "float32") -> None:
    """Draw ``lines`` of ``stat`` on ``ax``; the legend names them, the prediction, and
    what is not drawn (no theory, a std that reached 0, non-finite layers)."""
    theory_drawn, log = False, stat not in LINEAR
    for line in lines:
        layers = np.arange(line.values.shape[1])
        values = np.where(line.values > 0, line.values, np.nan) if log else line.values
        med, lo, hi = bands(values)
        ax.fill_between(layers, lo, hi, where=np.isfinite(lo) & np.isfinite(hi),
                        color=line.color, alpha=BAND_ALPHA, lw=0)
        ok = np.isfinite(med)
        ax.plot(layers[ok], med[ok], color=line.color, lw=1.8, label=line.label)
        theory_drawn |= _theory(ax, line, log, single=len(lines) == 1)
        if len(lines) == 1:
            _marks(ax, line, stat, layers, dtype)
    if not theory_drawn:
        ax.plot([], [], " ", label=no_theory)
    _axis(ax, lines, stat)
    ax.set_ylabel(YLABELS.get(stat, stat))
    ax.grid(True, which="major", alpha=0.3)


def _theory(ax, line: Line, log: bool, single: bool) -> bool:
    curve = np.asarray(line.theory, dtype=float)
    ok = np.isfinite(curve) & ((curve > 0) if log else True)
    if not ok.any():
        return False
    layers = np.arange(len(curve))
    style = THEORY_ONE if single else {**THEORY_MANY, "color": line.color}
    ax.plot(layers[ok], curve[ok], label="mean-field theory" if single else None, **style)
    return True


def _marks(ax, line: Line, stat: str, layers: np.ndarray, dtype: str) -> None:
    """What a single line's median cannot show: the dtype's largest value where the
    prediction passes it, a std that reached 0, the first non-finite layer."""
    med = bands(line.values)[0]
    if stat == "std":
        limit = float(np.finfo(np.dtype(dtype)).max)
        theory = np.asarray(line.theory, dtype=float)
        if np.nanmax(np.where(np.isfinite(theory), theory, np.nan), initial=0) > limit:
            ax.axhline(limit, color="gray", ls="-.", lw=1, label=f"{dtype} max {limit:.2g}")
        zero = (med <= 0) & np.isfinite(med)
        if zero.any():
            ax.plot([], [], " ", label=f"std = 0 from layer {int(layers[zero][0])}")
    finite = line.finite if line.finite is not None else np.isfinite(line.values)
    broken = ~np.asarray(finite, dtype=bool).all(axis=0)
    if broken.any() and stat in ("std", "mean"):
        ax.axvline(layers[broken][0], color="r", ls=":",
                   label=f"non-finite from layer {int(layers[broken][0])}")


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
        ax.axhline(0.0, color="k", lw=0.5)
    else:
        positive = any((np.nan_to_num(line.values, nan=0, posinf=0) > 0).any()
                       or (np.nan_to_num(line.theory, nan=0, posinf=0) > 0).any()
                       for line in lines)
        if positive:
            ax.set_yscale("log")
