"""Faults of the command line: each ends in one line, nothing is lost.

Output directories that cannot be made, values that pass validation and used to
crash the job, plug-ins that call ``sys.exit``, job files that cannot be written, a
full disk (jobs, Hydra's bookkeeping, the report). In-process where a fault can be
made there; real write errors from the OS in a subprocess. Ctrl-C and SIGTERM:
tests/test_signals.py.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import subprocess
import sys
from contextlib import contextmanager
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
        "preset sweep dir under /proc": (["experiments=journey", "reference=null",
                                          "hydra.sweep.dir=/proc/x/y"],
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
    assert code == 1
    assert one_line(err) == f"initlab: 1 of 2 jobs failed; results: {sweep}"
    status = {p.parent.name: json.loads(p.read_text())["status"]
              for p in sweep.glob("*/summary.json")}
    assert status == {"0_kaiming_relu_depth2": "failed", "1_scaled_relu_depth2": "ok"}
    failed = json.loads((sweep / "0_kaiming_relu_depth2" / "summary.json").read_text())
    assert failed["error"].startswith(f"cannot write {sweep / '0_kaiming_relu_depth2'}")
    assert failed["settings"]["init"] == "kaiming"


# --------------------------------------------------------------------------- a full disk

ENOSPC = os.strerror(errno.ENOSPC)  # "No space left on device"
SMALL_SWEEP = ["init=kaiming,scaled", "activation=tanh,relu", "depth=2", "width=8", "trials=2",
               "plots=false"]


def _message(line: str) -> str:
    """A log line without its ``[time][logger][LEVEL] - `` prefix."""
    return re.sub(r"^(\[[^\]]*\])+( - )?\s*", "", line)


class FullDisk:
    """A disk that fills once job 0's summary.json is written: from then on every write fails
    with ENOSPC — initlab's job files and failure records (``store.atomic_path``), Hydra's
    per-job .hydra/ files (``hydra.core.utils._save_config``), the report's folder."""

    def __init__(self, monkeypatch) -> None:
        import hydra.core.utils

        from initlab import store
        from initlab.report import write

        self.full = False
        real_path, real_save, real_fill = store.atomic_path, hydra.core.utils._save_config, \
            write._fill

        @contextmanager
        def atomic_path(path):
            self.check()
            with real_path(path) as tmp:
                yield tmp
            self.full |= Path(path).name == "summary.json"

        def save_config(*args, **kwargs):
            self.check()
            return real_save(*args, **kwargs)

        def fill(*args, **kwargs):
            self.check()
            return real_fill(*args, **kwargs)

        monkeypatch.setattr(store, "atomic_path", atomic_path)
        monkeypatch.setattr(hydra.core.utils, "_save_config", save_config)
        monkeypatch.setattr(write, "_fill", fill)

    def check(self) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, ENOSPC)


def test_a_full_disk_is_one_line_per_failed_job_and_exit_status_1(tmp_path, monkeypatch,
                                                                  capsys):
    from initlab import app

    monkeypatch.chdir(tmp_path)
    FullDisk(monkeypatch)
    sweep = tmp_path / "sweep"
    with pytest.raises(SystemExit) as stop:
        app.main(["-m", f"hydra.sweep.dir={sweep}", *SMALL_SWEEP])
    out, err = capsys.readouterr()
    assert stop.value.code == 1
    assert one_line(err) == (f"initlab: 3 of 4 jobs failed; no report ({sweep}: {ENOSPC}); "
                             f"results: {sweep}")
    assert "Traceback" not in out and "Logging error" not in out
    names = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    for num, name in enumerate(names):
        lines = [_message(x) for x in out.splitlines() if f"/{name} " in x or f"job {num}:" in x]
        if num == 0:  # its files came whole; Hydra's could not be written after them
            assert lines == [
                f"job 0: Hydra's bookkeeping failed: cannot write {sweep / name} ({ENOSPC}); "
                "its results are whole"]
        else:  # failed, and not recorded either: one line
            assert lines == [
                f"job failed (writing its directory): cannot write {sweep / name} ({ENOSPC}) "
                "(not recorded)"], out
    assert [p.parent.name for p in sweep.glob("*/summary.json")] == [names[0]]
    assert not [p for p in sweep.rglob("*") if ".tmp" in p.name]


def _dev_full(path: Path) -> None:
    """``path`` becomes a link to /dev/full: every write to it fails with ENOSPC."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("/dev/full")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_real_write_errors_in_every_part_of_a_sweep_are_one_line_each(tmp_path):
    """Real errors from the OS, no root: a file size limit (RLIMIT_FSIZE, 64 KiB: the deep
    jobs' tables exceed it, EFBIG) and /dev/full under the names Hydra writes (ENOSPC):
    job 0's log, job 2's .hydra/config.yaml. Each fault is one line, the sweep exits 1."""
    import resource

    sweep = tmp_path / "sweep"
    _dev_full(sweep / "0_kaiming_relu_depth2" / "initlab.log")
    _dev_full(sweep / "2_scaled_relu_depth2" / ".hydra" / "config.yaml")

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    proc = subprocess.run(
        [sys.executable, "-m", "initlab", "-m", f"hydra.sweep.dir={sweep}", "init=kaiming,scaled",
         "depth=2,400", "width=8", "trials=2", "plots=false"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300,
        preexec_fn=limited)
    assert proc.returncode == 1, proc.stderr
    big = os.strerror(errno.EFBIG)  # "File too large": the report's self-contained HTML too
    assert one_line(proc.stderr) == (f"initlab: 2 of 4 jobs failed; no report ({sweep}: {big}); "
                                     f"results: {sweep}")
    out = proc.stdout
    assert "Traceback" not in out and "Logging error" not in out, out
    expect = {
        "0_kaiming_relu_depth2": f"job 0: its log {sweep}/0_kaiming_relu_depth2/initlab.log is "
                                 f"incomplete ({ENOSPC})",
        "1_kaiming_relu_depth400": "job failed (writing its directory): cannot write "
                                   f"{sweep}/1_kaiming_relu_depth400 ({big}) (recorded in "
                                   f"{sweep}/1_kaiming_relu_depth400/summary.json)",
        "2_scaled_relu_depth2": f"job 2: Hydra's bookkeeping failed: cannot write "
                                f"{sweep}/2_scaled_relu_depth2 ({ENOSPC}); its results are whole",
        "3_scaled_relu_depth400": "job failed (writing its directory): cannot write "
                                  f"{sweep}/3_scaled_relu_depth400 ({big}) (recorded in "
                                  f"{sweep}/3_scaled_relu_depth400/summary.json)",
    }
    for num, (name, line) in enumerate(expect.items()):
        said = [_message(x) for x in out.splitlines()
                if f"job {num}:" in x or f"/{name} " in x or f"/{name}/" in x]
        assert said == [line], out


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_hydras_own_sweep_file_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    """Hydra writes multirun.yaml before any job: it cannot, so nothing runs; one line."""
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    _dev_full(sweep / "multirun.yaml")
    code, err = main_in_process(["-m", f"hydra.sweep.dir={sweep}", *SMALL_SWEEP], capsys)
    assert code == 1
    assert one_line(err) == (f"initlab: error: cannot write {sweep} ({ENOSPC}); 0 of 4 jobs "
                             f"finished; results: {sweep}")
