"""Initialization schemes: each one a base distribution times a gain.

A scheme is a small function ``(fan_in, fan_out, **params) -> Draw``. It says
which *base* distribution to draw (``zero``, ``normal`` = N(0, 1) or
``uniform`` = U(-1, 1)) and the *scale* to multiply it by. Weights have torch's
shape ``(out, in)``, so ``fan_in = W.size(1)`` and ``fan_out = W.size(0)``.

Splitting a scheme into base and scale is what makes comparisons paired: with
one seed, every normal-family scheme (``normal``, ``scaled``, ``kaiming``,
``xavier`` normal variant) multiplies the *same* N(0, 1) matrices, and every
uniform-family scheme the same U(-1, 1) matrices (common random numbers).

Each scheme matches its ``torch.nn.init`` counterpart (see ``TORCH_EQUIVALENT``
and ``tests/test_schemes.py``); the formulas follow ``torch/nn/init.py``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

BASES = ("zero", "normal", "uniform")
MODES = ("fan_in", "fan_out")
DISTRIBUTIONS = ("normal", "uniform")


@dataclass(frozen=True)
class Draw:
    """How to draw a weight matrix: ``scale * base`` with base in ``BASES``.

    ``normal`` base is N(0, 1), so ``scale`` is the std; ``uniform`` base is
    U(-1, 1), so ``scale`` is the bound (std = scale / sqrt(3)).
    """

    base: str
    scale: float

    @property
    def std(self) -> float:
        """Standard deviation of one weight."""
        if self.base == "zero":
            return 0.0
        if self.base == "uniform":
            return self.scale / math.sqrt(3.0)
        return self.scale


def calculate_gain(nonlinearity: str, negative_slope: float = 0.0) -> float:
    """Recommended gain for a nonlinearity, as ``torch.nn.init.calculate_gain``.

    ================= ==============================
    nonlinearity      gain
    ================= ==============================
    linear / none     1
    sigmoid           1
    tanh              5/3
    relu              sqrt(2)
    leaky_relu        sqrt(2 / (1 + negative_slope^2))
    selu              3/4
    ================= ==============================
    """
    table = {
        "linear": 1.0,
        "none": 1.0,
        "sigmoid": 1.0,
        "tanh": 5.0 / 3.0,
        "relu": math.sqrt(2.0),
        "selu": 3.0 / 4.0,
    }
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1.0 + negative_slope**2))
    if nonlinearity not in table:
        allowed = ", ".join(sorted([*table, "leaky_relu"]))
        raise ValueError(f"unsupported nonlinearity {nonlinearity!r}; allowed: {allowed}")
    return table[nonlinearity]


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; allowed: {', '.join(allowed)}")
    return value


def _fan(fan_in: int, fan_out: int, mode: str) -> int:
    return fan_in if _choice("mode", mode, MODES) == "fan_in" else fan_out


def zero(fan_in: int, fan_out: int) -> Draw:
    """All weights zero: every layer after the first outputs ``act(0)``.

    The degenerate case of seed 000: no signal passes, and every unit of a
    layer carries the same value. torch: ``nn.init.zeros_``.
    """
    return Draw("zero", 0.0)


def normal(fan_in: int, fan_out: int, std: float = 1.0) -> Draw:
    """W ~ N(0, std^2), ignoring the layer's size.

    ``std=1`` explodes a deep linear chain (each layer multiplies the signal's
    std by sqrt(fan_in)); ``std=0.01`` makes it vanish. Seed 001, experiments
    1 and 2. torch: ``nn.init.normal_(w, 0, std)``.
    """
    if not std >= 0:
        raise ValueError(f"std={std!r} is not allowed; std must be >= 0")
    return Draw("normal", float(std))


def scaled(fan_in: int, fan_out: int) -> Draw:
    """W ~ N(0, 1) * sqrt(1 / fan_in): unit gain for a linear layer.

    Keeps Var(W x) = Var(x) when there is no activation (seed 001, experiment
    3; LeCun et al., "Efficient BackProp", 1998). torch:
    ``nn.init.normal_(w, 0, 1 / sqrt(fan_in))``.
    """
    return Draw("normal", math.sqrt(1.0 / fan_in))


def xavier(fan_in: int, fan_out: int, distribution: str = "uniform", gain: float = 1.0) -> Draw:
    """Xavier/Glorot: Var(W) = gain^2 * 2 / (fan_in + fan_out).

    uniform: W ~ U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out));
    normal:  W ~ N(0, s^2), s = gain * sqrt(2 / (fan_in + fan_out)).

    Glorot & Bengio, "Understanding the difficulty of training deep
    feedforward neural networks", AISTATS 2010. Seed 001, experiment 5.
    torch: ``nn.init.xavier_uniform_`` / ``nn.init.xavier_normal_``.
    """
    _choice("distribution", distribution, DISTRIBUTIONS)
    if not gain > 0:
        raise ValueError(f"gain={gain!r} is not allowed; gain must be > 0")
    if distribution == "uniform":
        return Draw("uniform", gain * math.sqrt(6.0 / (fan_in + fan_out)))
    return Draw("normal", gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming(
    fan_in: int,
    fan_out: int,
    mode: str = "fan_in",
    distribution: str = "normal",
    negative_slope: float = 0.0,
) -> Draw:
    """Kaiming/He: std = gain / sqrt(fan), gain = sqrt(2 / (1 + negative_slope^2)).

    normal:  W ~ N(0, std^2)  (seed 001, experiment 6: randn * sqrt(2 / 512));
    uniform: W ~ U(-b, b), b = sqrt(3) * std.
    ``mode`` picks fan = fan_in (preserves forward variance) or fan_out
    (preserves backward variance); ``negative_slope`` is the leaky-ReLU slope
    (0 = ReLU).

    He et al., "Delving Deep into Rectifiers", ICCV 2015. torch:
    ``nn.init.kaiming_normal_(w, a, mode, nonlinearity='leaky_relu')`` —
    with ``a=0`` that is the ReLU gain (torch's *default* a=0 with
    nonlinearity='leaky_relu' gives the same sqrt(2)).
    """
    _choice("distribution", distribution, DISTRIBUTIONS)
    std = calculate_gain("leaky_relu", negative_slope) / math.sqrt(_fan(fan_in, fan_out, mode))
    if distribution == "uniform":
        return Draw("uniform", math.sqrt(3.0) * std)
    return Draw("normal", std)


#: name -> scheme function. Add a scheme by adding a function here.
SCHEMES: dict[str, Callable[..., Draw]] = {
    "zero": zero,
    "normal": normal,
    "scaled": scaled,
    "xavier": xavier,
    "kaiming": kaiming,
}


def scheme_params(name: str) -> tuple[str, ...]:
    """Names of the keyword parameters a scheme accepts (besides the fans)."""
    sig = inspect.signature(get_scheme(name))
    return tuple(p for p in sig.parameters if p not in ("fan_in", "fan_out"))


def get_scheme(name: str) -> Callable[..., Draw]:
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(
            f"init={name!r} is not a known scheme; allowed: {', '.join(SCHEMES)}"
        ) from None


def make_draw(name: str, fan_in: int, fan_out: int, params: dict[str, Any] | None = None) -> Draw:
    """The draw of scheme ``name`` for a layer, with its parameters.

    Parameters a scheme does not take are ignored when they are ``None``
    and refused otherwise, so a typo never silently does nothing.
    """
    fn = get_scheme(name)
    accepted = scheme_params(name)
    kwargs = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if key not in accepted:
            allowed = ", ".join(accepted) or "none"
            raise ValueError(
                f"init.{key}={value!r} does not apply to init={name!r}; its parameters: {allowed}"
            )
        kwargs[key] = value
    return fn(fan_in, fan_out, **kwargs)


def fill_base_(tensor: torch.Tensor, base: str, generator: torch.Generator | None = None):
    """Fill ``tensor`` in place with the base distribution: 0, N(0, 1) or U(-1, 1)."""
    if base == "zero":
        return tensor.zero_()
    if base == "normal":
        return tensor.normal_(generator=generator)
    if base == "uniform":
        return tensor.uniform_(-1.0, 1.0, generator=generator)
    raise ValueError(f"base={base!r} is not allowed; allowed: {', '.join(BASES)}")


def init_(
    tensor: torch.Tensor, name: str, generator: torch.Generator | None = None, **params: Any
) -> torch.Tensor:
    """Initialize a 2-D weight ``(out, in)`` in place with scheme ``name``, like torch.nn.init.

    >>> w = init_(torch.empty(256, 128), "kaiming", mode="fan_out")
    """
    if tensor.dim() != 2:
        raise ValueError(f"tensor of shape {tuple(tensor.shape)} is not allowed; need (out, in)")
    fan_out, fan_in = tensor.shape
    draw = make_draw(name, fan_in, fan_out, params)
    with torch.no_grad():
        return fill_base_(tensor, draw.base, generator).mul_(draw.scale)
