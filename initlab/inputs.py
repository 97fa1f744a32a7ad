"""A probed model's inputs: Gaussian N(0, I), or real images (scikit-learn's 8x8 digits).

Each is what ``initlab.probe`` takes: a callable ``(generator) -> (batch, *shape)``
tensor (trial t's generator is seeded from the run's seed and t), the Gaussian ones
with the chain's own keyed input streams besides (``GaussianInputs.keyed``).

* ``gaussian``: x ~ N(0, I) per sample (``gaussian_inputs``); with
  ``correlation`` c0 > 0, x_b = sqrt(1 - c0) z_b + sqrt(c0) z (one z shared by the
  trial's batch), so two inputs have cosine c0 in expectation, as the chain's inputs.
* ``digits``: scikit-learn's 8x8 handwritten digits (``sklearn.datasets.load_digits``,
  1797 images that ship inside the wheel: no download). Pixels 0..16 are divided by
  the set's root mean square (7.75), so E[x^2] = 1 over the 8x8 set as for N(0, I)
  inputs, but **not centred**: the mean is 0.63 and every pixel is >= 0, the point of
  real inputs (what LSUV and data-dependent init are about). Each image is resized
  bilinearly (``F.interpolate``, align_corners=False) to the model's height x width
  (which moves E[x^2] by a few per cent: the theory starts from the measured value),
  and its one channel is repeated to the model's channels. A trial's batch is drawn
  without replacement from the 1797 images by the trial's generator.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from initlab.draws import input_columns

INPUTS = ("gaussian", "digits")
#: pip's words for getting scikit-learn, for the one-line error
INSTALL = "pip install 'initlab[digits]' (or pip install scikit-learn)"

Make = Callable[[torch.Generator], torch.Tensor]


def check(name: str, shape: Sequence[int] | None = None, batch: int = 1) -> None:
    """ValueError (one line) unless inputs ``name`` can feed a model of per-sample ``shape``."""
    if name not in INPUTS:
        raise ValueError(f"inputs={name!r} is not allowed; allowed: {', '.join(INPUTS)}")
    if name != "digits":
        return
    if importlib.util.find_spec("sklearn") is None:
        raise ValueError(f"inputs=digits needs scikit-learn, which is not installed: {INSTALL}")
    if shape is not None and len(shape) != 3:
        raise ValueError(f"inputs=digits needs an image input shape [channels, height, width]; "
                         f"this model takes {list(shape)}")
    if batch > 1797:
        raise ValueError(f"batch={batch} is not allowed with inputs=digits; the set has 1797 "
                         "images (batch <= 1797)")


class GaussianInputs:
    """x ~ N(0, I) of per-sample ``shape``, ``batch`` samples a trial: the chain's inputs.

    ``keyed(seed, trial)`` draws trial t's batch from the chain engine's input streams
    (``initlab.draws.input_columns``) as a (features, batch) matrix, transposed: for a
    vector input it is the chain's x_0 of trial t, correlated inputs included
    (``correlation`` = c0: x_b = sqrt(1 - c0) z_b + sqrt(c0) z with one shared z, so
    every value has variance 1 and two samples cosine c0). Called with a generator
    (the probe's protocol for any inputs) it draws z_b, then z, from that generator.
    """

    def __init__(self, shape: Sequence[int], batch: int = 1, dtype: torch.dtype = torch.float32,
                 correlation: float = 0.0) -> None:
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch={batch!r} is not allowed; batch must be an integer >= 1")
        self.shape = tuple(int(s) for s in shape)
        if not self.shape or min(self.shape) < 1:
            raise ValueError(f"shape={self.shape!r} is not allowed; a per-sample shape has "
                             "sizes >= 1")
        self.c0 = float(correlation)
        if not 0 <= self.c0 < 1:
            raise ValueError(f"correlation={correlation!r} is not allowed; correlation must be "
                             "a number with 0 <= correlation < 1")
        self.batch, self.dtype = batch, dtype
        self.features = math.prod(self.shape)

    def _samples(self, z: torch.Tensor) -> torch.Tensor:
        return z.T.reshape(self.batch, *self.shape).to(self.dtype)

    def keyed(self, seed: int, trial: int) -> torch.Tensor:
        z = input_columns(seed, self.features, self.batch, range(trial, trial + 1), self.c0,
                          mode="trial")[0]
        return self._samples(z)

    def __call__(self, generator: torch.Generator) -> torch.Tensor:
        z = torch.empty(self.features, self.batch).normal_(generator=generator)
        if self.c0 > 0:
            common = torch.empty(self.features, 1).normal_(generator=generator)
            z.mul_(math.sqrt(1.0 - self.c0)).add_(common, alpha=math.sqrt(self.c0))
        return self._samples(z)


def gaussian_inputs(shape: Sequence[int], batch: int = 1, dtype: torch.dtype = torch.float32,
                    correlation: float = 0.0) -> GaussianInputs:
    """Inputs x ~ N(0, I) of per-sample ``shape`` for the probe (``GaussianInputs``)."""
    return GaussianInputs(shape, batch, dtype, correlation)


def _digits_file() -> Path | None:
    """scikit-learn's own copy of the digits (what ``load_digits`` reads), if present."""
    spec = importlib.util.find_spec("sklearn")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


@lru_cache(maxsize=1)
def digit_images() -> torch.Tensor:
    """The 1797 digits as (1797, 1, 8, 8) float32, scaled to E[x^2] = 1 over the set.

    Read from the wheel's data file (64 pixels and the label per row) without importing
    scikit-learn, which would import SciPy (seconds); ``load_digits`` when it has moved."""
    path = _digits_file()
    if path is not None:
        import numpy as np

        pixels = np.loadtxt(path, delimiter=",", dtype=np.float64)[:, :64]
    else:
        from sklearn.datasets import load_digits

        pixels = load_digits().data
    images = torch.as_tensor(pixels, dtype=torch.float64).reshape(-1, 8, 8)
    images = images / images.square().mean().sqrt()
    return images.to(torch.float32).unsqueeze(1)


def digits(shape: Sequence[int], batch: int = 1, dtype: torch.dtype = torch.float32) -> Make:
    """``batch`` digits per trial, resized bilinearly to ``shape`` = (channels, height, width)."""
    check("digits", shape, batch)
    channels, height, width = (int(s) for s in shape)
    images = digit_images()

    def make(generator: torch.Generator) -> torch.Tensor:
        pick = torch.randperm(len(images), generator=generator)[:batch]
        x = F.interpolate(images[pick], size=(height, width), mode="bilinear",
                          align_corners=False)
        return x.expand(batch, channels, height, width).contiguous().to(dtype)

    return make


def make_inputs(name: str, shape: Sequence[int], batch: int = 1, correlation: float = 0.0,
                dtype: torch.dtype = torch.float32) -> Make:
    """The inputs ``name`` (``INPUTS``) for a model of per-sample ``shape``."""
    check(name, shape, batch)
    if name == "digits":
        if correlation:
            raise ValueError(f"input_correlation={correlation} applies to gaussian inputs only; "
                             "digits are what they are")
        return digits(shape, batch, dtype)
    return gaussian_inputs(shape, batch, dtype, correlation)
