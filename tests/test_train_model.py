"""Models trained trial by trial (initlab.train.model), and linear models reaching the
closed-form least-squares optimum (the model path and the batched chain)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from initlab.columns import STATS
from initlab.models import simple_cnn
from initlab.probing import probe
from initlab.probing.weights import prepare
from initlab.rules import SpecError
from initlab.train import ChainConfig, TrainSpec, load_data, train_chain, train_model
from initlab.train.data import batch_order

# small tensors: one torch thread each (tests/conftest.py::one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")


SHAPE = (1, 28, 28)
SPEC = TrainSpec(steps=6, batch_size=16, lr=3e-3, record_every=3, eval_every=3)


class FirstBatches:
    """The probe's inputs protocol: trial t's first training batch."""

    def __init__(self, x, batch):
        self.x, self.batch = x, batch

    def keyed(self, seed, trial):
        return self.x[batch_order(len(self.x), self.batch, 1, seed, [trial])[0, 0]]


@pytest.mark.parametrize("batchnorm", [False, True], ids=["plain", "batchnorm"])
def test_step_zero_is_the_probe_of_the_same_factory(batchnorm):
    # The same weights (prepare), the same batch, the same forward pass in train mode
    # and the same hooks and reductions: equal numbers, float32 included, against the
    # probe's loop path (its batched path, a vmapped grouped convolution, rounds float32
    # differently: 3e-8 relative measured on the last layer's mean).
    def factory():
        return simple_cnn("relu", batchnorm=batchnorm)

    data = load_data(SPEC, SHAPE)
    rec = train_model(factory, SPEC, data, trials=2, seed=4, init="kaiming", bias="zero")
    result = probe(factory, FirstBatches(data.x_train, SPEC.batch_size), trials=2, seed=4,
                   init="kaiming", bias="zero", gradients=False, batched=False)
    assert rec.layer_names == result.modules
    for name in STATS:
        np.testing.assert_allclose(rec.stats[name][:, 0], result.stats[name], rtol=1e-12,
                                   err_msg=name)
    np.testing.assert_array_equal(rec.hist[0], result.hist)
    assert rec.train_loss.shape == (2, 7) and np.isfinite(rec.grads["grad_w_std"][:, :, 1]).all()


def test_a_trial_alone_is_the_trial_in_a_run_and_runs_repeat():
    def factory():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Dropout(0.2), nn.Tanh(),
                             nn.Linear(32, 10))

    spec = TrainSpec(steps=8, batch_size=8, record_every=4, eval_every=4)
    run = train_model(factory, spec, trials=3, seed=1, input_shape=(64,))
    again = train_model(factory, spec, trials=3, seed=1, input_shape=(64,))
    alone = train_model(factory, spec, trials=[2], seed=1, input_shape=(64,))
    np.testing.assert_array_equal(run.train_loss, again.train_loss)  # dropout repeats
    np.testing.assert_array_equal(run.train_loss[2], alone.train_loss[0])
    np.testing.assert_array_equal(run.stats["std"][2], alone.stats["std"][0])
    assert not np.array_equal(run.train_loss[0], run.train_loss[1])


def test_batchnorm_trains_in_train_mode_and_is_evaluated_in_eval_mode():
    spec = TrainSpec(steps=2, batch_size=16, record_every=1, eval_every=1)
    data = load_data(spec, SHAPE)

    def factory():
        return simple_cnn("relu", batchnorm=True)

    rec = train_model(factory, spec, data, trials=1, seed=0, init="kaiming", bias="zero")
    model = prepare(factory, 0, seed=0, init="kaiming", init_params=None, bias="zero",
                    bias_params=None, device=None)
    model.eval()  # step 0: the running statistics are still mean 0, variance 1
    with torch.no_grad():
        want = F.cross_entropy(model(data.x_test), data.y_test).item()
        model.train()
        batch_stats = F.cross_entropy(model(data.x_test), data.y_test).item()
    assert rec.eval_loss[0, 0] == pytest.approx(want, rel=1e-5)
    assert abs(batch_stats - want) > 1e-3  # the modes differ: the test can tell them apart


def test_an_instance_is_restored_after_training():
    model = nn.Sequential(nn.Linear(64, 10))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rec = train_model(model, TrainSpec(steps=5, batch_size=8), trials=2, input_shape=(64,))
    assert rec.train_loss[0, -1] != rec.train_loss[0, 0]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_outputs_must_match_the_data():
    with pytest.raises(SpecError, match="the model has 3 outputs but data=digits has 10"):
        train_model(lambda: nn.Linear(64, 3), SPEC, trials=1, input_shape=(64,))


def test_progress_counts_over_trials():
    calls = []
    train_model(lambda: nn.Linear(64, 10), TrainSpec(steps=3, batch_size=8), trials=2,
                input_shape=(64,), progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 6) for i in range(1, 7)]


LSQ = {"task": "regress", "inputs": 8, "classes": 2, "samples": 600, "depth": 0,
       "noise": 0.3}


def closed_form(data) -> float:
    """The least-squares optimum with an intercept on the training set: the smallest mean
    squared error over (samples, outputs) any affine map reaches."""
    x = torch.cat([data.x_train, torch.ones(len(data.x_train), 1, dtype=data.x_train.dtype)], 1)
    solution = torch.linalg.lstsq(x, data.y_train).solution
    return float((x @ solution - data.y_train).square().mean())


@pytest.mark.numerics
def test_a_linear_model_reaches_the_closed_form_least_squares_loss():
    # Full-batch gradient descent on a convex quadratic: the loss mean_{b,j} (x_b w_j +
    # c_j - y_bj)^2 has Hessian (2 / k) [X 1]^T [X 1] / B with eigenvalues near
    # (2 / k) (1 +- sqrt(9 / 480))^2 = [0.75, 1.3] for k = 2; lr = 0.7 contracts the error
    # by |1 - 0.7 lambda| <= 0.48 a step, 1e-32 after 100 steps: the optimum to float64's
    # rounding (a relative 1e-12 allows the sums' own).
    spec = TrainSpec(steps=100, batch_size=480, optimizer="sgd", lr=0.7, data="teacher",
                     data_params=LSQ, record_every=50, eval_every=50)
    data = load_data(spec, None, torch.float64)
    best = closed_form(data)
    rec = train_model(lambda: nn.Linear(8, 2).double(), spec, data, trials=2, seed=0,
                      init="kaiming", bias="zero")
    np.testing.assert_allclose(rec.train_loss[:, -1], best, rtol=1e-12)
    assert (rec.train_loss[:, 0] > 2 * best).all()  # it started far from it
    assert np.isnan(rec.train_acc).all() and rec.verdict() == "trained"


@pytest.mark.numerics
def test_the_chain_without_activation_reaches_it_too():
    # depth 0, no activation: y = (x W_1^T + b_1) W_2^T + b_2, an affine map of rank <= 2
    # (width 16 >= 2 outputs): any affine map, so the same optimum. Non-convex, but a
    # two-layer linear network has no spurious local minima (Baldi & Hornik 1989); Adam,
    # full batch, 1000 steps reaches it to float64 rounding (measured: to the last digit).
    spec = TrainSpec(steps=1000, batch_size=480, optimizer="adam", lr=3e-2, data="teacher",
                     data_params=LSQ, record_every=500, eval_every=500)
    data = load_data(spec, None, torch.float64)
    rec = train_chain([ChainConfig(init="xavier", activation="none", width=16, depth=0)],
                      spec, data, trials=2, seed=0, dtype=torch.float64)[0]
    np.testing.assert_allclose(rec.train_loss[:, -1], closed_form(data), rtol=1e-9)
