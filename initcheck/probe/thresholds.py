"""The probe rules' thresholds, each derived from the static rules' tolerances or from the activation's
shape (docs/probe.md repeats the derivations). Framework-neutral, numbers only.

Depth drift (IC401–IC404: forward signal and gradient, vanishing and exploding). The static scale rules
accept a layer whose weight std is within √2.5 of the band of sound schemes (2.5× in variance: He and Xavier
disagree by 2× on a square ReLU layer and both are sound), and error at 30× in variance. The probe applies
the same numbers to the *whole depth*: a signal (or gradient) whose RMS changes between the shallowest and
the deepest copies of a repeated layer by more than √2.5 has drifted further than any sound scheme drifts
a single layer: warning; beyond √30 (5.5× in RMS): error. And only when the change is beyond
``DRIFT_Z`` = 3 standard errors of its sampling noise (the per-copy scatter of a finite-width chain, see
``analysis``): a He-initialized 128-wide, 32-layer ReLU chain wanders by ×0.5–×2 by chance.

Residual branches (IC402/IC404 on a residual stream). A stream fed by 2L branches, each at the sound
scale, accumulates 2L units of a sound branch's variance and grows without bound in depth; GPT-2's σ/√(2L)
brings the sum to one unit. The probe measures the sum, Σ (gain/sound gain)² over the branches' last
layers; up to ``BRANCH_BUDGET`` = 2.5 units (the static variance tolerance) the branches are depth-scaled,
and a stream that still grows does so because it starts smaller (embeddings of std 0.02): bounded in depth,
reported at info. Block-internal drift within √2.5 of the stream's own change is explained by it (the
normalizations' backward pass divides by the stream's RMS) and reported at info too.

Saturation (IC405). A tanh/sigmoid unit is saturated where its slope is below 5% of its peak
(``SATURATION_SLOPE``): tanh'(x) = 1 − tanh²(x) < 0.05 ⇔ |x| > 2.18; sigmoid'(x) < 0.0125 ⇔ |x| > 4.36.
The thresholds are the saturated fraction a Gaussian pre-activation would have at the static rules' warning
and error edges, std √2.5 and √30 times the unit-variance scale a variance-preserving init gives:
2·Φ̄(x_sat/√2.5) and 2·Φ̄(x_sat/√30).

Dead ReLUs (IC406). A unit is dead when its pre-activation is ≤ 0 on every one of N samples; a healthy unit
(active half the time) looks dead with probability 2⁻ᴺ, so the test needs N ≥ 16 (< 1.6e-5 per unit). He's
factor 2 assumes half the units fire on each input; a dead fraction d lowers the layer's forward gain
(in variance) by (1 − d), and those units never receive a gradient on this input distribution: warning at
d ≥ 10% (a tenth of the layer idle, and the gain 0.9× He's), error at d ≥ 50% (more units silent on every
input than a healthy ReLU layer silences on any single one).

Attention collapse (IC407). The normalized entropy h = H/ln(k) of a softmax over k keys is 1 for uniform
attention and k^h is the effective number of keys attended. Logits of std s give H ≈ ln k − s²/2, so a
sound init (unit-variance queries and keys with the 1/√d scale: s ≤ 1) gives h ≥ 1 − 1/(2 ln k) (0.86 at
k = 32). Warning when h < 1/2 (fewer than √k effective keys), error when h < 1/10 (one or two keys: collapse).

Coord check (IC408). μP keeps every layer's activation size, and the change one step makes to it, Θ(1) in
width: slope 0 of log(size) against log(width). The smallest exponent a wrong parametrization gives is
1/2 (a hidden layer under SGD in the standard parametrization grows as √width; its readout as width), so
a slope beyond ±1/4, halfway, is a warning, beyond ±1/2 an error.
"""

from __future__ import annotations

import math
from statistics import NormalDist

DRIFT_WARN = math.sqrt(2.5)
DRIFT_ERROR = math.sqrt(30.0)
DRIFT_Z = 3.0
MIN_DEPTH = 3  # a trend needs at least this many copies of a layer
BRANCH_BUDGET = 2.5

SATURATION_SLOPE = 0.05
TANH_SATURATION_X = math.atanh(math.sqrt(1.0 - SATURATION_SLOPE))
_SIG = (1.0 + math.sqrt(1.0 - SATURATION_SLOPE)) / 2.0
SIGMOID_SATURATION_X = math.log(_SIG / (1.0 - _SIG))
SATURATION_X = {"tanh": TANH_SATURATION_X, "sigmoid": SIGMOID_SATURATION_X}


def _two_sided_tail(x: float) -> float:
    return 2.0 * (1.0 - NormalDist().cdf(x))


def saturation_thresholds(activation: str) -> tuple[float, float]:
    """(warning, error) saturated fractions for ``tanh`` or ``sigmoid`` (see the module docstring)."""
    x = SATURATION_X[activation]
    return _two_sided_tail(x / DRIFT_WARN), _two_sided_tail(x / DRIFT_ERROR)


DEAD_WARN = 0.10
DEAD_ERROR = 0.50
DEAD_MIN_SAMPLES = 16

ENTROPY_WARN = 0.5
ENTROPY_ERROR = 0.1

COORD_SLOPE = 0.25
