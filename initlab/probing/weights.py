"""Per-trial weights of a probed model: the model's own initialization or an initlab scheme.

Which parameters a scheme replaces: the ``weight`` of every module that has a
``weight`` Parameter with at least 2 dimensions (Linear, ConvNd, Embedding,
...), in ``named_modules`` order, and that module's ``bias``. Fans are
torch's (``torch.nn.init._calculate_fan_in_and_fan_out``): for a ConvNd,
fan_in = in_channels / groups * prod(kernel) and fan_out = out_channels * prod(kernel).
Other parameters (normalization layers' scales and shifts) keep the model's own.

Random streams are the chain engine's (``initlab.draws``): the weight of the
``k``-th re-initialized module (1-based) in trial ``t`` comes from
``weight_seed(seed, k, t)`` and its bias from ``bias_seed(seed, k, t)``, drawn on the
CPU in float32 (float64 for a float64 parameter) and copied to the parameter's device
and dtype. So a trial is redone alone, a GPU probe sees the CPU probe's weights, and
an ``nn.Sequential`` of square ``Linear`` layers sees exactly the chain's matrices and
biases (``Linear`` computes ``x W^T`` batch-first, the chain ``W x``: the same map).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from initlab.biases import BiasRecipe, make_bias
from initlab.draws import fill_base_, uniform_from_normal_
from initlab.modelspec import check_model_init
from initlab.schemes import WeightRecipe, make_recipe
from initlab.streams import bias_seed, stream_seed, weight_seed

#: ``init`` / ``bias`` values that are not schemes.
MODEL = "model"  # the model's own initialization, redrawn per trial
#: the instance's weights as they are, in every trial (its biases too unless ``bias`` is a
#: scheme); with a factory, the same as ``model``
KEEP = "keep"
_MODEL_STREAM = 0x0DE1_5EED
def targets(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules whose weight (and bias) a scheme re-initializes, in ``named_modules`` order."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(getattr(m, "weight", None), nn.Parameter) and m.weight.dim() >= 2]


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) as torch computes them (``_calculate_fan_in_and_fan_out``)."""
    return nn.init._calculate_fan_in_and_fan_out(weight)


def check_init(init: str) -> None:
    """ValueError unless ``init`` is usable on a model (a scheme, ``model`` or ``keep``)."""
    check_model_init(init, extra=(MODEL, KEEP))


def weight_draw(weight: torch.Tensor, init: str, params: dict[str, Any] | None) -> WeightRecipe:
    """The scheme's draw for ``weight`` with torch's fans."""
    fan_in, fan_out = fans(weight)
    draw = make_recipe(init, fan_in, fan_out, params)
    if draw.normalize:
        raise ValueError(f"init={init!r} is not supported for models: it rescales on data")
    return draw


def _buffer(param: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    dtype = torch.float64 if param.dtype == torch.float64 else torch.float32
    return torch.empty(shape, dtype=dtype)


def fill_weight_(weight: torch.Tensor, draw: WeightRecipe, generator: torch.Generator) -> None:
    """``weight`` <- scale * base, the base drawn on the (out, fan_in) view: a ConvNd
    kernel is orthogonal as a flattened matrix, as ``torch.nn.init.orthogonal_`` makes it."""
    buf = _buffer(weight, (weight.shape[0], weight[0].numel()))
    if draw.base == "custom":
        draw.fill(buf, generator)
    else:
        fill_base_(buf, draw.base, generator).mul_(draw.scale)
    weight.copy_(buf.view(weight.shape))


def fill_bias_(bias: torch.Tensor, recipe: BiasRecipe, generator: torch.Generator) -> None:
    """``bias`` <- scale * base (``initlab.biases``: normal, erf-of-normal uniform, ones, 0)."""
    buf = _buffer(bias, tuple(bias.shape))
    if recipe.base == "zero":
        buf.zero_()
    elif recipe.base == "constant":
        buf.fill_(recipe.scale)
    else:
        buf.normal_(generator=generator)
        if recipe.base == "uniform":
            uniform_from_normal_(buf)
        buf.mul_(recipe.scale)
    bias.copy_(buf)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """torch's global generators seeded with ``seed`` inside, restored after (``fork_rng``)."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def model_seed(seed: int, trial: int) -> int:
    """Seed of the global generators while trial ``trial`` builds or resets its model."""
    return stream_seed(seed, _MODEL_STREAM, trial)


def own_init_(model: nn.Module) -> None:
    """Every submodule that defines ``reset_parameters`` redraws its parameters."""
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()


def needs_own_init(model: nn.Module, init: str, bias: str) -> bool:
    """Whether a trial needs the model's own initialization (a factory call or a reset):
    ``init='model'``, or ``bias='model'`` on a model with biases a scheme would set."""
    return init == MODEL or (bias == MODEL and any(
        isinstance(getattr(m, "bias", None), nn.Parameter) for _, m in targets(model)))


def prepare(source: nn.Module | Callable[[], nn.Module], trial: int, *, seed: int, init: str,
            init_params: dict | None, bias: str, bias_params: dict | None,
            device: torch.device | None) -> nn.Module:
    """The model of trial ``trial``: built (a factory, called once per trial) or reset (an
    instance), under the trial's seed, then weights and biases from the schemes asked for."""
    if isinstance(source, nn.Module):
        model = source
        if init != KEEP and needs_own_init(model, init, bias):
            with seeded(model_seed(seed, trial), device_of(model)):
                own_init_(model)
    else:
        with seeded(model_seed(seed, trial), device or torch.device("cpu")):
            model = source()
        if not isinstance(model, nn.Module):
            raise ValueError(f"the model factory returned {type(model).__name__}; "
                             "it must return a torch.nn.Module")
        if device is not None:
            model = model.to(device)
    gen = torch.Generator()
    # One recipe per distinct fan pair: making one reads the scheme's signature, which cost
    # more than drawing a small conv kernel (99 layers of conv_chain: ~1 ms of 1.4 ms each).
    draws: dict[tuple[int, int], WeightRecipe] = {}
    biases: dict[int, BiasRecipe] = {}
    with torch.no_grad():
        for k, (_, module) in enumerate(targets(model), start=1):
            fan = fans(module.weight)
            if init not in (MODEL, KEEP):
                if fan not in draws:
                    draws[fan] = weight_draw(module.weight, init, init_params)
                fill_weight_(module.weight, draws[fan],
                             gen.manual_seed(weight_seed(seed, k, trial)))
            b = getattr(module, "bias", None)
            if bias not in (MODEL, KEEP) and isinstance(b, nn.Parameter):
                if fan[0] not in biases:
                    biases[fan[0]] = make_bias(bias, fan[0], bias_params)
                fill_bias_(b, biases[fan[0]],
                           gen.manual_seed(bias_seed(seed, k, trial)))
    return model


def device_of(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")

