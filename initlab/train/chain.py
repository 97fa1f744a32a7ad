"""The chain, trained: every trial of every config of a group as one batched computation.

The network of one config is the chain with an input layer and a readout::

    x_1 = act(W_1 x_0 + b_1)                    W_1: width x features
    x_l = act(W_l x_{l-1} + b_l), l = 2..depth+1     W_l: width x width
    y   = W_{depth+2} x_{depth+1} + b_{depth+2}     W_{depth+2}: outputs x width (logits)

the same numbers as ``nn.Sequential(Linear(features, width), act, Linear(width, width),
act, ..., Linear(width, outputs))`` (``sequential``) whose weights and biases come from
``initlab.probe.weights.prepare`` for trial t: module k (1-based) draws from
``weight_seed(seed, k, t)``, so at step 0 the probe of that Sequential measures what
training records. Biases are trainable, drawn by the bias scheme (``zero``: they start
at 0). ``init=critical`` runs as what it draws: ``scaled`` with its sigma_w2 and
``normal`` biases with its sigma_b2 (``model_schemes``).

Batched: the G = configs x trials copies (row g = config g // trials, trial g % trials)
are stacked along a leading dimension and run by ``torch.baddbmm`` with weights kept
transposed, (G, in, out), so each layer is one x W^T + b over all rows (one weight and
one bias tensor per layer: no stacking of all layers, whose backward would copy every
gradient once more); autograd runs the backward pass; one torch optimizer (a fused
kernel where torch has one) updates the stacked tensors. The loss is the sum
over rows of each row's mean loss, so row g's gradient is its own and the element-wise
optimizers (``initlab.train.optim``) update it as if it were alone. Configs in one
group share the data's shape, ``width`` and ``depth``; their schemes, bias schemes and
activations may differ. Every config of trial t sees trial t's batches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from initlab.activations import get_activation
from initlab.columns import hist_edges
from initlab.models import Activation
from initlab.probing.weights import prepare
from initlab.schemes import make_recipe
from initlab.train import measure as M
from initlab.train.data import Dataset, load_data
from initlab.train.loop import Progress, run_steps, trial_ids
from initlab.train.record import Buffers, TrainingRecord
from initlab.train.spec import TrainSpec


@dataclass(frozen=True)
class ChainConfig:
    """One config of a group: schemes, activation and the chain's sizes (an
    ``initlab.spec.ChainSpec`` carries the same fields: ``ChainConfig.of(spec)``)."""

    init: str = "kaiming"
    init_params: dict[str, Any] = field(default_factory=dict)
    activation: str = "relu"
    activation_params: dict[str, Any] = field(default_factory=dict)
    bias: str = "zero"
    bias_params: dict[str, Any] = field(default_factory=dict)
    width: int = 128
    depth: int = 10

    @classmethod
    def of(cls, spec: Any) -> ChainConfig:
        """The config of anything with these attributes (a ``ChainSpec``)."""
        if isinstance(spec, ChainConfig):
            return spec
        return cls(**{name: getattr(spec, name) for name in cls.__dataclass_fields__})


def model_schemes(config: ChainConfig) -> dict[str, Any]:
    """``prepare``'s init/bias arguments for ``config``: its own, except ``critical``
    (refused for models: its gain needs the activation) as the draw it makes, ``scaled``
    with sigma_w2 = the critical point's and ``normal`` biases with its sigma_b2 (the
    same N(0, 1) base matrices, ``initlab.schemes.critical``)."""
    if config.init != "critical":
        return dict(init=config.init, init_params=dict(config.init_params),
                    bias=config.bias, bias_params=dict(config.bias_params))
    context = {"activation": config.activation, "activation_params": config.activation_params}
    recipe = make_recipe("critical", config.width, config.width, config.init_params, context)
    own = recipe.bias_sigma_b2
    return dict(init="scaled", init_params={"sigma_w2": recipe.sigma_w2},
                bias="normal" if own else config.bias,
                bias_params={"sigma_b2": own} if own else dict(config.bias_params))


def sequential(config: ChainConfig, features: int, outputs: int,
               dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """The config's network as an ``nn.Sequential`` (module docstring), parameters in
    ``dtype``, not yet initialised by a scheme (``prepare`` does that per trial)."""
    width, act = config.width, (config.activation, config.activation_params or None)
    layers: list[nn.Module] = [nn.Linear(features, width, dtype=dtype), Activation(*act)]
    for _ in range(config.depth):
        layers += [nn.Linear(width, width, dtype=dtype), Activation(*act)]
    layers.append(nn.Linear(width, outputs, dtype=dtype))
    return nn.Sequential(*layers)


class BatchedChain:
    """The stacked parameters of a group and its batched forward pass."""

    def __init__(self, configs: Sequence[ChainConfig], trials: Sequence[int], features: int,
                 outputs: int, seed: int, dtype: torch.dtype, device: torch.device,
                 near_zero: float = 0.05, hist_dtype: str | None = None) -> None:
        first = configs[0]
        for c in configs:
            if (c.width, c.depth) != (first.width, first.depth):
                raise ValueError(f"configs of one group must share width and depth; got "
                                 f"{first.width}x{first.depth} and {c.width}x{c.depth}")
        self.configs, self.trial_ids = list(configs), list(trials)
        self.trials = len(self.trial_ids)
        self.near_zero, self.hist_dtype = near_zero, hist_dtype
        self._outs: list[torch.Tensor] | None = None
        self.width, self.depth = first.width, first.depth
        self.weights, self.biases = self._draw(features, outputs, seed, dtype, device)
        self.acts = [get_activation(c.activation, c.activation_params) for c in configs]
        same = all((c.activation, c.activation_params) == (first.activation,
                                                           first.activation_params)
                   for c in configs)
        self.act = self.acts[0] if same else self._per_config

    def _draw(self, features: int, outputs: int, seed: int, dtype: torch.dtype,
              device: torch.device) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per layer, the stacked weights (rows, in, out) and biases (rows, 1, out); row g =
        (config c, trial t) holds ``prepare``'s draws for trial t of config c's Sequential,
        weights transposed. One tensor per layer (not one for all hidden layers): the
        optimizer's fused kernel takes the list, and no backward pass stacks them."""
        rows, w = len(self.configs) * self.trials, self.width
        dims = [(features, w), *[(w, w)] * self.depth, (w, outputs)]
        weights = [torch.empty(rows, i, o, dtype=dtype) for i, o in dims]
        biases = [torch.empty(rows, 1, o, dtype=dtype) for _, o in dims]
        for c, config in enumerate(self.configs):
            net = sequential(config, features, outputs, dtype)
            schemes = model_schemes(config)
            for i, t in enumerate(self.trial_ids):
                g = c * self.trials + i
                m = prepare(net, t, seed=seed, device=None, **schemes)
                linears = [x for x in m if isinstance(x, nn.Linear)]
                with torch.no_grad():
                    for k, lin in enumerate(linears):
                        weights[k][g], biases[k][g, 0] = lin.weight.T, lin.bias
        return ([p.to(device).requires_grad_(True) for p in weights],
                [p.to(device).requires_grad_(True) for p in biases])

    def _per_config(self, h: torch.Tensor) -> torch.Tensor:
        t = self.trials
        return torch.cat([act(h[c * t:(c + 1) * t]) for c, act in enumerate(self.acts)])

    @property
    def rows(self) -> int:
        return len(self.configs) * self.trials

    def parameters(self) -> list[torch.Tensor]:
        """The stacked tensors the optimizer updates: each layer's weights and biases."""
        return [*self.weights, *self.biases]

    def train(self, mode: bool) -> None:
        """No layer of the chain depends on the mode."""

    def _layers(self, x: torch.Tensor, first: int, outs: list | None) -> torch.Tensor:
        """Layers ``first``.. of x (the activation after all but the readout); appends each
        output to ``outs`` if given."""
        last = len(self.weights) - 1
        for k in range(first, last + 1):
            x = torch.baddbmm(self.biases[k], x, self.weights[k])
            if k < last:
                x = self.act(x)
            if outs is not None:
                outs.append(x)
        return x

    def forward(self, x: torch.Tensor, record: bool = False) -> torch.Tensor:
        """Logits (rows, batch, outputs) of the trials' batches x (trials, batch, features),
        each config's rows fed its trial's batch. With ``record``, the input and every
        layer's output are kept (their gradients retained) for ``measure``."""
        x = x.repeat(len(self.configs), 1, 1)
        if not record:
            self._outs = None
            return self._layers(x, 0, None)
        x.requires_grad_(True)
        self._outs = [x]
        y = self._layers(x, 0, self._outs)
        for o in self._outs[1:]:
            o.retain_grad()
        return y

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (rows, n, outputs) of one input set (n, features) shared by every row
        (the first layer by ``matmul``'s broadcasting: no copy of x per row)."""
        with torch.no_grad():
            h = torch.matmul(x, self.weights[0]) + self.biases[0]
            return self._layers(self.act(h), 1, None)

    def measure(self, step: int, bufs: Buffers) -> None:
        """Statistics of the kept signals and their gradients (``initlab.train.measure``),
        layers of one shape reduced in one call; the weights' gradients likewise."""
        outs, self._outs = self._outs, None
        for a, b in M.runs([tuple(o.shape) for o in outs]):
            stacked = torch.stack([o.detach() for o in outs[a:b]])
            grads = torch.stack([o.grad for o in outs[a:b]])
            bufs.put_layers(step, slice(None), a, M.signal_stats(stacked, self.near_zero),
                            M.grad_stats(grads, "grad_x"))
            if self.hist_dtype is not None:
                bufs.put_hist(step, a, M.histograms(stacked, len(self.configs),
                                                    self.hist_dtype))
        for a, b in M.runs([tuple(w.shape) for w in self.weights]):
            stacked = torch.stack([w.grad for w in self.weights[a:b]])
            bufs.put_layers(step, slice(None), a + 1, {}, M.grad_stats(stacked, "grad_w"))


def layer_names(depth: int) -> list[str]:
    """``input``, ``layer_1`` .. ``layer_{depth+1}`` (post-activation), ``readout``."""
    return ["input", *(f"layer_{i}" for i in range(1, depth + 2)), "readout"]


def train_chain(configs: Sequence[Any], train: TrainSpec, data: Dataset | None = None, *,
                trials: int | Sequence[int] = 4, seed: int = 0,
                device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32,
                progress: Progress | None = None) -> list[TrainingRecord]:
    """Train ``trials`` trials of each config (``ChainConfig`` or ``ChainSpec``; one width
    and depth) as one batched computation; one ``TrainingRecord`` per config, in order.

    ``data``: a ``Dataset`` with flat samples, or None for ``load_data(train)``.
    ``trials``: a count T (trials 0..T-1) or the trial indices to run (``[5]`` redoes
    trial 5 alone: its weights and batches depend on (seed, trial) only).
    ``progress(done, total)`` is called after every update (``total`` = train.steps).
    """
    start = time.perf_counter()
    configs = [ChainConfig.of(c) for c in configs]
    if not configs:
        raise ValueError("train_chain needs at least one config")
    ids = trial_ids(trials)
    data = load_data(train, None, dtype) if data is None else data
    if data.x_train.dim() != 2:
        data = Dataset(data.name, data.x_train.flatten(1), data.y_train,
                       data.x_test.flatten(1), data.y_test, data.task, data.outputs)
    dev = torch.device(device)
    hist_dtype = "float64" if dtype == torch.float64 else "float32"
    net = BatchedChain(configs, ids, data.features, data.outputs, seed, dtype, dev,
                       train.near_zero, hist_dtype if train.histogram else None)
    layers = net.depth + 3
    bufs = Buffers(net.rows, len(configs), train.steps, train.record_steps(),
                   train.eval_steps(), layers, len(hist_edges(hist_dtype)) + 1
                   if train.histogram else None, dev)
    lr, mom = run_steps(net, train, data, bufs, trials=ids, seed=seed,
                        width=max(net.width, data.outputs), device=dev, progress=progress)
    seconds = (time.perf_counter() - start) / len(configs)
    out = []
    for c, config in enumerate(configs):
        rows = slice(c * len(ids), (c + 1) * len(ids))
        types = ["input", *[f"Linear+{config.activation}"] * (net.depth + 1), "Linear"]
        out.append(bufs.record(
            c, rows, layer_names=layer_names(net.depth), layer_types=types,
            steps=train.steps, hist_dtype=hist_dtype, lr=lr, momentum=mom, task=data.task,
            chance=data.chance, pass_fraction=train.pass_fraction, seconds=seconds,
            settings={**vars(config), "trials": len(ids), "seed": seed,
                      "dtype": str(dtype).removeprefix("torch."), "device": str(dev),
                      "data": data.name, **train.describe()}))
    return out
