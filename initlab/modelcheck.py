"""A model job's pre-flight: build the model and run it on torch's meta device (shapes
only, no memory, no numbers) to find, before any job starts, what the probe would
refuse inside the job: patterns that hook no module, gradients asked of an output that
holds no float tensor. ``initlab.config.check`` calls it for every model job."""

from __future__ import annotations

from initlab import plugins
from initlab.modelspec import CUSTOM, ModelSpec
from initlab.rules import SpecError

#: a model's settings -> what is wrong with it (None: fine); a sweep asks once per model
_SEEN: dict[tuple, str | None] = {}


def check_model(spec: ModelSpec) -> None:
    """SpecError when ``model.include``/``exclude`` (or the default) hook no module of the
    model, or when gradients are asked of a model whose output holds no float tensor:
    found by building it and running it on torch's meta device (shapes only, no memory,
    no numbers). A model that cannot run there is left to the job, whose probe says the
    same line."""
    if spec.model == "conv_chain":
        return  # hooks its own convolutions and activations
    fn = plugins.locate(str(spec.target)) if spec.target else None  # this import's own
    key = (fn, repr((spec.model, spec.params, spec.batchnorm, spec.include, spec.exclude,
                     spec.gradients, spec.shape(), spec.batch)))
    if key not in _SEEN:
        _SEEN[key] = _model_problem(spec)
    if _SEEN[key]:
        raise SpecError(_SEEN[key])


def _model_problem(spec: ModelSpec) -> str | None:
    import torch

    from initlab.probing.record import no_gradient_message, no_module_message, select

    include, exclude = spec.hooks()
    try:
        with torch.device("meta"):
            model = spec.factory()()
    except Exception:  # noqa: BLE001 - the job builds it for real and says what failed
        return None
    if not select(model, include, exclude):
        name = f"model={spec.model}" + (f" ({spec.target})" if spec.target else "")
        return no_module_message(include, exclude, "model.", name)
    if not spec.gradients or spec.model != CUSTOM:
        return None
    try:
        out = model(torch.empty((spec.batch, *spec.shape()), device="meta",
                                dtype=spec.torch_dtype))
    except Exception:  # noqa: BLE001 - a forward pass that needs numbers: the job will tell
        return None
    return no_gradient_message(out)
