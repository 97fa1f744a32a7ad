"""initlab.report.load: finding a sweep's jobs (planned ones included) and settling each status
once, from files damaged the ways a kill, a full disk or a bad hand edit leave them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from initlab.job import record_failure
from initlab.report.load import find_jobs, load_job, planned_jobs
from initlab.report.write import write_report
from tests.conftest import SWEEP_ACTS, SWEEP_INITS, SWEEP_SIZE


def _dirs(sweep: Path) -> list[Path]:
    """The job directories in Hydra's job order (their names start with the job number)."""
    return sorted((p for p in sweep.iterdir() if p.is_dir() and (p / ".hydra").is_dir()),
                  key=lambda p: int(p.name.split("_")[0]))


def _status(sweep: Path) -> dict[str, tuple[str, str]]:
    return {j.name: (j.status, j.problem) for j in find_jobs(sweep)}


def _edit_summary(job: Path, **fields) -> None:
    data = json.loads((job / "summary.json").read_text())
    data.update(fields)
    (job / "summary.json").write_text(json.dumps(data))


def test_find_jobs_lists_the_sweep_without_report_or_hidden_folders(tiny_sweep):
    jobs = find_jobs(tiny_sweep)
    assert [j.name for j in jobs] == [p.name for p in _dirs(tiny_sweep)]
    assert all(j.status == "ok" for j in jobs)
    size = len(SWEEP_INITS) * len(SWEEP_ACTS)
    assert len(jobs) == size
    # the table of each job was read whole: trials * (depth + 1) rows
    assert all(len(j.layers) == SWEEP_SIZE["trials"] * (SWEEP_SIZE["depth"] + 1) for j in jobs)


def test_plan_follows_hydras_job_numbers(tiny_sweep):
    """The plan rebuilt from multirun.yaml equals what Hydra gave job number n (its directory
    name starts with n, its .hydra/overrides.yaml holds its overrides)."""
    plan = planned_jobs(tiny_sweep)
    given = [yaml.safe_load((p / ".hydra" / "overrides.yaml").read_text())
             for p in _dirs(tiny_sweep)]
    assert plan == given


def test_statuses_of_damaged_jobs(sweep_copy):
    jobs = _dirs(sweep_copy)
    (jobs[0] / "summary.json").unlink()  # killed before it finished
    (jobs[0] / ".summary.json.x1y2.tmp").write_text("{")  # ...mid-write: a hidden temp file
    text = (jobs[1] / "summary.json").read_text()
    (jobs[1] / "summary.json").write_text(text[: len(text) // 2])  # half-written
    (jobs[2] / "layers.parquet").write_bytes(b"not parquet")  # the CSV copy is whole, but
    #                                                            a script reading it fails
    record_failure(jobs[3], {"init": "kaiming", "activation": "none"}, MemoryError("boom"))
    (jobs[4] / "layers.parquet").unlink()
    (jobs[4] / "layers.csv").write_text("garbage\n")  # no readable table at all
    status = _status(sweep_copy)
    assert status[jobs[0].name][0] == "unfinished"
    assert ".summary.json.x1y2.tmp" not in status[jobs[0].name][1]  # not one of its files
    assert "layers.csv" in status[jobs[0].name][1]
    assert status[jobs[1].name][0] == "broken"
    assert "summary.json unreadable" in status[jobs[1].name][1]
    assert status[jobs[2].name][0] == "broken"
    assert status[jobs[2].name][1].startswith("layers.parquet unreadable (ArrowInvalid: ")
    assert status[jobs[2].name][1].endswith("; layers.csv holds together")
    assert status[jobs[3].name] == ("failed", "MemoryError: boom")
    assert status[jobs[4].name][0] == "broken" and "lacks columns" in status[jobs[4].name][1]
    assert status[jobs[5].name] == ("ok", "")


@pytest.mark.parametrize("field,value,why", [
    ("init", 5, "init=5 is not a string"),
    ("verdict_layer", "abc", "verdict_layer='abc' is not a layer number"),
    ("depth", "6", "depth='6' is not an integer"),
    ("final_std", [1.0], "final_std=[1.0] is not a number"),
    ("verdict", "fine", "verdict='fine' is not one of"),
])
def test_wrong_typed_summary_fields_make_the_job_broken(sweep_copy, field, value, why):
    victim = _dirs(sweep_copy)[2]
    _edit_summary(victim, **{field: value})
    status = _status(sweep_copy)
    assert status[victim.name][0] == "broken" and why in status[victim.name][1]
    assert sum(s == "ok" for s, _ in status.values()) == len(status) - 1


def _layers_only_csv(job: Path) -> str:
    (job / "layers.parquet").unlink()
    return (job / "layers.csv").read_text()


def test_a_layers_csv_cut_mid_row_is_broken(sweep_copy):
    victim = _dirs(sweep_copy)[1]
    text = _layers_only_csv(victim)
    (victim / "layers.csv").write_text(text[: len(text) - 7])  # cut inside the last row
    status, why = _status(sweep_copy)[victim.name]
    assert status == "broken" and "cut mid-row" in why


def test_a_layers_table_short_of_rows_or_columns_is_broken(sweep_copy):
    short, narrow = _dirs(sweep_copy)[1:3]
    lines = _layers_only_csv(short).splitlines(keepends=True)
    (short / "layers.csv").write_text("".join(lines[:-2]))  # whole rows missing
    frame = pd.read_parquet(narrow / "layers.parquet").drop(columns=["std"])
    frame.to_parquet(narrow / "layers.parquet")
    (narrow / "layers.csv").unlink()
    status = _status(sweep_copy)
    expected = SWEEP_SIZE["trials"] * (SWEEP_SIZE["depth"] + 1)
    assert status[short.name][0] == "broken"
    assert f"layers.csv has {expected - 2} rows; trials*(depth+1) = {expected}" \
        in status[short.name][1]
    assert status[narrow.name][0] == "broken" and "lacks columns std" in status[narrow.name][1]


def test_killed_sweep_is_reported_at_its_planned_size(sweep_copy):
    jobs = _dirs(sweep_copy)
    plan = planned_jobs(sweep_copy)
    for job in jobs[4:]:
        shutil.rmtree(job)  # never started
    (jobs[3] / "summary.json").unlink()  # running when killed
    for p in jobs[3].iterdir():
        if p.suffix in (".csv", ".parquet", ".png"):
            p.rename(p.with_name(f".{p.name}.abc123.tmp"))  # only temp files so far
    found = find_jobs(sweep_copy)
    assert [j.status for j in found] == ["ok"] * 3 + ["unfinished"] + ["never started"] * 2
    assert found[3].problem.endswith("(files: initlab.log)")
    for job, overrides in zip(found[4:], plan[4:], strict=True):
        assert job.overrides == overrides and " ".join(overrides) in job.problem


def test_sweep_killed_before_its_first_job_is_still_a_sweep(sweep_copy, tmp_path):
    bare = tmp_path / "killed"
    bare.mkdir()
    shutil.copy(sweep_copy / "multirun.yaml", bare)
    found = find_jobs(bare)
    assert [j.status for j in found] == ["never started"] * len(SWEEP_INITS) * len(SWEEP_ACTS)
    md = (write_report(bare) / "report.md").read_text()
    assert f"{len(found)} jobs: {len(found)} never started" in md
    assert md.count("| never started |") == len(found)


def test_labels_come_from_the_summary_not_the_registry(sweep_copy):
    """A scheme this process does not know (a plug-in of the process that ran it) is labelled
    from summary.json; no registry is consulted."""
    victim = _dirs(sweep_copy)[0]
    data = json.loads((victim / "summary.json").read_text())
    data["settings"] = {**{k: data[k] for k in ("init", "activation", "depth", "width",
                                                "trials", "seed")},
                        "init": "my_plugin", "init_gain": 3}
    (victim / "summary.json").write_text(json.dumps(data))
    job = load_job(victim)
    assert job.status == "ok" and job.settings["init"] == "my_plugin"
    table = pd.read_csv(write_report(sweep_copy) / "summary.csv")
    # the only my_plugin job: its parameters tell it from no other job, so the name alone
    assert table["init"].tolist()[0] == "my_plugin"


def test_a_job_whose_overrides_are_spelled_otherwise_is_matched_by_its_number(sweep_copy):
    """Overrides are compared as text; a directory whose overrides.yaml does not match any
    planned job (another spelling) is placed by Hydra's job number, not counted twice."""
    victim = _dirs(sweep_copy)[2]
    (victim / ".hydra" / "overrides.yaml").write_text("- init= scaled\n- activation=none\n")
    found = find_jobs(sweep_copy)
    assert [j.name for j in found] == [p.name for p in _dirs(sweep_copy)]
    assert [j.status for j in found] == ["ok"] * 6


def test_a_failed_jobs_settings_come_from_its_overrides(sweep_copy, tmp_path):
    """init.std swept, the second job failed before its summary knew init.std: the override
    names it, so the report says which setting was swept (not `init (normal)`)."""
    jobs = _dirs(sweep_copy)[:2]
    for job, std in zip(jobs, (0.5, 2.0), strict=True):
        data = json.loads((job / "summary.json").read_text())
        data.pop("settings", None)
        data.update(init="normal", init_std=std, activation="relu")
        (job / "summary.json").write_text(json.dumps(data))
        (job / ".hydra" / "overrides.yaml").write_text(
            f"- init=normal\n- init.std={std}\n- activation=relu\n- report=false\n")
        (job / ".hydra" / "config.yaml").unlink()  # the tiny sweep's, not these settings
    record_failure(jobs[1], {"init": "normal", "activation": "relu"}, MemoryError("boom"))
    sweep = tmp_path / "std_sweep"
    sweep.mkdir()
    for job in jobs:
        shutil.copytree(job, sweep / job.name)
    md = (write_report(sweep) / "report.md").read_text()
    assert "2 jobs: 1 ok, 1 failed" in md
    assert "Swept: init.std (0.5, 2.0)." in md and "Swept: init (" not in md
    assert "Fixed: init=normal, activation=relu" in md and "report=" not in md
    assert "| init.std | verdict |" in md


def test_a_multirun_yaml_cut_short_as_hydra_wrote_it_is_no_plan():
    """Hydra writes multirun.yaml in place; read before it is whole, it has no
    hydra.overrides.task, and must not pass for a one-job sweep without overrides."""
    from omegaconf import OmegaConf

    from initlab.report.load import planned_overrides

    whole = OmegaConf.create({"hydra": {"sweeper": {"params": None},
                                        "overrides": {"task": ["init=scaled,kaiming"]}}})
    assert planned_overrides(whole) == [["init=scaled"], ["init=kaiming"]]
    cut = OmegaConf.create({"hydra": {"run": {"dir": "x"}}})
    assert planned_overrides(cut) is None
    alone = OmegaConf.create({"hydra": {"overrides": {"task": []}}})  # initlab -m, no overrides
    assert planned_overrides(alone) == [[]]
