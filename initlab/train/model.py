"""Any ``nn.Module`` trained trial by trial, hooked as the probe hooks it.

Trial t's model is ``initlab.probing.weights.prepare(factory, t, ...)``: the probe's
weights (a scheme on every module with a >= 2-d weight, keyed streams; or the
model's own initialization under the trial's seed). It trains alone on trial t's
batches (``initlab.train.data.batch_order``) under torch's global generators seeded
from (seed, trial) (dropout and the like repeat), in ``train`` mode, and is evaluated
in ``eval`` mode (a batchnorm uses its running statistics on held-out data).

On a recording step the probe's hooks (``initlab.probing.record.Recorder``: forward
hooks on the selected modules, by default every leaf module with parameters, tensor
hooks for dL/d(output)) reduce each hooked output with the init-time functions; the
near-zero fraction is added to them. At step 0 the recorded forward statistics are
the probe's for the same factory, seed and trial with that trial's first batch as
inputs: the same weights, the same forward pass and the same reductions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from initlab.columns import hist_edges
from initlab.probing import weights as W
from initlab.probing.record import (
    Recorder,
    as_columns,
    first_tensor,
    grad_stats,
    select,
    signal_stats,
)
from initlab.rules import SpecError
from initlab.streams import stream_seed
from initlab.train.data import Dataset, load_data
from initlab.train.loop import Progress, run_steps, trial_ids
from initlab.train.record import Buffers, TrainingRecord, near_zero_fraction
from initlab.train.spec import TrainSpec

#: Tag of the stream seeding torch's global generators while a trial trains.
RUN_STREAM = 0x7EA1_0D0E


class _Hooks(Recorder):
    """The probe's recorder, plus the near-zero fraction of each hooked output."""

    near_zero = 0.05

    def _forward(self, module: nn.Module, args: Any, output: Any) -> None:
        before = len(self.stats)
        super()._forward(module, args, output)
        if len(self.stats) > before:
            cols = as_columns(first_tensor(output), self.batch)
            self.stats[-1]["near_zero"] = near_zero_fraction(cols, self.near_zero)[0]


class ModelNet:
    """One trial's model behind the loop's ``Net`` protocol (``initlab.train.loop``)."""

    rows = 1

    def __init__(self, model: nn.Module, row: int, hooked: dict[nn.Module, str],
                 batch: int, near_zero: float, hist_dtype: str | None,
                 keys: list | None = None) -> None:
        self.model, self.row = model, row
        self.rec = _Hooks(hooked, batch, hist_dtype, gradients=True)
        self.rec.near_zero = near_zero
        self.keys = keys
        self._x: torch.Tensor | None = None

    def parameters(self) -> list[torch.Tensor]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def train(self, mode: bool) -> None:
        self.model.train(mode)

    def _out(self, out: Any) -> torch.Tensor:
        """The model's (batch, k) output (its first floating tensor) as (1, batch, k)."""
        y = first_tensor(out)
        if y is None or y.dim() != 2:
            shape = None if y is None else list(y.shape)
            raise SpecError(f"the model's output must be (batch, outputs) logits or targets; "
                            f"got {shape}")
        return y.unsqueeze(0)

    def forward(self, x: torch.Tensor, record: bool) -> torch.Tensor:
        """Outputs (1, batch, k) of the trial's batch x (1, batch, ...); with ``record``,
        through the hooks."""
        x = x[0]
        if not record:
            return self._out(self.model(x))
        if x.is_floating_point():
            x = x.detach().clone().requires_grad_(True)
        self._x = x
        self.rec.start_trial()
        self.rec.attach()
        try:
            return self._out(self.model(x))
        finally:
            self.rec.detach()

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._out(self.model(x))

    def measure(self, step: int, bufs: Buffers) -> None:
        """The hooks' statistics, the input's, and the gradients of inputs and weights."""
        rec, x, self._x = self.rec, self._x, None
        if self.keys is not None and rec.keys != self.keys:
            raise ValueError(f"step {step} called the hooked modules in another order than "
                             "step 0; training needs the same layers at every step")
        stats, hist = signal_stats(x, rec.batch, rec.hist_dtype)
        stats["near_zero"] = near_zero_fraction(as_columns(x, rec.batch), rec.near_zero)[0]
        rows = [stats, *rec.stats]
        table = {n: torch.stack([r[n].reshape(()) for r in rows]).reshape(1, -1)
                 for n in rows[0]}
        grads = dict(rec.grads)
        if x.grad is not None:
            grads[0] = grad_stats(x.grad)
        cols: dict[str, torch.Tensor] = {}
        for prefix, values in (("grad_x", grads), ("grad_w", self._weight_grads())):
            for name, k in ((f"{prefix}_mean", 0), (f"{prefix}_std", 1)):
                col = torch.full((1, len(rows)), float("nan"), dtype=torch.float64)
                for index, pair in values.items():
                    col[0, index] = pair[k].cpu()
                cols[name] = col
        rowslice = slice(self.row, self.row + 1)
        bufs.put_layers(step, rowslice, 0, table, cols)
        if hist is not None:
            bufs.put_hist(step, 0, torch.stack([hist, *rec.hists]).unsqueeze(0))

    def _weight_grads(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Layer index -> (mean, std) of the hooked module's weight gradient."""
        out = {}
        for index, module in enumerate(self.rec.modules, start=1):
            w = getattr(module, "weight", None)
            if isinstance(w, torch.Tensor) and w.grad is not None:
                out[index] = grad_stats(w.grad)
        return out


def _layers(model: nn.Module, hooked: dict, x: torch.Tensor) -> tuple[list, list, list, int]:
    """(keys, names, types, widest) of the hooked calls of one forward pass (eval mode, no
    graph), named as the probe names them (``name#2`` for a module's second call);
    ``widest``: the most values one sample has in any hooked output or the input."""
    rec = Recorder(hooked, x.shape[0], None, gradients=False)
    mode = model.training
    model.eval()
    rec.attach()
    try:
        with torch.no_grad():
            model(x)
    finally:
        rec.detach()
        model.train(mode)
    names = [f"{n}#{c + 1}" if c else n for n, c in rec.keys]
    widest = max(math.prod(s) for s in [x.shape[1:], *rec.shapes])
    return rec.keys, ["input", *names], ["input", *rec.types], widest


def _check_outputs(net: ModelNet, x: torch.Tensor, data: Dataset) -> None:
    """SpecError unless the model maps the data's samples to ``data.outputs`` outputs."""
    was = net.model.training
    net.model.eval()
    try:
        with torch.no_grad():
            k = net.evaluate(x[:1]).shape[-1]
    finally:
        net.model.train(was)
    if k != data.outputs:
        raise SpecError(f"the model has {k} outputs but data={data.name} has {data.outputs} "
                        f"{'classes' if data.task == 'classify' else 'targets'}")


def _trial(m: nn.Module, t: int, row: int, train: TrainSpec, data: Dataset, bufs: Buffers,
           *, hooks: tuple, keys: list, widest: int, hist_dtype: str | None, seed: int,
           progress: Progress | None, trials: int):
    """Train trial ``t``'s model ``m`` into ``row`` of ``bufs``; the schedule's (lr,
    momentum) per update."""
    include, exclude = hooks
    net = ModelNet(m, row, select(m, include, exclude), train.batch_size, train.near_zero,
                   hist_dtype, keys)
    if row == 0:
        _check_outputs(net, data.x_train, data)
    done = row * train.steps

    def report(step: int, total: int) -> None:
        progress(done + step, trials * total)

    dev = W.device_of(m)
    with W.seeded(stream_seed(seed, RUN_STREAM, t), dev):
        return run_steps(net, train, data, bufs, trials=[t], seed=seed, width=widest,
                         device=dev, rows=slice(row, row + 1),
                         progress=report if progress else None)


def train_model(model: nn.Module | Callable[[], nn.Module], train: TrainSpec,
                data: Dataset | None = None, *, trials: int | Sequence[int] = 4,
                seed: int = 0, init: str = "model", init_params: dict | None = None,
                bias: str = "model", bias_params: dict | None = None,
                include: Sequence[str] | None = None, exclude: Sequence[str] | None = None,
                device: str | torch.device | None = None,
                input_shape: Sequence[int] | None = None,
                progress: Progress | None = None) -> TrainingRecord:
    """Train ``trials`` initialisations of ``model`` (a zero-argument factory, or an
    instance: reset per trial as the probe does, its state restored at the end), one
    after the other; ``init``/``bias`` and ``include``/``exclude`` as ``initlab.probe``;
    ``trials``: a count or trial indices (``initlab.train.loop.trial_ids``).

    ``data``: a ``Dataset`` whose samples fit the model, or None for
    ``load_data(train, input_shape, dtype)`` (``input_shape``: one sample's shape, e.g.
    ``(1, 28, 28)``; the dtype is the model's). ``progress(done, total)`` after every
    update, counted over all trials (total = trials x steps).
    """
    start = time.perf_counter()
    ids = trial_ids(trials)
    prep = dict(seed=seed, init=init, init_params=init_params, bias=bias,
                bias_params=bias_params, device=None if device is None else torch.device(device))
    snapshot = ({k: v.detach().clone() for k, v in model.state_dict().items()}
                if isinstance(model, nn.Module) else None)
    try:
        m0 = W.prepare(model, ids[0], **prep)
        dev = W.device_of(m0)
        dtype = next((p.dtype for p in m0.parameters() if p.is_floating_point()), torch.float32)
        data = load_data(train, input_shape, dtype) if data is None else data
        hist_dtype = "float64" if dtype == torch.float64 else "float32"
        if not select(m0, include, exclude):
            raise SpecError("no module of the model matches include/exclude; nothing to record")
        keys, names, types, widest = _layers(m0, select(m0, include, exclude),
                                     data.x_train[:train.batch_size].to(dev))
        bufs = Buffers(len(ids), 1, train.steps, train.record_steps(), train.eval_steps(),
                       len(names), len(hist_edges(hist_dtype)) + 1 if train.histogram else None,
                       dev)
        for row, t in enumerate(ids):
            if snapshot is not None and row:
                model.load_state_dict(snapshot)
            m = m0 if row == 0 else W.prepare(model, t, **prep)
            lr, mom = _trial(m, t, row, train, data, bufs, hooks=(include, exclude),
                             keys=keys, widest=widest, seed=seed, progress=progress,
                             hist_dtype=hist_dtype if train.histogram else None,
                             trials=len(ids))
    finally:
        if snapshot is not None:
            model.load_state_dict(snapshot)
    return bufs.record(0, slice(None), layer_names=names, layer_types=types,
                       steps=train.steps, hist_dtype=hist_dtype, lr=lr, momentum=mom,
                       task=data.task, chance=data.chance, pass_fraction=train.pass_fraction,
                       seconds=time.perf_counter() - start,
                       settings={"trials": len(ids), "seed": seed, "init": init, "bias": bias,
                                 "dtype": str(dtype).removeprefix("torch."), "device": str(dev),
                                 "data": data.name, **train.describe()})
