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
#: Models whose layers have a mean-field theory (the chain, and valid convolution chains);
#: here, with no torch, so the report and the figures read it as the theory does.
THEORY_MODELS = ("chain", "conv_chain")
#: Plain settings, in the order they are preferred as axes; unknown ones follow, sorted.
PLAIN = ("depth", "width", "dtype", "weights", "gradients", "trials", "batch", "input_correlation",
         "seed", "device")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def settings_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The flat settings of a summary: its ``settings`` dict, else its top-level setting keys
    (a model's ``inputs`` and a training job's ``train_*`` among them)."""
    source = summary.get("settings")
    if not isinstance(source, dict):
        source = summary
    keep = set(PLAIN) | set(FAMILIES) | {"inputs"}
    return {k: v for k, v in source.items()
            if k in keep or any(k.startswith(f + "_") for f in (*FAMILIES, "train"))}


def params(settings: dict[str, Any], family: str) -> dict[str, Any]:
    """``{param: value}`` of a family (``init_std`` -> ``std``)."""
    return {k[len(family) + 1:]: v for k, v in settings.items() if k.startswith(family + "_")}


def label(settings: dict[str, Any], family: str, shown: set[str] | None = None) -> str:
    """``normal(std=0.01)``: the family's name with its parameters (only ``shown`` if given)."""
    name = str(settings.get(family))
    extra = {k: v for k, v in sorted(params(settings, family).items())
             if shown is None or k in shown}
    return name + ("(" + ", ".join(f"{k}={v}" for k, v in extra.items()) + ")" if extra else "")


#: The node keys of a family that are not its parameters.
_NOT_PARAMS = ("name", "_target_", "params")


def from_overrides(overrides: list[str]) -> dict[str, Any]:
    """Settings named by Hydra overrides, spelled as a job's settings: ``init=normal`` ->
    ``{"init": "normal"}``, ``init.std=0.01`` -> ``{"init_std": 0.01}``, ``model._target_=m.f``
    -> ``{"model": "custom", "model_target": "m.f"}`` (as ``ModelSpec.describe`` has it)."""
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
        if parts == ["model", "_target_"]:
            out.update(model="custom", model_target=parsed)
        elif parts == ["model", "input_shape"] and isinstance(parsed, list):
            out["model_input_shape"] = "x".join(map(str, parsed))  # as describe() has it
        elif parts[0] in FAMILIES and (len(parts) == 1 or parts[1:] == ["name"]):
            out[parts[0]] = parsed
        elif parts[0] in FAMILIES and len(parts) == 2 and parts[1] not in _NOT_PARAMS:
            out[f"{parts[0]}_{parts[1]}"] = parsed
        elif parts[0] in ("init", "activation") and parts[1:2] == ["params"] and len(parts) == 3:
            out[f"{parts[0]}_{parts[2]}"] = parsed
        elif len(parts) == 1 and key in PLAIN:  # report=, progress=, plots=: no settings
            out[key] = parsed
    return out


def with_overrides(base: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``base`` (a sweep's settings) as one job's overrides change them: a family chosen
    anew (``init=normal``) drops the base's parameters of that family, whose new values
    only the job's own files know; a model other than the chain drops the chain's own
    settings (its depth and width come from the model)."""
    given = from_overrides(overrides)
    out = dict(base)
    for family in FAMILIES:
        if family in given and given[family] != base.get(family):
            out = {k: v for k, v in out.items() if not k.startswith(family + "_")}
    out.update(given)
    if out.get("model", "chain") == "chain":
        out.pop("model", None)
    else:
        for key in ("depth", "width", "weights"):
            out.pop(key, None)
    return out


def from_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A job's settings, spelled as its summary.json has them, from its composed config (a
    plain dict: ``.hydra/config.yaml``, or a sweep's ``multirun.yaml``): what a report
    knows of a job that never wrote a summary. What the config cannot tell is left out
    (``init=critical`` brings its own bias, which only the job computes)."""
    model = cfg.get("model") or {}
    name = "custom" if model.get("_target_") else str(model.get("name", "chain"))
    out: dict[str, Any] = {}
    if name != "chain":
        out["model"] = name
        out.update(_model_settings(name, model))
    for family in ("init", "activation", "bias"):
        node = cfg.get(family) or {}
        if not isinstance(node, dict) or node.get("name") is None:
            continue
        out[family] = node["name"]
        extra = node.get("params") if isinstance(node.get("params"), dict) else {}
        values = {**extra, **{k: v for k, v in node.items() if k not in _NOT_PARAMS}}
        out.update({f"{family}_{k}": v for k, v in sorted(values.items()) if v is not None})
    if name == "custom":  # a user's model keeps its own activations
        out = {k: v for k, v in out.items() if not k.startswith("activation_")}
        out["activation"] = "model"
    if out.get("init") == "critical":
        out = {k: v for k, v in out.items() if k != "bias" and not k.startswith("bias_")}
    chain_only = ("depth", "width", "weights") if name != "chain" else ()
    out.update({k: cfg[k] for k in PLAIN if k in cfg and k not in chain_only})
    if name != "chain" and cfg.get("inputs") is not None:
        out["inputs"] = cfg["inputs"]  # a model's inputs: gaussian or digits
    train = cfg.get("train")
    if isinstance(train, dict):  # a training job: its settings, as TrainSpec.describe names
        out.update({f"train_{k}": v for k, v in train.items()
                    if k != "name" and v is not None and not isinstance(v, (dict, list))})
    return out


def _model_settings(name: str, model: dict[str, Any]) -> dict[str, Any]:
    """A model's own settings as ``ModelSpec.describe`` names them."""
    if name == "conv_chain":
        return {f"model_{k}": model[k] for k in ("channels", "depth", "size")
                if model.get(k) is not None}
    if name == "simple_cnn":
        return {"model_batchnorm": True} if model.get("batchnorm") else {}
    shape = model.get("input_shape")
    return {"model_target": model.get("_target_"),
            **({"model_input_shape": "x".join(map(str, shape))} if shape else {})}
