"""Activation functions applied after each matmul: ``x = act(W @ x)``.

Each entry maps a name to an elementwise torch function; keyword parameters
(``negative_slope`` of ``leaky_relu``) come from the config. ``none`` is the
identity (a purely linear chain, seed 001 experiments 1-3). A user's own
activation plugs in from the config with ``_target_`` (see ``register``).

Every built-in activation has its derivative in closed form (``derivative``):
the backward pass multiplies by it instead of running autograd, which a
plug-in still gets.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

#: SELU's constants (Klambauer et al. 2017), as torch's F.selu.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
#: softplus is x above this (torch's default ``threshold`` for beta = 1).
SOFTPLUS_THRESHOLD = 20.0


def none(x: torch.Tensor) -> torch.Tensor:
    """Identity: no nonlinearity."""
    return x


def tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x): odd, slope 1 at 0, saturates at +-1 (seed 001, experiments 4-5)."""
    return torch.tanh(x)


def relu(x: torch.Tensor) -> torch.Tensor:
    """max(x, 0): halves the second moment of a symmetric input (seed 001, exp. 5-6)."""
    return torch.relu(x)


def leaky_relu(x: torch.Tensor, negative_slope: float = 0.01) -> torch.Tensor:
    """max(x, 0) + negative_slope * min(x, 0) (Maas et al. 2013)."""
    return F.leaky_relu(x, negative_slope)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """1 / (1 + e^-x): not zero-centred, so the mean drifts to a fixed point near 0.5."""
    return torch.sigmoid(x)


def gelu(x: torch.Tensor) -> torch.Tensor:
    """x * Phi(x), Phi the standard normal CDF (Hendrycks & Gimpel 2016)."""
    return F.gelu(x)


def selu(x: torch.Tensor) -> torch.Tensor:
    """Scaled ELU, self-normalizing with LeCun-normal weights (Klambauer et al. 2017)."""
    return F.selu(x)


def silu(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(x), a.k.a. swish (Ramachandran et al. 2017)."""
    return F.silu(x)


def softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + e^x): a smooth, always-positive ReLU."""
    return F.softplus(x)


#: name -> activation. Add an activation by adding a function here.
ACTIVATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "none": none,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "sigmoid": sigmoid,
    "gelu": gelu,
    "selu": selu,
    "silu": silu,
    "softplus": softplus,
}


def _ones(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """none' = 1."""
    return torch.ones_like(x)


def _tanh_grad(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """tanh' = 1 - tanh^2 = 1 - y^2 (from the output, as autograd: no second tanh)."""
    return 1 - y * y


def _relu_grad(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """relu' = 1 for x > 0, else 0 (0 at x = 0, as torch's threshold_backward)."""
    return (x > 0).to(x.dtype)


def _leaky_relu_grad(x: torch.Tensor, y: torch.Tensor,
                     negative_slope: float = 0.01) -> torch.Tensor:
    """leaky_relu' = 1 for x > 0, else negative_slope (the slope at x = 0, as torch)."""
    return torch.where(x > 0, torch.ones_like(x), negative_slope)


def _sigmoid_grad(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sigmoid' = s (1 - s) = y (1 - y)."""
    return y * (1 - y)


def _gelu_grad(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """gelu' = Phi(x) + x phi(x), Phi the N(0, 1) CDF and phi = e^(-x^2/2) / sqrt(2 pi)."""
    cdf = 0.5 * (1 + torch.erf(x * (1 / math.sqrt(2))))
    return cdf + x * torch.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))


def _selu_grad(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """selu' = scale for x > 0, else scale alpha e^x (the left branch at x = 0, as torch)."""
    return torch.where(x > 0, SELU_SCALE, SELU_SCALE * SELU_ALPHA * torch.exp(x))


def _silu_grad(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """silu' = s + x s (1 - s) = s (1 + x (1 - s)), s = sigmoid(x)."""
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


def _softplus_grad(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """softplus' = sigmoid(x), and 1 above ``SOFTPLUS_THRESHOLD`` where softplus is x."""
    return torch.where(x > SOFTPLUS_THRESHOLD, 1.0, torch.sigmoid(x))


#: built-in activation -> its derivative d(x, y) with y = act(x) (the same keyword
#: parameters). Keyed by the function, not the name: a plug-in registered under a
#: built-in's name gets autograd, not the built-in's derivative.
DERIVATIVES: dict[Callable[..., torch.Tensor], Callable[..., torch.Tensor]] = {
    none: _ones,
    tanh: _tanh_grad,
    relu: _relu_grad,
    leaky_relu: _leaky_relu_grad,
    sigmoid: _sigmoid_grad,
    gelu: _gelu_grad,
    selu: _selu_grad,
    silu: _silu_grad,
    softplus: _softplus_grad,
}


def derivative(act: Callable) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """The closed-form derivative ``d(x, y) = act'(x)`` (y = act(x)) of an activation from
    ``get_activation``, its parameters bound; None for a plug-in (autograd's job)."""
    fn, kwargs = (act.func, act.keywords) if isinstance(act, partial) else (act, {})
    grad = DERIVATIVES.get(fn)
    if grad is None:
        return None
    return partial(grad, **kwargs) if kwargs else grad


#: The activations initlab ships (``register`` adds users' own to ``ACTIVATIONS``).
BUILTIN_ACTIVATIONS = tuple(ACTIVATIONS)


def register(name: str, fn: Callable[..., torch.Tensor]) -> None:
    """Make a user's activation known by ``name`` (the config's ``_target_`` does this)."""
    ACTIVATIONS[name] = fn


def activation_params(name: str) -> tuple[str, ...] | None:
    """Keyword parameters an activation takes besides x; None when Python cannot tell.

    A builtin such as ``torch.tanh`` has no signature ``inspect`` can read: its
    parameters are passed as given, and a wrong one fails when it is first called
    (``ChainSpec`` calls every activation once when it is built).
    """
    try:
        params = list(inspect.signature(ACTIVATIONS[name]).parameters)
    except (ValueError, TypeError):
        return None
    return tuple(params[1:])


def get_activation(name: str, params: dict[str, Any] | None = None) -> Callable:
    """The activation ``name`` with its parameters bound; ValueError for bad ones."""
    if name not in ACTIVATIONS:
        raise ValueError(
            f"activation={name!r} is not a known activation; allowed: {', '.join(ACTIVATIONS)}"
        )
    accepted = activation_params(name)
    kwargs = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if accepted is not None and key not in accepted:
            raise ValueError(
                f"activation.{key}={value!r} does not apply to activation={name!r}; "
                f"its parameters: {', '.join(accepted) or 'none'}"
            )
        kwargs[key] = value
    fn = ACTIVATIONS[name]
    return partial(fn, **kwargs) if kwargs else fn
