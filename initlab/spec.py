"""ChainSpec: the validated description of one experiment, the engine's only input.

A spec is plain data (no Hydra, no files). Building one checks every field
and raises ``SpecError`` whose message is one line naming the bad value and
what is allowed; the command line prints exactly that line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from initlab.activations import ACTIVATIONS, get_activation
from initlab.schemes import SCHEMES, make_draw

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64")
WEIGHTS = ("fresh", "shared")


class SpecError(ValueError):
    """A setting the user can fix; its message is one line."""


def _first_line(exc: BaseException, where: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if isinstance(exc, ValueError) else f"{where}: {type(exc).__name__}: {text}"


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
    """One chain experiment: ``x_l = act(W_l @ x_{l-1})`` for l = 1..depth.

    ``trials`` independent weight draws, each applied to ``batch`` input
    vectors ``x_0 ~ N(0, I)``; ``weights='shared'`` reuses one matrix for every
    layer (fast.ai course style) instead of a fresh draw per layer.
    """

    init: str = "kaiming"
    init_params: dict[str, Any] = field(default_factory=dict)
    activation: str = "relu"
    activation_params: dict[str, Any] = field(default_factory=dict)
    width: int = 512
    depth: int = 100
    trials: int = 1
    batch: int = 1
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    weights: str = "fresh"
    gradients: bool = False

    def __post_init__(self) -> None:
        if self.init not in SCHEMES:
            raise SpecError(f"init={self.init!r} is not allowed; allowed: {', '.join(SCHEMES)}")
        if self.activation not in ACTIVATIONS:
            raise SpecError(
                f"activation={self.activation!r} is not allowed; allowed: {', '.join(ACTIVATIONS)}"
            )
        try:
            get_activation(self.activation, self.activation_params)(torch.linspace(-2, 2, 5))
        except Exception as exc:  # a wrong parameter type fails only when the function runs
            raise SpecError(_first_line(exc, f"activation={self.activation}")) from None
        for name in ("width", "depth", "trials", "batch"):
            _positive_int(name, getattr(self, name))
        if self.width < 2:
            raise SpecError(f"width={self.width!r} is not allowed; width must be an integer >= 2 "
                            "(a spread over units needs two)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SpecError(f"seed={self.seed!r} is not allowed; seed must be an integer >= 0")
        _choice("device", self.device, DEVICES)
        _choice("dtype", self.dtype, DTYPES)
        _choice("weights", self.weights, WEIGHTS)
        for key, value in self.init_params.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise SpecError(f"init.{key}={value!r} is not allowed; it must be a finite number")
        try:
            self.draw()
        except (ValueError, TypeError) as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if isinstance(exc, TypeError):
                msg = f"init={self.init}: a parameter has the wrong type ({msg})"
            elif "init" not in msg:  # a parameter's own message: name it as on the command line
                msg = f"init.{msg} (init={self.init})"
            raise SpecError(msg) from None

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def draw(self):
        """The scheme's draw (base distribution and scale) for a width x width layer."""
        context = {"activation": self.activation, "activation_params": self.activation_params}
        return make_draw(self.init, self.width, self.width, self.init_params, context)

    def describe(self) -> dict[str, Any]:
        """Flat, JSON-friendly description (the columns every table row carries)."""
        return {
            "init": self.init,
            **{f"init_{k}": v for k, v in sorted(self.init_params.items()) if v is not None},
            "activation": self.activation,
            **{f"activation_{k}": v for k, v in sorted(self.activation_params.items())
               if v is not None},
            "depth": self.depth,
            "width": self.width,
            "trials": self.trials,
            "batch": self.batch,
            "seed": self.seed,
            "dtype": self.dtype,
            "weights": self.weights,
        }
