"""Activation functions applied after each matmul: ``x = act(W @ x)``.

Each entry maps a name to an elementwise torch function. ``none`` is the
identity (a purely linear chain, seed 001 experiments 1-3).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def none(x: torch.Tensor) -> torch.Tensor:
    """Identity: no nonlinearity."""
    return x


def tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x): odd, slope 1 at 0, saturates at +-1 (seed 001, experiments 4-5)."""
    return torch.tanh(x)


def relu(x: torch.Tensor) -> torch.Tensor:
    """max(x, 0): halves the second moment of a symmetric input (seed 001, exp. 5-6)."""
    return torch.relu(x)


#: name -> activation. Add an activation by adding a function here.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "none": none,
    "tanh": tanh,
    "relu": relu,
}


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"activation={name!r} is not a known activation; allowed: {', '.join(ACTIVATIONS)}"
        ) from None
