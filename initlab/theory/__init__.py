"""Mean-field theory of the chain (see ``meanfield``)."""

from initlab.theory.meanfield import (
    critical_sigma_w2,
    crossing,
    fixed_point_slope,
    for_chain,
    hanin_rolnick,
    mean_field,
    overflow_layer,
    underflow_layer,
)
from initlab.theory.quadrature import (
    _NODES,
    _WEIGHTS,
    _rule,
    derivative_second_moment,
    gaussian_moments,
)

__all__ = [
    "_NODES", "_WEIGHTS", "_rule", "critical_sigma_w2", "crossing", "derivative_second_moment",
    "fixed_point_slope", "for_chain", "gaussian_moments", "hanin_rolnick", "mean_field",
    "overflow_layer", "underflow_layer",
]
