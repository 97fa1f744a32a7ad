"""Put initlab's ``experiments/`` on Hydra's search path (the config group ``experiments``).

Hydra loads every ``SearchPathPlugin`` in the ``hydra_plugins`` namespace for
every app: the console script, ``python -m initlab``, and the compose API
(``initlab.validate``, tests, notebooks). The plug-in acts only when the
primary config directory is initlab's own ``conf/``, so other Hydra apps
installed beside initlab see no change.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


def _local(path: str) -> Path | None:
    """The folder of a ``file://`` (or bare) search path entry; None for ``pkg://``."""
    if path.startswith("pkg://"):
        return None
    return Path(path.removeprefix("file://")).resolve()


class InitlabSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from initlab import paths  # light: no torch, no pandas

        try:
            conf = paths.conf_dir().resolve()
        except FileNotFoundError:
            return
        entries = search_path.get_path()
        if not any(e.path and _local(e.path) == conf for e in entries):
            return  # another Hydra app
        root = f"file://{paths.config_root()}"
        if not any(e.path == root for e in entries):
            search_path.append(provider="initlab-experiments", path=root)
