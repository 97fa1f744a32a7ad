"""Bias schemes: each one a base distribution times a scale, as the weight schemes.

A bias scheme is a small function ``(fan_in, **params) -> BiasRecipe``. The
chain becomes ``x_l = act(W_l x_{l-1} + b_l)``; ``b_l`` has ``width`` entries,
drawn from its own keyed stream (seed, layer, trial) so every property of the
weights holds for biases too: same seed same numbers, prefixes, shared draws
across a sweep (every bias scheme scales the *same* N(0, 1) vector). The
backward pass needs no bias (dL/dx does not involve it; the pre-activations it
uses come from the forward pass), so biases are never drawn twice.

The literature's parameter is the bias variance ``sigma_b2`` (Poole et al.
2016, Schoenholz et al. 2017): it enters the mean-field variance map as
``q_l = sigma_w2 E[phi(h)^2] + sigma_b2``, independent of the width.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

BIAS_BASES = ("zero", "normal", "uniform", "constant")


@dataclass(frozen=True)
class BiasRecipe:
    """How to draw a bias vector: ``scale * base``.

    ``normal`` base is N(0, 1) (``scale`` is the std); ``uniform`` base is
    U(-1, 1), erf of the normal draw (``scale`` is the bound, std = scale /
    sqrt(3)); ``constant`` is all ones (``scale`` is the value); ``zero`` is 0.
    """

    base: str
    scale: float

    @property
    def sigma_b2(self) -> float:
        """E[b^2]: what the bias adds to the pre-activation's second moment."""
        if self.base == "zero":
            return 0.0
        if self.base == "uniform":
            return self.scale**2 / 3.0
        return self.scale**2  # normal: variance; constant: value squared

    @property
    def mean(self) -> float:
        return self.scale if self.base == "constant" else 0.0


def _finite(name: str, value: float, minimum: float | None = None) -> float:
    value = float(value)
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        need = "a finite number" + (f" >= {minimum:g}" if minimum is not None else "")
        raise ValueError(f"bias.{name}={value!r} is not allowed; {name} must be {need}")
    return value


def zero(fan_in: int) -> BiasRecipe:
    """b = 0: the chain of the seeds, ``x_l = act(W_l x_{l-1})``. torch: ``nn.init.zeros_``."""
    return BiasRecipe("zero", 0.0)


def normal(fan_in: int, sigma_b2: float = 0.05) -> BiasRecipe:
    """b ~ N(0, sigma_b2): the bias of mean-field theory (Poole et al. 2016).

    The default 0.05 is Schoenholz et al. (2017)'s Fig. 1 slice, where tanh's
    order-to-chaos transition sits near sigma_w2 = 1.76.
    torch: ``nn.init.normal_(b, 0, sqrt(sigma_b2))``.
    """
    return BiasRecipe("normal", math.sqrt(_finite("sigma_b2", sigma_b2, 0.0)))


def uniform(fan_in: int, bound: float = 0.1) -> BiasRecipe:
    """b ~ U(-bound, bound), so sigma_b2 = bound^2 / 3. torch: ``nn.init.uniform_(b, -a, a)``."""
    return BiasRecipe("uniform", _finite("bound", bound, 0.0))


def torch_default(fan_in: int) -> BiasRecipe:
    """b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)): what ``nn.Linear.reset_parameters`` does.

    torch: ``bound = 1 / math.sqrt(fan_in); init.uniform_(self.bias, -bound, bound)``
    (seed 003 quotes it). Its sigma_b2 = 1 / (3 fan_in) vanishes with the width.
    """
    return BiasRecipe("uniform", 1.0 / math.sqrt(fan_in))


def constant(fan_in: int, value: float = 0.1) -> BiasRecipe:
    """b = value for every unit (e.g. 0.1 or 0.01 to keep ReLU units alive, as some do)."""
    return BiasRecipe("constant", _finite("value", value))


BIASES: dict[str, Callable[..., BiasRecipe]] = {
    "zero": zero,
    "normal": normal,
    "uniform": uniform,
    "torch_default": torch_default,
    "constant": constant,
}


def make_bias(name: str, fan_in: int, params: dict | None = None) -> BiasRecipe:
    """The recipe of bias scheme ``name`` for a layer with ``fan_in`` inputs."""
    if name not in BIASES:
        raise ValueError(f"bias={name!r} is not allowed; allowed: {', '.join(BIASES)}")
    params = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        return BIASES[name](fan_in, **params)
    except TypeError:
        import inspect

        allowed = [p for p in inspect.signature(BIASES[name]).parameters if p != "fan_in"]
        bad = ", ".join(sorted(set(params) - set(allowed)))
        raise ValueError(f"bias.{bad} is not a parameter of bias={name}; "
                         f"allowed: {', '.join(allowed) or 'none'}") from None
