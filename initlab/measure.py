"""Measure what a job asks for: a shared pass of the chain engine, or the probe on a model.

Each returns ``Result``s with the job's settings and the theory's prediction beside
the measurement (``initlab.prediction``), ready for the one writer (``initlab.job``).

What a model's layer is: for ``conv_chain``, layer l is x_l = act(conv_l(x_{l-1})), the
activation's output, with ``corr`` taken on the conv's output (the pre-activation) and
``grad_w`` of that conv, as the chain's table (so the chain's mean-field maps apply,
``initlab.theory.conv``); for the others every hooked module's output (default: every
leaf module with parameters, as fastai's ActivationStats) and no theory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from initlab import models, prediction
from initlab.chain import run_group
from initlab.inputs import make_inputs
from initlab.modelspec import ModelSpec
from initlab.probing import probe
from initlab.probing.judge import check_judgeable
from initlab.result import Result
from initlab.spec import ChainSpec, resolve_device

Progress = Callable[[int], object] | None


def chains(specs: Sequence[ChainSpec], progress: Progress = None) -> list[Result]:
    """One engine pass over specs that share a ``group_key`` (``initlab.chain.run_group``);
    ``progress`` counts trial-layers."""
    return run_group(specs, progress=progress)


def chain_work(spec: ChainSpec) -> int:
    """What a chain's progress counts: trial-layers."""
    return spec.trials * (spec.depth + 1)


def model_work(spec: ModelSpec) -> int:
    """What a model's progress counts: trials x layers (a user's model: one per trial, as
    its layers are known only once it runs)."""
    layers = {"conv_chain": spec.depth + 1, "simple_cnn": 6}.get(spec.model, 1)
    return spec.trials * layers


def model(spec: ModelSpec, progress: Progress = None) -> Result:
    """Probe the model of ``spec`` over its trials; a conv chain's conv and activation rows
    paired into the chain's layers; the settings and the prediction attached."""
    import torch

    include, exclude = spec.hooks()
    x = make_inputs(spec.inputs, spec.shape(), spec.batch, spec.input_correlation,
                    getattr(torch, spec.dtype))
    per_trial = model_work(spec) // spec.trials
    result = probe(spec.factory(), x, init=spec.init, init_params=spec.init_params,
                   bias=spec.bias, bias_params=spec.bias_params, trials=spec.trials,
                   seed=spec.seed, gradients=spec.gradients, include=include, exclude=exclude,
                   device=resolve_device(spec.device),
                   # a conv chain's rows are its activations' (pair_layers): only theirs
                   # need a histogram, the costliest statistic of a 16 x 199 x 199 signal
                   histogram=["Activation"] if spec.model == "conv_chain" else True,
                   progress=None if progress is None else lambda n: progress(n * per_trial))
    if spec.model == "conv_chain":
        result = pair_layers(result, spec.activation)
    check_judgeable(result, list(range(1, result.depth + 1)))  # else "stable" on nothing
    stats = result.stats
    measured = None
    if spec.inputs == "gaussian":
        q0, c0 = 1.0, spec.input_correlation
    else:  # real images: the theory starts from the measured E[x_0^2], cosine, mean, std
        q0 = float(np.mean(stats["rms"][:, 0] ** 2))
        c0 = float(np.nanmean(stats["corr"][:, 0])) if spec.batch >= 2 else None
        measured = float(np.mean(stats["mean"][:, 0])), float(np.mean(stats["std"][:, 0]))
    sizes = models.conv_sizes(spec.depth, spec.size) if spec.model == "conv_chain" else None
    curves, predictions = prediction.model(spec, sizes, q0, c0 if spec.batch >= 2 else None,
                                           measured)
    return replace(result, settings=spec.describe(result.depth, width_of(result)),
                   theory=curves, predictions=predictions, spec=spec)


def width_of(result: Result) -> int:
    """The widest hooked layer's channels (first per-sample dimension): the ``width`` column."""
    return int(max((s[0] for s in result.shapes[1:] if s), default=0))


def pair_layers(result: Result, activation: str) -> Result:
    """A conv chain's rows (input, conv_1, act_1, conv_2, ...) as the chain's layers: x_l from
    act_l, ``corr`` from conv_l (the pre-activation), grad_x from act_l, grad_w from conv_l."""
    types = result.module_types[1:]
    if types != ["Conv2d", "Activation"] * (len(types) // 2):
        raise RuntimeError(f"conv_chain's hooked modules are not conv/activation pairs: {types}")
    act = [0, *range(2, len(types) + 1, 2)]
    conv = [0, *range(1, len(types) + 1, 2)]
    stats = {n: v[:, act] for n, v in result.stats.items()}
    stats["corr"] = result.stats["corr"][:, conv]
    grads = None
    if result.grads is not None:
        grads = {n: v[:, conv if n.startswith("grad_w") else act] for n, v in result.grads.items()}
    names = ["input", *(f"{result.modules[i]}+{result.modules[i + 1]}" for i in conv[1:])]
    kinds = ["input", *[f"Conv2d+{activation}"] * (len(act) - 1)]
    return replace(result, stats=stats, grads=grads, modules=names, module_types=kinds,
                   shapes=[result.shapes[i] for i in act],
                   hist=None if result.hist is None else result.hist[act])
