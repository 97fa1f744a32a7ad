"""Per-job figures: std, mean, gradients and correlation of the signal by layer, median over
trials with a 10-90 % band, the mean-field prediction dashed.

Figures are drawn from a job's files (``job_figures(job_dir)``: ``layers.parquet`` or
``layers.csv``, and ``summary.json``), so any finished job directory — a chain's or a
model's (``initlab.modeljob``) — can be drawn at any time, by ``initlab-plot`` or by a run
that asked for its figures (``plots``: on for a single run, off in a sweep, whose report
draws every job). ``JobView.of(result)`` draws an engine result held in memory.

The std plot uses a log axis, so a curve that leaves the theory is visibly finite-width
noise or overflow, not physics. Layers where a trial's signal is non-finite are left out
of that layer's band (they are counted in the verdict instead). Where no theory applies
(a scheme without one, an arbitrary model) the legend says so instead of drawing a line.

Figures are drawn on ``matplotlib.figure.Figure`` objects, never through pyplot:
importing this module leaves the user's backend and figure list alone.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from initlab import store
from initlab.store import write_with
from initlab.theory import UNSET, for_chain

STD_PNG = "std_by_layer.png"
MEAN_PNG = "mean_by_layer.png"
GRAD_PNG = "grad_by_layer.png"
CORR_PNG = "corr_by_layer.png"
#: The per-layer statistics a figure reads, as (trials, layers) arrays.
DRAWN = ("mean", "std", "corr", "finite", "grad_x_std", "grad_w_std")
#: theory curve -> its column in the per-layer table
THEORY_COLUMNS = {"mean": "theory_mean", "std": "theory_std", "corr": "theory_corr",
                  "grad_std": "theory_grad_x_std"}
#: Models whose layers have a mean-field theory (the chain, and convolution chains)
THEORY_MODELS = ("chain", "conv_chain")


def bands(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 10 % and 90 % over trials (axis 0) per layer, ignoring non-finite trials.

    Layers where every trial overflowed come out NaN, without warnings.
    """
    clean = np.where(np.isfinite(values), values, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 'All-NaN slice encountered'
        lo, med, hi = np.nanquantile(clean, [0.1, 0.5, 0.9], axis=0)
    return med, lo, hi


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

    @property
    def layers(self) -> np.ndarray:
        return np.arange(self.stats["std"].shape[1])

    def curve(self, name: str) -> np.ndarray:
        return self.theory.get(name, np.full(len(self.layers), np.nan))

    @classmethod
    def of(cls, result: Any, curves: Any = UNSET) -> JobView:
        """The view of an engine result in memory (``ChainResult``); ``curves`` of
        ``initlab.theory.for_chain`` when the caller has them."""
        spec = result.spec
        if curves is UNSET:
            curves = for_chain(spec, result.recipe)
        layers = result.stats["std"].shape[1]
        nan = np.full(layers, np.nan)
        theory = {name: np.asarray((curves or {}).get(name, nan), dtype=float)
                  for name in THEORY_COLUMNS}
        stats = {**{k: v for k, v in result.stats.items() if k in DRAWN},
                 **{k: v for k, v in (result.grads or {}).items() if k in DRAWN}}
        settings = spec.describe()
        bias = spec.bias_recipe()
        note = "" if "sigma_w2" in spec.init_params else f"sigma_w2={result.recipe.sigma_w2:.3g}"
        if bias.base != "zero":
            note += f"{', ' if note else ''}sigma_b2={bias.sigma_b2:.3g}"
        return cls(stats=stats, theory=theory, title=_title(settings), dtype=spec.dtype,
                   batch=spec.batch, corr_note=note)

    @classmethod
    def read(cls, job_dir: Path) -> JobView:
        """The view of a finished job directory (its table and summary.json)."""
        import pandas as pd

        job_dir = Path(job_dir)
        try:
            summary = json.loads((job_dir / store.SUMMARY_JSON).read_text())
        except (OSError, ValueError) as exc:
            raise FiguresError(f"{job_dir}: no readable {store.SUMMARY_JSON} "
                               f"({type(exc).__name__}); is it a finished job directory?"
                               ) from None
        if summary.get("status") != "ok":
            raise FiguresError(f"{job_dir}: the job did not finish (status "
                               f"{summary.get('status')!r}); nothing to draw")
        frame = None
        for name, read in ((store.LAYERS_PARQUET, pd.read_parquet),
                           (store.LAYERS_CSV, pd.read_csv)):
            try:
                frame = read(job_dir / name)
                break
            except Exception:  # noqa: BLE001  a missing or corrupt file: try the other
                continue
        if frame is None or not {"trial", "layer", "std"} <= set(frame.columns):
            raise FiguresError(f"{job_dir}: no readable {store.LAYERS_PARQUET} or "
                               f"{store.LAYERS_CSV}")
        frame = frame.sort_values(["trial", "layer"])
        trials, layers = frame["trial"].nunique(), frame["layer"].nunique()
        if len(frame) != trials * layers:
            raise FiguresError(f"{job_dir}: the per-layer table has {len(frame)} rows, not "
                               f"trials x layers = {trials} x {layers}")

        def grid(column: str) -> np.ndarray:
            return frame[column].to_numpy().reshape(trials, layers)

        stats = {name: grid(name) for name in DRAWN if name in frame.columns}
        first = frame[frame["trial"] == frame["trial"].iloc[0]]
        theory = {name: first[col].to_numpy(dtype=float) if col in first.columns
                  else np.full(layers, np.nan) for name, col in THEORY_COLUMNS.items()}
        settings = summary.get("settings") or summary
        model = settings.get("model", "chain")
        modules = ()
        if "module" in first.columns and layers <= 16:
            modules = tuple(str(m) for m in first["module"])
        no_theory = ("no mean-field theory for this scheme" if model in THEORY_MODELS
                     else f"no theory line: none applies to model {model}")
        c0 = settings.get("input_correlation")
        return cls(stats=stats, theory=theory, title=_title(settings),
                   dtype=str(settings.get("dtype", "float32")),
                   batch=int(settings.get("batch", 1) or 1), no_theory=no_theory,
                   modules=modules, corr_note="" if c0 is None else f"c0={c0:g}")


def _title(settings: dict[str, Any]) -> str:
    params = ", ".join(f"{k[5:]}={v}" for k, v in sorted(settings.items())
                       if k.startswith("init_") and v is not None)
    if not params and isinstance(settings.get("init_params"), dict):
        params = ", ".join(f"{k}={v}" for k, v in sorted(settings["init_params"].items()))
    init = settings.get("init", "?")
    init = f"{init}({params})" if params else init
    trials = settings.get("trials", "?")
    model = settings.get("model", "chain")
    shape = f"width={settings.get('width')}" if model == "chain" else f"model={model}"
    return (f"init={init}, activation={settings.get('activation', '?')}, {shape}, "
            f"{trials} trial{'s' if trials != 1 else ''}, {settings.get('dtype', 'float32')}")


def _view(source: Any, curves: Any = UNSET) -> JobView:
    return source if isinstance(source, JobView) else JobView.of(source, curves)


def _figure() -> tuple[Figure, object]:
    """A figure of its own (no pyplot state) and its one axes."""
    fig = Figure(figsize=(7, 4.2))
    return fig, fig.subplots()


def _save(fig: Figure, path: Path) -> Path:
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    return path


def _finish(ax, view: JobView, xlabel: str, ylabel: str, title: str) -> None:
    if view.modules:  # a small model: name each layer's module
        ax.set_xticks(view.layers, view.modules, rotation=30, ha="right", fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)


def _theory_line(ax, view: JobView, name: str, label: str = "mean-field theory",
                 positive: bool = False) -> np.ndarray:
    layers, theory = view.layers, view.curve(name)
    ok = np.isfinite(theory) & ((theory > 0) if positive else True)
    if ok.any():
        ax.plot(layers[ok], theory[ok], "k--", lw=1, label=label)
    else:
        ax.plot([], [], " ", label=view.no_theory)
    return ok


def plot_std(source: Any, path: Path, curves: Any = UNSET) -> Path:
    """std of the signal per layer on a log axis: median, 10-90 % band, mean-field theory.
    ``source``: a ``JobView`` or an engine result."""
    view = _view(source, curves)
    layers, std = view.layers, view.stats["std"]
    med, lo, hi = bands(std)
    fig, ax = _figure()
    positive = med > 0
    ax.fill_between(layers, lo, hi, where=hi > 0, alpha=0.25, label="10-90 % of trials")
    ax.plot(layers[positive], med[positive], lw=2, label="median over trials")
    ok = _theory_line(ax, view, "std", positive=True)
    theory = view.curve("std")
    limit = float(np.finfo(np.dtype(view.dtype)).max)
    if ok.any() and theory[ok].max() > limit:
        ax.axhline(limit, color="gray", ls="-.", lw=1, label=f"{view.dtype} max {limit:.2g}")
    zero = ~positive & np.isfinite(med)
    if zero.any():
        ax.plot([], [], " ", label=f"std = 0 from layer {int(layers[zero][0])}")
    broken = ~np.isfinite(std).all(axis=0)
    if broken.any():
        ax.axvline(layers[broken][0], color="r", ls=":", label=f"non-finite from layer "
                   f"{int(layers[broken][0])}")
    if positive.any() or ok.any():
        ax.set_yscale("log")
    _finish(ax, view, "layer (0 = input)", "std of x over units", view.title)
    return _save(fig, Path(path))


def plot_mean(source: Any, path: Path, curves: Any = UNSET) -> Path:
    """Mean of the signal per layer (symmetric-log axis): median and 10-90 % band."""
    view = _view(source, curves)
    layers = view.layers
    med, lo, hi = bands(view.stats["mean"])
    fig, ax = _figure()
    ax.fill_between(layers, lo, hi, alpha=0.25, label="10-90 % of trials")
    ax.plot(layers, med, lw=2, label="median over trials")
    _theory_line(ax, view, "mean")
    ax.axhline(0.0, color="k", lw=0.5)
    finite = np.abs(np.concatenate([lo, hi]))
    finite = finite[np.isfinite(finite) & (finite > 0)]
    linthresh = float(max(np.quantile(finite, 0.1), 1e-300)) if finite.size else 1.0
    ax.set_yscale("symlog", linthresh=linthresh)
    _finish(ax, view, "layer (0 = input)", "mean of x over units", view.title)
    return _save(fig, Path(path))


def plot_grad(source: Any, path: Path, curves: Any = UNSET) -> Path:
    """std of dL/dx_l and of dL/dW_l by layer (log axis), with the backward mean-field theory."""
    view = _view(source, curves)
    layers = view.layers
    fig, ax = _figure()
    for name, label, color in (("grad_x_std", "dL/dx_l", "C0"), ("grad_w_std", "dL/dW_l", "C1")):
        med, lo, hi = bands(view.stats[name])
        ok = np.isfinite(med) & (med > 0)
        ax.fill_between(layers, lo, hi, where=np.isfinite(hi) & (hi > 0), color=color,
                        alpha=0.2)
        ax.plot(layers[ok], med[ok], color=color, lw=2, label=f"std of {label}, median")
    _theory_line(ax, view, "grad_std", "mean-field theory (dL/dx)", positive=True)
    ax.set_yscale("log")
    _finish(ax, view, "layer (gradient flows from the output, right, to the input, left)",
            "std over units / entries", view.title + " — gradients of <g, x_L>")
    return _save(fig, Path(path))


def plot_corr(source: Any, path: Path, curves: Any = UNSET) -> Path:
    """Cosine between two inputs' pre-activations per layer (batch >= 2): median and 10-90 %
    band over trials, the mean-field correlation map dashed (layer 0: the inputs' c0)."""
    view = _view(source, curves)
    layers = view.layers
    med, lo, hi = bands(view.stats["corr"])
    fig, ax = _figure()
    ok = np.isfinite(med)
    ax.fill_between(layers, lo, hi, where=np.isfinite(lo) & np.isfinite(hi), alpha=0.25,
                    label="10-90 % of trials")
    ax.plot(layers[ok], med[ok], lw=2, label="median over trials")
    _theory_line(ax, view, "corr")
    ax.axhline(1.0, color="gray", lw=0.5)
    ax.axhline(0.0, color="gray", lw=0.5)
    ax.set_ylim(min(-0.05, float(np.nanmin(lo)) - 0.05) if np.isfinite(lo).any() else -0.05,
                1.05)
    title = view.title + (f", {view.corr_note}" if view.corr_note else "")
    _finish(ax, view, "layer (0 = inputs)", "cosine between inputs' pre-activations", title)
    return _save(fig, Path(path))


def draw_view(view: JobView, job_dir: Path) -> list[Path]:
    """Every figure the view has data for, written into ``job_dir``."""
    job_dir = Path(job_dir)
    paths = [plot_std(view, job_dir / STD_PNG), plot_mean(view, job_dir / MEAN_PNG)]
    if "grad_x_std" in view.stats and np.isfinite(view.stats["grad_x_std"]).any():
        paths.append(plot_grad(view, job_dir / GRAD_PNG))
    if view.batch >= 2 and "corr" in view.stats and np.isfinite(view.stats["corr"]).any():
        paths.append(plot_corr(view, job_dir / CORR_PNG))
    return paths


def job_figures(job_dir: Path) -> list[Path]:
    """Draw a finished job directory's figures from its files (raises ``FiguresError``)."""
    return draw_view(JobView.read(Path(job_dir)), Path(job_dir))


def job_dirs(path: Path) -> list[Path]:
    """The job directories at ``path``: itself when it holds a summary.json, else its
    subdirectories that do (a sweep), in name order."""
    path = Path(path)
    if (path / store.SUMMARY_JSON).exists():
        return [path]
    return sorted(p.parent for p in path.glob(f"*/{store.SUMMARY_JSON}"))
