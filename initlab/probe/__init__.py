"""The probe: the chain's per-layer statistics, verdicts and tables for any torch model.

    from initlab.probe import probe, gaussian_inputs
    result = probe(make_model, gaussian_inputs((1, 28, 28), batch=8), init="kaiming", trials=8)
    result.frame()  # one row per (trial, layer), with the module's name and type

Modules: ``core`` (the trial loop), ``record`` (hooks -> statistics),
``weights`` (per-trial initialization), ``result`` (``ProbeResult``), ``batched`` (all
trials at once), ``judge`` (verdicts on a window of layers, for ``initlab.testing``).
"""

from initlab.probe.core import gaussian_inputs, probe
from initlab.probe.result import GRAD_STATS, ProbeResult
from initlab.probe.weights import KEEP, MODEL, fans, targets

__all__ = ["GRAD_STATS", "KEEP", "MODEL", "ProbeResult", "fans", "gaussian_inputs", "probe",
           "targets"]
