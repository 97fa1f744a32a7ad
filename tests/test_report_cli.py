"""initlab-report on the command line, and the report of real sweeps through each launcher:
bad directories give one line, a killed sweep is reported at its planned size, and the
joblib and submitit launchers report the numbers of the default one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from initlab.report import main, write_report
from initlab.report import write as report_write
from initlab.report.load import find_jobs
from tests.conftest import (
    SWEEP_ACTS,
    SWEEP_INITS,
    SWEEP_SIZE,
    clean_env,
    ok,
    one_line,
    only_child,
    run_initlab,
)

SIZE = [f"{k}={v}" for k, v in SWEEP_SIZE.items()]
GRID = [f"init={','.join(SWEEP_INITS)}", f"activation={','.join(SWEEP_ACTS)}"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("initlab-report: error: "), err
    return lines[0]


# ---------------------------------------------------------------- bad directories, in-process


def test_missing_directory(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert _one_error_line(capsys).endswith(f"{tmp_path / 'nope'}: no such directory")


def test_a_file_is_not_a_sweep(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main([str(tmp_path / "f")]) == 2
    assert _one_error_line(capsys).endswith(f"{tmp_path / 'f'}: not a directory")


def test_an_empty_directory_is_not_a_sweep(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert f"{tmp_path}: not a run or sweep directory" in _one_error_line(capsys)


def test_a_report_path_that_is_a_file(sweep_copy, capsys):
    import shutil

    shutil.rmtree(sweep_copy / "report")
    (sweep_copy / "report").write_text("mine")
    assert main([str(sweep_copy)]) == 2
    assert "report: exists and is not a directory" in _one_error_line(capsys)
    assert (sweep_copy / "report").read_text() == "mine"


def test_unwritable_sweep_directory(sweep_copy, capsys):
    before = sorted(p.name for p in (sweep_copy / "report").iterdir())
    sweep_copy.chmod(0o555)
    try:
        if os.access(sweep_copy, os.W_OK):
            pytest.skip("chmod does not stop this user (root): nothing to test")
        assert main([str(sweep_copy)]) == 1
        line = _one_error_line(capsys)
    finally:
        sweep_copy.chmod(0o755)
    assert line == f"initlab-report: error: {sweep_copy}: Permission denied"
    assert sorted(p.name for p in (sweep_copy / "report").iterdir()) == before


def test_a_write_that_fails_is_one_line_and_exit_1(sweep_copy, capsys, monkeypatch):
    """Whoever the user, a failing write (here: the temp folder) is reported, not raised."""
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(sweep_copy))

    monkeypatch.setattr(report_write.tempfile, "mkdtemp", refuse)
    assert main([str(sweep_copy)]) == 1
    assert _one_error_line(capsys) == f"initlab-report: error: {sweep_copy}: Permission denied"


def test_unknown_job_for_the_histogram(tiny_sweep, capsys):
    assert main([str(tiny_sweep), "--job", "99"]) == 2
    assert "--job 99: not a finished job with a histogram" in _one_error_line(capsys)


def test_console_script_bad_directory_is_one_line(tmp_path):
    """The real command (once): one line on stderr, exit 2, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "initlab.report", str(tmp_path / "x")],
                          text=True, capture_output=True, timeout=120, env=clean_env())
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"initlab-report: error: {tmp_path / 'x'}: no such directory\n"


# ---------------------------------------------------------------- real sweeps


def test_killed_sweep_lists_every_planned_job(tmp_path):
    """SIGKILL at a known point (``INITLAB_PAUSE_AT``, announced on stderr): job 1's first
    file written to its temp name, not yet renamed; job 0 finished. Nothing is cleaned up
    after a SIGKILL: the report still knows all 6 jobs and which one finished."""
    args = [sys.executable, "-m", "initlab", "-m", "init=scaled,kaiming,xavier",
            "activation=tanh,relu", "report=false", *SIZE]
    proc = subprocess.Popen(args, cwd=tmp_path, env=clean_env(INITLAB_PAUSE_AT="write:5"),
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        said = next((line for line in proc.stderr if line.startswith("initlab: paused at")),
                    "the sweep ended before the pause")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert said == "initlab: paused at write 5\n"
    sweep = only_child(tmp_path / "outputs" / "multiruns")
    assert [p.name for p in (sweep / "1_scaled_relu_depth6").glob(".layers.csv.*.tmp")]
    jobs = find_jobs(sweep)
    assert [j.status for j in jobs] == ["ok"] + ["unfinished"] * 5
    md = (write_report(sweep) / "report.md").read_text()
    assert md.startswith(f"# initlab report: {sweep.name}\n\n6 jobs: ")
    assert "5 of the 6 jobs the sweep planned did not finish" in md


# float32 chains computed in a different order (the default launcher runs the grid as one wider
# engine pass; joblib and submitit run one job per process, maybe with another thread count)
# agree to relative error <= depth * width * 2^-24 * growth per value (each layer sums `width`
# products); for depth 6, width 16 that is ~6e-6 times growth (~1 for these schemes). A
# statistic over units and trials keeps that bound, so rtol 1e-4 leaves a 16x margin. Means
# near 0 are bounded relative to the spread: atol = 1e-4 * final_std of the same job.
RTOL = 1e-4


def _close(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert a.columns.tolist() == b.columns.tolist()
    for col in a.columns:
        x, y = a[col], b[col]
        if not pd.api.types.is_float_dtype(y):
            assert x.tolist() == y.tolist(), col
            continue
        scale = b["final_std"].fillna(0).abs().to_numpy() if "mean" in col else 0.0
        assert np.allclose(x.to_numpy(float), y.to_numpy(float), rtol=RTOL,
                           atol=RTOL * scale, equal_nan=True), col


def _default_rows(tiny_sweep: Path, activation: str) -> pd.DataFrame:
    table = pd.read_csv(tiny_sweep / "report" / "summary.csv")
    return table[table["activation"] == activation].set_index("init")


def test_joblib_sweep_reports_the_same_numbers_as_the_default(tiny_sweep, tmp_path):
    proc = ok(run_initlab(["-m", "hydra/launcher=joblib", "init=scaled,kaiming",
                           "activation=relu", *SIZE], tmp_path))
    assert "trial-layer" not in proc.stderr  # no progress bar unless asked (or a terminal)
    sweep = only_child(tmp_path / "outputs" / "multiruns")
    parallel = pd.read_csv(sweep / "report" / "summary.csv").set_index("init")
    serial = _default_rows(tiny_sweep, "relu").loc[parallel.index, parallel.columns]
    _close(parallel.drop(columns="job"), serial.drop(columns="job"))


def test_submitit_local_sweep_without_report(tiny_sweep, tmp_path):
    ok(run_initlab(["-m", "hydra/launcher=local", "init=kaiming", "activation=none",
                    "report=false", *SIZE], tmp_path))
    sweep = only_child(tmp_path / "outputs" / "multiruns")
    assert not (sweep / "report").exists()  # report=false
    (job,) = find_jobs(sweep)
    assert job.status == "ok"
    theirs = _default_rows(tiny_sweep, "none").loc["kaiming", "final_std"]
    assert job.summary["final_std"] == pytest.approx(theirs, rel=RTOL)  # bound above


def test_failing_jobs_are_recorded_and_other_axes_make_the_grid(tmp_path):
    """width=2**33: the weight matrix's size overflows, so its allocation fails inside the job
    (at once, without touching memory); the other jobs run and the report has them all."""
    proc = run_initlab(["-m", "width=16,8589934592", "seed=0,1", "depth=2", "trials=1"],
                       tmp_path)
    assert "Traceback" not in proc.stderr + proc.stdout
    folder = only_child(tmp_path / "outputs" / "multiruns") / "report"
    assert proc.returncode == 1  # a sweep with failed jobs, after its report
    assert one_line(proc.stderr) == f"initlab: 2 of 4 jobs failed; report: {folder}"
    table = pd.read_csv(folder / "summary.csv")
    assert table["status"].tolist() == ["ok", "ok", "failed", "failed"]
    assert table["width"].tolist() == [16, 16, 2**33, 2**33]
    assert table["seed"].tolist() == [0, 1, 0, 1]
    md = (folder / "report.md").read_text()
    assert "Swept: width (16, 8589934592); seed (0, 1)." in md
    assert "| width \\ seed | 0 | 1 |" in md and "| 8589934592 | — | — |" in md


def test_single_run_report_and_progress_bar(tmp_path):
    proc = ok(run_initlab([*SIZE, "progress=true"], tmp_path))
    assert "trial-layer" in proc.stderr
    run = only_child(tmp_path / "outputs" / "runs")
    table = pd.read_csv(run / "report" / "summary.csv")
    assert len(table) == 1 and table["status"][0] == "ok"
    assert (run / "report" / "color_dim.png").exists()
    assert not (run / "report" / "heatmap.png").exists()  # a grid of one cell says nothing
    assert "| job | verdict |" in (run / "report" / "report.md").read_text()


def test_a_single_run_that_fails_exits_non_zero(tmp_path):
    proc = run_initlab(["width=8589934592", "depth=1", "trials=1"], tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    run = only_child(tmp_path / "outputs" / "runs")
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    # Hydra calls no end-of-run callback after a failed run; initlab-report reports it
    table = pd.read_csv(write_report(run) / "summary.csv")
    assert table["status"].tolist() == ["failed"] and table["problem"][0]


def test_the_console_script_entry_point_is_the_cli():
    from importlib.metadata import entry_points

    (entry,) = [e for e in entry_points(group="console_scripts") if e.name == "initlab-report"]
    assert entry.load() is main
    assert Path(sys.executable).exists()
