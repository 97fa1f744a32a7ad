"""Hydra configs composed in-process (lightning-hydra-template style).

Every test composes ``conf/config.yaml`` from ``initlab.paths.conf_dir()``;
the ``experiments`` group is found through the same search-path plug-in
(hydra_plugins/initlab_searchpath) as on the command line.
"""

from __future__ import annotations

import math
from dataclasses import fields

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ValidationError

from initlab import config, paths
from initlab.activations import BUILTIN_ACTIVATIONS
from initlab.chain import run_chain
from initlab.schemes import BUILTIN_SCHEMES
from initlab.spec import ENGINE_SETTINGS, ChainSpec
from initlab.summary import REFERENCE_META, summarize
from initlab.verdict import Thresholds

INIT_OPTIONS = paths.group_options("init")
ACTIVATION_OPTIONS = paths.group_options("activation")
JOURNEY_STEPS = paths.group_options("experiments/journey")

# What each journey step claims (file name and header comment): init, activation, init.std.
# None: the scheme has no std parameter (it is derived from the width).
JOURNEY_CLAIMS = {
    "1_normal_none": ("normal", "none", 1.0),
    "2_normal_small_none": ("normal", "none", 0.01),
    "3_scaled_none": ("scaled", "none", None),
    "4_scaled_tanh": ("scaled", "tanh", None),
    "5_xavier_tanh": ("xavier", "tanh", None),
    "6_xavier_relu": ("xavier", "relu", None),
    "7_kaiming_relu": ("kaiming", "relu", None),
}


@pytest.fixture(autouse=True)
def clean_global_hydra():
    """Each test starts and ends with no Hydra instance initialized."""
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


def compose_config(*overrides: str, return_hydra_config: bool = False) -> DictConfig:
    config.register()
    with initialize_config_dir(version_base="1.3", config_dir=str(paths.conf_dir())):
        return compose(
            "config",
            overrides=list(overrides),
            return_hydra_config=return_hydra_config,
        )


@pytest.fixture(scope="module")
def summary_keys() -> set[str]:
    """The fields summary.json has (from a tiny real run)."""
    result = run_chain(ChainSpec(width=4, depth=2, trials=2, device="cpu", gradients=True))
    return set(summarize(result, Thresholds()))


def test_default_config_composes_to_the_seed_setting():
    cfg = compose_config()
    spec = config.spec_from_config(cfg)
    assert isinstance(spec, ChainSpec)
    assert spec.width == 512
    assert spec.depth == 100
    assert spec.init == "kaiming"
    assert spec.activation == "relu"
    assert spec.init_params == {"mode": "fan_in", "distribution": "normal", "negative_slope": 0.0}
    assert math.isclose(spec.weight_recipe().std, math.sqrt(2 / 512))
    assert cfg.reference is None
    thresholds = config.thresholds_from_config(cfg)
    assert thresholds.vanish_std < thresholds.explode_std


def test_compose_leaves_no_global_hydra_behind():
    assert not GlobalHydra.instance().is_initialized()
    compose_config()
    assert not GlobalHydra.instance().is_initialized()


def test_schema_refuses_wrong_type():
    with pytest.raises(ConfigCompositionException, match="depth") as info:
        compose_config("depth=abc")
    assert isinstance(info.value.__cause__, ValidationError)
    assert "could not be converted to Integer" in str(info.value.__cause__)


def test_schema_refuses_unknown_key():
    with pytest.raises(ConfigCompositionException, match="foo") as info:
        compose_config("foo=1")
    assert isinstance(info.value.__cause__, ConfigAttributeError)


def test_command_line_defaults_are_the_spec_defaults():
    """One set of defaults: conf/config.yaml composes to exactly ChainSpec's own."""
    cfg = compose_config()
    defaults = {f.name: f.default for f in fields(ChainSpec)}
    assert (defaults["trials"], defaults["device"], defaults["gradients"]) == (16, "auto", True)
    for name in ENGINE_SETTINGS:
        assert cfg[name] == defaults[name], f"conf/config.yaml {name}={cfg[name]!r}"
    schema = {f.name: f.default for f in fields(config.Config)}
    assert {name: schema[name] for name in ENGINE_SETTINGS} == {
        name: defaults[name] for name in ENGINE_SETTINGS}


def test_every_engine_setting_reaches_the_spec():
    """spec_from_config carries each setting: set every one to a non-default value."""
    changed = {"depth": 3, "width": 5, "trials": 2, "batch": 4, "input_correlation": 0.25,
               "seed": 7, "dtype": "float64",
               "weights": "shared", "device": "cpu", "gradients": False, "keep_fraction": 0.5}
    assert set(changed) == set(ENGINE_SETTINGS)  # a new setting must be added here too
    defaults = ChainSpec(trials=16, gradients=True, device="auto")
    assert all(getattr(defaults, k) != v for k, v in changed.items())
    spec = config.spec_from_config(compose_config(*(f"{k}={v}" for k, v in changed.items())))
    assert {k: getattr(spec, k) for k in changed} == changed
    # and describe() names every one of them, so the report can tell the jobs apart
    assert {k: spec.describe()[k] for k in changed} == changed


def test_groups_are_not_empty():
    assert INIT_OPTIONS
    assert ACTIVATION_OPTIONS
    assert len(JOURNEY_STEPS) >= 2


@pytest.mark.parametrize("option", INIT_OPTIONS)
def test_every_init_option_composes_into_a_valid_spec(option):
    cfg = compose_config(f"init={option}")
    assert cfg.init.name == option, f"conf/init/{option}.yaml names the scheme {cfg.init.name}"
    spec = config.spec_from_config(cfg)
    assert spec.init == option
    assert spec.activation == "relu"
    # The file's parameters reach the spec (None means "the scheme's default" and is dropped).
    params = {k: v for k, v in OmegaConf.to_container(cfg.init).items()
              if k not in ("name", "_target_", "params")}
    assert spec.init_params == {k: v for k, v in params.items() if v is not None}
    assert spec.weight_recipe().std >= 0


@pytest.mark.parametrize("option", ACTIVATION_OPTIONS)
def test_every_activation_option_composes_into_a_valid_spec(option):
    cfg = compose_config(f"activation={option}")
    assert cfg.activation.name == option
    spec = config.spec_from_config(cfg)
    assert spec.activation == option
    assert spec.init == "kaiming"


def test_init_options_are_exactly_the_schemes():
    assert set(INIT_OPTIONS) == set(BUILTIN_SCHEMES)


def test_activation_options_are_exactly_the_activations():
    assert set(ACTIVATION_OPTIONS) == set(BUILTIN_ACTIVATIONS)


def test_journey_claims_cover_every_step_file():
    assert set(JOURNEY_STEPS) == set(JOURNEY_CLAIMS)


@pytest.mark.parametrize("step", JOURNEY_STEPS)
def test_journey_step_composes_to_what_it_claims(step, summary_keys):
    init, activation, std = JOURNEY_CLAIMS[step]
    cfg = compose_config(f"+experiments/journey={step}")
    spec = config.spec_from_config(cfg)
    assert spec.init == init
    assert spec.activation == activation
    assert cfg.init.get("std") == std
    assert spec.init_params.get("std") == std
    # The seed's chain: 100 layers of 512 units.
    assert (spec.depth, spec.width) == (100, 512)

    reference = config.reference_from_config(cfg)  # measured_on checked and taken out
    assert isinstance(reference, dict)
    assert isinstance(reference.get("source"), str) and reference["source"].strip()
    quantities = set(reference) - set(REFERENCE_META)
    assert quantities, f"{step} reports no number to compare"
    assert quantities <= summary_keys, (
        f"{step}: not summary.json fields: {quantities - summary_keys}"
    )


def test_journey_step_1_uses_a_512_by_512_input():
    cfg = compose_config("+experiments/journey=1_normal_none")
    assert config.spec_from_config(cfg).batch == 512


def test_journey_preset_sweeps_every_step():
    cfg = compose_config("experiments=journey", return_hydra_config=True)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    swept = str(cfg.hydra.sweeper.params["+experiments/journey"]).split(",")
    assert [s.strip() for s in swept] == JOURNEY_STEPS
    spec = config.spec_from_config(cfg)
    assert (spec.depth, spec.width) == (100, 512)


def test_relu_moments_preset(summary_keys):
    cfg = compose_config("experiments=relu_moments")
    spec = config.spec_from_config(cfg)
    assert spec.depth == 1
    assert spec.trials == 10000
    assert spec.init == "normal"
    assert spec.init_params == {"std": 1.0}
    assert spec.activation == "relu"
    assert spec.batch == 1
    reference = config.reference_from_config(cfg)
    assert reference["source"].strip()
    quantities = set(reference) - set(REFERENCE_META)
    assert quantities and quantities <= summary_keys


def test_preset_can_be_overridden_on_the_command_line():
    cfg = compose_config("experiments=relu_moments", "trials=7")
    assert config.spec_from_config(cfg).trials == 7


LAUNCHERS = {"parallel": "JoblibLauncher", "local": "LocalLauncher", "slurm": "SlurmLauncher"}


@pytest.mark.parametrize("preset", sorted(LAUNCHERS))
def test_launcher_presets_reach_the_launcher(preset):
    """What Hydra's launcher object receives: the preset file's settings, plus a command line's."""
    cfg = compose_config(f"hydra/launcher={preset}", return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == LAUNCHERS[preset]
    # submitit launchers keep their settings in .params, the joblib launcher in .joblib
    received = getattr(launcher, "params", None) or launcher.joblib
    written = OmegaConf.load(paths.conf_dir() / "hydra" / "launcher" / f"{preset}.yaml")
    for key, value in written.items():
        if key != "defaults":
            assert received[key] == value, f"{preset}.yaml {key}={value!r}, launcher {received}"


def test_slurm_partition_from_the_command_line_reaches_submitit():
    cfg = compose_config("hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                         return_hydra_config=True)
    params = instantiate(cfg.hydra.launcher).params
    assert params["partition"] == "gpu"
    assert params["submitit_folder"].startswith(str(cfg.hydra.sweep.dir))


def test_sweeps_start_a_bounded_number_of_jobs_at_once():
    cfg = compose_config("hydra/launcher=submitit_local", return_hydra_config=True)
    assert 1 <= cfg.hydra.sweeper.max_batch_size <= 16


def test_report_callback_is_configured_and_can_be_turned_off():
    cfg = compose_config("report=false", return_hydra_config=True)
    callback = cfg.hydra.callbacks.report
    assert callback._target_ == "initlab.callbacks.ReportCallback"
    assert callback.enabled is False
    assert compose_config(return_hydra_config=True).hydra.callbacks.report.enabled is True
