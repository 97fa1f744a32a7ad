"""Regression-test helpers: guard an initialization's behaviour in your own CI.

    from initlab.testing import assert_stable, assert_vanishes, assert_explodes

    def test_my_init_keeps_a_deep_relu_chain_alive():
        assert_stable(init="kaiming", activation="relu", depth=100, trials=16)

    def test_pytorch_default_init_is_not_enough_for_relu():
        assert_vanishes(init="torch_default", activation="relu", by_layer=40)

    def test_two_inputs_stay_apart_on_the_edge_of_chaos():
        assert_no_collapse("init=scaled", "init.sigma_w2=1.76", "bias=normal",
                           "bias.sigma_b2=0.05", activation="tanh", depth=50)

Settings are the command line's: keyword arguments (``init``, ``activation``,
``depth``, ``width``, ``trials``, ``seed``, ``dtype``, ...; dotted ones such as
``init.std`` as ``**{"init.std": 0.01}``) or override strings exactly as typed
after ``initlab`` (``"init=normal", "init.std=0.01"``, ``"experiments=..."``).
They are composed through the same Hydra configs, so thresholds, presets and
plug-ins behave as on the command line. A failure says what was expected and
what the chain did: verdict, layer, trial counts and the std there.

The same helpers take a model instead (first argument an ``nn.Module`` or a
zero-argument factory, second its example inputs) and judge it with the probe
(``initlab.probing.probe``), over ``trials`` weight draws::

    def test_my_block_stays_stable_under_its_default_init():
        assert_stable(make_block, (64, 16, 16), trials=8)           # its own init
        assert_explodes(make_block, (64, 16, 16), init="normal")   # N(0, 1) weights
        assert_stable(make_net, images, init="kaiming", depth_window=(1, "head"))

``inputs``: a batch-first tensor, a per-sample shape (Gaussian N(0, I) inputs of
``batch`` samples, ``initlab.probing.gaussian_inputs``) or ``(generator) -> batch``.
``depth_window``: which layers the verdict judges (``initlab.probing.judge``).
Keyword arguments are the probe's (``init``, ``bias``, ``trials``, ``seed``,
``include``, ...) and the thresholds ``explode_std``/``vanish_std`` (the command
line's defaults). A failure names the model, its init, the module where the
signal went wrong and the median std there.

**Gradients** (``initlab.testing.gradients``): the same calls read the backward pass,
from dL/dx_L = g ~ N(0, I) back to the input, judged by the ratio
std(dL/dx_l) / std(dL/dx_L) against ``thresholds.grad_vanish``/``grad_explode``
(``initlab.verdict.gradient_verdicts``); a ``ChainSpec`` works too::

    def test_my_init_keeps_gradients_in_scale():
        assert_gradients_stable(init="kaiming", activation="relu", depth=50, trials=8)
        assert_gradients_vanish("init=scaled", "init.sigma_w2=0.5", activation="none",
                                depth=40, by_layer=10)
        assert_gradients_explode(make_net, (64,), init="normal", depth_window=(1, -2))

A failure names the gradient verdict, its layer, the measured ratio there (median and
10-90 % over trials) and the mean-field theory's ratio where initlab has one.

**Training** (``initlab.testing.training``): ``assert_trains(chain_or_model,
accuracy=0.8, steps=300)`` trains ``trials`` initialisations with ``initlab.train`` and
passes when the median trial's final held-out accuracy reaches ``accuracy``.
"""

from initlab.testing.forward import (
    assert_correlation,
    assert_explodes,
    assert_no_collapse,
    assert_stable,
    assert_vanishes,
    run_like_cli,
)
from initlab.testing.gradients import (
    assert_gradients_explode,
    assert_gradients_stable,
    assert_gradients_vanish,
)
from initlab.testing.training import assert_trains

__all__ = ["assert_correlation", "assert_explodes", "assert_gradients_explode",
           "assert_gradients_stable", "assert_gradients_vanish", "assert_no_collapse",
           "assert_stable", "assert_trains", "assert_vanishes", "run_like_cli"]
