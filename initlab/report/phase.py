"""The order-to-chaos grid of a sweep over sigma_w2 x sigma_b2, from the jobs' files.

A sweep qualifies when both ``init_sigma_w2`` and ``bias_sigma_b2`` take more than
one value among its finished jobs with a correlation (``batch >= 2``). Per cell:
the measured final correlation (summary.json's ``final_corr``, the median over
trials at the last layer; else the same median from the layers table) and the
theory's (``final_theory_corr``, else ``theory_corr`` at the last layer). The
chi_1 = 1 edge comes from ``initlab.theory.diagram.chi1_curve``: a pure function
of the jobs' activation and settings, not of the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from initlab.labels import is_number, label, params
from initlab.report.load import JobRecord

W_KEY, B_KEY = "init_sigma_w2", "bias_sigma_b2"
RESOLUTION = 3e-5  # a float32 cosine of width-512 vectors: ~ width * eps32 (512 * 6e-8)


@dataclass
class PhaseGrid:
    """Measured and theory final correlation on the (sigma_b2 rows, sigma_w2 columns) grid."""

    activation: str  # the name the theory resolves
    activation_params: dict[str, Any]
    sigma_w2: list[float]
    sigma_b2: list[float]
    measured: np.ndarray  # (len(sigma_b2), len(sigma_w2)); NaN: no finished job
    theory: np.ndarray
    chi_1: np.ndarray
    trial_sd: np.ndarray  # sd over trials of the final corr: a single chain's scatter
    counts: np.ndarray  # trials with a finite final corr
    jobs: dict[tuple[float, float], JobRecord]  # (sigma_w2, sigma_b2) -> job
    depth: int | None = None
    width: int | None = None
    trials: int | None = None
    c0: float | None = None
    edge_b2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    edge_w2: np.ndarray = field(default_factory=lambda: np.zeros(0))
    edge_note: str = ""
    shared: int = 0  # jobs left out because another job already stands for their cell
    missing: int = 0  # cells the sweep planned whose job did not finish (blank: partial grid)

    @property
    def act_label(self) -> str:
        """``leaky_relu(negative_slope=0.1)``: the activation with its parameters."""
        return label({"activation": self.activation, **{f"activation_{k}": v for k, v in
                                                        self.activation_params.items()}},
                     "activation")

    @property
    def gap(self) -> np.ndarray:
        return self.measured - self.theory

    @property
    def stderr(self) -> np.ndarray:
        """Standard error of the trials' median: 1.2533 sd / sqrt(n), the normal-theory value
        (the median's variance is pi/2 times the mean's)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.2533 * self.trial_sd / np.sqrt(self.counts)


def _final(job: JobRecord, key: str, column: str) -> float:
    value = job.summary.get(key)
    if is_number(value):
        return float(value)
    frame = job.layers
    if frame is None or column not in frame:
        return math.nan
    last = frame.loc[frame["layer"] == frame["layer"].max(), column].to_numpy(dtype=float)
    last = last[np.isfinite(last)]
    return float(np.median(last)) if last.size else math.nan


def _spread(job: JobRecord) -> tuple[float, int]:
    """(sd over trials, trials) of the final corr from the layers table; NaN sd if < 2."""
    frame = job.layers
    if frame is None or "corr" not in frame:
        return math.nan, 0
    last = frame.loc[frame["layer"] == frame["layer"].max(), "corr"].to_numpy(dtype=float)
    last = last[np.isfinite(last)]
    return (float(np.std(last, ddof=1)) if last.size > 1 else math.nan), int(last.size)


def _has_corr(job: JobRecord) -> bool:
    batch = job.settings.get("batch")
    return (is_number(batch) and batch >= 2) or job.summary.get("final_corr") is not None


def eligible(jobs: list[JobRecord]) -> list[JobRecord]:
    """Finished jobs with both knobs as numbers and a correlation to show."""
    return [j for j in jobs if j.ok and is_number(j.settings.get(W_KEY))
            and is_number(j.settings.get(B_KEY)) and _has_corr(j)]


def activations(jobs: list[JobRecord]) -> list[str]:
    """The activations (labels with their parameters), in job order, over which both
    sigma_w2 and sigma_b2 vary: one diagram each."""
    sel = eligible(jobs)
    out = []
    for act in dict.fromkeys(label(j.settings, "activation") for j in sel):
        mine = [j for j in sel if label(j.settings, "activation") == act]
        if len({j.settings[W_KEY] for j in mine}) > 1 and len({j.settings[B_KEY]
                                                               for j in mine}) > 1:
            out.append(act)
    return out


def applies(jobs: list[JobRecord]) -> bool:
    """A sweep over sigma_w2 and sigma_b2 (both vary) for at least one activation."""
    return bool(activations(jobs))


def build_all(jobs: list[JobRecord]) -> list[PhaseGrid]:
    """One grid per activation of ``activations``."""
    return [build(jobs, act) for act in activations(jobs)]


def _one(values: list[Any]) -> Any:
    distinct = list(dict.fromkeys(v for v in values if v is not None))
    return distinct[0] if len(distinct) == 1 else None


def edge(grid: PhaseGrid, jobs: list[JobRecord]) -> None:
    """Fill ``edge_b2``/``edge_w2``: the chi_1 = 1 curve the jobs' summaries record
    (``phase.edge``, the widest one), over the grid's sigma_b2, NaN where its sigma_w2 lies
    outside the swept range. The theory ran with the jobs: the report reads files only."""
    curves = [c for j in jobs if isinstance(c := (j.summary.get("phase") or {}).get("edge"),
                                               dict) and c.get("sigma_b2")]
    if not curves:
        old = not any("edge" in (j.summary.get("phase") or {}) for j in jobs)
        grid.edge_note = ("no chi_1 = 1 edge recorded in these jobs' summaries (an older sweep)"
                          if old else "chi_1 = 1 is not reached at these sigma_b2")
        return
    widest = max(curves, key=lambda c: max(c["sigma_b2"]))
    b2 = np.asarray(widest["sigma_b2"], dtype=float)
    w2 = np.array([np.nan if w is None else w for w in widest["sigma_w2"]], dtype=float)
    inside = (b2 >= min(grid.sigma_b2)) & (b2 <= max(grid.sigma_b2))
    lo, hi = min(grid.sigma_w2), max(grid.sigma_w2)
    grid.edge_b2 = b2[inside]
    grid.edge_w2 = np.where((w2 >= lo) & (w2 <= hi), w2, np.nan)[inside]
    if not np.isfinite(grid.edge_w2).any():
        grid.edge_note = "chi_1 = 1 is not reached inside the swept sigma_w2 range"


def _unfinished(jobs: list[JobRecord], activation: str) -> set[tuple[float, float]]:
    """The cells of planned jobs of ``activation`` that did not finish (failed, broken,
    cut short, never started): their settings come from the sweep's record."""
    return {(float(j.settings[W_KEY]), float(j.settings[B_KEY])) for j in jobs
            if not j.ok and is_number(j.settings.get(W_KEY)) and is_number(j.settings.get(B_KEY))
            and label(j.settings, "activation") == activation
            and (not is_number(j.settings.get("batch")) or j.settings["batch"] >= 2)}


def build(jobs: list[JobRecord], activation: str | None = None) -> PhaseGrid:
    """The grid of ``jobs`` (of one activation label: ``activation``, else the first);
    ``applies`` must hold. Its axes span every planned cell: one whose job did not
    finish stays blank and counts in ``missing``."""
    sel = eligible(jobs)
    activation = activation or label(sel[0].settings, "activation")
    sel = [j for j in sel if label(j.settings, "activation") == activation]
    done = {(float(j.settings[W_KEY]), float(j.settings[B_KEY])) for j in sel}
    missing = _unfinished(jobs, activation) - done
    w2 = sorted({w for w, _ in done | missing})
    b2 = sorted({b for _, b in done | missing})
    measured = np.full((len(b2), len(w2)), np.nan)
    theory, chi1, sd, counts = (measured.copy() for _ in range(4))
    cells: dict[tuple[float, float], JobRecord] = {}
    shared = 0
    for job in sel:
        key = (float(job.settings[W_KEY]), float(job.settings[B_KEY]))
        if key in cells:  # another axis varies too: the first job of the cell stands for it
            shared += 1
            continue
        cells[key] = job
        i, k = b2.index(key[1]), w2.index(key[0])
        measured[i, k] = _final(job, "final_corr", "corr")
        theory[i, k] = _final(job, "final_theory_corr", "theory_corr")
        sd[i, k], counts[i, k] = _spread(job)
        phase = job.summary.get("phase")
        if isinstance(phase, dict) and is_number(phase.get("chi_1")):
            chi1[i, k] = phase["chi_1"]
    first = sel[0].settings
    grid = PhaseGrid(
        activation=str(first.get("activation")), activation_params=params(first, "activation"),
        sigma_w2=w2, sigma_b2=b2, measured=measured, theory=theory, chi_1=chi1, trial_sd=sd,
        counts=counts, jobs=cells, shared=shared, missing=len(missing),
        depth=_one([j.settings.get("depth") for j in sel]),
        width=_one([j.settings.get("width") for j in sel]),
        trials=_one([j.settings.get("trials") for j in sel]),
        c0=_one([j.settings.get("input_correlation") for j in sel]))
    edge(grid, list(cells.values()))
    return grid


def edge_at(grid: PhaseGrid, sigma_b2: float) -> float:
    """The drawn edge's sigma_w2 at ``sigma_b2`` (linear between its computed points)."""
    ok = np.isfinite(grid.edge_w2)
    if not ok.any():
        return math.nan
    return float(np.interp(sigma_b2, grid.edge_b2[ok], grid.edge_w2[ok]))


def gaps(grid: PhaseGrid) -> dict[str, Any]:
    """How far the measurement sits from the theory over the cells that have both.

    ``median``/``mean_signed`` of |gap| and gap; ``largest`` with its cell; per phase
    (chi_1 < 1 ordered, > 1 chaotic, from summary.json's phase when present, else the side
    of the drawn edge) the median signed gap and the cell count.
    """
    gap = grid.gap
    ok = np.isfinite(gap)
    out: dict[str, Any] = {"cells": int(ok.sum()), "median": math.nan, "median_signed": math.nan,
                           "largest": math.nan, "at": None, "phases": {}, "beyond_3se": None}
    if not ok.any():
        return out
    out["median"] = float(np.median(np.abs(gap[ok])))
    out["median_signed"] = float(np.median(gap[ok]))
    flat = np.where(ok, np.abs(gap), -1.0)
    i, k = np.unravel_index(int(np.argmax(flat)), gap.shape)
    out["largest"] = float(gap[i, k])
    out["at"] = (grid.sigma_w2[k], grid.sigma_b2[i], float(grid.measured[i, k]),
                 float(grid.theory[i, k]))
    # a cell differs when |gap| > 3 se + RESOLUTION: 3 se covers 99.7 % of a normal median's
    # scatter; RESOLUTION is a float32 cosine's rounding over width-512 sums (512 * 6e-8)
    known = ok & np.isfinite(grid.stderr)
    if known.any():
        beyond = known & (np.abs(gap) > 3 * np.where(known, grid.stderr, 0) + RESOLUTION)
        out["beyond_3se"] = (int(beyond.sum()), int(known.sum()))
    side = phase_sides(grid)
    for name in ("ordered", "chaotic"):
        mask = ok & (side == name)
        if mask.any():
            sd = grid.trial_sd[mask]
            sd = float(np.median(sd[np.isfinite(sd)])) if np.isfinite(sd).any() else math.nan
            out["phases"][name] = (int(mask.sum()), float(np.median(gap[mask])),
                                   float(np.median(np.abs(gap[mask]))), sd)
    return out


def phase_sides(grid: PhaseGrid) -> np.ndarray:
    """'ordered' / 'chaotic' / '' per cell: chi_1 from the job when known, else the edge."""
    side = np.full(grid.measured.shape, "", dtype=object)
    for i, b in enumerate(grid.sigma_b2):
        e = edge_at(grid, b)
        for k, w in enumerate(grid.sigma_w2):
            chi = grid.chi_1[i, k]
            if np.isfinite(chi):
                side[i, k] = "ordered" if chi < 1 else "chaotic"
            elif np.isfinite(e):
                side[i, k] = "ordered" if w < e else "chaotic"
    return side


def representatives(grid: PhaseGrid, count: int = 5) -> tuple[float, list[float]]:
    """One sigma_b2 row (the one nearest 0.05, Schoenholz et al.'s Fig. 1, else the middle)
    and up to ``count`` sigma_w2 of it: the ends, the one nearest the edge, and between."""
    b2 = min(grid.sigma_b2, key=lambda b: (abs(b - 0.05), b))
    w2 = grid.sigma_w2
    if len(w2) <= count:
        return b2, list(w2)
    e = edge_at(grid, b2)
    picks = {0, len(w2) - 1}
    if np.isfinite(e):
        near = min(range(len(w2)), key=lambda k: abs(w2[k] - e))
        picks.add(near)
        picks.add((near + 0) // 2)
        picks.add((near + len(w2) - 1) // 2)
    for k in np.linspace(0, len(w2) - 1, count).round().astype(int):
        if len(picks) >= count:
            break
        picks.add(int(k))
    return b2, [w2[k] for k in sorted(picks)]
