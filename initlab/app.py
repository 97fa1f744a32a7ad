"""The command line: a thin Hydra shell around ``initlab.job.run_job``.

``initlab [overrides]`` runs one chain; ``initlab -m a=1,2 b=x,y`` sweeps;
``initlab experiments=journey`` runs a preset. Before Hydra launches anything,
``initlab.validate`` checks every override (every swept value too), so bad
input ends in one line and a non-zero exit, before any job has run.

A job that fails anyway (out of memory, a bug) writes ``status: failed`` into
its ``summary.json`` and returns normally, so the other jobs of a sweep run
and the report (``initlab.callbacks``) lists it; a single run that fails
exits with status 1. Ctrl-C stops a run or a sweep with one line and exit
status 130; the sweep's report then lists the jobs that finished.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from initlab import callbacks, config, paths
from initlab.numbers import fmt
from initlab.rules import SpecError, first_line
from initlab.validate import UsageError, check_args, check_output_dir

log = logging.getLogger("initlab")
config.register()


def _share_cores(hydra_cfg) -> None:
    """Under the joblib launcher, split the cores between workers instead of oversubscribing."""
    launcher = hydra_cfg.launcher
    if "Joblib" not in str(launcher.get("_target_", "")):
        return
    import torch

    cores = os.cpu_count() or 1
    n_jobs = int(launcher.get("n_jobs") or 1)
    workers = cores + 1 + n_jobs if n_jobs < 0 else n_jobs  # joblib: -1 = every core
    torch.set_num_threads(max(1, cores // max(1, min(workers, cores))))


@hydra.main(version_base="1.3", config_path=str(paths.conf_dir()), config_name="config")
def task(cfg: DictConfig) -> dict | None:
    """One Hydra job of any kind: build it from its config, run it, write its files.

    A job that cannot be built or fails is recorded in its summary.json (the report
    lists it) and, in a single run, ends the run with one line and exit status 2
    (bad settings) or 1 (a failure while it ran); in a sweep the other jobs go on.
    """
    from initlab.job import progress_bar, record_failure, run_job

    hydra_cfg = HydraConfig.get()
    out_dir = hydra_cfg.runtime.output_dir
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    _share_cores(hydra_cfg)
    try:
        job = config.job_from_config(cfg, out_dir, sweep)
    except (SpecError, ValueError) as exc:
        print(f"initlab: error: {exc}", file=sys.stderr)
        if not sweep:
            raise SystemExit(2) from None
        _recorded(record_failure, out_dir, config.known_settings(cfg), str(exc))
        return None
    bar = progress_bar(cfg.progress, job.work, f"{job.spec.init}/{job.spec.activation}")
    try:
        summary = run_job(job, progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    if summary.get("status") != "ok":
        if not sweep:  # one line, on stderr only (the log goes to stdout)
            print(f"initlab: error: job failed: {summary.get('error')}", file=sys.stderr)
            raise SystemExit(1)
        return None
    report_job(summary, out_dir)
    return summary


def report_job(summary: dict, out_dir) -> None:
    """The job's lines in the log: what ran and what it did, the seed's numbers beside ours."""
    from initlab.job import log_line

    log.info(log_line(summary))
    for row in summary.get("reference", {}).get("rows", []):
        log.info("  %s: seed says %s, measured %s", row["quantity"], fmt(row["seed"]),
                 fmt(row["measured"]))
    log.info("wrote %s", out_dir)


def _recorded(record, out_dir: str, settings: dict, error: str) -> None:
    """Record a failure; a directory that cannot be written is only logged."""
    try:
        record(out_dir, settings, error)
    except OSError as err:
        log.error("cannot record the failure in %s: %s", out_dir, err.strerror or err)


@contextmanager
def _argv(args: list[str]):
    """Hydra reads ``sys.argv``; give it ``args`` for the call, then put it back."""
    saved = sys.argv
    sys.argv = [saved[0] if saved and saved[0] else "initlab", *args]
    try:
        yield
    finally:
        sys.argv = saved


def _finished(directory: Path) -> int:
    """Jobs under ``directory`` whose summary.json says ok."""
    count = 0
    for path in [directory / "summary.json", *directory.glob("*/summary.json")]:
        try:
            count += json.loads(path.read_text()).get("status") == "ok"
        except (OSError, ValueError, AttributeError):
            continue
    return count


def _interrupted() -> None:
    """After Ctrl-C: one line, the report of what finished, exit status 130."""
    logging.disable(logging.CRITICAL)  # no more log lines from jobs being torn down
    where = dict(callbacks.started)
    if not where:
        print("initlab: interrupted; no job had started", file=sys.stderr)
        raise SystemExit(130)
    directory = Path(where["dir"]).absolute()
    done, planned = _finished(directory), where.get("jobs")
    jobs = f"{done} of {planned}" if planned else f"{done}"
    tail = f"results: {directory}"
    if where.get("mode") == "sweep" and where.get("report") and done:
        try:
            from initlab.report import write_report

            tail = f"report: {write_report(directory)}"
        except BaseException as exc:  # noqa: BLE001 - a second Ctrl-C, or a report failure
            tail = f"no report ({first_line(exc)}); results: {directory}"
    noun = "job" if planned == 1 else "jobs"
    print(f"initlab: interrupted; {jobs} {noun} finished; {tail}", file=sys.stderr)
    raise SystemExit(130)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``initlab`` and ``python -m initlab``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    callbacks.started.clear()
    try:
        try:
            check_args(args)
            check_output_dir(args)
        except UsageError as exc:
            print(f"initlab: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        with _argv(args):
            task()
    except KeyboardInterrupt:
        _interrupted()


if __name__ == "__main__":
    main()
