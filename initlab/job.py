"""Jobs: run the engine for specs and write each job directory's files.

``run_job`` runs one spec (the Hydra app calls it for every run, and for every
job under ``hydra/launcher=basic``); ``run_jobs`` runs a batch of planned jobs
(the ``fused`` launcher), sharing engine passes between them, and writes every
job's directory. Both work without Hydra:
``run_job(spec, Thresholds(), out_dir)``.

``summary.json`` ``seconds``: ``engine`` is the job's share of the engine pass
that computed it (all of it for a job run alone; for jobs sharing a pass, the
pass's seconds times the job's share of the trial-layers the pass served),
``total`` adds the job's own writing of tables and figures, ``pass`` is the
whole pass and ``shared_by`` the number of jobs it served.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from initlab import plots, store
from initlab.chain import ChainResult, group_key, run_chain, run_group
from initlab.spec import ChainSpec
from initlab.summary import fmt, summarize
from initlab.tables import layers_frame
from initlab.theory import for_chain
from initlab.verdict import Thresholds

log = logging.getLogger("initlab")

SECONDS_NOTE = ("engine: this job's share of the engine pass that computed it (pass seconds x "
                "its trial-layers / all trial-layers the pass served); total: engine + writing")


@dataclass(frozen=True)
class JobPlan:
    """One job of a batch: what to run and where its files go."""

    spec: ChainSpec
    thresholds: Thresholds
    out_dir: Path
    reference: dict[str, Any] | None = None
    make_plots: bool = True


def write_job(plan: JobPlan, result: ChainResult, seconds: dict[str, Any]) -> dict[str, Any]:
    """Write layers.csv/.parquet, histogram.csv, figures and, last, summary.json.

    ``summary.json`` is written last, so its presence means the job finished;
    it carries ``status: ok``. ``seconds`` holds at least ``engine``.
    """
    start = time.perf_counter()
    out_dir = Path(plan.out_dir)
    curves = for_chain(result.spec, result.recipe)  # once for the table, figures and summary
    store.write_layers(out_dir, layers_frame(result, curves))
    store.write_histogram(out_dir, result.hist_frame())
    if plan.make_plots:
        plots.draw_view(plots.JobView.of(result, curves), out_dir)
    summary = {"status": "ok", **summarize(result, plan.thresholds, plan.reference, curves)}
    engine = seconds["engine"]
    summary["seconds"] = {**seconds, "engine": round(engine, 4),
                          "total": round(engine + time.perf_counter() - start, 4),
                          "note": SECONDS_NOTE}
    store.write_json(out_dir / store.SUMMARY_JSON, summary)
    return summary


def run_job(
    spec: ChainSpec,
    thresholds: Thresholds,
    out_dir: Path,
    reference: dict[str, Any] | None = None,
    make_plots: bool = True,
    progress: Callable[[int], object] | None = None,
) -> dict[str, Any]:
    """Run ``spec`` alone and write its job directory; returns the summary (raises on failure)."""
    start = time.perf_counter()
    result = run_chain(spec, progress=progress)
    seconds = {"engine": time.perf_counter() - start}
    return write_job(JobPlan(spec, thresholds, Path(out_dir), reference, make_plots), result,
                     seconds)


def record_failure(out_dir: Path, settings: dict[str, Any], error: BaseException) -> dict:
    """Write a ``status: failed`` summary.json for a job that raised, so reports can list it.

    ``settings``: the job's flat settings as far as known (``spec.describe()``); they go
    both at the top level and under ``settings`` (a ``settings`` key given is kept).
    """
    flat = {k: v for k, v in settings.items() if k != "settings"}
    summary = {
        "status": "failed",
        "error": f"{type(error).__name__}: {error}".splitlines()[0],
        **flat,
        "settings": dict(settings.get("settings", flat)),
    }
    store.write_json(Path(out_dir) / store.SUMMARY_JSON, summary)
    return summary


def _fail(plan: JobPlan, error: BaseException, what: str) -> dict[str, Any]:
    """Record a failed job where its directory allows; one log line either way."""
    settings = plan.spec.describe()
    try:
        summary = record_failure(plan.out_dir, settings, error)
        where = f"recorded in {Path(plan.out_dir) / store.SUMMARY_JSON}"
    except Exception as exc:  # the directory itself is the problem
        summary = {"status": "failed", "error": f"{type(error).__name__}: {error}", **settings}
        where = ("not recorded" if str(exc) == str(error)
                 else f"not recorded: {type(exc).__name__}: {exc}")
    log.error("job failed (%s): %s: %s (%s)", what, type(error).__name__,
              str(error).splitlines()[0] if str(error) else "", where)
    return summary


def _trial_layers(spec: ChainSpec) -> int:
    return spec.trials * (spec.depth + 1)


def _stem(spec: ChainSpec) -> str:
    """Specs with one stem differ at most in depth, and without gradients a chain is a prefix
    of a deeper one with the same other settings (with gradients, a stem is the spec)."""
    stem = spec if spec.gradients else dataclasses.replace(spec, depth=1)
    return json.dumps(dataclasses.asdict(stem), sort_keys=True, default=str)


def plan_passes(specs: Sequence[ChainSpec]) -> list[list[ChainSpec]]:
    """The engine passes a batch needs: groups (``group_key``) of the specs actually run.

    Identical specs run once; without gradients, only the deepest of the specs
    that differ just in depth runs (the others are its ``prefix``).
    """
    deepest: dict[str, ChainSpec] = {}
    for spec in specs:
        stem = _stem(spec)
        if stem not in deepest or spec.depth > deepest[stem].depth:
            deepest[stem] = spec
    groups: dict[tuple, list[ChainSpec]] = {}
    for spec in deepest.values():
        groups.setdefault(group_key(spec), []).append(spec)
    return list(groups.values())


def run_jobs(plans: Sequence[JobPlan],
             progress: Callable[[int], object] | None = None) -> list[dict[str, Any]]:
    """Run a batch of jobs, sharing engine passes, and write every job's directory.

    Each pass (``plan_passes``) runs, then the jobs it serves are written at
    once. A pass that raises (out of memory, a bug) records its jobs as
    failed; a job whose directory cannot be written is recorded as failed
    where possible; either way the other jobs go on. Returns one summary per
    plan (``status`` ok or failed), in order. ``progress`` gets the
    trial-layers done (``batch_trial_layers`` in all).
    """
    summaries: list[dict[str, Any] | None] = [None] * len(plans)
    for group in plan_passes([p.spec for p in plans]):
        stems = {_stem(s): pos for pos, s in enumerate(group)}  # stem -> its source in group
        served = [i for i, p in enumerate(plans) if _stem(p.spec) in stems]
        start = time.perf_counter()
        try:
            results = run_group(group, progress=progress)
        except (Exception, SystemExit) as exc:  # this pass's jobs fail; the others go on
            # (SystemExit: a plug-in that calls sys.exit fails its jobs, not the sweep)
            for i in served:
                summaries[i] = _fail(plans[i], exc, "engine pass")
            continue
        seconds = time.perf_counter() - start
        work = sum(_trial_layers(plans[i].spec) for i in served)
        for i in served:
            spec = plans[i].spec
            source = results[stems[_stem(spec)]]
            result = source if source.spec.depth == spec.depth else source.prefix(spec.depth)
            share = {"engine": seconds * _trial_layers(spec) / work, "pass": round(seconds, 4),
                     "shared_by": len(served)}
            try:
                summaries[i] = write_job(plans[i], result, share)
            except Exception as exc:  # e.g. PermissionError, a file in the way
                summaries[i] = _fail(plans[i], exc, "writing its directory")
    return summaries


def wants_plots(setting: Any, sweep: bool) -> bool:
    """``plots`` = auto | true | false: auto draws a single run's figures, not a sweep's
    (the sweep's report draws every job; ``initlab-plot`` draws a job's from its files)."""
    mode = str(setting).lower()
    return mode == "true" or (mode == "auto" and not sweep)


def batch_trial_layers(plans: Sequence[JobPlan]) -> int:
    """Trial-layers the engine computes for a batch (what a progress bar counts)."""
    return sum(len(g) * _trial_layers(g[0]) for g in plan_passes([p.spec for p in plans]))


def progress_bar(mode: Any, total: int, label: str):
    """A tqdm bar on stderr for ``progress`` = auto (only on a terminal) | true | false;
    None when quiet."""
    mode = str(mode).lower()
    if mode == "false" or (mode == "auto" and not sys.stderr.isatty()):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="trial-layer", leave=False, file=sys.stderr)


def log_line(summary: dict[str, Any]) -> str:
    """One line for the log: what ran and what it did."""
    counts = summary["verdict_counts"]
    verdict = summary["verdict"]
    if summary["verdict_layer"] is not None:
        verdict += f" at layer {summary['verdict_layer']}"
    spread = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    return (
        f"init={summary['init']} activation={summary['activation']} depth={summary['depth']} "
        f"width={summary['width']} trials={summary['trials']}: {verdict} ({spread}); "
        f"final std median {fmt(summary['final_std'])} "
        f"[10-90%: {fmt(summary['final_std_q10'])} .. {fmt(summary['final_std_q90'])}], "
        f"final mean median {fmt(summary['final_mean'])}"
    )
