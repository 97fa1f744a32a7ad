"""Initialization schemes: each one a base distribution times a gain.

A scheme is a small function ``(fan_in, fan_out, **params) -> WeightRecipe``. It says
which *base* distribution to draw (``zero``, ``normal`` = N(0, 1) or
``uniform`` = U(-1, 1)) and the *scale* to multiply it by. Weights have torch's
shape ``(out, in)``, so ``fan_in = W.size(1)`` and ``fan_out = W.size(0)``.

Splitting a scheme into base and scale is what makes comparisons paired: with
one seed, every scheme starts from the *same* N(0, 1) matrix Z (common random
numbers). The U(-1, 1) base of the uniform-family schemes is erf(Z / sqrt(2)) =
2 Phi(Z) - 1, exactly uniform on (-1, 1) by the probability integral
transform, so even Xavier-uniform and Kaiming-normal see paired weights, and a
sweep over every scheme draws one random matrix per layer, not two.

Each scheme matches its ``torch.nn.init`` counterpart (each docstring names it;
``tests/test_schemes.py`` checks them); the formulas follow ``torch/nn/init.py``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from initlab.draws import fill_base_
from initlab.theory.critical import critical_for

MODES = ("fan_in", "fan_out")
DISTRIBUTIONS = ("normal", "uniform")


@dataclass(frozen=True)
class WeightRecipe:
    """How to draw a weight matrix: ``scale * base`` with base in ``BASES``.

    ``normal`` base is N(0, 1), so ``scale`` is the std; ``uniform`` base is
    U(-1, 1) (erf of the normal draw, see above), so ``scale`` is the bound
    (std = scale / sqrt(3)); ``orthogonal``
    is the Q of a QR decomposition of the normal base (sign-corrected, as
    torch); ``constant`` is all ones. ``normalize`` (LSUV) rescales each
    layer's output to unit std on the batch after the matmul.
    """

    base: str
    scale: float
    fan_in: int = 1
    fan_out: int = 1
    normalize: bool = False
    #: for ``custom`` (a plug-in, ``initlab.plugins``): fills a tensor in place
    fill: Callable[..., torch.Tensor] | None = field(default=None, compare=False)
    custom_std: float | None = None
    #: a scheme that needs a bias of its own (``critical``): the variance of b ~ N(0, it)
    bias_sigma_b2: float | None = None

    @property
    def std(self) -> float:
        """Standard deviation of one weight (0 for constant weights)."""
        if self.base in ("zero", "constant"):
            return 0.0
        if self.base == "custom":
            return float(self.custom_std or 0.0)
        if self.base == "uniform":
            return self.scale / math.sqrt(3.0)
        if self.base == "orthogonal":
            return self.scale / math.sqrt(max(self.fan_in, self.fan_out))
        return self.scale

    @property
    def sigma_w2(self) -> float:
        """fan_in * Var(W): the gain of the mean-field recursion q_l = sigma_w2 * E[x^2]."""
        return self.fan_in * self.std**2


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


def zero(fan_in: int, fan_out: int) -> WeightRecipe:
    """All weights zero: every layer after the first outputs ``act(0)``.

    The degenerate case of seed 000: no signal passes, and every unit of a
    layer carries the same value. torch: ``nn.init.zeros_``.
    """
    return WeightRecipe("zero", 0.0, fan_in, fan_out)


def normal(fan_in: int, fan_out: int, std: float = 1.0) -> WeightRecipe:
    """W ~ N(0, std^2), ignoring the layer's size.

    ``std=1`` explodes a deep linear chain (each layer multiplies the signal's
    std by sqrt(fan_in)); ``std=0.01`` makes it vanish. Seed 001, experiments
    1 and 2. torch: ``nn.init.normal_(w, 0, std)``.
    """
    if not std >= 0:
        raise ValueError(f"std={std!r} is not allowed; std must be >= 0")
    return WeightRecipe("normal", float(std), fan_in, fan_out)


def scaled(fan_in: int, fan_out: int, sigma_w2: float = 1.0) -> WeightRecipe:
    """W ~ N(0, 1) * sqrt(sigma_w2 / fan_in): the mean-field literature's Gaussian weights.

    ``sigma_w2 = 1`` (the default) is unit gain for a linear layer: it keeps
    Var(W x) = Var(x) when there is no activation (seed 001, experiment 3;
    LeCun et al., "Efficient BackProp", 1998). Other values are the sigma_w2
    axis of the order-to-chaos phase diagram (Poole et al. 2016; Schoenholz et
    al. 2017). torch: ``nn.init.normal_(w, 0, sqrt(sigma_w2 / fan_in))``.
    """
    if not (math.isfinite(sigma_w2) and sigma_w2 >= 0):
        raise ValueError(f"sigma_w2={sigma_w2!r} is not allowed; sigma_w2 must be a finite "
                         "number >= 0")
    return WeightRecipe("normal", math.sqrt(sigma_w2 / fan_in), fan_in, fan_out)


def xavier(fan_in: int, fan_out: int, distribution: str = "uniform",
           gain: float = 1.0) -> WeightRecipe:
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
        return WeightRecipe("uniform", gain * math.sqrt(6.0 / (fan_in + fan_out)), fan_in, fan_out)
    return WeightRecipe("normal", gain * math.sqrt(2.0 / (fan_in + fan_out)), fan_in, fan_out)


def kaiming(
    fan_in: int,
    fan_out: int,
    mode: str = "fan_in",
    distribution: str = "normal",
    negative_slope: float = 0.0,
) -> WeightRecipe:
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
        return WeightRecipe("uniform", math.sqrt(3.0) * std, fan_in, fan_out)
    return WeightRecipe("normal", std, fan_in, fan_out)


def lecun(fan_in: int, fan_out: int) -> WeightRecipe:
    """LeCun normal: W ~ N(0, 1 / fan_in).

    LeCun et al., "Efficient BackProp", 1998; the init SELU is designed for
    (Klambauer et al., "Self-Normalizing Neural Networks", NeurIPS 2017).
    Same variance as ``scaled``. torch: ``nn.init.kaiming_normal_(w,
    nonlinearity='linear')``.
    """
    return WeightRecipe("normal", math.sqrt(1.0 / fan_in), fan_in, fan_out)


def orthogonal(fan_in: int, fan_out: int, gain: float = 1.0) -> WeightRecipe:
    """W = gain * Q, Q from the QR decomposition of a N(0, 1) matrix, signs fixed by diag(R).

    A square Q preserves every vector's norm exactly, so a linear chain
    neither grows nor shrinks (Saxe et al., "Exact solutions to the nonlinear
    dynamics of learning in deep linear neural networks", ICLR 2014). torch:
    ``nn.init.orthogonal_(w, gain)``.
    """
    if not gain > 0:
        raise ValueError(f"gain={gain!r} is not allowed; gain must be > 0")
    return WeightRecipe("orthogonal", float(gain), fan_in, fan_out)


def torch_default(fan_in: int, fan_out: int) -> WeightRecipe:
    """What ``nn.Linear`` does: kaiming_uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), +).

    Var(W) = 1 / (3 fan_in): a third of what ReLU needs, so a deep ReLU chain
    vanishes (E[x^2] shrinks by 6 per layer). torch: ``nn.init.kaiming_uniform_(w,
    a=math.sqrt(5))``, as in ``nn.Linear.reset_parameters``.
    """
    return WeightRecipe("uniform", 1.0 / math.sqrt(fan_in), fan_in, fan_out)


def constant(fan_in: int, fan_out: int, value: float | None = None) -> WeightRecipe:
    """Every weight equal to ``value`` (default 1 / fan_in): the symmetry problem.

    Every unit of a layer computes the same sum, so from layer 1 on all units
    carry the same value and the std over units is exactly 0 — no gradient
    could ever make them differ (seed 000). torch: ``nn.init.constant_(w, value)``.
    """
    scale = 1.0 / fan_in if value is None else float(value)
    return WeightRecipe("constant", scale, fan_in, fan_out)


def lsuv(fan_in: int, fan_out: int) -> WeightRecipe:
    """Layer-sequential unit variance: orthogonal, then each layer rescaled on the batch.

    Mishkin & Matas, "All you need is a good init", ICLR 2016: start from an
    orthonormal matrix and divide each layer's weights by the std of its
    output on a batch until that std is 1. The output is linear in the
    weights, so one rescaling is exact: here each trial's pre-activation is
    divided by its own std over units and batch (so use batch > 1 or a wide
    layer). No torch equivalent.
    """
    return WeightRecipe("orthogonal", 1.0, fan_in, fan_out, normalize=True)


def critical(fan_in: int, fan_out: int, sigma_b2: float | None = None,
             activation: str = "relu",
             activation_params: dict[str, Any] | None = None) -> WeightRecipe:
    """N(0, sigma_w2 / fan_in) weights and N(0, sigma_b2) biases on the edge of chaos.

    (sigma_w2, sigma_b2) is the point of ``initlab.theory.critical_for``: chi_1 =
    sigma_w2 E[phi'(h)^2] = 1 at the fixed point q* of the variance map
    q_l = sigma_w2 E[phi(h)^2] + sigma_b2 that the inputs reach, q* attracting
    or marginal; where chi_1 = 1 is out of reach, the admissible point nearest
    it. ``sigma_b2`` is the activation's documented default unless given (0 for
    none/relu/leaky_relu, 0.05 for tanh, sigmoid, selu, softplus; 0.2 gelu, 1
    silu: ``initlab.theory`` explains each). Any activation works, a user's own
    too. The bias comes with the scheme (leave ``bias=zero``). Poole et al.
    2016; Schoenholz et al. 2017.
    """
    if sigma_b2 is not None and not (math.isfinite(sigma_b2) and sigma_b2 >= 0):
        raise ValueError(f"sigma_b2={sigma_b2!r} is not allowed; sigma_b2 must be a finite "
                         "number >= 0")
    point = critical_for(activation, activation_params, sigma_b2)
    return WeightRecipe("normal", math.sqrt(point.sigma_w2 / fan_in), fan_in, fan_out,
                bias_sigma_b2=point.sigma_b2 if point.sigma_b2 > 0 else None)


#: name -> scheme function. Add a scheme by adding a function here.
SCHEMES: dict[str, Callable[..., WeightRecipe]] = {
    "zero": zero,
    "normal": normal,
    "scaled": scaled,
    "xavier": xavier,
    "kaiming": kaiming,
    "lecun": lecun,
    "orthogonal": orthogonal,
    "torch_default": torch_default,
    "constant": constant,
    "lsuv": lsuv,
    "critical": critical,
}

#: The schemes initlab ships (``register`` adds users' own to ``SCHEMES``).
BUILTIN_SCHEMES = tuple(SCHEMES)

#: Parameters the engine passes itself (not set by the user under init.*).
CONTEXT_PARAMS = ("activation", "activation_params")


def register(name: str, fn: Callable[..., WeightRecipe]) -> None:
    """Make a user's scheme known by ``name`` (the config's ``_target_`` does this)."""
    SCHEMES[name] = fn


def scheme_params(name: str) -> tuple[str, ...]:
    """Names of the keyword parameters a user sets for a scheme (besides the fans)."""
    sig = inspect.signature(get_scheme(name))
    return tuple(p for p in sig.parameters if p not in ("fan_in", "fan_out", *CONTEXT_PARAMS))


def get_scheme(name: str) -> Callable[..., WeightRecipe]:
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(
            f"init={name!r} is not a known scheme; allowed: {', '.join(SCHEMES)}"
        ) from None


def make_recipe(
    name: str,
    fan_in: int,
    fan_out: int,
    params: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> WeightRecipe:
    """The draw of scheme ``name`` for a layer, with its parameters.

    Parameters a scheme does not take are ignored when they are ``None``
    and refused otherwise, so a typo never silently does nothing.
    ``context`` (the chain's activation) reaches the schemes that ask for it.
    """
    fn = get_scheme(name)
    accepted = scheme_params(name)
    wanted = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in (context or {}).items() if k in wanted}
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


def init_(
    tensor: torch.Tensor, name: str, generator: torch.Generator | None = None, **params: Any
) -> torch.Tensor:
    """Initialize a 2-D weight ``(out, in)`` in place with scheme ``name``, like torch.nn.init.

    >>> w = init_(torch.empty(256, 128), "kaiming", mode="fan_out")
    """
    if tensor.dim() != 2:
        raise ValueError(f"tensor of shape {tuple(tensor.shape)} is not allowed; need (out, in)")
    fan_out, fan_in = tensor.shape
    if get_scheme(name) is lsuv:
        raise ValueError("init=lsuv depends on data; it exists only inside a chain")
    context = {k: params.pop(k) for k in CONTEXT_PARAMS if k in params}
    recipe = make_recipe(name, fan_in, fan_out, params, context)
    with torch.no_grad():
        if recipe.base == "custom":
            return recipe.fill(tensor, generator)
        return fill_base_(tensor, recipe.base, generator).mul_(recipe.scale)
