"""Do a job's files hold together? summary.json's types and the per-layer table's shape.

Each check raises ``Broken`` with a one-line reason naming the file and field;
``load`` lists such a job as broken and reports the rest.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pandas as pd

from initlab import store
from initlab.labels import FAMILIES, PLAIN, is_number, settings_of

INTS = ("depth", "width", "trials", "batch", "seed")
STRS = ("init", "activation", "dtype", "weights", "device")
VERDICTS = ("exploded", "vanished", "stable")
#: summary.json fields that must be numbers (or null) when present.
NUMBERS = ("final_mean", "final_std", "final_rms", "final_mean_q10", "final_mean_q90",
           "final_std_q10", "final_std_q90", "theory_final_std", "input_grad_std",
           "theory_input_grad_std", "log_norm_ratio_mean", "log_norm_ratio_var",
           "predicted_log_norm_ratio_mean", "predicted_log_norm_ratio_var",
           "predicted_overflow_layer", "mean_of_means", "root_mean_square")
LAYER_INTS = ("verdict_layer", "first_nonfinite_layer", "identical_units_layer")


class Broken(ValueError):
    """A job's files do not hold together; the message says how."""


def check_summary(summary: Any) -> dict[str, Any]:
    """summary.json's fields have the types the report uses; raises Broken naming the field."""
    if not isinstance(summary, dict):
        raise Broken("summary.json is not a JSON object")

    def bad(key: str, what: str) -> Broken:
        return Broken(f"summary.json: {key}={summary[key]!r} is not {what}")

    status = summary.get("status", "ok")
    if not isinstance(status, str):
        raise bad("status", "a string")
    if "settings" in summary and not isinstance(summary["settings"], dict):
        raise bad("settings", "an object")
    top = {k: v for k, v in summary.items() if k != "settings"}
    both = [*settings_of(top).items(), *settings_of(summary).items()]
    for key, value in both:  # the settings dict and the top-level copies the report shows
        if key in INTS and (not isinstance(value, int) or isinstance(value, bool)):
            raise Broken(f"summary.json: {key}={value!r} is not an integer")
        if key in STRS and not isinstance(value, str):
            raise Broken(f"summary.json: {key}={value!r} is not a string")
        if not (value is None or isinstance(value, (str, int, float, bool))):
            raise Broken(f"summary.json: {key}={value!r} is not a single value")
    if status != "ok":
        if "error" in summary and not isinstance(summary["error"], str):
            raise bad("error", "a string")
        return summary
    for key in ("init", "activation", "depth", "trials", "verdict"):
        if key not in summary and key not in summary.get("settings", {}):
            raise Broken(f"summary.json lacks {key}")
    if summary["verdict"] not in VERDICTS:
        raise bad("verdict", "one of " + ", ".join(VERDICTS))
    for key in LAYER_INTS:
        value = summary.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise bad(key, "a layer number or null")
    for key in NUMBERS:
        if summary.get(key) is not None and not is_number(summary[key]):
            raise bad(key, "a number or null")
    counts = summary.get("verdict_counts", {})
    if not isinstance(counts, dict) or not all(isinstance(v, int) for v in counts.values()):
        raise Broken(f"summary.json: verdict_counts={counts!r} is not a count per verdict")
    ref = summary.get("reference")
    if ref is not None:
        rows = ref.get("rows") if isinstance(ref, dict) else None
        if not isinstance(rows, list) or not all(
                isinstance(r, dict) and isinstance(r.get("quantity"), str)
                and all(r.get(k) is None or is_number(r.get(k)) for k in ("seed", "measured"))
                for r in rows):
            raise Broken("summary.json: reference is not a list of rows "
                         "(quantity, seed, measured)")
    return summary


def _per_layer(column: str) -> bool:
    """A column that varies by trial and layer (not a copy of the job's settings)."""
    return not (column in PLAIN or column in FAMILIES
                or any(column.startswith(f + "_") for f in FAMILIES))


def _read_parquet(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Only the per-layer columns (the settings repeat on every row: the report has them
    from summary.json), and every column's name for the checks."""
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    names = list(file.schema_arrow.names)
    return file.read(columns=[c for c in names if _per_layer(c)]).to_pandas(), names


def _check_layers(frame: pd.DataFrame, name: str, trials: int, depth: int,
                  columns: list[str] | None = None) -> pd.DataFrame:
    present = frame.columns if columns is None else columns
    missing = [c for c in store.LAYER_COLUMNS if c not in present]
    if missing:
        raise Broken(f"{name} lacks columns {', '.join(missing)}")
    expected = trials * (depth + 1)
    if len(frame) != expected:
        raise Broken(f"{name} has {len(frame)} rows; trials*(depth+1) = {expected}")
    keys = frame[["trial", "layer"]]
    if keys.isna().any().any() or keys.duplicated().any() \
            or not frame["layer"].between(0, depth).all():
        raise Broken(f"{name}: trial and layer do not index each trial's layers 0..{depth}")
    return frame


def read_layers(path: Path, trials: int, depth: int) -> pd.DataFrame:
    """The job's per-layer table, checked: the Parquet file, else (none written) the CSV.

    Both files are the job's contract; when the Parquet file exists it must hold
    together: a truncated one makes the job broken even if the CSV is whole (the
    reason names both), never an ``ok`` job whose table a script cannot read.
    """
    parquet, csv = path / store.LAYERS_PARQUET, path / store.LAYERS_CSV
    if parquet.exists():
        try:
            frame, names = _read_parquet(parquet)
            return _check_layers(frame, parquet.name, trials, depth, names)
        except Broken:
            raise
        except Exception as exc:
            reason = f"{parquet.name} unreadable ({type(exc).__name__}: {_first(exc)})"
            whole = f"; {csv.name} holds together" if _csv_ok(csv, trials, depth) else ""
            raise Broken(reason + whole) from None
    if not csv.exists():
        raise Broken(f"neither {parquet.name} nor {csv.name} exists")
    return _read_csv(csv, trials, depth)


def _read_csv(csv: Path, trials: int, depth: int) -> pd.DataFrame:
    try:
        text = csv.read_text()
    except OSError as exc:
        raise Broken(f"{csv.name} unreadable ({exc.strerror or type(exc).__name__})") from None
    if not text.endswith("\n"):
        raise Broken(f"{csv.name} is cut mid-row (no final newline)")
    try:
        frame = pd.read_csv(StringIO(text))
    except Exception as exc:
        raise Broken(f"{csv.name} unreadable ({type(exc).__name__}: {_first(exc)})") from None
    return _check_layers(frame, csv.name, trials, depth)


def _csv_ok(csv: Path, trials: int, depth: int) -> bool:
    try:
        _read_csv(csv, trials, depth)
    except Broken:
        return False
    return csv.exists()


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else "no message"
