"""Find and load the jobs of a run or sweep; each job's status is settled here, once.

A sweep's planned jobs come from its own record: Hydra writes
``<sweep>/multirun.yaml`` (with the sweep's overrides) before the first job
starts, and every job writes ``.hydra/overrides.yaml``. A job is

* ``ok``: summary.json says so and its files hold together;
* ``failed``: the job recorded its own failure in summary.json;
* ``broken``: its files do not hold together (unreadable or wrong-typed
  summary.json, a layers table that is short, cut or lacks columns);
* ``unfinished``: its directory exists but has no summary.json (killed or running);
* ``never started``: planned in multirun.yaml, no directory.

Settings and labels come from summary.json (its ``settings`` dict when present,
else the top-level keys) and the job's overrides, never from a live registry.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from initlab import store

STATUSES = ("ok", "failed", "broken", "unfinished", "never started")
#: Settings families: the name plus its ``<family>_<param>`` keys.
FAMILIES = ("init", "activation")
#: Plain settings, in the order they are preferred as axes; unknown ones follow, sorted.
PLAIN = ("depth", "width", "dtype", "weights", "gradients", "trials", "batch", "seed", "device")
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


class ReportError(Exception):
    """The directory cannot be reported on; the message is one line naming the path."""


class ReportIOError(ReportError):
    """Reading or writing the directory failed (permissions, disk): exit status 1, not 2."""


class Broken(ValueError):
    """A job's files do not hold together; the message says how."""


@dataclass
class JobRecord:
    """One job of a run or sweep as found on disk (or only planned)."""

    name: str
    path: Path | None
    status: str
    problem: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    layers: pd.DataFrame | None = None
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ----------------------------------------------------------------------------- settings


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def settings_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The flat settings of a summary: its ``settings`` dict, else its top-level setting keys."""
    source = summary.get("settings")
    if not isinstance(source, dict):
        source = summary
    keep = set(PLAIN) | set(FAMILIES)
    return {k: v for k, v in source.items()
            if k in keep or any(k.startswith(f + "_") for f in FAMILIES)}


def params(settings: dict[str, Any], family: str) -> dict[str, Any]:
    """``{param: value}`` of a family (``init_std`` -> ``std``)."""
    return {k[len(family) + 1:]: v for k, v in settings.items() if k.startswith(family + "_")}


def label(settings: dict[str, Any], family: str, shown: set[str] | None = None) -> str:
    """``normal(std=0.01)``: the family's name with its parameters (only ``shown`` if given)."""
    name = str(settings.get(family))
    extra = {k: v for k, v in sorted(params(settings, family).items())
             if shown is None or k in shown}
    return name + ("(" + ", ".join(f"{k}={v}" for k, v in extra.items()) + ")" if extra else "")


def _from_overrides(overrides: list[str]) -> dict[str, Any]:
    """Settings named by Hydra overrides: ``init.std=0.01`` -> ``{"init_std": 0.01}``."""
    import yaml

    out: dict[str, Any] = {}
    for line in overrides:
        key, sep, value = line.lstrip("+~").partition("=")
        if not sep or "/" in key or key.startswith("hydra"):
            continue
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        parts = key.split(".")
        if parts[0] in FAMILIES and len(parts) == 2:
            key = parts[0] if parts[1] == "name" else f"{parts[0]}_{parts[1]}"
        elif len(parts) != 1 or key not in PLAIN:  # report=, progress=, plots=: no settings
            continue
        out[key] = parsed
    return out


# ----------------------------------------------------------------------------- validation


def _check_summary(summary: Any) -> dict[str, Any]:
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
        if summary.get(key) is not None and not _is_number(summary[key]):
            raise bad(key, "a number or null")
    counts = summary.get("verdict_counts", {})
    if not isinstance(counts, dict) or not all(isinstance(v, int) for v in counts.values()):
        raise Broken(f"summary.json: verdict_counts={counts!r} is not a count per verdict")
    ref = summary.get("reference")
    if ref is not None:
        rows = ref.get("rows") if isinstance(ref, dict) else None
        if not isinstance(rows, list) or not all(
                isinstance(r, dict) and isinstance(r.get("quantity"), str)
                and all(r.get(k) is None or _is_number(r.get(k)) for k in ("seed", "measured"))
                for r in rows):
            raise Broken("summary.json: reference is not a list of rows "
                         "(quantity, seed, measured)")
    return summary


def _check_layers(frame: pd.DataFrame, name: str, trials: int, depth: int) -> pd.DataFrame:
    missing = [c for c in store.LAYER_COLUMNS if c not in frame.columns]
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
    """The job's per-layer table, checked; Parquet when it holds together, else CSV."""
    reasons = []
    parquet, csv = path / store.LAYERS_PARQUET, path / store.LAYERS_CSV
    if parquet.exists():
        try:
            return _check_layers(pd.read_parquet(parquet), parquet.name, trials, depth)
        except Broken as exc:
            reasons.append(str(exc))
        except Exception as exc:
            reasons.append(f"{parquet.name} unreadable ({type(exc).__name__})")
    if csv.exists():
        try:
            text = csv.read_text()
            if not text.endswith("\n"):
                raise Broken(f"{csv.name} is cut mid-row (no final newline)")
            from io import StringIO

            return _check_layers(pd.read_csv(StringIO(text)), csv.name, trials, depth)
        except Broken as exc:
            reasons.append(str(exc))
        except Exception as exc:
            reasons.append(f"{csv.name} unreadable ({type(exc).__name__})")
    if not reasons:
        reasons.append(f"neither {parquet.name} nor {csv.name} exists")
    raise Broken("; ".join(reasons))


# ----------------------------------------------------------------------------- one job


def _visible_files(path: Path) -> list[str]:
    """A job's files; hidden ones (``.*.tmp`` left by a kill, ``.hydra``) are not its files."""
    return sorted(p.name for p in path.iterdir() if not p.name.startswith("."))


def _read_overrides(path: Path) -> list[str]:
    import yaml

    try:
        data = yaml.safe_load((path / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []
    return [str(o) for o in data] if isinstance(data, list) else []


def load_job(path: Path, overrides: list[str] | None = None) -> JobRecord:
    """Read one job directory and settle its status; never raises."""
    path = Path(path)
    job = JobRecord(name=path.name, path=path, status="ok")
    job.overrides = overrides if overrides is not None else _read_overrides(path)
    job.settings = _from_overrides(job.overrides)
    try:
        job.files = _visible_files(path)
    except OSError as exc:
        job.status, job.problem = "broken", f"directory unreadable ({exc.strerror})"
        return job
    summary_path = path / store.SUMMARY_JSON
    if not summary_path.exists():
        job.status = "unfinished"
        job.problem = ("no summary.json: killed, crashed or still running (files: "
                       + (", ".join(job.files) or "none") + ")")
        return job
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError) as exc:
        job.status, job.problem = "broken", f"summary.json unreadable ({exc})"
        return job
    try:
        job.summary = _check_summary(summary)
    except Broken as exc:
        job.status, job.problem = "broken", str(exc)
        if isinstance(summary, dict):
            job.settings.update({k: v for k, v in settings_of(summary).items()
                                 if isinstance(v, (str, int, float, bool)) or v is None})
        return job
    job.settings.update(settings_of(job.summary))
    if job.summary.get("status", "ok") != "ok":
        job.status = "failed"
        job.problem = str(job.summary.get("error") or "the job recorded a failure")
        return job
    try:
        job.layers = read_layers(path, int(job.settings.get("trials", job.summary.get("trials"))),
                                 int(job.settings.get("depth", job.summary.get("depth"))))
    except Broken as exc:
        job.status, job.problem = "broken", str(exc)
    return job


# ----------------------------------------------------------------------------- a sweep


def _natural(name: str) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t)
                 for t in re.split(r"(\d+)", name) if t)


def _is_job_dir(path: Path) -> bool:
    return (path / ".hydra").is_dir() or (path / store.SUMMARY_JSON).exists()


def _job_num(path: Path) -> int | None:
    """Hydra's number for a job directory (``hydra.job.num`` in ``.hydra/hydra.yaml``)."""
    try:
        from omegaconf import OmegaConf

        num = OmegaConf.select(OmegaConf.load(path / ".hydra" / "hydra.yaml"), "hydra.job.num")
    except Exception:
        return None
    return num if isinstance(num, int) else None


def planned_jobs(directory: Path) -> list[list[str]] | None:
    """Every job's overrides, in Hydra's job order, from ``multirun.yaml``; None if unknown.

    Hydra's basic sweeper runs the cartesian product of the sweep's overrides
    (``hydra.sweeper.params`` first, then the command line's), the first one
    varying slowest.
    """
    record = Path(directory) / "multirun.yaml"
    if not record.is_file():
        return None
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(record)
        params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
        lines = [f"{k}={v}" for k, v in params.items()]
        lines += [str(o) for o in OmegaConf.select(cfg, "hydra.overrides.task") or []]
        choices: dict[str, list[str]] = {}  # a later override of a key replaces it in place
        for o in OverridesParser.create().parse_overrides(lines):
            key = o.get_key_element()
            if o.is_sweep_override():
                if not o.is_discrete_sweep():
                    return None  # the basic sweeper rejects range sweeps: nothing was planned
                choices[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
            else:
                choices[key] = [f"{key}={o.get_value_element_as_str()}"]
        return [list(c) for c in itertools.product(*choices.values())]
    except Exception:  # an unreadable record: fall back to the directories found
        return None


def find_jobs(directory: Path) -> list[JobRecord]:
    """The jobs of a sweep (planned ones included), or the run itself when ``directory`` is one.

    Raises ReportError when ``directory`` is neither.
    """
    directory = Path(directory)
    if not directory.exists():
        raise ReportError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise ReportError(f"{directory}: not a directory")
    if _is_job_dir(directory) and not (directory / "multirun.yaml").exists():
        return [load_job(directory)]
    try:
        dirs = sorted((p for p in directory.iterdir() if not p.name.startswith(".")
                       and p.is_dir() and _is_job_dir(p)), key=lambda p: _natural(p.name))
    except OSError as exc:
        raise ReportIOError(f"{directory}: {exc.strerror}") from None
    plan = planned_jobs(directory)
    if plan is None and not dirs:
        raise ReportError(f"{directory}: not a run or sweep directory (no multirun.yaml, no "
                          "job with .hydra/ or summary.json inside); give e.g. "
                          "outputs/multiruns/<time>")
    found = {p: _read_overrides(p) for p in dirs}
    planned = [sorted(o) for o in plan or []]
    # a directory whose overrides are spelled unlike the plan: its job number says which it is
    by_num = {n: p for p in dirs if sorted(found[p]) not in planned
              if (n := _job_num(p)) is not None}
    jobs: list[JobRecord] = []
    taken: set[Path] = set()
    for num, overrides in enumerate(plan or []):
        match = [p for p, o in found.items() if p not in taken and sorted(o) == sorted(overrides)]
        if not match and by_num.get(num) not in (None, *taken):
            match = [by_num[num]]
        if match:
            taken.add(match[0])
            jobs.append(load_job(match[0], found[match[0]]))
        else:
            jobs.append(JobRecord(name=f"#{num}", path=None, status="never started",
                                  problem="planned, never started: " + (" ".join(overrides)
                                                                        or "(no overrides)"),
                                  overrides=overrides, settings=_from_overrides(overrides)))
    jobs += [load_job(p, found[p]) for p in dirs if p not in taken]
    return jobs


def newest(outputs: Path = Path("outputs")) -> Path:
    """The newest sweep or run under ``outputs/`` (their names are timestamps)."""
    found = [p for sub in ("multiruns", "runs") for p in (outputs / sub).glob("*") if p.is_dir()]
    if not found:
        raise ReportError(f"{outputs}: no run or sweep under multiruns/ or runs/; "
                          "run initlab first")
    return max(found, key=lambda p: p.name)
