"""A user's own scheme or activation, plugged in from the config with ``_target_``.

    init:
      name: trunc_normal                     # the name it runs under
      _target_: torch.nn.init.trunc_normal_  # any importable function
      params: {std: 0.05}                    # its keyword arguments

A scheme target is either initlab-style, ``f(fan_in, fan_out, **params) ->
initlab.schemes.WeightRecipe`` (so it joins the paired comparisons), or torch-style,
an in-place initializer ``f(tensor, **params)`` like everything in
``torch.nn.init``: it fills each trial's matrix, with the trial's generator
when it accepts ``generator``. An activation target is any elementwise
``f(x, **params)`` on tensors. Nothing in initlab needs editing.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from initlab import activations, schemes


class PluginError(ValueError):
    """A ``_target_`` that cannot be used; one line."""


def locate(target: str) -> Callable:
    """Import ``package.module.function``; PluginError naming the module or attribute missing.

    The longest importable module prefix is imported, the rest is looked up
    as attributes (``torch.nn.functional.hardtanh``, ``pkg.Class.method``).
    """
    parts = [p for p in str(target).split(".") if p]
    if len(parts) < 2:
        raise PluginError(f"_target_={target!r} cannot be imported; give module.function, "
                          "e.g. torch.nn.init.trunc_normal_")
    obj, error = None, None
    for cut in range(len(parts) - 1, 0, -1):
        module = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            error = error or exc
            if exc.name and not module.startswith(exc.name):  # the module imports a missing one
                raise PluginError(f"_target_={target!r}: importing {module} failed: "
                                  f"no module named {exc.name!r}") from None
            continue
        except (Exception, SystemExit) as exc:  # the plug-in module raised while importing
            raise PluginError(f"_target_={target!r}: importing {module} failed: "
                              f"{type(exc).__name__}: {_first(exc)}") from None
        for name in parts[cut:]:
            if not hasattr(obj, name) and error is not None and error.name:
                raise PluginError(f"_target_={target!r} cannot be imported: no module named "
                                  f"{error.name!r} (is it installed, or on PYTHONPATH?)")
            if not hasattr(obj, name):
                raise PluginError(f"_target_={target!r} cannot be imported: module {module!r} "
                                  f"has no attribute {name!r}") from None
            obj = getattr(obj, name)
        break
    if obj is None:
        missing = getattr(error, "name", None) or parts[0]
        raise PluginError(f"_target_={target!r} cannot be imported: no module named "
                          f"{missing!r} (is it installed, or on PYTHONPATH?)")
    if not callable(obj):
        raise PluginError(f"_target_={target!r} is not callable; give a function")
    return obj


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def torch_style(fn: Callable) -> Callable[..., schemes.WeightRecipe]:
    """Wrap an in-place initializer ``f(tensor, **params)`` as a scheme with a custom base.

    The weight std (for theory and plots) is measured on one sample matrix.
    """
    import torch

    signature = inspect.signature(fn)
    accepts_generator = "generator" in signature.parameters
    keywords = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in list(signature.parameters.values())[1:]
        if p.name != "generator" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]

    def scheme(fan_in: int, fan_out: int, **params: Any) -> schemes.WeightRecipe:
        def fill(tensor, generator=None):
            if accepts_generator:
                fn(tensor, **params, generator=generator)
                return tensor
            # Draws from torch's global generator: seed it from the trial's stream and
            # restore it after, so the same seed still gives the same numbers.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(generator.initial_seed() if generator is not None else 0)
                fn(tensor, **params)
            return tensor

        sample = fill(torch.empty(fan_out, fan_in), torch.Generator().manual_seed(0))
        return schemes.WeightRecipe("custom", 1.0, fan_in, fan_out, fill=fill,
                            custom_std=float(sample.double().std()))

    fans = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            for n in ("fan_in", "fan_out")]
    scheme.__signature__ = inspect.Signature(fans + keywords)
    scheme.__doc__ = fn.__doc__
    return scheme


def register(kind: str, name: str, target: str) -> None:
    """Register ``target`` as scheme (``kind='init'``) or activation ``name``."""
    fn = locate(target)
    builtin = (activations.BUILTIN_ACTIVATIONS if kind == "activation" else
               schemes.BUILTIN_SCHEMES)
    if name in builtin:
        raise PluginError(f"{kind}._target_={target!r} would replace the built-in {kind} "
                          f"{name!r}; give the plug-in its own name: {kind}.name=<new name>")
    if kind == "activation":
        activations.register(name, fn)
        return
    try:
        first = next(iter(inspect.signature(fn).parameters), "")
    except (ValueError, TypeError):  # a builtin: Python cannot read its parameters
        raise PluginError(
            f"init._target_={target!r}: Python cannot read its parameters (a builtin); "
            "a scheme needs a Python function f(tensor, **params) or f(fan_in, fan_out, **params)"
        ) from None
    schemes.register(name, fn if first == "fan_in" else torch_style(fn))
