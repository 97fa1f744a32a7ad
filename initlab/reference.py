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
import sys
from pathlib import Path
from typing import Any

from initlab.numbers import fmt
from initlab.report.load import ReportError, newest
from initlab.store import SUMMARY_JSON


def collect(sweep_dir: Path) -> list[dict[str, str]]:
    """One row per finished job with a reference: source, init, activation, verdict, quantities.

    Jobs whose summary.json is unreadable or does not hold together (the report's checks) are
    left out, as are failed ones.
    """
    from initlab.checks import check_summary
    from initlab.labels import label, settings_of  # the report's labels

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
    from initlab.labels import params

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
        sweep = Path(args[0]) if args else newest()
        if not sweep.is_dir():
            raise FileNotFoundError(f"{sweep} is not a directory; give a sweep directory")
    except (FileNotFoundError, ReportError) as exc:
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
