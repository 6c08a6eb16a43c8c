"""Drawing tensors from the one table of schemes (:mod:`initcheck.schemes`), with numpy only.

The std of every draw is ``Scheme.std(fan_in, fan_out, gain, shape)``; this module only turns a std into
values with the scheme's distribution, the way the frameworks do:

* ``normal``: N(0, std²) (``torch.nn.init.normal_``/``kaiming_normal_``).
* ``uniform``: U(±√3·std) (``kaiming_uniform_``, ``xavier_uniform_``, Keras ``*_uniform``).
* ``truncated_normal``: Keras' ``VarianceScaling(distribution="truncated_normal")``: N(0, σ²) with
  σ = std / 0.87962566103423978, cut at ±2σ (resampled), so the result has exactly the requested std.
* ``orthogonal``: a (semi-)orthogonal matrix by QR of a Gaussian matrix with the sign of R's diagonal
  folded into Q (Mezzadri 2007; ``torch.nn.init.orthogonal_`` and Keras ``Orthogonal`` do the same),
  times the gain; every singular value equals the gain, every entry has std gain/√max(rows, cols).

No framework is imported here.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from ..schemes import TRUNCATED_NORMAL_STD_FACTOR, Scheme


def layer_rng(seed: int | None, name: str) -> np.random.Generator:
    """A generator for one tensor: reproducible from ``seed`` and the tensor's name alone, so the values a
    layer gets do not depend on which other layers are reinitialized. ``seed=None`` draws fresh entropy."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))])


def draw(distribution: str, std: float, shape: tuple[int, ...], rng: np.random.Generator,
         unit_axis: int = 0, blocks: int = 1) -> np.ndarray:
    """Values of ``shape`` (float64) with this distribution and std.

    For ``orthogonal``, ``std`` is ignored: the matrix (units on ``unit_axis`` × everything else) is
    semi-orthogonal with singular values ``gain`` — pass the gain via :func:`orthogonal`. ``blocks`` splits
    the unit axis into equal parts drawn independently (per gate of a recurrent layer, per projection of a
    fused attention matrix); it matters only for orthogonal draws.
    """
    shape = tuple(int(s) for s in shape)
    if distribution == "normal":
        return rng.standard_normal(shape) * std
    if distribution == "uniform":
        bound = math.sqrt(3.0) * std
        return rng.uniform(-bound, bound, shape)
    if distribution == "truncated_normal":
        return truncated_normal(std, shape, rng)
    if distribution == "orthogonal":
        return orthogonal(shape, 1.0, rng, unit_axis, blocks)
    raise ValueError(f"unknown distribution {distribution!r}")


def truncated_normal(std: float, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Keras' truncated normal with final std ``std``: σ = std/0.8796…, values outside ±2σ redrawn."""
    sigma = std / TRUNCATED_NORMAL_STD_FACTOR
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out * sigma


def orthogonal(shape: tuple[int, ...], gain: float, rng: np.random.Generator, unit_axis: int = 0,
               blocks: int = 1) -> np.ndarray:
    """A semi-orthogonal tensor: units (``unit_axis``) × the rest, QR with sign fix, times ``gain``.

    With ``blocks > 1`` the unit axis is cut into ``blocks`` equal parts, each orthogonal on its own
    (one per LSTM gate or attention projection).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError("orthogonal initialization needs a tensor with at least 2 dimensions")
    axis = unit_axis % len(shape)
    moved = (shape[axis],) + tuple(s for i, s in enumerate(shape) if i != axis)
    rows, cols = moved[0], math.prod(moved[1:])
    if blocks < 1 or rows % blocks:
        blocks = 1
    per = rows // blocks
    mat = np.concatenate([_orthogonal_matrix(per, cols, rng) for _ in range(blocks)], axis=0) * gain
    return np.moveaxis(mat.reshape(moved), 0, axis)


def _orthogonal_matrix(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    q = q * d  # Haar-distributed (Mezzadri 2007)
    return q if rows >= cols else q.T


def sample(scheme: Scheme, shape: tuple[int, ...], fan_in: int, fan_out: int, gain: float = 1.0,
           rng: np.random.Generator | None = None, unit_axis: int = 0, blocks: int = 1) -> np.ndarray:
    """Draw a tensor from ``scheme`` for these data-flow fans and gain (float64, ``shape``).

    The std comes from :meth:`initcheck.schemes.Scheme.std`; see the module docstring for the
    distributions. For orthogonal schemes the gain multiplies the orthogonal matrix (when the scheme uses
    gains).
    """
    rng = rng if rng is not None else np.random.default_rng()
    if scheme.distribution == "orthogonal":
        g = gain if scheme.uses_gain else 1.0
        return orthogonal(shape, g, rng, unit_axis, blocks)
    std = scheme.std(fan_in, fan_out, gain, tuple(shape))
    return draw(scheme.distribution, std, shape, rng, unit_axis, blocks)
