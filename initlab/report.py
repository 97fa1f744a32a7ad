"""Comparison report of a sweep (or one run), built only from the files its jobs wrote.

    initlab-report [DIR] [--job NAME]     # DIR: a sweep or run directory (default: newest)

Writes ``DIR/report/``: ``summary.csv`` (one row per job), ``report.md``, a
self-contained ``report.html`` (images embedded), and the figures
``heatmap.png``, ``std_by_layer.png``, ``mean_by_layer.png`` and
``color_dim.png``. It reads ``summary.json``, ``layers.parquet`` (or
``layers.csv``), ``histogram.csv`` and Hydra's ``.hydra/`` files, so it works
on any finished, failed or half-finished sweep: jobs without a readable
summary are listed as problems and the rest are reported. Running it twice
gives the same files.
"""

from __future__ import annotations

import argparse
import base64
import html
import itertools
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from initlab import store  # noqa: E402
from initlab.plots import bands  # noqa: E402
from initlab.reference import (  # noqa: E402
    activation_label,
    final_layer,
    init_label,
    judge,
)
from initlab.summary import fmt  # noqa: E402

REPORT_DIR = "report"
FIGURES = {
    "heatmap": "heatmap.png",
    "std": "std_by_layer.png",
    "mean": "mean_by_layer.png",
    "color_dim": "color_dim.png",
    "grad": "grad_by_layer.png",
}
#: Settings that can be swept, in the order they are preferred as grid axes.
AXES = ("init", "activation", "depth", "width", "dtype", "weights", "trials", "batch", "seed",
        "device")


class ReportError(Exception):
    """The directory cannot be reported on; the message is one line."""


@dataclass
class Job:
    """One job directory as found on disk."""

    name: str
    path: Path
    status: str  # ok | failed | missing | broken
    problem: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    _layers: pd.DataFrame | None = None

    @property
    def settings(self) -> dict[str, Any]:
        s = dict(self.summary)
        if "init" in s:
            s["init"] = init_label(s)
        if "activation" in s:
            s["activation"] = activation_label(s)
        return {k: s[k] for k in AXES if k in s}

    def layers(self) -> pd.DataFrame | None:
        if self._layers is None and self.status == "ok":
            try:
                self._layers = store.read_layers(self.path)
            except Exception as exc:
                self.status, self.problem = "broken", f"layers table unreadable ({exc})"
        return self._layers


# ----------------------------------------------------------------------------- reading


def _natural(name: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def _is_job_dir(path: Path) -> bool:
    return (path / ".hydra").is_dir() or (path / store.SUMMARY_JSON).exists()


def load_job(path: Path) -> Job:
    """Read one job directory; never raises (problems become the job's status)."""
    job = Job(name=path.name, path=path, status="ok")
    try:
        job.overrides = [str(o) for o in _read_yaml_list(path / ".hydra" / "overrides.yaml")]
    except Exception:
        job.overrides = []
    summary_path = path / store.SUMMARY_JSON
    if not summary_path.exists():
        job.status = "missing"
        job.problem = "no summary.json: the job crashed, was killed, or is still running"
        return job
    try:
        job.summary = json.loads(summary_path.read_text())
        if not isinstance(job.summary, dict):
            raise ValueError("not a JSON object")
    except Exception as exc:
        job.status, job.problem = "broken", f"summary.json unreadable ({exc})"
        job.summary = {}
        return job
    if job.summary.get("status", "ok") != "ok":
        job.status = "failed"
        job.problem = job.summary.get("error", "the job recorded a failure")
    elif "verdict" not in job.summary:
        job.status, job.problem = "broken", "summary.json lacks the verdict"
    return job


def _read_yaml_list(path: Path) -> list:
    from omegaconf import OmegaConf

    return list(OmegaConf.to_container(OmegaConf.load(path)))


def find_jobs(directory: Path) -> list[Job]:
    """The jobs of a sweep directory, or the run itself when ``directory`` is one job."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReportError(f"{directory} does not exist or is not a directory")
    if _is_job_dir(directory):
        return [load_job(directory)]
    dirs = [p for p in directory.iterdir() if p.is_dir() and _is_job_dir(p)]
    if not dirs:
        raise ReportError(
            f"{directory} is not a run or sweep directory (no job with .hydra/ or summary.json "
            "inside); give e.g. outputs/multiruns/<time>"
        )
    return [load_job(p) for p in sorted(dirs, key=lambda p: _natural(p.name))]


def expected_jobs(directory: Path) -> int | None:
    """How many jobs the sweep asked for (from multirun.yaml), when that can be told."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(Path(directory) / "multirun.yaml")
        lines = list(cfg.hydra.overrides.task)
        params = cfg.hydra.sweeper.get("params") or {}
        lines += [f"{k}={v}" for k, v in params.items()]
        count = 1
        for o in OverridesParser.create().parse_overrides(lines):
            if o.is_sweep_override():
                count *= len(list(o.sweep_string_iterator()))
        return count
    except Exception:
        return None


def newest(outputs: Path = Path("outputs")) -> Path:
    """The newest sweep or run under ``outputs/`` (their names are timestamps)."""
    found = [p for sub in ("multiruns", "runs") for p in (outputs / sub).glob("*") if p.is_dir()]
    if not found:
        raise ReportError(f"nothing under {outputs}/multiruns or {outputs}/runs; run initlab first")
    return max(found, key=lambda p: p.name)


# ----------------------------------------------------------------------------- tables


def varying_axes(jobs: list[Job]) -> list[str]:
    values: dict[str, set] = {}
    for job in jobs:
        for k, v in job.settings.items():
            values.setdefault(k, set()).add(str(v))
    return [k for k in AXES if len(values.get(k, ())) > 1]


def _values(jobs: list[Job], axis: str) -> list:
    """Distinct values of an axis in first-seen order (numbers sorted)."""
    seen = list(dict.fromkeys(j.settings.get(axis) for j in jobs if axis in j.settings))
    if all(isinstance(v, (int, float)) for v in seen):
        return sorted(seen)
    return seen


#: summary.json fields copied into summary.csv after the verdict.
SUMMARY_COLUMNS = ("final_mean", "final_mean_q10", "final_mean_q90", "final_std",
                   "final_std_q10", "final_std_q90", "theory_final_std",
                   "predicted_overflow_layer", "input_grad_std", "theory_input_grad_std",
                   "log_norm_ratio_var", "predicted_log_norm_ratio_var", "identical_units_layer")


def summary_frame(jobs: list[Job], axes: list[str]) -> pd.DataFrame:
    rows = []
    for job in jobs:
        s = job.summary
        row: dict[str, Any] = {"job": job.name, "status": job.status, "problem": job.problem}
        for axis in axes or [a for a in ("init", "activation", "depth") if a in job.settings]:
            row[axis] = job.settings.get(axis)
        counts = s.get("verdict_counts", {})
        row.update(
            verdict=s.get("verdict"),
            verdict_layer=s.get("verdict_layer"),
            exploded=counts.get("exploded"),
            vanished=counts.get("vanished"),
            stable=counts.get("stable"),
            first_nonfinite_layer=s.get("first_nonfinite_layer"),
        )
        for key in SUMMARY_COLUMNS:
            row[key] = s.get(key)
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(value: Any) -> str:
    return fmt(value, digits=3)


def _verdict_text(s: dict[str, Any]) -> str:
    if not s.get("verdict"):
        return "?"
    layer = s.get("verdict_layer")
    return s["verdict"] + (f" @{layer}" if layer is not None else "")


# ----------------------------------------------------------------------------- figures


def _save(fig, path: Path) -> Path:
    store.write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100,
                                                    bbox_inches="tight",
                                                    metadata={"Software": None}))
    plt.close(fig)
    return path


def grid_layout(jobs: list[Job], axes: list[str]) -> tuple[str | None, str | None, list[str]]:
    """(row axis, column axis, panel axes): init x activation when both vary."""
    if "init" in axes and "activation" in axes:
        rows, cols = "init", "activation"
    else:
        rows = axes[0] if axes else None
        cols = axes[1] if len(axes) > 1 else None
    panels = [a for a in axes if a not in (rows, cols)]
    return rows, cols, panels


def _panel_keys(jobs: list[Job], panels: list[str]) -> list[tuple]:
    return list(itertools.product(*[_values(jobs, a) for a in panels])) or [()]


def _title(panels: list[str], key: tuple) -> str:
    return ", ".join(f"{a}={v}" for a, v in zip(panels, key, strict=True)) or "all jobs"


def plot_heatmap(jobs: list[Job], axes: list[str], path: Path) -> Path:
    """log10(median final std) over the two main axes, one panel per value of the others."""
    ok = [j for j in jobs if j.status == "ok"]
    rows, cols, panels = grid_layout(ok, axes)
    row_vals = _values(ok, rows) if rows else [None]
    col_vals = _values(ok, cols) if cols else [None]
    keys = _panel_keys(ok, panels)
    fig, axs = plt.subplots(1, len(keys), squeeze=False,
                            figsize=(1.0 + 1.9 * len(col_vals) * len(keys),
                                     1.2 + 0.75 * len(row_vals)))
    values = []
    for job in ok:
        std = job.summary.get("final_std")
        if std is not None and std > 0:
            values.append(math.log10(std))
    span = max([abs(v) for v in values] + [1.0])
    norm = TwoSlopeNorm(vmin=-span, vcenter=0.0, vmax=span)
    image = None
    for ax, key in zip(axs[0], keys, strict=True):
        grid = np.full((len(row_vals), len(col_vals)), np.nan)
        ax.set_facecolor("#dddddd")
        for job in ok:
            st = job.settings
            if any(st.get(a) != v for a, v in zip(panels, key, strict=True)):
                continue
            i = row_vals.index(st.get(rows)) if rows else 0
            k = col_vals.index(st.get(cols)) if cols else 0
            std = job.summary.get("final_std")
            if std is not None and std > 0:
                grid[i, k] = math.log10(std)
            label = "NaN" if std is None else ("0" if std == 0 else f"{std:.2g}")
            dark = not np.isnan(grid[i, k]) and abs(grid[i, k]) > 0.6 * span
            ax.text(k, i, f"{_verdict_text(job.summary)}\nstd {label}", ha="center",
                    va="center", fontsize=7, color="white" if dark else "black")
        image = ax.imshow(grid, cmap="RdBu_r", norm=norm, aspect="auto")
        ax.set_xticks(range(len(col_vals)), [str(v) for v in col_vals], fontsize=8)
        ax.set_yticks(range(len(row_vals)), [str(v) for v in row_vals], fontsize=8)
        ax.set_xlabel(cols or "")
        ax.set_ylabel(rows or "")
        ax.set_title(_title(panels, key), fontsize=9)
    if image is not None:
        bar = fig.colorbar(image, ax=axs[0].tolist(), shrink=0.9)
        bar.set_label("log10(final std), median over trials\n(grey: NaN or 0)")
    fig.suptitle("Final-layer std: blue vanished, red exploded, white ~1 (held)", fontsize=10)
    return _save(fig, path)


def _line_layout(jobs: list[Job], axes: list[str]) -> tuple[list[str], list[str]]:
    """Panels: activation (when swept); lines: every other swept axis."""
    panels = ["activation"] if "activation" in axes else []
    lines = [a for a in axes if a not in panels]
    return panels, lines


def plot_by_layer(jobs: list[Job], axes: list[str], stat: str, path: Path) -> Path:
    """Median and 10-90 % band of ``stat`` per layer; a line per setting, a panel per activation."""
    ok = [j for j in jobs if j.status == "ok" and j.layers() is not None]
    panels, lines = _line_layout(ok, axes)
    keys = _panel_keys(ok, panels)
    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig, axs = plt.subplots(nrows, ncols, squeeze=False, figsize=(5.2 * ncols, 3.8 * nrows))
    line_keys = list(dict.fromkeys(tuple(j.settings.get(a) for a in lines) for j in ok))
    colors = plt.get_cmap("tab10" if len(line_keys) <= 10 else "tab20")
    for n, key in enumerate(keys):
        ax = axs[n // ncols][n % ncols]
        for job in ok:
            st = job.settings
            if any(st.get(a) != v for a, v in zip(panels, key, strict=True)):
                continue
            table = job.layers()
            wide = table.pivot(index="trial", columns="layer", values=stat).to_numpy(dtype=float)
            if stat != "mean":  # log axis: 0 is a gap
                wide = np.where(wide > 0, wide, np.nan)
            med, lo, hi = bands(wide)
            lk = tuple(st.get(a) for a in lines)
            color = colors(line_keys.index(lk) % colors.N)
            layers = np.arange(len(med))
            label = ", ".join(str(v) for v in lk) or job.name
            ax.plot(layers, med, color=color, lw=1.6, label=label)
            ax.fill_between(layers, lo, hi, color=color, alpha=0.12, lw=0)
            theory_col = THEORY_COLUMNS.get(stat)
            if theory_col in table:
                curve = table[table["trial"] == table["trial"].min()].sort_values("layer")
                curve = curve[theory_col].to_numpy(dtype=float)
                if stat != "mean":
                    curve = np.where(curve > 0, curve, np.nan)
                ax.plot(np.arange(len(curve)), curve, color=color, lw=0.9, ls="--")
        if stat != "mean":
            ax.set_yscale("log")
        else:
            ax.set_yscale("symlog", linthresh=1e-3)
            ax.axhline(0, color="k", lw=0.5)
        ax.set_title(_title(panels, key), fontsize=9)
        ax.set_xlabel("layer")
        ax.set_ylabel(YLABELS.get(stat, stat))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, title=", ".join(lines) or None, title_fontsize=7)
    for n in range(len(keys), nrows * ncols):
        axs[n // ncols][n % ncols].axis("off")
    what = {"std": "std (log axis)", "mean": "mean (symmetric log axis)",
            "grad_x_std": "gradient std, dL/dx_l (log axis)"}[stat]
    fig.suptitle(f"{what} by layer: median over trials, band 10-90 %, dashed: mean-field "
                 "theory; gaps are 0 or NaN", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


YLABELS = {"std": "std of x", "mean": "mean of x", "grad_x_std": "std of dL/dx_l"}
THEORY_COLUMNS = {"std": "theory_std", "mean": "theory_mean", "grad_x_std": "theory_grad_x_std"}


def choose_job(jobs: list[Job], name: str | None) -> Job | None:
    """The job for the histogram picture: ``name`` if given, else the first stable one."""
    ok = [j for j in jobs if j.status == "ok" and (j.path / store.HISTOGRAM_CSV).exists()]
    if name is not None:
        for job in ok:
            if job.name == name or job.name.split("_")[0] == name:
                return job
        raise ReportError(f"--job {name} is not a finished job with a histogram; jobs: "
                          + ", ".join(j.name for j in ok))
    stable = [j for j in ok if j.summary.get("verdict") == "stable"]
    return (stable or ok or [None])[0]


def plot_color_dim(job: Job, path: Path) -> Path:
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
    fig, ax = plt.subplots(figsize=(8, 4.8))
    image = ax.imshow(np.log1p(grid), origin="lower", aspect="auto", cmap="viridis",
                      extent=(-0.5, depth + 0.5, -0.5, nbins + 1.5), interpolation="nearest")
    decades = list(range(math.ceil(lo), math.floor(hi) + 1))
    every = max(1, math.ceil(len(decades) / 10))
    decades = decades[::every]
    ax.set_yticks([0] + [1 + (d - lo) / step - 0.5 for d in decades] + [nbins + 1],
                  ["0"] + [f"1e{d}" for d in decades] + ["NaN/inf"], fontsize=8)
    for y in (0.5, nbins + 0.5):
        ax.axhline(y, color="white", lw=0.8)
    ax.set_xlabel("layer")
    ax.set_ylabel("|x| (log bins; bottom row: exact 0)")
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    s = job.summary
    ax.set_title(f"{job.name}: init={init_label(s)}, activation={s.get('activation')}, "
                 f"{s.get('trials')} trials — histogram of |x| by layer", fontsize=9)
    return _save(fig, path)


# ----------------------------------------------------------------------------- document


@dataclass
class Block:
    kind: str  # "p", "table", "img"
    text: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    image: str = ""


def _table(header: list[str], rows: list[list[Any]]) -> Block:
    return Block("table", header=header, rows=[[_fmt(c) if not isinstance(c, str) else c
                                                for c in r] for r in rows])


def verdict_grid(jobs: list[Job], axes: list[str]) -> list[Block]:
    ok = [j for j in jobs if j.status == "ok"]
    rows, cols, panels = grid_layout(ok, axes)
    blocks = []
    for key in _panel_keys(ok, panels):
        sel = [j for j in ok if all(j.settings.get(a) == v
                                    for a, v in zip(panels, key, strict=True))]
        row_vals = _values(sel, rows) if rows else [None]
        col_vals = _values(sel, cols) if cols else [None]
        header = [f"{rows or ''} \\ {cols or ''}"] + [str(c) for c in col_vals]
        body = []
        for r in row_vals:
            line = [str(r)]
            for c in col_vals:
                match = [j for j in sel if (not rows or j.settings.get(rows) == r)
                         and (not cols or j.settings.get(cols) == c)]
                line.append("; ".join(_verdict_text(j.summary) for j in match) or "—")
            body.append(line)
        if panels:
            blocks.append(Block("p", text=f"**{_title(panels, key)}**"))
        blocks.append(_table(header, body))
    return blocks


def reference_rows(jobs: list[Job]) -> list[list[str]]:
    out = []
    for job in jobs:
        ref = job.summary.get("reference") if job.status == "ok" else None
        if not ref:
            continue
        layers = job.layers()
        final = final_layer(layers) if layers is not None else None
        for row in ref.get("rows", []):
            seed = row["seed"]
            if final is None:
                ok, rule = None, "layers table unreadable"
            else:
                ok, rule = judge(row["quantity"], float("nan") if seed is None else seed, final)
            mark = {True: "✓ pass", False: "✗ fail", None: "—"}[ok]
            out.append([ref.get("source", job.name), init_label(job.summary),
                        str(job.summary.get("activation")), row["quantity"], _fmt(seed),
                        _fmt(row["measured"]), rule, mark])
    return out


def build_document(directory: Path, jobs: list[Job], figures: dict[str, str],
                   expected: int | None) -> tuple[str, list[tuple[str, list[Block]]]]:
    axes = varying_axes([j for j in jobs if j.summary])
    counts = {s: sum(j.status == s for j in jobs) for s in ("ok", "failed", "missing", "broken")}
    title = f"initlab report: {directory.name}"
    intro = [f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}: " + ", ".join(
        f"{n} {s}" for s, n in counts.items() if n)]
    if expected is not None and expected > len(jobs):
        intro.append(f"{expected - len(jobs)} of the {expected} jobs the sweep asked for have "
                     "no directory (never started).")
    ok = [j for j in jobs if j.status == "ok"]
    if axes:
        intro.append("Swept: " + "; ".join(
            f"{a} ({', '.join(str(v) for v in _values(ok or jobs, a))})" for a in axes) + ".")
    fixed = {k: v for k, v in (ok[0].settings if ok else {}).items() if k not in axes}
    if fixed:
        intro.append("Fixed: " + ", ".join(f"{k}={v}" for k, v in fixed.items()) + ".")
    intro.append("Verdict per job: the most common over its trials — exploded (non-finite or "
                 "std above the threshold) or vanished (all zeros or std below it) at the "
                 "layer given, else stable. Final values are medians over trials at the last "
                 "layer.")
    sections: list[tuple[str, list[Block]]] = [("", [Block("p", text=t) for t in intro])]
    if ok:
        sections.append(("Verdicts", verdict_grid(jobs, axes)))
    figs = []
    captions = {
        "heatmap": "log10 of the final std over the swept grid; cells name the verdict.",
        "std": "std of the signal by layer, median over trials with the 10-90 % band.",
        "mean": "mean of the signal by layer, same layout.",
        "color_dim": "Histogram of |x| by layer for one job (fastai's colour_dim over depth): "
                     "how the whole distribution moves, not just its std.",
        "grad": "Backward pass: std of the gradient dL/dx_l of the loss <g, x_L>, g ~ N(0, I), "
                "from the output (right) to the input (left).",
    }
    for key in ("heatmap", "std", "mean", "grad", "color_dim"):
        if key in figures:
            figs += [Block("img", image=figures[key], text=captions[key])]
    if figs:
        sections.append(("Figures", figs))
    refs = reference_rows(jobs)
    if refs:
        sections.append(("Seed says / measured", [
            Block("p", text="The seed reports single runs; a row passes when its number is a "
                            "plausible draw from our trials (rule in the row)."),
            _table(["source", "init", "activation", "quantity", "seed says", "measured",
                    "rule", "result"], refs)]))
    frame = summary_frame(jobs, axes)
    cols = ["job"] + [a for a in axes] + ["verdict", "verdict_layer", "final_std",
                                          "final_std_q10", "final_std_q90", "theory_final_std",
                                          "final_mean", "input_grad_std",
                                          "theory_input_grad_std"]
    cols = [c for c in cols if c in frame.columns]
    shown = frame[cols].astype(object).where(frame[cols].notna(), None)
    if "verdict_layer" in shown:
        shown["verdict_layer"] = [("—" if v is None else str(int(v))) for v in
                                  shown["verdict_layer"]]
    sections.append(("Jobs", [
        Block("p", text="final_std is measured (median and 10-90 % of trials), theory_final_std "
                        "the mean-field prediction; input_grad_std the std of dL/dx_0 beside its "
                        "prediction. All columns: summary.csv."),
        _table(cols, shown.values.tolist())]))
    same = [j.name for j in ok if j.summary.get("identical_units_layer") is not None]
    if same:
        sections.append(("Symmetry not broken", [Block("p", text=(
            "In " + ", ".join(same) + " every unit of a layer carries the same value from "
            "layer 1 on (std over units exactly 0, mean not 0): with all weights equal, no "
            "unit can ever differ from another — the symmetry problem."))]))
    fluct = [j for j in ok if j.summary.get("predicted_log_norm_ratio_var") is not None
             and j.summary.get("log_norm_ratio_var") is not None]
    if fluct:
        rows = [[j.name, init_label(j.summary), str(j.summary.get("activation")),
                 _fmt(j.summary["log_norm_ratio_mean"]),
                 _fmt(j.summary["predicted_log_norm_ratio_mean"]),
                 _fmt(j.summary["log_norm_ratio_var"]),
                 _fmt(j.summary["predicted_log_norm_ratio_var"])] for j in fluct]
        sections.append(("Finite-width fluctuation", [
            Block("p", text="ln(|x_L|^2 / |x_0|^2) over trials, measured beside Hanin & Rolnick "
                            "(2018): variance 5 beta for He-initialised ReLU, 2 beta for "
                            "Gaussian linear layers, beta = depth / width."),
            _table(["job", "init", "activation", "mean", "predicted mean", "variance",
                    "predicted variance"], rows)]))
    problems = [[j.name, j.status, j.problem] for j in jobs if j.status != "ok"]
    if problems:
        sections.append(("Problems", [_table(["job", "status", "why"], problems)]))
    return title, sections


def render_markdown(title: str, sections) -> str:
    out = [f"# {title}", ""]
    for heading, blocks in sections:
        if heading:
            out += [f"## {heading}", ""]
        for b in blocks:
            if b.kind == "p":
                out += [b.text, ""]
            elif b.kind == "img":
                out += [f"![{b.text}]({b.image})", "", f"*{b.text}*", ""]
            else:
                out.append("| " + " | ".join(b.header) + " |")
                out.append("|" + "---|" * len(b.header))
                out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |"
                        for r in b.rows]
                out.append("")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:12px;line-height:1.45;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:2px}
.scroll{overflow-x:auto;margin:8px 0}table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;white-space:nowrap}
th{background:#f3f3f3}figure{margin:10px 0;overflow-x:auto}
img{max-width:100%;min-width:600px;height:auto}
figcaption{font-size:.85em;color:#555}
td.pass{color:#106b10}td.fail{color:#a00000;font-weight:bold}
"""


def render_html(title: str, sections, folder: Path) -> str:
    def inline(text: str) -> str:
        return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))

    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>"]
    for heading, blocks in sections:
        if heading:
            out.append(f"<h2>{html.escape(heading)}</h2>")
        for b in blocks:
            if b.kind == "p":
                out.append(f"<p>{inline(b.text)}</p>")
            elif b.kind == "img":
                data = base64.b64encode((folder / b.image).read_bytes()).decode("ascii")
                out.append(f'<figure><img alt="{html.escape(b.text)}" '
                           f'src="data:image/png;base64,{data}"><figcaption>'
                           f"{html.escape(b.text)} ({html.escape(b.image)})</figcaption></figure>")
            else:
                out.append('<div class="scroll"><table><tr>'
                           + "".join(f"<th>{html.escape(h)}</th>" for h in b.header) + "</tr>")
                for r in b.rows:
                    cells = []
                    for c in r:
                        cls = ' class="pass"' if c.startswith("✓") else (
                            ' class="fail"' if c.startswith("✗") else "")
                        cells.append(f"<td{cls}>{html.escape(c)}</td>")
                    out.append("<tr>" + "".join(cells) + "</tr>")
                out.append("</table></div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(directory: Path, job: str | None = None) -> Path:
    """Write ``directory/report/`` and return that folder. Raises ReportError on bad input."""
    directory = Path(directory)
    jobs = find_jobs(directory)
    folder = directory / REPORT_DIR
    if folder.exists() and not folder.is_dir():
        raise ReportError(f"{folder} exists and is not a directory; move it to write the report")
    folder.mkdir(exist_ok=True)
    axes = varying_axes([j for j in jobs if j.summary])
    figures: dict[str, str] = {}
    notes: list[str] = []
    ok = [j for j in jobs if j.status == "ok"]

    def draw(key: str, make) -> None:
        try:
            figures[key] = make(folder / FIGURES[key]).name
        except ReportError:
            raise
        except Exception as exc:  # one bad file must not cost the whole report
            notes.append(f"{FIGURES[key]} could not be drawn: {type(exc).__name__}: {exc}")

    if len(ok) > 1:
        draw("heatmap", lambda p: plot_heatmap(jobs, axes, p))
    if any(j.layers() is not None for j in ok):
        draw("std", lambda p: plot_by_layer(jobs, axes, "std", p))
        draw("mean", lambda p: plot_by_layer(jobs, axes, "mean", p))
    with_grads = [j for j in ok if j.layers() is not None and "grad_x_std" in j.layers()]
    if with_grads:
        draw("grad", lambda p: plot_by_layer(with_grads, axes, "grad_x_std", p))
    chosen = choose_job(jobs, job)
    if chosen is not None:
        draw("color_dim", lambda p: plot_color_dim(chosen, p))
    frame = summary_frame(jobs, axes)
    store.write_with(folder / "summary.csv", lambda tmp: frame.to_csv(tmp, index=False))
    title, sections = build_document(directory, jobs, figures, expected_jobs(directory))
    if notes:
        sections.append(("Figures not drawn", [Block("p", text=n) for n in notes]))
    md = render_markdown(title, sections)
    store.write_with(folder / "report.md", lambda tmp: tmp.write_text(md))
    page = render_html(title, sections, folder)
    store.write_with(folder / "report.html", lambda tmp: tmp.write_text(page))
    return folder


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``initlab-report``."""
    parser = argparse.ArgumentParser(
        prog="initlab-report",
        description="Write DIR/report/ (summary.csv, report.md, report.html, figures) "
                    "from the files of a sweep or run.")
    parser.add_argument("directory", nargs="?", type=Path,
                        help="sweep or run directory (default: the newest under outputs/)")
    parser.add_argument("--job", help="job (directory name or number) for the histogram figure")
    args = parser.parse_args(argv)
    try:
        directory = args.directory if args.directory is not None else newest()
        folder = write_report(directory, job=args.job)
    except ReportError as exc:
        print(f"initlab-report: error: {exc}", file=sys.stderr)
        return 2
    print(folder / "report.html")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
