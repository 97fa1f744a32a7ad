"""Jobs: every kind planned, run and written by one path.

A job is *what is measured* — the chain (``ChainSpec``) or a torch model
(``ModelSpec``) — with its thresholds, reference numbers and directory. A batch of
jobs (a sweep, or one run) goes through ``run_jobs``: ``plan_passes`` groups the
chain jobs that can share an engine pass (each layer's base matrices drawn once for
all of them; without gradients a depth sweep runs only its deepest chain), each
model job is a pass of its own, every pass is measured (``initlab.measure``) and each
job it served is written by ``write_job``: the tables, the figures when asked for,
and summary.json last, so its presence means the job finished. A pass that raises
fails its jobs (recorded in their summary.json); the other passes go on.

A training job (``Job.train``) is measured at initialization as every job is, then
trained (``initlab.trainjob``: chains of one shape batched, each model alone) before
it is written: its training files and summary.json's ``training`` block join the
init-time ones, summary.json still last.

``summary.json`` ``seconds``: ``engine`` is the job's share of the pass that measured
it (all of it for a job measured alone; for jobs sharing a pass, the pass's seconds
times the job's share of the work), ``total`` adds the job's own writing, ``pass`` is
the whole pass and ``shared_by`` the number of jobs it served.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from initlab import figures, interrupts, measure, store, trainjob
from initlab.chain import cut
from initlab.labels import label
from initlab.layout import group_key
from initlab.modelspec import ModelSpec
from initlab.numbers import fmt
from initlab.result import Result
from initlab.rules import first_line
from initlab.spec import ChainSpec
from initlab.summary import summarize
from initlab.train.record import TrainingRecord
from initlab.train.spec import TrainSpec
from initlab.verdict import Thresholds

log = logging.getLogger("initlab")

SECONDS_NOTE = ("engine: this job's share of the pass that measured it (pass seconds x its "
                "share of the work the pass served), plus its share of the training group "
                "that trained it (training); total: engine + writing its files")


@dataclass(frozen=True)
class Job:
    """One job: what is measured, how it is judged, and where its files go."""

    spec: ChainSpec | ModelSpec
    thresholds: Thresholds = Thresholds()
    out_dir: Path = Path(".")
    reference: dict[str, Any] | None = None
    make_plots: bool = False
    #: train after measuring at initialization (``initlab.trainjob``); None: do not
    train: TrainSpec | None = None
    #: with ``train``: also write TensorBoard event files (``initlab[tensorboard]``)
    tensorboard: bool = False

    @property
    def work(self) -> int:
        """What its progress counts: init-time trial-layers (``initlab.measure``), plus
        trial-layer updates when it trains."""
        init = (measure.chain_work(self.spec) if isinstance(self.spec, ChainSpec)
                else measure.model_work(self.spec))
        return init + (trainjob.work(self.spec, self.train) if self.train else 0)


@dataclass(frozen=True)
class Pass:
    """One measurement: chain specs sharing an engine pass, or one model."""

    specs: tuple[ChainSpec | ModelSpec, ...]

    @property
    def is_chain(self) -> bool:
        return isinstance(self.specs[0], ChainSpec)

    def run(self, progress: Callable[[int], object] | None) -> list[Result]:
        if self.is_chain:
            return measure.chains(self.specs, progress)
        return [measure.model(self.specs[0], progress)]

    def source(self, spec: ChainSpec | ModelSpec) -> int | None:
        """The position of the spec whose result serves ``spec``, or None."""
        key = _stem(spec)
        return next((i for i, s in enumerate(self.specs) if _stem(s) == key), None)


def _stem(spec: ChainSpec | ModelSpec) -> str:
    """Specs with one stem are served by one result: identical specs, and without gradients
    chains that differ only in depth (a deeper chain holds every shallower one)."""
    if isinstance(spec, ChainSpec) and not spec.gradients:
        spec = dataclasses.replace(spec, depth=1)
    return type(spec).__name__ + json.dumps(dataclasses.asdict(spec), sort_keys=True,
                                            default=str)


def plan_passes(specs: Sequence[ChainSpec | ModelSpec]) -> list[Pass]:
    """The passes a batch needs: chain specs grouped by ``group_key`` (the deepest of each
    stem), each distinct model alone."""
    deepest: dict[str, ChainSpec | ModelSpec] = {}
    for spec in specs:
        stem = _stem(spec)
        if stem not in deepest or (isinstance(spec, ChainSpec)
                                   and spec.depth > deepest[stem].depth):
            deepest[stem] = spec
    groups: dict[Any, list] = {}
    for stem, spec in deepest.items():
        key = group_key(spec) if isinstance(spec, ChainSpec) else stem
        groups.setdefault(key, []).append(spec)
    return [Pass(tuple(g)) for g in groups.values()]


def total_work(jobs: Sequence[Job]) -> int:
    """The work the passes of a batch count, in all (a progress bar's total)."""
    init = sum(Job(s).work for p in plan_passes([j.spec for j in jobs]) for s in p.specs)
    return init + sum(trainjob.work(j.spec, j.train) for j in jobs if j.train)


def run_jobs(jobs: Sequence[Job],
             progress: Callable[[int], object] | None = None) -> list[dict[str, Any]]:
    """Measure a batch of jobs, sharing passes, and write every job's directory.

    Returns one summary per job (``status`` ok or failed), in order. A pass that
    raises (out of memory, a plug-in that raises or calls ``sys.exit``) fails the jobs
    it serves; a job whose directory cannot be written fails alone; the others go on.
    Ctrl-C is not caught.
    """
    summaries: list[dict[str, Any] | None] = [None] * len(jobs)
    measured: dict[int, tuple[Result, dict[str, Any]]] = {}  # training jobs, to train
    for one in plan_passes([j.spec for j in jobs]):
        served = [i for i, j in enumerate(jobs) if one.source(j.spec) is not None]
        start = time.perf_counter()
        try:
            results = one.run(interrupts.at_first_tick("measure", progress))
        except (Exception, SystemExit) as exc:
            for i in served:
                summaries[i] = fail(jobs[i], exc, "measuring")
            continue
        seconds = time.perf_counter() - start
        work = sum(jobs[i].work for i in served)
        for i in served:
            job = jobs[i]
            result = results[one.source(job.spec)]
            if isinstance(job.spec, ChainSpec) and result.spec.depth != job.spec.depth:
                result = cut(result, job.spec.depth)
            share = {"engine": seconds * job.work / work, "pass": round(seconds, 4),
                     "shared_by": len(served)}
            if job.train is not None:
                measured[i] = result, share
                continue
            summaries[i] = _write(job, result, share)
    _train_all(jobs, measured, summaries, progress)
    return summaries


def _write(job: Job, result: Result, seconds: dict[str, Any],
           record: TrainingRecord | None = None) -> dict[str, Any]:
    try:
        return write_job(job, result, seconds, record)
    except Exception as exc:  # e.g. PermissionError, a file in the way, a full disk
        return fail(job, exc, "writing its directory", where=job.out_dir)


def _train_all(jobs: Sequence[Job], measured: dict[int, tuple[Result, dict[str, Any]]],
               summaries: list, progress: Callable[[int], object] | None) -> None:
    """Train the measured training jobs, group by group, and write each."""
    order = sorted(measured)
    for group in trainjob.plan([(jobs[i].spec, jobs[i].train) for i in order]):
        served = [order[g] for g in group]
        log.info("training %s", trainjob.describe([jobs[i].spec for i in served],
                                                   jobs[served[0]].train))
        start = time.perf_counter()
        try:
            records = trainjob.train([jobs[i].spec for i in served], jobs[served[0]].train,
                                     interrupts.at_first_tick("train", progress))
        except (Exception, SystemExit) as exc:
            for i in served:
                summaries[i] = fail(jobs[i], exc, "training")
            continue
        seconds = (time.perf_counter() - start) / len(served)
        for i, record in zip(served, records, strict=True):
            result, share = measured[i]
            share = {**share, "engine": share["engine"] + seconds,
                     "training": round(seconds, 4)}
            summaries[i] = _write(jobs[i], result, share, record)


def run_job(job: Job, progress: Callable[[int], object] | None = None) -> dict[str, Any]:
    """Measure one job and write its directory; its summary (``status`` ok or failed)."""
    return run_jobs([job], progress)[0]


def write_job(job: Job, result: Result, seconds: dict[str, Any],
              record: TrainingRecord | None = None) -> dict[str, Any]:
    """Write layers.csv/.parquet, histogram.csv, a training job's files (``record``), the
    figures when asked for and, last, summary.json (``status: ok``); ``seconds`` holds at
    least ``engine``."""
    start = time.perf_counter()
    out_dir = Path(job.out_dir)
    if job.train is not None:  # the training settings are the job's settings too
        result = dataclasses.replace(result, settings={**result.settings,
                                                       **job.train.describe()})
    store.write_layers(out_dir, result.frame())
    if result.hist is not None:
        store.write_histogram(out_dir, result.hist_frame())
    summary = {"status": "ok", **summarize(result, job.thresholds, job.reference)}
    if record is not None:
        trainjob.write(out_dir, record, job.tensorboard)
        summary["training"] = trainjob.training_block(record)
    if job.make_plots:
        figures.draw_job(out_dir, summary)
    engine = seconds["engine"]
    summary["seconds"] = {**seconds, "engine": round(engine, 4),
                          "total": round(engine + time.perf_counter() - start, 4),
                          "note": SECONDS_NOTE}
    store.write_json(out_dir / store.SUMMARY_JSON, summary)
    return summary


def problem(exc: BaseException, where: Path | None = None) -> str:
    """A failed job in one line: the file that could not be written and why, or the error.
    ``where``: the directory being written, for an OSError that names no file (a writer
    that ran out of disk space mid-file)."""
    path = (exc.filename2 or exc.filename or where) if isinstance(exc, OSError) else None
    if path:  # a rename's target, not its hidden temp file
        why = os.strerror(exc.errno) if exc.errno else (exc.strerror or type(exc).__name__)
        return f"cannot write {path} ({why})"
    if isinstance(exc, SystemExit):
        return f"a plug-in called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {first_line(exc)}"


def record_failure(out_dir: Path, settings: dict[str, Any], error: BaseException | str) -> dict:
    """Write a ``status: failed`` summary.json for a job that failed, so reports can list it.

    ``settings``: the job's flat settings as far as known; they go both at the top level
    and under ``settings``.
    """
    flat = {k: v for k, v in settings.items() if k != "settings"}
    summary = {"status": "failed",
               "error": error if isinstance(error, str) else problem(error),
               **flat, "settings": dict(settings.get("settings", flat))}
    store.write_json(Path(out_dir) / store.SUMMARY_JSON, summary)
    return summary


def fail(job: Job, error: BaseException, what: str, where: Path | None = None
         ) -> dict[str, Any]:
    """Record a failed job where its directory allows; one log line either way. ``where``:
    the directory it was writing (see ``problem``)."""
    settings = job.spec.describe()
    why = problem(error, where)
    recorded = f"recorded in {Path(job.out_dir) / store.SUMMARY_JSON}"
    try:
        summary = record_failure(job.out_dir, settings, why)
    except Exception as exc:  # the directory itself is the problem (or the disk is full)
        summary = {"status": "failed", "error": why, **settings}
        also = problem(exc, job.out_dir)
        recorded = "not recorded" + ("" if also == why else f": {also}")
    log.error("job failed (%s): %s (%s)", what, why, recorded)
    return summary


def verdict_words(summary: dict[str, Any], prefix: str = "") -> str:
    """``exploded at layer 4`` for the forward verdict (``prefix=""``) or the gradient's
    (``prefix="grad_"``); ``not recorded`` where the summary has none."""
    verdict = summary.get(f"{prefix}verdict")
    if verdict is None:
        return "not recorded"
    layer = summary.get(f"{prefix}verdict_layer")
    return verdict + (f" at layer {layer}" if layer is not None else "")


def training_words(training: dict[str, Any]) -> str:
    """``trained: held-out accuracy 0.958 [10-90%: 0.95 .. 0.963] after 200 steps (4 of 4
    trials)`` (a regression task: its held-out loss)."""
    what, key = (("accuracy", "final_eval_acc") if training.get("final_eval_acc") is not None
                 else ("loss", "final_eval_loss"))
    return (f"{training['verdict']}: held-out {what} {fmt(training[key])} [10-90%: "
            f"{fmt(training[key + '_q10'])} .. {fmt(training[key + '_q90'])}] after "
            f"{training['steps']} steps ({training['trained_trials']} of "
            f"{training['trials']} trials trained)")


def log_line(summary: dict[str, Any]) -> str:
    """One line for the log: what ran and what it did, forward and backward, and what
    training did."""
    spread = ", ".join(f"{k} {v}" for k, v in summary["verdict_counts"].items() if v)
    what = f"model={summary['model']} " if "model" in summary else ""
    grads = ("gradients off" if summary.get("grad_verdict") is None and not
             summary.get("gradients", True) else f"gradients {verdict_words(summary, 'grad_')}")
    return (
        f"{what}init={label(summary, 'init', SCALES)} activation={summary['activation']} "
        + (f"bias={label(summary, 'bias')} " if summary.get("bias") not in (None, "zero")
           else "")
        + f"depth={summary['depth']} width={summary['width']} trials={summary['trials']}: "
        f"forward {verdict_words(summary)} ({spread}), {grads}; final std median "
        f"{fmt(summary['final_std'])} [10-90%: {fmt(summary['final_std_q10'])} .. "
        f"{fmt(summary['final_std_q90'])}], final mean median {fmt(summary['final_mean'])}"
        + _chosen(summary)
        + (f"; {training_words(summary['training'])}" if summary.get("training") else "")
    )


#: A scheme's parameters that set its scale: the ones a log line names
SCALES = {"sigma_w2", "std", "gain", "value"}


def _chosen(summary: dict[str, Any]) -> str:
    """``; chose sigma_w2 1.761, sigma_b2 0.05 (chi_1 1)`` for init=critical, and the two
    inputs' final correlation beside its theory when a job has two inputs."""
    phase = summary.get("phase") or {}
    out = ""
    if summary.get("init") == "critical" and phase:
        out += (f"; chose sigma_w2 {fmt(phase.get('sigma_w2'))}, sigma_b2 "
                f"{fmt(phase.get('sigma_b2'))} (chi_1 {fmt(phase.get('chi_1'))})")
    if summary.get("final_corr") is not None:
        out += (f"; final corr median {fmt(summary['final_corr'])} (theory "
                f"{fmt(summary.get('final_theory_corr'))})")
    return out
