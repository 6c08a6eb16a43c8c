"""Which initialization scheme explains a layer's weights, and how sure initcheck is.

Three independent pieces of evidence, each with its sampling error:
- distribution shape: excess kurtosis and max|w|/std (uniform −1.2 and √3; normal truncated at ±2σ
  −0.634 and 2.274; normal 0). Standard errors measured by simulation (2000 draws per size):
  kurtosis 1.15/√n (uniform), 2.0/√n (2σ-truncated normal), 4.9/√n ≈ √(24/n) (normal);
  max/std 0.75/√n (uniform), 1.3/√n (truncated normal).
- scale: the observed RMS against every scheme of the table (``initcheck.schemes``) for every fan mode,
  both fan conventions (data flow and the framework's helper) and every gain in use; the log-ratio has
  standard error √((κ+2)/(4n)).
- structure: orthonormal rows or columns (orthogonal init), identity/Dirac matrices, zeros, constants.
Candidates whose predicted std coincide within 1% are one group (a square layer cannot tell Xavier from
LeCun); the group's most common member is named. Below ``MIN_ELEMENTS`` weights initcheck refuses to guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .model import Layer
from .schemes import (ACTIVATIONS, HE_NORMAL, LECUN_NORMAL, TORCH_DEFAULT_UNIFORM, XAVIER_NORMAL,
                      Scheme, fixed_normal, leaky_relu_gain)
from .stats import TensorStats

MIN_ELEMENTS = 64  # below this, shape statistics cannot tell the distributions apart (see tests)
MIN_CONFIDENCE = 0.4
SQRT3 = math.sqrt(3.0)
TRUNC_STD_FACTOR = 0.87962566103423978  # std of a standard normal cut at ±2σ
TRUNC_RATIO = 2.0 / TRUNC_STD_FACTOR  # max/std of a normal cut at ±2σ

# (excess kurtosis, its SE·√n, max/std, its SE·√n)
SHAPES = {
    "uniform": (-1.2, 1.15, SQRT3, 0.75),
    "truncated_normal": (-0.6345, 2.0, TRUNC_RATIO, 1.3),  # at ±2σ; any cut: _shape_scores
    "normal": (0.0, 4.9, None, None),
}
# Fixed scales frameworks and model zoos use: N(0, σ) / U(±a).
COMMON_FIXED_STDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.1, 1.0)
COMMON_UNIFORM_BOUNDS = (0.05, 0.1, 0.01)


@lru_cache(maxsize=1)
def _gains() -> tuple[tuple[str, float, float], ...]:
    """(name, gain, prior) for every gain in the table, common ones first."""
    out = [("linear", 1.0, 1.0), ("relu", math.sqrt(2.0), 1.0), ("tanh", 5.0 / 3.0, 0.6), ("selu", 0.75, 0.2),
           ("leaky_relu(0.2)", leaky_relu_gain(0.2), 0.3)]
    for name, act in ACTIVATIONS.items():
        if act.family == "smooth" or name == "tanh":
            out.append((name, act.vp_gain, 0.05))  # computed gains: rare in practice
    return tuple(out)


@dataclass
class Candidate:
    scheme: Scheme
    family: str
    mode: str | None
    gain_name: str | None
    gain: float
    std: float
    prior: float
    fans: str  # "data-flow", "framework" or "none"
    uncorrected: bool = False  # a truncated draw whose std was not corrected for the cut (torch trunc_normal_)


def candidates(layer: Layer, cut: float | None = None) -> list[Candidate]:
    """Every scheme of the table instantiated with this layer's fans, gains and conventions.

    With a truncation ``cut`` (the layer's values look like a normal cut at ±cut·σ), each scheme also
    appears uncorrected: torch's ``trunc_normal_(std=s, a=−c·s, b=c·s)`` keeps σ = s before the cut, so
    the result has std s·σ_c; Keras' VarianceScaling divides by σ_c first, giving exactly the scheme's std.
    """
    out: list[Candidate] = []
    fan_sets = []
    if layer.fan_in and layer.fan_out:
        fan_sets.append(("data-flow", layer.fan_in, layer.fan_out))
    if layer.framework_fans and tuple(layer.framework_fans) != (layer.fan_in, layer.fan_out):
        fan_sets.append(("framework", *layer.framework_fans))
    for fans_name, fi, fo in fan_sets:
        fan_prior = 1.0 if fans_name == "framework" else 0.9
        out.append(Candidate(TORCH_DEFAULT_UNIFORM, "uniform", "fan_in", None, 1.0,
                             TORCH_DEFAULT_UNIFORM.std(fi, fo), fan_prior, fans_name))
        out.append(Candidate(LECUN_NORMAL, "lecun", "fan_in", None, 1.0, LECUN_NORMAL.std(fi, fo),
                             0.8 * fan_prior, fans_name))
        for gname, g, prior in _gains():
            # Xavier is mostly used with gain 1 (or tanh's), He with a ReLU-family gain: ties go that way
            x_prior = prior * (1.0 if gname in ("linear", "tanh") else 0.3)
            h_prior = prior * (0.5 if gname == "linear" else 1.0)
            out.append(Candidate(XAVIER_NORMAL, "xavier", "fan_avg", gname, g, XAVIER_NORMAL.std(fi, fo, g),
                                 x_prior * fan_prior, fans_name))
            for mode, mode_prior in (("fan_in", 1.0), ("fan_out", 0.7)):
                sch = HE_NORMAL.with_mode(mode)
                out.append(Candidate(sch, "he", mode, gname, g, sch.std(fi, fo, g), h_prior * mode_prior * fan_prior,
                                     fans_name))
    # the cut estimated from max/std is noisy on small layers: the customary 2σ cut is a candidate beside it
    cuts = [2.0] if cut is None else sorted({round(cut, 3), 2.0} if abs(cut - 2.0) < 0.4 else {round(cut, 3)})
    base = list(out)
    if cut is not None:
        for c_cut in cuts:
            sigma_c = truncated_moments(c_cut)[0]
            out += [Candidate(c.scheme, c.family, c.mode, c.gain_name, c.gain, c.std * sigma_c, 0.5 * c.prior,
                              c.fans, True) for c in base if c.family != "uniform"]
    for sigma in COMMON_FIXED_STDS:
        out.append(Candidate(fixed_normal(sigma), "normal", None, None, 1.0, sigma, 0.5, "none"))
        # a normal of nominal σ cut at ±c·σ without Keras' correction (keras TruncatedNormal, torch
        # trunc_normal_(std=σ, a=-cσ, b=cσ)) has std σ_c·σ
        for c_cut in cuts:
            out.append(Candidate(fixed_normal(sigma), "normal", None, "truncated", 1.0,
                                 sigma * truncated_moments(c_cut)[0], 0.5, "none", True))
    return out


MIN_CUT, MAX_CUT = 1.5, 3.5


def truncated_moments(cut: float) -> tuple[float, float, float]:
    """(std, excess kurtosis, max/std) of a standard normal truncated to [−cut, cut].

    With Z = 2Φ(c) − 1: E[x²] = 1 − 2cφ(c)/Z and E[x⁴] = 3E[x²] − 2c³φ(c)/Z.
    """
    phi = math.exp(-0.5 * cut * cut) / math.sqrt(2 * math.pi)
    z = math.erf(cut / math.sqrt(2))
    m2 = 1.0 - 2.0 * cut * phi / z
    m4 = 3.0 * m2 - 2.0 * cut ** 3 * phi / z
    sd = math.sqrt(m2)
    return sd, m4 / (m2 * m2) - 3.0, cut / sd


def cut_from_ratio(ratio: float) -> float | None:
    """The cut c (in σ of the untruncated normal) whose max/std is ``ratio``, within [1.5, 3.5]: cuts
    below 1.5σ are indistinguishable from a uniform at realistic sizes, above 3.5σ from a normal."""
    if not (truncated_moments(MIN_CUT)[2] < ratio < truncated_moments(MAX_CUT)[2]):
        return None
    lo, hi = MIN_CUT, MAX_CUT
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if truncated_moments(mid)[2] < ratio:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _kurtosis_se(kappa: float) -> float:
    """SE·√n of the sample kurtosis for the scheme families, interpolated in κ between the simulated
    uniform (−1.2: 1.15), 2σ-truncated (−0.634: 2.0) and normal (0: 4.9) values."""
    pts = [(-1.2, 1.15), (-0.6345, 2.0), (0.0, 4.9)]
    if kappa <= pts[0][0]:
        return pts[0][1]
    for (k0, s0), (k1, s1) in zip(pts, pts[1:]):
        if kappa <= k1:
            return s0 + (s1 - s0) * (kappa - k0) / (k1 - k0)
    return pts[-1][1]


def _shape_scores(st: TensorStats) -> dict[str, tuple[float, float | None]]:
    """Chi-square-like distance of the observed shape from each family (smaller is closer), and the
    truncation cut for the truncated family (estimated from max/std: the extremes sit at the cut)."""
    n = st.finite
    k = st.excess_kurtosis
    r = st.std_ratio_max_abs
    scores: dict[str, tuple[float, float | None]] = {}
    for name, (k0, k_se, r0, r_se) in SHAPES.items():
        cut = None
        if name == "truncated_normal":
            cut = cut_from_ratio(r) or (MIN_CUT if r < TRUNC_RATIO else 2.0)
            _, k0, r0 = truncated_moments(cut)
            k_se = _kurtosis_se(k0)
            r_se = 1.3
        z = ((k - k0) / (k_se / math.sqrt(n))) ** 2
        if r0 is not None:
            z += ((r - r0) / (r_se / math.sqrt(n))) ** 2
        elif r < TRUNC_RATIO * 0.98 and n >= 256:  # a normal sample of this size exceeds the 2σ cut
            z += 25.0
        scores[name] = (z, cut)
    return scores


def distribution_of(st: TensorStats) -> tuple[str | None, float]:
    """(distribution, confidence) from shape statistics; (None, 0) when too small or nothing fits."""
    dist, conf, _ = distribution_and_cut(st)
    return dist, conf


def distribution_and_cut(st: TensorStats) -> tuple[str | None, float, float | None]:
    """(distribution, confidence, truncation cut in σ or None)."""
    if st.finite < MIN_ELEMENTS or not (st.std > 0) or not math.isfinite(st.excess_kurtosis):
        return None, 0.0, None
    scores = _shape_scores(st)
    best = min(scores, key=lambda k: scores[k][0])
    if scores[best][0] > 30.0:  # nothing fits: heavy tails (trained) or a shape no scheme draws
        return None, 0.0, None
    weights = {k: math.exp(-0.5 * min(v[0], 700)) for k, v in scores.items()}
    return best, weights[best] / sum(weights.values()), scores[best][1]


def _orthonormal(layer: Layer) -> float | None:
    """The gain g if the weight's rows (or columns, for tall matrices) are orthogonal with norm g.

    Reads the Gram matrix of a sample of 64 rows or columns that the statistics pass gathered
    (``TensorStats.sample_gram``): orthogonal init makes it g²·I to float precision (1e-3 tolerance),
    while iid weights leave relative off-diagonals of order 1/√n.
    """
    st = layer.weight.stats
    gram = st.sample_gram if st is not None else None
    if gram is None or gram.shape[0] < 2:
        return None
    sq = np.diag(gram)
    if sq.min() <= 0 or not np.isfinite(gram).all():  # values near 1e200 overflow the Gram: no structure read
        return None
    norms = np.sqrt(sq)
    if (norms.max() - norms.min()) > 1e-3 * norms.mean():
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        cos = gram / np.outer(norms, norms)
    np.fill_diagonal(cos, 0.0)
    if not np.isfinite(cos).all() or np.abs(cos).max() > 1e-3:
        return None
    return float(norms.mean())


def _identity(layer: Layer, st: TensorStats) -> bool:
    if len(layer.shape) < 2 or st.min != 0 or st.max != 1:
        return False
    ones = round(st.mean * st.count)
    return ones == min(layer.shape[0], layer.shape[1]) and st.zero_fraction * st.count + ones == st.count


def fingerprint(layer: Layer) -> dict:
    """The JSON ``fingerprint`` object: scheme, mode, distribution, std, confidence (+ label, gain)."""
    st = layer.weight.stats
    result = {"scheme": "unknown", "mode": None, "distribution": None, "std": None, "confidence": 0.0,
              "label": "unknown", "gain": None}
    if st is None or st.finite == 0 or st.nan or st.inf:
        return result
    result["std"] = float(st.std)
    if st.zero_fraction == 1.0:
        return {**result, "scheme": "zeros", "label": "zeros", "confidence": 1.0}
    if st.min == st.max:
        return {**result, "scheme": "constant", "label": f"constant {st.min:.4g}", "confidence": 1.0}
    if _identity(layer, st):
        return {**result, "scheme": "identity", "label": "identity", "confidence": 1.0}
    n = st.finite
    if n < MIN_ELEMENTS:
        return {**result, "label": "unknown (too few weights)"}
    dist, dist_conf, cut = distribution_and_cut(st)
    gain = _orthonormal(layer) if dist in ("normal", None) or n < 4096 else None
    if gain is not None:
        label = "orthogonal" + ("" if abs(gain - 1) < 0.01 else f"(gain={gain:.3g})")
        return {**result, "scheme": "orthogonal", "distribution": "orthogonal", "confidence": 0.99,
                "label": label, "gain": gain}
    if dist is None:
        return {**result, "label": "unknown (shape fits no scheme)"}
    kappa = SHAPES[dist][0] if dist != "truncated_normal" else truncated_moments(cut)[1]
    se = math.sqrt((kappa + 2.0) / (4.0 * n))
    rms = st.rms
    scored = []
    for c in candidates(layer, cut if dist == "truncated_normal" else None):
        if c.family == "normal" and (dist == "uniform" or (c.gain_name == "truncated") != (dist == "truncated_normal")):
            continue
        z = math.log(rms / c.std) / se
        scored.append((0.5 * z * z - math.log(c.prior), z, c))
    scored.extend(_uniform_fixed(rms, se, dist))
    if not scored:
        return result
    scored.sort(key=lambda x: x[0])
    best_score, best_z, best = scored[0]
    if abs(best_z) > CLAIM_Z and abs(math.log(rms / best.std)) > QUANTIZATION_TOLERANCE:
        # never claim a candidate several standard errors away: say what the data show instead
        return {**result, "distribution": dist, "label": f"{_short(dist, cut)}, no scheme",
                "confidence": round(dist_conf, 3), "cut": cut}
    # candidates whose std is within one standard error of the best one's cannot be told apart by the data
    # (a square layer cannot tell He(fan_in), He(fan_out), Xavier and LeCun; gains 1.39 and 1.41 look
    # alike): they are one answer, named by the most common member; confidence is that answer's share
    tie = max(0.01, se)
    total = group = 0.0
    alternatives: list[dict] = []
    for score, z, c in scored:
        w = math.exp(-min(score, 700))
        total += w
        if abs(math.log(c.std / best.std)) < tie:
            group += w
        elif abs(z) <= ALTERNATIVE_Z:
            label = _label(c, dist, cut)
            if all(a["label"] != label for a in alternatives) and len(alternatives) < 4:
                alternatives.append({"label": label, "std": c.std})
    confidence = (group / total if total else 0.0) * dist_conf
    label = _label(best, dist, cut)
    out = {**result, "scheme": best.family, "mode": best.mode, "distribution": dist,
           "confidence": round(confidence, 3), "label": label, "gain": best.gain,
           "fans": best.fans, "scheme_std": best.std, "z": round(best_z, 2), "alternatives": alternatives}
    if cut is not None and dist == "truncated_normal":
        out["cut"] = round(cut, 3)
    if confidence < MIN_CONFIDENCE:
        out.update({"scheme": "unknown", "mode": None, "label": f"unknown (maybe {label})"})
    return out


CLAIM_Z = 4.0  # a candidate this many standard errors from the observed std is not the answer
ALTERNATIVE_Z = 2.5  # candidates within this many standard errors are listed as alternatives
QUANTIZATION_TOLERANCE = 0.002  # stds within 0.2% agree whatever n (bf16 rounding and fan conventions)


class _Fixed:
    def __init__(self, bound: float):
        self.family, self.mode, self.gain, self.prior, self.fans = "uniform", None, 1.0, 0.5, "none"
        self.std = bound / SQRT3
        self.bound = bound


def _uniform_fixed(rms: float, se: float, dist: str):
    if dist != "uniform":
        return []
    out = []
    for a in COMMON_UNIFORM_BOUNDS:
        c = _Fixed(a)
        z = math.log(rms / c.std) / se
        out.append((0.5 * z * z - math.log(c.prior), z, c))
    return out


def _short(dist: str, cut: float | None = None) -> str:
    if dist == "truncated_normal" and cut is not None and abs(cut - 2.0) > 0.15:
        return f"trunc_normal(±{cut:.2g}σ)"
    return {"uniform": "uniform", "normal": "normal", "truncated_normal": "trunc_normal"}[dist]


def _label(c, dist: str, cut: float | None = None) -> str:
    if isinstance(c, _Fixed):
        return f"U(±{c.bound:g})"
    short = {"uniform": "uniform", "normal": "normal", "truncated_normal": "trunc_normal"}[dist]
    cut_text = f"±{cut:.2g}σ" if cut is not None else "±2σ"
    if c.family == "uniform":
        return "U(±1/√fan_in)" if dist == "uniform" else f"{short}, std 1/√(3·fan_in)"
    if c.family == "normal":
        sigma = c.scheme.fixed_std
        return f"N(0, {sigma:g})" if dist == "normal" else f"{short}(std={sigma:g}, cut {cut_text})"
    name = {"he": "he", "xavier": "xavier", "lecun": "lecun"}[c.family]
    text = f"{name}_{short}"
    extras = []
    if c.family == "he" and c.mode == "fan_out":
        extras.append("fan_out")
    if c.gain_name and not ((c.family == "he" and c.gain_name == "relu") or
                            (c.family == "xavier" and c.gain_name == "linear")):
        extras.append(c.gain_name)
    if c.fans == "framework":
        extras.append("framework fans")
    if getattr(c, "uncorrected", False):
        extras.append(f"uncorrected cut {cut_text}")
    return text + (f"({', '.join(extras)})" if extras else "")


__all__ = ["fingerprint", "distribution_of", "candidates", "MIN_ELEMENTS"]
