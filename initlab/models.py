"""Built-in models for the probe (``initlab.probe``): the seeds' convolutional networks.

* ``conv_chain``: seed 001's question 3 — 3x3 convolutions without padding take
  199x199 to 1x1 in 99 steps (199 -> 197 -> ... -> 1). A chain ``x = act(conv(x))``
  with ``channels`` channels throughout, so every layer has fan_in = channels * 9
  (``in_channels`` defaults to ``channels`` for that reason) and no bias by default:
  the matmul chain's question with convolutions.
* ``simple_cnn``: the stride-2 CNN of fastai's CNN chapter (seed 002): 28x28 in,
  conv(1, 8, ks=5), conv(8, 16), conv(16, 32), conv(32, 64), conv(64, 10, act=False),
  each stride 2 with padding ks // 2, then Flatten (28 -> 14 -> 7 -> 4 -> 2 -> 1).
  Its 8 -> 16 layer has 8 * 16 * 9 + 16 = 1,168 parameters (seed 002, question 15).

``input_shape(name, **settings)`` is the per-sample input shape a model expects; a
model job's settings are ``initlab.modelspec.ModelSpec``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from initlab.activations import get_activation


class Activation(nn.Module):
    """An ``initlab.activations`` function as a module (no parameters, so not hooked)."""

    def __init__(self, name: str = "relu", params: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.name = name
        self.fn = get_activation(name, params)

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not allowed; {name} must be an integer >= 1")
    return value


def check_conv_chain(channels: Any, depth: Any, size: Any) -> None:
    """ValueError (one line) unless ``conv_chain(channels, depth=depth, size=size)`` builds:
    positive integers with size - 2 depth >= 1 (each valid 3x3 convolution removes 2 pixels)."""
    for name, value in (("channels", channels), ("depth", depth), ("size", size)):
        _positive(name, value)
    if size - 2 * depth < 1:
        most = (size - 1) // 2  # the deepest chain this size allows (none below size 3)
        raise ValueError(f"size={size} is too small for depth={depth}: each valid 3x3 "
                         f"convolution removes 2 pixels, so size must be >= 2 depth + 1 = "
                         f"{2 * depth + 1}" + (f" (or depth <= {most})" if most >= 1 else ""))


def conv_sizes(depth: int = 99, size: int = 199) -> list[int]:
    """The signal's side at layers 0..depth: size, size - 2, ..., size - 2 depth."""
    return [size - 2 * layer for layer in range(depth + 1)]


def conv_chain(channels: int = 16, activation: str = "relu", depth: int = 99, size: int = 199,
               in_channels: int | None = None, activation_params: dict | None = None,
               bias: bool = False) -> nn.Sequential:
    """``depth`` x (Conv2d(3x3, no padding) + activation), mapping size x size to
    (size - 2 depth) x (size - 2 depth); the defaults are seed 001's 199x199 -> 1x1."""
    check_conv_chain(channels, depth, size)
    first = channels if in_channels is None else _positive("in_channels", in_channels)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Conv2d(first if i == 0 else channels, channels, 3, bias=bias))
        layers.append(Activation(activation, activation_params))
    return nn.Sequential(*layers)


def simple_cnn(activation: str = "relu", activation_params: dict | None = None,
               batchnorm: bool = False) -> nn.Sequential:
    """fastai's ``simple_cnn`` for MNIST (seed 002), the activation a setting.

    ``batchnorm``: a ``BatchNorm2d`` after each convolution but the last, before its
    activation, as the chapter's ``conv(ni, nf, ks, act, bn=True)``: conv -> bn -> act
    (the convolutions then have no bias: the batchnorm's shift replaces it).
    """
    def conv(ni: int, nf: int, ks: int = 3, act: bool = True) -> list[nn.Module]:
        norm = batchnorm and act
        layer: list[nn.Module] = [nn.Conv2d(ni, nf, ks, stride=2, padding=ks // 2,
                                            bias=not norm)]
        if norm:
            layer.append(nn.BatchNorm2d(nf))
        return layer + [Activation(activation, activation_params)] if act else layer

    return nn.Sequential(*conv(1, 8, ks=5), *conv(8, 16), *conv(16, 32), *conv(32, 64),
                         *conv(64, 10, act=False), nn.Flatten())


def input_shape(name: str, **settings: Any) -> tuple[int, ...]:
    """Per-sample input shape (channels, height, width) the model ``name`` expects."""
    if name == "conv_chain":
        channels = settings.get("in_channels") or settings.get("channels", 16)
        size = settings.get("size", 199)
        return (channels, size, size)
    if name == "simple_cnn":
        return (1, 28, 28)
    raise ValueError(f"model={name!r} is not allowed; allowed: conv_chain, simple_cnn")
