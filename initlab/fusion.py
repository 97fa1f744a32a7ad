"""Results computed ahead for the jobs of a sweep (the ``fused`` launcher fills this).

``precompute`` turns job configs into specs and runs each group that can
share draws as one engine pass; ``take`` hands a job its ready result (or
None, and the job runs the engine itself). Nothing here touches files.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from initlab import config
from initlab.chain import ChainResult, run_many
from initlab.spec import ChainSpec

_ready: dict[str, ChainResult] = {}


def key(spec: ChainSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True, default=str)


def precompute(configs) -> int:
    """Run the specs of these job configs together; returns how many engine passes it took."""
    specs = []
    for cfg in configs:
        try:
            specs.append(config.spec_from_config(cfg))
        except Exception:  # a bad job reports its own error when it runs
            continue
    unique = list({key(s): s for s in specs}.values())
    if len(unique) < 2:
        return 0
    from initlab.chain import _group_key

    passes = len({_group_key(s) for s in unique})
    for spec, result in zip(unique, run_many(unique), strict=True):
        _ready[key(spec)] = result
    return passes


def take(spec: ChainSpec) -> ChainResult | None:
    return _ready.pop(key(spec), None)


def clear() -> None:
    _ready.clear()
