"""The histogram's range check holds with denormals flushed to zero (torch.set_flush_denormal,
which a user may turn on for speed on CPU): the smallest subnormal is summed as logs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from initlab.stats import log_histogram


def test_histograms_work_with_denormals_flushed():
    x = torch.randn(2, 8, 3)
    plain = log_histogram(x, "float32").numpy()
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush denormals (no FTZ/DAZ)")
    try:
        flushed = log_histogram(x, "float32").numpy()
    finally:
        torch.set_flush_denormal(False)
    np.testing.assert_array_equal(flushed, plain)  # normal values: the same counts
