"""The summary of a sweep: its axes (settings that vary across jobs) and one row per job.

Computed once (``tabulate``) and passed to the figures and the document.
An axis is a family's name (``init``, labelled ``normal(std=0.01)`` when
schemes differ) or, when the name is fixed, each of its varying parameters
(``init.std``), or a plain setting (``depth``). Every job counts, whatever
its status: a failed or never-started job's settings come from its files
and overrides.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from initlab.labels import DERIVED, FAMILIES, PLAIN, label, params
from initlab.report.load import STATUSES, JobRecord


def grad_fields(summary: dict[str, Any]) -> dict[str, Any]:
    """The gradient verdict's columns; "not recorded" for a summary written before gradient
    verdicts existed, "gradients off" where the job ran without a backward pass."""
    counts = summary.get("grad_verdict_counts") or {}
    verdict = summary.get("grad_verdict")
    if verdict is None:
        verdict = ("gradients off" if summary.get("gradients") is False else
                   "no gradient" if "grad_verdict" in summary else "not recorded")
    return {"grad_verdict": verdict, "grad_verdict_layer": summary.get("grad_verdict_layer"),
            "grad_exploded": counts.get("exploded"), "grad_vanished": counts.get("vanished"),
            "grad_stable": counts.get("stable"), "grad_ratio": summary.get("grad_ratio"),
            "grad_ratio_q10": summary.get("grad_ratio_q10"),
            "grad_ratio_q90": summary.get("grad_ratio_q90"),
            "theory_grad_ratio": summary.get("theory_grad_ratio")}


#: summary.json fields copied into summary.csv after the verdicts.
SUMMARY_COLUMNS = ("final_mean", "final_mean_q10", "final_mean_q90", "final_std",
                   "final_std_q10", "final_std_q90", "theory_final_std",
                   "predicted_overflow_layer", "input_grad_std", "theory_input_grad_std",
                   "log_norm_ratio_var", "predicted_log_norm_ratio_var", "identical_units_layer",
                   "final_corr", "final_corr_q10", "final_corr_q90", "final_theory_corr")
#: columns left out of summary.csv when no job has them (one input per trial: no corr)
ONLY_WHEN_SET = ("final_corr", "final_corr_q10", "final_corr_q90", "final_theory_corr")


@dataclass
class Summary:
    """Jobs, their axes and coordinates, the fixed settings and the summary frame."""

    jobs: list[JobRecord]
    axes: list[str]
    values: dict[str, list[Any]]
    coords: dict[str, dict[str, Any]]  # job name -> axis -> value
    fixed: dict[str, Any]
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def ok(self) -> list[JobRecord]:
        return [j for j in self.jobs if j.ok]

    def at(self, job: JobRecord, axis: str) -> Any:
        return self.coords[job.name].get(axis)


def _key(value: Any) -> str:
    return repr(value)


def _distinct(values: list[Any]) -> list[Any]:
    """Distinct values, first-seen order; numbers sorted; None (unknown) left out."""
    seen = list({_key(v): v for v in values if v is not None}.values())
    if seen and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seen):
        return sorted(seen)
    return seen


def _family_axes(jobs: list[JobRecord], family: str, coords, fixed) -> list[str]:
    having = [j for j in jobs if family in j.settings]
    names = _distinct([j.settings[family] for j in having])
    if not names:
        return []
    keys = sorted({k for j in having for k in params(j.settings, family)})
    if len(names) > 1:  # schemes differ: label each with the parameters that differ within it
        for name in names:
            same = [j for j in having if j.settings[family] == name]
            shown = {k for k in keys if len(_distinct([params(j.settings, family).get(k)
                                                       for j in same])) > 1}
            for j in same:
                coords[j.name][family] = label(j.settings, family, shown)
        return [family]
    axes, swept = [], set()
    for key in keys:
        if len(_distinct([params(j.settings, family).get(key) for j in having])) > 1:
            axis = f"{family}.{key}"
            axes.append(axis)
            swept.add(key)
            for j in having:
                coords[j.name][axis] = params(j.settings, family).get(key)
    first = next((j for j in having if j.ok), having[0])
    fixed[family] = label(first.settings, family,
                          set(params(first.settings, family)) - swept)
    return axes


def tabulate(jobs: list[JobRecord]) -> Summary:
    """Axes, coordinates, fixed settings and the summary frame of ``jobs``."""
    coords: dict[str, dict[str, Any]] = {j.name: {} for j in jobs}
    fixed: dict[str, Any] = {}
    axes: list[str] = []
    derived: set[str] = set()
    if any(j.settings.get("model", "chain") != "chain" for j in jobs):
        derived = set(DERIVED)  # a model's depth and width come with it, not from a sweep
        for j in jobs:  # a chain job beside models: the model is the chain
            j.settings.setdefault("model", "chain")
    for family in FAMILIES:
        axes += _family_axes(jobs, family, coords, fixed)
    known = {k for j in jobs for k in j.settings}
    plain = [k for k in PLAIN if k in known]
    plain += sorted(k for k in known - set(plain) - set(FAMILIES)
                    if not any(k.startswith(f + "_") for f in FAMILIES))
    for key in plain:
        if key in derived:
            continue
        values = _distinct([j.settings.get(key) for j in jobs])
        if len(values) > 1:
            axes.append(key)
            for j in jobs:
                coords[j.name][key] = j.settings.get(key)
        elif values:
            fixed[key] = values[0]
    values = {a: _distinct([coords[j.name].get(a) for j in jobs]) for a in axes}
    summary = Summary(jobs=jobs, axes=axes, values=values, coords=coords, fixed=fixed)
    summary.frame = summary_frame(summary)
    return summary


def summary_frame(summary: Summary) -> pd.DataFrame:
    """One row per job (summary.csv): status, coordinates, verdict and final numbers."""
    shown = summary.axes or [a for a in ("init", "activation", "depth") if a in summary.fixed]
    if "model" in summary.axes:  # each model's own layer count and widest layer
        shown = [*shown, *DERIVED]
    rows = []
    for job in summary.jobs:
        s = job.summary if job.status in ("ok", "failed") else {}
        row: dict[str, Any] = {"job": job.name, "status": job.status, "problem": job.problem}
        for axis in shown:
            row[axis] = summary.coords[job.name].get(axis, summary.fixed.get(axis,
                                                                          job.settings.get(axis)))
        counts = s.get("verdict_counts") or {}
        row.update(verdict=s.get("verdict"), verdict_layer=s.get("verdict_layer"),
                   exploded=counts.get("exploded"), vanished=counts.get("vanished"),
                   stable=counts.get("stable"),
                   first_nonfinite_layer=s.get("first_nonfinite_layer"))
        row.update(grad_fields(s) if s else {})
        for key in SUMMARY_COLUMNS:
            row[key] = s.get(key)
        row.update(training_fields(s.get("training")))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame = frame.drop(columns=[c for c in ONLY_WHEN_SET if c in frame and frame[c].isna().all()])
    if summary.jobs and all(j.settings.get("gradients") is False for j in summary.jobs):
        empty = [c for c in frame.columns if ("grad_" in c and c != "grad_verdict")
                 and frame[c].isna().all()]
        frame = frame.drop(columns=empty)  # no backward pass anywhere: no empty columns
    return frame


#: summary.json's ``training`` entries that become ``train_<name>`` columns of summary.csv
TRAINING_COLUMNS = ("verdict", "trained_trials", "chance", "final_eval_acc",
                    "final_eval_acc_q10", "final_eval_acc_q90", "final_eval_loss",
                    "final_eval_loss_q10", "final_eval_loss_q90", "steps", "seconds")


def training_fields(training: dict[str, Any] | None) -> dict[str, Any]:
    """A training job's results as ``train_*`` columns; nothing for a job that did not
    train (so a sweep without training has no such columns)."""
    if not training:
        return {}
    return {f"train_{k}": training.get(k) for k in TRAINING_COLUMNS}


def counts(jobs: list[JobRecord]) -> dict[str, int]:
    """Jobs per status, in the order of ``load.STATUSES``, zeros left out."""
    return {s: n for s in STATUSES if (n := sum(j.status == s for j in jobs))}


def grid_layout(axes: list[str]) -> tuple[str | None, str | None, list[str]]:
    """(row axis, column axis, panel axes): init x activation when both vary; sigma_b2 x
    sigma_w2 (sigma_w2 along x, as the phase diagram has it) when those do."""
    if "init" in axes and "activation" in axes:
        rows, cols = "init", "activation"
    elif "init.sigma_w2" in axes and "bias.sigma_b2" in axes:
        rows, cols = "bias.sigma_b2", "init.sigma_w2"
    else:
        rows = axes[0] if axes else None
        cols = axes[1] if len(axes) > 1 else None
    return rows, cols, [a for a in axes if a not in (rows, cols)]


def panel_keys(summary: Summary, panels: list[str]) -> list[tuple]:
    """Every combination of the panel axes' values (one panel each); ``[()]`` for none."""
    return list(itertools.product(*[summary.values[a] for a in panels])) or [()]


def in_panel(summary: Summary, job: JobRecord, panels: list[str], key: tuple) -> bool:
    return all(summary.at(job, a) == v for a, v in zip(panels, key, strict=True))


def panel_title(panels: list[str], key: tuple) -> str:
    return ", ".join(f"{a}={v}" for a, v in zip(panels, key, strict=True)) or "all jobs"
