"""Hydra callback: write the report when a run or a sweep ends; keep job logs quiet.

Enabled by ``report: true`` (the default) in conf/config.yaml. Hydra 1.3
calls ``on_multirun_end`` without job results, and never when a job raised;
initlab's jobs record failures in their own ``summary.json`` and return
normally, and the report reads everything from the files, so this callback
needs nothing but the directory.

Each job's log file (Hydra's ``<job>/initlab.log``) is quiet when it cannot be
written (a full disk): Python's logging would print a traceback per line; here the
job's lines still reach the console, and a job that finished says in one line that
its log is incomplete (a failed job's own line already says why it failed).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("initlab")


#: initlab's own lines, as a job's log writes them (not tagged [HYDRA])
JOB_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


@contextmanager
def own_format(logger: logging.Logger):
    """While the sweep's logging is Hydra's (its [HYDRA] format on the root logger),
    ``initlab``'s lines print in a job's format on the stream Hydra's use; afterwards they
    propagate again (into each job's own log file while Hydra writes the job)."""
    root = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)
            and not isinstance(h, logging.FileHandler)]
    handler = logging.StreamHandler(root[0].stream if root else None)
    handler.setFormatter(logging.Formatter(JOB_FORMAT))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


class ReportCallback(Callback):
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)

    def _write(self, directory: str) -> None:
        if not self.enabled:
            return
        from initlab.report import ReportError, write_report

        start = time.perf_counter()
        try:
            out = write_report(Path(directory))
            started["report_dir"] = str(Path(out).absolute())
            log.info("report: %s (%.2f s)", out / "report.html", time.perf_counter() - start)
        except ReportError as exc:
            started["report_error"] = str(exc)
            log.warning("no report: %s", exc)
        except Exception as exc:  # a report must never cost the results
            started["report_error"] = f"{type(exc).__name__}: {exc}"
            log.warning("report failed (%s: %s); rerun: initlab-report %s",
                        type(exc).__name__, exc, directory)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        started.update(dir=str(config.hydra.sweep.dir), jobs=planned_jobs(config),
                       report=self.enabled, mode="sweep")

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        started.update(dir=str(config.hydra.run.dir), jobs=1, report=self.enabled, mode="run")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        with own_format(log):  # Hydra's logging again, after the jobs: not tagged [HYDRA]
            self._write(config.hydra.sweep.dir)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._write(config.hydra.run.dir)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        quiet_log_files()

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        folder = str(OmegaConf.select(config, "hydra.runtime.output_dir")) + os.sep
        lost = {path: why for path, why in lost_logs.items() if path.startswith(folder)}
        if lost and isinstance(getattr(job_return, "_return_value", None), dict):
            path, why = next(iter(lost.items()))
            log.warning("job %s: its log %s is incomplete (%s)",
                        OmegaConf.select(config, "hydra.job.num", default=0), path, why)


#: What the run or sweep in progress is (its directory, planned job count, the report
#: written or why not), for the command line to report on after it ends or is stopped
#: (``initlab.app``); empty before Hydra starts.
started: dict[str, Any] = {}

#: Log files that could not be written: path -> why (the first error), this process.
lost_logs: dict[str, str] = {}


def _why(exc: BaseException | None) -> str:
    if isinstance(exc, OSError):
        return os.strerror(exc.errno) if exc.errno else (exc.strerror or type(exc).__name__)
    return type(exc).__name__ if exc is not None else "unknown error"


def quiet_log_files() -> None:
    """Make the root logger's file handlers record a write failure instead of printing a
    traceback per line (Python's ``Handler.handleError``)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and not hasattr(handler, "_initlab_quiet"):
            def lost(record: logging.LogRecord, path: str = handler.baseFilename) -> None:
                lost_logs.setdefault(path, _why(sys.exc_info()[1]))

            handler.handleError = lost  # type: ignore[method-assign]
            handler._initlab_quiet = True  # type: ignore[attr-defined]


def planned_jobs(config: DictConfig) -> int | None:
    """The sweep's job count, as the report plans it (``report.load.planned_overrides``)."""
    from initlab.report.load import planned_overrides

    plan = planned_overrides(config)
    return None if plan is None else len(plan)
