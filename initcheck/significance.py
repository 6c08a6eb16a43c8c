"""Sampling error of a layer's scale, so thresholds are statistical rather than magic numbers.

For n iid weights of std σ, n·RMS²/σ² is χ² with n degrees of freedom for a normal (the worst case
among the schemes' shapes: uniform and truncated normals have lighter tails and tighter RMS).
Quantiles use Wilson–Hilferty's cube-root approximation, exact forms for 1 and 2 degrees of freedom.
"""

from __future__ import annotations

import math
from statistics import NormalDist

# Two-sided tail probability per comparison: a correct layer crosses a band edge by chance with
# probability 1e-5, so a handful of rules stay well under the 1-in-1000 false-alarm promise.
TAIL = 1e-5
_Z = NormalDist().inv_cdf(1 - TAIL / 2)


def chi2_quantile(p: float, df: float) -> float:
    """Quantile of χ²(df) (Wilson–Hilferty for df > 2)."""
    if df <= 0:
        return 0.0
    if df == 1:
        z = NormalDist().inv_cdf(0.5 + p / 2)
        return z * z
    if df == 2:
        return -2.0 * math.log(1.0 - p)
    z = NormalDist().inv_cdf(p)
    c = 2.0 / (9.0 * df)
    return df * max(1.0 - c + z * math.sqrt(c), 0.0) ** 3


def rms_noise_band(n: int, tail: float = TAIL) -> tuple[float, float]:
    """(low, high): a correct layer's RMS/σ lies inside with probability 1 − tail."""
    lo = math.sqrt(max(chi2_quantile(tail / 2, n), 0.0) / n)
    hi = math.sqrt(chi2_quantile(1 - tail / 2, n) / n)
    return lo, hi


def log_std_se(n: int, excess_kurtosis: float = 0.0) -> float:
    """Standard error of log(std) for n values: √((κ+2)/(4n))."""
    return math.sqrt(max(excess_kurtosis + 2.0, 0.2) / (4.0 * max(n, 1)))


Z_CRIT = _Z
