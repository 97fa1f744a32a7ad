"""Training data as plain tensors, and each trial's batch order from keyed streams.

Three sources (``TrainSpec.data``), each a ``Dataset`` of CPU tensors:

* ``digits``: scikit-learn's 8x8 digits (1797 images, 10 classes), read from the CSV
  inside its wheel without importing scikit-learn (``initlab.inputs._digits_file``;
  ``load_digits`` if the file has moved). The split is FIXED, independent of every
  seed: a stratified 80/20 split (per class, the first 20 % of its images in one fixed
  permutation are held out: 359 held-out, 1438 training images, 35-37 per class). The
  images are resized bilinearly (``F.interpolate``, align_corners=False) to the model's
  height x width when it takes images (1 x 28 x 28 for ``simple_cnn``), the one channel
  repeated to the model's channels, or flattened to 64 features for the chain, then
  standardised with the training set's mean and std over all pixels (one channel: a
  scalar pair, as fastai's ``Normalize`` per channel), so the training set has mean 0
  and std 1 and the held-out set nearly so.
* ``teacher``: a synthetic task with no dependency: x ~ N(0, I) of any shape (the
  model's, or ``inputs`` features), labelled by a random teacher network on the
  flattened x: ``depth`` tanh layers of ``width`` units with N(0, 1/fan_in) weights
  (gain 1: the ordered side, a smooth function), then a linear readout to ``classes``
  outputs. ``task=classify``: the label is the argmax of the readout after removing
  each output's mean over the data set (so no class is empty); ``task=regress``: the
  targets are the readout plus ``noise`` x N(0, 1) (trained with mean squared error).
  Everything is drawn from streams keyed by ``TrainSpec.data_seed``, never the run's
  seed. The last ``test_fraction`` of the samples are held out.
* ``custom``: ``data_params['_target_']`` names a function (``initlab.plugins.locate``)
  called with the other entries as keyword arguments, returning (x_train, y_train,
  x_test, y_test) or a dict with those keys; arrays or tensors, used as given (not
  standardised). Integer labels of shape (N,) make a classification task, floating
  targets of shape (N,) or (N, k) a regression.

Batch order (``batch_order``): trial t shuffles the training set once per epoch with
a generator seeded by ``stream_seed(seed, ORDER_STREAM, t, epoch)`` and takes
consecutive batches of ``batch_size`` (the last incomplete batch of an epoch is
dropped, as ``DataLoader(shuffle=True, drop_last=True)``). So the same seed gives the
same batches, trial t's batches do not depend on how many trials run, and every
config of a sweep sees the same batches in trial t (paired comparisons).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from initlab.rules import SpecError
from initlab.streams import stream_seed
from initlab.train.spec import TrainSpec

#: Tags of the trainer's keyed streams (apart from initlab.draws' weight/input/bias tags).
ORDER_STREAM = 0x0BA7C4ED
SPLIT_STREAM = 0x5B117DA7
TEACHER_STREAM = 0x7EAC4E25
#: The held-out share of digits (per class, rounded) and the default of the teacher task.
TEST_FRACTION = 0.2
TEACHER = {"inputs": 32, "classes": 10, "samples": 2000, "width": 64, "depth": 2,
           "task": "classify", "noise": 0.0, "test_fraction": TEST_FRACTION}
TASKS = ("classify", "regress")


@dataclass(frozen=True)
class Dataset:
    """Training and held-out tensors (CPU). ``task``: ``classify`` (``y`` int64 labels,
    cross-entropy) or ``regress`` (``y`` float (N, outputs), mean squared error);
    ``outputs``: the number of classes or targets; ``chance``: the held-out share of the
    most frequent class (NaN for regression)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    task: str
    outputs: int

    @property
    def chance(self) -> float:
        """The held-out share of the most frequent class: what always guessing it scores."""
        if self.task != "classify":
            return float("nan")
        counts = torch.bincount(self.y_test, minlength=self.outputs)
        return float(counts.max()) / len(self.y_test)

    @property
    def features(self) -> int:
        """Values in one sample (the chain's input width)."""
        return math.prod(self.x_train.shape[1:])


@lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    """(1797, 8, 8) float64 pixels 0..16 and (1797,) int64 labels."""
    from initlab.inputs import INSTALL, _digits_file

    path = _digits_file()
    if path is not None:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        pixels, labels = table[:, :64], table[:, 64]
    else:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise SpecError(f"train.data=digits needs scikit-learn: {INSTALL}") from None
        bunch = load_digits()
        pixels, labels = bunch.data, bunch.target
    return (torch.as_tensor(pixels).reshape(-1, 8, 8),
            torch.as_tensor(labels, dtype=torch.int64))


def digits_split() -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, held-out indices) of the fixed stratified split (module docstring)."""
    _, labels = _digits()
    gen = torch.Generator().manual_seed(stream_seed(0, SPLIT_STREAM))
    order = torch.randperm(len(labels), generator=gen)
    test = []
    for c in range(int(labels.max()) + 1):
        members = order[labels[order] == c]
        test.append(members[:round(TEST_FRACTION * len(members))])
    held = torch.cat(test)
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[held] = False
    return torch.nonzero(mask)[:, 0], held.sort().values


def digits(shape: Sequence[int] | None = None, dtype: torch.dtype = torch.float64) -> Dataset:
    """The digits for a model taking ``shape`` per sample: None or 64 values: flattened;
    (channels, height, width): resized bilinearly, the one channel repeated as a view
    (``expand``: conv_chain's 16 x 199 x 199 would be 9 GB as copies; a batch gathered
    from it is a plain tensor). Standardised with the training set's mean and std (of
    the one channel), in float64, then in ``dtype``."""
    pixels, labels = _digits()
    images = pixels.unsqueeze(1)  # (N, 1, 8, 8) float64
    channels = 1
    if shape is None or math.prod(shape) == 64 and len(shape) != 3:
        x = images.reshape(len(images), *(shape or (64,)))
    elif len(shape) == 3:
        channels, height, width = (int(s) for s in shape)
        x = F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False)
    else:
        raise SpecError(f"train.data=digits needs a model input of 64 values or an image "
                        f"[channels, height, width]; this model takes {list(shape)}")
    train, test = digits_split()
    x, y = x[torch.cat([train, test])], labels[torch.cat([train, test])]  # train, then test
    n = len(train)
    mean, std = x[:n].mean(), x[:n].std()
    x = ((x - mean) / std).to(dtype)
    if channels > 1:
        x = x.expand(-1, channels, -1, -1)  # a view, and so are its slices below
    return Dataset("digits", x[:n], y[:n], x[n:], y[n:], "classify", 10)


def _teacher_params(params: dict[str, Any]) -> dict[str, Any]:
    """``TEACHER`` updated with ``params``, each checked (SpecError naming the bad one)."""
    unknown = sorted(set(params) - set(TEACHER))
    if unknown:
        raise SpecError(f"train.data_params.{unknown[0]} does not apply to data=teacher; its "
                        f"parameters: {', '.join(TEACHER)}")
    out = {**TEACHER, **params}
    for key in ("inputs", "classes", "samples", "width"):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SpecError(f"train.data_params.{key}={v!r} is not allowed; it must be an "
                            "integer >= 1")
    if isinstance(out["depth"], bool) or not isinstance(out["depth"], int) or out["depth"] < 0:
        raise SpecError(f"train.data_params.depth={out['depth']!r} is not allowed; it must be "
                        "an integer >= 0")
    if out["task"] not in TASKS:
        raise SpecError(f"train.data_params.task={out['task']!r} is not allowed; allowed: "
                        f"{', '.join(TASKS)}")
    for key, low, high in (("noise", 0.0, math.inf), ("test_fraction", 0.0, 1.0)):
        v = out[key]
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                or not low <= v <= high or (key == "test_fraction" and v in (0.0, 1.0))):
            raise SpecError(f"train.data_params.{key}={v!r} is not allowed; it must be a "
                            f"number in {'(0, 1)' if key == 'test_fraction' else '[0, inf)'}")
    return out


def teacher(shape: Sequence[int] | None, data_seed: int, **params: Any) -> Dataset:
    """The teacher task (module docstring) with inputs of per-sample ``shape`` (None: the
    ``inputs`` parameter's features), drawn from streams keyed by ``data_seed``."""
    p = _teacher_params(params)
    shape = tuple(shape) if shape is not None else (p["inputs"],)
    n, d = p["samples"], math.prod(shape)
    gen = torch.Generator()

    def normal(*size: int, key: int) -> torch.Tensor:
        gen.manual_seed(stream_seed(data_seed, TEACHER_STREAM, key))
        return torch.empty(size, dtype=torch.float64).normal_(generator=gen)

    x = normal(n, d, key=0)
    h, fan_in = x, d
    for layer in range(1, p["depth"] + 1):
        h = torch.tanh(h @ normal(fan_in, p["width"], key=layer) / math.sqrt(fan_in))
        fan_in = p["width"]
    out = h @ normal(fan_in, p["classes"], key=p["depth"] + 1) / math.sqrt(fan_in)
    if p["task"] == "classify":
        y = (out - out.mean(0)).argmax(1)
    else:
        y = out + p["noise"] * normal(n, p["classes"], key=p["depth"] + 2)
    cut = n - max(1, round(p["test_fraction"] * n))
    x = x.reshape(n, *shape)
    return Dataset("teacher", x[:cut], y[:cut], x[cut:], y[cut:], p["task"], p["classes"])


def _as_tensor(name: str, value: Any, target: str) -> torch.Tensor:
    """A user's array or tensor as a CPU tensor (no graph)."""
    try:
        t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
    except Exception as exc:  # noqa: BLE001  (the user's object: any failure is one line)
        raise SpecError(f"train.data_params._target_={target}: {name} is not an array "
                        f"({type(exc).__name__})") from None
    return t.detach().cpu()


def custom(shape: Sequence[int] | None, target: str, **params: Any) -> Dataset:
    """A user's data: ``target(**params)`` -> (x_train, y_train, x_test, y_test) or a dict."""
    from initlab.plugins import locate

    try:
        got = locate(target)(**params)
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001  (a plug-in's failure becomes one line)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SpecError(f"train.data_params._target_={target} failed: "
                        f"{type(exc).__name__}: {text}") from None
    keys = ("x_train", "y_train", "x_test", "y_test")
    if isinstance(got, dict):
        if set(keys) - set(got):
            raise SpecError(f"train.data_params._target_={target} returned a dict without "
                            f"{', '.join(sorted(set(keys) - set(got)))}; it needs {keys}")
        got = tuple(got[k] for k in keys)
    if not isinstance(got, (tuple, list)) or len(got) != 4:
        raise SpecError(f"train.data_params._target_={target} returned {type(got).__name__}; "
                        "it must return (x_train, y_train, x_test, y_test) or a dict of them")
    xa, ya, xb, yb = (_as_tensor(k, v, target) for k, v in zip(keys, got, strict=True))
    return _checked(target, shape, xa, ya, xb, yb)


def _checked(target: str, shape, xa, ya, xb, yb) -> Dataset:
    """The user's arrays as a ``Dataset``: lengths, sample shapes and label kinds checked;
    integer labels make a classification, floating targets a regression."""
    where = f"train.data_params._target_={target}"
    if len(xa) != len(ya) or len(xb) != len(yb) or len(xa) == 0 or len(xb) == 0:
        raise SpecError(f"{where}: x_train/y_train ({len(xa)}/{len(ya)}) and x_test/y_test "
                        f"({len(xb)}/{len(yb)}) must be non-empty and of equal lengths")
    if not (xa.is_floating_point() and xb.is_floating_point()) or xa.shape[1:] != xb.shape[1:]:
        raise SpecError(f"{where}: x_train and x_test must be floating arrays of one sample "
                        f"shape; got {xa.dtype} {list(xa.shape)} and {xb.dtype} "
                        f"{list(xb.shape)}")
    if shape is not None and tuple(xa.shape[1:]) != tuple(shape):
        raise SpecError(f"{where}: samples of shape {list(xa.shape[1:])} do not fit the "
                        f"model's input {list(shape)}")
    if not ya.is_floating_point() and not yb.is_floating_point():
        if ya.dim() != 1 or yb.dim() != 1 or min(ya.min(), yb.min()) < 0:
            raise SpecError(f"{where}: integer labels must be of shape (N,) and >= 0")
        classes = int(max(ya.max(), yb.max())) + 1
        return Dataset("custom", xa, ya.long(), xb, yb.long(), "classify", classes)
    ya, yb = (y.to(torch.float64).reshape(len(y), -1) for y in (ya, yb))
    if ya.shape[1] != yb.shape[1]:
        raise SpecError(f"{where}: y_train and y_test have {ya.shape[1]} and {yb.shape[1]} "
                        "targets per sample")
    return Dataset("custom", xa, ya, xb, yb, "regress", ya.shape[1])


def load_data(train: TrainSpec, shape: Sequence[int] | None = None,
              dtype: torch.dtype = torch.float32) -> Dataset:
    """The data ``train.data`` for a model taking per-sample ``shape`` (None: the chain,
    flat vectors), inputs (and regression targets) in ``dtype``; SpecError (one line) when
    it cannot feed the model or the batch size exceeds the training set."""
    params = dict(train.data_params)
    if train.data == "digits":
        if params:
            raise SpecError(f"train.data_params.{sorted(params)[0]} does not apply to "
                            "data=digits; it takes none")
        data = digits(shape, dtype)
    elif train.data == "teacher":
        data = teacher(shape, train.data_seed, **params)
    else:
        data = custom(shape, params.pop("_target_"), **params)
    if train.batch_size > len(data.x_train):
        raise SpecError(f"train.batch_size={train.batch_size} is not allowed with data="
                        f"{train.data}: the training set has {len(data.x_train)} samples")
    ys = (data.y_train.to(dtype), data.y_test.to(dtype)) if data.task == "regress" else (
        data.y_train, data.y_test)
    return Dataset(data.name, data.x_train.to(dtype), ys[0], data.x_test.to(dtype), ys[1],
                   data.task, data.outputs)  # .to: a no-op where the dtype is already it


def batch_order(samples: int, batch_size: int, batches: int, seed: int,
                trials: Sequence[int]) -> torch.Tensor:
    """Indices into the training set, (len(trials), batches, batch_size) int64: trial t's
    batches 0..batches-1 (module docstring: one keyed shuffle per trial and epoch)."""
    per_epoch = samples // batch_size
    epochs = -(-batches // per_epoch)
    out = torch.empty(len(trials), epochs * per_epoch, batch_size, dtype=torch.int64)
    gen = torch.Generator()
    for i, t in enumerate(trials):
        for e in range(epochs):
            gen.manual_seed(stream_seed(seed, ORDER_STREAM, t, e))
            perm = torch.randperm(samples, generator=gen)[:per_epoch * batch_size]
            out[i, e * per_epoch:(e + 1) * per_epoch] = perm.view(per_epoch, batch_size)
    return out[:, :batches]
