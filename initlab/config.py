"""The config schema (Hydra structured configs) and its translation into a ChainSpec
(``model=chain``, the default) or a ``ModelSpec`` (any other model, ``initlab.modeljob``).

``conf/config.yaml`` is checked against ``Config``: a value of the wrong
type or an unknown key is refused by Hydra before any job runs. What a type
cannot say (depth >= 1, a scheme's own parameters, CUDA present) is checked
when the ``ChainSpec`` is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from initlab import inputs, models, plugins
from initlab.models import CUSTOM, ModelSpec
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
class ModelConfig:
    """What runs: ``chain`` (the matmul engine) or a torch model probed by ``initlab.probe``.

    ``conv_chain`` takes ``channels``, ``depth`` and ``size``; ``simple_cnn`` nothing;
    a user's model is ``_target_`` (an importable function returning an ``nn.Module``,
    called with ``params``) and ``input_shape`` (one sample's shape, batch excluded).
    ``include``/``exclude``: fnmatch patterns naming the modules to hook (default: every
    leaf module with parameters; a conv chain hooks its own pairs). ``None``: the model's
    default. A ``model.*`` setting that the chosen model does not take is ignored, so one
    sweep can cover several models (``-m model=conv_chain,simple_cnn model.depth=10``);
    the chain's own width, depth and weights are refused with a model
    (``model_spec_from_config``). ``initlab.modeljob``.
    """

    name: str = "chain"
    _target_: str | None = None
    channels: int | None = None
    depth: int | None = None
    size: int | None = None
    input_shape: list[int] | None = None
    include: list[str] | None = None
    exclude: list[str] | None = None
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
#: plots (a job's PNGs: auto = a single run's, not a sweep's), report (write report/ when
#: a run or sweep ends,
#: ``initlab.callbacks.ReportCallback``), progress (auto: a bar on a terminal only; true;
#: false), reference (numbers a source document reports for this setting, "seed says",
#: compared with the measurement in summary.json), model (``ModelConfig``: the chain or a
#: torch model) and inputs (a model's inputs: gaussian, or digits, ``initlab.inputs``).
Config = make_dataclass(
    "Config",
    [
        ("init", InitConfig, field(default_factory=InitConfig)),
        ("activation", ActivationConfig, field(default_factory=ActivationConfig)),
        ("bias", BiasConfig, field(default_factory=BiasConfig)),
        *_engine_fields(),
        ("thresholds", ThresholdsConfig, field(default_factory=ThresholdsConfig)),
        ("plots", str, field(default="auto")),
        ("report", bool, field(default=True)),
        ("progress", str, field(default="auto")),
        ("reference", dict[str, Any] | None, field(default=None)),
        ("model", ModelConfig, field(default_factory=ModelConfig)),
        ("inputs", str, field(default="gaussian")),
    ],
)
Config.__module__ = __name__


def launcher_batch(target: str) -> int:
    """Default ``hydra.sweeper.max_batch_size`` for a launcher: 8 for submitit, else 256."""
    return 8 if "submitit" in str(target).lower() else 256


def job_tag(model: str, target: str | None, depth: int) -> str:
    """The end of a sweep job's directory name: ``depth100`` for the chain (as before models
    existed), the model's name otherwise (``conv_chain``; a user's ``_target_``: its function)."""
    if target:
        return str(target).rsplit(".", 1)[-1]
    return f"depth{depth}" if model == "chain" else str(model)


def register() -> None:
    """Make the schema known to Hydra as ``initlab_schema`` (config.yaml's first default)."""
    ConfigStore.instance().store(name="initlab_schema", node=Config)
    if not OmegaConf.has_resolver("initlab_batch"):
        OmegaConf.register_new_resolver("initlab_batch", launcher_batch)
    if not OmegaConf.has_resolver("initlab_job"):
        OmegaConf.register_new_resolver("initlab_job", job_tag)


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


#: the built-in models the probe runs from the command line (besides ``chain``)
BUILTIN_MODELS = ("conv_chain", "simple_cnn")
#: the chain's settings that change what it computes and mean nothing for a model (with
#: what to set instead)
CHAIN_ONLY = {"width": "model.channels (conv_chain)", "depth": "model.depth (conv_chain)",
              "weights": None}


def is_model(cfg: DictConfig) -> bool:
    """Does this config run a model (not the chain)?"""
    return cfg.model.name != "chain" or bool(cfg.model.get("_target_"))


def model_spec_from_config(cfg: DictConfig) -> ModelSpec:
    """The model job of a composed config; SpecError (one line) on what does not apply."""
    chain = spec_from_config(cfg)  # the shared settings, checked as for a chain
    m = cfg.model
    name = CUSTOM if m.get("_target_") else str(m.name)
    allowed = (*BUILTIN_MODELS, CUSTOM)
    if name not in allowed:
        raise SpecError(f"model={name!r} is not allowed; allowed: chain, {', '.join(allowed)}")
    defaults = {f.name: f.default for f in fields(ChainSpec)}
    for key, instead in CHAIN_ONLY.items():
        if getattr(chain, key) != defaults[key]:
            hint = f"; set {instead}" if instead and (name == "conv_chain") else ""
            raise SpecError(f"{key}={getattr(chain, key)} does not apply to model={name} (a "
                            f"setting of the chain){hint}")
    activation, activation_params = chain.activation, dict(chain.activation_params)
    extra: dict[str, Any] = {}
    if name == "conv_chain":
        extra = {k: m.get(k) if m.get(k) is not None else d
                 for k, d in (("channels", 16), ("depth", 99), ("size", 199))}
        try:
            models.check_conv_chain(extra["channels"], extra["depth"], extra["size"])
        except ValueError as exc:
            raise SpecError(f"model.{exc}") from None
    elif name == CUSTOM:
        extra = _custom(m)
        if activation != "relu" or activation_params:
            raise SpecError(f"activation={activation} does not apply to a user's model (it "
                            "has its own activations); leave activation out")
        activation, activation_params = "model", {}
    spec = ModelSpec(
        model=name, init=chain.init, init_params=dict(chain.init_params), activation=activation,
        activation_params=activation_params, bias=chain.bias, bias_params=dict(chain.bias_params),
        trials=chain.trials, batch=chain.batch, seed=chain.seed, device=chain.device,
        dtype=chain.dtype, gradients=chain.gradients, inputs=str(cfg.inputs),
        input_correlation=float(chain.input_correlation),
        include=tuple(m.include) if m.get("include") else None,
        exclude=tuple(m.exclude) if m.get("exclude") else None, **extra)
    _check_probe(spec)
    return spec


def _custom(m) -> dict[str, Any]:
    target = m.get("_target_")
    if not target:
        raise SpecError("model=custom needs model._target_=<module.function> (returning an "
                        "nn.Module) and model.input_shape=[...] (one sample's shape)")
    try:
        plugins.locate(str(target))
    except plugins.PluginError as exc:
        raise SpecError(f"model.{exc}") from None
    shape = m.get("input_shape")
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise SpecError(f"model.input_shape={_show(shape)} is not allowed; give one sample's "
                        "shape as positive integers, e.g. model.input_shape=[3,32,32]")
    params = OmegaConf.to_container(m.params, resolve=True) if m.get("params") else {}
    return {"target": str(target), "input_shape": tuple(int(s) for s in shape),
            "params": params}


def _show(value: Any) -> str:
    if isinstance(value, ListConfig):
        value = OmegaConf.to_container(value)
    return "null" if value is None else str(value).replace(" ", "")


def _check_probe(spec: ModelSpec) -> None:
    """What the probe and the inputs refuse, refused up front in one line."""
    from initlab.probe.weights import check_init

    try:
        check_init(spec.init)
        inputs.check(spec.inputs, spec.shape(), spec.batch)
        if spec.inputs != "gaussian" and spec.input_correlation:
            raise ValueError(f"input_correlation={spec.input_correlation} applies to gaussian "
                             f"inputs only, not inputs={spec.inputs}")
    except ValueError as exc:
        raise SpecError(str(exc).strip().splitlines()[0]) from None


def check_model(cfg: DictConfig) -> None:
    """SpecError unless the config's model job can be built (the command line's check)."""
    if is_model(cfg):
        model_spec_from_config(cfg)
    elif str(cfg.inputs) != "gaussian":
        raise SpecError(f"inputs={cfg.inputs} applies to models (model=conv_chain, simple_cnn, "
                        "custom); the chain draws its own N(0, I) inputs")


def thresholds_from_config(cfg: DictConfig) -> Thresholds:
    return Thresholds(
        explode_std=float(cfg.thresholds.explode_std), vanish_std=float(cfg.thresholds.vanish_std)
    )
