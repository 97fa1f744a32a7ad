"""Numbers for people and for JSON, and the median-and-band over trials every figure and
summary shows. NumPy only (the report uses it and must not load torch)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np


def num(value: Any) -> float | None:
    """JSON-safe float: NaN, inf (and None) become None (JSON has neither)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def fmt(value: Any, digits: int = 4) -> str:
    """A number for people: ``digits`` significant digits; None (JSON's NaN) and NaN as nan."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def median_band(values: np.ndarray, prefix: str) -> dict[str, float | None]:
    """``prefix``: the median over trials (NaN when any trial is NaN: the typical trial is
    broken), ``prefix_q10``/``prefix_q90``: the 10-90 % band; JSON-safe."""
    with np.errstate(invalid="ignore", over="ignore"):
        return {prefix: num(np.median(values)), f"{prefix}_q10": num(np.quantile(values, 0.1)),
                f"{prefix}_q90": num(np.quantile(values, 0.9))}


def bands(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 10 % and 90 % over trials (axis 0) per layer, ignoring non-finite trials.

    Layers where every trial overflowed come out NaN, without warnings.
    """
    clean = np.where(np.isfinite(values), values, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 'All-NaN slice encountered'
        lo, med, hi = np.nanquantile(clean, [0.1, 0.5, 0.9], axis=0)
    return med, lo, hi
