"""The config schema (Hydra structured configs) and its translation into a job
(``job_from_config``): a ``ChainSpec`` (``model=chain``, the default) or a ``ModelSpec``
(any other model), each validated once when it is built.

``conf/config.yaml`` is checked against ``Config``: a value of the wrong
type or an unknown key is refused by Hydra before any job runs. What a type
cannot say (depth >= 1, a scheme's own parameters, CUDA present) is checked
when the ``ChainSpec`` is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from initlab import plugins
from initlab.modelspec import CUSTOM, MODELS, ModelSpec
from initlab.rules import SpecError
from initlab.spec import ENGINE_SETTINGS, ChainSpec, resolve_device
from initlab.trainconfig import TrainConfig, train_from_config
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
    (``model_spec_from_config``). ``simple_cnn`` takes ``batchnorm`` (after each convolution).
    """

    name: str = "chain"
    _target_: str | None = None
    channels: int | None = None
    depth: int | None = None
    size: int | None = None
    input_shape: list[int] | None = None
    include: list[str] | None = None
    exclude: list[str] | None = None
    batchnorm: bool | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ThresholdsConfig:
    """Forward: a signal's std; backward: the gradient's std over the output gradient's
    (``initlab.verdict``)."""

    explode_std: float = 1e4
    vanish_std: float = 1e-4
    grad_explode: float = 1e4
    grad_vanish: float = 1e-4


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
        ("train", TrainConfig | None, field(default=None)),
    ],
)
Config.__module__ = __name__


def launcher_batch(target: str) -> int:
    """Default ``hydra.sweeper.max_batch_size`` for a launcher: 8 for submitit, else 256."""
    return 8 if "submitit" in str(target).lower() else 256


#: Scale settings that a job's directory name carries when the command line sets them
#: (``..._depth50_sigma_w2=1.25_sigma_b2=0.05`` in a phase sweep), so jobs that differ
#: only in them are told apart by name.
NAMED_SCALES = ("init.sigma_w2", "bias.sigma_b2")


def job_tag(model: str, target: str | None, depth: int, overrides: Any = ()) -> str:
    """The end of a sweep job's directory name: ``depth100`` for the chain (as before models
    existed), the model's name otherwise (``conv_chain``; a user's ``_target_``: its
    function); then each ``NAMED_SCALES`` setting the job's overrides set."""
    tag = (str(target).rsplit(".", 1)[-1] if target else
           f"depth{depth}" if model == "chain" else str(model))
    for line in overrides or ():
        key, _, value = str(line).lstrip("+").partition("=")
        if key in NAMED_SCALES:
            tag += f"_{key.split('.')[1]}={value}"
    return tag


def register() -> None:
    """Make the schema known to Hydra as ``initlab_schema`` (config.yaml's first default)."""
    ConfigStore.instance().store(name="initlab_schema", node=Config)
    if not OmegaConf.has_resolver("initlab_batch"):
        OmegaConf.register_new_resolver("initlab_batch", launcher_batch)
    if not OmegaConf.has_resolver("initlab_job"):
        OmegaConf.register_new_resolver("initlab_job", job_tag)


def _group(node: DictConfig, kind: str) -> tuple[str, dict[str, Any]]:
    """(name, parameters) of an init or activation node; registers a ``_target_`` plug-in,
    which gets its ``params`` and the typed keys it takes: a plug-in put in place of
    ``init=kaiming`` does not inherit kaiming's ``mode`` and ``distribution``
    (``initlab.validate`` refuses such a key when the command line names it)."""
    data = OmegaConf.to_container(node, resolve=True)
    name = data.pop("name")
    target = data.pop("_target_", None)
    extra = data.pop("params", {}) or {}
    typed = {k: v for k, v in data.items() if v is not None}
    for key in extra:
        if key in typed:
            raise SpecError(f"{kind}.params.{key} duplicates {kind}.{key}; set {kind}.{key}="
                            f"{extra[key]} instead")
    if target:
        plugins.register(kind, name, target)
        takes = plugin_params(kind, name)
        if takes is not None:  # the replaced option's own (kaiming's mode, ...) stay behind
            typed = {k: v for k, v in typed.items() if k in takes}
    return name, {**extra, **typed}


def plugin_params(kind: str, name: str) -> tuple[str, ...] | None:
    """The keyword parameters a registered plug-in takes; None when it takes any
    (``**params``) or Python cannot tell (a builtin)."""
    import inspect

    from initlab import activations, schemes

    fn = schemes.SCHEMES[name] if kind == "init" else activations.ACTIVATIONS[name]
    try:
        signature = inspect.signature(fn)
    except (ValueError, TypeError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return schemes.scheme_params(name) if kind == "init" else activations.activation_params(name)


def _schemes(cfg: DictConfig) -> dict[str, Any]:
    """init, activation and bias with their parameters (a ``_target_`` plug-in registered)."""
    try:
        init, init_params = _group(cfg.init, "init")
        activation, activation_params = _group(cfg.activation, "activation")
    except plugins.PluginError as exc:
        raise SpecError(str(exc)) from None
    bias = OmegaConf.to_container(cfg.bias, resolve=True)
    return {"init": init, "init_params": init_params, "activation": activation,
            "activation_params": activation_params, "bias": bias.pop("name"),
            "bias_params": {k: v for k, v in bias.items() if v is not None}}


def spec_from_config(cfg: DictConfig) -> ChainSpec:
    """Build the engine's spec from a composed config (raises SpecError on bad values)."""
    return ChainSpec(**_schemes(cfg), **{name: cfg[name] for name in ENGINE_SETTINGS})


#: the chain's settings that change what it computes and mean nothing for a model (with
#: what to set instead)
CHAIN_ONLY = {"width": "model.channels (conv_chain)", "depth": "model.depth (conv_chain)",
              "weights": None}


def is_model(cfg: DictConfig) -> bool:
    """Does this config run a model (not the chain)?"""
    return cfg.model.name != "chain" or bool(cfg.model.get("_target_"))


def _model_name(cfg: DictConfig) -> str:
    m = cfg.model
    if m.get("_target_") and m.name not in ("chain", CUSTOM):
        raise SpecError(f"model._target_={m._target_} does not apply to model={m.name} (a "
                        f"built-in); use model=custom model._target_=... for your own model")
    return CUSTOM if m.get("_target_") else str(m.name)


def model_spec_from_config(cfg: DictConfig) -> ModelSpec:
    """The model job of a composed config; SpecError (one line) on what does not apply."""
    name = _model_name(cfg)
    allowed = ("chain", *MODELS)
    if name not in allowed:
        raise SpecError(f"model={name!r} is not allowed; allowed: {', '.join(allowed)}")
    defaults = {f.name: f.default for f in fields(ChainSpec)}
    for key, instead in CHAIN_ONLY.items():
        if cfg[key] != defaults[key]:
            hint = f"; set {instead}" if instead and name == "conv_chain" else ""
            raise SpecError(f"{key}={cfg[key]} does not apply to model={name} (a setting of "
                            f"the chain){hint}")
    schemes = _schemes(cfg)
    if name == CUSTOM:
        if schemes["activation"] != "relu" or schemes["activation_params"]:
            raise SpecError(f"activation={schemes['activation']} does not apply to a user's "
                            "model (it has its own activations); leave activation out")
        schemes.update(activation="model", activation_params={})
    m = cfg.model
    own = {k: m.get(k) for k in ("channels", "depth", "size") if m.get(k) is not None}
    if m.get("batchnorm") is not None:
        own["batchnorm"] = m.batchnorm
    if name == CUSTOM:
        shape = m.get("input_shape")
        own.update(target=m.get("_target_"),
                   input_shape=None if shape is None else tuple(shape),
                   params=OmegaConf.to_container(m.params, resolve=True) if m.get("params")
                   else {})
    return ModelSpec(model=name, inputs=str(cfg.inputs), **schemes, **own,
                     include=tuple(m.include) if m.get("include") else None,
                     exclude=tuple(m.exclude) if m.get("exclude") else None,
                     **{k: cfg[k] for k in SHARED})


#: settings of ``initlab.spec.Settings`` read from the top of the config
SHARED = ("trials", "batch", "input_correlation", "seed", "device", "dtype", "gradients")


def check_inputs(cfg: DictConfig) -> None:
    if not is_model(cfg) and str(cfg.inputs) != "gaussian":
        raise SpecError(f"inputs={cfg.inputs} applies to models (model=conv_chain, simple_cnn, "
                        "custom); the chain draws its own N(0, I) inputs")


def check(cfg: DictConfig) -> None:
    """SpecError (one line) unless the config builds a job that can run here (its spec, its
    thresholds, its device, a model's hooked modules)."""
    check_inputs(cfg)
    spec = model_spec_from_config(cfg) if is_model(cfg) else spec_from_config(cfg)
    thresholds_from_config(cfg)
    reference_from_config(cfg)
    train_from_config(cfg)
    resolve_device(spec.device)
    if isinstance(spec, ModelSpec):
        from initlab.modelcheck import check_model  # the probe package: model jobs only

        check_model(spec)


def reference_from_config(cfg: DictConfig) -> dict[str, Any] | None:
    """The numbers a source reports for this setting (a preset's ``reference``), to be put
    beside the measurement; SpecError when the job is not what they were measured on.

    A reference belongs to the chain it was measured on: a model job is refused (judging
    a CNN by the seed's 100-layer chain means nothing), and so is a chain whose settings
    differ from the reference's ``measured_on`` (``{depth: 100, width: 512}``). Either
    way ``reference=null`` runs the preset without its numbers.
    """
    if not cfg.get("reference"):
        return None
    reference = OmegaConf.to_container(cfg.reference, resolve=True)
    where = reference.pop("measured_on", None) or {}
    source = reference.get("source", "a preset's numbers")
    if is_model(cfg):
        raise SpecError(f"the reference ({source}) was measured on the chain, not on "
                        f"model={_model_name(cfg)}; run the preset without model=, or add "
                        "reference=null to run it without the reference")
    for key, value in where.items():
        if OmegaConf.select(cfg, key) != value:
            raise SpecError(f"the reference ({source}) was measured with {key}={value}, not "
                            f"{key}={OmegaConf.select(cfg, key)}; keep {key}={value}, or add "
                            "reference=null to run without the reference")
    return reference


def job_from_config(cfg: DictConfig, out_dir: Any, sweep: bool = False):
    """The ``initlab.job.Job`` a composed config asks for (SpecError: one line)."""
    from initlab.job import Job  # here, not at the top: the job path loads torch and the
    #                              engine, which composing and checking configs never need

    check_inputs(cfg)
    spec = model_spec_from_config(cfg) if is_model(cfg) else spec_from_config(cfg)
    reference = reference_from_config(cfg)
    train, tensorboard = train_from_config(cfg)
    return Job(spec=spec, thresholds=thresholds_from_config(cfg), out_dir=Path(out_dir),
               reference=reference, make_plots=wants_plots(cfg.plots, sweep), train=train,
               tensorboard=tensorboard)


def wants_plots(setting: Any, sweep: bool) -> bool:
    """``plots`` = auto | true | false: auto draws a single run's figures, not a sweep's
    (the sweep's report draws every job; ``initlab-plot`` draws a job's from its files)."""
    mode = str(setting).lower()
    return mode == "true" or (mode == "auto" and not sweep)


def known_settings(cfg: DictConfig) -> dict[str, Any]:
    """A job's settings as far as its config gives them, for a failure that happened
    before its spec could be built."""
    keys = ("trials", "batch", "seed", "device", "dtype", "gradients")
    out: dict[str, Any] = {}
    if is_model(cfg):
        out["model"] = CUSTOM if cfg.model.get("_target_") else str(cfg.model.name)
    out.update(init=str(cfg.init.name), activation=str(cfg.activation.name),
               bias=str(cfg.bias.name))
    if not is_model(cfg):
        keys = (*keys, "depth", "width", "weights")
    return {**out, **{k: OmegaConf.select(cfg, k) for k in keys}}


def thresholds_from_config(cfg: DictConfig) -> Thresholds:
    try:
        t = cfg.thresholds
        return Thresholds(explode_std=float(t.explode_std), vanish_std=float(t.vanish_std),
                          grad_explode=float(t.grad_explode), grad_vanish=float(t.grad_vanish))
    except ValueError as exc:
        raise SpecError(str(exc)) from None
