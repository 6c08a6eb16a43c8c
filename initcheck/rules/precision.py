"""IC208: mass piled on a clamp bound by an initializer computed in a low-precision dtype.

The test needs no model of the distribution. Let ``t`` be the extreme value (the max, say), ``k`` its
count, ``v`` the next distinct value inward and ``m`` its count (both from the statistics pass). On the
values' grid (the stored dtype, or bfloat16/float16 when float32 storage holds only such values) every
value stands for its rounding cell. Between the cell of ``v`` and the cell of ``t`` no value was seen,
so the region R from the inner edge of v's cell to the inner edge of t's cell holds exactly m values.
Where the density does not rise toward the bound (every scheme's family beyond its mean: normal,
uniform, truncated normal, and trained weights' tails), t's cell holds at most w_t/|R| times R's mass,
with w_t the *whole* cell of t (the bound may sit anywhere in it). The extra values at t beyond the one
that makes it the extreme, X = k − 1, are then at most Binomial(X + m, p₀) with

    p₀ = w_t / (w_t + |R|),

and P(Bin(X + m, p₀) ≥ X), doubled for the two ends (Bonferroni), below ``significance.TAIL`` (1e-5)
flags the tensor. Conditioning on t being the extreme and v the next value only lowers X and raises m,
so the test errs toward silence; ``tests/test_signatures.py`` measures its false alarms on seeded draws.

Guards, each a case where the empty region is no evidence:

- only an extreme beyond the mean (``MIN_EXTREME_DISTANCE``), with v beyond it too: where densities fall;
- only values on a low-precision grid (bfloat16, float16, float8; stored so, or float32 holding only
  such values): float32 draws never pile up this way, and dequantized weights sit on coarser grids;
- the region counts only when v is in the bulk (within ``BULK_SIGMAS`` of the mean) and the region is
  short (``REGION_CELLS``: a discretized tail) or t is a far atom (beyond ``FAR_ATOM_SIGMAS`` and much
  farther from v than v from the mean, which no evenly spaced grid gives). Otherwise only the two cells
  are compared, p₀ = max(½, w_t/(w_t + w_v)): t's cell is no heavier than v's on any even grid.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ..model import Layer, Model
from ..report import Finding
from ..significance import TAIL
from ..stats import TensorStats
from . import RuleOptions, rule
from .integrity import RANDOM_ROLES

# Value formats: significand bits (with the implicit one) and smallest normal exponent.
_FORMATS = {
    "float64": (53, -1022),
    "float32": (24, -126),
    "bfloat16": (8, -126),
    "float16": (11, -14),
    "float8_e4m3fn": (4, -6),
    "float8_e5m2": (3, -14),
}
LOW_PRECISION = frozenset({"bfloat16", "float16", "float8_e4m3fn", "float8_e5m2"})
MIN_EXTREME_DISTANCE = 1.0  # the extreme lies this many stds beyond the mean (a tail, not a central atom)
MIN_NEXT_DISTANCE = 0.5  # the next value inward lies this many stds (without the atom) beyond the mean
BULK_SIGMAS = 4.0  # ... and, for the empty region to count, within this many (else: a sparse tail or a grid)
REGION_CELLS = 8  # an empty region this short (a discretized tail's atoms) counts...
FAR_ATOM_SIGMAS = 6.0  # ... a longer one only behind an atom this far out (also: no draw puts mass there)
FAR_ATOM_GAP = 2.0  # ... and this many times farther from v than v from the mean (no even grid does that)
STD_INFLATION_WARNING = 1.10  # the atom raises the tensor's std by 10 %: warning (or a far atom)


def value_grid(stored: str, values: Iterable[float]) -> str:
    """The grid the values lie on: the stored dtype, or a narrower one when float32/float64 storage holds
    values that all fit bfloat16 (or float16), as after ``model.float()`` of a bfloat16 model."""
    if stored not in ("float32", "float64"):
        return stored
    vals = np.asarray(list(values), dtype=np.float64)
    as32 = vals.astype(np.float32)
    if np.all(as32.astype(np.float64) == vals):
        if np.all((as32.view(np.uint32) & np.uint32(0xFFFF)) == 0):
            return "bfloat16"
        if np.all(as32.astype(np.float16).astype(np.float64) == vals):
            return "float16"
    return stored


def gaps(x: float, grid: str) -> tuple[float, float]:
    """(distance to the next grid value below x, to the next above): 2^(e−p+1) at |x| ∈ [2^e, 2^(e+1)),
    half that toward zero from an exact power of two; the subnormal spacing below the normal range."""
    p, emin = _FORMATS.get(grid, _FORMATS["float64"])
    a = abs(x)
    e = max(math.frexp(a)[1] - 1, emin) if a > 0 else emin
    away = math.ldexp(1.0, e - p + 1)
    toward = away / 2 if a > 0 and e > emin and a == math.ldexp(1.0, e) else away
    if a == 0:
        return away, away
    return (toward, away) if x > 0 else (away, toward)


def binomial_tail(x: int, s: int, p: float) -> float:
    """P(Bin(s, p) ≥ x), summed in log space from x upward (terms fall geometrically past the mode)."""
    if x <= 0:
        return 1.0
    if x > s or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    if x <= s * p:
        return 1.0  # not above its expectation: nothing to see (and the sum below would be long)
    lp, lq = math.log(p), math.log1p(-p)
    log_c = math.lgamma(s + 1) - math.lgamma(x + 1) - math.lgamma(s - x + 1)
    term = log_c + x * lp + (s - x) * lq
    total, i = 0.0, x
    first = term
    while True:
        total += math.exp(term - first)
        if term - first < -40 or i == s:
            break
        term += math.log(s - i) - math.log(i + 1) + lp - lq
        i += 1
    return min(1.0, math.exp(first) * total)


def _without_atom(st: TensorStats, value: float, count: int) -> tuple[float, float]:
    """(mean, std) of the tensor without the values sitting at ``value``."""
    n = st.finite - count
    if n < 2:
        return st.mean, st.std
    mean = (st.finite * st.mean - count * value) / n
    second = (st.finite * (st.std ** 2 + st.mean ** 2) - count * value * value) / n
    return mean, math.sqrt(max(second - mean * mean, 0.0))


def pileup(st: TensorStats, stored: str, upper: bool) -> dict | None:
    """The test at one end of a tensor (see the module docstring): p, counts and what they mean; None
    when the statistics cannot tell (no next value, a constant, the next value not beyond the mean)."""
    t, k, v, m = ((st.max, st.max_count, st.below_max, st.below_max_count) if upper else
                  (st.min, st.min_count, st.above_min, st.above_min_count))
    if not (st.finite and k >= 2 and m >= 1 and math.isfinite(v) and math.isfinite(t) and st.std > 0):
        return None
    if (t - st.mean if upper else st.mean - t) < MIN_EXTREME_DISTANCE * st.std:
        return None  # a central atom (the zeros of a pruned or mostly-zero tensor), not a tail's end
    mean, std = _without_atom(st, t, k)
    inward = v - mean if upper else mean - v
    if not std > 0 or inward < MIN_NEXT_DISTANCE * std:
        return None
    grid = value_grid(stored, (t, v))
    if grid not in LOW_PRECISION:
        return None  # values computed in float32 or finer never pile up this way (and quantized grids would)
    t_below, t_above = gaps(t, grid)
    v_below, v_above = gaps(v, grid)
    cell = (t_below + t_above) / 2
    region = (t - t_below / 2) - (v - v_below / 2) if upper else (v + v_above / 2) - (t + t_above / 2)
    if _region_counts(t, v, mean, std, inward, region, cell):
        p0 = cell / (cell + max(region, 0.0))
    else:
        # the empty region between v and t may be a coarser grid's (dequantized weights), where only
        # equal cells hold: t's cell no heavier than v's
        p0 = max(0.5, cell / (cell + (v_below + v_above) / 2))
    x = k - 1
    p = binomial_tail(x, x + m, p0)
    smooth = m * cell / region if region > 0 else float(m)  # what a smooth density gives t's cell
    return {"p": p, "value": t, "count": k, "next": v, "next_count": m, "grid": grid, "expected": smooth + 1,
            "std_ratio": st.std / std if std > 0 else math.nan, "sigmas": abs(t - mean) / std,
            "fraction": k / st.finite}


def _region_counts(t: float, v: float, mean: float, std: float, inward: float, region: float, cell: float) -> bool:
    """Whether the empty region between v and t is evidence (a density would have put values there):
    v in the bulk, and either a short region (a few cells: a discretized tail) or a far atom — t beyond
    FAR_ATOM_SIGMAS and much farther from v than v from the mean, which no evenly spaced grid gives."""
    if inward > BULK_SIGMAS * std:
        return False
    if region <= REGION_CELLS * cell:
        return True
    return abs(t - mean) > FAR_ATOM_SIGMAS * std and abs(t - v) > FAR_ATOM_GAP * inward


_FIX = {
    "keras": "create the variables in float32 (a mixed_bfloat16 policy keeps them so) and cast after the draw",
    "torch": "draw in float32, then cast (`w32 = torch.empty(w.shape); trunc_normal_(w32, ...); w.copy_(w32)`), "
             "or torch 2.13's nn.init.trunc_normal_ (rejection sampling: no pile-up)",
}


@rule(
    "IC208", "bound-pileup", "warning",
    "Values pile up on the extreme grid value: a truncated normal drawn in bfloat16/float16 and clamped.",
    """
    An initializer computed in the tensor's own low-precision dtype can put far more mass on the extreme
    representable values than any distribution gives them. The inverse-CDF truncated normal (uniform →
    erfinv → scale → clamp to [a, b]), which timm's `trunc_normal_` (1.0.31) uses, as older torch
    releases' `nn.init.trunc_normal_` did (torch 2.13's samples by rejection), rounds its uniform to bfloat16:
    near ±1 the uniform's bfloat16 grid is coarse, erfinv maps its values to atoms several grid steps
    apart, and a uniform that rounds to −1 becomes −∞, clamped onto the lower bound. Measured with torch
    2.13 on 10⁴–4·10⁶ values, std 0.02 (tests/test_signatures.py repeats it):

    - timm's default bounds a = −2, b = 2 (100σ): 0.20 % of the weights (bfloat16; 0.023 % in float16)
      sit on exactly −2.0, the tensor's std is 0.090 instead of 0.020 (×4.5; ×1.8 in float16), and
      a unit with 768 inputs carries about 1.5 weights of −2.0 that dominate its output.
    - bounds ±0.04 (±2σ): the lowest value holds 1.75× the mass of the atom next to it and the outer
      tails are atoms two to three grid steps apart; the std is right (0.0176): harmless, info.
    - torch 2.13's own `trunc_normal_` in bfloat16, and a float32 draw cast to bfloat16 afterwards,
      hold at the bound no more than a smooth density's share of its grid cell: not flagged.

    The test compares the count at the extreme value with the count at the next distinct value inward
    (no model of the distribution, so a normal, uniform, truncated normal or trained tail cannot fool it)
    at a Bonferroni-corrected p < 1e-5. Measured (`make signatures`): no false alarm in 2,000 seeded
    draws per size from 256 to 10,000 values, 200 at 10⁵ and 20 at 10⁶, for each of 19 families of
    correct layers (normal, uniform, truncated normals in float32, bfloat16, float16 and cast, uniforms
    with grid-point bounds, heavy-tailed trained-like draws, dequantized int8/int4 and pruned weights);
    every draw of the signature detected from 10⁴ values (bfloat16, ±2), 10⁵ (bfloat16 ±2σ: 92 % at
    10⁴; float16 ±2) and 10⁶ (float16 ±2σ).
    Warning when the piled values raise the std by 10 % or sit beyond 6σ of the rest, info otherwise.
    An integrity rule (every layer, trained or not): the atom at −2 itself makes the provenance tests
    (outliers, skew) call such a layer trained, so an init rule would never see it.

    Example: `blocks.0.mlp.fc1.weight` (bfloat16) has 1,994 of 1,000,000 values (0.20 %) on exactly −2
    where a smooth density gives ≈12 (the next value, −0.0579, holds 1,905): std ×4.6, 98σ out.

    Fix: draw in float32 and cast to the low-precision dtype afterwards.
    """,
    category="integrity",
    roles=RANDOM_ROLES,
)
def bound_pileup(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        finding = _layer_pileup(layer, options.framework)
        if finding is not None:
            yield finding


def _layer_pileup(layer: Layer, framework: str) -> Finding | None:
    st = layer.weight.stats
    if st is None or not st.finite or st.nan or st.inf or not st.min < st.max:
        return None
    ends = [r for r in (pileup(st, layer.weight.tensor.dtype, up) for up in (False, True)) if r is not None]
    flagged = [r for r in ends if 2 * r["p"] < TAIL]
    if not flagged:
        return None
    worst = max(flagged, key=lambda r: r["count"] - r["expected"])
    serious = any(r["std_ratio"] >= STD_INFLATION_WARNING or r["sigmas"] > FAR_ATOM_SIGMAS for r in flagged)
    r = worst
    where = (f"{r['count']} values ({r['fraction']:.3%}) on exactly {r['value']:.6g} where a smooth draw gives "
             f"≈{r['expected']:.0f} (the next value, {r['next']:.6g}, holds {r['next_count']})")
    if len(flagged) == 2:
        other = flagged[0] if flagged[1] is worst else flagged[1]
        where += f", and {other['count']} on {other['value']:.6g}"
    effect = (f": std ×{worst['std_ratio']:.2f}, the piled values {worst['sigmas']:.0f}σ out" if serious else
              ": the std is barely affected")
    return Finding(
        "IC208", "warning" if serious else "info", layer.name,
        f"{layer.weight.name} ({worst['grid']}): {where}{effect} — mass clamped onto a bound in low precision "
        "(a bfloat16/float16 truncated normal, or values clipped onto a grid)",
        fix=_FIX.get(framework, _FIX["torch"]),
        data={"ends": [{k: r[k] for k in ("value", "count", "next", "next_count", "p", "std_ratio")}
                       for r in flagged]},
    )
