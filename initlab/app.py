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
from omegaconf import DictConfig, OmegaConf

from initlab import callbacks, config, paths
from initlab.spec import ENGINE_SETTINGS, SpecError
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
    """One Hydra job: build the spec, run it, write the files of the contract."""
    from initlab.job import log_line, progress_bar, run_job, wants_plots  # pandas, mpl
    from initlab.summary import fmt

    hydra_cfg = HydraConfig.get()
    out_dir = hydra_cfg.runtime.output_dir
    _share_cores(hydra_cfg)
    if config.is_model(cfg):  # model=conv_chain, simple_cnn, a user's: the probe
        return _model_task(cfg, hydra_cfg, out_dir)
    try:
        spec = config.spec_from_config(cfg)
        thresholds = config.thresholds_from_config(cfg)
    except (SpecError, ValueError) as exc:
        print(f"initlab: error: {exc}", file=sys.stderr)
        if hydra_cfg.mode == RunMode.RUN:
            raise SystemExit(2) from None
        # In a sweep the other jobs go on; this one is listed by the report.
        known = {"init": cfg.init.name, "activation": cfg.activation.name,
                 **{k: OmegaConf.select(cfg, k) for k in ENGINE_SETTINGS}}
        _record_failure(out_dir, {**known, "settings": known}, exc)
        return None
    reference = OmegaConf.to_container(cfg.reference, resolve=True) if cfg.reference else None
    plots = wants_plots(cfg.plots, sweep=hydra_cfg.mode == RunMode.MULTIRUN)
    bar = progress_bar(cfg.progress, spec.trials * (spec.depth + 1),
                       f"{spec.init}/{spec.activation}")
    try:
        summary = run_job(spec, thresholds, out_dir, reference=reference, make_plots=plots,
                          progress=bar.update if bar else None)
    except (Exception, SystemExit) as exc:  # recorded for the report; the sweep goes on
        # SystemExit: a plug-in that calls sys.exit fails its job, not the sweep.
        _record_failure(out_dir, {**spec.describe(), "settings": spec.describe()}, exc)
        problem = _problem(exc)
        if hydra_cfg.mode == RunMode.RUN:  # one line, on stderr only (the log goes to stdout)
            print(f"initlab: error: {problem}", file=sys.stderr)
            raise SystemExit(1) from None
        log.error("%s (recorded in %s/summary.json)", problem, out_dir)
        return None
    finally:
        if bar:
            bar.close()
    log.info(log_line(summary))
    for row in summary.get("reference", {}).get("rows", []):
        log.info("  %s: seed says %s, measured %s", row["quantity"], fmt(row["seed"]),
                 fmt(row["measured"]))
    log.info("wrote %s", out_dir)
    return summary


def _model_task(cfg: DictConfig, hydra_cfg, out_dir: str) -> dict | None:
    """``task`` for a model (``initlab.modeljob``): the same failure rules as a chain job."""
    from initlab import job
    from initlab.modeljob import known_settings, run_model_job

    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        spec = config.model_spec_from_config(cfg)
        thresholds = config.thresholds_from_config(cfg)
    except (SpecError, ValueError) as exc:
        print(f"initlab: error: {exc}", file=sys.stderr)
        if not sweep:
            raise SystemExit(2) from None
        known = known_settings(cfg)
        _record_failure(out_dir, {**known, "settings": known}, exc)
        return None
    reference = OmegaConf.to_container(cfg.reference, resolve=True) if cfg.reference else None
    wants = getattr(job, "wants_plots", None)
    plots = wants(cfg.plots, sweep=sweep) if wants else bool(cfg.plots)
    try:
        summary = run_model_job(spec, thresholds, out_dir, reference=reference,
                                make_plots=plots)
    except (Exception, SystemExit) as exc:  # recorded for the report; the sweep goes on
        _record_failure(out_dir, {**spec.describe(), "settings": spec.describe()}, exc)
        problem = _problem(exc)
        if not sweep:
            print(f"initlab: error: {problem}", file=sys.stderr)
            raise SystemExit(1) from None
        log.error("%s (recorded in %s/summary.json)", problem, out_dir)
        return None
    log.info("model=%s %s", summary["model"], job.log_line(summary))
    log.info("wrote %s", out_dir)
    return summary


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _problem(exc: BaseException) -> str:
    """A failed job in one line: the file that could not be written and why, or the error."""
    if isinstance(exc, OSError) and (exc.filename2 or exc.filename):
        path = exc.filename2 or exc.filename  # a rename's target, not its hidden temp file
        return f"cannot write {path} ({exc.strerror or type(exc).__name__}); job failed"
    return f"job failed: {type(exc).__name__}: {_first(exc)}"


def _record_failure(out_dir: str, settings: dict, exc: BaseException) -> None:
    """``record_failure``, except that a directory that cannot be written is only logged."""
    from initlab.job import record_failure

    try:
        record_failure(out_dir, settings, exc)
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
            tail = f"no report ({_first(exc)}); results: {directory}"
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
