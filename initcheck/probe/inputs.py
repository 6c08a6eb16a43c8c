"""Inputs and cotangents drawn with numpy (the same values for every framework), and a defensive accessor
for the judgement's per-layer prediction.

Synthetic inputs are N(0, 1) (token ids uniform over the vocabulary); the backward pass starts from a
N(0, 1) cotangent on the output, standing in for a loss gradient of unit size per output element, so no
loss function is needed. The batch is enlarged beyond what a graph trace uses so that per-unit statistics
have enough samples: dead-unit tests need ≥ 16 samples per unit (see ``thresholds``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ..model import Layer

VECTOR_BATCH = 64  # (batch, features) inputs
IMAGE_BATCH = 4  # (batch, channels, *spatial): positions add samples
SEQUENCE_SHAPE = (8, 16)  # (batch, positions) of a (batch, positions, features) input
TOKEN_SHAPE = (8, 32)  # token ids: batch × sequence


def batch_shape(shape: tuple[int, ...], tokens: bool) -> tuple[int, ...]:
    """The probe's input shape from a traced example's shape (``(2, 784)`` → ``(64, 784)``)."""
    if tokens and len(shape) == 2:
        return TOKEN_SHAPE
    if len(shape) == 2:
        return (VECTOR_BATCH, shape[1])
    if len(shape) == 3:
        return (*SEQUENCE_SHAPE, shape[2])
    return (IMAGE_BATCH, *shape[1:])


def draw_input(shape: tuple[int, ...], seed: int, vocab: int | None = None) -> np.ndarray:
    """N(0, 1) float32 values, or int64 ids uniform in [0, vocab) when ``vocab`` is given."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 1])
    if vocab is not None:
        return rng.integers(0, vocab, size=shape, dtype=np.int64)
    return rng.standard_normal(shape, dtype=np.float32)


def draw_cotangent(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """The unit-variance random cotangent the backward pass starts from (float32)."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 2])
    return rng.standard_normal(shape, dtype=np.float32)


def expected_std(layer: "Layer") -> float | None:
    """The judgement's expected weight std for the layer, if it has one.

    Read defensively: the judgement keeps it in ``layer.analysis["expected_std"]`` today and may move it
    into a nested record; both are accepted, anything else gives None.
    """
    analysis = getattr(layer, "analysis", None) or {}
    value = analysis.get("expected_std")
    if value is None:
        nested = analysis.get("expectation")
        value = getattr(nested, "std", None) if not isinstance(nested, dict) else nested.get("std")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def sound_gain(layer: "Layer") -> float | None:
    """√fan_in · expected std: the forward gain ``rms(Wx)/rms(x)`` a sound init of this layer has."""
    std = expected_std(layer)
    return math.sqrt(layer.fan_in) * std if std is not None and layer.fan_in else None
