"""The batched chain trainer (initlab.train.chain): determinism, prefixes, a trial batched
equals the trial alone, every optimizer, and step 0 equals the probe's init-time statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FirstBatches

from initlab.columns import STATS
from initlab.probing import probe
from initlab.train import ChainConfig, TrainSpec, sequential, train_chain
from initlab.train.chain import model_schemes
from initlab.train.data import load_data

EPS64 = float(np.finfo(np.float64).eps)
TANH = dict(activation="tanh", bias="normal", bias_params={"sigma_b2": 0.05})


# small tensors: one torch thread each (tests/conftest.py::one_thread)
pytestmark = pytest.mark.usefixtures("one_thread")


def configs(width=16, depth=3, sigmas=(1.0, 2.5)):
    return [ChainConfig(init="scaled", init_params={"sigma_w2": s}, width=width, depth=depth,
                        **TANH) for s in sigmas]


SMALL = TrainSpec(steps=30, batch_size=16, lr=1e-2, record_every=10, eval_every=15)
TRAINING = ("train_loss", "train_acc", "eval_loss", "eval_acc")


def same_numbers(a, b) -> None:
    for name in TRAINING:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in a.stats:
        np.testing.assert_array_equal(a.stats[name], b.stats[name], err_msg=name)
    for name in a.grads:
        np.testing.assert_array_equal(a.grads[name], b.grads[name], err_msg=name)
    np.testing.assert_array_equal(a.hist, b.hist)


def test_record_shapes_and_layers():
    rec = train_chain(configs(), SMALL, trials=2, seed=0)[0]
    layers = 3 + 3  # input, 3 + 1 hidden outputs, readout
    assert rec.layer_names == ["input", "layer_1", "layer_2", "layer_3", "layer_4", "readout"]
    assert list(rec.steps_recorded) == [0, 10, 20, 30] and list(rec.eval_steps) == [0, 15, 30]
    assert rec.stats["std"].shape == (2, 4, layers) and rec.grads["grad_w_std"].shape == (2, 4,
                                                                                          layers)
    assert set(rec.stats) == {*STATS, "near_zero"} and rec.stats["finite"].dtype == bool
    assert rec.train_loss.shape == (2, 31) and rec.eval_acc.shape == (2, 3)
    assert np.isnan(rec.grads["grad_w_std"][:, :, 0]).all()  # the input has no weight
    assert np.isfinite(rec.grads["grad_w_std"][:, :, 1:]).all()
    assert np.isfinite(rec.grads["grad_x_std"]).all()
    # one histogram per step and layer over both trials: every value counted once
    assert rec.hist.shape[:2] == (4, layers)
    assert (rec.hist.sum(-1) == 2 * 16 * np.array([64, 16, 16, 16, 16, 10])).all()
    assert rec.lr.shape == (30,) and rec.settings["init_params"] == {"sigma_w2": 1.0}


def test_same_seed_same_numbers_other_seed_others():
    a = train_chain(configs(), SMALL, trials=2, seed=3)
    b = train_chain(configs(), SMALL, trials=2, seed=3)
    for x, y in zip(a, b, strict=True):
        same_numbers(x, y)
    c = train_chain(configs(), SMALL, trials=2, seed=4)[0]
    assert not np.array_equal(a[0].train_loss, c.train_loss)


@pytest.mark.numerics
def test_fewer_trials_are_a_prefix_and_a_trial_alone_is_the_trial_batched():
    # float64, 30 Adam steps. Training arithmetic is element-wise per row except the
    # matmuls, whose row-t results cannot depend on the other rows but may be summed in
    # another order by another kernel choice: each pass rounds at most (depth + 2) fan_in
    # eps64 ~ 5 * 64 * 1.1e-16 = 4e-14 relatively; over 30 steps of Adam (whose update is
    # bounded by lr) that stays far below 1e-9. Statistics are float64 reductions over
    # 16 x 16 values per row whose stacking differs: ~1e-13 at most.
    spec, dt = SMALL, torch.float64
    big = train_chain(configs(), spec, trials=4, seed=1, dtype=dt)
    small = train_chain(configs(), spec, trials=2, seed=1, dtype=dt)
    alone = train_chain(configs()[1:], spec, trials=[3], seed=1, dtype=dt)[0]
    for name in TRAINING:
        for b, s in zip(big, small, strict=True):
            np.testing.assert_allclose(getattr(s, name), getattr(b, name)[:2], rtol=1e-9,
                                       atol=1e-12, err_msg=name)
        np.testing.assert_allclose(getattr(alone, name)[0], getattr(big[1], name)[3],
                                   rtol=1e-9, atol=1e-12, err_msg=name)
    for name in ("mean", "std", "near_zero", "corr"):
        np.testing.assert_allclose(alone.stats[name][0], big[1].stats[name][3], rtol=1e-9,
                                   atol=1e-12, err_msg=name)
    for name in ("grad_x_std", "grad_w_std"):
        np.testing.assert_allclose(alone.grads[name][0], big[1].grads[name][3], rtol=1e-9,
                                   err_msg=name)
    assert not np.allclose(big[1].train_loss[3], big[1].train_loss[2])  # trials differ


@pytest.mark.numerics
@pytest.mark.parametrize("optimizer, schedule", [
    ("sgd", "constant"), ("momentum", "one_cycle"), ("adam", "one_cycle"),
    ("rmsprop", "constant"), ("rmsprop", "one_cycle")])
def test_every_optimizer_trains_a_row_as_if_alone(optimizer, schedule):
    # Two configs x two trials against each (config, trial) alone; tolerance as above.
    spec = TrainSpec(steps=12, batch_size=8, lr=3e-3, optimizer=optimizer, schedule=schedule,
                     weight_decay=1e-3, record_every=6, eval_every=6)
    group = train_chain(configs(width=8, depth=2), spec, trials=2, seed=2,
                        dtype=torch.float64)
    for c, config in enumerate(configs(width=8, depth=2)):
        for t in range(2):
            alone = train_chain([config], spec, trials=[t], seed=2, dtype=torch.float64)[0]
            np.testing.assert_allclose(alone.train_loss[0], group[c].train_loss[t],
                                       rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(alone.eval_loss[0], group[c].eval_loss[t], rtol=1e-9)
    assert group[0].train_loss[0, -1] != group[0].train_loss[0, 0]  # it did update


@pytest.mark.numerics
@pytest.mark.parametrize("config", [
    ChainConfig(init="scaled", init_params={"sigma_w2": 1.76}, width=24, depth=4, **TANH),
    ChainConfig(init="kaiming", activation="relu", bias="uniform", width=20, depth=2),
    ChainConfig(init="critical", activation="tanh", width=16, depth=3),
], ids=["tanh-scaled", "relu-kaiming", "critical"])
def test_step_zero_statistics_are_the_probes_at_init(config):
    # The probe of the equivalent nn.Sequential (prepare's weights; hooks on each
    # activation and on the readout) on each trial's first batch. Both in float64: bmm
    # and Linear sum in other orders, ~fan_in eps64 relative per layer; depth + 2 layers
    # compound to < 1e-12 on these sizes. The histogram is compared bin by bin: a value
    # moves bin only within ~1e-14 of an edge, which none of these few thousand do.
    spec = TrainSpec(steps=1, batch_size=12, record_every=1)
    data = load_data(spec, None, torch.float64)
    trials, seed = 3, 5
    rec = train_chain([config], spec, data, trials=trials, seed=seed, dtype=torch.float64)[0]
    net = sequential(config, data.features, data.outputs, torch.float64)
    readout = str(len(net) - 1)
    result = probe(lambda: sequential(config, data.features, data.outputs, torch.float64),
                   FirstBatches(data.x_train, spec.batch_size), trials=trials, seed=seed,
                   gradients=False, include=["Activation", readout], **model_schemes(config))
    assert result.stats["std"].shape == rec.stats["std"][:, 0].shape
    for name in STATS:
        want, got = result.stats[name], rec.stats[name][:, 0]
        if name == "finite":
            assert (want == got).all()
            continue
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=name)
    np.testing.assert_array_equal(rec.hist[0], result.hist)


def test_configs_of_a_group_must_share_shapes():
    with pytest.raises(ValueError, match="share width and depth"):
        train_chain([ChainConfig(width=8, depth=2), ChainConfig(width=8, depth=3)], SMALL)


def test_mixed_activations_in_one_group():
    # Row blocks with their own activation: each equals its config trained alone.
    mixed = [ChainConfig(activation="relu", width=8, depth=2),
             ChainConfig(activation="tanh", width=8, depth=2)]
    spec = TrainSpec(steps=5, batch_size=8, record_every=5, eval_every=5)
    group = train_chain(mixed, spec, trials=2, seed=0, dtype=torch.float64)
    for c in range(2):
        alone = train_chain(mixed[c:c + 1], spec, trials=2, seed=0, dtype=torch.float64)[0]
        np.testing.assert_allclose(alone.train_loss, group[c].train_loss, rtol=1e-9)
        np.testing.assert_allclose(alone.stats["zero_frac"], group[c].stats["zero_frac"])
    assert group[0].stats["zero_frac"][:, 0, 1].min() > 0.3  # ReLU zeros half its units
    assert group[1].stats["zero_frac"][:, 0, 1].max() == 0.0


def test_progress_is_called_after_every_update():
    calls = []
    train_chain(configs(), TrainSpec(steps=7, batch_size=8), trials=1,
                progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 7) for i in range(1, 8)]


def test_an_exploding_chain_records_non_finite_values_and_does_not_train():
    # N(0, 1) weights without activation, width 64: the signal grows by sqrt(64) = 8 a
    # layer, past float32's largest value (3.4e38) near layer 43; the loss is NaN from
    # step 0 on. Non-finite values are data, never raised.
    config = ChainConfig(init="normal", activation="none", width=64, depth=50)
    rec = train_chain([config], TrainSpec(steps=3, batch_size=8, record_every=1),
                      trials=2, seed=0)[0]
    finite = rec.stats["finite"][:, 0]
    assert finite[:, :40].all() and not finite[:, -1].any()
    assert np.isnan(rec.train_loss).all() and rec.verdict() == "did not train"
    assert rec.hist[0, -1, 1] > 0  # the readout's values counted as non-finite
