"""Streaming statistics of one tensor: a single pass over float64 blocks, any input dtype.

Moments are merged block by block with the pairwise update of Chan, Golub & LeVeque (1979), extended to
third and fourth central moments (Pébay 2008), so the result matches numpy's float64 two-pass values to
rounding while never holding more than one block in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np


@dataclass
class TensorStats:
    """Summary of one tensor. Moments ignore non-finite values; ``nan``/``inf`` count them."""

    count: int = 0
    finite: int = 0
    mean: float = math.nan
    std: float = math.nan  # population std (ddof=0) of the finite values
    min: float = math.nan
    max: float = math.nan
    max_abs: float = math.nan
    zero_fraction: float = math.nan
    nan: int = 0
    inf: int = 0
    excess_kurtosis: float = math.nan
    skewness: float = math.nan
    rms: float = math.nan  # sqrt(mean(w^2)): the scale a zero-mean scheme predicts
    # Per output unit (row of the layer's matrix); None for scalars and 1-D tensors.
    units: int = 0
    constant_units: int = 0  # units whose weights are all equal (no symmetry breaking within the unit)
    duplicate_units: int = 0  # units identical to an earlier unit (symmetry between units not broken)
    unit_std_spread: float = math.nan  # std over units of the per-unit std, relative to the overall std
    unit_rms: np.ndarray | None = field(default=None, repr=False)  # per-unit RMS, for row-level rules
    # Gram matrix of a fixed sample of unit vectors (wide matrices: rows) or of input positions (tall
    # matrices: columns), gathered in the same pass: orthogonality is read from it without a second read.
    sample_gram: np.ndarray | None = field(default=None, repr=False)

    @property
    def std_ratio_max_abs(self) -> float:
        """max|w| / std: √3 for a uniform, ≈2.27 for a 2σ-truncated normal, grows like √(2 ln n) for a normal."""
        return self.max_abs / self.std if self.std and self.std > 0 else math.nan

    def to_json(self) -> dict:
        return {
            "count": self.count,
            "mean": _num(self.mean),
            "std": _num(self.std),
            "min": _num(self.min),
            "max": _num(self.max),
            "max_abs": _num(self.max_abs),
            "zero_fraction": _num(self.zero_fraction),
            "nan": self.nan,
            "inf": self.inf,
            "excess_kurtosis": _num(self.excess_kurtosis),
        }


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class _Moments:
    """Count, mean and central moment sums M2..M4, mergeable."""

    __slots__ = ("n", "mean", "m2", "m3", "m4")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = self.m3 = self.m4 = 0.0

    def add_block(self, x: np.ndarray) -> None:
        nb = x.size
        if nb == 0:
            return
        mb = float(x.mean())
        d = x - mb
        d2 = d * d
        m2b = float(d2.sum())
        m3b = float((d2 * d).sum())
        m4b = float((d2 * d2).sum())
        self._merge(nb, mb, m2b, m3b, m4b)

    def _merge(self, nb: int, mb: float, m2b: float, m3b: float, m4b: float) -> None:
        na = self.n
        if na == 0:
            self.n, self.mean, self.m2, self.m3, self.m4 = nb, mb, m2b, m3b, m4b
            return
        n = na + nb
        delta = mb - self.mean
        d_n = delta / n
        m2 = self.m2 + m2b + delta * d_n * na * nb
        m3 = (
            self.m3
            + m3b
            + delta * d_n * d_n * na * nb * (na - nb)
            + 3.0 * d_n * (na * m2b - nb * self.m2)
        )
        m4 = (
            self.m4
            + m4b
            + delta * d_n**3 * na * nb * (na * na - na * nb + nb * nb)
            + 6.0 * d_n * d_n * (na * na * m2b + nb * nb * self.m2)
            + 4.0 * d_n * (na * m3b - nb * self.m3)
        )
        self.n, self.mean, self.m2, self.m3, self.m4 = n, self.mean + d_n * nb, m2, m3, m4


GRAM_SAMPLE = 64


def compute_stats(blocks: Iterable[np.ndarray], per_unit: bool = True, total_units: int | None = None) -> TensorStats:
    """Statistics of a tensor given as float64 blocks of whole units (see ``TensorRef.blocks``).

    Blocks are 2-D (units, elements_per_unit). Per-unit results (constant and duplicate units, the
    spread of unit scales) are computed when ``per_unit`` is true and units have more than one element.

    Cost per all-finite block of N values: about seven vectorized passes (min, max, zero count, mean,
    the centred copy d and d², row sums of both, and a row hash) and three BLAS dot products; no Python
    loop over elements or rows. Blocks with NaN/Inf take a slower masked path.
    """
    mom = _Moments()
    count = nan = inf = zeros = 0
    lo, hi = math.inf, -math.inf
    sumsq = 0.0
    unit_rms_parts: list[np.ndarray] = []
    unit_std_parts: list[np.ndarray] = []
    constant_units = duplicate_units = 0
    seen: set[tuple[int, int]] = set()
    units = 0
    gram = _GramSample(total_units) if per_unit else None
    for block in blocks:
        b = np.asarray(block, dtype=np.float64)
        if b.ndim != 2:
            b = b.reshape(1, -1)
        if b.size == 0:
            continue
        if gram is not None:
            gram.add(b, units)
        count += b.size
        units += b.shape[0]
        bmin, bmax = float(b.min()), float(b.max())
        if math.isfinite(bmin) and math.isfinite(bmax):  # NaN propagates into min/max, Inf shows in them
            zeros += b.size - int(np.count_nonzero(b))
            lo, hi = min(lo, bmin), max(hi, bmax)
            flat = b.reshape(-1)
            sumsq += float(np.dot(flat, flat))
            mb = float(flat.mean())
            d = b - mb
            d2 = d * d
            d_flat, d2_flat = d.reshape(-1), d2.reshape(-1)
            m2b = float(d2_flat.sum())
            mom._merge(b.size, mb, m2b, float(np.dot(d2_flat, d_flat)), float(np.dot(d2_flat, d2_flat)))
            if per_unit and b.shape[1] > 1:
                per = b.shape[1]
                row_mean_d = d.sum(axis=1) / per
                row_var = np.maximum(d2.sum(axis=1) / per - row_mean_d * row_mean_d, 0.0)
                # constant units: candidates by variance (rounding leaves ~1e-16 relative), confirmed exactly
                candidates = np.nonzero(row_var <= 1e-12 * row_mean_d * row_mean_d + 1e-300)[0]
                if candidates.size:
                    sub = b[candidates]
                    constant = candidates[sub.max(axis=1) == sub.min(axis=1)]
                    constant_units += int(constant.size)
                    row_var[constant] = 0.0  # exactly, not the rounding residue of the formula
                unit_std_parts.append(np.sqrt(row_var))
                # mean(b²) = mean(d²) + 2·mb·mean(d) + mb², with b = d + mb
                unit_rms_parts.append(np.sqrt(np.maximum(row_var + (row_mean_d + mb) ** 2, 0.0)))
                duplicate_units += _count_duplicates(b, seen)
        else:
            finite_mask = np.isfinite(b)
            nan += int(np.isnan(b).sum())
            inf += int(np.isinf(b).sum())
            vals = b[finite_mask]
            if vals.size:
                zeros += int(np.count_nonzero(vals == 0))
                lo = min(lo, float(vals.min()))
                hi = max(hi, float(vals.max()))
                sumsq += float(np.dot(vals, vals))
                mom.add_block(vals)
            if per_unit and b.shape[1] > 1:
                unit_rms_parts.append(np.full(b.shape[0], np.nan))
    st = TensorStats(count=count, nan=nan, inf=inf, finite=mom.n)
    if mom.n:
        n = mom.n
        var = mom.m2 / n
        st.mean = mom.mean
        st.std = math.sqrt(max(var, 0.0))
        st.min, st.max = lo, hi
        st.max_abs = max(abs(lo), abs(hi))
        st.zero_fraction = zeros / n
        st.rms = math.sqrt(sumsq / n)
        if var > 0:
            st.excess_kurtosis = (mom.m4 / n) / (var * var) - 3.0
            st.skewness = (mom.m3 / n) / var**1.5
    if gram is not None:
        st.sample_gram = gram.result()
    if per_unit and unit_rms_parts:
        st.units = units
        st.constant_units = constant_units
        st.duplicate_units = duplicate_units
        st.unit_rms = np.concatenate(unit_rms_parts)
        if unit_std_parts and st.std and st.std > 0:
            st.unit_std_spread = float(np.concatenate(unit_std_parts).std() / st.std)
    return st


class _GramSample:
    """Gram matrix of up to 64 evenly spaced rows (when units ≤ elements per unit) or columns (otherwise)."""

    def __init__(self, total_units: int | None):
        self.total = total_units
        self.rows: list[np.ndarray] = []
        self.cols: np.ndarray | None = None
        self.col_gram: np.ndarray | None = None
        self.mode: str | None = None
        self.row_pick: set[int] = set()

    def add(self, b: np.ndarray, start: int) -> None:
        per = b.shape[1]
        if self.mode is None:
            total = self.total or b.shape[0]
            if per < 2 or total < 2:
                self.mode = "off"
            elif total <= per:
                self.mode = "rows"
                k = min(GRAM_SAMPLE, total)
                self.row_pick = set(np.linspace(0, total - 1, k).round().astype(int).tolist())
            else:
                self.mode = "cols"
                self.cols = np.unique(np.linspace(0, per - 1, min(GRAM_SAMPLE, per)).round().astype(int))
                self.col_gram = np.zeros((self.cols.size, self.cols.size))
        if self.mode == "rows":
            picked = [i - start for i in range(start, start + b.shape[0]) if i in self.row_pick]
            if picked:
                self.rows.append(b[picked])
        elif self.mode == "cols":
            sub = b[:, self.cols]
            self.col_gram += sub.T @ sub

    def result(self) -> np.ndarray | None:
        if self.mode == "rows" and self.rows:
            r = np.concatenate(self.rows)
            return r @ r.T
        if self.mode == "cols":
            return self.col_gram
        return None


# Odd 64-bit multipliers for the row hash (fixed: results must not depend on the run).
_HASH_SEED = 0x9E3779B97F4A7C15
_hash_cache: dict[int, np.ndarray] = {}


def _row_multipliers(n: int) -> np.ndarray:
    m = _hash_cache.get(n)
    if m is None:
        m = np.random.default_rng(_HASH_SEED).integers(1, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        _hash_cache.clear()
        _hash_cache[n] = m
    return m


def _count_duplicates(b: np.ndarray, seen: set[tuple[int, int]]) -> int:
    """Units (rows) bitwise identical to an earlier unit of the same tensor, via two 64-bit row hashes
    (wrapping integer sums of the bits times fixed odd multipliers: exact, order-independent, vectorized).
    Two different rows collide with probability ~2⁻¹²⁸."""
    bits = np.ascontiguousarray(b).view(np.uint64)
    m = _row_multipliers(bits.shape[1])
    with np.errstate(over="ignore"):
        h1 = (bits * m).sum(axis=1, dtype=np.uint64)
        h2 = ((bits ^ (bits >> np.uint64(29))) * m[::-1]).sum(axis=1, dtype=np.uint64)
    dup = 0
    for key in zip(h1.tolist(), h2.tolist()):
        if key in seen:
            dup += 1
        else:
            seen.add(key)
    return dup
