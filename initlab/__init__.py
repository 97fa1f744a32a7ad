"""initlab: make weight initialization visible and testable.

The Python API a notebook uses, importable from here::

    import initlab
    result = initlab.run_chain(initlab.ChainSpec(init="xavier", activation="tanh"))
    result = initlab.probe(my_model, initlab.gaussian_inputs((3, 32, 32), batch=8),
                           init="kaiming", trials=8)
    result.frame()   # one row per (trial, layer)

Imports are lazy (PEP 562), so ``import initlab`` stays light (no torch).
Testing helpers live in ``initlab.testing``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "ChainSpec": "initlab.spec",
    "ModelSpec": "initlab.modelspec",
    "SpecError": "initlab.rules",
    "Result": "initlab.result",
    "run_chain": "initlab.chain",
    "run_many": "initlab.chain",
    "probe": "initlab.probing",
    "gaussian_inputs": "initlab.inputs",
    "Thresholds": "initlab.verdict",
    "Job": "initlab.job",
    "run_job": "initlab.job",
    "run_jobs": "initlab.job",
    "write_report": "initlab.report",
}

__all__ = ["ChainSpec", "Job", "ModelSpec", "Result", "SpecError", "Thresholds", "__version__",
           "gaussian_inputs", "probe", "run_chain", "run_job", "run_jobs", "run_many",
           "write_report"]

if TYPE_CHECKING:  # for type checkers and editors; at run time the imports are lazy
    from initlab.chain import run_chain, run_many
    from initlab.inputs import gaussian_inputs
    from initlab.job import Job, run_job, run_jobs
    from initlab.modelspec import ModelSpec
    from initlab.probing import probe
    from initlab.report import write_report
    from initlab.result import Result
    from initlab.rules import SpecError
    from initlab.spec import ChainSpec
    from initlab.verdict import Thresholds


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'initlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


assert set(__all__) == {"__version__", *_EXPORTS}
