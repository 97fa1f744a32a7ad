"""Synthetic training job directories with known numbers, written with pandas (no trainer):
the files a training job writes (``train_steps``, ``train_layers``, ``train_histogram.csv``,
summary.json's ``training`` block) beside the init-time ones the report checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

STEPS = (0, 10, 20, 30, 40)
EVALS = (0, 20, 40)
#: (log10_lo, count) of the value bins every (step, layer) gets, beyond fastai's [0, 10]
VALUE_BINS = ((-20.0, 3), (-1.5, 40), (-1.25, 60), (0.0, 25), (12.0, 2))


def layer_table(trials: int, layers: int, std: Any = None, types: list[str] | None = None,
                near_zero: Any = None) -> pd.DataFrame:
    """train_layers rows: ``std(trial, step, layer)`` (default 1 + layer/10 + step/100)."""
    std = std or (lambda t, s, n: 1 + n / 10 + s / 100 + t / 1000)
    near_zero = near_zero or (lambda t, s, n: 0.02 + 0.001 * n)
    types = types or ["input", *["Linear+tanh"] * (layers - 2), "Linear"]
    rows = [{"trial": t, "step": s, "layer": n, "module": f"m{n}", "module_type": types[n],
             "mean": 0.01 * n, "std": std(t, s, n), "unit_std": std(t, s, n), "rms": 1.0,
             "zero_frac": 0.0, "abs_max": 3.0, "finite": True, "corr": np.nan,
             "near_zero": near_zero(t, s, n), "grad_x_mean": 0.0, "grad_x_std": 0.1,
             "grad_w_mean": 0.0, "grad_w_std": 0.1}
            for t in range(trials) for s in STEPS for n in range(layers)]
    return pd.DataFrame(rows)


def step_table(trials: int, acc: float, regression: bool = False) -> pd.DataFrame:
    """train_steps rows: accuracy rising linearly to ``acc`` + trial/100 at the last step."""
    last = max(STEPS)
    rows = []
    for t in range(trials):
        for s in range(last + 1):
            a = np.nan if regression else 0.1 + (acc + t / 100 - 0.1) * s / last
            rows.append({"trial": t, "step": s, "train_loss": 2.3 - s / last,
                         "train_acc": a, "eval_loss": 2.3 - s / last if s in EVALS else np.nan,
                         "eval_acc": a if s in EVALS else np.nan, "lr": 0.01, "momentum": 0.9})
    return pd.DataFrame(rows)


def hist_table(layers: int) -> pd.DataFrame:
    """train_histogram rows: every (step, layer) holds VALUE_BINS, 5 + step exact zeros, and
    at layer 1 from step 30 on, 7 non-finite values."""
    rows = []
    for s in STEPS:
        for n in range(layers):
            rows.append({"step": s, "layer": n, "bin": "zero", "log10_lo": np.nan,
                         "log10_hi": np.nan, "count": 5 + s})
            if n == 1 and s >= 30:
                rows.append({"step": s, "layer": n, "bin": "nonfinite", "log10_lo": np.nan,
                             "log10_hi": np.nan, "count": 7})
            rows += [{"step": s, "layer": n, "bin": "value", "log10_lo": lo,
                      "log10_hi": lo + 0.25, "count": c + n} for lo, c in VALUE_BINS]
    return pd.DataFrame(rows)


def write_job(path: Path, settings: dict[str, Any], *, trials: int = 2, acc: float = 0.9,
              verdict: str | None = None, trained_trials: int | None = None,
              phase: dict[str, Any] | None = None, layers: int | None = None,
              types: list[str] | None = None, std: Any = None, regression: bool = False,
              histogram: bool = True, csv_only: bool = False) -> Path:
    """A finished training job at ``path``; ``settings`` must name init, activation and depth.
    ``acc``: the summary's final held-out accuracy; ``phase``: its xi_c, chi_1."""
    path.mkdir(parents=True, exist_ok=True)
    settings = {"bias": "zero", "width": 8, "trials": trials, "seed": 0, "dtype": "float32",
                "train_steps": max(STEPS), "train_optimizer": "adam", "train_lr": 0.001,
                "train_schedule": "constant", "train_near_zero": 0.05, **settings}
    depth = settings["depth"]
    layers = layers or depth + 3
    init = pd.DataFrame([{"init": settings["init"], "activation": settings["activation"],
                          "depth": depth, "width": settings["width"], "trial": t, "layer": n,
                          "mean": 0.0, "std": 1.0, "rms": 1.0, "zero_frac": 0.0,
                          "abs_max": 3.0, "finite": True}
                         for t in range(trials) for n in range(depth + 1)])
    init.to_csv(path / "layers.csv", index=False)
    frames = {"train_layers": layer_table(trials, layers, std, types),
              "train_steps": step_table(trials, acc, regression)}
    for stem, frame in frames.items():
        for key, value in reversed(settings.items()):  # the settings columns come first
            frame.insert(0, key, value)
        frame.to_csv(path / f"{stem}.csv", index=False)
        if not csv_only:
            frame.to_parquet(path / f"{stem}.parquet", index=False)
    if histogram:
        hist_table(layers).to_csv(path / "train_histogram.csv", index=False)
    verdict = verdict or ("trained" if acc >= 0.55 else "did not train")
    training = {"verdict": verdict, "trials": trials, "chance": 0.1,
                "trained_trials": trials if trained_trials is None else trained_trials,
                "final_eval_acc": None if regression else acc,
                "final_eval_acc_q10": None if regression else acc - 0.01,
                "final_eval_acc_q90": None if regression else acc + 0.01,
                "final_eval_loss": 1.3, "final_eval_loss_q10": 1.2, "final_eval_loss_q90": 1.4,
                "steps": max(STEPS)}
    if phase is not None:
        training["phase"] = phase
    summary = {"status": "ok", "init": settings["init"], "activation": settings["activation"],
               "depth": depth, "trials": trials, "settings": settings, "verdict": "stable",
               "verdict_layer": None, "verdict_counts": {"stable": trials},
               "training": training}
    (path / "summary.json").write_text(json.dumps(summary, indent=1))
    return path


def chain_settings(sigma_w2: float, depth: int, activation: str = "tanh") -> dict[str, Any]:
    return {"init": "scaled", "init_sigma_w2": sigma_w2, "activation": activation,
            "bias": "normal", "bias_sigma_b2": 0.05, "depth": depth}


#: sigma_w2 -> (xi_c, chi_1) of the synthetic trainability sweep: ordered (6 xi_c = 9), the
#: edge (xi_c null: infinite), chaotic (6 xi_c = 12)
PHASES = {0.5: (1.5, 0.45), 1.76: (None, 1.0), 3.0: (2.0, 1.2)}
DEPTHS = (4, 8, 16)
#: (sigma_w2, depth) -> final held-out accuracy (trained: >= 0.55). Against 6 xi_c: 0.5
#: trains to 8, not 16 (consistent: 8 <= 9 <= 16); the edge fails at 16 (within 6 xi_c =
#: inf); 3.0 trains at 16 (beyond 6 xi_c = 12)
ACC = {(0.5, 4): 0.95, (0.5, 8): 0.9, (0.5, 16): 0.12,
       (1.76, 4): 0.96, (1.76, 8): 0.94, (1.76, 16): 0.2,
       (3.0, 4): 0.93, (3.0, 8): 0.91, (3.0, 16): 0.8}


def trainability_sweep(root: Path) -> Path:
    """A sigma_w2 x depth sweep of tanh chains with the known ACC and PHASES."""
    n = 0
    for depth in DEPTHS:
        for w2, (xi, chi) in PHASES.items():
            write_job(root / f"{n}_scaled_tanh_depth{depth}", chain_settings(w2, depth),
                      acc=ACC[(w2, depth)], phase={"xi_c": xi, "chi_1": chi},
                      trained_trials=2 if ACC[(w2, depth)] >= 0.55 else 0)
            n += 1
    return root
