""""Seed says / we measured": one table of every job in a sweep whose preset carries a reference.

    python -m initlab.reference [SWEEP_DIR]     # default: newest outputs/multiruns/*

Reads only the jobs' ``summary.json`` files (and, to judge, the last layer
of a job's table); jobs without a ``reference`` are left out. Labels come
from the summary's own settings, not from the scheme registry. Each cell is
"seed value / measured median", and for ``final_std`` the 10-90 % band over
trials follows in brackets.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from initlab.store import SUMMARY_JSON
from initlab.summary import fmt


def newest_sweep(outputs: Path = Path("outputs")) -> Path:
    sweeps = sorted(p for p in (outputs / "multiruns").glob("*") if p.is_dir())
    if not sweeps:
        where = outputs / "multiruns"
        raise FileNotFoundError(f"no sweep under {where}; run `initlab -m ...` first")
    return sweeps[-1]


def _is_nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def judge(quantity: str, seed: Any, final: pd.DataFrame) -> tuple[bool | None, str]:
    """Is the seed's number a plausible draw from what we measured? -> (pass, rule).

    ``final`` holds the job's last layer, one row per trial (mean, std, rms, finite)
    and, for ``first_nonfinite_layer``, a column of that name. The seed reports
    *one* run, so a per-trial quantity passes when the seed's value lies within
    the 2-98 % range of our trials; a quantity averaged over trials
    (``mean_of_means``, ``root_mean_square``) passes within 4 standard errors.
    NaN passes only against NaN, 0 only against 0.
    """
    per_trial = {"final_mean": "mean", "final_std": "std", "final_rms": "rms"}
    if quantity in per_trial:
        values = final[per_trial[quantity]].to_numpy(dtype=float)
        if _is_nan(seed):
            return bool(np.isnan(values).mean() > 0.5), "NaN in most trials"
        values = values[np.isfinite(values)]
        if not len(values):
            return False, "no finite trial"
        if seed == 0:
            return bool(np.median(values) == 0), "0 in most trials"
        lo, hi = np.quantile(values, [0.02, 0.98])
        return bool(lo <= seed <= hi), f"within 2-98 % of trials [{lo:.3g}, {hi:.3g}]"
    if quantity == "first_nonfinite_layer":
        layers = final[quantity].dropna().to_numpy(dtype=float)
        if not len(layers):
            return False, "no trial became non-finite"
        lo, hi = layers.min() - 1, layers.max() + 1
        return bool(lo <= seed <= hi), f"within trials' range +-1 [{lo:.0f}, {hi:.0f}]"
    if quantity in ("mean_of_means", "root_mean_square"):
        if quantity == "mean_of_means":
            values = final["mean"].to_numpy(dtype=float)
            center, se = values.mean(), values.std() / math.sqrt(len(values))
        else:
            sq = final["rms"].to_numpy(dtype=float) ** 2
            center = math.sqrt(sq.mean())
            se = sq.std() / math.sqrt(len(sq)) / (2 * center)  # delta method
        lo, hi = center - 4 * se, center + 4 * se
        return bool(lo <= seed <= hi), f"within 4 standard errors [{lo:.4g}, {hi:.4g}]"
    return None, "no rule for this quantity"


#: The columns ``judge`` reads from a job's per-layer table.
JUDGED_COLUMNS = ["trial", "layer", "mean", "std", "rms", "finite"]


def final_layer(layers: pd.DataFrame) -> pd.DataFrame:
    """The last layer of each trial, with each trial's first non-finite layer."""
    layers = layers[JUDGED_COLUMNS]
    last = layers[layers["layer"] == layers["layer"].max()].set_index("trial")
    bad = layers[~layers["finite"].astype(bool)].groupby("trial")["layer"].min()
    return last.assign(first_nonfinite_layer=bad.reindex(last.index)).reset_index()


def collect(sweep_dir: Path) -> list[dict[str, str]]:
    """One row per finished job with a reference: source, init, activation, verdict, quantities.

    Jobs whose summary.json is unreadable or does not hold together (the report's checks) are
    left out, as are failed ones.
    """
    from initlab.report.checks import check_summary
    from initlab.report.settings import label, settings_of  # the report's labels

    found = []
    for path in sorted(Path(sweep_dir).glob(f"*/{SUMMARY_JSON}")):
        try:
            summary = check_summary(json.loads(path.read_text()))
        except (OSError, ValueError):  # ValueError: bad JSON, or checks.Broken
            continue
        if summary.get("reference") and summary.get("status", "ok") == "ok":
            found.append((path, summary, settings_of(summary)))
    shown = {family: _telling_params([s for _, _, s in found], family)
             for family in ("init", "activation")}
    rows = []
    for path, summary, settings in found:
        ref = summary["reference"]
        verdict = summary["verdict"]
        if summary.get("verdict_layer") is not None:
            verdict += f" at {summary['verdict_layer']}"
        row = {
            "source": ref.get("source", path.parent.name),
            "init": label(settings, "init", shown["init"].get(settings.get("init"), set())),
            "activation": label(settings, "activation",
                                shown["activation"].get(settings.get("activation"), set())),
            "trials": str(summary["trials"]),
            "verdict": verdict,
        }
        for item in ref["rows"]:
            cell = f"{fmt(item['seed'])} / {fmt(item['measured'])}"
            if item["quantity"] == "final_std" and summary.get("final_std_q10") is not None:
                cell += f" ({fmt(summary['final_std_q10'])} – {fmt(summary['final_std_q90'])})"
            row[f"{item['quantity']}: seed / measured"] = cell
        rows.append(row)
    return rows


def _telling_params(settings: list[dict[str, Any]], family: str) -> dict[Any, set[str]]:
    """Per scheme (or activation) name, the parameters whose values differ between its jobs:
    ``normal(std=0.01)`` beside ``normal(std=1.0)``, but plain ``kaiming`` for one kaiming."""
    from initlab.report.settings import params

    values: dict[Any, dict[str, set[str]]] = {}
    for one in settings:
        per = values.setdefault(one.get(family), {})
        for key, value in params(one, family).items():
            per.setdefault(key, set()).add(repr(value))
    named = {}
    for name, per in values.items():
        jobs = sum(1 for one in settings if one.get(family) == name)
        named[name] = {k for k, v in per.items()
                       if len(v) > 1 or sum(1 for one in settings if one.get(family) == name
                                            and k in params(one, family)) < jobs}
    return named


def markdown(rows: list[dict[str, str]]) -> str:
    """Rows as a GitHub markdown table (columns: the union, in first-seen order)."""
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(row.get(c, "") for c in cols) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        sweep = Path(args[0]) if args else newest_sweep()
        if not sweep.is_dir():
            raise FileNotFoundError(f"{sweep} is not a directory; give a sweep directory")
    except FileNotFoundError as exc:
        print(f"initlab.reference: error: {exc}", file=sys.stderr)
        return 2
    rows = collect(sweep)
    if not rows:
        print(f"initlab.reference: no job in {sweep} carries a reference", file=sys.stderr)
        return 1
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
