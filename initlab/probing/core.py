"""``probe(model, inputs, ...)``: the chain's per-layer statistics for any torch model.

Per trial: the model's weights (``initlab.probing.weights``), an input batch,
a forward pass with a hook on every chosen module (``initlab.probing.record``),
and with gradients a backward pass from g ~ N(0, I) (the loss <g, output>, as
the chain does) or from the model's own scalar output (a loss). Every hook is
removed when the trial ends, also when the model raises; an ``nn.Module``
passed in gets its parameters and buffers back as they were.

Inputs, weights, biases and the output gradient come from the chain engine's keyed
streams (``initlab.draws``): a ``Sequential`` of square ``Linear`` layers probed with a
chain's schemes sees the chain's matrices, biases, inputs and output gradient.

A layer is a hooked module's call; its signal is the output's first floating tensor
(depth-first through tuples, lists and dicts); a 0-d output (a loss) is no layer, and
when it is the model's output the backward pass starts from it. With gradients the
model's output must hold a floating-point tensor that depends on the input or the
parameters, else the probe refuses in one line (a model returning None or integers
would lose its gradient columns). Statistics pool a layer's units and the batch's
samples: a layer holding a single value per trial (a 1-unit head with batch 1) has no
spread, so its ``std`` is NaN, not 0, and the verdicts leave it out; when every judged
layer is such, no verdict is given (``initlab.probing.judge``).

Two paths, the same draws: one trial at a time with hooks, or (``batched``) every trial
of a plain ``nn.Sequential`` of Linear/ConvNd layers and parameter-free activations at
once (``initlab.probing.batched``). ``batched=None`` takes the batched path on CUDA and,
on a CPU, for small models (``batched.small``), where a trial's per-layer overhead
outweighs its compute; their statistics agree up to rounding
(``result.timing["path"]`` says which ran).
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from initlab import rules
from initlab.biases import make_bias
from initlab.columns import GRAD_STATS, STATS
from initlab.draws import gradient_columns
from initlab.probing import batched as B
from initlab.probing import weights as W
from initlab.probing.record import (
    Recorder,
    first_tensor,
    grad_stats,
    no_gradient_message,
    no_module_message,
    select,
    signal_stats,
)
from initlab.result import Result
from initlab.schemes import make_recipe
from initlab.streams import input_seed, stream_seed

#: A batch-first tensor (every trial's batch), ``(generator) -> tensor`` (trial t's
#: generator seeded from ``input_seed(seed, t)``), or an object with ``keyed(seed, trial)``
#: (``initlab.inputs.gaussian_inputs``: the chain's own input stream).
Inputs = torch.Tensor | Callable[[torch.Generator], torch.Tensor]
_RUN_STREAM = 0x0F0E_D00D  # the global generators during a trial's passes (dropout, ...)


def _check(init: str, init_params: dict | None, bias: str, bias_params: dict | None,
           trials: int, seed: int) -> None:
    W.check_init(init)
    if init not in (W.MODEL, W.KEEP):
        make_recipe(init, 4, 4, init_params)  # a wrong parameter fails before any work
    if bias not in (W.MODEL, W.KEEP):
        make_bias(bias, 4, bias_params)
    rules.positive_int("trials", trials)
    rules.seed(seed)


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
    """g ~ N(0, I) shaped like ``y``: the chain's output gradient of trial ``trial``
    (``draws.gradient_columns``), features x batch, on the CPU, then moved to ``y``."""
    rows = batch if y.shape[0] == batch else 1
    g = gradient_columns(seed, y.numel() // rows, rows, range(trial, trial + 1),
                         mode="trial")[0]
    return g.T.reshape(y.shape).to(device=y.device, dtype=y.dtype)


def _backward(rec: Recorder, x0: torch.Tensor, out: Any, seed: int, trial: int) -> dict:
    """Back-propagate; returns layer index -> (grad_w mean, std). Tensor hooks fill rec.grads."""
    message = no_gradient_message(out)
    if message:
        raise ValueError(message)
    y = first_tensor(out)
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
        rec.grads[0] = grad_stats(got[0])
    wgrads = got[len(leaves):]
    return {index: grad_stats(wgrads[pos]) for index, pos in where.items()
            if wgrads[pos] is not None}


def _trial(model: nn.Module, x0: torch.Tensor, trial: int, *, seed: int, gradients: bool,
           include, exclude, hist_dtype: str | None,
           hist_only=None) -> tuple[Recorder, dict, dict, torch.Tensor]:
    batch = x0.shape[0]
    rec = Recorder(select(model, include, exclude), batch, hist_dtype, gradients, hist_only)
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
          device: str | torch.device | None = None,
          histogram: bool | str | Sequence[str] = True, batched: bool | None = None,
          progress: Callable[[int], object] | None = None) -> Result:
    """Per-layer statistics of ``model`` over ``trials`` weight draws.

    ``model``: an ``nn.Module`` (reset per trial by its modules' ``reset_parameters``
    under the trial's seed when ``init`` or ``bias`` is ``model``; restored when done)
    or a zero-argument factory (called per trial when the model's own initialization is
    asked for, else once, its weights and biases redrawn per trial). ``inputs``: a
    batch-first tensor (the same batch every trial), ``(generator) -> tensor`` (trial
    t's generator seeded with the chain's ``input_seed(seed, t)``), or
    ``initlab.inputs.gaussian_inputs`` (the chain's inputs). ``init``: ``model``,
    ``keep`` (an instance's weights as they are) or an initlab scheme (not
    ``lsuv``/``critical``) on every weight of >= 2 dimensions, torch's fans; ``bias``:
    ``model``, ``keep`` or an ``initlab.biases`` scheme. ``include``/``exclude``: fnmatch
    patterns on module or class names (a string is one pattern; default: every leaf
    module with parameters); none matching is an error. ``device``: where a factory's
    model goes (an instance stays; the inputs follow the model). ``histogram=False``
    skips the log10|x| histogram (the costliest statistic); fnmatch patterns (module or
    class names) keep it for the matching modules only (the others' rows count nothing;
    the loop path). ``batched``: all trials of a
    plain ``nn.Sequential`` at once (module docstring); ``progress(n)`` after each trial
    or chunk. What a layer is, and what a one-unit layer or a gradient needs: the
    module docstring.
    """
    _check(init, init_params, bias, bias_params, trials, seed)
    include, exclude = _patterns(include, "include"), _patterns(exclude, "exclude")
    dev = _device(model, device)
    snapshot = ({k: v.detach().clone() for k, v in model.state_dict().items()}
                if isinstance(model, nn.Module) else None)
    prep = dict(seed=seed, init=init, init_params=init_params, bias=bias,
                bias_params=bias_params, device=dev)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():  # a one-unit layer's std is NaN, said in the docstring
            warnings.filterwarnings("ignore", message=r"std\(\): degrees of freedom")
            run = _measure(model, inputs, prep, snapshot is None, include, exclude,
                           trials=trials, seed=seed, gradients=gradients, histogram=histogram,
                           batched=batched, progress=progress or (lambda n: None))
    finally:
        if snapshot is not None:
            with torch.no_grad():
                model.load_state_dict(snapshot)
    tables, types, shapes, x00, where, plan, hist_dtype = run
    settings = _settings(model, init, init_params, bias, bias_params, trials, seed, gradients,
                         str(where))
    settings.update(batch=x00.shape[0], dtype=str(x00.dtype).removeprefix("torch."))
    return Result(settings=settings, stats=tables.stats, modules=["input", *tables.names],
                  module_types=["input", *types], shapes=shapes, device=str(where),
                  hist=tables.hist, hist_dtype=hist_dtype or "float32", grads=tables.grads,
                  timing={"path": "loop" if plan is None else "batched",
                          "seconds_per_trial": (time.perf_counter() - start) / trials})


def _measure(model, inputs: Inputs, prep: dict, fresh: bool, include, exclude, *,
             trials: int, seed: int, gradients: bool, histogram, batched: bool | None,
             progress: Callable[[int], object]) -> tuple:
    """Trial 0's model and inputs, the path, then every trial: (tables, module types,
    shapes, trial 0's inputs, device, batched plan, histogram dtype)."""
    batch_of = _batches(inputs, seed)
    m0 = W.prepare(model, 0, **prep)
    if fresh and not W.needs_own_init(m0, prep["init"], prep["bias"]):
        model = m0  # every parameter a trial needs comes from a scheme: build once
    if not select(m0, include, exclude):
        raise ValueError(no_module_message(include, exclude))
    where = W.device_of(m0)
    x00 = batch_of(0, where)
    wide = x00.dtype == torch.float64 or any(p.dtype == torch.float64 for p in m0.parameters())
    hist_dtype = ("float64" if wide else "float32") if histogram is not False else None
    hist_only = None if isinstance(histogram, bool) else _patterns(histogram, "histogram")
    plan, run = _path(m0, x00, batched, include, exclude, trials, gradients)
    tables, types, shapes = run(model, m0, x00, batch_of, plan, prep, trials=trials, seed=seed,
                                gradients=gradients, include=include, exclude=exclude,
                                hist_dtype=hist_dtype, progress=progress, hist_only=hist_only)
    return tables, types, shapes, x00, where, plan, hist_dtype


def _patterns(value: str | Sequence[str] | None, name: str) -> list[str] | None:
    """fnmatch patterns: a string is one pattern (not its letters); None: the default."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    patterns = list(value)
    if not all(isinstance(v, str) for v in patterns):
        raise ValueError(f"{name}={value!r} is not allowed; give fnmatch patterns (strings) on "
                         "module names or class names")
    return patterns


def _device(model: Any, device: str | torch.device | None) -> torch.device | None:
    """The device a factory's model goes to; an instance must already be there."""
    if not isinstance(model, nn.Module) and not callable(model):
        raise ValueError(f"model={type(model).__name__} is not allowed; pass an nn.Module "
                         "or a zero-argument function returning one")
    dev = torch.device(device) if device is not None else None
    if isinstance(model, nn.Module) and dev is not None and W.device_of(model) != dev:
        raise ValueError(f"device={device} differs from the model's ({W.device_of(model)}); "
                         "move the model first, or pass a factory")
    return dev


def _batches(inputs: Inputs, seed: int) -> Callable[[int, torch.device], torch.Tensor]:
    """trial, device -> that trial's input batch."""
    gen = torch.Generator()
    keyed = getattr(inputs, "keyed", None)

    def batch_of(t: int, where: torch.device) -> torch.Tensor:
        if isinstance(inputs, torch.Tensor):
            x = inputs
        elif callable(keyed):
            x = keyed(seed, t)
        else:
            x = inputs(gen.manual_seed(input_seed(seed, t)))
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"the inputs gave {type(x).__name__}, not a tensor")
        return x.to(where)

    return batch_of


def _path(m0: nn.Module, x00: torch.Tensor, batched: bool | None, include, exclude,
          trials: int, gradients: bool):
    """(plan, run): the batched path's hooked children and runner, or (None, the loop).

    By default the batched path runs on CUDA, and on a CPU for small models only, where
    it measured faster (``batched.small``, benchmarks/probe_bench.py)."""
    plan = _batched_plan(m0, include, exclude) if batched is not False else None
    first = 1  # the first chunk measures the signals' sizes, unless they are known
    if batched is None and plan is not None and x00.device.type != "cuda":
        if B.small(m0, x00, plan):  # all signals of a trial <= SMALL_VALUES values
            first = B.chunk_size(trials, [B.SMALL_VALUES * x00.element_size()], gradients)
        else:
            plan = None
    if batched and plan is None:
        raise ValueError("batched=True needs a plain nn.Sequential of Linear/ConvNd layers "
                         "and parameter-free activations; use batched=None or False")
    return plan, (functools.partial(_run_batched, first=first) if plan is not None
                  else _run_loop)


class _Tables:
    """The result's arrays, filled trial by trial (loop) or chunk by chunk (batched)."""

    def __init__(self, keys: list[tuple[str, int]], trials: int, gradients: bool,
                 hist_len: int | None) -> None:
        self.keys, layers = keys, len(keys) + 1
        self.names = [f"{n}#{c + 1}" if c else n for n, c in keys]
        self.stats = {n: np.empty((trials, layers), dtype=bool if n == "finite" else float)
                      for n in STATS}
        self.grads = ({n: np.full((trials, layers), np.nan) for n in GRAD_STATS}
                      if gradients else None)
        self.hist = None if hist_len is None else np.zeros((layers, hist_len), dtype=np.int64)

    def put(self, rows: range, stats: list[dict], hists: list, grads: dict,
            wgrads: dict) -> None:
        """``stats[layer][name]``, ``grads[layer]``, ``wgrads[layer]``: one value per row."""
        def col(v: torch.Tensor) -> np.ndarray:
            return v.reshape(-1).cpu().numpy()

        rows_ = slice(rows.start, rows.stop)
        for name, out in self.stats.items():
            out[rows_] = torch.stack([s[name].reshape(-1) for s in stats], 1).cpu().numpy()
        if self.hist is not None:
            self.hist += torch.stack(hists).cpu().numpy()
        if self.grads is not None:
            for prefix, values in (("grad_x", grads), ("grad_w", wgrads)):
                for index, (mean, std) in values.items():
                    self.grads[f"{prefix}_mean"][rows_, index] = col(mean)
                    self.grads[f"{prefix}_std"][rows_, index] = col(std)


def _run_loop(model, m0, x00, batch_of, plan, prep, *, trials, seed, gradients, include,
              exclude, hist_dtype, progress, hist_only=None):
    tables = None
    for t in range(trials):
        m = m0 if t == 0 else W.prepare(model, t, **prep)
        x0 = x00 if t == 0 else batch_of(t, W.device_of(m))
        rec, in_stats, wgrads, in_hist = _trial(m, x0, t, seed=seed, gradients=gradients,
                                                include=include, exclude=exclude,
                                                hist_dtype=hist_dtype, hist_only=hist_only)
        if tables is None:
            tables = _Tables(rec.keys, trials, gradients,
                             None if in_hist is None else len(in_hist))
            types, shapes = rec.types, [tuple(x00.shape[1:]), *rec.shapes]
        elif rec.keys != tables.keys:
            raise ValueError(f"trial {t} called the hooked modules in another order than "
                             "trial 0; the probe needs the same layers in every trial")
        tables.put(range(t, t + 1), [in_stats, *rec.stats], [in_hist, *rec.hists],
                   rec.grads, wgrads)
        progress(1)
    return tables, types, shapes


def _batched_plan(m: nn.Module, include, exclude) -> list[int] | None:
    """The hooked children's indices when ``m`` can take the batched path, else None."""
    if not B.eligible(m):
        return None
    children = {child: i for i, child in enumerate(m)}
    chosen = select(m, include, exclude)
    if any(module not in children for module in chosen):
        return None
    return sorted(children[module] for module in chosen)


def _run_batched(model, m0, x00, batch_of, plan, prep, *, trials, seed, gradients, include,
                 exclude, hist_dtype, progress, first=1, hist_only=None):
    where, batch = x00.device, x00.shape[0]
    tables = _Tables([(str(i), 0) for i in plan], trials, gradients, None)
    start, chunk = 0, first  # the first chunk's signals give the sizes of the next ones
    while start < trials:
        rows = range(start, min(trials, start + chunk))
        params = [{n: p.new_empty((len(rows), *p.shape)) for n, p in c.named_parameters()}
                  for c in m0]
        for k, t in enumerate(rows):  # each trial's parameters, copied once into the stack
            m = m0 if t == 0 else W.prepare(model, t, **prep)
            with torch.no_grad():
                for stack, child in zip(params, m, strict=True):
                    for n, p in child.named_parameters():
                        stack[n][k].copy_(p)
        x0 = torch.stack([x00 if t == 0 else batch_of(t, where) for t in rows])

        def g_of(y: torch.Tensor, rows: range = rows) -> torch.Tensor:
            return torch.stack([_output_gradient(y[i], batch, seed, t)
                                for i, t in enumerate(rows)])

        out = B.run_chunk(m0, params, x0, plan, g_of, gradients, hist_dtype, hist_only)
        if tables.hist is None and hist_dtype is not None:
            tables.hist = np.zeros((len(plan) + 1, len(out["hists"][0])), dtype=np.int64)
        tables.put(rows, out["stats"], out["hists"], out["grads"], out["wgrads"])
        progress(len(rows))
        if start == 0:
            item = x00.element_size()
            sizes = [math.prod(s) * batch * item for s in out["shapes"]]
            shapes = out["shapes"]
        start = rows.stop
        chunk = B.chunk_size(trials, sizes, gradients)
    return tables, [type(m0[i]).__name__ for i in plan], shapes
