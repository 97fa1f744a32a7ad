"""ModelSpec: a model job's settings, validated once — which torch model, its inputs, and
the settings it shares with the chain (``initlab.spec.Settings``).

``conv_chain`` (seed 001's 99 valid 3x3 convolutions, 199x199 -> 1x1) takes
``channels``, ``depth`` and ``size``; ``simple_cnn`` (fastai's stride-2 CNN) takes
``batchnorm``; a user's model (``custom``) is an importable function ``target``
returning an ``nn.Module`` (called with ``params``) and one sample's ``input_shape``.
``include``/``exclude`` pick the hooked modules (``initlab.probing.record.select``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from initlab import inputs, models, plugins, rules
from initlab.biases import make_bias
from initlab.rules import SpecError
from initlab.schemes import SCHEMES, make_recipe
from initlab.spec import Settings, check_bias, recipe_error

#: a user's model (``model._target_``)
CUSTOM = "custom"
#: the models a job can probe besides the chain
MODELS = ("conv_chain", "simple_cnn", CUSTOM)
#: schemes a model cannot take, and why
UNSUPPORTED = {
    "lsuv": "it rescales each layer on data inside the chain",
    "critical": "its gain depends on the chain's activation, which a model does not declare",
}


def model_schemes() -> list[str]:
    """The weight schemes a model job can take (the registry's, plug-ins included)."""
    return [s for s in SCHEMES if s not in UNSUPPORTED]


def check_model_init(init: str, extra: tuple[str, ...] = ()) -> None:
    """ValueError unless ``init`` can initialize a model: a scheme of ``model_schemes`` or
    one of ``extra`` (the probe's ``model`` and ``keep``)."""
    allowed = [*extra, *model_schemes()]
    if init in UNSUPPORTED:
        raise ValueError(f"init={init!r} is not supported for models ({UNSUPPORTED[init]}); "
                         f"allowed: {', '.join(allowed)}")
    if init not in allowed:
        raise ValueError(f"init={init!r} is not a known scheme; allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class ModelSpec(Settings):
    """One model job: which model, how it is built, and the shared settings."""

    model: str = "simple_cnn"
    inputs: str = "gaussian"
    channels: int = 16
    depth: int = 99
    size: int = 199
    batchnorm: bool = False
    target: str | None = None
    input_shape: tuple[int, ...] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        rules.choice("model", self.model, MODELS)
        try:
            check_model_init(self.init)
        except ValueError as exc:
            raise SpecError(str(exc)) from None
        self._check_settings()
        self._check_model()
        try:
            make_recipe(self.init, 4, 4, self.init_params)  # its parameters, any fans
        except (OverflowError, SystemExit, ValueError, TypeError) as exc:
            raise recipe_error(exc, self.init) from None
        try:
            bias = make_bias(self.bias, 4, self.bias_params)
        except ValueError as exc:
            raise SpecError(rules.first_line(exc)) from None
        check_bias(bias, self.bias, self.bias_params, self.dtype)
        try:
            inputs.check(self.inputs, self.shape(), self.batch)
        except ValueError as exc:
            raise SpecError(rules.first_line(exc)) from None
        if self.inputs != "gaussian" and self.input_correlation:
            raise SpecError(f"input_correlation={self.input_correlation} applies to gaussian "
                            f"inputs only, not inputs={self.inputs}")

    def _check_model(self) -> None:
        """The chosen model's own settings."""
        rules.boolean("model.batchnorm", self.batchnorm)
        if self.model == "conv_chain":
            try:
                models.check_conv_chain(self.channels, self.depth, self.size)
            except ValueError as exc:
                raise SpecError(f"model.{exc}") from None
        if self.model != CUSTOM:
            return
        if self.activation != "model":
            raise SpecError(f"activation={self.activation} does not apply to a user's model "
                            "(it has its own activations); leave activation out")
        if not self.target:
            raise SpecError("model=custom needs model._target_=<module.function> (returning an "
                            "nn.Module) and model.input_shape=[...] (one sample's shape)")
        try:
            make = plugins.locate(str(self.target))
        except plugins.PluginError as exc:
            raise SpecError(f"model.{exc}") from None
        shape = self.input_shape
        if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                            for s in shape):
            shown = "null" if shape is None else str(list(shape)).replace(" ", "")
            raise SpecError(f"model.input_shape={shown} is not allowed; give one sample's "
                            "shape as positive integers, e.g. model.input_shape=[3,32,32]")
        _check_params(make, self.target, self.params)

    def shape(self) -> tuple[int, ...]:
        """One sample's input shape."""
        if self.model == CUSTOM:
            return tuple(self.input_shape or ())
        return models.input_shape(self.model, channels=self.channels, size=self.size)

    def factory(self):
        """A zero-argument function building the model (in ``dtype``)."""
        dtype, params = self.torch_dtype, self.activation_params or None
        if self.model == "conv_chain":
            def build():
                return models.conv_chain(self.channels, self.activation, depth=self.depth,
                                         size=self.size, activation_params=params,
                                         bias=self.bias != "zero").to(dtype)
        elif self.model == "simple_cnn":
            def build():
                return models.simple_cnn(self.activation, params,
                                         batchnorm=self.batchnorm).to(dtype)
        else:
            make = plugins.locate(str(self.target))

            def build():
                return _as_module(make(**self.params), self.target).to(dtype)
        build.__name__ = self.model
        return build

    def hooks(self) -> tuple[list[str] | None, list[str] | None]:
        """(include, exclude) for the probe: a conv chain's convs and activations (paired
        into one layer each), else the user's patterns or the default."""
        if self.model == "conv_chain":
            return ["Conv2d", "Activation"], None
        return (list(self.include) if self.include else None,
                list(self.exclude) if self.exclude else None)

    def describe(self, depth: int | None = None, width: int | None = None) -> dict[str, Any]:
        """Flat settings, the columns of every row (``depth``/``width`` once probed)."""
        own = {"conv_chain": {"model_channels": self.channels, "model_depth": self.depth,
                              "model_size": self.size},
               "simple_cnn": {"model_batchnorm": self.batchnorm} if self.batchnorm else {},
               CUSTOM: {"model_target": self.target,
                        "model_input_shape": "x".join(map(str, self.shape()))}}
        out: dict[str, Any] = {
            "model": self.model, **own.get(self.model, {}), **self._scheme_settings(),
            "bias": self.bias,
            **{f"bias_{k}": v for k, v in sorted(self.bias_params.items()) if v is not None},
        }
        if depth is not None:
            out["depth"] = depth
        if width is not None:
            out["width"] = width
        out.update(trials=self.trials, batch=self.batch,
                   input_correlation=self.input_correlation, seed=self.seed,
                   device=self.device, dtype=self.dtype, gradients=self.gradients,
                   inputs=self.inputs)
        return out


def _check_params(make: Any, target: str | None, params: dict[str, Any]) -> None:
    """SpecError unless ``target`` can be called with ``params`` (when Python can tell)."""
    try:
        signature = inspect.signature(make)
    except (ValueError, TypeError):  # a builtin: its parameters cannot be read
        return
    try:
        signature.bind(**params)
    except TypeError as exc:
        given = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "none"
        takes = ", ".join(signature.parameters) or "none"
        raise SpecError(f"model.params ({given}) do not fit model._target_={target} "
                        f"({exc}); its parameters: {takes}") from None


def _as_module(model: Any, target: str | None):
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ValueError(f"model._target_={target} returned {type(model).__name__}, not an "
                         "nn.Module")
    return model
