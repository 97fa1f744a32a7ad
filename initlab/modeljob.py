"""The model job: a config whose ``model`` is not the chain -> ``initlab.probe`` -> a job directory.

``initlab model=conv_chain`` (seed 001's 99 valid 3x3 convolutions, 199x199 -> 1x1),
``model=simple_cnn`` (fastai's stride-2 CNN) or a user's model (``model._target_``
+ ``model.input_shape``) is probed over ``trials`` weight draws, with init and bias
from their groups, and written with a chain job's file contract (``initlab.job``):
layers.csv/.parquet (settings columns incl. ``model``, ``trial, layer, module,
module_type``, the statistics, gradient statistics and theory columns),
histogram.csv, summary.json (``status: ok``, the verdict as for a chain; written
before the figures, which ``initlab.plots.job_figures`` draws from these files).

What a layer is: for ``conv_chain``, layer l is x_l = act(conv_l(x_{l-1})), the
activation's output, with ``corr`` taken on the conv's output (the pre-activation)
and ``grad_w`` of that conv, as the chain's table (so the chain's mean-field
curves apply, ``initlab.theory.conv``); for the others, every hooked module's
output (default: every leaf module with parameters, as fastai's ActivationStats),
and no theory (NaN columns; the figures say so).

Settings: ``trials``, ``seed``, ``batch``, ``device``, ``dtype``, ``gradients``,
``thresholds`` and ``input_correlation`` (Gaussian inputs) apply. The chain's own
``width``, ``depth`` and ``weights`` do not: set to anything but their defaults with
a model, they are refused (``initlab.config.check_model``); ``model.channels``,
``model.depth`` and ``model.size`` shape a conv chain. ``keep_fraction`` (a memory knob
of the chain engine) and ``progress`` are not used (no bar for a model). A user's
model keeps its own activations: ``activation`` other than the default is refused and
the job records ``activation: model``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from initlab import models, store
from initlab.inputs import make_inputs
from initlab.models import ModelSpec
from initlab.summary import compare
from initlab.verdict import Thresholds, first_nonfinite_layer, overall, trial_verdicts

log = logging.getLogger("initlab")

SECONDS_NOTE = ("engine: the probe's seconds (all trials); per_trial: engine / trials; "
                "total: engine + writing the tables and summary")


def measure(spec: ModelSpec):
    """Run the probe for ``spec``; a conv chain's conv and activation rows paired."""
    import torch

    from initlab.probe import probe
    from initlab.spec import resolve_device

    include, exclude = spec.hooks()
    inputs = make_inputs(spec.inputs, spec.shape(), spec.batch, spec.input_correlation,
                         getattr(torch, spec.dtype))
    result = probe(spec.factory(), inputs, init=spec.init, init_params=spec.init_params,
                   bias=spec.bias, bias_params=spec.bias_params, trials=spec.trials,
                   seed=spec.seed, gradients=spec.gradients, include=include, exclude=exclude,
                   device=resolve_device(spec.device))
    return _pair_layers(result, spec.activation) if spec.model == "conv_chain" else result


def _pair_layers(result, activation: str):
    """A conv chain's rows (input, conv_1, act_1, conv_2, ...) as the chain's layers: x_l from
    act_l, ``corr`` from conv_l (the pre-activation), grad_x from act_l, grad_w from conv_l."""
    types = result.module_types[1:]
    if types != ["Conv2d", "Activation"] * (len(types) // 2):
        raise RuntimeError(f"conv_chain's hooked modules are not conv/activation pairs: {types}")
    act = [0, *range(2, len(types) + 1, 2)]
    conv = [0, *range(1, len(types) + 1, 2)]
    stats = {n: v[:, act] for n, v in result.stats.items()}
    stats["corr"] = result.stats["corr"][:, conv]
    grads = None
    if result.grads is not None:
        grads = {n: v[:, conv if n.startswith("grad_w") else act] for n, v in result.grads.items()}
    names = ["input", *(f"{result.modules[i]}+{result.modules[i + 1]}" for i in conv[1:])]
    kinds = ["input", *[f"Conv2d+{activation}"] * (len(act) - 1)]
    return replace(result, stats=stats, grads=grads, modules=names, module_types=kinds,
                   shapes=[result.shapes[i] for i in act],
                   hist=None if result.hist is None else result.hist[act])


def theory_curves(spec: ModelSpec, result) -> dict[str, np.ndarray] | None:
    """Mean-field curves for a conv chain (``initlab.theory.conv``, fan_in = C * 9), else
    None. Gaussian inputs start from q_0 = 1 and c_0 = input_correlation; digits from the
    measured E[x_0^2] and cosine (mean over trials)."""
    if spec.model != "conv_chain":
        return None
    from initlab.theory.conv import conv_chain_curves, conv_gains

    gains = conv_gains(spec.init, spec.init_params, spec.bias, spec.bias_params, spec.channels)
    if gains is None:
        return None
    if spec.inputs == "gaussian":
        q0, c0 = 1.0, spec.input_correlation
    else:
        q0 = float(np.mean(result.stats["rms"][:, 0] ** 2))
        c0 = float(np.nanmean(result.stats["corr"][:, 0])) if spec.batch >= 2 else None
    with np.errstate(over="ignore", invalid="ignore"):
        return conv_chain_curves(spec.activation, gains[0], gains[1],
                                 models.conv_sizes(spec.depth, spec.size),
                                 spec.activation_params or None, q0=q0,
                                 c0=c0 if spec.batch >= 2 else None)


def width_of(result) -> int:
    """The widest hooked layer's channels (first per-sample dimension): the ``width`` column."""
    return int(max((s[0] for s in result.shapes[1:] if s), default=0))


def layers_table(spec: ModelSpec, result, curves: dict | None):
    """The probe's table with this job's settings and the theory columns (NaN: none)."""
    settings = spec.describe(result.depth, width_of(result))
    frame = replace(result, settings=settings).frame()
    trials, layers = result.stats["mean"].shape
    names = ["mean", "std", "corr"] + (["grad_std"] if result.grads is not None else [])
    for name in names:
        column = "theory_grad_x_std" if name == "grad_std" else f"theory_{name}"
        curve = curves.get(name) if curves else None
        frame[column] = np.tile(curve, trials) if curve is not None else np.nan
    return frame


def _num(value: Any) -> float | None:
    """JSON-safe float: NaN, inf and None become None."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _band(values: np.ndarray, prefix: str) -> dict[str, float | None]:
    """Median (NaN if any trial is NaN: the typical trial is broken) and the 10-90 % band."""
    return {prefix: _num(np.median(values)), f"{prefix}_q10": _num(np.quantile(values, 0.1)),
            f"{prefix}_q90": _num(np.quantile(values, 0.9))}


def summarize(spec: ModelSpec, result, thresholds: Thresholds, curves: dict | None,
              reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """summary.json of a model job: the fields ``initlab.summary.summarize`` gives a chain
    job (settings, verdict, final statistics and their theory, gradients, correlation),
    null where they do not apply to a model, plus the hooked ``modules``."""
    stats = result.stats
    settings = spec.describe(result.depth, width_of(result))
    names, layers = trial_verdicts(stats, thresholds)
    broken = first_nonfinite_layer(stats["finite"])
    broken = broken[broken >= 0]
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        final = {name: result.final(name) for name in ("mean", "std", "rms")}
        log_ratio = 2 * (np.log(stats["rms"][:, -1]) - np.log(stats["rms"][:, 0]))
        ok = log_ratio[np.isfinite(log_ratio)]
        out: dict[str, Any] = {
            **settings, "settings": settings, "device": result.device,
            **overall(names, layers),
            "first_nonfinite_layer": int(np.median(broken)) if len(broken) else None,
            "nonfinite_trials": int(len(broken)),
            **_band(final["mean"], "final_mean"), **_band(final["std"], "final_std"),
            "final_rms": _num(np.median(final["rms"])),
            "mean_of_means": _num(np.mean(final["mean"])),
            "root_mean_square": _num(np.sqrt(np.mean(final["rms"] ** 2))),
            "thresholds": {"explode_std": thresholds.explode_std,
                           "vanish_std": thresholds.vanish_std},
            "theory_note": ("mean-field maps of the chain with fan_in = channels * 9 "
                       "(initlab.theory.conv)" if curves is not None else
                       f"none applies to model={spec.model}" if spec.model != "conv_chain"
                       else "none for constant weights or biases"),
            "theory_final_mean": _num(curves["mean"][-1]) if curves else None,
            "theory_final_std": _num(curves["std"][-1]) if curves else None,
            "predicted_overflow_layer": None, "predicted_underflow_layer": None,
            "log_norm_ratio_mean": _num(ok.mean()) if len(ok) and spec.batch == 1 else None,
            "log_norm_ratio_var": (_num(ok.var(ddof=1)) if len(ok) > 1 and spec.batch == 1
                                   else None),
            "predicted_log_norm_ratio_mean": None, "predicted_log_norm_ratio_var": None,
            "phase": None, "final_corr": None, "final_corr_q10": None, "final_corr_q90": None,
            "final_theory_corr": None,
            "modules": list(result.modules), "module_types": list(result.module_types),
        }
        if curves is not None:
            limits = np.finfo(np.dtype(spec.dtype))
            from initlab.theory import crossing

            out["predicted_overflow_layer"] = _num(crossing(curves["std"], limits.max))
            out["predicted_underflow_layer"] = _num(
                crossing(curves["std"], limits.smallest_subnormal))
        if result.grads is not None:
            g = result.grads
            out.update(input_grad_std=_num(np.median(g["grad_x_std"][:, 0])),
                       first_weight_grad_std=_num(np.median(g["grad_w_std"][:, 1])),
                       last_weight_grad_std=_num(np.median(g["grad_w_std"][:, -1])),
                       theory_input_grad_std=_num(curves["grad_std"][0]) if curves else None)
        if spec.batch >= 2:
            last = stats["corr"][:, -1]
            out.update(final_corr=_num(np.median(last)),
                       final_corr_q10=_num(np.quantile(last, 0.1)),
                       final_corr_q90=_num(np.quantile(last, 0.9)),
                       final_theory_corr=_num(curves["corr"][-1]) if curves else None)
    if reference:
        out["reference"] = compare(reference, out)
    return out


def run_model_job(spec: ModelSpec, thresholds: Thresholds, out_dir: Path,
                  reference: dict[str, Any] | None = None, make_plots: bool = True
                  ) -> dict[str, Any]:
    """Probe ``spec`` and write its job directory; returns the summary (raises on failure)."""
    start = time.perf_counter()
    result = measure(spec)
    engine = time.perf_counter() - start
    out_dir = Path(out_dir)
    curves = theory_curves(spec, result)
    store.write_layers(out_dir, layers_table(spec, result, curves))
    store.write_histogram(out_dir, result.hist_frame())
    summary = {"status": "ok", **summarize(spec, result, thresholds, curves, reference)}
    summary["seconds"] = {"engine": round(engine, 4),
                          "per_trial": round(engine / spec.trials, 4),
                          "total": round(time.perf_counter() - start, 4),
                          "path": result.timing.get("path"), "note": SECONDS_NOTE}
    store.write_json(out_dir / store.SUMMARY_JSON, summary)
    if make_plots:
        _figures(out_dir)
    return summary


def _figures(out_dir: Path) -> None:
    """The job's figures from its files; a figure that fails is logged, the job stays ok
    (``initlab-plot <dir>`` draws them again)."""
    from initlab import plots

    try:
        plots.job_figures(out_dir)
    except Exception as exc:  # noqa: BLE001  the job's numbers are written; only a figure
        log.error("figures of %s failed: %s: %s", out_dir, type(exc).__name__, exc)


def known_settings(cfg) -> dict[str, Any]:
    """A failed job's settings as far as the config gives them (for ``record_failure``)."""
    from omegaconf import OmegaConf

    keys = ("trials", "batch", "seed", "device", "dtype", "gradients", "inputs")
    return {"model": str(cfg.model.name), "init": str(cfg.init.name),
            "activation": str(cfg.activation.name),
            **{k: OmegaConf.select(cfg, k) for k in keys}}
