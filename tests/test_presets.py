"""Every preset in experiments/ (nested ones too) composes at tiny size into runnable specs.

As lightning-hydra-template's ``test_sweeps.py``: a preset that no longer
composes, or a sweep point that names a setting the schema lacks, fails here
rather than in a user's sweep. Each sweep point is composed as Hydra's basic
sweeper would launch it, and its spec runs through the engine at tiny size.
"""

from __future__ import annotations

import math

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf

from initlab import activations, config, paths, schemes
from initlab.chain import run_chain

TINY = ["depth=3", "width=8", "trials=2", "device=cpu"]


def _presets() -> list[str]:
    """Every preset as the override that selects it: experiments=X, +experiments/G=Y."""
    top = [f"experiments={name}" for name in paths.group_options("experiments")]
    nested = [f"+experiments/{group.name}={name}"
              for group in sorted(paths.experiments_dir().iterdir()) if group.is_dir()
              for name in paths.group_options(f"experiments/{group.name}")]
    return top + nested


PRESETS = _presets()


@pytest.fixture(scope="module")
def compose_with():
    config.register()
    GlobalHydra.instance().clear()
    saved = dict(schemes.SCHEMES), dict(activations.ACTIVATIONS)
    with initialize_config_dir(version_base="1.3", config_dir=str(paths.conf_dir())):
        yield lambda overrides, **kw: compose("config", overrides=list(overrides), **kw)
    GlobalHydra.instance().clear()
    for registry, before in zip((schemes.SCHEMES, activations.ACTIVATIONS), saved, strict=True):
        registry.clear()
        registry.update(before)


def sweep_points(cfg) -> list[list[str]]:
    """The override lists of a preset's sweep, as Hydra's basic sweeper expands them."""
    params = cfg.hydra.sweeper.get("params") or {}
    if cfg.hydra.mode != RunMode.MULTIRUN or not params:
        return [[]]
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return [list(point) for batch in BasicSweeper.split_arguments(parsed, None)
            for point in batch]


def test_presets_are_found():
    assert "experiments=journey" in PRESETS
    assert any(p.startswith("+experiments/journey=") for p in PRESETS)


GROUPS = ("init", "activation")


def point_config(compose_with, preset: str, point: list[str], cache: dict):
    """The config of one sweep point (the preset, the point, then the tiny size).

    A point that only picks groups (init=X activation=Y, as all_pairs' 99) is built
    from each group's node composed once: conf/init and conf/activation files hold no
    interpolation, so a node does not depend on the other group's choice.
    """
    keys = [o.split("=", 1)[0] for o in point]
    if point and all("." in k and k.split(".")[0] in (*GROUPS, "bias") for k in keys):
        # Only parameters of the preset's groups (phase_diagram's init.sigma_w2 x
        # bias.sigma_b2): set on the preset's own config, as Hydra's override would.
        if "base" not in cache:
            cache["base"] = compose_with([preset, *TINY])
        cfg = cache["base"].copy()
        for o in OverridesParser.create().parse_overrides(point):
            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=True)
        return cfg
    if not point or any(k not in GROUPS for k in keys):
        return compose_with([preset, *point, *TINY])
    if "base" not in cache:
        cache["base"] = compose_with([preset, *TINY])
    cfg = cache["base"].copy()
    for o in point:
        key = o.split("=", 1)[0]
        if o not in cache:
            cache[o] = compose_with([preset, o, *TINY])[key]
        cfg[key] = cache[o]
    return cfg


def test_group_files_hold_no_interpolation():
    """What point_config relies on."""
    for group in GROUPS:
        for path in (paths.conf_dir() / group).glob("*.yaml"):
            assert "${" not in path.read_text(), path


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_composes_into_specs_that_run(preset, compose_with):
    cfg = compose_with([preset, *TINY], return_hydra_config=True)
    points, cache, ran = sweep_points(cfg), {}, set()
    for point in points:
        job = point_config(compose_with, preset, point, cache)
        spec = config.spec_from_config(job)
        config.thresholds_from_config(job)
        assert (spec.depth, spec.width, spec.trials) == (3, 8, 2), point
        if set(point) <= ran:  # every value of this point already ran (0.2 s a run): the spec
            continue           # was built, which draws its weights once and tries the activation
        ran.update(point)
        result = run_chain(spec)
        assert result.stats["std"].shape == (2, 4)
        assert math.isfinite(float(result.stats["std"][:, 0].min()))  # the input is N(0, I)


def test_all_pairs_sweeps_every_scheme_and_activation_in_conf(compose_with):
    cfg = compose_with(["experiments=all_pairs"], return_hydra_config=True)
    points = sweep_points(cfg)
    pairs = {tuple(sorted(p)) for p in points}
    expected = {tuple(sorted([f"init={i}", f"activation={a}"]))
                for i in paths.group_options("init") for a in paths.group_options("activation")}
    assert pairs == expected
