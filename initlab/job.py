"""One job: run the engine for a spec and write the job directory's files.

Called by the Hydra app for every run and every multirun job; usable on its
own (``run_job(spec, Thresholds(), out_dir)``) without Hydra.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from initlab import fusion, plots, store
from initlab.chain import run_chain
from initlab.spec import ChainSpec
from initlab.summary import fmt, summarize
from initlab.verdict import Thresholds


def run_job(
    spec: ChainSpec,
    thresholds: Thresholds,
    out_dir: Path,
    reference: dict[str, Any] | None = None,
    make_plots: bool = True,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run ``spec``, write layers.csv/.parquet, histogram.csv, summary.json and plots.

    Returns the summary. ``summary.json`` is written last, so its presence
    means the job finished; it carries ``status: ok``.
    """
    out_dir = Path(out_dir)
    start = time.perf_counter()
    result = fusion.take(spec) or run_chain(spec, progress=progress)
    engine_s = time.perf_counter() - start
    store.write_layers(out_dir, result.frame())
    store.write_histogram(out_dir, result.hist_frame())
    if make_plots:
        plots.plot_std(result, out_dir / plots.STD_PNG)
        plots.plot_mean(result, out_dir / plots.MEAN_PNG)
        if result.grads is not None:
            plots.plot_grad(result, out_dir / plots.GRAD_PNG)
    summary = {"status": "ok", **summarize(result, thresholds, reference)}
    summary["seconds"] = {
        "engine": round(engine_s, 4),
        "total": round(time.perf_counter() - start, 4),
    }
    store.write_json(out_dir / store.SUMMARY_JSON, summary)
    return summary


def record_failure(out_dir: Path, settings: dict[str, Any], error: BaseException) -> dict:
    """Write a ``status: failed`` summary.json for a job that raised, so reports can list it."""
    summary = {
        "status": "failed",
        "error": f"{type(error).__name__}: {error}".splitlines()[0],
        **settings,
    }
    store.write_json(Path(out_dir) / store.SUMMARY_JSON, summary)
    return summary


def describe(summary: dict[str, Any]) -> str:
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
