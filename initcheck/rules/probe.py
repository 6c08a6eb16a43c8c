"""IC4xx: what the signal-propagation probe measured (``initcheck probe``).

These rules read the probe's measurements attached to the model (:func:`initcheck.probe.probe_of`,
:func:`initcheck.probe.coord_of`); a plain ``initcheck check`` has none and they report nothing. The
thresholds and their derivations live in :mod:`initcheck.probe.thresholds` and docs/probe.md.
"""

from __future__ import annotations

import math
from statistics import median
from typing import Iterable

from ..model import Model
from ..probe import coord_of, probe_of
from ..probe.analysis import NORM_KINDS, Trend, group_key, trends
from ..probe.thresholds import (BRANCH_BUDGET, COORD_SLOPE, DEAD_ERROR, DEAD_MIN_SAMPLES, DEAD_WARN, DRIFT_ERROR, DRIFT_WARN,
                                ENTROPY_ERROR, ENTROPY_WARN, saturation_thresholds)
from ..report import Finding
from . import RuleOptions, rule


def _severity(excess_log: float) -> str | None:
    if excess_log > math.log(DRIFT_ERROR):
        return "error"
    if excess_log > math.log(DRIFT_WARN):
        return "warning"
    return None


def _fmt(x: float) -> str:
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


def _gain_fix(model: Model, trend: Trend) -> str:
    """The fix for a drifting chain of matrix layers, from the measured and the sound per-layer gain."""
    result = probe_of(model)
    members = [result.layer(n) for n in trend.names] if result else []
    gains = [lp.gain for lp in members if lp is not None and lp.gain and math.isfinite(lp.gain)]
    sound = [lp.sound_gain for lp in members if lp is not None and lp.sound_gain]
    group = trend.group.split(" (")[0]
    if any(lp is not None and lp.kind == "batchnorm" for lp in members) or _normalized(model, trend):
        return ("batch normalization divides the backward pass by each layer's batch std, so deep BN stacks "
                "explode gradients at init whatever the weight scale (Yang et al. 2019): add residual connections "
                "or fewer normalized layers; weight scale alone does not change it")
    if any(lp is not None and lp.kind in NORM_KINDS for lp in members):
        return ("the residual stream accumulates every block's output: scale the last projection of each "
                "residual branch by 1/√(2·blocks) (GPT-2: std σ/√(2L)) or zero-initialize it; if they are "
                "scaled already, the growth is the branches' variance added to much smaller embeddings "
                "(GPT-2's std 0.02 gives ×3.3 at any depth): larger embeddings make the stream flat")
    if gains and sound:
        g, s = median(gains), median(sound)
        return (f"each {group} layer has gain {_fmt(g)} (rms(Wx)/rms(x)) where a sound init for its activation "
                f"has {_fmt(s)}: scale its weights by {_fmt(s / g)}, or reinitialize with `initcheck fix` (the "
                "scheme for its activation, e.g. He for ReLU: torch.nn.init.kaiming_normal_(w, nonlinearity='relu'))")
    return "reinitialize the layers with the scheme for their activation (`initcheck fix`), or add a normalization"


def _normalized(model: Model, trend: Trend) -> bool:
    """Every layer of the group feeds a normalization (its own scale is undone in the forward pass)."""
    layers = {la.name: la for la in model.layers}
    members = [layers.get(n) for n in trend.names]
    return bool(members) and all(la is not None and la.context.norm_after for la in members)


def branch_budget(model: Model) -> tuple[float, int] | None:
    """(Σ (gain/sound gain)², count) over the residual branches' last layers (``context.residual``) that the
    probe measured; None without at least two. σ/√(2L) gives ≈ 1 (see ``thresholds``)."""
    result = probe_of(model)
    ratios = []
    for layer in model.layers:
        lp = result.layer(layer.name) if result and layer.context.residual else None
        if lp is not None and lp.gain and lp.sound_gain and math.isfinite(lp.gain):
            ratios.append((lp.gain / lp.sound_gain) ** 2)
    return (sum(ratios), len(ratios)) if len(ratios) >= 2 else None


def _stream_change(trends_: list[Trend], model: Model) -> float | None:
    result = probe_of(model)
    for t in trends_:
        first = result.layer(t.names[0]) if result else None
        if first is not None and first.kind in NORM_KINDS and first.kind != "batchnorm":
            return t.change
    return None


def _drift(model: Model, quantity: str, direction: str) -> Iterable[Finding]:
    result = probe_of(model)
    if result is None:
        return
    code = {("forward", "small"): "IC401", ("forward", "large"): "IC402",
            ("backward", "small"): "IC403", ("backward", "large"): "IC404"}[(quantity, direction)]
    all_trends = trends(result.layers, quantity)
    budget = branch_budget(model)
    stream = _stream_change(all_trends, model)
    for trend in all_trends:
        if (trend.change < 1.0) != (direction == "small"):
            continue
        severity = _severity(abs(trend.log_change)) if trend.significant else None
        if severity is None:
            continue
        bounded = None
        if direction == "large" and budget is not None and budget[0] <= BRANCH_BUDGET and stream is not None \
                and trend.log_change <= math.log(stream) + math.log(DRIFT_WARN):
            severity = "info"
            bounded = (f"; the {budget[1]} residual branches add {_fmt(budget[0])} sound-branch variances in all "
                       f"(≤ {BRANCH_BUDGET:g}: depth-scaled), so this growth is bounded in depth")
        what = "signal" if quantity == "forward" else "gradient"
        where = "entering" if trend.names and result.layer(trend.names[0]) is not None and \
            result.layer(trend.names[0]).kind in NORM_KINDS else ("at the output of" if quantity == "forward"
                                                                    else "w.r.t. the output of")
        path = "from the first to the last" if quantity == "forward" else "from the last back to the first"
        msg = (f"{what} RMS {where} {trend.group} changes ×{_fmt(trend.change)} {path} of its "
               f"{len(trend.values)} copies (×{_fmt(trend.per_layer)} per copy; {_fmt(trend.values[0])} at "
               f"{trend.names[0]}, {_fmt(trend.values[-1])} at {trend.names[-1]}; "
               f"{abs(trend.log_change) / trend.log_noise:.0f}× its sampling error)" if trend.log_noise > 0 else
               f"{trend.names[0]}, {_fmt(trend.values[-1])} at {trend.names[-1]})")
        gains = [lp.gain for lp in (result.layer(n) for n in trend.names) if lp is not None and lp.gain
                 and math.isfinite(lp.gain)]
        if gains and quantity == "forward":
            msg += f"; median layer gain rms(Wx)/rms(x) {_fmt(median(gains))}"
        fix = _gain_fix(model, trend)
        if quantity == "backward":
            fix = "the gradient follows the forward gains in reverse: " + fix
        if bounded:
            msg += bounded
            fix = ("none needed for depth: the stream starts small next to what the branches add (embeddings of "
                   "std 0.02 in GPT-2); embeddings of std ≈ 1 make it flat")
        yield Finding(code, severity, trend.names[-1], msg, fix, {
            "group": trend.group, "change": trend.change, "per_layer": trend.per_layer,
            "layers": trend.names, "values": trend.values})


_DRIFT_EXPLANATION = """
    The probe runs one forward and one backward pass (random unit-variance cotangent, no loss) and measures
    the RMS of every layer's output and of the gradient reaching it. Copies of one layer at different
    depths (`h.0.mlp.c_fc` … `h.23.mlp.c_fc`; `0`, `2` … in a Sequential) form a group; a
    normalization contributes its input, which in a pre-norm network is the residual stream.

    The end-to-end change G is the ratio of the geometric means of the deepest and the shallowest
    sixteenth of the copies (at least one). Thresholds, derived from the static scale rules: those
    accept a weight std within √2.5 of the sound schemes' band (2.5× in variance — He and Xavier disagree
    by 2× on a square ReLU layer, both sound) and error at 30× in variance. Applied to the whole depth:
    |log G| beyond log √2.5 is a warning, beyond log √30 (×5.5 in RMS) an error — and only beyond 3
    standard errors of the change's sampling noise: a finite-width chain's log-size is a random walk
    (Hanin 2018), whose spread the per-copy scatter of the group estimates (robust MAD × √(L−1)).
    He-initialized ReLU chains stay flat; PyTorch's default U(±1/√fan_in) gives each Linear a gain of
    1/√3 = 0.58, and with the ReLU halving the second moment the signal falls ×0.41 per layer until the
    biases' floor.

    Example: a 32-layer ReLU MLP with PyTorch's default init: signal RMS at the output of # (linear)
    changes ×1e-12 over its 32 copies.

    Fix: reinitialize with the scheme for the activation (`initcheck fix`); the finding names the measured
    gain per layer, the sound one and the factor between them. For a residual stream: σ/√(2L) on each
    branch's last projection (GPT-2) or a zero-initialized branch end.
    """


@rule("IC401", "signal-vanishing", "error", "The forward signal shrinks with depth (measured by the probe).",
      _DRIFT_EXPLANATION)
def signal_vanishing(model: Model, options: RuleOptions) -> Iterable[Finding]:
    yield from _drift(model, "forward", "small")


@rule("IC402", "signal-exploding", "error",
      "The forward signal (or a residual stream) grows with depth (measured by the probe).",
      _DRIFT_EXPLANATION + """
    A pre-norm transformer whose residual branches are not scaled adds each block's output to the stream
    with the same variance, so the stream's variance grows linearly with depth; GPT-2's σ/√(2L) on each
    branch's last projection keeps it flat. The probe sums what the branches add, Σ (gain/sound gain)²
    over their last layers (σ/√(2L) gives ≈ 1): up to 2.5 the branches are depth-scaled, and a stream that
    still grows only started small (GPT-2's embeddings of std 0.02) — bounded in depth, reported at info,
    as is block-internal drift within √2.5 of the stream's own change.
    """)
def signal_exploding(model: Model, options: RuleOptions) -> Iterable[Finding]:
    yield from _drift(model, "forward", "large")


@rule("IC403", "gradient-vanishing", "error",
      "The gradient shrinks from the output toward the input (measured by the probe).", _DRIFT_EXPLANATION)
def gradient_vanishing(model: Model, options: RuleOptions) -> Iterable[Finding]:
    yield from _drift(model, "backward", "small")


@rule("IC404", "gradient-exploding", "error",
      "The gradient grows from the output toward the input (measured by the probe).", _DRIFT_EXPLANATION)
def gradient_exploding(model: Model, options: RuleOptions) -> Iterable[Finding]:
    yield from _drift(model, "backward", "large")


@rule("IC405", "saturated-units", "error",
      "Many tanh/sigmoid pre-activations sit where the slope is below 5% of its peak (measured by the probe).",
      """
    A tanh/sigmoid value is saturated where its derivative is below 5% of the maximum (|x| > 2.18 for tanh,
    > 4.36 for sigmoid): gradients through it are cut twentyfold. The warning and error fractions are what a
    Gaussian pre-activation gives at the static rules' warning and error edges — std √2.5 and √30 times the
    unit scale a variance-preserving init produces: 2·Φ̄(x_sat/√2.5) and 2·Φ̄(x_sat/√30) (tanh: 16.9% and
    69%; sigmoid: 0.6% and 43%).

    Example: a tanh layer with std 5/√fan_in has 60% of its pre-activations saturated.

    Fix: Xavier/Glorot for tanh and sigmoid (`initcheck fix`), or smaller inputs.
    """)
def saturated_units(model: Model, options: RuleOptions) -> Iterable[Finding]:
    result = probe_of(model)
    if result is None:
        return
    for lp in result.layers:
        if lp.saturated_fraction is None or lp.activation not in ("tanh", "sigmoid"):
            continue
        warn, error = saturation_thresholds(lp.activation)
        severity = "error" if lp.saturated_fraction > error else "warning" if lp.saturated_fraction > warn else None
        if severity:
            yield Finding("IC405", severity, lp.name,
                          f"{lp.saturated_fraction:.1%} of the {lp.activation} pre-activations after {lp.name} are "
                          f"saturated (slope < 5% of its peak; a sound init gives ≤ {warn:.1%})",
                          f"reinitialize {lp.name} with Xavier/Glorot for {lp.activation} (`initcheck fix`)",
                          {"fraction": lp.saturated_fraction, "warn": warn, "error": error})


@rule("IC406", "dead-units", "error", "ReLU units that are inactive on every sample (measured by the probe).",
      """
    A ReLU unit is dead when its pre-activation is ≤ 0 on every one of the N samples of the probe's batch
    (batch × positions); a healthy unit, active half the time, looks dead with probability 2⁻ᴺ, so the rule
    needs N ≥ 16. A dead unit passes no signal and receives no gradient on this input distribution, and
    He's factor 2 (half the units fire) overestimates the layer's gain by 1/(1 − d) for a dead fraction d:
    warning at d ≥ 10%, error at d ≥ 50% (more units silent on every input than a healthy layer silences
    on any single one).

    Example: a layer with bias −3 after a unit-variance pre-activation kills 99.9% of its units.

    Fix: zero or small positive biases, He initialization, or a leaky ReLU/GELU.
    """)
def dead_units(model: Model, options: RuleOptions) -> Iterable[Finding]:
    result = probe_of(model)
    if result is None:
        return
    flagged: dict[str, list] = {}
    for lp in result.layers:
        if lp.dead_fraction is None or (lp.samples or 0) < DEAD_MIN_SAMPLES or lp.dead_fraction < DEAD_WARN:
            continue
        flagged.setdefault(group_key(lp), []).append(lp)
    for key, members in flagged.items():  # one finding per group of repeated layers, at its worst copy
        worst = max(members, key=lambda lp: lp.dead_fraction)
        d = worst.dead_fraction
        severity = "error" if d >= DEAD_ERROR else "warning"
        low = min(m.dead_fraction for m in members)
        where = f"after {worst.name}" if len(members) == 1 else \
            f"after {len(members)} copies of {key} (worst {worst.name}; {low:.0%}–{d:.0%})"
        yield Finding("IC406", severity, worst.name,
                      f"{d:.1%} of the {worst.units} ReLU units {where} are inactive on all {worst.samples} samples",
                      "zero or small positive biases and He initialization for the layer; a leaky ReLU/GELU; in a "
                      "deep plain ReLU stack, residual connections or normalization (inputs correlate with depth)",
                      {"fraction": d, "units": worst.units, "samples": worst.samples,
                       "layers": [m.name for m in members]})


@rule("IC407", "attention-collapse", "error",
      "Attention concentrates on very few keys at initialization (measured by the probe).", """
    The normalized entropy h = H/ln(k) of each attention row (k visible keys) is 1 for uniform attention;
    k^h is the effective number of keys attended. Logits of std s give H ≈ ln k − s²/2, so a sound init
    (unit-variance queries and keys with the 1/√d scale, s ≤ 1) gives h ≥ 1 − 1/(2 ln k), 0.86 for 32 keys.
    Warning when the mean h < 1/2 (fewer than √k effective keys), error when h < 1/10 (one or two keys:
    the attention has collapsed and its softmax passes almost no gradient).

    Example: query/key projections 30× too large: h = 0.05 in the second block, ≈1.2 effective keys of 32.

    Observed on F.scaled_dot_product_attention (weights recomputed from q, k and the mask), on softmax
    calls over the last axis of ≥3-d tensors (hand-written attention) and on nn.MultiheadAttention when it
    returns its weights.

    Fix: smaller query/key projections (std 1/√d or zero-initialized queries), the 1/√d logit scale,
    or QK-normalization.
    """)
def attention_collapse(model: Model, options: RuleOptions) -> Iterable[Finding]:
    result = probe_of(model)
    if result is None:
        return
    layers = {la.name for la in model.layers}
    for att in result.attention:
        severity = "error" if att.entropy < ENTROPY_ERROR else "warning" if att.entropy < ENTROPY_WARN else None
        if severity:
            yield Finding("IC407", severity, att.name if att.name in layers else None,
                          f"attention at {att.name} ({att.source}) has normalized entropy {att.entropy:.2f} over "
                          f"{att.keys} keys (≈{att.keys ** att.entropy:.1f} effective keys; lowest head "
                          f"{att.min_head_entropy:.2f})",
                          "scale the query/key projections down (std 1/√d, or zero-init the queries) or add "
                          "QK-normalization", {"entropy": att.entropy, "keys": att.keys})


@rule("IC408", "width-dependent-activations", "error",
      "The coord check: a layer's activation size, or its change after one step, grows or shrinks with width.",
      """
    `initcheck probe --model pkg:factory --widths 64,128,256,512` builds the model at each width, runs the
    probe's pass and one SGD step of --lr (MuSGD's per-parameter factors where mup's `infshape` is set)
    and measures each layer's output RMS at init, after the step and of the change. μP's criterion: every
    size is Θ(1) in width, slope 0 of log(size) against log(width). The smallest slope a wrong
    parametrization gives is 1/2 (a hidden layer under SGD in the standard parametrization changes as
    √width, its readout as width), so a slope beyond ±1/4 — halfway — is flagged: warning, and error beyond
    ±1/2. A readout whose size at init shrinks with width (μP's 1/width multiplier) is not flagged for that.

    Example: a standard-parametrization MLP: the readout's change after one step grows as width^0.98.

    Fix: μP (the `mup` package: MuReadout, set_base_shapes, MuSGD/MuAdam), or scale the readout by
    1/width and the learning rates as μP prescribes.
    """)
def width_dependent(model: Model, options: RuleOptions) -> Iterable[Finding]:
    coord = coord_of(model)
    if coord is None:
        return
    for c in coord.layers:
        checks = [("its change after one step", c.delta_slope), ("its size after one step", c.step_slope)]
        if c.position != "output":
            checks.append(("its size at init", c.init_slope))
        elif c.init_slope > 0:
            checks.append(("its size at init", c.init_slope))
        worst = max(((w, s) for w, s in checks if math.isfinite(s)), key=lambda ws: abs(ws[1]), default=None)
        if worst is None or abs(worst[1]) <= COORD_SLOPE:
            continue
        what, slope = worst
        severity = "error" if abs(slope) > 2 * COORD_SLOPE else "warning"
        verb = "grows" if slope > 0 else "shrinks"
        yield Finding("IC408", severity, c.name,
                      f"{c.name} ({c.position}): {what} {verb} as width^{slope:.2f} across widths "
                      f"{', '.join(str(p.width) for p in c.points)}",
                      "μP: MuReadout for the readout, mup.set_base_shapes and MuSGD/MuAdam",
                      {"init_slope": c.init_slope, "delta_slope": c.delta_slope, "step_slope": c.step_slope})

