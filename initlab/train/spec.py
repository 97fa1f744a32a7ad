"""TrainSpec: the validated settings of a short training run, the trainer's only settings input.

Plain data, like ``initlab.spec.ChainSpec``: building one checks every field and
raises ``initlab.spec.SpecError`` whose message is one line naming the bad value
and what is allowed. What is trained (the chain's schemes and sizes, or a model)
and the run's ``trials``, ``seed``, ``device`` and ``dtype`` are not here: they are
the init-time settings, shared with the measurement at initialization.

Meaning of a step: step ``s`` is the network after ``s`` updates. Training runs
updates 1..``steps``; statistics are recorded at steps 0, ``record_every``,
2 ``record_every``, ... and at ``steps`` (the forward and backward pass of the
training batch of that step, before its update: fastai's ``ActivationStats`` hooks
the forward pass of each batch), held-out loss and accuracy at steps 0,
``eval_every``, ... and ``steps``. Step ``steps`` runs one more forward and backward
pass without an update, so the last recorded statistics are those of the trained
network.

The training verdict (``initlab.train.record.verdicts``): a trial *trained* when its
held-out accuracy after ``steps`` updates reaches chance + ``pass_fraction`` x
(1 - chance), chance being the held-out share of the most frequent class (0.1 on
digits' nearly balanced classes); on a regression task (mean squared error) when
its held-out loss fell to at most (1 - ``pass_fraction``) x its step-0 value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from initlab import rules
from initlab.rules import SpecError

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
SCHEDULES = ("constant", "one_cycle")
DATASETS = ("digits", "teacher", "custom")
#: The momentum each optimizer runs with when ``momentum`` is not given (None): torch's
#: defaults where torch has one (Adam's beta1 0.9, RMSprop's momentum 0), and 0.9 for
#: SGD with momentum (fastai's ``average_grad`` default).
DEFAULT_MOMENTUM = {"sgd": 0.0, "momentum": 0.9, "adam": 0.9, "rmsprop": 0.0}
#: The running average of squared gradients when ``sqr_mom`` is None: torch's defaults,
#: Adam's beta2 = 0.999 and RMSprop's alpha = 0.99 (fastai's are 0.99 for both).
DEFAULT_SQR_MOM = {"adam": 0.999, "rmsprop": 0.99}
#: fastai's ``fit_one_cycle`` defaults (fastai/callback/schedule.py) and ``Learner``'s moms.
ONE_CYCLE = {"div": 25.0, "div_final": 1e5, "pct_start": 0.25, "moms": (0.95, 0.85, 0.95)}
#: fastai's ``ActivationStats.hook`` threshold (fastai/callback/hook.py: ``(o<=0.05)``).
NEAR_ZERO = 0.05


def _int(name: str, value: Any, minimum: int) -> int:
    return rules.integer(f"train.{name}", value, minimum=minimum)


def _number(name: str, value: Any, low: float, high: float | None = None, *,
            low_open: bool = False, high_open: bool = False) -> float:
    return rules.number(f"train.{name}", value, low, high, low_open, high_open)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    return rules.choice(f"train.{name}", value, allowed)


@dataclass(frozen=True)
class TrainSpec:
    """How to train: steps, batches, optimizer, schedule, what to record, which data.

    ``optimizer``: ``sgd`` (torch SGD, no momentum), ``momentum`` (torch SGD with
    ``momentum``), ``adam`` (torch Adam, betas = (``momentum``, ``sqr_mom``)) or
    ``rmsprop`` (torch RMSprop, alpha = ``sqr_mom``, its heavy-ball ``momentum``);
    ``eps`` and ``weight_decay`` (torch's: added to the gradient) go to Adam and RMSprop
    (``weight_decay`` to SGD too). ``momentum``/``sqr_mom`` None: the optimizer's
    default (``DEFAULT_MOMENTUM``, ``DEFAULT_SQR_MOM``).

    ``schedule``: ``constant`` (``lr`` throughout) or ``one_cycle`` (fastai's
    ``fit_one_cycle`` with ``lr`` as lr_max: ``initlab.train.schedule``; ``div``,
    ``div_final``, ``pct_start`` and ``moms`` as fastai's).

    ``data``: ``digits`` (scikit-learn's 8x8 digits, fixed split), ``teacher``
    (Gaussian inputs labelled by a random network; ``data_params``: ``inputs``,
    ``classes``, ``samples``, ``width``, ``depth``, ``task`` classify/regress,
    ``noise``, ``test_fraction``) or ``custom`` (``data_params['_target_']`` names a
    function returning the data; the other entries are its keyword arguments):
    ``initlab.train.data``. ``data_seed`` keys the teacher task and nothing else: the
    task stays fixed while ``seed`` changes the weights and the batch order.

    ``near_zero``: the threshold of the "near zero" fraction, |x| <= near_zero;
    ``pass_fraction``: the training verdict's bar (module docstring).
    """

    steps: int = 500
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "constant"
    momentum: float | None = None
    sqr_mom: float | None = None
    eps: float = 1e-8
    weight_decay: float = 0.0
    div: float = ONE_CYCLE["div"]
    div_final: float = ONE_CYCLE["div_final"]
    pct_start: float = ONE_CYCLE["pct_start"]
    moms: tuple[float, float, float] = ONE_CYCLE["moms"]
    record_every: int = 10
    eval_every: int = 50
    data: str = "digits"
    data_params: dict[str, Any] = field(default_factory=dict)
    data_seed: int = 0
    near_zero: float = NEAR_ZERO
    pass_fraction: float = 0.5
    histogram: bool = True

    def __post_init__(self) -> None:
        _int("steps", self.steps, 1)
        _int("batch_size", self.batch_size, 1)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _number("lr", self.lr, 0.0, low_open=True)
        _choice("schedule", self.schedule, SCHEDULES)
        if self.momentum is not None:
            _number("momentum", self.momentum, 0.0, 1.0, high_open=True)
            if self.optimizer == "sgd" and self.momentum:
                raise SpecError(f"train.momentum={self.momentum!r} is not allowed with "
                                "optimizer=sgd (plain SGD); use optimizer=momentum")
        if self.sqr_mom is not None:
            _number("sqr_mom", self.sqr_mom, 0.0, 1.0, high_open=True)
        _number("eps", self.eps, 0.0, low_open=True)
        _number("weight_decay", self.weight_decay, 0.0)
        _number("div", self.div, 1.0)
        _number("div_final", self.div_final, 1.0)
        _number("pct_start", self.pct_start, 0.0, 1.0, low_open=True, high_open=True)
        moms = self.moms
        if (isinstance(moms, (str, bytes)) or not hasattr(moms, "__len__") or len(moms) != 3
                or not all(isinstance(m, (int, float)) and not isinstance(m, bool)
                           and math.isfinite(m) and 0 <= m < 1 for m in moms)):
            raise SpecError(f"train.moms={moms!r} is not allowed; moms must be three numbers "
                            "in [0, 1) (start, middle, end), e.g. [0.95, 0.85, 0.95]")
        object.__setattr__(self, "moms", tuple(float(m) for m in moms))
        _int("record_every", self.record_every, 1)
        _int("eval_every", self.eval_every, 1)
        _choice("data", self.data, DATASETS)
        if not isinstance(self.data_params, dict):
            raise SpecError(f"train.data_params={self.data_params!r} is not allowed; it must "
                            "be a mapping of names to values")
        if self.data == "custom" and not isinstance(self.data_params.get("_target_"), str):
            raise SpecError("train.data=custom needs train.data_params._target_: the import "
                            "path of a function returning (x_train, y_train, x_test, y_test)")
        rules.seed(self.data_seed, "train.data_seed")
        _number("near_zero", self.near_zero, 0.0)
        _number("pass_fraction", self.pass_fraction, 0.0, 1.0)
        rules.boolean("train.histogram", self.histogram)

    @property
    def beta1(self) -> float:
        """The momentum the optimizer runs with (Adam's beta1): ``momentum`` or its default."""
        return DEFAULT_MOMENTUM[self.optimizer] if self.momentum is None else self.momentum

    @property
    def beta2(self) -> float | None:
        """Adam's beta2 / RMSprop's alpha: ``sqr_mom`` or torch's default (None for SGD)."""
        if self.optimizer not in DEFAULT_SQR_MOM:
            return None
        return DEFAULT_SQR_MOM[self.optimizer] if self.sqr_mom is None else self.sqr_mom

    @property
    def cycles_momentum(self) -> bool:
        """Whether ``one_cycle`` drives the momentum: where the optimizer has one (SGD with
        momentum, Adam's beta1, RMSprop with ``momentum`` > 0), as fastai's ParamScheduler
        sets ``mom``, which it maps to torch's ``momentum`` and ``betas[0]``
        (fastai/optimizer.py ``pytorch_hp_map``)."""
        if self.schedule != "one_cycle":
            return False
        return self.optimizer in ("momentum", "adam") or (
            self.optimizer == "rmsprop" and self.beta1 > 0)

    def record_steps(self) -> list[int]:
        """Steps whose per-layer statistics are recorded: 0, k record_every, and steps."""
        return sorted({*range(0, self.steps, self.record_every), self.steps})

    def eval_steps(self) -> list[int]:
        """Steps with a held-out evaluation: 0, k eval_every, and steps."""
        return sorted({*range(0, self.steps, self.eval_every), self.steps})

    def describe(self) -> dict[str, Any]:
        """Flat, JSON-friendly settings (``train_<name>`` columns of a table row)."""
        out: dict[str, Any] = {}
        for name in ("steps", "batch_size", "optimizer", "lr", "schedule", "eps",
                     "weight_decay", "record_every", "eval_every", "data", "data_seed",
                     "near_zero", "pass_fraction"):
            out[f"train_{name}"] = getattr(self, name)
        out["train_momentum"] = self.beta1
        out["train_sqr_mom"] = self.beta2
        if self.schedule == "one_cycle":
            out.update(train_div=self.div, train_div_final=self.div_final,
                       train_pct_start=self.pct_start,
                       train_moms="/".join(f"{m:g}" for m in self.moms))
        for key, value in sorted(self.data_params.items()):
            out[f"train_data_{key.strip('_')}"] = value
        return out
