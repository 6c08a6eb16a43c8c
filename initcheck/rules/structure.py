"""IC004 and IC2xx: symmetry between units, means, biases, normalization, embeddings, recurrence; IC301."""

from __future__ import annotations

import math
from typing import Iterable

from ..frameworks.torch_layout import EMBED_HINT
from ..judge import is_scale_layer
from ..model import NORM_KINDS, Model
from ..report import Finding
from ..significance import Z_CRIT
from . import RuleOptions, rule


@rule(
    "IC004", "symmetric-units", "error",
    "Some output units have identical weights, or all-equal weights within the unit.",
    """
    Two units with identical incoming weights compute the same function and receive the same gradient
    forever: the layer is narrower than it looks. A unit whose weights are all equal (for example a zero
    row) responds only to the sum of its inputs. Random schemes never produce either. Embedding rows are
    exempt (a padding row is zero by design), as are all-zero and constant tensors (IC002, IC003).

    Example: `fc1` has 128 of 256 units identical to an earlier unit.

    Fix: reinitialize with a random scheme (`initcheck fix`).
    """,
)
def symmetric_units(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        st = layer.weight.stats
        if st is None or not layer.is_matrix or layer.kind == "embedding" or not st.units or st.nan or st.inf:
            continue
        if st.zero_fraction == 1.0 or st.min == st.max or st.count / st.units < 4:
            continue
        dup, const = st.duplicate_units, st.constant_units
        if dup == 0 and const == 0:
            continue
        frac = (dup + const) / st.units
        severity = "error" if frac >= 0.01 or dup + const >= 2 else "warning"
        if options.trained:
            severity = "info"
        parts = []
        if dup:
            parts.append(f"{dup} of {st.units} units duplicate an earlier unit")
        if const:
            parts.append(f"{const} of {st.units} units have all-equal weights")
        yield Finding("IC004", severity, layer.name, "; ".join(parts) + " (symmetry not broken)",
                      fix="reinitialize with a random scheme", data={"duplicate": dup, "constant": const})


@rule(
    "IC201", "nonzero-mean", "warning",
    "The weights' mean is far from zero.",
    """
    Every scheme initcheck knows draws zero-mean weights. A mean that is large against the std (and far
    beyond its sampling error std/√n) shifts every unit's pre-activation in the same direction: ReLU units
    die or all fire together, and the signal's mean grows with depth. It usually comes from
    `uniform_(0, a)` instead of `uniform_(-a, a)`, or from `abs()` somewhere. Warning when |mean| exceeds
    half the std, info from a fifth.

    Example: `conv2` has mean 0.041 and std 0.024.

    Fix: use a zero-mean scheme (`initcheck fix`).
    """,
)
def nonzero_mean(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        st = layer.weight.stats
        if st is None or not is_scale_layer(layer) or not st.finite or st.nan or st.inf or not st.std > 0:
            continue
        # standard error from the RMS (which includes the mean): |mean| ≤ RMS, so tiny layers can never
        # look significant by a small sample std
        se = st.rms / math.sqrt(st.finite)
        ratio = abs(st.mean) / st.std
        if abs(st.mean) <= Z_CRIT * se or ratio < 0.2:
            continue
        severity = "warning" if ratio >= 0.5 and not options.trained else "info"
        yield Finding("IC201", severity, layer.name,
                      f"mean {st.mean:.3g} is {ratio:.2f}× the std {st.std:.3g} ({abs(st.mean) / se:.0f} standard errors)",
                      fix="use a zero-mean scheme", data={"mean": st.mean, "std": st.std})


_RELU_FAMILY = {"relu", "leaky_relu"}


@rule(
    "IC202", "dead-relu-bias", "error",
    "Biases so negative that ReLU units never fire at initialization.",
    """
    A ReLU unit whose bias is below about −2 standard deviations of its pre-activation outputs zero for
    97.7% of inputs and gets almost no gradient. initcheck estimates the pre-activation std as the unit's
    weight RMS × √fan_in (inputs of unit variance) and counts units whose bias is below −2 of it. Warning
    from 10% of the units, error from half.

    Example: `fc1.bias` puts 200 of 256 ReLU units below −2σ of their input.

    Fix: zero biases (`torch.nn.init.zeros_(b)`), or `initcheck fix`.
    """,
)
def dead_relu_bias(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        if layer.bias is None or layer.context.activation not in _RELU_FAMILY or not is_scale_layer(layer):
            continue
        st = layer.weight.stats
        if st is None or st.unit_rms is None or layer.context.norm_after:
            continue
        bias = layer.bias.tensor.numpy().astype("float64").reshape(-1)
        unit_rms = st.unit_rms
        if bias.shape[0] != unit_rms.shape[0]:
            continue
        preact_std = unit_rms * math.sqrt(layer.fan_in)
        dead = int(((bias < -2.0 * preact_std) & (preact_std >= 0)).sum())
        frac = dead / max(bias.shape[0], 1)
        if frac < 0.1:
            continue
        severity = "info" if options.trained else ("error" if frac >= 0.5 else "warning")
        yield Finding("IC202", severity, layer.name,
                      f"{dead} of {bias.shape[0]} ReLU units have a bias below −2σ of their pre-activation",
                      fix="zero the biases", data={"dead_units": dead})


@rule(
    "IC203", "norm-parameters", "warning",
    "A normalization's scale is far from 1 or its shift far from 0.",
    """
    Batch/Layer/Group/RMS normalization layers start with scale 1 and shift 0 so that they pass a
    standardized signal. A scale of 0 blocks the signal (except deliberately at the end of a residual
    branch: zero-init residual, reported at info), a scale of 10 amplifies it, a large shift moves every
    following ReLU. Warning when the mean scale is outside [0.5, 2] or the shift's mean magnitude exceeds
    0.5; NaN/Inf are IC001.

    Example: `layer2.1.bn2` has scale mean 0.0 and is not at a residual end.

    Fix: `torch.nn.init.ones_(norm.weight)`, `zeros_(norm.bias)`, or `initcheck fix`.
    """,
)
def norm_parameters(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        if layer.kind not in NORM_KINDS:
            continue
        st = layer.weight.stats
        if st is None or not st.finite or st.nan or st.inf:
            continue
        sev = "info" if options.trained else "warning"
        if layer.weight.role == "shift":  # no scale (Keras scale=False, center-only norms): judge the shift
            if math.sqrt(st.mean ** 2 + st.std ** 2) > 0.5:
                yield Finding("IC203", sev, layer.name, f"shift has mean {st.mean:.3g}, std {st.std:.3g} (fresh: 0)",
                              fix="set the shift to 0")
            continue
        if st.zero_fraction == 1.0:
            if layer.context.residual:
                yield Finding("IC203", "info", layer.name,
                              "scale is all zeros at the end of a residual branch (zero-init residual: deliberate)")
            else:
                yield Finding("IC203", sev, layer.name, "scale is all zeros: this normalization blocks the signal",
                              fix="set the scale to 1")
        elif not (0.5 <= st.mean <= 2.0):
            yield Finding("IC203", sev, layer.name, f"scale mean {st.mean:.3g} (fresh: 1)", fix="set the scale to 1")
        if layer.bias is not None and layer.bias.stats is not None and layer.bias.stats.finite:
            b = layer.bias.stats
            if math.sqrt(b.mean ** 2 + b.std ** 2) > 0.5:
                yield Finding("IC203", sev, layer.name, f"shift has mean {b.mean:.3g}, std {b.std:.3g} (fresh: 0)",
                              fix="set the shift to 0")


@rule(
    "IC204", "embedding-scale", "warning",
    "An embedding's scale is outside what any convention uses, or it makes a tied output head blow up.",
    """
    Embedding tables are initialized by convention rather than by fans: N(0, 1) in PyTorch, N(0, 0.02) in
    BERT/GPT-2 (`initializer_range`), U(±0.05) in Keras, 1/√dim in some. initcheck accepts std from 0.002
    to 2 (beyond the sampling error). When the table is tied to the output head (its tensor has aliases),
    logits have std ≈ std·√dim·(hidden std): above 2/√dim the softmax starts saturated — PyTorch's
    default N(0, 1) tied to a head is the classic case.

    Example: `wte` tied to `lm_head.weight` has std 1.0 with dim 768: logits std ≈ 28.

    Fix: `torch.nn.init.normal_(emb.weight, std=0.02)` or std 1/√dim.
    """,
)
def embedding_scale(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        if layer.kind != "embedding":
            continue
        st = layer.weight.stats
        if st is None or not st.finite or st.nan or st.inf or st.zero_fraction == 1.0:
            continue
        sev = "info" if options.trained else "warning"
        dim = layer.shape[1] if len(layer.shape) == 2 else 1
        if not (0.002 <= st.std <= 2.0):
            yield Finding("IC204", sev, layer.name, f"std {st.std:.3g} is outside the 0.002–2 of every convention",
                          fix="normal_(std=0.02) or std 1/√dim")
        elif head_aliases(layer) and st.std > 2.0 / math.sqrt(dim):
            yield Finding("IC204", sev, layer.name,
                          f"tied to {', '.join(head_aliases(layer))}: std {st.std:.3g} with dim {dim} gives logits "
                          f"std ≈ {st.std * math.sqrt(dim):.3g} (> 2)", fix="normal_(std=0.02) or std 1/√dim")


def head_aliases(layer) -> list[str]:
    """Aliases of an embedding that are not themselves embedding tables (``lm_head.weight``, ``out.weight``,
    not T5's ``encoder.embed_tokens.weight``): the table doubles as an output projection there."""
    return [a for a in layer.weight.aliases if not EMBED_HINT.search(a.rpartition(".")[0] or a)]


@rule(
    "IC205", "recurrent-scale", "error",
    "A recurrent (hidden-to-hidden) matrix makes the state explode or vanish over time.",
    """
    The hidden state of an RNN/LSTM/GRU is multiplied by the recurrent matrix at every step, so its
    spectral radius decides whether signals and gradients explode or vanish over time. For iid weights of
    std σ per H×H gate the radius is ≈ σ√H (circular law); an orthogonal gate block has radius = its
    gain, also σ√H. PyTorch's default U(±1/√H) gives 0.58, orthogonal blocks 1. Warning above 1.5 or below 0.1, error above 5.

    Example: `lstm.weight_hh_l0` has per-gate radius ≈ 3.1.

    Fix: `torch.nn.init.orthogonal_` per gate block, or `initcheck fix`.
    """,
)
def recurrent_scale(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        if not layer.kind.endswith("_recurrent"):
            continue
        st = layer.weight.stats
        if st is None or not st.finite or st.nan or st.inf or st.zero_fraction == 1.0:
            continue
        hidden = layer.fan_in or 1
        # rms·√H is the circular-law radius of an iid H×H gate block, and exactly the gain of a gate
        # block that is orthogonal (rms = gain/√H); one orthogonal (G·H, H) matrix gives gain/√G
        radius = st.rms * math.sqrt(hidden)
        if 0.1 <= radius <= 1.5:
            continue
        severity = "info" if options.trained else ("error" if radius > 5 else "warning")
        yield Finding("IC205", severity, layer.name,
                      f"per-gate spectral radius ≈ {radius:.3g} (hidden {hidden}): the state "
                      f"{'explodes' if radius > 1.5 else 'vanishes'} over time steps",
                      fix="orthogonal_ recurrent blocks", data={"radius": radius})


@rule(
    "IC301", "trained-checkpoint", "info",
    "The checkpoint looks trained; initialization rules report at info level.",
    """
    Linting a trained model must not cry wolf: trained weights have heavy tails and uneven unit scales
    that no initialization scheme produces. When at least half of the large layers show excess kurtosis
    far above a random draw's (> max(1, 8·√(24/n))) or per-unit scales spread far beyond sampling error,
    initcheck says so once and reports every initialization rule at info. Non-finite weights stay errors.

    Example: 70 of 72 large layers have heavy tails or uneven unit scales.

    Fix: nothing to fix; check the untrained model instead if initialization is the question.
    """,
)
def trained_checkpoint(model: Model, options: RuleOptions) -> Iterable[Finding]:
    if model.trained:
        yield Finding("IC301", "info", None, f"looks trained: {model.trained}")
