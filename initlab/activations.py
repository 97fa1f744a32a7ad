"""Activation functions applied after each matmul: ``x = act(W @ x)``.

Each entry maps a name to an elementwise torch function; keyword parameters
(``negative_slope`` of ``leaky_relu``) come from the config. ``none`` is the
identity (a purely linear chain, seed 001 experiments 1-3). A user's own
activation plugs in from the config with ``_target_`` (see ``register``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F


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
