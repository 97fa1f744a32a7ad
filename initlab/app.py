"""The command line: a thin Hydra shell around ``initlab.job.run_job``.

``initlab [overrides]`` runs one chain; ``initlab -m a=1,2 b=x,y`` sweeps;
``initlab experiments=journey`` runs a preset. Before Hydra launches anything,
``initlab.validate`` checks every override (every swept value too), so bad
input ends in one line and a non-zero exit, before any job has run.

A job that fails anyway (out of memory, a bug, a full disk) writes ``status: failed``
into its ``summary.json`` where it can and returns normally, so the other jobs of a
sweep run and the report (``initlab.callbacks``) lists it; then the sweep exits with
status 1 and one line (``initlab: 2 of 6 jobs failed; report: <dir>``); a single run
that fails exits 1 with its own line. An error Hydra itself cannot go on from (its
own files on a full disk) is one line and status 1, never its traceback.

Ctrl-C (SIGINT) and SIGTERM stop a run or a sweep wherever they land
(``initlab.interrupts``) with one line, the report of what finished, and exit status
130 or 143 (128 + the signal).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from initlab import callbacks, config, interrupts, paths
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
    from initlab.job import record_failure, run_job
    from initlab.progress import progress_bar

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


def _progress() -> tuple[Path | None, int, int | None]:
    """(directory, jobs finished, jobs planned) of the run or sweep Hydra started, if any."""
    where = callbacks.started
    if not where.get("dir"):
        return None, 0, None
    directory = Path(where["dir"]).absolute()
    planned = where.get("jobs")
    if planned is None and where.get("mode") == "sweep":  # a plan the report cannot read
        planned = sum(1 for p in directory.iterdir() if (p / ".hydra").is_dir()
                      or (p / "summary.json").exists()) if directory.is_dir() else None
    return directory, _finished(directory), planned


def _of(count: int, planned: int | None) -> str:
    """``3 of 6 jobs`` (``3 jobs`` when the plan is unknown)."""
    noun = "job" if planned == 1 else "jobs"
    return f"{count} of {planned} {noun}" if planned else f"{count} {noun}"


def _interrupted(signum: int, watch: interrupts.Watch) -> int:
    """After Ctrl-C or SIGTERM: one line, the report of what finished; 128 + the signal.
    A further signal skips (or stops) the report."""
    logging.disable(logging.CRITICAL)  # no more log lines from jobs being torn down
    code = 128 + signum
    directory, done, planned = _progress()
    if directory is None:
        print("initlab: interrupted; no job had started", file=sys.stderr)
        return code
    tail = f"results: {directory}"
    if callbacks.started.get("report") and done:
        if watch.twice:
            tail = f"no report (interrupted again); {tail}"
        elif callbacks.started.get("report_dir"):  # written after the last job finished
            tail = f"report: {callbacks.started['report_dir']}"
        else:
            tail = _report_after_stop(directory, watch, tail)
    print(f"initlab: interrupted; {_of(done, planned)} finished; {tail}", file=sys.stderr)
    return code


def _report_after_stop(directory: Path, watch: interrupts.Watch, tail: str) -> str:
    """Write the report of what finished; a further signal stops it (its temp folder goes)."""
    from initlab.report import write_report

    try:
        with watch.again():
            return f"report: {write_report(directory)}"
    except KeyboardInterrupt:
        return f"no report (interrupted again); {tail}"
    except Exception as exc:  # noqa: BLE001 - a report must not cost the line
        return f"no report ({first_line(exc)}); {tail}"


def _failures() -> int:
    """After a sweep: one line and exit status 1 when any planned job did not finish ok."""
    directory, done, planned = _progress()
    if directory is None or callbacks.started.get("mode") != "sweep" or not planned:
        return 0
    if done >= planned:
        return 0
    tail = f"results: {directory}"
    if callbacks.started.get("report_dir"):
        tail = f"report: {callbacks.started['report_dir']}"
    elif callbacks.started.get("report_error"):
        tail = f"no report ({callbacks.started['report_error']}); {tail}"
    print(f"initlab: {_of(planned - done, planned)} failed; {tail}",
          file=sys.stderr)
    return 1


def _crashed(exc: Exception) -> int:
    """Hydra itself could not go on (its own files on a full disk, say): one line, status 1,
    with what finished. ``HYDRA_FULL_ERROR=1`` (set by the user) shows the traceback."""
    from initlab.job import problem

    directory, done, planned = _progress()
    where = f"; {_of(done, planned)} finished; results: {directory}" if directory else ""
    hint = "" if isinstance(exc, OSError) else " (HYDRA_FULL_ERROR=1 shows the traceback)"
    print(f"initlab: error: {problem(exc, directory)}{hint}{where}", file=sys.stderr)
    return 1


@contextmanager
def _errors_raised():
    """Hydra prints a traceback for an error that escapes it unless ``HYDRA_FULL_ERROR=1``;
    set it for the call so the error reaches ``main`` (which prints one line), unless the
    user set it to see the traceback."""
    saved = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield saved == "1"
    finally:
        if saved is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved


def _run(args: list[str]) -> int:
    """Check the arguments, run Hydra, and say how it went; the exit status."""
    interrupts.pause("check")
    try:
        check_args(args)
        check_output_dir(args)
    except UsageError as exc:
        print(f"initlab: error: {exc}", file=sys.stderr)
        return 2
    with _argv(args), _errors_raised() as full_error:
        try:
            task()
        except SystemExit as exc:  # a single run that failed has said why in one line
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception as exc:
            if full_error:
                raise
            return _crashed(exc)
    interrupts.pause("exit")
    return _failures()


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``initlab`` and ``python -m initlab``); ``main(args)`` from Python.

    Exit status: 0; 1 when a job failed (a sweep's report lists them); 2 for bad input;
    130 after Ctrl-C, 143 after SIGTERM (the report of what finished is written first).
    As the console entry (no ``argv``) it owns the process: signals after the work is done
    are ignored until it exits. Called with ``argv`` it puts the signal handlers back.
    """
    own = argv is None
    args = list(sys.argv[1:] if own else argv)
    callbacks.started.clear()
    with interrupts.watching(restore=not own) as watch:
        try:
            code = _run(args)
        except KeyboardInterrupt:  # raised by the watch, or by code (taken as Ctrl-C)
            code = None
        signum = watch.settle() or (signal.SIGINT if code is None else None)
        if signum is not None:
            code = _interrupted(signum, watch)
            if not own:
                logging.disable(logging.NOTSET)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
