"""Fixtures shared by the test modules.

The console script is slow to start (Hydra, torch, matplotlib: about 3 s), so
the command-line and report tests share one tiny sweep, run once per session
(``tiny_sweep``). Tests that change files copy it first (``sweep_copy``).
Each test module keeps fixtures only it uses; what two modules need lives here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config) -> None:
    """Under pytest-xdist (``-n``), split the cores between the workers.

    Each worker (and every initlab process its tests start, which inherit the
    environment) gets cores // workers torch threads, so two workers on two
    cores do not oversubscribe them (OpenMP threads spinning against each
    other cost far more than the work). The default thread count is exercised
    by ``.ci/run``'s second step, which reruns the numerics-marked tests
    without xdist.
    """
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return
    threads = str(max(1, (os.cpu_count() or 1) // int(workers)))
    os.environ["OMP_NUM_THREADS"] = threads
    import torch

    torch.set_num_threads(int(threads))

#: The shared sweep: 3 schemes x 2 activations, tiny but with every file of the contract.
SWEEP_INITS = ("zero", "scaled", "kaiming")
SWEEP_ACTS = ("none", "relu")
SWEEP_SIZE = {"depth": 6, "width": 16, "trials": 3}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: no PYTHONPATH leaking the test runner's paths."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env


def run_initlab(args, cwd: Path, timeout: int = 300, **env: str) -> subprocess.CompletedProcess:
    """``python -m initlab ARGS`` in ``cwd`` (Hydra's ``outputs/`` lands there)."""
    return subprocess.run([sys.executable, "-m", "initlab", *map(str, args)], cwd=cwd,
                          env=clean_env(**env), capture_output=True, text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Assert a clean exit: status 0 and no traceback."""
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


def main_in_process(args: list[str], capsys) -> tuple[int, str]:
    """``initlab ARGS`` in this process: (exit status, stderr)."""
    from initlab import app

    try:
        app.main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    """The one line a user error prints (no traceback, nothing else)."""
    lines = err.splitlines()
    assert len(lines) == 1, f"stderr has {len(lines)} lines:\n{err}"
    assert "Traceback" not in err
    return lines[0]


def only_child(folder: Path) -> Path:
    children = [p for p in Path(folder).iterdir() if p.is_dir()]
    assert len(children) == 1, f"expected one folder in {folder}, found {children}"
    return children[0]


def job_dirs(sweep: Path) -> dict[tuple[str, str], Path]:
    """(init, activation) -> job directory of a sweep, read from each job's summary.json."""
    jobs = {}
    for job in sorted(p for p in sweep.iterdir() if (p / "summary.json").is_file()):
        summary = json.loads((job / "summary.json").read_text())
        key = (summary["init"], summary["activation"])
        assert key not in jobs, f"two jobs for {key}: {jobs.get(key)} and {job}"
        jobs[key] = job
    return jobs


@pytest.fixture
def registries():
    """Put the scheme and activation registries back after a test (plug-ins register)."""
    from initlab import activations, schemes

    saved = dict(schemes.SCHEMES), dict(activations.ACTIVATIONS)
    yield
    for registry, before in zip((schemes.SCHEMES, activations.ACTIVATIONS), saved, strict=True):
        registry.clear()
        registry.update(before)


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> Path:
    """One small multirun (with its report) for the whole session; returns the sweep directory.

    Read-only: a test that changes files works on ``sweep_copy``.
    """
    cwd = tmp_path_factory.mktemp("tiny_sweep")
    ok(run_initlab(["-m", f"init={','.join(SWEEP_INITS)}", f"activation={','.join(SWEEP_ACTS)}",
                    *(f"{k}={v}" for k, v in SWEEP_SIZE.items())], cwd))
    return only_child(cwd / "outputs" / "multiruns")


@pytest.fixture
def sweep_copy(tiny_sweep, tmp_path) -> Path:
    """A private copy of ``tiny_sweep`` to break or extend."""
    return Path(shutil.copytree(tiny_sweep, tmp_path / tiny_sweep.name, symlinks=True))
