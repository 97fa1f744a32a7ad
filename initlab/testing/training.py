"""``assert_trains``: a chain or a model trains to a held-out accuracy within a number of
steps (``initlab.testing``), with the trainer of ``initlab.train``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from initlab.train import ChainConfig, Dataset, TrainingRecord, TrainSpec, train_chain, train_model

__all__ = ["assert_trains"]

Trainable = ChainConfig | Any | nn.Module | Callable[[], nn.Module]


def assert_trains(model_or_spec: Trainable, accuracy: float | None = None,
                  steps: int | None = None, *, train: TrainSpec | Mapping[str, Any] | None = None,
                  trials: int = 3, seed: int = 0, data: Dataset | None = None,
                  loss: float | None = None, device: str | torch.device | None = None,
                  dtype: torch.dtype = torch.float32, **model_settings: Any) -> TrainingRecord:
    """Train ``trials`` initialisations for ``steps`` updates; pass when the median
    trial's final held-out accuracy is at least ``accuracy``.

    ``model_or_spec``: a chain (``initlab.train.ChainConfig``, an ``initlab.spec.ChainSpec``
    or a mapping of ChainConfig's fields: an input layer, ``depth`` layers of ``width``,
    a readout, all drawn by its schemes; trained with ``dtype`` on ``device``, default
    cpu), or a model (an ``nn.Module`` or a zero-argument factory;
    ``model_settings`` are ``initlab.train.train_model``'s: ``init``, ``bias``,
    ``input_shape``, ...). ``train``: a ``TrainSpec`` or its fields as a mapping (default:
    Adam lr 1e-3, batch 64 on digits; statistics and the held-out set only read at the
    end, no histograms); ``steps`` overrides its steps. ``data``: a ``Dataset`` instead
    of ``train.data``.

    The bar: ``accuracy`` (default: the trainer's own, chance + ``pass_fraction`` x
    (1 - chance)). On a regression task: the median final held-out loss is at most
    ``loss`` (default: (1 - ``pass_fraction``) x its median at step 0). A trial whose
    accuracy is not finite counts as 0 (its loss as infinite). Returns the record; the
    failure is one line: the accuracy reached (median, 10-90 %), the steps, the bar and
    chance.
    """
    spec = _train_spec(train, steps)
    record = _train(model_or_spec, spec, trials, seed, data, device, dtype, model_settings)
    problem = _shortfall(record, accuracy, loss)
    if problem:
        raise AssertionError(f"expected {_label(model_or_spec, record)} to train {problem}")
    return record


def _train_spec(train: TrainSpec | Mapping[str, Any] | None, steps: int | None) -> TrainSpec:
    """The TrainSpec to run: ``train`` with ``steps``; as a mapping or None, lean defaults
    (record and evaluate at the start and end only, no histograms) unless it sets them."""
    if isinstance(train, TrainSpec):
        return train if steps is None else dataclasses.replace(train, steps=steps)
    if train is not None and not isinstance(train, Mapping):
        raise ValueError(f"train={train!r} is not allowed; pass a TrainSpec, a mapping of its "
                         "fields, or None")
    fields = dict(train or {})
    if steps is not None:
        fields["steps"] = steps
    n = fields.get("steps", TrainSpec.steps)
    fields = {"record_every": n, "eval_every": n, "histogram": False, **fields}
    return TrainSpec(**fields)


def _is_chain(thing: Any) -> bool:
    return isinstance(thing, (ChainConfig, Mapping)) or (
        not isinstance(thing, nn.Module) and not callable(thing)
        and all(hasattr(thing, f) for f in ChainConfig.__dataclass_fields__))


def _train(thing: Trainable, spec: TrainSpec, trials: int, seed: int, data: Dataset | None,
           device, dtype: torch.dtype, settings: dict[str, Any]) -> TrainingRecord:
    if _is_chain(thing):
        if settings:
            raise ValueError(f"{sorted(settings)[0]}= is not allowed for a chain; its schemes "
                             "and sizes are the config's")
        config = ChainConfig(**thing) if isinstance(thing, Mapping) else ChainConfig.of(thing)
        (record,) = train_chain([config], spec, data, trials=trials, seed=seed,
                                device=device or "cpu", dtype=dtype)
        return record
    if isinstance(thing, nn.Module) or callable(thing):
        return train_model(thing, spec, data, trials=trials, seed=seed, device=device,
                           **settings)
    raise ValueError(f"model_or_spec={thing!r} is not allowed; pass a ChainConfig, a "
                     "ChainSpec, a mapping of chain fields, an nn.Module or a factory")


def _band(values: np.ndarray) -> tuple[float, float, float]:
    q10, q50, q90 = np.quantile(values, [0.1, 0.5, 0.9])
    return float(q50), float(q10), float(q90)


def _shortfall(record: TrainingRecord, accuracy: float | None,
               loss: float | None) -> str | None:
    """Why the run fell short of the bar, in words (None when it passed)."""
    steps, n = record.steps, record.trials
    if record.task == "classify":
        if loss is not None:
            raise ValueError("loss= applies to a regression task; this one classifies, use "
                             "accuracy=")
        chance = record.chance
        bar = chance + record.pass_fraction * (1 - chance) if accuracy is None else accuracy
        acc = np.nan_to_num(record.eval_acc[:, -1], nan=0.0)
        med, q10, q90 = _band(acc)
        if med >= bar:
            return None
        return (f"to a held-out accuracy >= {bar:.3g} within {steps} steps, but the median "
                f"trial reached {med:.3g} (10-90 % of {n} trials: {q10:.3g} .. {q90:.3g}; "
                f"{int((acc >= bar).sum())} of {n} at the bar) after {steps} steps; chance "
                f"{chance:.3g}; final held-out loss {np.median(record.eval_loss[:, -1]):.3g}")
    if accuracy is not None:
        raise ValueError("accuracy= applies to a classification task; this one regresses "
                         "(mean squared error), use loss=")
    start = float(np.median(record.eval_loss[:, 0]))
    bar = (1 - record.pass_fraction) * start if loss is None else loss
    final = np.nan_to_num(record.eval_loss[:, -1], nan=np.inf)
    med, q10, q90 = _band(final)
    if med <= bar:
        return None
    return (f"to a held-out loss <= {bar:.3g} within {steps} steps, but the median trial "
            f"reached {med:.3g} (10-90 % of {n} trials: {q10:.3g} .. {q90:.3g}; "
            f"{int((final <= bar).sum())} of {n} at the bar) after {steps} steps; at step 0 "
            f"{start:.3g}")


def _label(thing: Trainable, record: TrainingRecord) -> str:
    """``init=... activation=... width=... depth=...`` (a chain) or the model's class, then
    how it trained."""
    s = record.settings
    if _is_chain(thing):
        c = ChainConfig(**thing) if isinstance(thing, Mapping) else ChainConfig.of(thing)
        params = "".join(f" init.{k}={v:g}" if isinstance(v, float) else f" init.{k}={v}"
                         for k, v in c.init_params.items())
        bias = "".join(f" bias.{k}={v:g}" if isinstance(v, float) else f" bias.{k}={v}"
                       for k, v in c.bias_params.items())
        what = (f"the chain init={c.init}{params} bias={c.bias}{bias} "
                f"activation={c.activation} width={c.width} depth={c.depth}")
    else:
        model = thing if isinstance(thing, nn.Module) else getattr(thing, "__name__", "model")
        name = type(model).__name__ if isinstance(model, nn.Module) else model
        what = f"the model {name} (init={s.get('init')}, bias={s.get('bias')})"
    return (f"{what} ({s['train_optimizer']} lr {s['train_lr']:g} {s['train_schedule']}, "
            f"batch {s['train_batch_size']} on {s['data']}, {record.trials} trials, "
            f"seed {s['seed']})")
