"""The command line: a thin Hydra shell around ``initlab.job.run_job``.

``initlab [overrides]`` runs one chain; ``initlab -m a=1,2 b=x,y`` sweeps;
``initlab experiments=journey`` runs a preset. Before Hydra launches anything,
``initlab.validate`` checks every override (every swept value too), so bad
input ends in one line and a non-zero exit, before any job has run.

A job that fails anyway (out of memory, a bug) writes ``status: failed`` into
its ``summary.json`` and returns normally, so the other jobs of a sweep run
and the report (``initlab.callbacks``) lists it; a single run that fails
exits with status 1.
"""

from __future__ import annotations

import logging
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from initlab import config, paths
from initlab.spec import SpecError
from initlab.validate import UsageError, check_args, searchpath_override

log = logging.getLogger("initlab")
config.register()


def _progress(cfg: DictConfig, total: int, label: str):
    """A tqdm bar on a terminal (``progress: auto``), or None when quiet."""
    mode = str(cfg.progress).lower()
    tty = sys.stderr.isatty() and "PYTEST_CURRENT_TEST" not in os.environ
    if mode == "false" or (mode == "auto" and not tty):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit="trial-layer", leave=False, file=sys.stderr)


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
    from initlab.job import describe, record_failure, run_job  # pandas, matplotlib
    from initlab.summary import fmt

    hydra_cfg = HydraConfig.get()
    out_dir = hydra_cfg.runtime.output_dir
    _share_cores(hydra_cfg)
    try:
        spec = config.spec_from_config(cfg)
        thresholds = config.thresholds_from_config(cfg)
    except (SpecError, ValueError) as exc:
        print(f"initlab: error: {exc}", file=sys.stderr)
        if hydra_cfg.mode == RunMode.RUN:
            raise SystemExit(2) from None
        # In a sweep the other jobs go on; this one is listed by the report.
        settings = {k: OmegaConf.select(cfg, k) for k in ("depth", "width", "trials", "seed")}
        record_failure(out_dir, {"init": cfg.init.name, "activation": cfg.activation.name,
                                 **settings}, exc)
        return None
    reference = OmegaConf.to_container(cfg.reference, resolve=True) if cfg.reference else None
    bar = _progress(cfg, spec.trials * (spec.depth + 1), f"{spec.init}/{spec.activation}")
    try:
        summary = run_job(spec, thresholds, out_dir, reference=reference, make_plots=cfg.plots,
                          progress=bar.update if bar else None)
    except Exception as exc:  # recorded for the report; the sweep goes on
        record_failure(out_dir, spec.describe(), exc)
        log.error("job failed: %s: %s (recorded in %s/summary.json)", type(exc).__name__, exc,
                  out_dir)
        if hydra_cfg.mode == RunMode.RUN:
            raise SystemExit(1) from None
        return None
    finally:
        if bar:
            bar.close()
    log.info(describe(summary))
    for row in summary.get("reference", {}).get("rows", []):
        log.info("  %s: seed says %s, measured %s", row["quantity"], fmt(row["seed"]),
                 fmt(row["measured"]))
    log.info("wrote %s", out_dir)
    return summary


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``initlab`` and ``python -m initlab``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        check_args(args)
    except UsageError as exc:
        print(f"initlab: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    sys.argv = [sys.argv[0] or "initlab", *args, searchpath_override()]
    task()


if __name__ == "__main__":
    main()
