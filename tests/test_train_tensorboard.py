"""The TensorBoard logger (initlab.train.tensorboard): a real run's event files read back
with tensorboard's EventAccumulator equal the record (medians over trials, histogram
counts bin by bin), the files are reproducible byte for byte, and without the tensorboard
package the error is one line."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
import torch

from initlab.columns import hist_edges
from initlab.train import ChainConfig, TrainSpec, train_chain
from initlab.train.tensorboard import EVENT_FILE, MISSING, histogram, write_events

# Scalars travel as float32 (Summary.Value.simple_value): one rounding of the float64 median.
F32 = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def accumulator():
    """tensorboard's reader (skips the module's tests that need it without the package)."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing import event_accumulator as ea

    def read(run):
        acc = ea.EventAccumulator(str(run), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0})
        return acc.Reload()

    return read


@pytest.fixture(scope="module")
def record():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (rec,) = train_chain(
            [ChainConfig(init="kaiming", activation="relu", width=16, depth=3)],
            TrainSpec(steps=20, record_every=5, eval_every=10, data="teacher"), trials=2)
    finally:
        torch.set_num_threads(threads)
    return rec


def series(acc, tag):
    events = acc.Scalars(tag)
    return ([e.step for e in events], np.array([e.value for e in events]),
            [e.wall_time for e in events])


def same(read, expected, tag):
    np.testing.assert_allclose(read, expected, rtol=F32, atol=0, equal_nan=True, err_msg=tag)


def test_scalars_are_the_records_medians(record, accumulator, tmp_path):
    path = write_events(record, tmp_path)
    assert path == tmp_path / EVENT_FILE and path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [EVENT_FILE]  # no partial file left
    acc = accumulator(tmp_path)
    steps = list(range(record.steps + 1))
    evals = [int(s) for s in record.eval_steps]
    recorded = [int(s) for s in record.steps_recorded]
    expected = {"train/loss": (steps, np.median(record.train_loss, axis=0)),
                "train/accuracy": (steps, np.median(record.train_acc, axis=0)),
                "eval/loss": (evals, np.median(record.eval_loss, axis=0)),
                "eval/accuracy": (evals, np.median(record.eval_acc, axis=0)),
                "train/lr": (steps[:-1], record.lr)}
    for layer, name in enumerate(record.layer_names):
        for stat in ("mean", "std", "near_zero"):
            expected[f"layers/{name}/{stat}"] = (
                recorded, np.median(record.stats[stat][:, :, layer], axis=0))
        for stat in ("grad_x_std", "grad_w_std"):
            values = record.grads[stat][:, :, layer]
            if not np.isnan(values).all():
                expected[f"layers/{name}/{stat}"] = (recorded, np.median(values, axis=0))
        expected[f"layers/{name}/zeros"] = (recorded, record.hist[:, layer, 0])
        expected[f"layers/{name}/nonfinite"] = (recorded, record.hist[:, layer, 1])
    assert sorted(acc.Tags()["scalars"]) == sorted(expected)
    assert "layers/layer_1/grad_w_std" in expected
    assert "layers/input/grad_w_std" not in expected  # the batch has no weight
    for tag, (at, values) in expected.items():
        got_steps, got, walltimes = series(acc, tag)
        assert got_steps == at, tag
        assert walltimes == [float(s) for s in at], tag  # deterministic wall time
        same(got, values, tag)
    # a ReLU chain: a quarter to a half of the hidden layers' values are exact zeros
    assert record.hist[:, 1, 0].sum() > 0


def test_histograms_are_the_records_counts(record, accumulator, tmp_path):
    acc = accumulator(write_events(record, tmp_path).parent)
    edges = hist_edges(record.hist_dtype)
    recorded = [int(s) for s in record.steps_recorded]
    assert sorted(acc.Tags()["histograms"]) == sorted(
        f"layers/{name}" for name in record.layer_names)
    for layer, name in enumerate(record.layer_names):
        events = acc.Histograms(f"layers/{name}")
        assert [e.step for e in events] == recorded
        for r, event in enumerate(events):
            h = event.histogram_value
            counts = record.hist[r, layer, 2:]
            assert h.num == counts.sum() > 0
            # bucket_limit: each bucket's upper edge; min: the first bucket's lower edge
            right = np.searchsorted(edges, h.bucket_limit)
            np.testing.assert_array_equal(edges[right], h.bucket_limit)
            first = int(np.searchsorted(edges, h.min))
            assert edges[first] == h.min and h.max == h.bucket_limit[-1]
            np.testing.assert_array_equal(right, np.arange(first + 1, first + 1 + len(right)))
            full = np.zeros_like(counts)
            full[right - 1] = h.bucket
            np.testing.assert_array_equal(full, counts, err_msg=f"{name} step {event.step}")
            centres = (edges[:-1] + edges[1:]) / 2
            assert h.sum == pytest.approx(counts @ centres, rel=1e-12)


def test_reproducible_runs_and_tags(record, accumulator, tmp_path):
    a = write_events(record, tmp_path / "a")
    b = write_events(record, tmp_path / "b", tag="kaiming/relu")
    assert b == tmp_path / "b" / "kaiming" / "relu" / EVENT_FILE
    assert a.read_bytes() == b.read_bytes()
    again = write_events(record, tmp_path / "a")  # a rerun replaces the file
    assert again == a and a.read_bytes() == b.read_bytes()
    assert len(list((tmp_path / "a").iterdir())) == 1
    for bad in ("../out", "/tmp/out"):
        with pytest.raises(ValueError, match="relative path"):
            write_events(record, tmp_path, tag=bad)


def test_regression_without_histograms(record, accumulator, tmp_path):
    nan = np.full_like(record.train_acc, np.nan)
    plain = dataclasses.replace(record, task="regress", hist=None, train_acc=nan,
                                eval_acc=np.full_like(record.eval_acc, np.nan))
    acc = accumulator(write_events(plain, tmp_path).parent)
    tags = acc.Tags()
    assert tags["histograms"] == []
    assert "train/loss" in tags["scalars"] and "layers/readout/std" in tags["scalars"]
    assert not [t for t in tags["scalars"]
                if "accuracy" in t or t.endswith(("/zeros", "/nonfinite"))]


def test_histogram_of_empty_bins():
    edges = hist_edges("float32")
    assert histogram(np.zeros(len(edges) - 1, dtype=np.int64), edges) is None
    counts = np.zeros(len(edges) - 1, dtype=np.int64)
    counts[[10, 12]] = [3, 1]
    h = histogram(counts, edges)
    assert h["bucket"] == [3.0, 0.0, 1.0] and h["bucket_limit"] == edges[11:14].tolist()
    assert (h["min"], h["max"], h["num"]) == (edges[10], edges[13], 4.0)


def test_without_tensorboard_one_line(record, monkeypatch, tmp_path):
    for name in [n for n in sys.modules if n.split(".")[0] == "tensorboard"] + ["tensorboard"]:
        monkeypatch.setitem(sys.modules, name, None)  # importing any of them fails
    with pytest.raises(ImportError) as error:
        write_events(record, tmp_path)
    assert str(error.value) == MISSING and "\n" not in MISSING
    assert "pip install 'initlab[tensorboard]'" in MISSING
    assert list(tmp_path.iterdir()) == []
