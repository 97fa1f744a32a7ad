"""Hydra launcher ``fused``: the basic (serial) launcher, plus shared engine passes across jobs.

It composes every job's config first, plans each job that builds (``initlab.job.Job``,
chain or model) and hands them all to ``initlab.job.run_jobs``, which runs the chain
jobs that differ only in scheme and activation as one engine pass (each layer's base
matrices drawn once for all of them), cuts depth sweeps without gradients from the
deepest run, probes each model, and writes every job's directory.
Then each job goes through Hydra's own ``run_job``, as under the basic
launcher, so ``.hydra/`` files, job logs, callbacks and ``JobReturn``s are
Hydra's usual ones: the task it runs only logs what was written. A job whose
config does not build a spec runs the app's own task, which records its error.

It is initlab's default launcher; ``hydra/launcher=basic`` runs every job on
its own. Hydra looks for launchers in ``hydra_plugins``.
"""
# No `from __future__ import annotations`: Hydra imports plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from omegaconf import DictConfig, OmegaConf, open_dict

from initlab import interrupts
from initlab.callbacks import own_format

log = logging.getLogger(__name__)
jobs_log = logging.getLogger("initlab")


@dataclass
class FusedLauncherConf:
    _target_: str = "hydra_plugins.initlab_launcher.fused_launcher.FusedLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="fused", node=FusedLauncherConf,
                             provider="initlab")


def job_dir(cfg: DictConfig) -> Path:
    """The directory Hydra's ``run_job`` gives this sweep job (sweep dir / subdir)."""
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    hydra_config.set_config(cfg)  # the subdir may interpolate ${hydra:...}
    try:
        return Path(os.path.abspath(os.path.join(str(OmegaConf.select(cfg, "hydra.sweep.dir")),
                                                 str(OmegaConf.select(cfg, "hydra.sweep.subdir")))))
    finally:
        hydra_config.cfg = previous


def _mark(cfg: DictConfig) -> None:
    """Write the job's ``.hydra/overrides.yaml`` before any of its files, as Hydra's own
    ``run_job`` will again later: a sweep killed in between still has every finished job
    directory tied to its planned job (the report matches on it). A directory that cannot
    be written is left to ``run_jobs``, which records the job as failed."""
    folder = job_dir(cfg) / ".hydra"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(list(cfg.hydra.overrides.task)),
                       folder / "overrides.yaml")
    except OSError:
        pass


def plan_job(cfg: DictConfig):
    """The job's ``initlab.job.Job`` (any kind), or None when its config does not build (the
    app's task says why and records it)."""
    from initlab import config

    try:
        return config.job_from_config(cfg, job_dir(cfg), sweep=True)
    except Exception:  # noqa: BLE001  the app's task reports and records it
        return None


def logging_task(summary: dict[str, Any] | None):
    """A task function for Hydra's ``run_job`` that reports a job ``run_jobs`` has written."""

    def task(cfg: DictConfig) -> dict[str, Any] | None:
        from initlab import interrupts
        from initlab.app import report_job

        interrupts.pause("bookkeeping")  # tests only: inside Hydra's run_job
        if summary is None or summary.get("status") != "ok":
            return None  # run_jobs logged and recorded the failure
        report_job(summary, HydraConfig.get().runtime.output_dir)
        return summary

    return task


def compose_once(loader) -> None:
    """Let a job's config be composed once where Hydra composes it twice.

    Hydra's sweeper composes every job's config to validate the batch, then hands the
    overrides to the launcher, which composes each again (about 0.15 s each: a third of
    a 15-job sweep's overhead). The config the validation composed is kept and handed,
    once, to the launcher's call with the same overrides; nothing else changes.
    """
    if getattr(loader, "_initlab_compose_once", False):
        return
    compose = loader.load_sweep_config
    kept: dict[tuple[str, ...], DictConfig] = {}

    def load_sweep_config(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        key = tuple(sweep_overrides)
        if key in kept:
            return kept.pop(key)
        cfg = compose(master_config, sweep_overrides)
        kept[key] = cfg
        return cfg

    loader.load_sweep_config = load_sweep_config
    loader._initlab_compose_once = True
    loader._initlab_kept = kept  # emptied after each batch (``FusedLauncher.launch``)


class FusedLauncher(BasicLauncher):
    def __init__(self) -> None:
        super().__init__()

    def setup(self, *, hydra_context, task_function, config) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        compose_once(hydra_context.config_loader)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        setup_globals()
        assert self.hydra_context is not None and self.config is not None
        assert self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally")
        configs = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            interrupts.pause("compose")  # tests only: a job's config composed
            with open_dict(cfg):
                cfg.hydra.job.id = idx
                cfg.hydra.job.num = idx
            configs.append(cfg)
        getattr(self.hydra_context.config_loader, "_initlab_kept", {}).clear()
        for cfg in configs:
            _mark(cfg)
        written = self._run_planned(configs)
        start = time.perf_counter()
        runs = []
        for cfg, (planned, summary) in zip(configs, written, strict=True):
            task = logging_task(summary) if planned else self.task_function
            status = "unplanned" if not planned else (summary or {}).get("status", "failed")
            runs.append(self._hydra_job(cfg, task, status))
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        unplanned = sum(not planned for planned, _ in written)
        what = ("Hydra's job bookkeeping" if not unplanned else
                f"Hydra's job bookkeeping and {unplanned} job{'s' if unplanned > 1 else ''} "
                "run one by one by the app's task")
        with own_format(jobs_log):
            jobs_log.info(f"{what}: {time.perf_counter() - start:.2f} s for {len(configs)} jobs")
        return runs

    def _run_planned(self, configs: list) -> list:
        """(planned, summary) per job: every job that builds runs through ``run_jobs``."""
        from initlab.job import plan_passes, run_jobs, total_work
        from initlab.progress import progress_bar

        plans = [plan_job(cfg) for cfg in configs]
        batch = [p for p in plans if p is not None]
        if not batch:
            return [(False, None)] * len(configs)
        passes = len(plan_passes([p.spec for p in batch]))
        with own_format(jobs_log):
            jobs_log.info(f"Shared draws: {len(batch)} jobs in {passes} pass"
                          f"{'es' if passes != 1 else ''}")
            bar = progress_bar(configs[0].get("progress", "auto"), total_work(batch), "sweep")
            start = time.perf_counter()
            try:
                done = run_jobs(batch, progress=bar.update if bar else None)
            finally:
                if bar is not None:
                    bar.close()
            seconds = time.perf_counter() - start
            files = sum(s["seconds"]["total"] - s["seconds"]["engine"] for s in done
                        if s.get("status") == "ok")
            jobs_log.info(f"Ran {len(batch)} jobs in {seconds:.2f} s: measuring (and training) "
                          f"{seconds - files:.2f} s, job files {files:.2f} s")
        summaries = iter(done)
        return [(p is not None, next(summaries) if p is not None else None) for p in plans]

    def _hydra_job(self, cfg: DictConfig, task, status: str) -> JobReturn:
        """Hydra's bookkeeping for one job (its .hydra/ files, its log); when it cannot be
        written (a file in the way, a full disk) one line, unless the job already failed
        (``status``: ok, failed, or unplanned: the app's task runs the job inside)."""
        try:
            return run_job(hydra_context=self.hydra_context, task_function=task, config=cfg,
                           job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        except Exception as exc:  # noqa: BLE001  e.g. PermissionError, a file in the way
            # the job's log may be the file that fails: back to the sweep's logging first
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            from initlab.job import problem

            why, num = problem(exc, job_dir(cfg)), cfg.hydra.job.num
            if status == "ok":
                jobs_log.error("job %s: Hydra's bookkeeping failed: %s; its results are whole",
                               num, why)
            elif status == "unplanned":
                jobs_log.error("job %s failed: %s", num, why)
            return JobReturn(overrides=list(cfg.hydra.overrides.task), status=JobStatus.COMPLETED,
                             _return_value=None)
