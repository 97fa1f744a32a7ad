"""Ctrl-C and SIGTERM at every stage of a sweep, and of a single run, at a known point.

Each test starts the real console command with ``INITLAB_PAUSE_AT=<stage>[:n]``: the
process prints ``initlab: paused at <stage> <n>`` to stderr when it gets there and waits;
the test reads that line, then signals the process group (as a terminal's Ctrl-C does),
so the signal lands at that point and nowhere else, however busy the machine is. What is
checked: the exit status (130 for SIGINT, 143 for SIGTERM), stderr holding only the
pause line(s) and one ``initlab: interrupted; ...`` line (no traceback, no "Exception
ignored"), the count of finished jobs, the report, and no file half-written under its
final name.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from conftest import clean_env, only_child

pytestmark = pytest.mark.slow

# Four jobs in two engine passes (one per width): pass 1 serves jobs 0 and 2, pass 2 jobs 1, 3.
SWEEP = ["-m", "init=kaiming,scaled", "width=8,16", "activation=tanh", "depth=3", "trials=2",
         "plots=false"]
RUN = ["depth=3", "width=8", "trials=2"]
PAUSED = re.compile(r"initlab: paused at (\w+) (\d+)")
HANG = 300  # seconds: only a guard against a hung process, never a wait for something to happen


def _default_signals() -> None:
    """In the child: SIGINT and SIGTERM as a terminal leaves them (a test runner started in
    the background of a non-interactive shell passes SIGINT on ignored)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


class Paused:
    """``initlab ARGS`` started with a pause; ``wait()`` returns once it has paused."""

    def __init__(self, args: list[str], cwd: Path, pause: str) -> None:
        self.cwd = cwd
        self.stdout = open(cwd / "stdout.txt", "w")  # noqa: SIM115  closed in finish()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "initlab", *args], cwd=cwd,
            env=clean_env(INITLAB_PAUSE_AT=pause), stdout=self.stdout, stderr=subprocess.PIPE,
            text=True, start_new_session=True, preexec_fn=_default_signals)
        self.err: list[str] = []
        # a guard against a hung process (it would hold the test forever), not a wait
        self.guard = threading.Timer(HANG, self.kill)
        self.guard.start()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)

    def wait(self, stage: str) -> None:
        """Read stderr until the process says it paused at ``stage``."""
        for line in self.proc.stderr:
            self.err.append(line.rstrip("\n"))
            if PAUSED.fullmatch(self.err[-1]):
                assert self.err[-1].split()[3] == stage, self.err
                return
        self.proc.wait(HANG)
        raise AssertionError(f"ended (exit {self.proc.returncode}) before pausing at "
                             f"{stage}:\n" + "\n".join(self.err))

    def signal(self, sig: int = signal.SIGINT) -> None:
        os.killpg(self.proc.pid, sig)

    def finish(self) -> tuple[int, str]:
        """(exit status, the one line after the pause lines); no other stderr line."""
        _, rest = self.proc.communicate(timeout=HANG)
        self.guard.cancel()
        self.stdout.close()
        lines = [line for line in self.err + rest.splitlines() if not PAUSED.fullmatch(line)]
        out = (self.cwd / "stdout.txt").read_text()
        assert "Traceback" not in out and "Exception ignored" not in out, out[-3000:]
        assert len(lines) == 1, "stderr:\n" + "\n".join(self.err + rest.splitlines())
        return self.proc.returncode, lines[0]


def interrupt(args: list[str], cwd: Path, pause: str, sig: int = signal.SIGINT
              ) -> tuple[int, str]:
    run = Paused(args, cwd, pause)
    try:
        run.wait(pause.split(":")[0])
        run.signal(sig)
        return run.finish()
    finally:
        run.guard.cancel()
        run.kill()


def files_are_whole(root: Path) -> None:
    """No temp file or temp report folder left; every file under a final name reads whole."""
    for path in root.rglob("*"):
        assert ".tmp" not in path.name and ".report.old" not in path.name, f"left: {path}"
        if not path.is_file():
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.name == "layers.csv":
            summary = path.parent / "summary.json"
            frame = pd.read_csv(path)
            assert len(frame) == frame["trial"].nunique() * frame["layer"].nunique(), path
            if summary.exists():
                assert len(frame) == 2 * 4, path  # trials x (depth + 1)
        elif path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".png":
            assert path.read_bytes()[-8:-4] == b"IEND", path


def _ok_jobs(sweep: Path) -> list[str]:
    return sorted(p.parent.name for p in sweep.glob("*/summary.json")
                  if json.loads(p.read_text())["status"] == "ok")


def _line(line: str, done: int, planned: int, tail: str = "report") -> Path:
    noun = "job" if planned == 1 else "jobs"
    match = re.fullmatch(rf"initlab: interrupted; {done} of {planned} {noun} finished; "
                         rf"{tail}: (/.+)", line)
    assert match, line
    return Path(match.group(1))


# --------------------------------------------------------------------------- every stage of a sweep


def test_ctrl_c_while_checking_the_arguments(tmp_path):
    code, line = interrupt(SWEEP, tmp_path, "check")
    assert code == 130
    assert line == "initlab: interrupted; no job had started"
    assert not (tmp_path / "outputs").exists()


def test_ctrl_c_while_composing_the_jobs(tmp_path):
    code, line = interrupt(SWEEP, tmp_path, "compose:2")
    assert code == 130
    sweep = only_child(tmp_path / "outputs" / "multiruns")
    assert _line(line, 0, 4, "results") == sweep.absolute()
    assert _ok_jobs(sweep) == [] and not (sweep / "report").exists()
    files_are_whole(sweep)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_while_measuring_reports_the_pass_that_finished(sig, code, tmp_path):
    """Inside the second engine pass: the first pass's two jobs are written and reported."""
    status, line = interrupt(SWEEP, tmp_path, "measure:2", sig)
    assert status == code
    sweep = only_child(tmp_path / "outputs" / "multiruns")
    assert _line(line, 2, 4) == (sweep / "report").absolute()
    assert _ok_jobs(sweep) == ["0_kaiming_tanh_depth3", "2_scaled_tanh_depth3"]
    report = (sweep / "report" / "report.md").read_text()
    assert "2 of the 4 jobs the sweep planned did not finish" in report
    files_are_whole(sweep)


def test_ctrl_c_while_writing_a_jobs_files(tmp_path):
    """The sixth file written whole is job 2's layers.parquet (job 0 wrote layers.csv,
    layers.parquet, histogram.csv, summary.json; job 2 layers.csv): stopped before its
    rename, it is not there, nor its temp file, nor job 2's summary.json."""
    code, line = interrupt(SWEEP, tmp_path, "write:6")
    assert code == 130
    sweep = only_child(tmp_path / "outputs" / "multiruns")
    assert _line(line, 1, 4) == (sweep / "report").absolute()
    assert _ok_jobs(sweep) == ["0_kaiming_tanh_depth3"]
    job2 = sweep / "2_scaled_tanh_depth3"
    assert (job2 / "layers.csv").is_file()
    assert not (job2 / "layers.parquet").exists() and not (job2 / "summary.json").exists()
    files_are_whole(sweep)


def test_ctrl_c_during_hydras_bookkeeping(tmp_path):
    """Every job's files are written before Hydra's per-job bookkeeping: all four count."""
    code, line = interrupt(SWEEP, tmp_path, "bookkeeping:2")
    assert code == 130
    sweep = only_child(tmp_path / "outputs" / "multiruns")
    assert _line(line, 4, 4) == (sweep / "report").absolute()
    assert len(_ok_jobs(sweep)) == 4
    assert (sweep / "report" / "report.md").read_text().startswith(
        f"# initlab report: {sweep.name}\n\n4 jobs: 4 ok")
    files_are_whole(sweep)


@pytest.mark.parametrize("stage", ["report", "exit"])
def test_ctrl_c_in_the_last_part_of_a_sweep_is_not_swallowed(stage, tmp_path):
    """While the report is written (built, not yet in place), and after it, before the
    process ends: still 130 and the line, never a silent exit 0."""
    code, line = interrupt(SWEEP, tmp_path, stage)
    assert code == 130
    sweep = only_child(tmp_path / "outputs" / "multiruns")
    assert _line(line, 4, 4) == (sweep / "report").absolute()
    assert (sweep / "report" / "report.html").is_file()
    files_are_whole(sweep)


def test_a_second_ctrl_c_stops_the_report_with_the_same_one_line(tmp_path):
    """The first Ctrl-C inside the second pass; the second while the report of what finished
    is being built: no report (its temp folder removed), one line, 130."""
    run = Paused(SWEEP, tmp_path, "measure:2,report")
    try:
        run.wait("measure")
        run.signal()
        run.wait("report")
        run.signal()
        code, line = run.finish()
    finally:
        run.guard.cancel()
        run.kill()
    assert code == 130
    sweep = only_child(tmp_path / "outputs" / "multiruns")
    assert _line(line, 2, 4, "no report \\(interrupted again\\); results") == sweep.absolute()
    assert not (sweep / "report").exists()
    files_are_whole(sweep)


# --------------------------------------------------------------------------- a single run


@pytest.mark.parametrize("stage,done", [("measure", 0), ("write:2", 0), ("exit", 1)])
def test_ctrl_c_on_a_single_run(stage, done, tmp_path):
    code, line = interrupt([*RUN, "report=false"], tmp_path, stage)
    assert code == 130
    run = only_child(tmp_path / "outputs" / "runs")
    assert _line(line, done, 1, "results") == run.absolute()
    assert (run / "summary.json").exists() == bool(done)
    files_are_whole(run)


def test_sigterm_on_a_single_run_writes_its_report_once_it_finished(tmp_path):
    code, line = interrupt(RUN, tmp_path, "report", signal.SIGTERM)
    assert code == 143
    run = only_child(tmp_path / "outputs" / "runs")
    assert _line(line, 1, 1) == (run / "report").absolute()
    files_are_whole(run)
