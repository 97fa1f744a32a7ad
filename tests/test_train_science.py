"""Will it train? The edge of chaos against the ordered phase on digits (Schoenholz et al.
2017: a random network trains when its depth is below ~6 xi_c; xi_c diverges at the edge)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from initlab.theory.phase import phase_params
from initlab.train import ChainConfig, TrainSpec, train_chain


@pytest.mark.slow
def test_tanh_at_the_edge_trains_where_the_ordered_phase_does_not():
    # tanh, sigma_b2 = 0.05, depth 30, width 64, digits, Adam 1e-3, 200 steps, 3 trials
    # (paired: the same batches and base matrices in both configs). Theory: at sigma_w2 =
    # 0.5 the correlation depth xi_c = 1.2, so 6 xi_c = 7 << 30 layers (ordered: every
    # input reaches the readout as the same vector); at 1.76 xi_c ~ 5000. Measured (seed 0,
    # 300 steps, 4 trials): held-out accuracy 0.10-0.19 ordered, 0.92-0.96 at the edge.
    # The bars below (<= 0.4 ordered, >= 0.6 edge, every trial) leave wide margins on
    # both sides; chance is 0.1.
    depth = 30
    assert 6 * phase_params("tanh", 0.5, 0.05).xi_c < depth / 3
    assert 6 * phase_params("tanh", 1.76, 0.05).xi_c > 100 * depth
    configs = [ChainConfig(init="scaled", init_params={"sigma_w2": s}, activation="tanh",
                           bias="normal", bias_params={"sigma_b2": 0.05}, width=64,
                           depth=depth) for s in (0.5, 1.76)]
    spec = TrainSpec(steps=200, batch_size=64, optimizer="adam", lr=1e-3, record_every=200,
                     eval_every=200, histogram=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ordered, edge = train_chain(configs, spec, trials=3, seed=0)
    finally:
        torch.set_num_threads(threads)
    assert (ordered.eval_acc[:, -1] <= 0.4).all(), ordered.eval_acc[:, -1]
    assert (edge.eval_acc[:, -1] >= 0.6).all(), edge.eval_acc[:, -1]
    assert ordered.verdict() == "did not train" and edge.verdict() == "trained"
    # the ordered chain's last hidden layer barely tells inputs apart: batch cosine near 1
    assert np.median(ordered.stats["corr"][:, 0, -2]) > 0.95
