"""What a job measures, validated once: ``ChainSpec`` (the matmul chain) and ``ModelSpec``
(a torch model), both built on ``Settings`` (schemes, trials, seed, device, ...).

A spec is plain data (no Hydra, no files). Building one checks every field and
raises ``SpecError`` whose message is one line naming the bad value and what is
allowed (``initlab.rules``); the command line prints exactly that line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from initlab import rules
from initlab.activations import ACTIVATIONS, get_activation
from initlab.biases import BIASES, BiasRecipe, make_bias
from initlab.rules import SpecError
from initlab.schemes import SCHEMES, WeightRecipe, make_recipe

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")
WEIGHTS = ("fresh", "shared")
#: Default ``keep_fraction``: with gradients, the forward pass's weights are kept for the
#: backward pass when a chunk's fit in this fraction of the free memory. A quarter leaves
#: room for the rest of the pass and for other processes (a sweep's joblib workers).
KEEP_FRACTION = 0.25
#: The chain's own settings besides the schemes, one per command-line key, in this order in
#: ``describe()`` (the command line's schema ``initlab.config.Config`` is built from them).
ENGINE_SETTINGS = ("depth", "width", "trials", "batch", "input_correlation", "seed", "dtype",
                   "weights", "device", "gradients", "keep_fraction")
#: The fields naming a scheme, an activation and a bias scheme with their parameters.
SCHEME_SETTINGS = ("init", "init_params", "activation", "activation_params", "bias",
                   "bias_params")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without CUDA is an error."""
    rules.choice("device", device, DEVICES)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("device='cuda' is not available on this machine (torch sees no CUDA "
                        "GPU); allowed here: auto, cpu")
    return torch.device(device)


def _plugin_line(exc: BaseException, where: str) -> str:
    """A plug-in's failure in one line, named after the setting that brought it."""
    if isinstance(exc, SystemExit):
        return f"{where}: the plug-in called sys.exit({exc.code!r}); a plug-in must return or raise"
    text = rules.first_line(exc)
    return text if isinstance(exc, ValueError) else f"{where}: {type(exc).__name__}: {text}"


def check_activation(name: str, params: dict[str, Any]) -> None:
    """SpecError unless ``name`` is known and runs on a few numbers with ``params``, giving a
    float tensor of the same shape (a plug-in is tried here, not inside a job)."""
    if name not in ACTIVATIONS:
        raise SpecError(f"activation={name!r} is not allowed; allowed: {', '.join(ACTIVATIONS)}")
    x = torch.linspace(-2, 2, 5)
    try:
        y = get_activation(name, params)(x)
    except (Exception, SystemExit) as exc:  # a wrong parameter fails only when it runs
        raise SpecError(_plugin_line(exc, f"activation={name}")) from None
    if not (isinstance(y, torch.Tensor) and y.shape == x.shape and y.is_floating_point()):
        got = (f"a {y.dtype} tensor of shape {tuple(y.shape)}" if isinstance(y, torch.Tensor)
               else type(y).__name__)
        raise SpecError(f"activation={name} returned {got} for 5 numbers; an activation must "
                        "map a float tensor to one of the same shape")


def _finite_params(family: str, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(f"{family}.{key}={value!r} is not allowed; it must be a finite number")


def check_bias(recipe: BiasRecipe, name: str, params: dict[str, Any], dtype: str) -> None:
    """SpecError when the bias's values or variance overflow ``dtype`` (``bias.bound=1e300``)."""
    limit = float(torch.finfo(getattr(torch, dtype)).max)
    try:
        sigma_b2 = recipe.sigma_b2  # a Python float: 1e300 ** 2 raises, not inf
    except OverflowError:
        sigma_b2 = math.inf
    if not (math.isfinite(sigma_b2) and abs(recipe.scale) <= limit):
        given = ", ".join(f"bias.{k}={v!r}" for k, v in params.items()) or f"bias={name}"
        raise SpecError(f"{given} is not allowed: the bias's values or their square overflow "
                        f"{dtype} (largest {limit:.3g}); give a smaller scale")


@dataclass(frozen=True)
class Settings:
    """What every job shares: the schemes and their parameters, trials, inputs, seed,
    device, dtype and whether a backward pass runs."""

    init: str = "kaiming"
    init_params: dict[str, Any] = field(default_factory=dict)
    activation: str = "relu"
    activation_params: dict[str, Any] = field(default_factory=dict)
    bias: str = "zero"
    bias_params: dict[str, Any] = field(default_factory=dict)
    trials: int = 16
    batch: int = 1
    input_correlation: float = 0.0
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    gradients: bool = True

    def _normalize(self) -> None:
        """None parameters as {}; NumPy integers as ints (frozen: set through object)."""
        for name in ("init_params", "activation_params", "bias_params"):
            value = getattr(self, name)
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise SpecError(f"{name}={value!r} is not allowed; give a dict of parameters")
            object.__setattr__(self, name, dict(value))
        for name in ("trials", "batch"):
            object.__setattr__(self, name, rules.positive_int(name, getattr(self, name)))
        object.__setattr__(self, "seed", rules.seed(self.seed))

    def _check_settings(self) -> None:
        self._normalize()
        if self.activation != "model":
            check_activation(self.activation, self.activation_params)
        rules.boolean("gradients", self.gradients)
        c0 = rules.number("input_correlation", self.input_correlation, 0.0, 1.0,
                          high_open=True)
        if c0 and self.batch < 2:
            raise SpecError(f"input_correlation={c0!r} needs batch >= 2 (a correlation is "
                            f"between two inputs); batch={self.batch}")
        rules.choice("bias", self.bias, tuple(BIASES))
        rules.choice("device", self.device, DEVICES)
        rules.choice("dtype", self.dtype, DTYPES)
        for family in ("init", "activation", "bias"):
            _finite_params(family, getattr(self, f"{family}_params"))

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def _scheme_settings(self) -> dict[str, Any]:
        return {"init": self.init,
                **{f"init_{k}": v for k, v in sorted(self.init_params.items()) if v is not None},
                "activation": self.activation,
                **{f"activation_{k}": v for k, v in sorted(self.activation_params.items())
                   if v is not None}}


def recipe_error(exc: BaseException, init: str) -> SpecError:
    """A scheme's refusal in the command line's words."""
    if isinstance(exc, OverflowError):
        return SpecError(f"init={init} is not allowed with these parameters: its weight "
                         "variance x fan_in overflows a float; give a smaller scale")
    if isinstance(exc, SystemExit):
        return SpecError(_plugin_line(exc, f"init={init}"))
    msg = rules.first_line(exc)
    if isinstance(exc, TypeError):
        msg = f"init={init}: a parameter has the wrong type ({msg})"
    elif not re.search(r"\binit[.=]", msg):  # a parameter's own: name it as on the command line
        msg = f"init.{msg} (init={init})"
    return SpecError(msg)


@dataclass(frozen=True)
class ChainSpec(Settings):
    """One chain experiment: ``x_l = act(W_l @ x_{l-1} + b_l)`` for l = 1..depth.

    The command line's schema (``initlab.config.Config``) takes its chain settings,
    their types and defaults from these fields (``ENGINE_SETTINGS``), so the defaults
    here are the command line's.

    ``trials`` independent weight draws, each applied to ``batch`` input
    vectors ``x_0 ~ N(0, I)`` (pairwise correlated ``input_correlation`` = c0 in
    [0, 1)); ``weights='shared'`` reuses one matrix (and bias) for every layer
    (fast.ai course style) instead of a fresh draw per layer. ``bias`` names a
    scheme of ``initlab.biases`` (``zero``: the seeds' bias-free chain).
    ``keep_fraction`` in [0, 1]: with gradients, the forward pass's weights are
    kept for the backward pass when they fit in this fraction of the free memory,
    else drawn again (0: always drawn again, memory flat in depth); the numbers
    are the same either way, only time and memory change.
    """

    width: int = 512
    depth: int = 100
    weights: str = "fresh"
    keep_fraction: float = KEEP_FRACTION

    def __post_init__(self) -> None:
        if self.init not in SCHEMES:
            raise SpecError(f"init={self.init!r} is not allowed; allowed: {', '.join(SCHEMES)}")
        self._check_settings()
        object.__setattr__(self, "width", rules.integer(
            "width", self.width, minimum=2, why=" (a std over the units of a layer needs two)"))
        object.__setattr__(self, "depth", rules.positive_int("depth", self.depth))
        rules.number("keep_fraction", self.keep_fraction, 0.0, 1.0, why=" (0: always redraw)")
        rules.choice("weights", self.weights, WEIGHTS)
        try:
            if not math.isfinite(self.weight_recipe().sigma_w2):
                raise OverflowError
        except (OverflowError, SystemExit, ValueError, TypeError) as exc:
            raise recipe_error(exc, self.init) from None
        try:  # after the scheme's own checks: a scheme may bring its own bias
            recipe = self.bias_recipe()
        except (ValueError, TypeError) as exc:
            raise SpecError(rules.first_line(exc)) from None
        check_bias(recipe, self.bias, self.bias_params, self.dtype)

    def weight_recipe(self) -> WeightRecipe:
        """The scheme's recipe (base distribution and scale) for a width x width layer."""
        context = {"activation": self.activation, "activation_params": self.activation_params}
        return make_recipe(self.init, self.width, self.width, self.init_params, context)

    def bias_recipe(self) -> BiasRecipe:
        """The bias scheme's recipe (base distribution and scale) for a width-wide layer.

        A weight scheme that prescribes its own bias (``critical``: N(0, sigma_b2))
        supplies it while ``bias`` is ``zero``; naming another bias with it is refused.
        """
        recipe = self.weight_recipe()
        own = recipe.bias_sigma_b2
        if self.bias != "zero" and (own is not None or self.init == "critical"):
            raise ValueError(f"init={self.init} brings its own bias (N(0, sigma_b2); choose "
                             "it with init.sigma_b2); leave bias=zero")
        if self.bias != "zero" and recipe.normalize:
            raise ValueError(f"init={self.init} rescales each layer's W x to unit std, and "
                             "initlab's theory of that has no bias; leave bias=zero")
        if own is not None:
            return make_bias("normal", self.width, {"sigma_b2": own})
        return make_bias(self.bias, self.width, self.bias_params)

    def _bias_settings(self) -> dict[str, Any]:
        """The bias the chain runs with: a scheme's own (``critical``) shows as what it is."""
        own = self.weight_recipe().bias_sigma_b2
        if own is not None:
            return {"bias": "normal", "bias_sigma_b2": own}
        return {"bias": self.bias,
                **{f"bias_{k}": v for k, v in sorted(self.bias_params.items()) if v is not None}}

    def describe(self) -> dict[str, Any]:
        """Flat, JSON-friendly settings (the columns every table row carries).

        Every setting is here (``gradients`` and the requested ``device`` too),
        so two jobs that differ in any setting are told apart by it. The bias is the
        one the chain runs with: ``init=critical``'s own N(0, sigma_b2) shows as
        ``bias=normal, bias_sigma_b2=...``.
        """
        return {**self._scheme_settings(), **self._bias_settings(),
                **{name: getattr(self, name) for name in ENGINE_SETTINGS}}


assert {f.name for f in fields(ChainSpec)} == {*SCHEME_SETTINGS, *ENGINE_SETTINGS}, \
    "ENGINE_SETTINGS must name every ChainSpec field that is not a scheme or activation"
