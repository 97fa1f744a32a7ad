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
else the top-level keys) and the job's overrides, never from a live registry; a job
without a whole summary takes them from its own ``.hydra/config.yaml`` (Hydra writes it
before the job runs), else from the sweep's ``multirun.yaml`` with the job's overrides.
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
from initlab.checks import Broken, check_summary, read_layers
from initlab.labels import from_config, from_overrides, settings_of, with_overrides

STATUSES = ("ok", "failed", "broken", "unfinished", "never started")


class ReportError(Exception):
    """The directory cannot be reported on; the message is one line naming the path."""


class ReportIOError(ReportError):
    """Reading or writing the directory failed (permissions, disk): exit status 1, not 2."""

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


def _read_config(path: Path) -> dict[str, Any] | None:
    """A composed config written by Hydra (``multirun.yaml``, ``.hydra/config.yaml``) as a
    plain dict, its ``hydra`` node left out; None when it cannot be read."""
    try:
        from omegaconf import OmegaConf

        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception:  # missing, cut short, not YAML: nothing known from it
        return None
    if not isinstance(data, dict):
        return None
    data.pop("hydra", None)
    return data


def load_job(path: Path, overrides: list[str] | None = None,
             base: dict[str, Any] | None = None) -> JobRecord:
    """Read one job directory and settle its status; never raises. ``base``: the sweep's
    settings (``multirun.yaml``), for a job whose own config is not there."""
    path = Path(path)
    job = JobRecord(name=path.name, path=path, status="ok")
    job.overrides = overrides if overrides is not None else _read_overrides(path)
    own = _read_config(path / ".hydra" / "config.yaml")
    job.settings = with_overrides(from_config(own) if own is not None else base or {},
                                  job.overrides)
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
        job.summary = check_summary(summary)
    except Broken as exc:
        job.status, job.problem = "broken", str(exc)
        if isinstance(summary, dict):
            job.settings.update({k: v for k, v in settings_of(summary).items()
                                 if isinstance(v, (str, int, float, bool)) or v is None})
        return job
    if job.summary.get("status", "ok") == "ok":  # a whole summary names every setting
        job.settings = from_overrides(job.overrides)
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
        from omegaconf import OmegaConf

        return planned_overrides(OmegaConf.load(record))
    except Exception:  # an unreadable record: fall back to the directories found
        return None


def planned_overrides(cfg) -> list[list[str]] | None:
    """Every job's overrides of a sweep config (``multirun.yaml``, or the live config a
    Hydra callback gets), in Hydra's job order; None for a sweep the basic sweeper rejects
    or a config it cannot read (one cut short as Hydra wrote it: no ``hydra.overrides.task``)."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        task = OmegaConf.select(cfg, "hydra.overrides.task")
        if task is None:  # written in part (Hydra does not write it whole): no plan known
            return None
        params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
        lines = [f"{k}={v}" for k, v in params.items()]
        lines += [str(o) for o in task]
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
    except Exception:  # not a sweep config we can read
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
    record = _read_config(directory / "multirun.yaml")
    base = from_config(record) if record is not None else None
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
            jobs.append(load_job(match[0], found[match[0]], base))
        else:
            jobs.append(JobRecord(name=f"#{num}", path=None, status="never started",
                                  problem="planned, never started: " + (" ".join(overrides)
                                                                        or "(no overrides)"),
                                  overrides=overrides,
                                  settings=with_overrides(base or {}, overrides)))
    jobs += [load_job(p, found[p], base) for p in dirs if p not in taken]
    return jobs


def newest(outputs: Path = Path("outputs")) -> Path:
    """The newest sweep or run under ``outputs/`` (their names are timestamps)."""
    found = [p for sub in ("multiruns", "runs") for p in (outputs / sub).glob("*") if p.is_dir()]
    if not found:
        raise ReportError(f"{outputs}: no run or sweep under multiruns/ or runs/; "
                          "run initlab first")
    return max(found, key=lambda p: p.name)
