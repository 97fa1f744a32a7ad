"""ProbeResult: a probed model's statistics, shaped like the chain engine's ``ChainResult``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from initlab.stats import STATS, hist_edges

if TYPE_CHECKING:
    import pandas as pd

#: Gradient statistics (the chain's ``GRAD_STATS``): dL/d(output) of each layer, dL/dW of
#: its module's weight (NaN for the input and for modules without a weight).
GRAD_STATS = ("grad_x_mean", "grad_x_std", "grad_w_mean", "grad_w_std")
#: Theory columns of the chain's table: NaN here (no theory for an arbitrary model).
THEORY = ("theory_mean", "theory_std")


@dataclass
class ProbeResult:
    """Per-trial, per-layer statistics: ``stats[name]`` has shape (trials, layers + 1).

    Layer 0 is the input; layer i the output of the i-th hooked module call in
    forward order (``modules[i]``, ``module_types[i]``; ``modules[0]`` is
    ``"input"``). ``stats`` holds ``initlab.stats.STATS`` and ``corr``, so
    ``initlab.verdict.trial_verdicts(result.stats, thresholds)`` works as on a chain.
    """

    settings: dict[str, Any]
    stats: dict[str, np.ndarray]
    modules: list[str]
    module_types: list[str]
    #: per-sample shape of each layer's signal
    shapes: list[tuple[int, ...]]
    device: str
    #: (layers + 1, 2 + bins): zeros, non-finite, then log10|x| bins over all trials
    hist: np.ndarray | None
    hist_dtype: str = "float32"
    grads: dict[str, np.ndarray] | None = None
    #: seconds per trial, and which path ran ("loop" or "vmap")
    timing: dict[str, Any] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return len(self.modules) - 1

    def final(self, name: str) -> np.ndarray:
        """Statistic ``name`` at the last layer, one value per trial."""
        values = self.grads[name] if name in GRAD_STATS and self.grads else self.stats[name]
        return values[:, -1]

    def frame(self) -> pd.DataFrame:
        """Tidy table, one row per (trial, layer): the settings, ``trial, layer, module,
        module_type``, ``STATS``, ``corr``, the gradient statistics (with gradients) and the
        chain's theory columns (NaN: no theory for an arbitrary model)."""
        import pandas as pd

        trials, layers = self.stats["mean"].shape
        cols: dict[str, Any] = {
            "trial": np.repeat(np.arange(trials), layers),
            "layer": np.tile(np.arange(layers), trials),
            "module": np.tile(np.array(self.modules, dtype=object), trials),
            "module_type": np.tile(np.array(self.module_types, dtype=object), trials),
        }
        for name in STATS:
            cols[name] = self.stats[name].reshape(-1)
        for name, values in (self.grads or {}).items():
            cols[name] = values.reshape(-1)
        theory = (*THEORY, "theory_grad_x_std") if self.grads else THEORY
        for name in theory:
            cols[name] = np.full(trials * layers, np.nan)
        frame = pd.DataFrame(cols)
        for i, (key, value) in enumerate(self.settings.items()):
            frame.insert(i, key, value)
        return frame

    def hist_frame(self) -> pd.DataFrame:
        """Sparse histogram, one row per (layer, bin) with a count, as the chain's:
        ``bin`` is ``zero``, ``nonfinite`` or ``value`` (``log10_lo <= log10|x| < log10_hi``)."""
        import pandas as pd

        if self.hist is None:
            raise ValueError("this probe ran with histogram=False; it has no histogram")
        edges = hist_edges(self.hist_dtype).numpy()
        lo = np.concatenate([[np.nan, np.nan], edges[:-1]])
        hi = np.concatenate([[np.nan, np.nan], edges[1:]])
        kind = np.array(["zero", "nonfinite"] + ["value"] * (len(edges) - 1))
        layer, col = np.nonzero(self.hist)
        return pd.DataFrame({"layer": layer, "bin": kind[col], "log10_lo": lo[col],
                             "log10_hi": hi[col], "count": self.hist[layer, col]})
