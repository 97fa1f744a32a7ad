"""Reports: written automatically after runs and sweeps, from files only, robust to broken jobs;
the same sweep through the joblib and submitit launchers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from initlab.job import record_failure
from initlab.reference import judge
from initlab.report import find_jobs, write_report

SMALL = ["depth=6", "width=32", "trials=3"]
GRID = ["init=zero,scaled,kaiming", "activation=none,relu"]
REPORT_FILES = ("summary.csv", "report.md", "report.html", "heatmap.png", "std_by_layer.png",
                "mean_by_layer.png", "grad_by_layer.png", "color_dim.png")


def initlab(args, cwd: Path, check: bool = True, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "initlab", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300, env={**os.environ, **env})
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def only_sweep(cwd: Path) -> Path:
    (sweep,) = sorted((cwd / "outputs" / "multiruns").iterdir())
    return sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("serial")
    initlab(["-m", *GRID, *SMALL], cwd)
    return only_sweep(cwd)


def test_multirun_ends_with_a_report(sweep):
    folder = sweep / "report"
    for name in REPORT_FILES:
        assert (folder / name).stat().st_size > 0, name
    table = pd.read_csv(folder / "summary.csv")
    assert len(table) == 6 and set(table["status"]) == {"ok"}
    for row in table.itertuples():
        summary = json.loads((sweep / row.job / "summary.json").read_text())
        assert row.verdict == summary["verdict"]
        assert row.init == summary["init"] and row.activation == summary["activation"]
        assert row.exploded + row.vanished + row.stable == 3
        assert row.final_std_q10 <= row.final_std <= row.final_std_q90
    zero = table[table["init"] == "zero"]
    assert set(zero["verdict"]) == {"vanished"} and set(zero["verdict_layer"]) == {1}


def test_report_md_names_the_sweep_and_shows_every_figure(sweep):
    text = (sweep / "report" / "report.md").read_text()
    assert "Swept: init (zero, scaled, kaiming); activation (none, relu)." in text
    assert "| init \\ activation | none | relu |" in text
    assert "| zero | vanished @1 | vanished @1 |" in text
    for name in ("heatmap.png", "std_by_layer.png", "mean_by_layer.png", "grad_by_layer.png",
                 "color_dim.png"):
        assert f"]({name})" in text


def test_report_html_is_self_contained(sweep):
    page = (sweep / "report" / "report.html").read_text()
    assert 'name="viewport"' in page
    assert page.count("<img ") == 5  # heatmap, std, mean, gradient, histogram
    assert page.count('src="data:image/png;base64,') == 5
    assert "http://" not in page and "https://" not in page
    assert "<table>" in page and "vanished @1" in page


def test_rerunning_the_report_gives_the_same_files(sweep, tmp_path):
    copy = tmp_path / sweep.name  # the title names the directory
    shutil.copytree(sweep, copy)
    before = {n: (copy / "report" / n).read_bytes() for n in REPORT_FILES}
    write_report(copy)
    after = {n: (copy / "report" / n).read_bytes() for n in REPORT_FILES}
    assert before == after


def test_broken_jobs_are_listed_and_the_rest_reported(sweep, tmp_path):
    copy = tmp_path / "broken"
    shutil.copytree(sweep, copy)
    shutil.rmtree(copy / "report")
    jobs = sorted((p for p in copy.iterdir() if p.is_dir()), key=lambda p: int(p.name[0]))
    (jobs[0] / "summary.json").unlink()  # killed before it finished
    text = (jobs[1] / "summary.json").read_text()
    (jobs[1] / "summary.json").write_text(text[: len(text) // 2])  # half-written
    (jobs[2] / "layers.parquet").write_bytes(b"not parquet")  # falls back to layers.csv
    record_failure(jobs[3], {"init": "kaiming", "activation": "none"}, MemoryError("boom"))
    (jobs[4] / "layers.parquet").unlink()
    (jobs[4] / "layers.csv").write_text("garbage\n")  # no readable table at all

    write_report(copy)
    table = pd.read_csv(copy / "report" / "summary.csv").set_index("job")
    status = {p.name: table.loc[p.name, "status"] for p in jobs}
    assert status == {jobs[0].name: "missing", jobs[1].name: "broken", jobs[2].name: "ok",
                      jobs[3].name: "failed", jobs[4].name: "broken", jobs[5].name: "ok"}
    md = (copy / "report" / "report.md").read_text()
    assert "## Problems" in md
    assert "MemoryError: boom" in md and "no summary.json" in md
    assert (copy / "report" / "std_by_layer.png").exists()


def test_a_job_that_fails_is_recorded_and_the_sweep_goes_on(tmp_path):
    """width=2**33: the weight matrix's size overflows, so its allocation fails inside the job
    (at once, without touching memory)."""
    proc = initlab(["-m", "width=16,8589934592", "depth=2", "trials=1"], tmp_path)
    assert "Traceback" not in proc.stderr + proc.stdout
    sweep = only_sweep(tmp_path)
    table = pd.read_csv(sweep / "report" / "summary.csv")
    assert table["status"].tolist() == ["ok", "failed"]
    failed = json.loads((sweep / table["job"][1] / "summary.json").read_text())
    assert failed["status"] == "failed" and failed["width"] == 2**33 and failed["error"]


def test_a_single_run_that_fails_exits_non_zero(tmp_path):
    proc = initlab(["width=8589934592", "depth=1", "trials=1"], tmp_path, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    (run,) = (tmp_path / "outputs" / "runs").iterdir()
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


def test_single_run_gets_its_own_report(tmp_path):
    initlab(SMALL, tmp_path)
    (run,) = (tmp_path / "outputs" / "runs").iterdir()
    table = pd.read_csv(run / "report" / "summary.csv")
    assert len(table) == 1 and table["status"][0] == "ok"
    assert (run / "report" / "color_dim.png").exists()
    assert not (run / "report" / "heatmap.png").exists()  # a grid of one cell says nothing


def test_report_false_writes_none(tmp_path):
    initlab(["-m", "init=scaled,kaiming", "report=false", *SMALL], tmp_path)
    assert not (only_sweep(tmp_path) / "report").exists()


def test_other_axes_make_the_grid(tmp_path):
    initlab(["-m", "width=16,32", "seed=0,1", "depth=3", "trials=2"], tmp_path)
    folder = only_sweep(tmp_path) / "report"
    table = pd.read_csv(folder / "summary.csv")
    assert {"width", "seed"} <= set(table.columns) and len(table) == 4
    assert "| width \\ seed | 0 | 1 |" in (folder / "report.md").read_text()


def test_seed_table_marks_pass_or_fail(tmp_path):
    initlab(["-m", "+experiments/journey=3_scaled_none,6_xavier_relu", "trials=32"], tmp_path)
    md = (only_sweep(tmp_path) / "report" / "report.md").read_text()
    assert "## Seed says / measured" in md
    section = md.split("## Seed says / measured")[1].split("## Jobs")[0]
    rows = [line for line in section.splitlines() if line.startswith("| seed 001")]
    assert len(rows) == 4  # final_mean and final_std of two steps
    assert all("✓ pass" in row for row in rows), rows


@pytest.mark.parametrize("args", [["/nonexistent/sweep"], ["{empty}"]])
def test_bad_directory_is_one_line(tmp_path, args):
    args = [a.replace("{empty}", str(tmp_path)) for a in args]
    proc = subprocess.run([sys.executable, "-m", "initlab.report", *args], text=True,
                          capture_output=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("initlab-report: error:"), proc.stderr
    assert "not a run or sweep directory" in lines[0] or "does not exist" in lines[0]


def test_find_jobs_ignores_report_and_launcher_folders(sweep):
    names = [j.name for j in find_jobs(sweep)]
    assert len(names) == 6 and "report" not in names


def test_joblib_sweep_reports_the_same_numbers_as_serial(sweep, tmp_path):
    initlab(["-m", "hydra/launcher=joblib", *GRID, *SMALL], tmp_path)
    parallel = pd.read_csv(only_sweep(tmp_path) / "report" / "summary.csv")
    serial = pd.read_csv(sweep / "report" / "summary.csv")
    pd.testing.assert_frame_equal(parallel, serial)


def test_submitit_local_sweep(sweep, tmp_path):
    initlab(["-m", "hydra/launcher=local", "init=scaled,kaiming", "activation=relu", *SMALL],
            tmp_path)
    folder = only_sweep(tmp_path)
    table = pd.read_csv(folder / "report" / "summary.csv")
    serial = pd.read_csv(sweep / "report" / "summary.csv")
    assert table["status"].tolist() == ["ok", "ok"]
    mine = table.set_index("init")["final_std"]
    theirs = serial[serial["activation"] == "relu"].set_index("init")["final_std"]
    assert mine["kaiming"] == theirs["kaiming"] and mine["scaled"] == theirs["scaled"]


def test_progress_bar_only_when_asked_or_on_a_terminal(tmp_path):
    quiet = initlab(SMALL + ["report=false"], tmp_path)
    loud = initlab(SMALL + ["report=false", "progress=true"], tmp_path)
    assert "trial-layer" not in quiet.stderr
    assert "trial-layer" in loud.stderr


# ---------------------------------------------------------------- judge: seed vs measured


def _final(**cols) -> pd.DataFrame:
    return pd.DataFrame(cols)


def test_judge_per_trial_quantities_use_the_trial_range():
    rng = np.random.default_rng(0)
    final = _final(std=rng.lognormal(0, 0.3, 200), mean=rng.normal(0, 0.1, 200),
                   rms=np.ones(200))
    assert judge("final_std", 1.1, final)[0] is True
    assert judge("final_std", 5.0, final)[0] is False
    assert judge("final_mean", 0.05, final)[0] is True
    assert judge("final_mean", 0.0, final)[0] is False  # 0 passes only against zeros


def test_judge_nan_and_zero():
    nan = _final(std=[np.nan] * 4, mean=[np.nan] * 4, rms=[np.nan] * 4)
    zero = _final(std=[0.0] * 4, mean=[0.0] * 4, rms=[0.0] * 4)
    assert judge("final_std", float("nan"), nan)[0] is True
    assert judge("final_std", float("nan"), zero)[0] is False
    assert judge("final_std", 0.0, zero)[0] is True


def test_judge_layer_and_averages():
    final = _final(std=[1.0] * 3, mean=[9.0, 9.1, 8.9], rms=[16.0, 16.1, 15.9],
                   first_nonfinite_layer=[28, 28, 29])
    assert judge("first_nonfinite_layer", 29, final)[0] is True
    assert judge("first_nonfinite_layer", 35, final)[0] is False
    assert judge("mean_of_means", 9.02, final)[0] is True
    assert judge("mean_of_means", 10.0, final)[0] is False
    assert judge("root_mean_square", 16.0, final)[0] is True


def test_default_launcher_shares_draws_and_matches_one_job_at_a_time(sweep, tmp_path):
    """The fused launcher runs the 6 jobs as one engine pass; the numbers are those of the
    basic launcher (one engine call per job) up to the rounding of the wider matmul."""
    proc = initlab(["-m", "hydra/launcher=basic", *GRID, *SMALL], tmp_path)
    assert "Shared draws" not in proc.stdout + proc.stderr
    basic = pd.read_csv(only_sweep(tmp_path) / "report" / "summary.csv")
    fused_log = (sweep / "multirun.yaml").parent
    fused = pd.read_csv(fused_log / "report" / "summary.csv")
    pd.testing.assert_frame_equal(fused, basic, check_exact=False, rtol=1e-6)


def test_fused_launcher_says_so(tmp_path):
    proc = initlab(["-m", "init=scaled,kaiming", "activation=tanh,relu", *SMALL], tmp_path)
    assert "Shared draws: 4 jobs in 1 engine pass" in proc.stdout + proc.stderr
