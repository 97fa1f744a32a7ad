"""The config schema (Hydra structured configs) and its translation into a ChainSpec.

``conf/config.yaml`` is checked against ``Config``: a value of the wrong
type or an unknown key is refused by Hydra before any job runs. What a type
cannot say (depth >= 1, a scheme's own parameters, CUDA present) is checked
when the ``ChainSpec`` is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from initlab import plugins
from initlab.spec import ENGINE_SETTINGS, ChainSpec, SpecError
from initlab.verdict import Thresholds


@dataclass
class InitConfig:
    """A scheme and its parameters; ``None`` means the scheme's own default.

    ``_target_`` plugs in a user's scheme (any importable function, see
    ``initlab.plugins``) under ``name``; ``params`` holds its keyword arguments.
    """

    name: str = MISSING
    _target_: str | None = None
    std: float | None = None
    distribution: str | None = None
    mode: str | None = None
    negative_slope: float | None = None
    gain: float | None = None
    value: float | None = None
    sigma_w2: float | None = None
    sigma_b2: float | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class BiasConfig:
    """A bias scheme (``initlab.biases``) and its parameters; ``None``: the scheme's default."""

    name: str = MISSING
    sigma_b2: float | None = None
    bound: float | None = None
    value: float | None = None


@dataclass
class ActivationConfig:
    """An activation and its parameters; ``_target_`` plugs in a user's own."""

    name: str = MISSING
    _target_: str | None = None
    negative_slope: float | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ThresholdsConfig:
    explode_std: float = 1e4
    vanish_std: float = 1e-4


def _engine_fields() -> list[tuple[str, type, Any]]:
    """The engine settings as schema fields: names, types and defaults of ``ChainSpec``."""
    hints = get_type_hints(ChainSpec)
    defaults = {f.name: f.default for f in fields(ChainSpec)}
    return [(name, hints[name], field(default=defaults[name])) for name in ENGINE_SETTINGS]


#: The command line's schema. The engine settings (width, depth, trials, batch,
#: input_correlation, seed, dtype, weights, device, gradients) are ``ChainSpec``'s own
#: fields, types and defaults,
#: not a copy; the rest are settings of the command line itself:
#: plots (a job's PNGs), report (write report/ when a run or sweep ends,
#: ``initlab.callbacks.ReportCallback``), progress (auto: a bar on a terminal only; true;
#: false), reference (numbers a source document reports for this setting, "seed says",
#: compared with the measurement in summary.json).
Config = make_dataclass(
    "Config",
    [
        ("init", InitConfig, field(default_factory=InitConfig)),
        ("activation", ActivationConfig, field(default_factory=ActivationConfig)),
        ("bias", BiasConfig, field(default_factory=BiasConfig)),
        *_engine_fields(),
        ("thresholds", ThresholdsConfig, field(default_factory=ThresholdsConfig)),
        ("plots", bool, field(default=True)),
        ("report", bool, field(default=True)),
        ("progress", str, field(default="auto")),
        ("reference", dict[str, Any] | None, field(default=None)),
    ],
)
Config.__module__ = __name__


def launcher_batch(target: str) -> int:
    """Default ``hydra.sweeper.max_batch_size`` for a launcher: 8 for submitit, else 256."""
    return 8 if "submitit" in str(target).lower() else 256


def register() -> None:
    """Make the schema known to Hydra as ``initlab_schema`` (config.yaml's first default)."""
    ConfigStore.instance().store(name="initlab_schema", node=Config)
    if not OmegaConf.has_resolver("initlab_batch"):
        OmegaConf.register_new_resolver("initlab_batch", launcher_batch)


def _group(node: DictConfig, kind: str) -> tuple[str, dict[str, Any]]:
    """(name, parameters) of an init or activation node; registers a ``_target_`` plug-in."""
    data = OmegaConf.to_container(node, resolve=True)
    name = data.pop("name")
    target = data.pop("_target_", None)
    extra = data.pop("params", {}) or {}
    typed = {k: v for k, v in data.items() if v is not None}
    for key in extra:
        if key in typed:
            raise SpecError(f"{kind}.params.{key} duplicates {kind}.{key}; set {kind}.{key}="
                            f"{extra[key]} instead")
    params = {**extra, **typed}
    if target:
        plugins.register(kind, name, target)
    return name, params


def spec_from_config(cfg: DictConfig) -> ChainSpec:
    """Build the engine's spec from a composed config (raises SpecError on bad values)."""
    try:
        init, init_params = _group(cfg.init, "init")
        activation, activation_params = _group(cfg.activation, "activation")
    except plugins.PluginError as exc:
        raise SpecError(str(exc)) from None
    bias = OmegaConf.to_container(cfg.bias, resolve=True)
    return ChainSpec(
        init=init,
        init_params=init_params,
        activation=activation,
        activation_params=activation_params,
        bias=bias.pop("name"),
        bias_params={k: v for k, v in bias.items() if v is not None},
        **{name: cfg[name] for name in ENGINE_SETTINGS},
    )


def thresholds_from_config(cfg: DictConfig) -> Thresholds:
    return Thresholds(
        explode_std=float(cfg.thresholds.explode_std), vanish_std=float(cfg.thresholds.vanish_std)
    )
