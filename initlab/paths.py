"""Where initlab's Hydra configs live, in a source checkout and in an installed wheel.

``conf/`` and ``experiments/`` sit at the top of the repository. A wheel
carries copies inside the package, at ``initlab/_config/{conf,experiments}``
(see ``[tool.hatch.build.targets.wheel.force-include]`` in pyproject.toml).
An editable install or a plain checkout has no ``_config`` and reads the
repository's own folders, so edits there take effect at once.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def config_root() -> Path:
    """The folder holding ``conf/`` and ``experiments/``."""
    for root in (PACKAGE_DIR / "_config", PACKAGE_DIR.parent):
        if (root / "conf" / "config.yaml").is_file():
            return root
    raise FileNotFoundError(
        f"initlab's configs are missing: looked for conf/config.yaml in {PACKAGE_DIR / '_config'} "
        f"and {PACKAGE_DIR.parent}; reinstall initlab"
    )


def conf_dir() -> Path:
    """The primary config directory (``conf/``)."""
    return config_root() / "conf"


def experiments_dir() -> Path:
    """The preset directory, the config group ``experiments``."""
    return config_root() / "experiments"


def group_options(group: str) -> list[str]:
    """Options of a config group, e.g. ``init`` -> [kaiming, normal, ...]."""
    base = experiments_dir().parent if group.split("/")[0] == "experiments" else conf_dir()
    folder = base / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
