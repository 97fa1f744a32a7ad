"""A job's settings as its own files give them, and their labels (no live registry).

``summary.json`` carries the settings in its ``settings`` dict (older files: at
the top level); Hydra's overrides (``init.std=0.01``) name them for a job that
never wrote a summary. A family (``init``, ``activation``) is a name plus
``<family>_<param>`` keys; a label is ``normal(std=0.01)``.
"""

from __future__ import annotations

from typing import Any

#: Settings families: the name plus its ``<family>_<param>`` keys. ``model`` (a model job's
#: ``model_channels``, ...; chain jobs have none) comes first: a swept model is the first axis.
FAMILIES = ("model", "init", "activation", "bias")
#: Settings a model other than the chain derives from itself (its layer count, its widest
#: layer): shown per job, never an axis of their own.
DERIVED = ("depth", "width")
#: Plain settings, in the order they are preferred as axes; unknown ones follow, sorted.
PLAIN = ("depth", "width", "dtype", "weights", "gradients", "trials", "batch", "input_correlation",
         "seed", "device")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def settings_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The flat settings of a summary: its ``settings`` dict, else its top-level setting keys."""
    source = summary.get("settings")
    if not isinstance(source, dict):
        source = summary
    keep = set(PLAIN) | set(FAMILIES)
    return {k: v for k, v in source.items()
            if k in keep or any(k.startswith(f + "_") for f in FAMILIES)}


def params(settings: dict[str, Any], family: str) -> dict[str, Any]:
    """``{param: value}`` of a family (``init_std`` -> ``std``)."""
    return {k[len(family) + 1:]: v for k, v in settings.items() if k.startswith(family + "_")}


def label(settings: dict[str, Any], family: str, shown: set[str] | None = None) -> str:
    """``normal(std=0.01)``: the family's name with its parameters (only ``shown`` if given)."""
    name = str(settings.get(family))
    extra = {k: v for k, v in sorted(params(settings, family).items())
             if shown is None or k in shown}
    return name + ("(" + ", ".join(f"{k}={v}" for k, v in extra.items()) + ")" if extra else "")


def from_overrides(overrides: list[str]) -> dict[str, Any]:
    """Settings named by Hydra overrides: ``init.std=0.01`` -> ``{"init_std": 0.01}``."""
    import yaml

    out: dict[str, Any] = {}
    for line in overrides:
        key, sep, value = line.lstrip("+~").partition("=")
        if not sep or "/" in key or key.startswith("hydra"):
            continue
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        parts = key.split(".")
        if parts[0] in FAMILIES and len(parts) == 2:
            key = parts[0] if parts[1] == "name" else f"{parts[0]}_{parts[1]}"
        elif len(parts) != 1 or key not in PLAIN:  # report=, progress=, plots=: no settings
            continue
        out[key] = parsed
    return out


