"""Check command-line overrides before Hydra launches any job.

Hydra reports a bad override with a multi-line message (and, inside a
multirun, only when that job's turn comes). Here every override — and every
value of a sweep — is checked up front against the config groups and the
``ChainSpec`` rules, and the first problem becomes one ``UsageError`` line
naming the bad value and what is allowed.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from initlab import config, paths
from initlab.spec import SpecError, resolve_device

GROUPS = ("init", "activation", "experiments")


class UsageError(Exception):
    """A bad command line; the message is one line."""


def searchpath_override() -> str:
    """Hydra override that adds ``experiments/`` (as the group ``experiments``)."""
    return f"hydra.searchpath=[file://{paths.config_root()}]"


def _one_line(exc: BaseException) -> str:
    """First line of an exception, with the first line of its cause when it has one."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    if re.search(r"Key '[^']*' (is )?not in", f"{exc} {exc.__cause__}"):
        settings = ", ".join(f.name for f in fields(config.Config))
        return f"{text} No such setting; settings are: {settings}"
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        text += ": " + str(cause).strip().splitlines()[0]
    return text


def _values(override) -> list[Any] | None:
    """The values an override takes (one, or each of a sweep); None when not listable (glob)."""
    if not override.is_sweep_override():
        return [override.value()]
    try:
        return list(override.sweep_iterator())
    except Exception:
        return None


def check_args(argv: list[str]) -> None:
    """Raise UsageError for the first bad override in ``argv`` (Hydra's command line)."""
    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return
    try:
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except Exception as exc:
        raise UsageError(_one_line(exc)) from None

    listed = []
    for o in overrides:
        key = o.key_or_group
        if key.startswith("hydra.") or key == "hydra":
            continue
        values = _values(o)
        group = key.split("@")[0]
        if group in GROUPS or group.startswith("experiments/"):
            allowed = paths.group_options(group)
            for v in values or []:
                if v is not None and str(v) not in allowed:
                    raise UsageError(
                        f"{group}={v} is not an option; allowed: {', '.join(allowed)}"
                    )
        if values is not None:
            listed.append((o, values))

    # Compose the first combination once: unknown keys and wrong types surface here.
    first = [f"{o.get_key_element()}={_text(vals[0])}" for o, vals in listed if vals]
    try:
        cfg = _compose(first)
    except Exception as exc:
        raise UsageError(_one_line(exc)) from None
    _check_spec(cfg, "")

    # Then every other swept value of a scalar key, one at a time.
    for o, values in listed:
        key = o.key_or_group
        if key.split("/")[0] in GROUPS or len(values) < 2:
            continue
        for v in values[1:]:
            trial = cfg.copy()
            try:
                OmegaConf.update(trial, key, v, merge=True)
            except Exception as exc:
                raise UsageError(f"{key}={v!r}: {_one_line(exc)}") from None
            _check_spec(trial, key)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    return str(value)


def _compose(overrides: list[str]):
    config.register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(paths.conf_dir())):
            return compose("config", overrides=[*overrides, searchpath_override()])
    finally:
        GlobalHydra.instance().clear()


def _check_spec(cfg, key: str) -> None:
    try:
        spec = config.spec_from_config(cfg)
        config.thresholds_from_config(cfg)
        resolve_device(spec.device)
    except (SpecError, ValueError) as exc:
        raise UsageError(_one_line(exc)) from None

