"""Results computed ahead for the jobs of a sweep (the ``fused`` launcher fills this).

``precompute`` turns job configs into specs and runs each group that can
share draws as one engine pass; ``take`` hands a job its ready result (or
None, and the job runs the engine itself). Nothing here touches files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace

from initlab import config
from initlab.chain import ChainResult, group_key, run_many
from initlab.spec import ChainSpec

_ready: dict[str, ChainResult] = {}


def key(spec: ChainSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True, default=str)


def precompute(configs) -> int:
    """Run the specs of these job configs together; returns how many engine passes it took.

    Jobs that differ only in scheme and activation share one pass (``run_many``);
    without gradients, a job whose chain is a prefix of a deeper job's (a depth
    sweep) is cut from that job's result instead of run (``ChainResult.prefix``).
    """
    specs = []
    for cfg in configs:
        try:
            specs.append(config.spec_from_config(cfg))
        except Exception:  # a bad job reports its own error when it runs
            continue
    unique = list({key(s): s for s in specs}.values())
    if len(unique) < 2:
        return 0
    deepest: dict[str, ChainSpec] = {}
    for spec in unique:
        stem = key(replace(spec, depth=1)) if not spec.gradients else key(spec)
        if stem not in deepest or spec.depth > deepest[stem].depth:
            deepest[stem] = spec
    sources = list(deepest.values())
    passes = len({group_key(s) for s in sources})
    results = {key(s): r for s, r in zip(sources, run_many(sources), strict=True)}
    for spec in unique:
        stem = key(replace(spec, depth=1)) if not spec.gradients else key(spec)
        source = deepest[stem]
        result = results[key(source)]
        _ready[key(spec)] = result if source.depth == spec.depth else result.prefix(spec.depth)
    return passes


def take(spec: ChainSpec) -> ChainResult | None:
    return _ready.pop(key(spec), None)


def clear() -> None:
    _ready.clear()
