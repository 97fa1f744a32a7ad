"""Check command-line overrides before Hydra launches any job.

Hydra reports a bad override with a multi-line message (and, inside a
multirun, only when that job's turn comes). Here every override — and every
job of a sweep, a preset's own swept values (``hydra.sweeper.params``) included — is
checked up front against the config groups and the ``ChainSpec``/``ModelSpec`` rules,
and the first problem becomes one ``UsageError`` line naming the bad value and what
is allowed.

Which combinations are checked: every one, except along the ``INDEPENDENT`` settings.
A value's validity can depend on another setting's value (``input_correlation`` needs
``batch >= 2``, ``model.size`` depends on ``model.depth``, a scheme's parameters on the
scheme, a bias on the dtype), so checking each value once would miss a bad pair; the
settings in ``INDEPENDENT`` are read by one rule each, on their own value alone
(``rules.seed``, ``rules.positive_int``, a choice, a boolean; not ``gradients``, which a
model's pre-flight reads with the model: ``initlab.modelcheck``), so each of their values is
checked once and the rest of the sweep's product without them. A check costs about
0.5 ms; Hydra then spends some 70 ms composing each job before it starts.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from initlab import config, paths
from initlab.rules import PLOTS, PROGRESS, SpecError
from initlab.schemakeys import check_plugin_keys, check_types, typed_param, unknown_parameter
from initlab.usage import (
    UsageError,
    no_such_parameter,
    not_an_option,
    one_line,
    text,
    tidy,
)

GROUPS = ("init", "activation", "bias", "model", "train", "experiments")
_SETTINGS = tuple(f.name for f in fields(config.Config))
#: Groups whose options set only their own node: a sweep over several of them is checked
#: by composing each option once and swapping the nodes, not by composing every combination.
SEPARABLE = ("init", "activation", "bias")
#: Settings whose validity depends on their own value alone (see the module docstring):
#: each swept value is checked once, not in every combination with the other settings.
INDEPENDENT = ("seed", "trials", "device", "keep_fraction", "plots", "progress", "report")

__all__ = ["UsageError", "check_args", "check_output_dir", "compose_overrides",
           "writable_dir"]


@dataclass
class Axis:
    """One override of the sweep: its key and the values it takes (one unless swept), as
    Python values (to set) and as an override writes them (to compose)."""

    override: Any
    values: list[Any]
    texts: list[str]

    @property
    def key(self) -> str:
        return self.override.key_or_group

    def line(self, i: int = 0) -> str:
        return f"{self.override.get_key_element()}={self.texts[i]}"

    @property
    def merges(self) -> bool:
        """A dict value merges into the node as composed, so it is set on a config composed
        without this axis (``_set``)."""
        return any(isinstance(v, dict) for v in self.values)


@dataclass
class Plan:
    """The overrides of every job: swept or chosen groups, swept settings, fixed lines, and
    keys the schema lacks (named after composing, with the chosen scheme's parameters)."""

    groups: list[Axis] = field(default_factory=list)
    scalars: list[Axis] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    unknown: list[tuple[str, Any]] = field(default_factory=list)


def check_args(argv: list[str]) -> None:
    """Raise UsageError for the first bad override in ``argv`` (Hydra's command line), or
    for the first job of the sweep it starts that would fail on its settings."""
    args = get_args_parser().parse_args(argv)
    modes = [args.run, args.cfg is not None, args.multirun, args.shell_completion,
             args.info is not None]
    if sum(map(bool, modes)) > 1:
        raise UsageError("give one of --run, --multirun (-m), --cfg, --info, "
                         "--shell-completion at a time")
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return
    overrides = _parse(args.overrides)
    plan = classify(overrides)
    with _composer() as compose_with:
        master = _master(compose_with, overrides, plan)
        params = OmegaConf.select(master, "hydra.sweeper.params") or {}
        sweeping = args.multirun or master.hydra.mode == RunMode.MULTIRUN
        listed = next((o for o in overrides if o.is_sweep_override()), None)
        if listed is not None and not sweeping:
            raise UsageError(f"{listed.input_line} lists several values, which only a sweep "
                             f"runs: add -m (initlab -m {listed.input_line} ...)")
        if params and sweeping:
            overrides = with_preset_sweep(params, overrides)
            plan = classify(overrides)
        _check_plan(plan, compose_with, overrides)


def _parse(lines: list[str], where: str = "") -> list[Any]:
    try:
        return OverridesParser.create().parse_overrides(list(lines))
    except Exception as exc:
        raise UsageError(where + one_line(exc)) from None


def _master(compose_with, overrides: list[Any], plan: Plan):
    """The config Hydra composes before a sweep (every override but the swept ones),
    with its ``hydra`` node: the preset's sweep and the run mode are read from it."""
    unknown = {key for key, _ in plan.unknown}
    lines = [o.input_line for o in overrides
             if not o.is_sweep_override() and o.key_or_group not in unknown]
    try:
        return compose_with(lines, return_hydra_config=True)
    except Exception as exc:
        raise UsageError(tidy(exc, overrides)) from None


def with_preset_sweep(params: Any, overrides: list[Any]) -> list[Any]:
    """The sweep Hydra's basic sweeper runs: ``hydra.sweeper.params`` (a preset's) first,
    then the command line's overrides, a later one of the same key replacing it in place."""
    preset = _parse([f"{k}={v}" for k, v in params.items()], "hydra.sweeper.params: ")
    merged: dict[str, Any] = {}
    for o in [*preset, *overrides]:
        if o.is_hydra_override():
            continue
        merged[o.get_key_element()] = o
    return list(merged.values())


def _values(override) -> tuple[list[Any], list[str]] | None:
    """(values, texts) of an override (one, or each of a sweep); None when not listable
    (glob(): Hydra expands it against the config, we cannot)."""
    if not override.is_sweep_override():
        return [override.value()], [override.get_value_element_as_str()]
    try:
        return list(override.sweep_iterator()), list(override.sweep_string_iterator())
    except Exception:
        return None


def classify(overrides: list[Any]) -> Plan:
    """Sort the overrides into a ``Plan``; UsageError for a group option that does not
    exist, a deletion, or a ``+key`` the schema lacks."""
    plan = Plan()
    for o in overrides:
        key = o.key_or_group
        if key == "hydra" or key.startswith("hydra.") or o.is_hydra_override():
            continue
        listed = _values(o)
        if listed is None:
            continue
        axis = Axis(o, *listed)
        group = key.split("@")[0]
        root = group.split(".")[0].split("/")[0]
        if o.is_delete():
            raise UsageError(f"~{key}: initlab settings cannot be deleted; set {key}=<value> "
                             "instead (defaults: conf/config.yaml)")
        if o.is_add() and root not in GROUPS and root not in _SETTINGS:
            raise UsageError(f"+{key}: no such setting; settings are: {', '.join(_SETTINGS)}")
        if group in GROUPS or group.startswith("experiments/"):
            allowed = paths.group_options(group)
            for v in axis.values:
                if v is not None and str(v) not in allowed:
                    raise UsageError(not_an_option(group, v, list(allowed)))
            if len(axis.values) > 1:
                plan.groups.append(axis)
            else:
                plan.fixed.append(o.input_line)
        elif not o.is_add() and unknown_parameter(key):
            plan.unknown.append((key, axis.values[0]))
        elif len(axis.values) > 1:
            check_types(key, axis.values)
            plan.scalars.append(axis)
        else:
            plan.fixed.append(o.input_line)
    return plan


def _check_plan(plan: Plan, compose_with, overrides: list[Any]) -> None:
    """Compose every combination of the groups (``_combinations``) and check every job's
    settings on it: the swept settings' product, the ``INDEPENDENT`` ones value by value."""
    first_scalars = [a.line(0) for a in plan.scalars if not a.merges]

    def composed(choice: list[int]):
        chosen = [a.line(i) for a, i in zip(plan.groups, choice, strict=True)]
        try:
            cfg = compose_with([*chosen, *plan.fixed, *first_scalars])
        except Exception as exc:
            raise UsageError(tidy(exc, overrides)) from None
        for key, value in plan.unknown:
            raise UsageError(no_such_parameter(cfg, key, value))
        return cfg

    coupled = [a for a in plan.scalars if a.key not in INDEPENDENT]
    first = None
    typed = [o.key_or_group for o in overrides if typed_param(o.key_or_group)]
    for cfg in _combinations(plan.groups, composed):
        first = cfg if first is None else first
        _check_product(cfg, coupled)
        check_plugin_keys(cfg, typed)
    for axis in plan.scalars:
        if axis.key in INDEPENDENT:
            for value in {repr(v): v for v in axis.values}.values():
                trial = first.copy()
                for other in coupled:
                    if other.merges:
                        _set(trial, other, other.values[0], first)
                _set(trial, axis, value)
                _check_spec(trial)


def _check_product(cfg, axes: list[Axis]) -> None:
    """Check ``cfg`` with every combination of the ``axes``' values set in it."""
    work = cfg.copy() if axes else cfg
    for point in itertools.product(*[a.values for a in axes]):
        for axis, value in zip(axes, point, strict=True):
            _set(work, axis, value, cfg)
        _check_spec(work)


def _set(cfg, axis: Axis, value: Any, original=None) -> None:
    """Set one swept value as Hydra sets a job's override (a ``+key`` may add keys; a dict
    merges into the node as composed, not into the previous value)."""
    try:
        with open_dict(cfg) if axis.override.is_add() else nullcontext():
            if axis.merges and original is not None:
                OmegaConf.update(cfg, axis.key, OmegaConf.select(original, axis.key),
                                 merge=False)
            OmegaConf.update(cfg, axis.key, value, merge=True)
    except Exception as exc:
        raise UsageError(f"{axis.override.get_key_element()}={text(value)}: "
                         f"{one_line(exc)}") from None


def _combinations(groups: list[Axis], composed: Callable[[list[int]], Any]) -> Iterator[Any]:
    """The config of every combination of the groups' values (indices into each).

    Each combination is composed, unless every group is ``SEPARABLE``: then each value is
    composed once (the i-th value of every group together, so 5 + 3 values take 5
    composes, about 0.07 s each) and each combination is the first config with the
    chosen groups' nodes swapped in — the config that composing it would give.
    """
    combos = itertools.product(*[range(len(a.values)) for a in groups])
    keys = [a.key for a in groups]
    if len(groups) < 2 or not set(keys) <= set(SEPARABLE) or len(set(keys)) < len(keys):
        for combo in combos:
            yield composed(list(combo))
        return
    nodes: list[list[Any]] = [[] for _ in groups]
    base = None
    for i in range(max(len(a.values) for a in groups)):
        cfg = composed([min(i, len(a.values) - 1) for a in groups])
        base = cfg if base is None else base
        for g, axis in enumerate(groups):
            if i < len(axis.values):
                nodes[g].append(cfg[keys[g]])
    for combo in combos:
        cfg = base.copy()
        for g, i in enumerate(combo):
            OmegaConf.update(cfg, keys[g], nodes[g][i], merge=False)
        yield cfg


@contextmanager
def _composer():
    """Yield ``compose(overrides, **kw) -> cfg`` over initlab's configs (Hydra's compose API)."""
    config.register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(paths.conf_dir())):
            # experiments/ is on the search path through hydra_plugins/initlab_searchpath.
            yield lambda overrides, **kw: compose("config", overrides=list(overrides), **kw)
    finally:
        GlobalHydra.instance().clear()


def check_output_dir(argv: list[str]) -> None:
    """Raise UsageError when the run's (or sweep's) directory cannot be made and written.

    Hydra makes these directories itself, before any initlab code runs, and a
    failure there is a traceback; so the directory is tried here first: its
    nearest existing ancestor must be a directory in which one can be created.
    """
    from hydra.types import RunMode

    args = get_args_parser().parse_args(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return
    overrides = OverridesParser.create().parse_overrides(args.overrides)
    fixed = [o.input_line for o in overrides if not o.is_sweep_override()]
    with _composer() as compose_with:
        cfg = compose_with(fixed, return_hydra_config=True)
        multirun = args.multirun or cfg.hydra.mode == RunMode.MULTIRUN
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        path = str(OmegaConf.select(cfg, key))
    writable_dir(Path(path), f"{key}={path}")


def writable_dir(path: Path, what: str) -> None:
    """UsageError naming ``what`` and the cause unless a directory can be made at ``path``."""
    probe = Path(os.path.abspath(path))
    try:
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            raise UsageError(f"{what}: {probe} is a file, not a directory; give a directory "
                             "that exists or can be created")
        os.rmdir(tempfile.mkdtemp(prefix=".initlab-probe-", dir=probe))
    except OSError as exc:
        cause = exc.strerror or type(exc).__name__
        raise UsageError(f"{what}: cannot create a directory in {probe} ({cause}); give a "
                         "writable directory") from None


def compose_overrides(overrides: list[str]):
    """The config the command line would compose for these (non-sweep) overrides."""
    with _composer() as compose_with:
        return compose_with(list(overrides))


def _check_spec(cfg) -> None:
    for name, allowed in (("progress", PROGRESS), ("plots", PLOTS)):
        if str(cfg[name]).lower() not in allowed:
            raise UsageError(f"{name}={cfg[name]!r} is not allowed; allowed: "
                             f"{', '.join(allowed)}")
    try:
        config.check(cfg)
    except (SpecError, ValueError) as exc:
        raise UsageError(one_line(exc)) from None
