"""The names of what is measured, defined once: the keys of every result and the columns of
every per-layer table, and the histogram's fixed bins.

Light on purpose (NumPy only): the engine, the probe, the job files and the report all
read these names, and the report must not load torch.
"""

from __future__ import annotations

import numpy as np

#: statistic -> meaning; the per-layer statistics of the signal, in table order.
STATS = {
    "mean": "mean over units (and batch)",
    "std": "standard deviation over units and batch, unbiased (N - 1), like torch's x.std()",
    "unit_std": "standard deviation over units of each input vector, averaged over the batch "
                "(0 when every unit carries the same value; the verdict uses it)",
    "rms": "root mean square, sqrt(mean(x^2))",
    "zero_frac": "fraction of values exactly 0",
    "abs_max": "largest |x| (NaN if any value is NaN)",
    "finite": "every value finite (no NaN, no inf)",
    "corr": "mean cosine similarity q_ab / sqrt(q_aa q_bb) between the pre-activations of each "
            "pair of inputs of a trial (Poole et al. 2016); layer 0: the inputs; NaN for batch 1",
}

#: Gradient statistics per trial and layer (with gradients): dL/dx_l over units and batch,
#: and dL/dW_l over the entries of the layer's weight (NaN at layer 0 and for a module
#: without a weight).
GRAD_STATS = ("grad_x_mean", "grad_x_std", "grad_w_mean", "grad_w_std")

#: The statistics that have a mean-field prediction; its column is ``theory_<stat>``.
THEORY_STATS = ("mean", "std", "corr", "grad_x_std")


def theory_column(stat: str) -> str:
    """The table column holding the prediction of ``stat``: ``theory_std``."""
    return f"theory_{stat}"


#: Width of one histogram bin, in decades of |x|.
HIST_STEP = 0.25
#: log10|x| range per dtype: from below the smallest subnormal to above the largest value.
HIST_RANGE = {"float32": (-46.0, 39.0), "float64": (-324.0, 309.0)}


def hist_edges(dtype: str) -> np.ndarray:
    """Fixed bin edges in log10|x| for a dtype (float64 values)."""
    lo, hi = HIST_RANGE[dtype]
    return np.arange(lo, hi + HIST_STEP / 2, HIST_STEP, dtype=np.float64)
