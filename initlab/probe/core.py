"""``probe(model, inputs, ...)``: the chain's per-layer statistics for any torch model.

Per trial: the model's weights (``initlab.probe.weights``), an input batch,
a forward pass with a hook on every chosen module (``initlab.probe.record``),
and with gradients a backward pass from g ~ N(0, I) (the loss <g, output>, as
the chain does) or from the model's own scalar output (a loss). Every hook is
removed when the trial ends, also when the model raises; an ``nn.Module``
passed in gets its parameters and buffers back as they were.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from initlab.biases import make_bias
from initlab.chain import gradient_seed, input_seed, stream_seed
from initlab.probe import weights as W
from initlab.probe.record import CORR, Recorder, first_tensor, grad_stats, select, signal_stats
from initlab.probe.result import GRAD_STATS, ProbeResult
from initlab.schemes import make_draw
from initlab.stats import STATS

Inputs = torch.Tensor | Callable[[torch.Generator], torch.Tensor]
_RUN_STREAM = 0x0F0E_D00D  # the global generators during a trial's passes (dropout, ...)


def gaussian_inputs(shape: Sequence[int], batch: int = 1, dtype: torch.dtype = torch.float32,
                    ) -> Callable[[torch.Generator], torch.Tensor]:
    """Inputs x ~ N(0, I) of per-sample ``shape``: a callable ``(generator) -> (batch, *shape)``.

    Drawn as a (features, batch) matrix and transposed, so for a vector input
    trial t's batch is the chain engine's x_0 of trial t (``draw_inputs``).
    """
    shape = tuple(int(s) for s in shape)
    features = math.prod(shape)

    def make(generator: torch.Generator) -> torch.Tensor:
        z = torch.empty(features, batch).normal_(generator=generator)
        return z.T.reshape(batch, *shape).to(dtype)

    return make


def _check(init: str, init_params: dict | None, bias: str, bias_params: dict | None,
           trials: int, seed: int) -> None:
    W.check_init(init)
    if init not in (W.MODEL, W.KEEP):
        make_draw(init, 4, 4, init_params)  # a wrong parameter fails before any work
    if bias not in (W.MODEL, W.KEEP):
        make_bias(bias, 4, bias_params)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials={trials!r} is not allowed; trials must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed={seed!r} is not allowed; seed must be an integer in [0, 2**63)")


def _settings(model: Any, init: str, init_params: dict | None, bias: str,
              bias_params: dict | None, trials: int, seed: int, gradients: bool,
              device: str) -> dict[str, Any]:
    name = type(model).__name__ if isinstance(model, nn.Module) else getattr(
        model, "__name__", type(model).__name__)
    return {
        "model": name, "init": init,
        **{f"init_{k}": v for k, v in sorted((init_params or {}).items()) if v is not None},
        "bias": bias,
        **{f"bias_{k}": v for k, v in sorted((bias_params or {}).items()) if v is not None},
        "trials": trials, "seed": seed, "gradients": gradients, "device": device,
    }


def _output_gradient(y: torch.Tensor, batch: int, seed: int, trial: int) -> torch.Tensor:
    """g ~ N(0, I) shaped like ``y``, drawn (features, batch) from the chain's gradient stream."""
    rows = batch if y.shape[0] == batch else 1
    gen = torch.Generator().manual_seed(gradient_seed(seed, trial))
    g = torch.empty(y.numel() // rows, rows).normal_(generator=gen)
    return g.T.reshape(y.shape).to(device=y.device, dtype=y.dtype)


def _backward(rec: Recorder, x0: torch.Tensor, out: Any, seed: int, trial: int) -> dict:
    """Back-propagate; returns layer index -> (grad_w mean, std). Tensor hooks fill rec.grads."""
    y = first_tensor(out)
    if y is None or not y.requires_grad:
        return {}
    params: list[torch.Tensor] = []
    where: dict[int, int] = {}  # layer index -> position in params
    for index, module in enumerate(rec.modules, start=1):
        w = getattr(module, "weight", None)
        if isinstance(w, torch.Tensor) and w.requires_grad:
            pos = next((i for i, p in enumerate(params) if p is w), None)
            if pos is None:
                params.append(w)
                pos = len(params) - 1
            where[index] = pos
    leaves = [x0] if x0.requires_grad else []
    g = None if y.dim() == 0 else _output_gradient(y, rec.batch, seed, trial)
    got = torch.autograd.grad(y, leaves + params, grad_outputs=g, allow_unused=True)
    if leaves and got[0] is not None:
        rec.grads[0] = grad_stats(got[0], rec.batch)
    wgrads = got[len(leaves):]
    return {index: grad_stats(wgrads[pos], -1) for index, pos in where.items()
            if wgrads[pos] is not None}


def _trial(model: nn.Module, x0: torch.Tensor, trial: int, *, seed: int, gradients: bool,
           include, exclude, hist_dtype: str | None) -> tuple[Recorder, dict, dict, torch.Tensor]:
    batch = x0.shape[0]
    rec = Recorder(select(model, include, exclude), batch, hist_dtype, gradients)
    if gradients and x0.is_floating_point():
        x0 = x0.detach().clone().requires_grad_(True)
    in_stats, in_hist = signal_stats(x0, batch, hist_dtype)
    wgrads: dict = {}
    rec.attach()
    try:
        with W.seeded(stream_seed(seed, _RUN_STREAM, trial), x0.device), \
                torch.set_grad_enabled(gradients):
            out = model(x0)
            if gradients:
                wgrads = _backward(rec, x0, out, seed, trial)
            del out
    finally:
        rec.detach()
    return rec, in_stats, wgrads, in_hist


def probe(model: nn.Module | Callable[[], nn.Module], inputs: Inputs, *, init: str = "model",
          init_params: dict | None = None, bias: str = "model", bias_params: dict | None = None,
          trials: int = 8, seed: int = 0, gradients: bool = True,
          include: Sequence[str] | None = None, exclude: Sequence[str] | None = None,
          device: str | torch.device | None = None, histogram: bool = True) -> ProbeResult:
    """Per-layer statistics of ``model`` over ``trials`` weight draws.

    ``model``: an ``nn.Module`` (reset per trial by its modules' ``reset_parameters``
    under the trial's seed, restored when done) or a zero-argument factory (called
    once per trial under the trial's seed). ``inputs``: a batch-first tensor (the
    same batch every trial) or ``(generator) -> tensor`` (trial t's generator is seeded
    with the chain's ``input_seed(seed, t)``; see ``gaussian_inputs``).

    ``init``: ``model`` (the model's own initialization), ``keep`` (an instance's
    weights as they are) or an initlab scheme (not ``lsuv``/``critical``), on every
    module with a weight of >= 2 dimensions, torch's fans; ``bias``: ``model``,
    ``keep`` or an ``initlab.biases`` scheme. ``include``/``exclude``: fnmatch
    patterns on module names (default: every leaf module with parameters).
    A module's signal is its output's first floating tensor (depth-first through
    tuples, lists and dicts); a 0-d output (a loss) is no layer, and when it is the
    model's output the backward pass starts from it. ``device``: where a factory's
    model goes (an instance stays where it is); the inputs follow the model.
    ``histogram=False`` skips the log10|x| histogram (``result.hist`` is None): it costs
    more than every other statistic together on a large signal.
    """
    _check(init, init_params, bias, bias_params, trials, seed)
    instance = isinstance(model, nn.Module)
    if not instance and not callable(model):
        raise ValueError(f"model={type(model).__name__} is not allowed; pass an nn.Module "
                         "or a zero-argument function returning one")
    dev = torch.device(device) if device is not None else None
    if instance and dev is not None and W.device_of(model) != dev:
        raise ValueError(f"device={device} differs from the model's ({W.device_of(model)}); "
                         "move the model first, or pass a factory")
    snapshot = ({k: v.detach().clone() for k, v in model.state_dict().items()}
                if instance else None)
    gen = torch.Generator()
    keys: list | None = None
    start = time.perf_counter()
    try:
        for t in range(trials):
            m = W.prepare(model, t, seed=seed, init=init, init_params=init_params, bias=bias,
                          bias_params=bias_params, device=dev)
            mdev = W.device_of(m)
            x0 = inputs if isinstance(inputs, torch.Tensor) else inputs(
                gen.manual_seed(input_seed(seed, t)))
            x0 = x0.to(mdev)
            wide = x0.dtype == torch.float64 or any(
                p.dtype == torch.float64 for p in m.parameters())
            hist_dtype = "float64" if wide else "float32"
            rec, in_stats, wgrads, in_hist = _trial(
                m, x0, t, seed=seed, gradients=gradients, include=include, exclude=exclude,
                hist_dtype=hist_dtype if histogram else None)
            if keys is None:
                keys, layers = rec.keys, len(rec.keys) + 1
                stats = {n: np.empty((trials, layers), dtype=bool if n == "finite" else float)
                         for n in (*STATS, CORR)}
                grads = ({n: np.full((trials, layers), np.nan) for n in GRAD_STATS}
                         if gradients else None)
                hist = (np.zeros((layers, len(in_hist)), dtype=np.int64) if histogram
                        else None)
                first = (rec, x0)
            elif rec.keys != keys:
                raise ValueError(f"trial {t} called the hooked modules in another order than "
                                 "trial 0; the probe needs the same layers in every trial")
            for name in stats:
                row = [in_stats[name], *(s[name] for s in rec.stats)]
                stats[name][t] = torch.stack(row).cpu().numpy()
            if hist is not None:
                hist += torch.stack([in_hist, *rec.hists]).cpu().numpy()
            if grads is not None:
                for index, (mean, std) in rec.grads.items():
                    grads["grad_x_mean"][t, index] = mean.item()
                    grads["grad_x_std"][t, index] = std.item()
                for index, (mean, std) in wgrads.items():
                    grads["grad_w_mean"][t, index] = mean.item()
                    grads["grad_w_std"][t, index] = std.item()
    finally:
        if snapshot is not None:
            with torch.no_grad():
                model.load_state_dict(snapshot)
    elapsed = time.perf_counter() - start
    rec0, x00 = first
    names = [f"{n}#{c + 1}" if c else n for n, c in keys]
    settings = _settings(model, init, init_params, bias, bias_params, trials, seed, gradients,
                         str(x00.device))
    settings["batch"] = x00.shape[0]
    settings["dtype"] = str(x00.dtype).removeprefix("torch.")
    return ProbeResult(settings=settings, stats=stats, modules=["input", *names],
                       module_types=["input", *rec0.types],
                       shapes=[tuple(x00.shape[1:]), *rec0.shapes], device=str(x00.device),
                       hist=hist, hist_dtype=hist_dtype, grads=grads,
                       timing={"path": "loop", "seconds_per_trial": elapsed / trials})
