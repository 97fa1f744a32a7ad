"""The ``train`` node of the command line's schema (``conf/train/*.yaml``) and the
``TrainSpec`` it gives a job: ``TrainSpec``'s own fields, types and defaults, not a copy."""

from __future__ import annotations

from dataclasses import MISSING as MISSING_FACTORY
from dataclasses import field, fields, make_dataclass
from typing import Any, get_type_hints

from omegaconf import DictConfig, OmegaConf

from initlab.train.spec import TrainSpec


def _train_fields() -> list[tuple[str, Any, Any]]:
    """``TrainSpec``'s fields as schema fields (its types and defaults; ``moms`` a list),
    then the job's own ``tensorboard``."""
    hints = get_type_hints(TrainSpec)
    hints["moms"] = list[float]
    out: list[tuple[str, Any, Any]] = [("name", str, field(default="custom"))]
    for f in fields(TrainSpec):
        if f.default_factory is not MISSING_FACTORY:
            default = field(default_factory=f.default_factory)
        elif isinstance(f.default, tuple):
            default = field(default_factory=lambda d=f.default: list(d))
        else:
            default = field(default=f.default)
        out.append((f.name, hints[f.name], default))
    return [*out, ("tensorboard", bool, field(default=False))]


#: Short training runs (``initlab.train.TrainSpec``'s fields; ``conf/train/*.yaml``):
#: ``train=digits`` trains every job after measuring it at initialization; off (null)
#: by default. ``tensorboard``: also write TensorBoard event files.
TrainConfig = make_dataclass("TrainConfig", _train_fields())
TrainConfig.__module__ = __name__


def train_from_config(cfg: DictConfig):
    """The job's ``TrainSpec`` (None when it does not train) and whether to write
    TensorBoard files; SpecError (one line) on a bad value."""
    node = cfg.get("train")
    if node is None:
        return None, False
    data = OmegaConf.to_container(node, resolve=True)
    data.pop("name", None)
    tensorboard = bool(data.pop("tensorboard", False))
    data["moms"] = tuple(data["moms"])
    return TrainSpec(**data), tensorboard
