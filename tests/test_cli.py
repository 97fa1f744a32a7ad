"""The command line: files of a job, bad input, determinism, wheel install.

Bad input is checked in-process (``initlab.app.main([...])``, stderr captured):
it ends before Hydra starts, so a subprocess would test nothing more than
start-up. A few cases run as real subprocesses, to prove the console script
and ``python -m initlab`` give the same one line. The multirun file tests read
the session's shared ``tiny_sweep`` (tests/conftest.py) instead of running one.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import (
    SWEEP_ACTS,
    SWEEP_INITS,
    SWEEP_SIZE,
    clean_env,
    job_dirs,
    main_in_process,
    ok,
    only_child,
    run_initlab,
)
from omegaconf import OmegaConf

import initlab.paths
from initlab import schemes

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "initlab"
JOB_FILES = ("layers.csv", "layers.parquet", "summary.json", "histogram.csv")
FIGURES = ("std_by_layer.png", "mean_by_layer.png")  # a single run's (plots=auto), not a sweep's
SUMMARY_KEYS = ("init", "activation", "depth", "width", "trials", "seed", "device", "dtype",
                "verdict", "verdict_layer", "first_nonfinite_layer", "final_mean", "final_std",
                "verdict_counts", "settings")
#: The file contract, stated independently of initlab.store.
LAYER_COLUMNS = ("init", "activation", "depth", "width", "trial", "layer", "mean", "std", "rms",
                 "zero_frac", "abs_max", "finite")
DEPTH, WIDTH, TRIALS = SWEEP_SIZE["depth"], SWEEP_SIZE["width"], SWEEP_SIZE["trials"]


def run_script(args, cwd: Path, timeout=120) -> subprocess.CompletedProcess:
    """The ``initlab`` console script next to the interpreter, in ``cwd``."""
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, env=clean_env(), capture_output=True,
                          text=True, timeout=timeout)


def tmp_files(root: Path) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files
            if f.endswith(".tmp")]


# --------------------------------------------------------------------------- multirun


@pytest.fixture(scope="module")
def sweep_jobs(tiny_sweep) -> dict[tuple[str, str], Path]:
    return job_dirs(tiny_sweep)


def test_multirun_has_one_job_per_combination(tiny_sweep, sweep_jobs):
    assert set(sweep_jobs) == set(itertools.product(SWEEP_INITS, SWEEP_ACTS))
    assert not (tiny_sweep.parents[1] / "runs").exists()


def test_multirun_job_files(sweep_jobs):
    for job in sweep_jobs.values():
        for name in JOB_FILES:
            path = job / name
            assert path.is_file() and path.stat().st_size > 0, f"missing {path}"
        assert not list(job.glob("*.png"))  # plots=auto: a sweep's report draws every job


def test_multirun_leaves_no_temp_files(tiny_sweep):
    assert tmp_files(tiny_sweep) == []


@pytest.mark.parametrize("init,activation", list(itertools.product(SWEEP_INITS, SWEEP_ACTS)))
def test_multirun_layers_table(sweep_jobs, init, activation):
    job = sweep_jobs[(init, activation)]
    csv = pd.read_csv(job / "layers.csv")
    assert len(csv) == TRIALS * (DEPTH + 1)
    for column in LAYER_COLUMNS:
        assert column in csv.columns, f"layers.csv lacks {column}"
    pairs = sorted(zip(csv["trial"], csv["layer"], strict=True))
    assert pairs == list(itertools.product(range(TRIALS), range(DEPTH + 1)))
    assert set(csv["init"]) == {init}
    assert set(csv["activation"]) == {activation}
    assert set(csv["depth"]) == {DEPTH}
    assert set(csv["width"]) == {WIDTH}
    assert csv["finite"].all()

    parquet = pd.read_parquet(job / "layers.parquet")
    assert list(parquet.columns) == list(csv.columns)
    # CSV holds each float's shortest repr; pandas' default (fast) parser reads it back within
    # a few ulps (~1e-16 relative), so 1e-12 leaves four orders of margin and still catches
    # any lost digit.
    pd.testing.assert_frame_equal(csv.reset_index(drop=True), parquet.reset_index(drop=True),
                                  check_dtype=False, check_exact=False, rtol=1e-12, atol=0)


@pytest.mark.parametrize("init,activation", list(itertools.product(SWEEP_INITS, SWEEP_ACTS)))
def test_multirun_summary(sweep_jobs, init, activation):
    summary = json.loads((sweep_jobs[(init, activation)] / "summary.json").read_text())
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    assert not missing, f"summary.json lacks {missing}"
    assert (summary["init"], summary["activation"]) == (init, activation)
    assert (summary["depth"], summary["width"], summary["trials"]) == (DEPTH, WIDTH, TRIALS)
    assert summary["seed"] == 0
    assert summary["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert summary["dtype"] == "float32"
    assert sum(summary["verdict_counts"].values()) == TRIALS
    assert summary["first_nonfinite_layer"] is None
    # The full settings, as asked for on the command line (the defaults: gradients, device auto).
    settings = summary["settings"]
    assert (settings["init"], settings["activation"], settings["depth"]) == (init, activation,
                                                                             DEPTH)
    assert (settings["gradients"], settings["device"]) == (True, "auto")
    if init == "zero":
        assert summary["verdict"] == "vanished"
        assert summary["verdict_layer"] == 1
        assert summary["final_std"] == 0.0


def test_zero_init_signal_is_gone_after_layer_0(sweep_jobs):
    csv = pd.read_csv(sweep_jobs[("zero", "relu")] / "layers.csv")
    assert (csv.loc[csv["layer"] == 0, "std"] > 0).all()
    after = csv[csv["layer"] >= 1]
    assert (after["std"] == 0).all()
    assert (after["zero_frac"] == 1).all()


# --------------------------------------------------------------------------- single run


def test_single_run_lands_under_outputs_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = main_in_process(["depth=2", f"width={WIDTH}", "trials=1", "plots=false",
                                 "report=false"], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    job = only_child(tmp_path / "outputs" / "runs")
    assert not (tmp_path / "outputs" / "multiruns").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["outputs"]
    for name in ("layers.csv", "layers.parquet", "summary.json"):
        assert (job / name).is_file()
    assert not (job / "std_by_layer.png").exists()  # plots=false
    summary = json.loads((job / "summary.json").read_text())
    assert (summary["init"], summary["activation"]) == ("kaiming", "relu")
    assert (summary["depth"], summary["trials"]) == (2, 1)
    assert len(pd.read_csv(job / "layers.csv")) == 1 * (2 + 1)
    assert tmp_files(tmp_path) == []


@pytest.mark.parametrize("args,drawn", [([], True), (["-m", "plots=true"], True),
                                        (["-m"], False), (["plots=false"], False)])
def test_plots_auto_draws_a_single_runs_figures_not_a_sweeps(tmp_path, monkeypatch, capsys,
                                                             args, drawn):
    monkeypatch.chdir(tmp_path)
    code, err = main_in_process([*args, "depth=2", f"width={WIDTH}", "trials=1",
                                 "report=false"], capsys)
    assert code == 0, err
    (summary,) = (tmp_path / "outputs").glob("*/*/**/summary.json")
    for png in FIGURES:
        path = summary.parent / png
        assert path.exists() == drawn, path
        assert not drawn or path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_same_command_gives_identical_tables(tmp_path):
    """Determinism, through both entry points (the console script and ``python -m``)."""
    args = ["init=xavier", "activation=tanh", "depth=4", "width=12", "trials=3", "seed=5",
            "plots=false", "report=false"]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    ok(run_script(args, a))
    ok(run_initlab(args, b))
    first = (only_child(a / "outputs" / "runs") / "layers.csv").read_text()
    second = (only_child(b / "outputs" / "runs") / "layers.csv").read_text()
    assert len(first.splitlines()) == 1 + 3 * (4 + 1)
    assert first == second  # the same process code on the same machine: bit for bit


# --------------------------------------------------------------------------- bad input


def _params(fn) -> list[str]:
    """Keyword parameters of a scheme, read from its signature (not from initlab's lists)."""
    return [p for p in inspect.signature(fn).parameters if p not in ("fan_in", "fan_out")]


INIT_FILES = initlab.paths.group_options("init")
ACTIVATION_FILES = initlab.paths.group_options("activation")

# args -> substrings the one error line must contain (the bad value, and what is allowed)
BAD_INPUT = {
    "init=foo": ["foo", *INIT_FILES],
    "activation=swish": ["swish", *ACTIVATION_FILES],
    "depth=0": ["depth=0", ">= 1"],
    "width=0": ["width=0", ">= 2", "two"],
    "width=1": ["width=1", ">= 2", "two"],
    "width=-3": ["width=-3", ">= 2"],
    "trials=0": ["trials=0", ">= 1"],
    "depth=abc": ["depth", "abc", "integer"],
    "-m depth=10,0": ["depth=0", ">= 1"],
    "-m init=kaiming,bogus": ["bogus", *INIT_FILES],
    "dtype=float16": ["float16", "float32", "float64"],
    "weights=sometimes": ["sometimes", "fresh", "shared"],
    "device=cuda": ["cuda", "cpu"],
    "experiments=nope": ["nope", *initlab.paths.group_options("experiments")],
    "foo=1": ["foo", "width", "depth", "init"],
    "init.std=0.5": ["std", "0.5", "kaiming", "mode"],
    "init=normal init.std=-1": ["init.std=-1", ">= 0"],
    # A group swept beside a scheme parameter: only the second scheme refuses init.std,
    # and it must be refused before job 0 runs (every combination is checked up front).
    "-m init=normal,kaiming init.std=0.5 depth=2 width=8 trials=1": ["init.std=0.5", "kaiming"],
    "-m depth=10,abc": ["depth='abc'", "integer"],
    "init=normal init.std=inf": ["init.std=inf", "finite"],
    "init=normal +init.params.std=0.01": ["init.params.std", "init.std"],
    "experiments=custom init.params.std=abc": ["init=trunc_normal", "wrong type"],
    "experiments=custom activation.params.min_val=abc": ["activation=hardtanh"],
    "activation=leaky_relu activation.negative_slope=abc": ["negative_slope", "number"],
    "thresholds.explode_std=inf": ["explode_std=inf", "finite"],
    "progress=maybe": ["progress='maybe'", "auto"],
    "+foo=1": ["+foo", "settings are"],
    "-m thresholds.explode_std=100,1 thresholds.vanish_std=1e-4,10 depth=2 width=8": [
        "vanish_std=10.0", "explode_std=1"],
    "plots=maybe": ["plots='maybe'", "auto, true, false"],
    "init=xavier init.gain=-1": ["init.gain=-1", "> 0"],
    # Faults found by the adversarial pass (issue 8, section 2).
    "seed=18446744073709551616": ["seed=18446744073709551616", "seed", "2**63"],
    "seed=-1": ["seed=-1", "2**63"],
    "~depth": ["~depth", "depth="],
    "init.foo=1": ["init.foo=1", "kaiming", *_params(schemes.kaiming)],
    "init=normal init.foo=1": ["init.foo=1", "normal", *_params(schemes.normal)],
    "activation=leaky_relu activation.foo=1": ["activation.foo=1", "negative_slope"],
    "thresholds.foo=1": ["thresholds.foo", "explode_std", "vanish_std"],
    "init.params.foo=1": ["init.params.foo", "+init.params.foo="],
    "-m depth=3 --info": ["--multirun", "--info", "one of"],
    "-m depth=2,3 hydra/launcher=nope": ["hydra/launcher=nope", "basic", "fused", "slurm"],
    "+activation._target_=torch.tanh": ["torch.tanh", "relu", "activation.name"],
    "init.name=mine init._target_=no_such_module_xyz.fill_": ["no_such_module_xyz"],
    "activation.name=mine activation._target_=torch.no_such_fn": ["torch", "no_such_fn"],
}
# What the one line must NOT say: init.foo lists init's parameters, not the top-level settings.
NOT_IN_LINE = {"init.foo=1": ["trials", "gradients"], "thresholds.foo=1": ["trials"]}


def _bad_param(case: str):
    marks = []
    if case == "device=cuda":
        marks.append(pytest.mark.skipif(torch.cuda.is_available(),
                                        reason="CUDA is available here: device=cuda is valid"))
    return pytest.param(case, marks=marks, id=case)


@pytest.mark.parametrize("case", [_bad_param(c) for c in BAD_INPUT])
def test_bad_input_is_one_line_and_no_job(case, tmp_path, monkeypatch, capsys, registries):
    monkeypatch.chdir(tmp_path)
    code, err = main_in_process(case.split(), capsys)
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, f"stderr has {len(lines)} lines:\n{err}"
    line = lines[0]
    assert line.startswith("initlab: error: "), line
    for part in BAD_INPUT[case]:
        assert part.lower() in line.lower(), f"{part!r} not in {line!r}"
    for part in NOT_IN_LINE.get(case, ()):
        assert part not in line, f"{part!r} in {line!r}"
    assert list(tmp_path.iterdir()) == [], f"{case} created {list(tmp_path.iterdir())}"


@pytest.mark.slow
@pytest.mark.parametrize("case,runner", [("depth=0", "script"), ("-m depth=10,abc", "module")])
def test_bad_input_through_the_console_script(case, runner, tmp_path, capsys):
    """The same one line from a real process, as in-process (console script and python -m)."""
    proc = run_script(case.split(), tmp_path) if runner == "script" else \
        run_initlab(case.split(), tmp_path)
    code, err = main_in_process(case.split(), capsys)
    assert proc.returncode == code == 2, proc.stderr
    assert proc.stderr == err
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- config location


def test_source_checkout_reads_the_repository_configs():
    """Editable install / checkout: configs come from the repo root, edits apply at once."""
    assert initlab.paths.config_root() == REPO
    assert not (REPO / "initlab" / "_config").exists()
    assert initlab.paths.conf_dir() == REPO / "conf"
    assert initlab.paths.experiments_dir() == REPO / "experiments"


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory) -> Path:
    """initlab built as a normal wheel (hatchling, in-process: no pip) and unpacked."""
    builder = pytest.importorskip(
        "hatchling.builders.wheel",
        reason="hatchling (the build backend) is not installed; install initlab[test]")
    out = tmp_path_factory.mktemp("wheel")
    (wheel,) = (Path(p) for p in builder.WheelBuilder(str(REPO)).build(
        directory=str(out), versions=["standard"]))
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    return target


def test_wheel_carries_its_configs_and_plugins(unpacked_wheel):
    root = unpacked_wheel / "initlab" / "_config"
    for group in ("init", "activation"):
        assert {p.stem for p in (root / "conf" / group).glob("*.yaml")} == set(
            initlab.paths.group_options(group))
    assert (root / "conf" / "config.yaml").is_file()
    assert (root / "experiments" / "journey.yaml").is_file()
    assert {p.stem for p in (root / "experiments" / "journey").glob("*.yaml")} == set(
        initlab.paths.group_options("experiments/journey"))
    plugins = unpacked_wheel / "hydra_plugins"
    assert (plugins / "initlab_searchpath" / "initlab_searchpath.py").is_file()
    assert (plugins / "initlab_launcher" / "fused_launcher.py").is_file()


@pytest.mark.slow
def test_wheel_install_runs_a_preset_from_any_directory(unpacked_wheel, tmp_path):
    """One process from the wheel: configs from its _config, a preset found on the search path."""
    code = ("import sys, initlab, initlab.paths; print(initlab.__file__); "
            "print(initlab.paths.config_root()); sys.stdout.flush(); "
            "from initlab.app import main; main(sys.argv[1:])")
    args = ["experiments=relu_moments", "trials=2", "width=8", "reference=null", "plots=false",
            "report=false"]  # the reference is of width 512
    proc = ok(subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path,
                             env=clean_env(PYTHONPATH=str(unpacked_wheel)),
                             capture_output=True, text=True, timeout=120))
    module_file, config_root = (Path(line) for line in proc.stdout.split("\n")[:2])
    wheel_root = unpacked_wheel.resolve()
    assert module_file.resolve().is_relative_to(wheel_root)
    assert config_root.resolve() == wheel_root / "initlab" / "_config"

    job = only_child(tmp_path / "outputs" / "runs")
    summary = json.loads((job / "summary.json").read_text())
    assert (summary["depth"], summary["trials"], summary["init"]) == (1, 2, "normal")  # preset
    # Hydra records where the configs came from: the wheel's copies, not the repository.
    hydra = OmegaConf.load(job / ".hydra" / "hydra.yaml")
    sources = {s.provider: s.path for s in hydra.hydra.runtime.config_sources}
    assert Path(sources["main"]).resolve() == wheel_root / "initlab" / "_config" / "conf"
    assert Path(sources["initlab-experiments"]).resolve() == config_root.resolve()
    assert not Path(sources["main"]).resolve().is_relative_to(REPO)


# --------------------------------------------------------------------------- one settings model


@pytest.mark.parametrize("launcher", ["basic", "fused"])
def test_a_gradients_sweep_gives_jobs_the_report_can_tell_apart(launcher, tmp_path, monkeypatch,
                                                                capsys):
    monkeypatch.chdir(tmp_path)
    code, err = main_in_process(["-m", f"hydra/launcher={launcher}", "gradients=true,false",
                                 "depth=2", "width=8", "trials=2", "plots=false", "report=false"],
                                capsys)
    assert code == 0, err
    sweep = only_child(tmp_path / "outputs" / "multiruns")
    settings = [json.loads(p.read_text())["settings"] for p in sorted(sweep.glob("*/summary.json"))]
    assert sorted(s["gradients"] for s in settings) == [False, True]
    differ = {k for k in settings[0] if settings[0][k] != settings[1][k]}
    assert differ == {"gradients"}
