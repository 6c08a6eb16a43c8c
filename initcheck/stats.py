"""Streaming statistics of one tensor: one pass over cache-sized blocks, any input dtype.

Per block of N values x (float32 for every stored dtype up to 32 bits, float64 for float64 tensors):

* extremes and counts: min, max, zeros, subnormals, values exactly at the min and the max;
* shifted power sums S_k = Σ dᵏ, k = 1..4, of d = x·2⁻ᵉ − c: c is a pilot (the median of a small strided
  sample, within one std of the block's mean; 0 when that is as good), 2⁻ᵉ an exact power-of-two scale,
  used only when the block's spread would make d⁴ overflow or underflow (e = 0 otherwise);
* per unit (row of the block): Σd and Σd² by a BLAS matrix-vector product;
* an exact hash of 16 sampled columns per unit (duplicate-unit candidates) and the Gram sample.

The power sums are accumulated in the working dtype by BLAS (``sdot``/``sgemv``) over at most 65536
values each, then turned into central moments in float64,

    M2 = S2 − S1²/N,  M3 = S3 − 3 S1 S2/N + 2 S1³/N²,  M4 = S4 − 4 S1 S3/N + 6 S1² S2/N² − 3 S1⁴/N³,

and blocks are merged in float64 with the pairwise update of Chan, Golub & LeVeque (1979), extended to
the third and fourth moments (Pébay 2008). Because the pilot sits near the mean the cancellation above
is bounded, so float32 accumulation gives ≲1e-6 relative error on the std; ``docs/statistics.md``
states the tolerances and the measured agreement with float64 two-pass numpy.

Exact cases stay exact: a block whose min equals its max is not summed at all (std exactly 0, mean
exactly its value), so a constant tensor has ``std == 0`` and ``min == max``, and counts (zeros, NaN,
Inf, subnormals, values at the extremes) are integers from comparisons, never from floating sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

# Values per block: x and d² (1 MB each in float32) stay in the last-level cache while the ~8 vectorized
# passes run over them, and the per-block Python overhead (~30 numpy calls) stays small (measured:
# 2^18 is ~35% faster than 2^16 on this machine).
BLOCK_ELEMENTS = 1 << 18
GRAM_SAMPLE = 64
HASH_COLUMNS = 16  # columns sampled for the duplicate-unit candidate hash (candidates are confirmed whole)
TAIL_RMS = 6.0  # tail_fraction counts |x| > TAIL_RMS · rms

# Working dtype → ranges of the block's spread outside which d is rescaled by an exact power of two,
# so that Σd⁴ over a block neither overflows nor underflows.
_SAFE_RANGE = {np.dtype(np.float32): (2.0**-24, 2.0**24), np.dtype(np.float64): (2.0**-200, 2.0**200)}

# Smallest normal number of each stored dtype: |x| below it (and ≠ 0) is subnormal.
SMALLEST_NORMAL = {  # literals: np.finfo costs ~20 ms at import
    "float64": 2.0**-1022,
    "float32": 2.0**-126,
    "bfloat16": 2.0**-126,  # bfloat16 has float32's exponent range
    "float16": 2.0**-14,
    "float8_e4m3fn": 2.0**-6,
    "float8_e5m2": 2.0**-14,
}


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
    # From the same pass (added for the judgement; see docs/statistics.md):
    subnormal: int = 0  # finite non-zero values below the smallest normal number of the stored dtype
    min_count: int = 0  # finite values exactly equal to min
    max_count: int = 0  # finite values exactly equal to max
    # the next distinct value inward from each extreme and its count (NaN, 0 when there is none): what a
    # smooth density puts next to the bound, against which a pile-up on the bound is judged
    above_min: float = math.nan
    above_min_count: int = 0
    below_max: float = math.nan
    below_max_count: int = 0
    # fraction of finite values with |x| > TAIL_RMS·rms; exact. Needs a second read of the tensor, done
    # only when max_abs exceeds the threshold (0.0 otherwise); NaN when no second read was possible.
    tail_fraction: float = math.nan

    @property
    def std_ratio_max_abs(self) -> float:
        """max|w| / std: √3 for a uniform, ≈2.27 for a 2σ-truncated normal, grows like √(2 ln n) for a normal."""
        return self.max_abs / self.std if self.std and self.std > 0 else math.nan

    @property
    def bound_fraction(self) -> float:
        """Fraction of finite values sitting exactly on the min or the max (clamp-bound mass).

        ≈2/n for a continuous draw; large for clamped, quantized or ±c-valued tensors. 1.0 for a constant.
        """
        if not self.finite:
            return math.nan
        at = self.min_count if self.min == self.max else self.min_count + self.max_count
        return at / self.finite

    @property
    def subnormal_fraction(self) -> float:
        return self.subnormal / self.finite if self.finite else math.nan

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


NARROW_DTYPES = frozenset({"bfloat16", "float16", "float8_e4m3fn", "float8_e5m2"})
_FLOAT32_MAX, _FLOAT16_MAX = 3.4028234663852886e38, 65504.0


def on_narrow_grid(x: float) -> bool:
    """x is a bfloat16 or float16 value (float32 storage of a model computed in half precision)."""
    if not abs(x) <= _FLOAT32_MAX:  # NaN, ±inf or beyond float32: on no half-precision grid
        return False
    f = np.float32(x)
    if float(f) != x:
        return False
    return int(f.view(np.uint32)) & 0xFFFF == 0 or (abs(x) <= _FLOAT16_MAX and float(np.float16(f)) == x)


def adjacent_on_grid(a: float, b: float, dtype: str) -> bool:
    """a and b are neighbours among the values of ``dtype`` (bfloat16 or float16; no value between)."""
    if dtype not in ("bfloat16", "float16") or not (math.isfinite(a) and math.isfinite(b)) or a == b \
            or (a < 0) != (b < 0) or a == 0 or b == 0:
        return False
    if not (on_narrow_grid(a) and on_narrow_grid(b)):
        return False
    if dtype == "bfloat16":
        ia, ib = int(np.float32(a).view(np.uint32)), int(np.float32(b).view(np.uint32))
        return abs((ia >> 16) - (ib >> 16)) == 1 and ia & 0xFFFF == 0 and ib & 0xFFFF == 0
    ha, hb = np.float16(a), np.float16(b)
    return float(ha) == a and float(hb) == b and abs(int(ha.view(np.uint16)) - int(hb.view(np.uint16))) == 1


def _next_inward(flat: np.ndarray, edge: float, upper: bool, at_edge: np.ndarray, work: np.ndarray) -> float:
    """The largest value below ``edge`` (``upper``; else the smallest above it) of a block reaching it,
    ±inf when there is none; ``at_edge`` is the block's ``flat == edge`` mask. Few values at the edge:
    one reduction over the runs between them (``reduceat``); many: a copy with them replaced by ∓inf."""
    idx = np.flatnonzero(at_edge)
    if idx.size * 64 > flat.size:
        work[...] = flat
        work[at_edge] = -np.inf if upper else np.inf
        return float(work.max() if upper else work.min())
    bounds = np.empty(2 * idx.size + 1, np.intp)
    bounds[0], bounds[1::2], bounds[2::2] = 0, idx, idx + 1
    if bounds[-1] >= flat.size:
        bounds = bounds[:-1]
    runs = (np.maximum if upper else np.minimum).reduceat(flat, bounds)[::2]
    runs = runs[runs != edge]  # an empty run (adjacent edge values) reduces to its first value: the edge
    if not runs.size:
        return -math.inf if upper else math.inf
    return float(runs.max() if upper else runs.min())


def _known_after(first: float, known: bool, pairs: list[tuple[float, int]], part_known: bool,
                 upper: bool) -> bool:
    """Whether the next value inward stays exact after merging a part whose extreme is ``pairs[0]``:
    it follows whoever holds the merged extreme (both, on a tie)."""
    if not pairs or not pairs[0][1]:
        return known
    edge = pairs[0][0]
    if edge == first:
        return known and part_known
    return part_known if (edge > first if upper else edge < first) else known


def _two_extremes(pairs: list[tuple[float, int]], upper: bool) -> list[tuple[float, int]]:
    """The two most extreme distinct values of (value, count) pairs, counts summed; (±inf, 0) pads."""
    counts: dict[float, int] = {}
    for v, c in pairs:
        if c:
            counts[v] = counts.get(v, 0) + c
    keys = sorted(counts, reverse=upper)[:2]
    pad = (-math.inf, 0) if upper else (math.inf, 0)
    return ([(k, counts[k]) for k in keys] + [pad, pad])[:2]


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


# ------------------------------------------------------------------------------------------ moments
class _Moments:
    """Count, mean and central moment sums M2..M4 stored as Mk·2^(−k·e), mergeable (Chan/Pébay).

    The exponent ``e`` keeps M2..M4 of huge values (1e200: M2 ~ n·1e400) representable; it is 0 for
    every ordinary tensor, where the ``ldexp`` calls are no-ops.
    """

    __slots__ = ("n", "mean", "m2", "m3", "m4", "e")

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = self.m3 = self.m4 = 0.0
        self.e = 0

    def merge(self, nb: int, mb: float, m2b: float, m3b: float, m4b: float, eb: int) -> None:
        """Add a part: nb values, mean mb, central sums (m2b, m3b, m4b) scaled by 2^(−k·eb)."""
        if nb == 0:
            return
        na = self.n
        if na == 0:
            self.n, self.mean, self.m2, self.m3, self.m4, self.e = nb, mb, m2b, m3b, m4b, eb
            return
        delta_full = mb - self.mean
        e = max(self.e, eb)
        if not math.isfinite(delta_full) or (delta_full and math.frexp(delta_full)[1] - e > 500):
            # means far apart relative to the spread: a common exponent that keeps δ ~ 1
            e = max(e, math.frexp(max(abs(mb), abs(self.mean)))[1] + 1)
        a2, a3, a4 = (math.ldexp(self.m2, 2 * (self.e - e)), math.ldexp(self.m3, 3 * (self.e - e)),
                      math.ldexp(self.m4, 4 * (self.e - e)))
        b2, b3, b4 = math.ldexp(m2b, 2 * (eb - e)), math.ldexp(m3b, 3 * (eb - e)), math.ldexp(m4b, 4 * (eb - e))
        delta = math.ldexp(mb, -e) - math.ldexp(self.mean, -e)
        n = na + nb
        d_n = delta / n
        m2 = a2 + b2 + delta * d_n * na * nb
        m3 = a3 + b3 + delta * d_n * d_n * na * nb * (na - nb) + 3.0 * d_n * (na * b2 - nb * a2)
        m4 = (a4 + b4 + delta * d_n**3 * na * nb * (na * na - na * nb + nb * nb)
              + 6.0 * d_n * d_n * (na * na * b2 + nb * nb * a2) + 4.0 * d_n * (na * b3 - nb * a3))
        self.mean = self.mean + math.ldexp(d_n * nb, e) if delta else self.mean
        self.n, self.m2, self.m3, self.m4, self.e = n, m2, m3, m4, e

    def merge_from(self, other: "_Moments") -> None:
        self.merge(other.n, other.mean, other.m2, other.m3, other.m4, other.e)


def _central(n: int, s1: float, s2: float, s3: float, s4: float) -> tuple[float, float, float, float]:
    """(mean, M2, M3, M4) of the shifted values from their power sums, in float64."""
    mu = s1 / n
    m2 = max(s2 - s1 * mu, 0.0)
    m3 = s3 - 3.0 * mu * s2 + 2.0 * n * mu**3
    m4 = max(s4 - 4.0 * mu * s3 + 6.0 * mu * mu * s2 - 3.0 * n * mu**4, 0.0)
    return mu, m2, m3, m4


_ROW = 256
_DOT = 1 << 16  # values per float32 dot product: longer ones drift on equal-magnitude values


def _dots(d2f: np.ndarray, df: np.ndarray) -> tuple[float, float]:
    """(Σd³, Σd⁴) as float64 sums of BLAS dot products over at most 65536 values each."""
    if d2f.size <= _DOT:
        return float(np.dot(d2f, df)), float(np.dot(d2f, d2f))
    s3 = s4 = 0.0
    for i in range(0, d2f.size, _DOT):
        a, b = d2f[i:i + _DOT], df[i:i + _DOT]
        s3 += float(np.dot(a, b))
        s4 += float(np.dot(a, a))
    return s3, s4


def _sums(df: np.ndarray, d2f: np.ndarray, sc: "_Scratch") -> tuple[float, float]:
    """(Σd, Σd²) of a flat block as float64 sums of 256-value partial sums (one BLAS matrix-vector
    product each): a single float32 dot over 65536 values of equal magnitude (±c tensors) drifts by
    ~1e-5 relative; partial sums of 256 keep it near 1e-7."""
    n = df.size
    k = n - n % _ROW
    ones = sc.ones(_ROW, df.dtype)
    s1 = float(np.dot(df[:k].reshape(-1, _ROW), ones).sum(dtype=np.float64)) if k else 0.0
    s2 = float(np.dot(d2f[:k].reshape(-1, _ROW), ones).sum(dtype=np.float64)) if k else 0.0
    if k < n:
        s1 += float(df[k:].sum(dtype=np.float64))
        s2 += float(d2f[k:].sum(dtype=np.float64))
    return s1, s2


# ------------------------------------------------------------------------------------- accumulator
class _Scratch:
    """Per-thread reusable buffers (float work arrays, a bool mask, ones vectors)."""

    def __init__(self) -> None:
        self._bufs: dict[tuple, np.ndarray] = {}

    def get(self, key: str, n: int, dtype: np.dtype) -> np.ndarray:
        k = (key, np.dtype(dtype).str)
        b = self._bufs.get(k)
        if b is None or b.size < n:
            b = np.empty(max(n, BLOCK_ELEMENTS), dtype=dtype)
            self._bufs[k] = b
        return b[:n]

    def ones(self, n: int, dtype: np.dtype) -> np.ndarray:
        k = ("ones", np.dtype(dtype).str)
        b = self._bufs.get(k)
        if b is None or b.size < n:
            b = np.ones(max(n, BLOCK_ELEMENTS), dtype=dtype)
            self._bufs[k] = b
        return b[:n]


# Odd 64-bit multipliers for the row hashes (fixed: results must not depend on the run).
_HASH_SEED = 0x9E3779B97F4A7C15
_hash_cache: dict[int, np.ndarray] = {}


def _row_multipliers(n: int) -> np.ndarray:
    m = _hash_cache.get(n)
    if m is None:
        m = np.random.default_rng(_HASH_SEED).integers(1, 2**63, size=n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        if len(_hash_cache) > 16:
            _hash_cache.clear()
        _hash_cache[n] = m
    return m


def row_hashes(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes per row of the exact bits (wrapping sums of bits × fixed odd multipliers).
    Two different rows collide with probability ~2⁻¹²⁸; equal rows always hash equal. Any row length."""
    b = np.ascontiguousarray(b)
    bits = b.view({8: np.uint64, 4: np.uint32, 2: np.uint16, 1: np.uint8}[b.dtype.itemsize]).astype(np.uint64)
    m = _row_multipliers(bits.shape[1])
    with np.errstate(over="ignore"):
        h1 = (bits * m).sum(axis=1, dtype=np.uint64)
        h2 = ((bits ^ (bits >> np.uint64(29))) * m[::-1]).sum(axis=1, dtype=np.uint64)
    return h1, h2


def sample_hashes(b: np.ndarray) -> np.ndarray:
    """(rows, 2) uint64 exact hashes of each row's bits (:func:`row_hashes`), for duplicate candidates."""
    h1, h2 = row_hashes(b)
    return np.stack([h1, h2], axis=1)


def sample_columns(per: int, k: int = HASH_COLUMNS) -> slice | np.ndarray:
    """min(k, per) evenly spaced columns of a row of ``per`` values: a strided slice (a view, cheap)
    when ``per ≥ 2k``, all columns when ``per ≤ k``, an index array in between."""
    if per <= k:
        return slice(None)
    if per >= 2 * k:
        step = per // k
        return slice(0, step * k, step)
    return np.linspace(0, per - 1, k).round().astype(np.intp)


class StatsAccumulator:
    """Statistics of one tensor (or of a run of its units), fed block by block; mergeable.

    ``add(x, start)`` takes a decoded, C-contiguous (units_in_block, elements_per_unit) float32/float64
    block whose first unit is unit ``start`` of the tensor. ``merge(other)`` appends the accumulator of
    the units that follow. ``result(read_rows)`` finishes: ``read_rows(indices)`` returns those units as
    a float array, for the exact confirmation of duplicate-unit candidates (units sharing the hash of
    their HASH_COLUMNS sampled columns); without it, candidates count as duplicates when the sample is
    the whole unit, and are confirmed from nothing else otherwise (see :func:`compute_stats`).
    """

    def __init__(self, per_unit: bool = True, total_units: int | None = None, stored_dtype: str = "float64",
                 scratch: _Scratch | None = None):
        self.per_unit = per_unit
        self.total_units = total_units
        self.tiny = SMALLEST_NORMAL.get(stored_dtype, SMALLEST_NORMAL["float64"])
        self.scratch = scratch or _Scratch()
        self.mom = _Moments()
        self.count = self.nan = self.inf = self.zeros = self.subnormal = 0
        self.lo, self.hi = math.inf, -math.inf
        self.lo_count = self.hi_count = 0
        self.lo2, self.hi2 = math.inf, -math.inf  # the next distinct values inward, and their counts
        self.lo2_count = self.hi2_count = 0
        self.lo2_known = self.hi2_known = True  # False: a part reaching the extreme did not look inward
        self.stored_dtype = stored_dtype
        self.narrow = stored_dtype in NARROW_DTYPES
        self.units = 0
        self.constant_units = 0
        self.row_mean: list[np.ndarray] = []
        self.row_std: list[np.ndarray] = []
        self.keys: list[tuple[np.ndarray, np.ndarray]] = []  # (unit indices, sample hashes), finite units
        # sampled columns of blocks not yet hashed: (first unit, values, True | False | finite-unit mask)
        self.pending: list[tuple[int, np.ndarray, bool | np.ndarray]] = []
        self.gram = _GramSample(total_units) if per_unit else None
        self.per: int | None = None

    # ------------------------------------------------------------------ feeding
    def add(self, x: np.ndarray, start: int | None = None) -> None:
        if x.ndim != 2:
            x = x.reshape(1, -1)
        if x.size == 0:
            return
        if start is None:
            start = self.units
        self.per = x.shape[1]
        self.count += x.size
        self.units += x.shape[0]
        lo, hi = float(np.minimum.reduce(x, axis=None)), float(np.maximum.reduce(x, axis=None))
        finite = math.isfinite(lo) and math.isfinite(hi)  # NaN propagates into min/max, Inf shows in them
        per_unit = self.per_unit and x.shape[1] > 1
        if per_unit:
            self.gram.add_rows(x, start)
            self.pending.append((start, np.array(x[:, sample_columns(x.shape[1])], copy=True), finite))
        if finite:
            self._add_finite(x, lo, hi, per_unit)
        else:
            self._add_nonfinite(x, per_unit)

    def _add_finite(self, x: np.ndarray, lo: float, hi: float, per_unit: bool) -> tuple | None:
        """Moments of a finite block; returns (d, d², pilot, exponent) of d = x·2^(−e) − pilot, or
        None for a constant block (no sums)."""
        n = x.size
        flat = x.reshape(-1)
        if lo == hi:  # constant block: exact, no sums
            self._extremes(flat, lo, hi, True)
            self.mom.merge(n, lo, 0.0, 0.0, 0.0, 0)
            if per_unit:
                self.row_mean.append(np.full(x.shape[0], lo))
                self.row_std.append(np.zeros(x.shape[0]))
                self.constant_units += x.shape[0]
            return None
        wd = x.dtype
        sc = self.scratch
        # pilot: median of a strided sample (within ~1 std of the mean); 0 when that is as good, which
        # saves the subtraction for the zero-centred tensors most initializers draw
        sample = flat[:: max(1, n // 33)][:33].tolist()
        sample.sort()
        k = len(sample)
        c = sample[k // 2]
        if abs(c) <= 2.0 * (sample[(3 * k) // 4] - sample[k // 4]):
            c = 0.0
        safe_lo, safe_hi = _SAFE_RANGE[wd]
        spread = hi - lo
        e = 0
        if not (safe_lo <= spread <= safe_hi):
            ref = spread if math.isfinite(spread) else 2.0 * max(abs(lo), abs(hi))
            e = math.frexp(ref)[1]  # d = x·2^(−e) − c' has |d| ≲ 1: Σd⁴ cannot overflow or underflow
            d = sc.get("d", n, wd).reshape(x.shape)
            np.ldexp(x, -e, out=d)
            cs = float(wd.type(math.ldexp(c, -e)))  # the pilot actually subtracted, in scaled units
            if cs:
                np.subtract(d, cs, out=d)
        elif c:
            cs = c
            d = sc.get("d", n, wd).reshape(x.shape)
            np.subtract(x, c, out=d)
        else:
            cs, d = 0.0, x
        d2 = sc.get("d2", n, wd).reshape(x.shape)
        np.multiply(d, d, out=d2)
        df, d2f = d.reshape(-1), d2.reshape(-1)
        if d is x:  # x² is 0 for every |x| < 2.6e-23 (float32): no zero in x² means no zero or subnormal
            maybe_small = bool(np.count_nonzero(np.equal(d2f, 0, out=sc.get("mask", n, np.bool_))))
        else:
            maybe_small = True
        self._extremes(flat, lo, hi, maybe_small)
        if per_unit:
            ones = sc.ones(x.shape[1], wd)
            rs1 = np.dot(d, ones).astype(np.float64)
            rs2 = np.dot(d2, ones).astype(np.float64)
            s1, s2 = float(rs1.sum()), float(rs2.sum())
        else:
            s1, s2 = _sums(df, d2f, sc)
        s3, s4 = _dots(d2f, df)
        mu, m2, m3, m4 = _central(n, s1, s2, s3, s4)
        self.mom.merge(n, math.ldexp(cs + mu, e), m2, m3, m4, e)
        if per_unit:
            self._per_unit(x, rs1, rs2, cs, e)
        return d, d2, cs, e

    def _extremes(self, flat: np.ndarray, lo: float, hi: float, maybe_small: bool) -> None:
        """Zeros, subnormals and the counts at the extremes; each pass skipped when it cannot count
        (``maybe_small`` false: the caller has shown that no |x| is below the smallest normal)."""
        n = flat.size
        mask = self.scratch.get("mask", n, np.bool_)
        if maybe_small and lo < self.tiny and hi > -self.tiny:  # some |x| may be below the smallest normal
            a = self.scratch.get("abs", n, flat.dtype)
            np.abs(flat, out=a)
            small = int(np.count_nonzero(np.less(a, self.tiny, out=mask)))
            if small:
                zeros = int(np.count_nonzero(np.equal(flat, 0, out=mask))) if lo <= 0.0 <= hi else 0
                self.zeros += zeros
                self.subnormal += small - zeros
        # a block's counts at its extremes matter only if they reach the running two most extreme
        # values (rarely, after the first blocks): exact, and almost free
        (lows, lo_known), (highs, hi_known) = (self._block_end(flat, lo, hi, mask, upper=False),
                                               self._block_end(flat, hi, lo, mask, upper=True))
        self._merge_ends(lows, highs, lo_known, hi_known)

    def _block_end(self, flat: np.ndarray, edge: float, other: float, mask: np.ndarray,
                   upper: bool) -> tuple[list[tuple[float, int]], bool]:
        """(value, count) of the block's extreme and, when it reaches the running extreme, of its next
        distinct value inward: exact for every value at or beyond the running second extreme. The next
        value costs a masked pass, spent only on values that lie on a bfloat16/float16 grid (stored so,
        or float32 holding such values: where pile-ups on a bound happen); otherwise it is marked unknown."""
        first, second = (self.hi, self.hi2) if upper else (self.lo, self.lo2)
        beyond = (lambda a, b: a >= b) if upper else (lambda a, b: a <= b)
        if not beyond(edge, second):
            return [], True
        out = [(edge, int(np.count_nonzero(np.equal(flat, edge, out=mask))))]
        if not beyond(edge, first) or edge == other:
            return out, True
        known = self.hi2_known if upper else self.lo2_known
        if edge == first and known and adjacent_on_grid(edge, second, self.stored_dtype):
            # nothing lies between the running extreme and its neighbour on the grid: the block's next
            # value inward is that neighbour or farther, so its count there is all that can matter
            return out + [(second, int(np.count_nonzero(np.equal(flat, second, out=mask))))], True
        if not (self.narrow or on_narrow_grid(edge)):
            return out, False
        nxt = _next_inward(flat, edge, upper, mask, self.scratch.get("inward", flat.size, flat.dtype))
        out.append((nxt, int(np.count_nonzero(np.equal(flat, nxt, out=mask)))))
        return out, True

    def _ends(self) -> tuple[list[tuple[float, int]], list[tuple[float, int]]]:
        return ([(self.lo, self.lo_count), (self.lo2, self.lo2_count)],
                [(self.hi, self.hi_count), (self.hi2, self.hi2_count)])

    def _merge_ends(self, lows: list[tuple[float, int]], highs: list[tuple[float, int]],
                    lo_known: bool = True, hi_known: bool = True) -> None:
        """Fold a part's (value, count) pairs into the two most extreme distinct values at each end
        (exact: the two most extreme of a union are among the two most extreme of each part). The next
        value is known when every part holding the extreme knew its own."""
        cur_lo, cur_hi = self._ends()
        self.lo2_known = _known_after(self.lo, self.lo2_known, lows, lo_known, upper=False)
        self.hi2_known = _known_after(self.hi, self.hi2_known, highs, hi_known, upper=True)
        (self.lo, self.lo_count), (self.lo2, self.lo2_count) = _two_extremes(cur_lo + lows, upper=False)
        (self.hi, self.hi_count), (self.hi2, self.hi2_count) = _two_extremes(cur_hi + highs, upper=True)

    def _per_unit(self, x: np.ndarray, rs1: np.ndarray, rs2: np.ndarray, cs: float, e: int) -> None:
        """Per-row mean and std from the row sums of d and d² (d = x·2^(−e) − cs)."""
        per = x.shape[1]
        mu = rs1 / per
        var = np.maximum(rs2 / per - mu * mu, 0.0)
        # constant units: candidates by variance (float32 sums leave ~1e-6 relative), confirmed exactly
        tol = 1e-4 if x.dtype == np.float32 else 1e-12
        candidates = np.nonzero(var <= tol * mu * mu)[0]
        row_mean = np.ldexp(cs + mu, e) if e else cs + mu
        if candidates.size:
            sub = x[candidates]
            constant = candidates[sub.max(axis=1) == sub.min(axis=1)]
            self.constant_units += int(constant.size)
            var[constant] = 0.0  # exactly, not the rounding residue of the formula
            row_mean[constant] = x[constant, 0]
        self.row_mean.append(row_mean)
        self.row_std.append(np.ldexp(np.sqrt(var), e) if e else np.sqrt(var))

    def _add_nonfinite(self, x: np.ndarray, per_unit: bool) -> None:
        b = np.asarray(x, dtype=np.float64).reshape(-1)
        self.nan += int(np.count_nonzero(np.isnan(b)))
        self.inf += int(np.count_nonzero(np.isinf(b)))
        vals = b[np.isfinite(b)]
        if vals.size:
            self._add_finite(vals.reshape(1, -1), float(vals.min()), float(vals.max()), False)
        if per_unit:  # units with a NaN/Inf get NaN figures; the block's other units exact, in float64
            rows = b.reshape(x.shape)
            ok = np.isfinite(rows).all(axis=1)
            mean = np.full(x.shape[0], np.nan)
            std = np.full(x.shape[0], np.nan)
            if ok.any():
                good = rows[ok]
                mean[ok] = good.mean(axis=1)
                std[ok] = good.std(axis=1)
                constant = good.max(axis=1) == good.min(axis=1)
                std[np.nonzero(ok)[0][constant]] = 0.0
                self.constant_units += int(constant.sum())
            self.row_mean.append(mean)
            self.row_std.append(std)
            if self.pending:  # the block's sampled columns: only its finite units are candidates
                start, sample, _ = self.pending[-1]
                self.pending[-1] = (start, sample, ok)

    def add_long_unit(self, sub: "StatsAccumulator", sample: np.ndarray, start: int) -> None:
        """Fold in one unit longer than a block, accumulated separately in pieces (``sub``, without
        per-unit figures); ``sample`` holds its values at the HASH_COLUMNS sampled positions. Such
        units take no part in the Gram sample."""
        self.count += sub.count
        self.nan += sub.nan
        self.inf += sub.inf
        self.zeros += sub.zeros
        self.subnormal += sub.subnormal
        self._merge_ends(*sub._ends(), sub.lo2_known, sub.hi2_known)
        self.mom.merge_from(sub.mom)
        self.units += 1
        self.per = sub.count
        if not self.per_unit:
            return
        finite = not (sub.nan or sub.inf) and sub.mom.n > 0
        self.pending.append((start, np.asarray(sample).reshape(1, -1), finite))
        if not finite:
            self.row_mean.append(np.full(1, np.nan))
            self.row_std.append(np.full(1, np.nan))
            return
        constant = sub.lo == sub.hi
        self.constant_units += int(constant)
        m = sub.mom
        std = 0.0 if constant else math.ldexp(math.sqrt(m.m2 / m.n), m.e)
        self.row_mean.append(np.full(1, sub.lo if constant else m.mean))
        self.row_std.append(np.full(1, std))

    def seal(self) -> None:
        """Hash the pending sampled columns (duplicate candidates) in one batch per chunk rather than
        per block, and free them."""
        fin = [(s, v, ok) for s, v, ok in self.pending if ok is not False]
        if fin:
            h = sample_hashes(np.concatenate([v for _, v, _ in fin]))
            starts = np.concatenate([np.arange(s, s + v.shape[0]) for s, v, _ in fin])
            keep = np.concatenate([np.ones(v.shape[0], bool) if ok is True else ok for _, v, ok in fin])
            self.keys.append((starts[keep], h[keep]))
        self.pending = []
        if self.gram is not None:
            self.gram.flush()

    # ------------------------------------------------------------------ merging and finishing
    def merge(self, other: "StatsAccumulator") -> None:
        """Append ``other``, the accumulator of the units that follow this one's (exact, order-preserving)."""
        self.seal()
        other.seal()
        self.mom.merge_from(other.mom)
        self.count += other.count
        self.nan += other.nan
        self.inf += other.inf
        self.zeros += other.zeros
        self.subnormal += other.subnormal
        self._merge_ends(*other._ends(), other.lo2_known, other.hi2_known)
        self.units += other.units
        self.constant_units += other.constant_units
        self.row_mean += other.row_mean
        self.row_std += other.row_std
        self.keys += other.keys
        self.per = self.per or other.per
        if self.gram is not None and other.gram is not None:
            self.gram.merge(other.gram)

    def result(self, read_rows: Callable[[np.ndarray], np.ndarray] | None = None) -> TensorStats:
        self.seal()
        st = TensorStats(count=self.count, nan=self.nan, inf=self.inf, finite=self.mom.n)
        mom = self.mom
        if mom.n:
            n = mom.n
            st.mean = mom.mean
            st.min, st.max = self.lo, self.hi
            st.min_count, st.max_count = self.lo_count, self.hi_count
            if self.lo2_count and self.lo2_known:
                st.above_min, st.above_min_count = self.lo2, self.lo2_count
            if self.hi2_count and self.hi2_known:
                st.below_max, st.below_max_count = self.hi2, self.hi2_count
            st.max_abs = max(abs(self.lo), abs(self.hi))
            st.zero_fraction = self.zeros / n
            st.subnormal = self.subnormal
            var_s = 0.0 if self.lo == self.hi else mom.m2 / n  # variance · 2^(−2e)
            st.std = math.ldexp(math.sqrt(var_s), mom.e)
            st.rms = math.hypot(st.mean, st.std)
            if var_s > 0:
                st.excess_kurtosis = (mom.m4 / n) / (var_s * var_s) - 3.0
                st.skewness = (mom.m3 / n) / var_s**1.5
            if not st.max_abs > TAIL_RMS * st.rms:
                st.tail_fraction = 0.0
        if self.gram is not None:
            st.sample_gram = self.gram.result()
        if self.per_unit and self.row_mean:
            st.units = self.units
            st.constant_units = self.constant_units
            st.duplicate_units = self._duplicates(read_rows)
            mean = np.concatenate(self.row_mean)
            std = np.concatenate(self.row_std)
            st.unit_rms = np.hypot(mean, std)
            finite_rows = std[np.isfinite(std)]
            if finite_rows.size and st.std and st.std > 0:
                st.unit_std_spread = float((finite_rows / st.std).std())
        return st

    def _duplicates(self, read_rows: Callable[[np.ndarray], np.ndarray] | None) -> int:
        """Units identical to an earlier unit: candidates share the sampled-column hash; confirmed on
        the whole unit (re-read through ``read_rows``) unless the sample is the whole unit."""
        if not self.keys:
            return 0
        starts = np.concatenate([k[0] for k in self.keys])
        h = np.concatenate([k[1] for k in self.keys])
        first = np.sort(h[:, 0])
        if not (first[1:] == first[:-1]).any():  # the common case: no two units share even one hash
            return 0
        order = np.lexsort((starts, *h.T[::-1]))
        hs = h[order]
        same = (hs[1:] == hs[:-1]).all(axis=1)
        if not same.any():
            return 0
        if read_rows is None or (self.per is not None and self.per <= HASH_COLUMNS):
            return int(same.sum())  # exact when the sample is the whole unit
        in_group = np.zeros(order.size, bool)
        in_group[1:] |= same
        in_group[:-1] |= same
        candidates = np.sort(starts[order[in_group]])
        seen: set[tuple[int, int]] = set()
        dup = 0
        step = max(1, BLOCK_ELEMENTS * 16 // max(self.per or 1, 1))
        for i in range(0, candidates.size, step):
            f1, f2 = row_hashes(read_rows(candidates[i:i + step]))
            for key in zip(f1.tolist(), f2.tolist()):
                if key in seen:
                    dup += 1
                else:
                    seen.add(key)
        return dup


class ColumnUnitsAccumulator:
    """Statistics of a tensor whose units are its last, contiguous axis (Keras kernels, transformers'
    Conv1D): blocks are runs of stored rows (positions × all units), read in storage order with no
    transposing copy; per-unit moments are column sums of d and d² (a BLAS vector-matrix product per
    block), merged across blocks with the vectorized Chan update; constant units come from exact
    column minima and maxima. ``add(x, start)``: x is (rows, units), ``start`` its first row.
    """

    def __init__(self, units: int, positions: int, stored_dtype: str = "float64", scratch: _Scratch | None = None):
        self.flat = StatsAccumulator(False, None, stored_dtype, scratch)
        self.scratch = self.flat.scratch
        self.U, self.R = units, positions
        self.rows = 0
        self.mean = np.zeros(units)
        self.m2 = np.zeros(units)  # M2 per unit · 2^(−2e)
        self.e = 0
        self.cmin = np.full(units, np.inf)
        self.cmax = np.full(units, -np.inf)
        self.bad = np.zeros(units, bool)  # units with a NaN/Inf
        k = min(HASH_COLUMNS, positions)
        self.hash_pos = np.unique(np.linspace(0, positions - 1, k).round().astype(np.intp))
        self.hash_rows: list[tuple[int, np.ndarray]] = []
        self.gram_mode = "off" if units < 2 or positions < 2 else ("rows" if units <= positions else "cols")
        if self.gram_mode == "rows":  # Gram of sampled units: columns here
            self.gram_pick = np.unique(np.linspace(0, units - 1, min(GRAM_SAMPLE, units)).round().astype(np.intp))
        elif self.gram_mode == "cols":  # Gram of sampled input positions (the rows layout's columns): stored rows
            self.gram_pick = np.arange(positions)[sample_columns(positions, GRAM_SAMPLE)]
        self.gram = None
        self.gram_rows: list[tuple[int, np.ndarray]] = []

    def add(self, x: np.ndarray, start: int) -> None:
        nb = x.shape[0]
        flat = self.flat
        flat.count += x.size
        flat.units += nb
        bmin, bmax = np.minimum.reduce(x, axis=0), np.maximum.reduce(x, axis=0)
        lo, hi = float(bmin.min()), float(bmax.max())
        if math.isfinite(lo) and math.isfinite(hi):
            info = flat._add_finite(x, lo, hi, False)
            if info is None:
                self._merge_cols(nb, np.full(self.U, lo), np.zeros(self.U), 0)
            else:
                d, d2, cs, e = info
                ones = self.scratch.ones(nb, x.dtype)
                s1 = np.dot(ones, d).astype(np.float64)
                s2 = np.dot(ones, d2).astype(np.float64)
                mu = s1 / nb
                m2 = np.maximum(s2 - s1 * mu, 0.0)
                self._merge_cols(nb, np.ldexp(cs + mu, e) if e else cs + mu, m2, e)
        else:
            flat._add_nonfinite(x, False)
            ok = np.isfinite(x)
            self.bad |= ~ok.all(axis=0)
            xf = np.where(ok, x, 0).astype(np.float64)
            mu = xf.mean(axis=0)
            self._merge_cols(nb, mu, ((xf - mu) ** 2).sum(axis=0), 0)
            bmin, bmax = np.where(ok, x, np.inf).min(axis=0), np.where(ok, x, -np.inf).max(axis=0)
        np.minimum(self.cmin, bmin, out=self.cmin)
        np.maximum(self.cmax, bmax, out=self.cmax)
        self._samples(x, start)

    def _samples(self, x: np.ndarray, start: int) -> None:
        stop = start + x.shape[0]
        for pos_list, out in ((self.hash_pos, self.hash_rows),
                              (self.gram_pick if self.gram_mode == "cols" else None, self.gram_rows)):
            if pos_list is None:
                continue
            lo, hi = np.searchsorted(pos_list, start), np.searchsorted(pos_list, stop)
            if hi > lo:
                out.append((start, np.array(x[pos_list[lo:hi] - start], copy=True)))
        if self.gram_mode == "rows":
            sub = np.asarray(x[:, self.gram_pick], dtype=np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                g = sub.T @ sub
                self.gram = g if self.gram is None else self.gram + g

    def _merge_cols(self, nb: int, mean_b: np.ndarray, m2_b: np.ndarray, eb: int) -> None:
        """Vectorized Chan update of every unit's (n, mean, M2) with a block of nb rows."""
        na = self.rows
        if na == 0:
            self.e = eb
        if eb > self.e:
            self.m2 = np.ldexp(self.m2, 2 * (self.e - eb))
            self.e = eb
        if eb < self.e:
            m2_b = np.ldexp(m2_b, 2 * (eb - self.e))
        if na == 0:
            self.mean, self.m2 = np.asarray(mean_b, dtype=np.float64).copy(), m2_b
        else:
            n = na + nb
            delta = np.ldexp(mean_b, -self.e) - np.ldexp(self.mean, -self.e) if self.e else mean_b - self.mean
            self.m2 = self.m2 + m2_b + delta * delta * (na * nb / n)
            self.mean = self.mean + (np.ldexp(delta, self.e) if self.e else delta) * (nb / n)
        self.rows = na + nb

    def merge(self, other: "ColumnUnitsAccumulator") -> None:
        """Append ``other``, the accumulator of the rows that follow."""
        self.flat.merge(other.flat)
        if other.rows:
            m2o = other.m2
            if other.e != self.e and self.rows:
                e = max(self.e, other.e)
                self.m2, m2o, self.e = np.ldexp(self.m2, 2 * (self.e - e)), np.ldexp(m2o, 2 * (other.e - e)), e
            elif not self.rows:
                self.e = other.e
            na, nb = self.rows, other.rows
            if na == 0:
                self.mean, self.m2 = other.mean.copy(), m2o.copy()
            else:
                n = na + nb
                delta = np.ldexp(other.mean, -self.e) - np.ldexp(self.mean, -self.e)
                self.m2 = self.m2 + m2o + delta * delta * (na * nb / n)
                self.mean = self.mean + np.ldexp(delta, self.e) * (nb / n)
            self.rows = na + nb
        np.minimum(self.cmin, other.cmin, out=self.cmin)
        np.maximum(self.cmax, other.cmax, out=self.cmax)
        self.bad |= other.bad
        self.hash_rows += other.hash_rows
        self.gram_rows += other.gram_rows
        if other.gram is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                self.gram = other.gram.copy() if self.gram is None else self.gram + other.gram

    def result(self, read_units: Callable[[np.ndarray], np.ndarray] | None = None) -> TensorStats:
        st = self.flat.result()
        if not self.rows:
            return st
        std = np.ldexp(np.sqrt(self.m2 / self.rows), self.e)
        mean = self.mean.copy()
        constant = (self.cmin == self.cmax) & ~self.bad
        std[constant] = 0.0
        mean[constant] = self.cmin[constant]
        std[self.bad] = np.nan
        mean[self.bad] = np.nan
        st.units = self.U
        st.constant_units = int(constant.sum())
        st.unit_rms = np.hypot(mean, std)
        good = std[~self.bad]
        if good.size and st.std and st.std > 0:
            st.unit_std_spread = float((good / st.std).std())
        st.duplicate_units = self._duplicates(read_units)
        if self.gram_mode == "rows":
            st.sample_gram = self.gram
        elif self.gram_mode == "cols" and self.gram_rows:
            rows = np.concatenate([r for _, r in sorted(self.gram_rows, key=lambda sr: sr[0])]).astype(np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                st.sample_gram = rows @ rows.T
        return st

    def _duplicates(self, read_units: Callable[[np.ndarray], np.ndarray] | None) -> int:
        if not self.hash_rows or self.U < 2:
            return 0
        sample = np.concatenate([r for _, r in sorted(self.hash_rows, key=lambda sr: sr[0])])  # (k, U)
        good = np.nonzero(~self.bad)[0]
        acc = StatsAccumulator(True, self.U, scratch=self.scratch)
        acc.keys = [(good, sample_hashes(np.ascontiguousarray(sample.T[good])))]
        acc.per = self.R if self.R > sample.shape[0] else sample.shape[0]
        return acc._duplicates(read_units if self.R > sample.shape[0] else None)


class _GramSample:
    """Gram matrix of up to 64 evenly spaced rows (when units ≤ elements per unit) or of the sampled
    columns (``sample_columns``, otherwise), of the values as stored, widened to float64."""

    def __init__(self, total_units: int | None):
        self.total = total_units
        self.rows: list[tuple[int, np.ndarray]] = []
        self.col_gram: np.ndarray | None = None
        self.pending: list[np.ndarray] = []
        self.mode: str | None = None
        self.row_pick: np.ndarray | None = None

    def _setup(self, per: int, units: int) -> None:
        total = self.total or units
        if per < 2 or total < 2:
            self.mode = "off"
        elif total <= per:
            self.mode = "rows"
            k = min(GRAM_SAMPLE, total)
            self.row_pick = np.unique(np.linspace(0, total - 1, k).round().astype(np.intp))
        else:
            self.mode = "cols"

    def add_rows(self, b: np.ndarray, start: int) -> None:
        if self.mode is None:
            self._setup(b.shape[1], b.shape[0])
        if self.mode == "cols":
            self.add_cols(b[:, sample_columns(b.shape[1], GRAM_SAMPLE)])
        elif self.mode == "rows":
            lo = np.searchsorted(self.row_pick, start)
            hi = np.searchsorted(self.row_pick, start + b.shape[0])
            if hi > lo:
                self.rows.append((start, np.asarray(b[self.row_pick[lo:hi] - start], dtype=np.float64)))

    def add_cols(self, cols: np.ndarray) -> None:
        self.pending.append(np.asarray(cols, dtype=np.float64))
        if len(self.pending) >= 256:
            self.flush()

    def flush(self) -> None:
        """One BLAS product for the pending blocks' sampled columns."""
        if self.pending:
            sub = np.concatenate(self.pending)
            self.pending = []
            with np.errstate(over="ignore", invalid="ignore"):  # 1e200-sized values: an inf Gram, as numpy gives
                g = sub.T @ sub
                self.col_gram = g if self.col_gram is None else self.col_gram + g

    def merge(self, other: "_GramSample") -> None:
        self.flush()
        other.flush()
        if self.mode is None:
            self.mode, self.row_pick = other.mode, other.row_pick
        self.rows += other.rows
        if other.col_gram is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                self.col_gram = other.col_gram.copy() if self.col_gram is None else self.col_gram + other.col_gram

    def result(self) -> np.ndarray | None:
        self.flush()
        if self.mode == "rows" and self.rows:
            r = np.concatenate([rows for _, rows in sorted(self.rows, key=lambda sr: sr[0])])
            with np.errstate(over="ignore", invalid="ignore"):
                return r @ r.T
        if self.mode == "cols":
            return self.col_gram
        return None


def work_dtype(stored_dtype: str) -> np.dtype:
    """float64 for float64 tensors (their range and precision), float32 for every narrower float."""
    return np.dtype(np.float64) if stored_dtype == "float64" else np.dtype(np.float32)


def compute_stats(blocks: Iterable[np.ndarray], per_unit: bool = True, total_units: int | None = None,
                  stored_dtype: str | None = None) -> TensorStats:
    """Statistics of a tensor given as float blocks of whole units (see ``TensorRef.blocks``).

    Blocks are 2-D (units, elements_per_unit); each is split into cache-sized pieces and accumulated in
    its own dtype (float64 blocks in float64). The blocks are kept until the end so that duplicate-unit
    candidates can be confirmed on whole units: for bounded tensors; the pipeline streams tensors through
    :func:`initcheck.statpass.tensor_stats`, which re-reads candidates from the file instead.
    """
    kept: list[tuple[int, np.ndarray]] = []
    acc: StatsAccumulator | None = None
    start = 0
    for block in blocks:
        b = np.asarray(block)
        if b.dtype not in (np.float32, np.float64):
            b = b.astype(np.float64)
        b = b.reshape(1, -1) if b.ndim != 2 else b
        if acc is None:
            acc = StatsAccumulator(per_unit, total_units, stored_dtype or b.dtype.name)
        step = max(1, BLOCK_ELEMENTS // max(b.shape[1], 1))
        for i in range(0, b.shape[0], step):
            acc.add(np.ascontiguousarray(b[i:i + step]), start + i)
        kept.append((start, b))
        start += b.shape[0]
    if acc is None:
        return TensorStats()

    def read_rows(idx: np.ndarray) -> np.ndarray:
        return np.concatenate([b[idx[(idx >= s) & (idx < s + b.shape[0])] - s] for s, b in kept])

    st = acc.result(read_rows)
    if math.isnan(st.tail_fraction) and st.finite:
        threshold = TAIL_RMS * st.rms
        st.tail_fraction = sum(int(np.count_nonzero(np.abs(b[np.isfinite(b)]) > threshold))
                               for _, b in kept) / st.finite
    return st
