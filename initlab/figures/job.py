"""A job's own figures: std, mean, gradients and correlation of the signal by layer, from
its files (``layers.parquet`` or ``layers.csv``, and its summary).

Any finished job directory — a chain's or a model's — can be drawn at any time, by
``initlab-plot`` or by a run that asked for its figures (``plots``: on for a single
run, off in a sweep, whose report draws every job side by side). Each figure is one
panel of ``initlab.figures.panels`` in the shared style (``initlab.figures.style``).
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from initlab import store
from initlab.checks import Broken, check_summary, read_layers
from initlab.columns import THEORY_STATS, theory_column
from initlab.figures import panels
from initlab.figures.style import LEGEND, save

STD_PNG = "std_by_layer.png"
MEAN_PNG = "mean_by_layer.png"
GRAD_PNG = "grad_by_layer.png"
CORR_PNG = "corr_by_layer.png"
#: The per-layer statistics a figure reads, as (trials, layers) arrays.
DRAWN = ("mean", "std", "corr", "finite", "grad_x_std", "grad_w_std")


class FiguresError(ValueError):
    """A job directory whose files cannot be drawn; the message is one line."""


@dataclass(frozen=True)
class JobView:
    """What a job's figures show: per-layer statistics (trials, layers), the theory
    curves (layers,) — NaN where none applies — and the words around them."""

    stats: dict[str, np.ndarray]
    theory: dict[str, np.ndarray]
    title: str
    dtype: str = "float32"
    batch: int = 1
    #: why there is no theory line, when there is none (legend text)
    no_theory: str = "no mean-field theory for this scheme"
    #: the x axis's tick labels (module names of a model with few layers), else empty
    modules: tuple[str, ...] = field(default_factory=tuple)
    corr_note: str = ""
    #: the forward verdict's thresholds and the verdict with its layer (the std figure's marks)
    marks: panels.Marks = field(default_factory=panels.Marks)

    @property
    def layers(self) -> np.ndarray:
        return np.arange(self.stats["std"].shape[1])

    def curve(self, name: str) -> np.ndarray:
        return self.theory.get(name, np.full(len(self.layers), np.nan))

    @classmethod
    def read(cls, job_dir: Path, summary: dict[str, Any] | None = None) -> JobView:
        """The view of a job directory: its per-layer table, checked (``initlab.checks``),
        and its summary (read from summary.json unless given: the writer draws before it
        writes summary.json last)."""
        job_dir = Path(job_dir)
        if summary is None:
            summary = _summary(job_dir)
        settings = summary.get("settings") or summary
        try:
            frame = read_layers(job_dir, int(settings.get("trials", summary.get("trials"))),
                                int(settings.get("depth", summary.get("depth"))))
        except (Broken, TypeError, ValueError) as exc:
            raise FiguresError(f"{job_dir}: {exc}") from None
        frame = frame.sort_values(["trial", "layer"])
        trials, layers = frame["trial"].nunique(), frame["layer"].nunique()

        def grid(column: str) -> np.ndarray:
            return frame[column].to_numpy().reshape(trials, layers)

        stats = {name: grid(name) for name in DRAWN if name in frame.columns}
        first = frame[frame["trial"] == frame["trial"].iloc[0]]
        theory = {stat: first[theory_column(stat)].to_numpy(dtype=float)
                  if theory_column(stat) in first.columns else np.full(layers, np.nan)
                  for stat in THEORY_STATS}
        modules = ()
        if "module" in first.columns and layers <= 16:
            modules = tuple(str(m) for m in first["module"])
        note = summary.get("theory_note")
        c0 = settings.get("input_correlation")
        corr_note = "" if c0 is None else f"c0={c0:g}"
        if settings.get("inputs", "gaussian") != "gaussian" and "corr" in stats:
            with np.errstate(all="ignore"):  # real inputs: their cosine is measured, not set
                cos = float(np.nanmedian(stats["corr"][:, 0]))
            corr_note = f"{settings['inputs']} inputs, measured cosine {cos:.2g}"
        return cls(stats=stats, theory=theory, title=_title(settings),
                   dtype=str(settings.get("dtype", "float32")),
                   batch=int(settings.get("batch", 1) or 1),
                   no_theory=f"no theory line: {note}" if note else cls.no_theory,
                   modules=modules, corr_note=corr_note,
                   marks=panels.Marks(summary.get("thresholds"), summary.get("verdict"),
                                      summary.get("verdict_layer")))


def _summary(job_dir: Path) -> dict[str, Any]:
    try:
        summary = check_summary(json.loads((job_dir / store.SUMMARY_JSON).read_text()))
    except (OSError, ValueError) as exc:
        raise FiguresError(f"{job_dir}: no readable {store.SUMMARY_JSON} "
                           f"({type(exc).__name__}); is it a finished job directory?") from None
    if summary.get("status") != "ok":
        raise FiguresError(f"{job_dir}: the job did not finish (status "
                           f"{summary.get('status')!r}); nothing to draw")
    return summary


def _title(settings: dict[str, Any]) -> str:
    params = ", ".join(f"{k[5:]}={v}" for k, v in sorted(settings.items())
                       if k.startswith("init_") and v is not None)
    init = settings.get("init", "?")
    init = f"{init}({params})" if params else init
    trials = settings.get("trials", "?")
    model = settings.get("model", "chain")
    shape = f"width={settings.get('width')}" if model == "chain" else f"model={model}"
    return (f"init={init}, activation={settings.get('activation', '?')}, {shape}, "
            f"{trials} trial{'s' if trials != 1 else ''}, {settings.get('dtype', 'float32')}")


def _figure(view: JobView, lines: list[panels.Line], stat: str, path: Path, title: str,
            xlabel: str = "layer (0 = input)") -> Path:
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    panels.draw(ax, lines, stat, no_theory=view.no_theory, dtype=view.dtype, marks=view.marks)
    if view.modules:  # a small model: each layer's index, and the module it is the output of
        names = [m if m == "input" or not m.isdigit() else f"[{m}]" for m in view.modules]
        ax.set_xticks(view.layers, [f"{i}\n{m}" for i, m in zip(view.layers, names,
                                                                 strict=True)], fontsize=8)
        xlabel += "; [k]: the model's module k"
    ax.set_xlabel(xlabel)
    ax.set_title(textwrap.fill(title, 90), fontsize=9)  # 90 characters of 9 pt: 7 in
    handles, labels = ax.get_legend_handles_labels()
    wide = len(labels) > 1 and max(map(len, labels)) <= 44
    # under the axes and their labels (the layout makes room): never over the data
    fig.legend(handles, labels, loc="outside lower center", ncols=2 if wide else 1,
               **LEGEND)
    return save(fig, Path(path))


def _line(view: JobView, stat: str, label: str = "median over trials (band: 10-90 %)",
          color: str = "C0", theory: bool = True) -> panels.Line:
    nan = np.full(len(view.layers), np.nan)
    return panels.Line(label, view.stats[stat], view.curve(stat) if theory else nan, color,
                       view.stats.get("finite"))


def plot_std(view: JobView, path: Path) -> Path:
    """std of the signal per layer on a log axis: median, 10-90 % band, mean-field theory."""
    return _figure(view, [_line(view, "std")], "std", path, view.title)


def plot_mean(view: JobView, path: Path) -> Path:
    """Mean of the signal per layer (symmetric-log axis): median and 10-90 % band."""
    return _figure(view, [_line(view, "mean")], "mean", path, view.title)


def plot_grad(view: JobView, path: Path) -> Path:
    """std of dL/dx_l and of dL/dW_l by layer (log axis), with the backward mean-field theory
    of dL/dx_l."""
    lines = [_line(view, "grad_x_std", "std of dL/dx_l, median"),
             _line(view, "grad_w_std", "std of dL/dW_l, median", "C1", theory=False)]
    lines[1].first = 1  # the input has no weights
    return _figure(view, lines, "grad_x_std", path, view.title + " — gradients of <g, x_L>",
                   "layer (gradient flows from the output, right, to the input, left)")


def plot_corr(view: JobView, path: Path) -> Path:
    """Cosine between two inputs' pre-activations per layer (batch >= 2): median and 10-90 %
    band over trials, the mean-field correlation map dashed (layer 0: the inputs')."""
    title = view.title + (f", {view.corr_note}" if view.corr_note else "")
    return _figure(view, [_line(view, "corr")], "corr", path, title, "layer (0 = inputs)")


def draw_view(view: JobView, job_dir: Path) -> list[Path]:
    """Every figure the view has data for, written into ``job_dir``."""
    job_dir = Path(job_dir)
    paths = [plot_std(view, job_dir / STD_PNG), plot_mean(view, job_dir / MEAN_PNG)]
    if "grad_x_std" in view.stats and np.isfinite(view.stats["grad_x_std"]).any():
        paths.append(plot_grad(view, job_dir / GRAD_PNG))
    if view.batch >= 2 and "corr" in view.stats and np.isfinite(view.stats["corr"]).any():
        paths.append(plot_corr(view, job_dir / CORR_PNG))
    return paths


def job_figures(job_dir: Path, summary: dict[str, Any] | None = None) -> list[Path]:
    """Draw a job directory's figures from its files (raises ``FiguresError``)."""
    return draw_view(JobView.read(Path(job_dir), summary), Path(job_dir))


def job_dirs(path: Path) -> list[Path]:
    """The job directories at ``path``: itself when it holds a summary.json, else its
    subdirectories that do (a sweep), in name order."""
    path = Path(path)
    if (path / store.SUMMARY_JSON).exists():
        return [path]
    return sorted(p.parent for p in path.glob(f"*/{store.SUMMARY_JSON}"))
