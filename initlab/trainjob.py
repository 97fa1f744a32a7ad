"""Training as one more kind of job: what ``initlab.job`` runs after a training job's
init-time measurement (``train=...`` on the command line; off by default).

Chain jobs that share their sizes, trials, seed, dtype, device and training settings
are trained as one batched computation (``initlab.train.train_chain``: every trial of
every config of the group in one set of bmm's, each trial's numbers its own); a model
job is trained alone (``train_model``). Each job then gets, beside its init-time files:

* ``train_steps.parquet``/``.csv``: per (trial, step) the training batch's loss and
  accuracy, the held-out ones at evaluated steps, the learning rate and momentum;
* ``train_layers.parquet``/``.csv``: per (trial, recorded step, layer) the init-time
  statistics, ``near_zero`` and the gradient columns (fastai's ActivationStats);
* ``train_histogram.csv``: per (recorded step, layer) log10|x| counts (``color_dim``);
* summary.json's ``training`` block (``training_block``) and, with
  ``train.tensorboard=true``, TensorBoard event files under ``tensorboard/``.

Step 0 is the network before any update: its statistics are those of
``initlab.probe`` on the trained network (input layer, the chain, readout) fed each
trial's first training batch (tests/test_train_chain.py, tests/test_train_model.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from initlab import measure, store
from initlab.modelspec import ModelSpec
from initlab.numbers import num
from initlab.spec import ChainSpec, resolve_device
from initlab.train.record import TrainingRecord
from initlab.train.spec import TrainSpec

TENSORBOARD_DIR = "tensorboard"
STEP0_NOTE = ("step 0 is the network before any update, fed each trial's first training "
              "batch: the statistics initlab.probe measures on it at initialization")


def layers_of(spec: ChainSpec | ModelSpec) -> int:
    """Rows a trained network records per step: the chain's input, input layer, ``depth``
    layers and readout; a model's hooked modules (as its init-time work counts them)."""
    if isinstance(spec, ChainSpec):
        return spec.depth + 3
    return measure.model_work(spec) // spec.trials


def work(spec: ChainSpec | ModelSpec, train: TrainSpec) -> int:
    """What a training job's progress counts: trial-layer updates."""
    return spec.trials * train.steps * layers_of(spec)


def _key(spec: ChainSpec | ModelSpec, train: TrainSpec, position: int) -> str:
    """Jobs with one key train together: chains of one shape and run settings; a model
    job alone."""
    if not isinstance(spec, ChainSpec):
        return f"model {position}"
    shared = {k: getattr(spec, k) for k in ("width", "depth", "trials", "seed", "dtype",
                                            "device")}
    return json.dumps([shared, dataclasses.asdict(train)], sort_keys=True, default=str)


def plan(items: Sequence[tuple[ChainSpec | ModelSpec, TrainSpec]]) -> list[list[int]]:
    """Groups of positions in ``items`` that train as one computation."""
    groups: dict[str, list[int]] = {}
    for i, (spec, train) in enumerate(items):
        groups.setdefault(_key(spec, train, i), []).append(i)
    return list(groups.values())


def describe(specs: Sequence[ChainSpec | ModelSpec], train: TrainSpec) -> str:
    """What a group trains, for the log: ``6 chains of depth 10, width 64 (2 trials each):
    600 steps of rmsprop on digits``."""
    first = specs[0]
    what = (f"{len(specs)} chain{'s' if len(specs) > 1 else ''} of depth {first.depth}, "
            f"width {first.width}" if isinstance(first, ChainSpec) else f"model={first.model}")
    return (f"{what} ({first.trials} trials{' each' if len(specs) > 1 else ''}): "
            f"{train.steps} steps of {train.optimizer} on {train.data}")


def train(specs: Sequence[ChainSpec | ModelSpec], train: TrainSpec,
          progress: Callable[[int], object] | None = None) -> list[TrainingRecord]:
    """Train a group from ``plan`` (chains batched; a model alone); one record per spec.
    ``progress`` counts trial-layer updates (``work``)."""
    import torch

    from initlab.train import train_chain, train_model

    first = specs[0]
    device = resolve_device(first.device)
    if isinstance(first, ChainSpec):
        per = first.trials * layers_of(first) * len(specs)
        tick = None if progress is None else (lambda done, total: progress(per))
        return train_chain(list(specs), train, trials=first.trials, seed=first.seed,
                           device=device, dtype=getattr(torch, first.dtype), progress=tick)
    from initlab.train.data import load_data

    include, exclude = first.hooks()
    data = load_data(train, first.shape(), getattr(torch, first.dtype))
    factory = first.factory()
    if first.model == "conv_chain":  # a readout to the classes, hooked as the chain's is
        factory = with_readout(factory, first, data.outputs)
        include = [*include, "Linear"]
    per = layers_of(first)
    tick = None if progress is None else (lambda done, total: progress(per))
    record = train_model(factory, train, data, trials=first.trials, seed=first.seed,
                         init=first.init, init_params=first.init_params, bias=first.bias,
                         bias_params=first.bias_params, include=include, exclude=exclude,
                         device=device, progress=tick)
    return [record]


def with_readout(build: Callable[[], Any], spec: ModelSpec, outputs: int) -> Callable[[], Any]:
    """``conv_chain`` for training: its convolutions and activations, then Flatten and a
    Linear readout from its last feature map (channels x (size - 2 depth)^2) to
    ``outputs``, drawn with the job's init like the chain's readout."""
    from torch import nn

    features = spec.channels * (spec.size - 2 * spec.depth) ** 2

    def make() -> nn.Module:
        body = build()
        return nn.Sequential(body, nn.Flatten(), nn.Linear(features, outputs)).to(spec.torch_dtype)

    make.__name__ = build.__name__
    return make


def _median(values: np.ndarray) -> float | None:
    with np.errstate(invalid="ignore"):
        return num(np.median(values))


def training_block(record: TrainingRecord) -> dict[str, Any]:
    """summary.json's ``training``: verdict, final held-out loss and accuracy (median and
    10-90 % over trials), chance, steps, seconds, and the step-0 and last recorded
    statistics of the last layer before the output (medians over trials)."""
    out = {k: (num(v) if isinstance(v, float) else v) for k, v in record.summary().items()}
    if record.task != "classify":
        out.update(final_eval_acc=None, final_eval_acc_q10=None, final_eval_acc_q90=None)
    layer = max(record.stats["std"].shape[2] - 2, 0)
    for where, index in (("step0", 0), ("last_recorded", -1)):
        out[where] = {"step": int(record.steps_recorded[index]), "layer": layer,
                      "module": record.layer_names[layer],
                      **{name: _median(record.stats[name][:, index, layer])
                         for name in ("mean", "std", "near_zero")}}
    out.update(steps=record.steps, task=record.task, data=record.settings.get("data"),
               seconds=round(record.seconds, 3), step0_note=STEP0_NOTE)
    return out


def write(out_dir: Path, record: TrainingRecord, tensorboard: bool = False) -> None:
    """The training files of one job (module docstring), each written whole."""
    from initlab.train import tables

    out_dir = Path(out_dir)
    for stem, frame in ((store.TRAIN_STEPS, tables.step_frame(record)),
                        (store.TRAIN_LAYERS, tables.layer_frame(record))):
        store.write_with(out_dir / f"{stem}.csv", lambda tmp, f=frame: f.to_csv(tmp, index=False))
        store.write_with(out_dir / f"{stem}.parquet",
                         lambda tmp, f=frame: f.to_parquet(tmp, index=False))
    if record.hist is not None:
        frame = tables.hist_frame(record)
        store.write_with(out_dir / store.TRAIN_HISTOGRAM_CSV,
                         lambda tmp: frame.to_csv(tmp, index=False))
    if tensorboard:
        from initlab.train.tensorboard import write_events

        write_events(record, out_dir / TENSORBOARD_DIR)
