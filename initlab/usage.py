"""One-line messages for a bad command line, in initlab's words (``initlab.validate`` raises
them as ``UsageError``): Hydra's multi-line composition errors cut to the line that
matters, a wrong type, a parameter the chosen scheme does not take."""

from __future__ import annotations

import difflib
import re
from dataclasses import fields
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from initlab import config


class UsageError(Exception):
    """A bad command line; the message is one line."""


def one_line(exc: BaseException) -> str:
    """First line of an exception, with the first line of its cause when it has one."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    added = re.search(r"Could not override '((?:init|activation)\.params\.[^']+)'", str(exc))
    if added:
        key = added.group(1)
        return f"{key}: no such parameter yet; add a plug-in's parameter with a +: +{key}=..."
    append = re.search(r"Could not override '([^']+)'.*To append to your config use (.+)$",
                       str(exc), re.S | re.M)
    if append and "Dict[" in str(exc.__cause__):  # a dict (model.params) takes new keys with +
        key, line = append.groups()
        return f"{key}: has no such key yet; add keys with a +: {line}"
    if re.search(r"Key '[^']*' (is )?not in", f"{exc} {exc.__cause__}"):
        settings = ", ".join(f.name for f in fields(config.Config))
        return f"{text} No such setting; settings are: {settings}"
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        text += ": " + str(cause).strip().splitlines()[0]
    return text


_TYPE_WORDS = {
    "Integer": "an integer",
    "Float": "a number",
    "bool": "true or false",
}


def type_message(key: str, value: Any, exc: BaseException) -> str | None:
    """``depth='abc' is not allowed; depth must be an integer`` for a schema type error."""
    text = f"{exc} {exc.__cause__ or ''}"
    for marker, words in _TYPE_WORDS.items():
        if marker in text:
            return f"{key}={value!r} is not allowed; {key} must be {words}"
    return None


def not_an_option(group: str, option: Any, options: list[str]) -> str:
    """``init=kaimnig is not an option; did you mean init=kaiming? allowed: ...``"""
    near = difflib.get_close_matches(str(option), options, n=1)
    hint = f"did you mean {group}={near[0]}? " if near else ""
    return f"{group}={option} is not an option; {hint}allowed: {', '.join(options)}"


def tidy(exc: BaseException, overrides) -> str:
    """A composition error as one line, in initlab's words where we can tell what went wrong."""
    for o in overrides:
        if o.is_sweep_override() or o.key_or_group.startswith("hydra"):
            continue
        if f"override {o.input_line}" in str(exc):
            msg = type_message(o.key_or_group, o.value(), exc)
            if msg:
                return msg
    for o in overrides:  # train.lr=... with training off: the node is null
        if o.key_or_group.startswith("train.") and "NoneType" in str(exc):
            return (f"{o.input_line} sets a training setting, but training is off; choose a "
                    "training run too: train=digits, train=teacher or train=custom")
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'", str(exc))
    if missing:  # a config group option that does not exist (hydra/launcher=nope)
        group, option = missing.groups()
        try:
            options = GlobalHydra.instance().config_loader().get_group_options(group)
        except Exception:
            options = []
        if options:
            return not_an_option(group, option, options)
    return one_line(exc)


def no_such_parameter(cfg, key: str, value: Any) -> str:
    """One line for ``init.foo=1``: the parameters of the chosen scheme (or of that node)."""
    group, _, param = key.partition(".")
    if group in ("init", "activation") and "." not in param:
        name = cfg[group].name
        allowed = _scheme_params(name) if group == "init" else _activation_params(name)
        return (f"{group}.{param}={text(value)} does not apply to {group}={name!r}; its "
                f"parameters: {', '.join(allowed) or 'none'}")
    parent = key.rsplit(".", 1)[0]
    node = OmegaConf.select(cfg, parent)
    allowed = ", ".join(node.keys()) if hasattr(node, "keys") else ""
    return f"{key}: no such setting; the settings of {parent} are: {allowed}"


def _scheme_params(name: str) -> tuple[str, ...]:
    from initlab.schemes import SCHEMES, scheme_params

    return scheme_params(name) if name in SCHEMES else ()


def _activation_params(name: str) -> tuple[str, ...]:
    from initlab.activations import ACTIVATIONS, activation_params

    return (activation_params(name) or ()) if name in ACTIVATIONS else ()


def text(value: Any) -> str:
    """A value as an override writes it (``null`` for None)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    return str(value)
