"""What the command line's schema allows, key by key: whether a dotted key exists
(``init.foo`` does not), whether it is a scheme's typed parameter, whether a plug-in takes
it, and whether a value fits the key's type. ``initlab.validate`` asks these before it
composes any job."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from omegaconf import OmegaConf

from initlab import config
from initlab.usage import UsageError, one_line, text, type_message


def typed_param(key: str) -> bool:
    """``init.std``: a scheme's or an activation's typed parameter (not ``init.params.x``)."""
    family, _, param = key.partition(".")
    return family in ("init", "activation") and bool(param) and "." not in param \
        and param not in ("name", "_target_", "params")


def check_plugin_keys(cfg, keys: list[str]) -> None:
    """A typed parameter the command line gives a plug-in that does not take it (the
    plug-in gets only the ones it takes: ``config._group``) is refused, not dropped."""
    for key in keys:
        family, _, param = key.partition(".")
        node = cfg[family]
        if not node.get("_target_") or node.get(param) is None:
            continue
        takes = config.plugin_params(family, node.name)  # registered by config.check
        if takes is not None and param not in takes:
            raise UsageError(f"{key}={text(node.get(param))} does not apply to "
                             f"{family}={node.name!r} (a plug-in, {node._target_}); its "
                             f"parameters: {', '.join(takes) or 'none'}")


def unknown_parameter(key: str) -> bool:
    """``init.foo``: a key under a group or node of the schema that the schema lacks."""
    parts = key.split(".")
    node = config.Config
    for part in parts:
        if not is_dataclass(node):
            return False  # under a dict (params, reference): anything goes
        known = {f.name: f for f in fields(node)}
        if part not in known:
            return len(parts) > 1
        node = node_type(known[part].type)
    return False


def node_type(hint: Any) -> Any:
    """A schema field's type, ``X | None`` unwrapped (``train``); None when it is not one
    type (a dict, ``Any``)."""
    if isinstance(hint, type):
        return hint
    args = [a for a in getattr(hint, "__args__", ()) if a is not type(None)]
    return args[0] if len(args) == 1 and is_dataclass(args[0]) else None


def check_types(key: str, values: list[Any]) -> None:
    """Each swept value fits the schema's type for ``key`` (depth=10,abc -> 'abc' refused)."""
    schema = OmegaConf.structured(config.Config)
    head = key.partition(".")[0]
    if head != key and head in schema and schema[head] is None:  # an optional node, off
        schema[head] = OmegaConf.structured(node_type(
            {f.name: f.type for f in fields(config.Config)}[head]))
    for v in values:
        try:
            OmegaConf.update(schema, key, v, merge=True)
        except Exception as exc:
            msg = type_message(key, v, exc) or f"{key}={v!r}: {one_line(exc)}"
            raise UsageError(msg) from None
