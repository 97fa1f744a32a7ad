"""ChainSpec: the validated description of one experiment, the engine's only input.

A spec is plain data (no Hydra, no files). Building one checks every field
and raises ``SpecError`` whose message is one line naming the bad value and
what is allowed; the command line prints exactly that line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from initlab.activations import ACTIVATIONS, get_activation
from initlab.biases import BIASES, BiasRecipe, make_bias
from initlab.schemes import SCHEMES, WeightRecipe, make_recipe

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")
WEIGHTS = ("fresh", "shared")
#: Seeds are fed to torch generators, which take a signed 64-bit integer.
SEED_LIMIT = 2**63
#: Default ``keep_fraction``: with gradients, the forward pass's weights are kept for the
#: backward pass when a chunk's fit in this fraction of the free memory. A quarter leaves
#: room for the rest of the pass and for other processes (a sweep's joblib workers).
KEEP_FRACTION = 0.25
#: The spec's fields that are not a scheme or an activation: plain settings, one per
#: command-line key, in this order in ``describe()`` (the command line's schema
#: ``initlab.config.Config`` is built from them).
ENGINE_SETTINGS = ("depth", "width", "trials", "batch", "input_correlation", "seed", "dtype",
                   "weights", "device", "gradients", "keep_fraction")
#: The fields naming a scheme, an activation and a bias scheme with their parameters.
SCHEME_SETTINGS = ("init", "init_params", "activation", "activation_params", "bias",
                   "bias_params")


class SpecError(ValueError):
    """A setting the user can fix; its message is one line."""


def _first_line(exc: BaseException, where: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if isinstance(exc, ValueError) else f"{where}: {type(exc).__name__}: {text}"


def _exit_line(exc: SystemExit, where: str) -> str:
    return f"{where}: the plug-in called sys.exit({exc.code!r}); a plug-in must return or raise"


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{name}={value!r} is not allowed; {name} must be an integer >= 1")
    return value


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SpecError(f"{name}={value!r} is not allowed; allowed: {', '.join(allowed)}")
    return value


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without CUDA is an error."""
    _choice("device", device, DEVICES)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError(
            "device='cuda' is not available on this machine (torch sees no CUDA GPU); "
            "allowed here: auto, cpu"
        )
    return torch.device(device)


@dataclass(frozen=True)
class ChainSpec:
    """One chain experiment: ``x_l = act(W_l @ x_{l-1} + b_l)`` for l = 1..depth.

    The one settings model: the command line's schema (``initlab.config.Config``)
    takes its engine settings, their types and defaults from these fields
    (``ENGINE_SETTINGS``), so the defaults here are the command line's.

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

    init: str = "kaiming"
    init_params: dict[str, Any] = field(default_factory=dict)
    activation: str = "relu"
    activation_params: dict[str, Any] = field(default_factory=dict)
    bias: str = "zero"
    bias_params: dict[str, Any] = field(default_factory=dict)
    width: int = 512
    depth: int = 100
    trials: int = 16
    batch: int = 1
    input_correlation: float = 0.0
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    weights: str = "fresh"
    gradients: bool = True
    keep_fraction: float = KEEP_FRACTION

    def __post_init__(self) -> None:
        if self.init not in SCHEMES:
            raise SpecError(f"init={self.init!r} is not allowed; allowed: {', '.join(SCHEMES)}")
        if self.activation not in ACTIVATIONS:
            raise SpecError(
                f"activation={self.activation!r} is not allowed; allowed: {', '.join(ACTIVATIONS)}"
            )
        try:
            get_activation(self.activation, self.activation_params)(torch.linspace(-2, 2, 5))
        except SystemExit as exc:  # a plug-in that calls sys.exit is the plug-in's failure
            raise SpecError(_exit_line(exc, f"activation={self.activation}")) from None
        except Exception as exc:  # a wrong parameter type fails only when the function runs
            raise SpecError(_first_line(exc, f"activation={self.activation}")) from None
        w = self.width
        if isinstance(w, bool) or not isinstance(w, int) or w < 2:
            raise SpecError(f"width={w!r} is not allowed; width must be an integer >= 2 "
                            "(a std over the units of a layer needs two)")
        for name in ("depth", "trials", "batch"):
            _positive_int(name, getattr(self, name))
        s = self.seed
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < SEED_LIMIT:
            raise SpecError(f"seed={s!r} is not allowed; seed must be an integer with "
                            "0 <= seed < 2**63")
        if not isinstance(self.gradients, bool):
            raise SpecError(f"gradients={self.gradients!r} is not allowed; "
                            "gradients must be true or false")
        f = self.keep_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f <= 1:
            raise SpecError(f"keep_fraction={f!r} is not allowed; keep_fraction must be a "
                            "number with 0 <= keep_fraction <= 1 (0: always redraw)")
        c0 = self.input_correlation
        if isinstance(c0, bool) or not isinstance(c0, (int, float)) or not 0 <= c0 < 1:
            raise SpecError(f"input_correlation={c0!r} is not allowed; input_correlation must "
                            "be a number with 0 <= input_correlation < 1")
        if c0 and self.batch < 2:
            raise SpecError(f"input_correlation={c0!r} needs batch >= 2 (a correlation is "
                            f"between two inputs); batch={self.batch}")
        _choice("bias", self.bias, tuple(BIASES))
        _choice("device", self.device, DEVICES)
        _choice("dtype", self.dtype, DTYPES)
        _choice("weights", self.weights, WEIGHTS)
        for family, values in (("init", self.init_params), ("activation", self.activation_params),
                               ("bias", self.bias_params)):
            for key, value in values.items():
                if isinstance(value, float) and not math.isfinite(value):
                    raise SpecError(f"{family}.{key}={value!r} is not allowed; it must be a "
                                    "finite number")
        try:
            recipe = self.weight_recipe()
            if not math.isfinite(recipe.sigma_w2):
                raise OverflowError
        except OverflowError:
            raise SpecError(f"init={self.init} with {self.init_params} is not allowed: its "
                            "weight variance x fan_in overflows a float; give a smaller "
                            "scale") from None
        except SystemExit as exc:
            raise SpecError(_exit_line(exc, f"init={self.init}")) from None
        except (ValueError, TypeError) as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if isinstance(exc, TypeError):
                msg = f"init={self.init}: a parameter has the wrong type ({msg})"
            elif "init" not in msg:  # a parameter's own message: name it as on the command line
                msg = f"init.{msg} (init={self.init})"
            raise SpecError(msg) from None
        try:  # after the scheme's own checks: a scheme may bring its own bias
            self.bias_recipe()
        except (ValueError, TypeError) as exc:
            raise SpecError(str(exc).strip().splitlines()[0]) from None

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

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
        return {
            "init": self.init,
            **{f"init_{k}": v for k, v in sorted(self.init_params.items()) if v is not None},
            "activation": self.activation,
            **{f"activation_{k}": v for k, v in sorted(self.activation_params.items())
               if v is not None},
            **self._bias_settings(),
            **{name: getattr(self, name) for name in ENGINE_SETTINGS},
        }


assert {f.name for f in fields(ChainSpec)} == {*SCHEME_SETTINGS, *ENGINE_SETTINGS}, \
    "ENGINE_SETTINGS must name every ChainSpec field that is not a scheme or activation"
