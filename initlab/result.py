"""Result: the per-layer statistics of one measured network, from the engine or the probe.

One type for every kind of job. The chain engine (``initlab.chain``) and the probe
(``initlab.probing``) both return it; the job writer turns it into files, ``summarize``
into summary.json, and ``frame()`` into the tidy table those files hold.

Layer 0 is the input; layer l the signal after the l-th layer (for a model: the l-th
hooked module call in forward order, named by ``modules[l]``). Arrays are NumPy:
``stats[name]`` and ``grads[name]`` have shape (trials, layers + 1), ``theory[stat]``
(layers + 1,), ``hist`` (layers + 1, 2 + bins) counts over all trials (zeros,
non-finite, then the log10|x| bins of ``initlab.columns.hist_edges``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from initlab.columns import GRAD_STATS, STATS, THEORY_STATS, hist_edges, theory_column

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Result:
    """What one network did over its trials (see the module docstring for the shapes)."""

    #: flat settings, JSON-friendly: the columns every table row carries
    settings: dict[str, Any]
    stats: dict[str, np.ndarray]
    #: ``GRAD_STATS`` name -> (trials, layers + 1), when gradients were asked for
    grads: dict[str, np.ndarray] | None = None
    hist: np.ndarray | None = None
    hist_dtype: str = "float32"
    #: mean-field prediction per ``THEORY_STATS`` name, (layers + 1,); None: none applies
    theory: dict[str, np.ndarray] | None = None
    #: scalar predictions and notes for summary.json (JSON-ready): overflow layer, phase,
    #: finite-width spread, ``theory_note`` where no theory applies, ...
    predictions: dict[str, Any] = field(default_factory=dict)
    #: a model's layer names and module types (``"input"`` first); None for the chain
    modules: list[str] | None = None
    module_types: list[str] | None = None
    #: per-sample shape of each layer's signal (a model's), else None
    shapes: list[tuple[int, ...]] | None = None
    device: str = "cpu"
    #: how it ran: seconds, the probe's path, ...
    timing: dict[str, Any] = field(default_factory=dict)
    #: what was measured (a ``ChainSpec`` or ``ModelSpec``), for callers in Python
    spec: Any = None

    @property
    def trials(self) -> int:
        return self.stats["mean"].shape[0]

    @property
    def depth(self) -> int:
        """Layers after the input."""
        return self.stats["mean"].shape[1] - 1

    def final(self, name: str) -> np.ndarray:
        """Statistic ``name`` (a gradient one too) at the last layer, one value per trial."""
        values = self.grads[name] if name in GRAD_STATS and self.grads else self.stats[name]
        return values[:, -1]

    def curve(self, stat: str) -> np.ndarray:
        """The prediction of ``stat`` per layer; NaN where none applies."""
        if self.theory is None or stat not in self.theory:
            return np.full(self.depth + 1, np.nan)
        return np.asarray(self.theory[stat], dtype=float)

    def frame(self) -> pd.DataFrame:
        """Tidy table, one row per (trial, layer): the settings, ``trial, layer`` (a model's
        ``module, module_type`` too), ``STATS``, ``GRAD_STATS`` (with gradients) and the
        prediction beside each statistic that has one (``theory_<stat>``, NaN where none
        applies). What ``layers.csv`` and ``layers.parquet`` hold."""
        import pandas as pd  # pandas only when a table is asked for

        trials, layers = self.trials, self.depth + 1
        cols: dict[str, Any] = {"trial": np.repeat(np.arange(trials), layers),
                                "layer": np.tile(np.arange(layers), trials)}
        if self.modules is not None:
            cols["module"] = np.tile(np.array(self.modules, dtype=object), trials)
            cols["module_type"] = np.tile(np.array(self.module_types, dtype=object), trials)
        for name in STATS:
            cols[name] = self.stats[name].reshape(-1)
        for name in GRAD_STATS if self.grads else ():
            cols[name] = self.grads[name].reshape(-1)
        for stat in THEORY_STATS:
            if stat in GRAD_STATS and not self.grads:
                continue
            cols[theory_column(stat)] = np.tile(self.curve(stat), trials)
        frame = pd.DataFrame(cols)
        for i, (key, value) in enumerate(self.settings.items()):
            frame.insert(i, key, value)
        return frame

    def hist_frame(self) -> pd.DataFrame:
        """Sparse histogram, one row per (layer, bin) with a non-zero count (``histogram.csv``):
        ``bin`` is ``zero``, ``nonfinite`` or ``value`` (``log10_lo <= log10|x| < log10_hi``)."""
        import pandas as pd

        if self.hist is None:
            raise ValueError("this result has no histogram (the probe ran with histogram=False)")
        edges = hist_edges(self.hist_dtype)
        lo = np.concatenate([[np.nan, np.nan], edges[:-1]])
        hi = np.concatenate([[np.nan, np.nan], edges[1:]])
        kind = np.array(["zero", "nonfinite"] + ["value"] * (len(edges) - 1))
        layer, col = np.nonzero(self.hist)
        return pd.DataFrame({"layer": layer, "bin": kind[col], "log10_lo": lo[col],
                             "log10_hi": hi[col], "count": self.hist[layer, col]})
