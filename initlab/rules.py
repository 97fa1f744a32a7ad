"""The rules every setting obeys, defined once: what a value must be, and the one-line error.

``ChainSpec`` and ``ModelSpec`` (``initlab.spec``), the probe and the training settings all
check their values here, so a seed, a trial count or a choice is refused in the same
words wherever it is given. Plain Python: no torch.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

#: Seeds are fed to torch generators, which take a signed 64-bit integer.
SEED_LIMIT = 2**63
#: The allowed values of the ``plots`` and ``progress`` settings.
PLOTS = ("auto", "true", "false")
PROGRESS = ("auto", "true", "false")


class SpecError(ValueError):
    """A setting the user can fix; its message is one line."""


def integer(name: str, value: Any, minimum: int | None = None, maximum: int | None = None,
            why: str = "") -> int:
    """``value`` as an int (NumPy integers too, never a bool) within [minimum, maximum]."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum):
        return int(value)
    bounds = [f">= {minimum}" if minimum is not None else "",
              f"<= {maximum}" if maximum is not None else ""]
    need = " and ".join(b for b in bounds if b)
    raise SpecError(f"{name}={value!r} is not allowed; {name} must be an integer"
                    f"{' ' + need if need else ''}{why}")


def positive_int(name: str, value: Any) -> int:
    """An integer >= 1 (depth, trials, batch, steps, ...)."""
    return integer(name, value, minimum=1)


def seed(value: Any, name: str = "seed") -> int:
    """An integer with 0 <= seed < 2**63 (what a torch generator takes)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and 0 <= value < SEED_LIMIT:
        return int(value)
    raise SpecError(f"{name}={value!r} is not allowed; {name} must be an integer with "
                    "0 <= seed < 2**63")


def number(name: str, value: Any, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, why: str = "") -> float:
    """A finite real number (not a bool) in the interval given; the interval in the message."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if ok:
        return float(value)
    lo = f"{low:g} {'<' if low_open else '<='} " if low is not None else ""
    hi = f" {'<' if high_open else '<='} {high:g}" if high is not None else ""
    where = f" with {lo}{name}{hi}" if lo or hi else ""
    raise SpecError(f"{name}={value!r} is not allowed; {name} must be a finite number{where}"
                    f"{why}")


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SpecError(f"{name}={value!r} is not allowed; allowed: {', '.join(allowed)}")
    return value


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{name}={value!r} is not allowed; {name} must be true or false")
    return value


def first_line(exc: BaseException) -> str:
    """An exception's first line, or its type's name when it has no message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
