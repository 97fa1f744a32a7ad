"""The command line: a thin Hydra shell around ``initlab.job.run_job``.

``initlab [overrides]`` runs one chain; ``initlab -m a=1,2 b=x,y`` sweeps;
``initlab experiments=journey`` runs a preset. Before Hydra launches anything,
``initlab.validate`` checks every override (every swept value too), so bad
input ends in one line and a non-zero exit, before any job has run.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from initlab import config, paths
from initlab.spec import SpecError
from initlab.validate import UsageError, check_args, searchpath_override

log = logging.getLogger("initlab")
config.register()


@hydra.main(version_base="1.3", config_path=str(paths.conf_dir()), config_name="config")
def task(cfg: DictConfig) -> dict:
    """One Hydra job: build the spec, run it, write the files of the contract."""
    from initlab.job import describe, fmt, run_job  # pandas/matplotlib: only once a job runs

    out_dir = HydraConfig.get().runtime.output_dir
    try:
        spec = config.spec_from_config(cfg)
        thresholds = config.thresholds_from_config(cfg)
    except (SpecError, ValueError) as exc:
        print(f"initlab: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    reference = OmegaConf.to_container(cfg.reference, resolve=True) if cfg.reference else None
    summary = run_job(spec, thresholds, out_dir, reference=reference, make_plots=cfg.plots)
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
