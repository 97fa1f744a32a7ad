"""Faults of the command line (issue 8, section 2): each ends in one line, nothing is lost.

Output directories that cannot be made, Ctrl-C on a run and on a sweep,
values that pass validation and used to crash the job, plug-ins that call
``sys.exit``. In-process where the fault is reached before a job runs; the
Ctrl-C tests are real processes, since a signal is what they test.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import clean_env, main_in_process, one_line, only_child

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def usage_error(args: list[str], parts: list[str], capsys) -> str:
    """``initlab ARGS`` ends with exit 2 and one ``initlab: error:`` line naming ``parts``."""
    code, err = main_in_process(args, capsys)
    line = one_line(err)
    assert code == 2
    assert line.startswith("initlab: error: ")
    for part in parts:
        assert part in line, f"{part!r} not in {line!r}"
    return line


TINY = ["depth=2", "width=8", "trials=2", "plots=false", "report=false"]

# --------------------------------------------------------------------------- output directories


def _dir_cases(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """case -> (args, parts of the line). Root passes chmod and most immutability checks, but
    not a file in the way nor /proc, so those are the faults tested here."""
    afile = tmp / "afile"
    return {
        "run dir under /proc": (["hydra.run.dir=/proc/initlab_x"], ["/proc", "hydra.run.dir"]),
        "run dir is a file": ([f"hydra.run.dir={afile}"], [str(afile), "is a file"]),
        "run dir below a file": ([f"hydra.run.dir={afile}/run"], [str(afile), "is a file"]),
        "sweep dir is a file": (["-m", f"hydra.sweep.dir={afile}", "depth=1,2"],
                                [str(afile), "hydra.sweep.dir", "is a file"]),
        "preset sweep dir under /proc": (["experiments=journey", "hydra.sweep.dir=/proc/x/y"],
                                         ["hydra.sweep.dir", "/proc"]),
    }


@pytest.mark.parametrize("case", list(_dir_cases(Path("."))))
def test_an_output_directory_that_cannot_be_made_is_one_line(case, tmp_path, monkeypatch,
                                                             capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a directory\n")
    args, parts = _dir_cases(tmp_path)[case]
    usage_error([*args, *TINY], parts, capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing else made


# --------------------------------------------------------------------------- values that crashed


@pytest.mark.parametrize("activation", ["relu", "none"])
def test_zero_weights_record_no_log_norm_instead_of_crashing(activation, tmp_path, monkeypatch,
                                                             capsys):
    """init.std=0: W = 0, so x_l = 0 from layer 1 on and ln|x_L|^2 is -inf: no number, a note."""
    monkeypatch.chdir(tmp_path)
    code, err = main_in_process(["init=normal", "init.std=0", f"activation={activation}", *TINY],
                                capsys)
    assert code == 0, err
    summary = json.loads((only_child(tmp_path / "outputs" / "runs") / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert summary["final_std"] == 0.0
    for key in ("log_norm_ratio_mean", "predicted_log_norm_ratio_mean"):
        assert summary[key] is None
    assert "zero weights" in summary["log_norm_ratio_note"]


def test_a_large_seed_that_fits_runs(tmp_path, monkeypatch, capsys):
    """The largest seed allowed (2**63 - 1) runs; 2**63 and 2**64 are refused up front."""
    monkeypatch.chdir(tmp_path)
    code, err = main_in_process([f"seed={2**63 - 1}", *TINY], capsys)
    assert code == 0, err
    summary = json.loads((only_child(tmp_path / "outputs" / "runs") / "summary.json").read_text())
    assert summary["seed"] == 2**63 - 1
    assert all(math.isfinite(summary[k]) for k in ("final_std", "final_mean"))


# --------------------------------------------------------------------------- plug-ins

PLUGIN = '''
import sys

def exits_at_once(x):
    sys.exit(3)

def exits_later(x):
    if x.dim() > 1:  # initlab tries an activation on a 1-D tensor when the spec is built
        sys.exit(4)
    return x

def exiting_init(tensor):
    sys.exit(5)
'''


@pytest.fixture
def plugin_module(tmp_path, monkeypatch, registries):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "exiting_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("exiting_plugin", None)
    yield "exiting_plugin"
    sys.modules.pop("exiting_plugin", None)


@pytest.mark.parametrize("args,parts", [
    (["activation.name=quitter", "activation._target_=exiting_plugin.exits_at_once"],
     ["activation=quitter", "sys.exit(3)"]),
    (["init=scaled", "init.name=quitter", "init._target_=exiting_plugin.exiting_init"],
     ["init=quitter", "sys.exit(5)"]),
])
def test_a_plugin_that_calls_sys_exit_is_its_failure(args, parts, plugin_module, tmp_path,
                                                      monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    usage_error([*args, *TINY], parts, capsys)


def test_a_plugin_that_exits_while_running_fails_its_job(plugin_module, tmp_path, monkeypatch,
                                                         capsys):
    monkeypatch.chdir(tmp_path)
    code, err = main_in_process(["activation.name=late", "activation._target_="
                                 "exiting_plugin.exits_later", *TINY], capsys)
    line = one_line(err)
    assert code == 1
    assert line == "initlab: error: job failed: a plug-in called sys.exit(4)"
    summary = json.loads((only_child(tmp_path / "outputs" / "runs") / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["error"] == "a plug-in called sys.exit(4)"
    assert summary["settings"]["activation"] == "late"


def test_a_builtin_activation_plugs_in_under_its_own_name(tmp_path, monkeypatch, capsys,
                                                          registries):
    """torch.tanh has no signature Python can read; it is used as it is."""
    monkeypatch.chdir(tmp_path)
    code, err = main_in_process(["activation.name=ttanh", "activation._target_=torch.tanh",
                                 "init=xavier", *TINY], capsys)
    assert code == 0, err
    job = only_child(tmp_path / "outputs" / "runs")
    assert json.loads((job / "summary.json").read_text())["activation"] == "ttanh"
    assert (pd.read_csv(job / "layers.csv")["activation"] == "ttanh").all()


# --------------------------------------------------------------------------- Ctrl-C


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "initlab", *args], cwd=cwd, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(pattern: str, cwd: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not list(cwd.glob(pattern)):
        assert proc.poll() is None, f"ended before {pattern}: {proc.communicate()}"
        assert time.monotonic() < end, f"no {pattern} after {timeout} s"
        time.sleep(0.05)


def _files_are_whole(root: Path, rows: int) -> None:
    """No half-written file under a final name; no temp file left."""
    for path in root.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            assert not path.name.endswith(".tmp"), f"temp file left: {path}"
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.name == "layers.csv":
            assert len(pd.read_csv(path)) == rows, path
        elif path.suffix == ".png":
            assert path.read_bytes()[-8:-4] == b"IEND", path


# Jobs long enough to interrupt: a sweep's signal comes within ~0.1 s of the first job's
# summary.json, and even a tiny job takes longer than that (0.2 s with its files); a run's
# comes 0.5 s after Hydra starts the job, which takes 1-7 s on two cores, busy or not.
SHORT = ["depth=60", "width=32", "trials=8", "plots=false"]
# A run long enough that the signal always lands inside it, on any machine (~6 s of draws
# on two cores; interrupted after 0.5 s, so the test does not wait for it).
LONG = ["depth=3000", "width=128", "trials=16", "plots=false"]
SWEEP = ["-m", "hydra/launcher=basic", "init=kaiming,scaled,xavier,lecun", "activation=tanh"]


@pytest.mark.slow
def test_ctrl_c_on_a_sweep_stops_cleanly_and_reports_what_finished(tmp_path):
    proc = _start([*SWEEP, *SHORT], tmp_path)
    _wait_for("outputs/multiruns/*/*/summary.json", tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = one_line(err)
    sweep = only_child(tmp_path / "outputs" / "multiruns")
    finished = [p for p in sweep.glob("*/summary.json")
                if json.loads(p.read_text())["status"] == "ok"]
    match = re.fullmatch(r"initlab: interrupted; (\d+) of 4 jobs finished; report: (.+)", line)
    assert match, line
    assert int(match.group(1)) == len(finished) >= 1
    report = Path(match.group(2))
    assert report.is_absolute() and report.parent == sweep.absolute()
    assert (report / "report.md").is_file()
    _files_are_whole(sweep, rows=8 * 61)


@pytest.mark.slow
def test_ctrl_c_on_a_run_stops_cleanly(tmp_path):
    proc = _start(LONG, tmp_path)
    _wait_for("outputs/runs/*/.hydra/config.yaml", tmp_path, proc)
    time.sleep(0.5)  # into the job's computation
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = one_line(err)
    assert re.fullmatch(r"initlab: interrupted; 0 of 1 job finished; results: .+", line), line
    _files_are_whole(tmp_path / "outputs", rows=16 * 3001)


# --------------------------------------------------------------------------- a job's files


def _occupy(job: Path) -> None:
    """Put a directory where the job's layers.csv goes: its rename onto it fails, as root too."""
    (job / "layers.csv").mkdir(parents=True)


def test_a_run_whose_file_cannot_be_written_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    _occupy(run)
    code, err = main_in_process([f"hydra.run.dir={run}", *TINY], capsys)
    line = one_line(err)
    assert code == 1
    assert line == f"initlab: error: job failed: cannot write {run / 'layers.csv'} (Is a directory)"
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_a_sweep_job_that_cannot_be_written_fails_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    _occupy(sweep / "0_kaiming_relu_depth2")
    code, err = main_in_process(["-m", f"hydra.sweep.dir={sweep}", "hydra/launcher=basic",
                                 "init=kaiming,scaled", *TINY], capsys)
    assert code == 0, err
    status = {p.parent.name: json.loads(p.read_text())["status"]
              for p in sweep.glob("*/summary.json")}
    assert status == {"0_kaiming_relu_depth2": "failed", "1_scaled_relu_depth2": "ok"}
    failed = json.loads((sweep / "0_kaiming_relu_depth2" / "summary.json").read_text())
    assert failed["error"].startswith(f"cannot write {sweep / '0_kaiming_relu_depth2'}")
    assert failed["settings"]["init"] == "kaiming"
