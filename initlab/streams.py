"""Keyed random streams: which generator seed each draw of a run uses.

Every random number initlab draws comes from a stream named by ``(seed, *key)``: the
weights of layer l in trial t, the biases, the inputs x_0, the output gradient g_L, and
in the blocked mode (``initlab.draws``) the same per block of trials. ``stream_seed``
hashes the key with SplitMix64 into a 63-bit generator seed, so a draw depends on its key
only: same seed, same numbers; fewer trials are a prefix of more; a layer can be drawn
again on its own; schemes that share a base draw see the same matrix (paired
comparisons). Other modules name their own streams with their own tags through
``stream_seed`` (a training run's batch order, ``initlab.train.data``).
"""

from __future__ import annotations

_MASK64 = (1 << 64) - 1
_INPUT_STREAM = 0x1A9B7C3D  # tags keep the input, weight and gradient streams apart
_WEIGHT_STREAM = 0x5EED0F17
_GRAD_STREAM = 0x6EAD1E57
_BIAS_STREAM = 0xB1A5B1A5
_COMMON_INPUT = 1  # second key of the input stream: the shared part of correlated inputs
_BLOCKED = 0xB10C4ED5  # first key of every blocked-mode stream: apart from every trial stream


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def stream_seed(seed: int, *key: int) -> int:
    """A 63-bit generator seed for the stream ``(seed, *key)`` (SplitMix64 hashing)."""
    z = _splitmix64(seed & _MASK64)
    for k in key:
        z = _splitmix64(z ^ (k & _MASK64))
    return z >> 1


def weight_seed(seed: int, layer: int, trial: int) -> int:
    """Seed of the base matrix of ``layer`` (1-based) in ``trial``."""
    return stream_seed(seed, _WEIGHT_STREAM, layer, trial)


def input_seed(seed: int, trial: int) -> int:
    """Seed of the input vectors x_0 of ``trial``."""
    return stream_seed(seed, _INPUT_STREAM, trial)


def common_input_seed(seed: int, trial: int) -> int:
    """Seed of the column every input of ``trial`` shares when the inputs are correlated."""
    return stream_seed(seed, _INPUT_STREAM, trial, _COMMON_INPUT)


def gradient_seed(seed: int, trial: int) -> int:
    """Seed of the output gradient g_L of ``trial`` (the backward pass's start)."""
    return stream_seed(seed, _GRAD_STREAM, trial)


def bias_seed(seed: int, layer: int, trial: int) -> int:
    """Seed of the bias vector b_layer (1-based) in ``trial``."""
    return stream_seed(seed, _BIAS_STREAM, layer, trial)


def weight_block_seed(seed: int, layer: int, block: int) -> int:
    """Seed of the base matrices of ``layer`` for the trials of ``block`` (blocked mode)."""
    return stream_seed(seed, _BLOCKED, _WEIGHT_STREAM, layer, block)


def bias_block_seed(seed: int, layer: int, block: int) -> int:
    """Seed of the bias vectors of ``layer`` for the trials of ``block`` (blocked mode)."""
    return stream_seed(seed, _BLOCKED, _BIAS_STREAM, layer, block)


def input_block_seed(seed: int, block: int) -> int:
    """Seed of the inputs x_0 of the trials of ``block`` (blocked mode)."""
    return stream_seed(seed, _BLOCKED, _INPUT_STREAM, block)


def common_input_block_seed(seed: int, block: int) -> int:
    """Seed of the shared input columns of the trials of ``block`` (blocked mode)."""
    return stream_seed(seed, _BLOCKED, _INPUT_STREAM, block, _COMMON_INPUT)


def gradient_block_seed(seed: int, block: int) -> int:
    """Seed of the output gradients g_L of the trials of ``block`` (blocked mode)."""
    return stream_seed(seed, _BLOCKED, _GRAD_STREAM, block)
