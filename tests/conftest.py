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


# --------------------------------------------------------------- engine test helpers


def cpu(**kw):
    """A spec with the engine settings a test must not inherit from the defaults."""
    from initlab.spec import ChainSpec

    kw.setdefault("gradients", False)
    return ChainSpec(device="cpu", **kw)


def same(a, b) -> None:
    """Exactly the same numbers (the same computation ran)."""
    import numpy as np

    for name in a.stats:
        np.testing.assert_array_equal(a.stats[name], b.stats[name], err_msg=name)
    np.testing.assert_array_equal(a.hist, b.hist)
    for name in a.grads or {}:
        np.testing.assert_array_equal(a.grads[name], b.grads[name], err_msg=name)


def assert_gradients_are_autograds(spec) -> None:
    """The engine's gradient (and final forward) statistics of a float64 tanh ``spec``
    against torch.autograd on the same chain, rebuilt from layer_weights / layer_biases /
    draw_inputs / output_gradient (whatever drawing mode is in force).

    Error argument: both sides compute the same products in possibly different orders
    (bmm vs einsum): a width-term dot product errs by ~ width * eps relatively (worst
    case), forward and backward over ``depth`` layers with gain ~ 1 each way (tanh near
    the edge), so 2 * depth * width * eps per side; x2 for both sides, x10 for tails:
    40 * depth * width * eps relative."""
    import numpy as np
    import torch

    from initlab.chain import run_chain
    from initlab.layout import draw_inputs, layer_biases, layer_weights, output_gradient

    assert spec.dtype == "float64" and spec.activation == "tanh" and spec.gradients
    depth, trials = spec.depth, spec.trials
    result = run_chain(spec)
    rtol = 40 * depth * spec.width * np.finfo(np.float64).eps
    ws = [layer_weights(spec, layer, range(trials)).requires_grad_(True)
          for layer in range(1, depth + 1)]
    bs = [layer_biases(spec, layer, range(trials)) for layer in range(1, depth + 1)]
    xs = [draw_inputs(spec, range(trials)).requires_grad_(True)]
    for w, b in zip(ws, bs, strict=True):
        xs.append(torch.tanh(torch.einsum("toi,tib->tob", w, xs[-1]) + b.unsqueeze(-1)))
        xs[-1].retain_grad()
    (xs[-1] * output_gradient(spec, range(trials))).sum().backward()
    for layer in range(depth):  # dL/dx_layer: std over units and batch per trial (n - 1)
        grad = xs[layer].grad.reshape(trials, -1)
        np.testing.assert_allclose(result.grads["grad_x_std"][:, layer],
                                   grad.std(dim=1, correction=1).numpy(), rtol=rtol, atol=0)
    for layer, w in enumerate(ws, start=1):  # dL/dW_layer: std over entries per trial
        np.testing.assert_allclose(result.grads["grad_w_std"][:, layer],
                                   w.grad.reshape(trials, -1).std(dim=1, correction=1).numpy(),
                                   rtol=rtol, atol=0)
    # The forward statistics too: the bias is in the chain that produced them.
    np.testing.assert_allclose(result.stats["std"][:, -1],
                               xs[-1].detach().reshape(trials, -1).std(dim=1).numpy(),
                               rtol=rtol, atol=0)


class FirstBatches:
    """The probe's keyed inputs (``keyed(seed, trial)``): trial t's first training batch,
    as the trainer draws it (``initlab.train.data.batch_order``)."""

    def __init__(self, x, batch):
        self.x, self.batch = x, batch

    def keyed(self, seed, trial):
        from initlab.train.data import batch_order

        return self.x[batch_order(len(self.x), self.batch, 1, seed, [trial])[0, 0]]


@pytest.fixture(scope="module")
def one_thread():
    """Small tensors gain nothing from threads, and a shared machine's other jobs make
    thread contention the largest cost (measured: test_models.py 32 s with 2 threads, 6 s
    with 1; test_probe.py 30 s and 7 s). A module asks for one thread with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
