"""The probe: the chain's per-layer statistics, verdicts and tables for any torch model.

    import initlab
    from initlab.inputs import gaussian_inputs
    result = initlab.probe(make_model, gaussian_inputs((1, 28, 28), batch=8), init="kaiming")
    result.frame()  # one row per (trial, layer), with the module's name and type

Modules: ``core`` (``probe``: the trial loop), ``record`` (hooks -> statistics),
``weights`` (per-trial initialization from the chain's keyed streams), ``batched`` (all
trials at once), ``judge`` (verdicts on a window of layers, for ``initlab.testing``).
It returns the engine's ``initlab.result.Result`` and never imports the engine.
"""

from initlab.probing.core import probe
from initlab.probing.weights import KEEP, MODEL, fans, targets

__all__ = ["KEEP", "MODEL", "fans", "probe", "targets"]
