"""initlab: make weight initialization visible and testable.

The Python API a notebook uses, importable from here::

    from initlab import ChainSpec, run_chain, run_many, Thresholds

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
    "SpecError": "initlab.spec",
    "ChainResult": "initlab.chain",
    "run_chain": "initlab.chain",
    "run_many": "initlab.chain",
    "Thresholds": "initlab.verdict",
    "run_job": "initlab.job",
    "write_report": "initlab.report",
}

__all__ = ["ChainResult", "ChainSpec", "SpecError", "Thresholds", "__version__", "run_chain",
           "run_job", "run_many", "write_report"]

if TYPE_CHECKING:  # for type checkers and editors; at run time the imports are lazy
    from initlab.chain import ChainResult, run_chain, run_many
    from initlab.job import run_job
    from initlab.report import write_report
    from initlab.spec import ChainSpec, SpecError
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
