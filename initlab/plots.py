"""Per-job figures: std and mean of the signal by layer, median over trials with a 10-90 % band.

The std plot uses a log axis and draws the mean-field prediction
(``initlab.theory``) as a dashed line, so a curve that leaves the theory is
visibly finite-width noise or overflow, not physics. Layers where a trial's
signal is non-finite are left out of that layer's band (they are counted in
the verdict instead).

Figures are drawn on ``matplotlib.figure.Figure`` objects, never through
pyplot: importing this module leaves the user's backend and figure list alone.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from initlab.chain import ChainResult
from initlab.store import write_with
from initlab.theory import UNSET, for_chain

STD_PNG = "std_by_layer.png"
MEAN_PNG = "mean_by_layer.png"
GRAD_PNG = "grad_by_layer.png"
CORR_PNG = "corr_by_layer.png"


def bands(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 10 % and 90 % over trials (axis 0) per layer, ignoring non-finite trials.

    Layers where every trial overflowed come out NaN, without warnings.
    """
    clean = np.where(np.isfinite(values), values, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 'All-NaN slice encountered'
        lo, med, hi = np.nanquantile(clean, [0.1, 0.5, 0.9], axis=0)
    return med, lo, hi


def _title(result: ChainResult) -> str:
    s = result.spec
    params = ", ".join(f"{k}={v}" for k, v in sorted(s.init_params.items()))
    init = f"{s.init}({params})" if params else s.init
    return (
        f"init={init}, activation={s.activation}, width={s.width}, "
        f"{s.trials} trial{'s' if s.trials > 1 else ''}, {s.dtype}"
    )


def _figure() -> tuple[Figure, object]:
    """A figure of its own (no pyplot state) and its one axes."""
    fig = Figure(figsize=(7, 4.2))
    return fig, fig.subplots()


def _save(fig: Figure, path: Path) -> Path:
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    return path


def _theory(result: ChainResult, curves: dict | None | object) -> dict[str, np.ndarray]:
    """The mean-field curves to draw dashed: ``curves`` as the caller computed them
    (``initlab.job.write_job`` computes them once for the table, figures and summary), or
    computed here when not given; NaN where the theory does not apply."""
    if curves is UNSET:
        curves = for_chain(result.spec, result.recipe)
    if curves is None:  # no mean-field theory for this scheme (constant weights)
        nan = np.full(result.spec.depth + 1, np.nan)
        curves = {"mean": nan, "std": nan, "grad_std": nan, "corr": nan}
    return curves


def plot_std(result: ChainResult, path: Path, curves: dict | None | object = UNSET) -> Path:
    """std of the signal per layer on a log axis: median, 10-90 % band, mean-field theory."""
    layers = np.arange(result.stats["std"].shape[1])
    med, lo, hi = bands(result.stats["std"])
    fig, ax = _figure()
    positive = med > 0
    ax.fill_between(layers, lo, hi, where=hi > 0, alpha=0.25, label="10-90 % of trials")
    ax.plot(layers[positive], med[positive], lw=2, label="median over trials")
    theory = _theory(result, curves)["std"]
    ok = np.isfinite(theory) & (theory > 0) & (theory < np.finfo(np.float64).max)
    if ok.any():
        ax.plot(layers[ok], theory[ok], "k--", lw=1, label="mean-field theory")
    limit = float(np.finfo(np.dtype(result.spec.dtype)).max)
    if ok.any() and theory[ok].max() > limit:
        ax.axhline(limit, color="gray", ls="-.", lw=1, label=f"{result.spec.dtype} max {limit:.2g}")
    zero = ~positive & np.isfinite(med)
    if zero.any():
        ax.plot([], [], " ", label=f"std = 0 from layer {int(layers[zero][0])}")
    broken = ~np.isfinite(result.stats["std"]).all(axis=0)
    if broken.any():
        ax.axvline(layers[broken][0], color="r", ls=":", label=f"non-finite from layer "
                   f"{int(layers[broken][0])}")
    ax.set_yscale("log")
    ax.set_xlabel("layer (0 = input)")
    ax.set_ylabel("std of x over units")
    ax.set_title(_title(result), fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, Path(path))


def plot_mean(result: ChainResult, path: Path, curves: dict | None | object = UNSET) -> Path:
    """Mean of the signal per layer (symmetric-log axis): median and 10-90 % band."""
    layers = np.arange(result.stats["mean"].shape[1])
    med, lo, hi = bands(result.stats["mean"])
    fig, ax = _figure()
    ax.fill_between(layers, lo, hi, alpha=0.25, label="10-90 % of trials")
    ax.plot(layers, med, lw=2, label="median over trials")
    theory = _theory(result, curves)["mean"]
    ok = np.isfinite(theory)
    if ok.any():
        ax.plot(layers[ok], theory[ok], "k--", lw=1, label="mean-field theory")
    ax.axhline(0.0, color="k", lw=0.5)
    finite = np.abs(np.concatenate([lo, hi]))
    finite = finite[np.isfinite(finite) & (finite > 0)]
    linthresh = float(max(np.quantile(finite, 0.1), 1e-300)) if finite.size else 1.0
    ax.set_yscale("symlog", linthresh=linthresh)
    ax.set_xlabel("layer (0 = input)")
    ax.set_ylabel("mean of x over units")
    ax.set_title(_title(result), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, Path(path))


def plot_grad(result: ChainResult, path: Path, curves: dict | None | object = UNSET) -> Path:
    """std of dL/dx_l and of dL/dW_l by layer (log axis), with the backward mean-field theory."""
    layers = np.arange(result.stats["std"].shape[1])
    fig, ax = _figure()
    for name, label, color in (("grad_x_std", "dL/dx_l", "C0"), ("grad_w_std", "dL/dW_l", "C1")):
        med, lo, hi = bands(result.grads[name])
        ok = np.isfinite(med) & (med > 0)
        ax.fill_between(layers, lo, hi, where=np.isfinite(hi) & (hi > 0), color=color,
                        alpha=0.2)
        ax.plot(layers[ok], med[ok], color=color, lw=2, label=f"std of {label}, median")
    theory = _theory(result, curves)["grad_std"]
    ok = np.isfinite(theory) & (theory > 0)
    if ok.any():
        ax.plot(layers[ok], theory[ok], "k--", lw=1, label="mean-field theory (dL/dx)")
    ax.set_yscale("log")
    ax.set_xlabel("layer (gradient flows from the output, right, to the input, left)")
    ax.set_ylabel("std over units / entries")
    ax.set_title(_title(result) + " — gradients of <g, x_L>", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, Path(path))


def plot_corr(result: ChainResult, path: Path, curves: dict | None | object = UNSET) -> Path:
    """Cosine between two inputs' pre-activations per layer (batch >= 2): median and 10-90 %
    band over trials, the mean-field correlation map dashed (layer 0: the inputs' c0)."""
    corr = result.stats["corr"]
    layers = np.arange(corr.shape[1])
    med, lo, hi = bands(corr)
    fig, ax = _figure()
    ok = np.isfinite(med)
    ax.fill_between(layers, lo, hi, where=np.isfinite(lo) & np.isfinite(hi), alpha=0.25,
                    label="10-90 % of trials")
    ax.plot(layers[ok], med[ok], lw=2, label="median over trials")
    theory = _theory(result, curves).get("corr", np.full(len(layers), np.nan))
    good = np.isfinite(theory)
    if good.any():
        ax.plot(layers[good], theory[good], "k--", lw=1, label="mean-field theory")
    ax.axhline(1.0, color="gray", lw=0.5)
    ax.axhline(0.0, color="gray", lw=0.5)
    ax.set_xlabel("layer (0 = inputs)")
    ax.set_ylabel("cosine between inputs' pre-activations")
    bias = result.spec.bias_recipe()
    extra = "" if "sigma_w2" in result.spec.init_params else \
        f", sigma_w2={result.recipe.sigma_w2:.3g}"
    extra += f", sigma_b2={bias.sigma_b2:.3g}" if bias.base != "zero" else ""
    ax.set_title(f"{_title(result)}{extra}, "
                 f"c0={result.spec.input_correlation:g}", fontsize=9)
    ax.set_ylim(min(-0.05, float(np.nanmin(lo)) - 0.05) if np.isfinite(lo).any() else -0.05,
                1.05)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, Path(path))
