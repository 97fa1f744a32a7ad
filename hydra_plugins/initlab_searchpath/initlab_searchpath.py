"""Put initlab's presets (``experiments/``, the config group ``experiments``) on Hydra's
search path — and nothing else.

Hydra loads every ``SearchPathPlugin`` and ``ConfigSource`` in the ``hydra_plugins``
namespace for every app: the console script, ``python -m initlab``, and the compose API
(``initlab.validate``, tests, notebooks). The search-path plug-in acts only when the
primary config directory is initlab's own ``conf/``, so other Hydra apps installed
beside initlab see no change.

``experiments/`` sits at the top of the repository, beside ``conf/``; a plain ``file://``
entry for their common folder would put the whole checkout on the search path (a
``.venv`` inside it, every past run's ``.hydra`` folder), which ``initlab --help`` then
walks and lists. The ``initlab-presets://`` source below shows Hydra that folder's
``experiments/`` subtree only.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

SCHEME = "initlab-presets"
GROUP = "experiments"


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
        root = f"{SCHEME}://{paths.config_root()}"
        if not any(e.path == root for e in entries):
            search_path.append(provider="initlab-experiments", path=root)


class InitlabPresetsSource(ConfigSource):
    """A folder's ``experiments/`` subtree as config group ``experiments``; nothing else of
    the folder is visible to Hydra."""

    def __init__(self, provider: str, path: str) -> None:
        if "://" not in path:
            path = f"{SCHEME}://{path}"
        super().__init__(provider=provider, path=path)

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def _inside(self, config_path: str) -> bool:
        first = config_path.strip("/").split("/")[0]
        return first == GROUP

    def _full(self, config_path: str) -> str:
        return os.path.realpath(os.path.join(self.path, config_path))

    def load_config(self, config_path: str) -> ConfigResult:
        name = self._normalize_file_name(config_path)
        if not (self._inside(name) and os.path.isfile(self._full(name))):
            raise ConfigLoadError(f"Config not found : {self._full(name)}")
        with open(self._full(name), encoding="utf-8") as f:
            header = ConfigSource._get_header_dict(f.read(512))
            f.seek(0)
            return ConfigResult(config=OmegaConf.load(f), path=f"{SCHEME}://{self.path}",
                                provider=self.provider, header=header)

    def available(self) -> bool:
        return os.path.isdir(self._full(GROUP))

    def is_group(self, config_path: str) -> bool:
        if config_path.strip("/") == "":
            return True
        return self._inside(config_path) and os.path.isdir(self._full(config_path))

    def is_config(self, config_path: str) -> bool:
        name = self._normalize_file_name(config_path)
        return self._inside(name) and os.path.isfile(self._full(name))

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        if config_path.strip("/") == "":
            return [GROUP] if results_filter in (None, ObjectType.GROUP) else []
        if not self.is_group(config_path):
            return []
        files: list[str] = []
        for file in os.listdir(self._full(config_path)):
            self._list_add_result(files=files, file_path=os.path.join(config_path, file),
                                  file_name=file, results_filter=results_filter)
        return sorted(set(files))
