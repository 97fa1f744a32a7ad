"""Hydra callback: write the report when a run or a sweep ends.

Enabled by ``report: true`` (the default) in conf/config.yaml. Hydra 1.3
calls ``on_multirun_end`` without job results, and never when a job raised;
initlab's jobs record failures in their own ``summary.json`` and return
normally, and the report reads everything from the files, so this callback
needs nothing but the directory.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("initlab")


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
            log.info("report: %s (%.2f s)", out / "report.html", time.perf_counter() - start)
        except ReportError as exc:
            log.warning("no report: %s", exc)
        except Exception as exc:  # a report must never cost the results
            log.warning("report failed (%s: %s); rerun: initlab-report %s",
                        type(exc).__name__, exc, directory)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        started.update(dir=str(config.hydra.sweep.dir), jobs=planned_jobs(config),
                       report=self.enabled, mode="sweep")

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        started.update(dir=str(config.hydra.run.dir), jobs=1, report=self.enabled, mode="run")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._write(config.hydra.sweep.dir)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._write(config.hydra.run.dir)


#: What the run or sweep in progress is (its directory, planned job count), for the
#: command line to report on after Ctrl-C (``initlab.app``); empty before Hydra starts.
started: dict[str, Any] = {}


def planned_jobs(config: DictConfig) -> int | None:
    """The sweep's job count, as the report plans it (``report.load.planned_overrides``)."""
    from initlab.report.load import planned_overrides

    plan = planned_overrides(config)
    return None if plan is None else len(plan)
