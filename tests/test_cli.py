"""The console script, run as a subprocess: files of a job, bad input, determinism, wheel install.

Every command runs with its own empty working directory, so Hydra's
``outputs/`` lands under pytest's tmp_path. Sizes are tiny: the file runs in
well under a minute on two cores.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

import initlab.paths
from initlab.activations import BUILTIN_ACTIVATIONS
from initlab.schemes import BUILTIN_SCHEMES

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "initlab"
JOB_FILES = (
    "layers.csv",
    "layers.parquet",
    "summary.json",
    "std_by_layer.png",
    "mean_by_layer.png",
)
LAYER_COLUMNS = (
    "init",
    "activation",
    "depth",
    "width",
    "trial",
    "layer",
    "mean",
    "std",
    "rms",
    "zero_frac",
    "abs_max",
    "finite",
)
SUMMARY_KEYS = (
    "init",
    "activation",
    "depth",
    "width",
    "trials",
    "seed",
    "device",
    "dtype",
    "verdict",
    "verdict_layer",
    "first_nonfinite_layer",
    "final_mean",
    "final_std",
    "verdict_counts",
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(extra)
    return env


def run_module(args, cwd: Path, env=None, timeout=120) -> subprocess.CompletedProcess:
    """``python -m initlab ARGS`` in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "initlab", *args],
        cwd=cwd,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_script(args, cwd: Path, timeout=120) -> subprocess.CompletedProcess:
    """The ``initlab`` console script next to the interpreter, in ``cwd``."""
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


def tmp_files(root: Path) -> list[str]:
    return [
        os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.endswith(".tmp")
    ]


def only_child(folder: Path) -> Path:
    children = [p for p in folder.iterdir() if p.is_dir()]
    assert len(children) == 1, f"expected one folder in {folder}, found {children}"
    return children[0]


# --------------------------------------------------------------------------- multirun

SWEEP_INITS = ("zero", "scaled", "kaiming")
SWEEP_ACTS = ("none", "relu")
DEPTH, WIDTH, TRIALS = 3, 16, 2


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """One small multirun; returns its working directory."""
    cwd = tmp_path_factory.mktemp("sweep")
    ok(
        run_module(
            [
                "-m",
                f"init={','.join(SWEEP_INITS)}",
                f"activation={','.join(SWEEP_ACTS)}",
                f"depth={DEPTH}",
                f"width={WIDTH}",
                f"trials={TRIALS}",
                "plots=true",
            ],
            cwd,
        )
    )
    return cwd


@pytest.fixture(scope="module")
def sweep_jobs(sweep) -> dict[tuple[str, str], Path]:
    """(init, activation) -> job directory, read from each job's summary.json."""
    stamp = only_child(sweep / "outputs" / "multiruns")
    jobs = {}
    for job in sorted(p for p in stamp.iterdir() if p.is_dir() and p.name != "report"):
        summary = json.loads((job / "summary.json").read_text())
        key = (summary["init"], summary["activation"])
        assert key not in jobs, f"two jobs for {key}: {jobs.get(key)} and {job}"
        jobs[key] = job
    return jobs


@pytest.mark.slow
def test_multirun_has_one_job_per_combination(sweep, sweep_jobs):
    assert set(sweep_jobs) == set(itertools.product(SWEEP_INITS, SWEEP_ACTS))
    assert not (sweep / "outputs" / "runs").exists()


@pytest.mark.slow
def test_multirun_job_files(sweep_jobs):
    for job in sweep_jobs.values():
        for name in JOB_FILES:
            path = job / name
            assert path.is_file() and path.stat().st_size > 0, f"missing {path}"
        for png in ("std_by_layer.png", "mean_by_layer.png"):
            assert (job / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_multirun_leaves_no_temp_files(sweep):
    assert tmp_files(sweep) == []


@pytest.mark.slow
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
    pd.testing.assert_frame_equal(
        csv.reset_index(drop=True),
        parquet.reset_index(drop=True),
        check_dtype=False,
        check_exact=False,
        rtol=1e-12,
        atol=0,
    )


@pytest.mark.slow
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
    if init == "zero":
        assert summary["verdict"] == "vanished"
        assert summary["verdict_layer"] == 1
        assert summary["final_std"] == 0.0
    if (init, activation) == ("kaiming", "relu"):
        assert summary["verdict"] == "stable"
        assert summary["verdict_layer"] is None


@pytest.mark.slow
def test_zero_init_signal_is_gone_after_layer_0(sweep_jobs):
    csv = pd.read_csv(sweep_jobs[("zero", "relu")] / "layers.csv")
    assert (csv.loc[csv["layer"] == 0, "std"] > 0).all()
    after = csv[csv["layer"] >= 1]
    assert (after["std"] == 0).all()
    assert (after["zero_frac"] == 1).all()


# --------------------------------------------------------------------------- single run


@pytest.mark.slow
def test_single_run_lands_under_outputs_runs(tmp_path):
    proc = ok(run_script(["depth=2", f"width={WIDTH}", "trials=1", "plots=false"], tmp_path))
    assert "Traceback" not in proc.stdout + proc.stderr
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


@pytest.mark.slow
def test_same_command_gives_identical_tables(tmp_path):
    """Determinism, through both entry points (the console script and ``python -m``)."""
    args = [
        "init=xavier",
        "activation=tanh",
        "depth=4",
        "width=12",
        "trials=3",
        "seed=5",
        "plots=false",
    ]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    ok(run_script(args, a))
    ok(run_module(args, b))
    first = (only_child(a / "outputs" / "runs") / "layers.csv").read_text()
    second = (only_child(b / "outputs" / "runs") / "layers.csv").read_text()
    assert len(first.splitlines()) == 1 + 3 * (4 + 1)
    assert first == second


# --------------------------------------------------------------------------- bad input

# args -> substrings the one error line must contain (the bad value, and what is allowed)
BAD_INPUT = {
    "init=foo": ["foo", *BUILTIN_SCHEMES],
    "activation=swish": ["swish", *BUILTIN_ACTIVATIONS],
    "depth=0": ["depth=0", ">= 1"],
    "width=0": ["width=0", ">= 1"],
    "trials=0": ["trials=0", ">= 1"],
    "width=-3": ["width=-3", ">= 1"],
    "depth=abc": ["depth", "abc", "integer"],
    "-m depth=10,0": ["depth=0", ">= 1"],
    "-m init=kaiming,bogus": ["bogus", *BUILTIN_SCHEMES],
    "dtype=float16": ["float16", "float32", "float64"],
    "weights=sometimes": ["sometimes", "fresh", "shared"],
    "device=cuda": ["cuda", "cpu"],
    "experiments=nope": ["nope", "journey", "relu_moments"],
    "foo=1": ["foo", "width", "depth", "init"],
    "init.std=0.5": ["std", "0.5", "kaiming", "mode"],
    "init=normal init.std=-1": ["init.std=-1", ">= 0"],
}
# A group swept beside a scheme parameter: only the second scheme refuses init.std,
# and it must be refused before job 0 runs (every combination is checked up front).
GROUP_SWEEP_CASE = "-m init=normal,kaiming init.std=0.5 depth=2 width=8 trials=1 plots=false"
BAD_INPUT[GROUP_SWEEP_CASE] = ["init.std=0.5", "kaiming"]
BAD_INPUT["-m depth=10,abc"] = ["depth='abc'", "integer"]
BAD_INPUT["width=1"] = ["width=1", ">= 2"]
BAD_INPUT["init=normal init.std=inf"] = ["init.std=inf", "finite"]
BAD_INPUT["init=normal +init.params.std=0.01"] = ["init.params.std", "init.std"]
BAD_INPUT["experiments=custom init.params.std=abc"] = ["init=trunc_normal", "wrong type"]
BAD_INPUT["experiments=custom activation.params.min_val=abc"] = ["activation=hardtanh"]
BAD_INPUT["activation=leaky_relu activation.negative_slope=abc"] = ["negative_slope", "number"]
BAD_INPUT["thresholds.explode_std=inf"] = ["explode_std=inf", "finite"]
BAD_INPUT["progress=maybe"] = ["progress='maybe'", "auto"]
BAD_INPUT["+foo=1"] = ["+foo", "settings are"]
BAD_INPUT["-m thresholds.explode_std=100,1 thresholds.vanish_std=1e-4,10 depth=2 width=8"] = [
    "vanish_std=10.0", "explode_std=1"]
BAD_INPUT["plots=maybe"] = ["plots='maybe'", "true or false"]
BAD_INPUT["init=xavier init.gain=-1"] = ["init.gain=-1", "> 0"]
XFAIL: dict[str, str] = {}
# Half the cases go through the console script, half through ``python -m initlab``.
SCRIPT_CASES = set(list(BAD_INPUT)[::2])


def _bad_param(case: str):
    marks = [pytest.mark.xfail(strict=True, reason=XFAIL[case])] if case in XFAIL else []
    if case == "device=cuda":
        marks.append(
            pytest.mark.skipif(
                torch.cuda.is_available(), reason="CUDA is available here: device=cuda is valid"
            )
        )
    return pytest.param(case, marks=marks, id=case)


@pytest.fixture(scope="module")
def bad_runs(request, tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Run the selected bad commands at once, each in its own empty directory."""
    selected = {
        item.callspec.params["case"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_bad_input_is_one_line_and_no_job"
    }
    cases = [
        c
        for c in BAD_INPUT
        if c in selected and not (c == "device=cuda" and torch.cuda.is_available())
    ]
    cwds = {case: tmp_path_factory.mktemp("bad") for case in cases}

    def one(case: str):
        runner = run_script if case in SCRIPT_CASES else run_module
        return case, (cwds[case], runner(case.split(), cwds[case]))

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(pool.map(one, cases))


@pytest.mark.slow
@pytest.mark.parametrize("case", [_bad_param(c) for c in BAD_INPUT])
def test_bad_input_is_one_line_and_no_job(bad_runs, case):
    cwd, proc = bad_runs[case]
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Traceback" not in output
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"stderr has {len(lines)} lines:\n{proc.stderr}"
    line = lines[0]
    assert line.startswith("initlab: error: "), line
    for part in BAD_INPUT[case]:
        assert part.lower() in line.lower(), f"{part!r} not in {line!r}"
    assert list(cwd.iterdir()) == [], f"{case} created {list(cwd.iterdir())}"


# --------------------------------------------------------------------------- config location


def test_source_checkout_reads_the_repository_configs():
    """Editable install / checkout: configs come from the repo root, edits apply at once."""
    assert initlab.paths.config_root() == REPO
    assert not (REPO / "initlab" / "_config").exists()
    assert initlab.paths.conf_dir() == REPO / "conf"
    assert initlab.paths.experiments_dir() == REPO / "experiments"


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory) -> Path:
    """initlab built as a normal wheel and unpacked (as pip would install it)."""
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip(
            "hatchling (the build backend) is not installed, so the wheel cannot be built "
            "with --no-build-isolation; install initlab[test]"
        )
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "-w",
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("initlab-*.whl")
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    return target


@pytest.mark.slow
def test_wheel_carries_its_configs(unpacked_wheel):
    root = unpacked_wheel / "initlab" / "_config"
    for group in ("init", "activation"):
        assert {p.stem for p in (root / "conf" / group).glob("*.yaml")} == set(
            initlab.paths.group_options(group)
        )
    assert (root / "conf" / "config.yaml").is_file()
    assert (root / "experiments" / "journey.yaml").is_file()
    assert {p.stem for p in (root / "experiments" / "journey").glob("*.yaml")} == set(
        initlab.paths.group_options("experiments/journey")
    )


@pytest.mark.slow
def test_wheel_install_finds_configs_from_any_directory(unpacked_wheel, tmp_path):
    env = _env(PYTHONPATH=str(unpacked_wheel))
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import initlab, initlab.paths; print(initlab.__file__); "
            "print(initlab.paths.config_root())",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ok(where)
    module_file, config_root = (Path(line) for line in where.stdout.split("\n")[:2])
    wheel_root = unpacked_wheel.resolve()
    assert module_file.resolve().is_relative_to(wheel_root)
    assert config_root.resolve() == wheel_root / "initlab" / "_config"
    assert config_root.parts[-2:] == ("initlab", "_config")

    ok(run_module(["depth=2", "width=8", "trials=1"], tmp_path, env=env))
    job = only_child(tmp_path / "outputs" / "runs")
    assert (job / "layers.csv").is_file()
    assert json.loads((job / "summary.json").read_text())["depth"] == 2
    # Hydra records where the configs came from: the wheel's copy, not the repository.
    hydra = OmegaConf.load(job / ".hydra" / "hydra.yaml")
    sources = {s.provider: s.path for s in hydra.hydra.runtime.config_sources}
    assert Path(sources["main"]).resolve() == wheel_root / "initlab" / "_config" / "conf"
    assert not Path(sources["main"]).resolve().is_relative_to(REPO)

    bad = run_module(["experiments=nope"], tmp_path, env=env)
    assert bad.returncode != 0
    assert "Traceback" not in bad.stdout + bad.stderr
    assert bad.stderr.startswith("initlab: error: ")
    assert "journey" in bad.stderr and "relu_moments" in bad.stderr
