"""Depth trends and width slopes computed from a probe's measurements (framework-neutral).

**Depth groups.** Signals are compared like with like: the copies of one layer at different depths
(``h.0.attn.c_attn`` … ``h.23.attn.c_attn``; ``0``, ``2`` … ``62`` in a Sequential; ``fc1`` … ``fc9``) form one
group, keyed by the layer name with its numbers replaced by ``#`` (a trailing number dropped, so Keras'
``dense``, ``dense_1`` … group) and its kind. A matrix layer contributes
its output RMS; a normalization its *input* RMS (in a pre-norm network that is the residual stream, which
the normalized outputs never show).

**Trend.** For a group's values v₁…v_L in depth order, the end-to-end change G is the ratio of the geometric
means of the deepest and the shallowest k = max(1, ⌊L/16⌋) copies (one odd layer at either end does not decide
it; a signal that falls onto a floor, e.g. of biases, still counts as fallen); the per-copy factor is
G^(1/(L−k)).

**Sampling error.** The log-size of a finite-width chain is a random walk (Hanin 2018: per ReLU layer of
width n its variance is ≈ 5/n), so a sound network drifts by chance. The noise of log G is estimated from
the group itself: the robust spread (1.4826 · median absolute deviation) of the per-copy log changes,
times √(L − 1). A change counts only beyond ``DRIFT_Z`` such standard errors.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from statistics import median

from .result import CoordPoint, LayerProbe
from .thresholds import DRIFT_Z, MIN_DEPTH

_NUMBER = re.compile(r"_?\d+")
NORM_KINDS = frozenset({"batchnorm", "layernorm", "groupnorm", "rmsnorm", "instancenorm", "norm"})


@dataclass
class Trend:
    """A depth trend of one group: the layers, their values, and the change across the depth."""

    group: str
    quantity: str  # forward, backward
    names: list[str]
    values: list[float]
    per_layer: float  # factor from one copy to the next (toward the input for 'backward')
    change: float  # end-to-end change G
    log_noise: float  # standard error of log G from the per-copy scatter

    @property
    def significant(self) -> bool:
        return abs(self.log_change) > DRIFT_Z * self.log_noise

    @property
    def log_change(self) -> float:
        return math.log(self.change)


def group_key(lp: LayerProbe) -> str:
    """``h.3.ln_1`` → ``h.#.ln (layernorm)``; ``dense`` and ``dense_2`` (Keras' names) → ``dense (linear)``."""
    key = _NUMBER.sub("#", lp.name).rstrip("#") or "#"
    return f"{key} ({lp.kind})"


def forward_value(lp: LayerProbe) -> float | None:
    """The size a layer contributes to the forward trend: a normalization's input, any other layer's output."""
    return lp.in_rms if lp.kind in NORM_KINDS else lp.out_rms


def backward_value(lp: LayerProbe) -> float | None:
    """The gradient size at the same point as :func:`forward_value`."""
    return lp.grad_in_rms if lp.kind in NORM_KINDS else lp.grad_out_rms


def depth_groups(layers: list[LayerProbe]) -> dict[str, list[LayerProbe]]:
    """Layers of each group in execution order; only groups with at least ``MIN_DEPTH`` copies."""
    groups: dict[str, list[LayerProbe]] = {}
    for lp in sorted(layers, key=lambda x: x.order):
        groups.setdefault(group_key(lp), []).append(lp)
    return {k: v for k, v in groups.items() if len(v) >= MIN_DEPTH}


def end_to_end(values: list[float]) -> tuple[float, float]:
    """(G, per-copy factor): geometric mean of the last k values over that of the first k (see above)."""
    n = len(values)
    k = max(1, n // 16)
    logs = [math.log(v) for v in values]
    change = math.exp(sum(logs[-k:]) / k - sum(logs[:k]) / k)
    return change, change ** (1.0 / max(n - k, 1))


def log_noise(values: list[float]) -> float:
    """Random-walk standard error of log G: robust spread of the per-copy log changes × √(L − 1)."""
    logs = [math.log(v) for v in values]
    steps = [b - a for a, b in zip(logs, logs[1:])]
    if len(steps) < 2:
        return 0.0
    mid = median(steps)
    return 1.4826 * median(abs(x - mid) for x in steps) * math.sqrt(len(steps))


def trends(layers: list[LayerProbe], quantity: str) -> list[Trend]:
    """Depth trends of every group for ``forward`` (signal) or ``backward`` (gradient, toward the input)."""
    value = forward_value if quantity == "forward" else backward_value
    out = []
    for key, members in depth_groups(layers).items():
        pairs = [(lp.name, value(lp)) for lp in members]
        pairs = [(n, v) for n, v in pairs if v is not None and math.isfinite(v) and v > 0]
        if len(pairs) < MIN_DEPTH:
            continue
        if quantity == "backward":
            pairs.reverse()  # a gradient travels from the output toward the input
        names, values = [n for n, _ in pairs], [v for _, v in pairs]
        change, per_layer = end_to_end(values)
        out.append(Trend(key, quantity, names, values, per_layer, change, log_noise(values)))
    return out


def width_slope(widths: list[int], values: list[float]) -> float:
    """d log(value)/d log(width) by least squares; nan if a value is not positive."""
    if len(widths) < 2 or any(not (v > 0 and math.isfinite(v)) for v in values):
        return math.nan
    x = [math.log(w) for w in widths]
    y = [math.log(v) for v in values]
    xm, ym = sum(x) / len(x), sum(y) / len(y)
    sxx = sum((a - xm) ** 2 for a in x)
    return sum((a - xm) * (b - ym) for a, b in zip(x, y)) / sxx if sxx > 0 else math.nan


def coord_slopes(points: list[CoordPoint]) -> tuple[float, float, float]:
    """(init, delta, after-step) slopes against width."""
    widths = [p.width for p in points]
    return (width_slope(widths, [p.init_rms for p in points]), width_slope(widths, [p.delta_rms for p in points]),
            width_slope(widths, [p.step_rms for p in points]))
