"""The report folder of a sweep: its files, what the document says, the self-contained page,
reruns, the folder replaced whole with the umask's modes, and the seed's table."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from initlab.job import record_failure
from initlab.report import render, write_report
from initlab.report.load import load_job
from tests.conftest import SWEEP_ACTS, SWEEP_INITS, clean_env

FIGURES = ("heatmap.png", "std_by_layer.png", "mean_by_layer.png", "grad_by_layer.png",
           "color_dim.png")
REPORT_FILES = ("summary.csv", "report.md", "report.html", *FIGURES)


def test_multirun_ends_with_a_report(tiny_sweep):
    for name in REPORT_FILES:
        assert (tiny_sweep / "report" / name).stat().st_size > 0, name
    table = pd.read_csv(tiny_sweep / "report" / "summary.csv")
    zero = table[table["init"] == "zero"]
    # zero weights: every unit is 0 from layer 1 on, in every trial
    assert set(zero["verdict"]) == {"vanished"} and set(zero["verdict_layer"]) == {1}


def test_report_md_names_the_sweep_and_shows_every_figure(tiny_sweep):
    text = (tiny_sweep / "report" / "report.md").read_text()
    assert text.startswith(f"# initlab report: {tiny_sweep.name}\n")
    assert (f"Swept: init ({', '.join(SWEEP_INITS)}); activation ({', '.join(SWEEP_ACTS)}).\n"
            in text)
    assert f"| init \\ activation | {' | '.join(SWEEP_ACTS)} |" in text
    # forward: all zero from layer 1; backward: dL/dx_5 = W_6^T (...) = 0, the first layer back
    zero = "vanished @1, grad vanished @5"
    assert f"| zero | {zero} | {zero} |" in text
    for name in FIGURES:
        assert f"]({name})" in text


def test_report_html_is_self_contained(tiny_sweep):
    page = (tiny_sweep / "report" / "report.html").read_text()
    assert 'name="viewport"' in page
    assert page.count("<img ") == len(FIGURES)
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    assert "http://" not in page and "https://" not in page
    assert "<table>" in page and "vanished @1" in page


def test_rerunning_the_report_gives_the_same_files(tiny_sweep, sweep_copy):
    """The copy keeps the sweep's name (the title names it); the first report was written by
    the sweep's own process, this one in the test's."""
    write_report(sweep_copy)
    for name in REPORT_FILES:
        assert (sweep_copy / "report" / name).read_bytes() == \
            (tiny_sweep / "report" / name).read_bytes(), name


def test_broken_jobs_are_listed_and_the_rest_reported(sweep_copy):
    jobs = sorted((p for p in sweep_copy.iterdir() if (p / ".hydra").is_dir()),
                  key=lambda p: int(p.name.split("_")[0]))
    (jobs[0] / "summary.json").unlink()
    (jobs[1] / "summary.json").write_text('{"status": "ok", "init": 5}')
    record_failure(jobs[3], {"init": "kaiming", "activation": "none"}, MemoryError("boom"))
    write_report(sweep_copy)
    table = pd.read_csv(sweep_copy / "report" / "summary.csv").set_index("job")
    assert table["status"].tolist() == ["unfinished", "broken", "ok", "failed", "ok", "ok"]
    md = (sweep_copy / "report" / "report.md").read_text()
    assert "## Problems" in md and "MemoryError: boom" in md and "no summary.json" in md
    assert "init=5 is not a string" in md
    assert "6 jobs: 3 ok, 1 failed, 1 broken, 1 unfinished" in md
    assert (sweep_copy / "report" / "std_by_layer.png").exists()


def test_report_folder_gets_the_umasks_modes(sweep_copy):
    mask = 0o027  # neither mkstemp's 0600 nor the usual 022's 0644 (for 0o002, see test_cli)
    old = os.umask(mask)
    try:
        folder = write_report(sweep_copy)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~mask
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path.name
    assert not [p.name for p in sweep_copy.iterdir() if p.name.startswith(".report")]


def test_a_report_that_fails_midway_leaves_the_old_one_whole(sweep_copy, monkeypatch):
    before = {p.name: p.read_bytes() for p in (sweep_copy / "report").iterdir()}

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(render, "page", fail)  # after the figures, summary.csv and report.md
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(sweep_copy)
    assert {p.name: p.read_bytes() for p in (sweep_copy / "report").iterdir()} == before
    assert not [p.name for p in sweep_copy.iterdir() if p.name.startswith(".report")]


def test_a_report_whose_swap_fails_puts_the_old_one_back(sweep_copy, monkeypatch):
    """The old report is moved aside, then the new one is renamed in: if that last rename
    fails, the old report returns to its place, and no hidden folder is left behind."""
    from initlab.report import ReportError
    from initlab.report import write as writer

    before = {p.name: p.read_bytes() for p in (sweep_copy / "report").iterdir()}
    real = os.replace

    def replace(src, dst):
        if Path(src).name.startswith(".report.tmp-"):
            raise OSError(28, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(writer.os, "replace", replace)
    with pytest.raises(ReportError, match="No space left on device"):
        write_report(sweep_copy)
    assert {p.name: p.read_bytes() for p in (sweep_copy / "report").iterdir()} == before
    assert not [p.name for p in sweep_copy.iterdir() if p.name.startswith(".report")]


def test_seed_table_marks_pass_or_fail(sweep_copy):
    """A seed number inside the job's trial range passes, one 100x off fails (judge's rule,
    tested on its own in test_report_judge.py); the report shows both marks."""
    job = next(p for p in sweep_copy.iterdir() if p.name.endswith("_kaiming_relu_depth6"))
    final = load_job(job).layers
    final = final[final["layer"] == final["layer"].max()]["std"].to_numpy()
    inside = float(np.median(final))
    data = json.loads((job / "summary.json").read_text())
    data["reference"] = {"source": "seed 006", "rows": [
        {"quantity": "final_std", "seed": inside, "measured": inside},
        {"quantity": "final_mean", "seed": 100 * float(np.abs(final).max()) + 1,
         "measured": 0.0}]}
    (job / "summary.json").write_text(json.dumps(data))
    md = (write_report(sweep_copy) / "report.md").read_text()
    section = md.split("## Seed says / measured")[1].split("## Jobs")[0]
    rows = [line for line in section.splitlines() if line.startswith("| seed 006")]
    assert len(rows) == 2
    assert "| final_std |" in rows[0] and rows[0].endswith("✓ pass |")
    assert "| final_mean |" in rows[1] and rows[1].endswith("✗ fail |")


def test_importing_the_report_leaves_pyplot_and_the_backend_alone():
    code = ("import matplotlib, sys; matplotlib.use('svg'); import initlab.report; "
            "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=clean_env(), timeout=120)
    assert out.stdout.split() == ["svg", "False"], out.stderr[-2000:]



def test_a_sweep_written_before_gradient_verdicts_reads_not_recorded(sweep_copy):
    """summary.json files without the gradient verdict (an older initlab): the report still
    builds, and every place a gradient verdict shows says it was not recorded."""
    import json

    import pandas as pd

    from initlab.report import write_report

    for path in sweep_copy.glob("*/summary.json"):
        data = json.loads(path.read_text())
        for key in [k for k in data if k.startswith(("grad_", "theory_grad"))]:
            del data[key]
        path.write_text(json.dumps(data))
    report = write_report(sweep_copy)
    text = (report / "report.md").read_text()
    assert "| zero | vanished @1, grad not recorded | vanished @1, grad not recorded |" in text
    frame = pd.read_csv(report / "summary.csv")
    assert set(frame["grad_verdict"]) == {"not recorded"}
