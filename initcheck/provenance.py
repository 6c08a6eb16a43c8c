"""Where a tensor's values come from: a fresh draw, training, a structured init, or corruption.

Every test here asks one question of the statistics pass (``initcheck.stats.TensorStats``): could these
values be iid draws from one of the families initialization schemes use — normal, uniform, or a normal
truncated at any cut, each zero-mean with any scale? Those families have excess kurtosis κ ∈ [−1.2, 0],
no skew, no outliers beyond a normal's extremes, rows that differ only by sampling error, and a spectrum
inside the Marchenko–Pastur edge. Trained weights break at least one of these at any realistic size.

Each test is a calibrated significance test for the *normal* member (the one with the heaviest tails,
so it is conservative for the others), and converts to a one-sided p-value:

- heavy tails: Anscombe & Glynn's (1983) transformation of the sample kurtosis to a z-score (as in
  ``scipy.stats.kurtosistest``), valid from 20 values;
- skew: D'Agostino's (1970) transformation of the sample skewness (``scipy.stats.skewtest``), from 8;
- outliers: max|w|/std against the Bonferroni bound 2n·Φ̄(t) with Student-t quantiles (Grubbs' idea);
- uneven rows: the spread of per-unit stds against its sampling distribution, a χ²(U−1) on U units of
  m values each, with Var(s_u)/σ² = (κ+2)/(4m);
- a dominant direction: the top eigenvalue of the Gram sample the statistics pass gathered (k sampled
  rows or columns of length L) against the Marchenko–Pastur edge σ²(√k+√L)², with a margin of
  ``SPIKE_MARGIN`` Tracy–Widom fluctuations.

A layer is *trained* when the smallest p-value, Bonferroni-corrected over the tests, is below
``TRAINED_ALPHA``; *fresh* when every test passes comfortably (p > ``FRESH_ALPHA``) and the layer is
large enough that trained weights would have shown (``MIN_FRESH_VALUES``), or, from 1,024 values, when its
tails are significantly lighter than a normal's (a uniform or truncated draw: training never makes
weights platykurtic); otherwise *undetermined*.
``tests/test_provenance.py`` measures the false 'trained' rate of fresh draws at every size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from .roles import Role, role_info
from .significance import Z_CRIT
from .stats import TensorStats

_N = NormalDist()
TRAINED_ALPHA = 1e-5  # per layer, after Bonferroni over the tests: a fresh layer is called trained this rarely
FRESH_ALPHA = 1e-2  # a fresh verdict needs every test well inside its null
MIN_FRESH_VALUES = 4096  # below this trained weights can pass every test: 'undetermined', not 'fresh'
MIN_LIGHT_TAIL_VALUES = 1024  # trained 3×3 depthwise filters of a few hundred values can be light-tailed too
LIGHT_TAIL_ALPHA = 1e-4  # kurtosis this far below a normal's: bounded, hence fresh
UNINITIALIZED_MAGNITUDE = 1e6  # no scheme and no training gives weights this large (torch.empty garbage)
SPIKE_MARGIN = 12.0  # Tracy–Widom fluctuations above the edge (TW₁'s 1e-7 tail is below 8)


class Verdict:
    FRESH = "fresh"
    TRAINED = "trained"
    STRUCTURED = "structured"
    CORRUPT = "corrupt"
    UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class Provenance:
    """One tensor's verdict and the evidence for it."""

    verdict: str
    evidence: tuple[str, ...] = ()
    p_values: dict[str, float] = field(default_factory=dict)  # test name → one-sided p (uncorrected)

    @property
    def p_min(self) -> float:
        """Smallest p-value, Bonferroni-corrected over the tests that ran."""
        if not self.p_values:
            return 1.0
        return min(1.0, min(self.p_values.values()) * len(self.p_values))

    def to_json(self) -> dict:
        return {"verdict": self.verdict, "evidence": list(self.evidence),
                "p_values": {k: float(f"{v:.3g}") for k, v in self.p_values.items()}}


# ---------------------------------------------------------------------------------------------- tests
def kurtosis_p(g2: float, n: int) -> float | None:
    """One-sided p of excess kurtosis ≥ g2 for n normal values (Anscombe–Glynn 1983), n ≥ 20."""
    if n < 20 or not math.isfinite(g2):
        return None
    e = -6.0 / (n + 1)
    var = 24.0 * n * (n - 2) * (n - 3) / ((n + 1) ** 2 * (n + 3) * (n + 5))
    x = (g2 - e) / math.sqrt(var)
    sqrt_beta1 = (6.0 * (n * n - 5 * n + 2) / ((n + 7) * (n + 9))
                  * math.sqrt(6.0 * (n + 3) * (n + 5) / (n * (n - 2) * (n - 3))))
    a = 6.0 + 8.0 / sqrt_beta1 * (2.0 / sqrt_beta1 + math.sqrt(1.0 + 4.0 / sqrt_beta1 ** 2))
    term = (1.0 - 2.0 / a) / (1.0 + x * math.sqrt(2.0 / (a - 4.0)))
    if term <= 0:  # beyond the transformation's range: kurtosis far above any normal sample
        return 0.0
    z = ((1.0 - 2.0 / (9.0 * a)) - term ** (1.0 / 3.0)) / math.sqrt(2.0 / (9.0 * a))
    return 1.0 - _N.cdf(z)


def skew_p(g1: float, n: int) -> float | None:
    """Two-sided p of |skewness| ≥ |g1| for n normal values (D'Agostino 1970), n ≥ 8."""
    if n < 8 or not math.isfinite(g1):
        return None
    y = g1 * math.sqrt((n + 1) * (n + 3) / (6.0 * (n - 2)))
    beta2 = 3.0 * (n * n + 27 * n - 70) * (n + 1) * (n + 3) / ((n - 2) * (n + 5) * (n + 7) * (n + 9))
    w2 = -1.0 + math.sqrt(2.0 * (beta2 - 1.0))
    delta = 1.0 / math.sqrt(0.5 * math.log(w2))
    alpha = math.sqrt(2.0 / (w2 - 1.0))
    y = y if y != 0 else 1e-300
    z = delta * math.log(y / alpha + math.sqrt((y / alpha) ** 2 + 1.0))
    return 2.0 * (1.0 - _N.cdf(abs(z)))


def _t_tail(t: float, df: int) -> float:
    """P(T > t) for Student's t with integer df: the exact finite series in θ = atan(t/√ν)
    (Abramowitz & Stegun 26.7.3–4); the normal tail beyond 200 degrees of freedom."""
    if df > 200:
        return 1.0 - _N.cdf(t)
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:  # A = sinθ (1 + c²/2 + 1·3 c⁴/(2·4) + ...), df/2 terms
        term = total = 1.0
        for j in range(1, df // 2):
            term *= c2 * (2 * j - 1) / (2 * j)
            total += term
        inside = s * total
    elif df == 1:
        inside = 2.0 * theta / math.pi
    else:  # A = (2/π)(θ + sinθ cosθ (1 + 2c²/3 + ...)), (df−1)/2 terms
        term = total = 1.0
        for j in range(1, (df - 1) // 2):
            term *= c2 * (2 * j) / (2 * j + 1)
            total += term
        inside = 2.0 / math.pi * (theta + s * math.cos(theta) * total)
    return max(0.5 * (1.0 - inside), 0.0)


def outlier_p(max_abs_dev_ratio: float, n: int) -> float | None:
    """p of max|w−mean|/std ≥ r (population std) among n normal values: n·2·P(T_{n−2} > t), Grubbs' statistic turned to t."""
    if n < 8 or not math.isfinite(max_abs_dev_ratio):
        return None
    g = max_abs_dev_ratio * math.sqrt((n - 1) / n)  # Grubbs divides by the sample (ddof=1) std
    g_max = (n - 1) / math.sqrt(n)
    if g >= g_max:
        return 0.0
    # Grubbs: G = (n−1)/√n · √(t² / (n−2+t²))  ⇒  t² = (n−2)·u / (1−u), u = G²·n/(n−1)²
    u = g * g * n / (n - 1) ** 2
    t = math.sqrt((n - 2) * u / (1.0 - u))
    return min(1.0, 2.0 * n * _t_tail(t, n - 2))


def row_spread_p(st: TensorStats) -> float | None:
    """p of the observed spread of per-unit stds under iid rows (χ²(U−1), Var(s)/σ² = (κ+2)/(4m))."""
    units = st.units
    if units < 8 or not math.isfinite(st.unit_std_spread) or not st.finite:
        return None
    m = st.count / units
    if m < 8:
        return None
    kappa = max(st.excess_kurtosis if math.isfinite(st.excess_kurtosis) else 0.0, -1.2)
    # the per-unit std of a sample of m has (relative) variance (κ+2)/(4m) for large m; the small-m
    # correction for the normal is 1 − c₄² ≈ 1/(2(m−1)), which (κ+2)/(4(m−1)) matches at κ = 0
    var_s = (kappa + 2.0) / (4.0 * (m - 1))
    stat = units * st.unit_std_spread ** 2 / var_s  # ~ χ²(U − 1)
    df = units - 1
    # Wilson–Hilferty upper tail
    c = 2.0 / (9.0 * df)
    z = ((stat / df) ** (1.0 / 3.0) - (1.0 - c)) / math.sqrt(c)
    return 1.0 - _N.cdf(z)


def spike_ratio(st: TensorStats) -> tuple[float, float] | None:
    """(λ_max / MP edge, the edge's relative Tracy–Widom scale) of the statistics pass's Gram sample."""
    gram = st.sample_gram
    if gram is None or gram.shape[0] < 4 or not (st.rms > 0):
        return None
    k = gram.shape[0]
    length = float(np.trace(gram)) / (k * st.rms ** 2)  # vector length, from the data
    if length < 4:
        return None
    lam = float(np.linalg.eigvalsh(gram)[-1])
    edge = st.rms ** 2 * (math.sqrt(k) + math.sqrt(length)) ** 2
    # Johnstone (2001): λ_max fluctuates by (√k+√L)(1/√k+1/√L)^{1/3}·σ², relative to the edge
    tw = (1.0 / math.sqrt(k) + 1.0 / math.sqrt(length)) ** (1.0 / 3.0) / (math.sqrt(k) + math.sqrt(length))
    return lam / edge, tw


def spike_p(st: TensorStats) -> float | None:
    """A pseudo p-value for a dominant direction: 0 beyond ``SPIKE_MARGIN`` TW scales, 1 inside.

    Tracy–Widom tails are not normal, so the test is a threshold rather than a p; it enters the
    Bonferroni minimum as a hard 0/1 (calibrated in tests/test_provenance.py).
    """
    r = spike_ratio(st)
    if r is None:
        return None
    ratio, tw = r
    return 0.0 if ratio > 1.0 + SPIKE_MARGIN * tw else 1.0


# --------------------------------------------------------------------------------------------- verdicts
def iid_tests(st: TensorStats) -> dict[str, float]:
    """Every test that applies to this tensor's size: name → p under 'iid from a scheme's family'."""
    n = st.finite
    out: dict[str, float] = {}
    tests = {
        "heavy_tails": kurtosis_p(st.excess_kurtosis, n),
        "skew": skew_p(st.skewness, n),
        "outliers": outlier_p(max(st.max - st.mean, st.mean - st.min) / st.std if st.std > 0 else math.nan, n),
        "uneven_units": row_spread_p(st),
        "dominant_direction": spike_p(st),
    }
    for name, p in tests.items():
        if p is not None:
            out[name] = max(p, 0.0)
    return out


def is_uninitialized(st: TensorStats) -> bool:
    """``torch.empty`` / ``to_empty()`` memory: magnitudes no init or training gives."""
    return st.finite > 0 and math.isfinite(st.max_abs) and st.max_abs >= UNINITIALIZED_MAGNITUDE


def provenance_of(st: TensorStats | None, role: Role, structured: str | None = None) -> Provenance:
    """The verdict for one tensor's statistics in a given role.

    ``structured`` names a structure the fingerprint already recognized (orthogonal, identity).
    """
    if st is None:
        return Provenance(Verdict.UNDETERMINED, ("no statistics",))
    if st.count == 0:
        return Provenance(Verdict.CORRUPT, ("empty tensor (a ZeRO-3 or FSDP save without gathering?)",))
    if st.nan or st.inf:
        return Provenance(Verdict.CORRUPT, (f"{st.nan} NaN and {st.inf} Inf values",))
    if is_uninitialized(st):
        return Provenance(Verdict.CORRUPT, (f"|w| up to {st.max_abs:.3g}: uninitialized memory",))
    info = role_info(role)
    if st.zero_fraction == 1.0 or st.min == st.max:
        what = "all zeros" if st.zero_fraction == 1.0 else f"{st.min:.4g} everywhere"
        ok = info.zeros_ok if st.zero_fraction == 1.0 else info.constant_ok
        if ok:
            return Provenance(Verdict.FRESH, (f"{what}, as a fresh {role.value} is",))
        return Provenance(Verdict.CORRUPT, (f"{what}: a {role.value} needs a random init",))
    if structured:
        return Provenance(Verdict.STRUCTURED, (structured,))
    p = iid_tests(st)
    prov = Provenance(Verdict.UNDETERMINED, (), p)
    if p and prov.p_min < TRAINED_ALPHA:
        failing = [name.replace("_", " ") for name, v in sorted(p.items(), key=lambda kv: kv[1])
                   if v * len(p) < TRAINED_ALPHA]
        return Provenance(Verdict.TRAINED, tuple(failing), p)
    calm = all(v > FRESH_ALPHA for v in p.values())
    if st.finite >= MIN_FRESH_VALUES and calm:
        return Provenance(Verdict.FRESH, ("iid draw from a scheme's family: no tails, skew, outliers, uneven "
                                          "units or dominant direction",), p)
    light = kurtosis_p(st.excess_kurtosis, st.finite)
    if calm and st.finite >= MIN_LIGHT_TAIL_VALUES and light is not None and 1.0 - light < LIGHT_TAIL_ALPHA:
        # tails lighter than a normal's: a bounded draw (uniform, truncated normal); training rarely makes a
        # layer of this size platykurtic (small trained 3×3 depthwise filters can be), so from 1,024 values
        # this is positive evidence of a fresh init
        return Provenance(Verdict.FRESH, (f"light tails (kurtosis {st.excess_kurtosis:.2f}): a bounded draw "
                                          "(uniform or truncated normal)",), p)
    if calm and _uniform_draw(st):
        return Provenance(Verdict.FRESH, (f"a uniform draw: kurtosis {st.excess_kurtosis:.2f} (−1.2) and both "
                                          f"extremes at √3·std, the edges of U(±{st.max_abs:.3g})",), p)
    return Provenance(Verdict.UNDETERMINED, ("consistent with a fresh draw; too small or too borderline to be "
                                             "sure",), p)


MIN_UNIFORM_VALUES = 512  # at 256 values a Beta(2, 2) shape passes the signature in 2% of draws
# sampling errors of an iid uniform's excess kurtosis (−1.2) and of max/(√3·std), times √n (simulated:
# 1.12–1.17 and 0.44–0.45 for n from 256 to 4,096)
UNIFORM_KURTOSIS_SE = 1.2
UNIFORM_EDGE_SE = 0.46


def _uniform_draw(st: TensorStats) -> bool:
    """The signature of U(−b, b), sharp from a few hundred values: excess kurtosis −1.2 and a half-range
    of b = √3·std, each within Z_CRIT of its sampling error. Trained weights, even light-tailed ones, do not end exactly where a uniform of
    their std would on both sides (a Beta(2, 2) shape ends at 1.29·√3·std)."""
    n = st.finite
    if n < MIN_UNIFORM_VALUES or not st.std > 0 or not math.isfinite(st.excess_kurtosis):
        return False
    root_n = math.sqrt(n)
    if abs(st.excess_kurtosis + 1.2) > Z_CRIT * UNIFORM_KURTOSIS_SE / root_n:
        return False
    half_range = (st.max - st.min) / 2.0  # about the midrange: the sample mean wanders more than the edges
    return abs(half_range / (math.sqrt(3.0) * st.std) - 1.0) <= Z_CRIT * UNIFORM_EDGE_SE / root_n
