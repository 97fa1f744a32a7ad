"""Hydra launcher ``fused``: the basic (serial) launcher, plus shared draws across jobs.

Before running a batch of jobs it composes each job's config, groups the
jobs that differ only in scheme and activation, and runs each group as one
engine pass (``initlab.chain.run_many``): each layer's base matrices are
drawn once for all of them. Every job then runs as usual and finds its
result ready, so the job files, the logs and the report are exactly those of
separate runs. It is initlab's default launcher; ``hydra/launcher=basic``
runs every job on its own. Hydra looks for launchers in ``hydra_plugins``.
"""
# No `from __future__ import annotations`: Hydra imports plugin modules outside sys.modules,
# where dataclasses cannot resolve string annotations.


import logging
from collections.abc import Sequence
from dataclasses import dataclass

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn

log = logging.getLogger(__name__)


@dataclass
class FusedLauncherConf:
    _target_: str = "hydra_plugins.initlab_launcher.fused_launcher.FusedLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="fused", node=FusedLauncherConf,
                             provider="initlab")


class FusedLauncher(BasicLauncher):
    def __init__(self) -> None:
        super().__init__()

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from initlab import fusion

        try:
            configs = [self.hydra_context.config_loader.load_sweep_config(self.config, list(o))
                       for o in job_overrides]
            saved = fusion.precompute(configs)
            if saved:
                log.info(f"Shared draws: {len(job_overrides)} jobs in {saved} engine pass"
                         f"{'es' if saved != 1 else ''}")
        except Exception as exc:  # never worse than the basic launcher
            log.warning(f"shared draws skipped ({type(exc).__name__}: {exc})")
        try:
            return super().launch(job_overrides, initial_job_idx)
        finally:
            fusion.clear()
