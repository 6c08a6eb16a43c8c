"""IC1xx: weight scale against what the activation that follows needs.

The acceptable band for a layer spans every sound scheme for its activation: fan_in (forward-preserving)
to fan_out (backward-preserving) modes, with data-flow and framework fans, and each plausible gain
(``schemes.plausible_std_range``). It is widened by a tolerance of √2.5 in std (2.5× in variance: the
disagreement between He and Xavier on a square ReLU layer is 2×, which is accepted) and by the χ² sampling
band of the layer's size (``significance.rms_noise_band``). How far outside sets the severity.
"""

from __future__ import annotations

import math
from statistics import median
from typing import Callable, Iterable

from ..hints import scheme_hint
from ..judge import block_index, is_scale_layer
from ..model import Layer, Model
from ..report import Finding
from ..roles import Family, kind_info
from ..schemes import ACTIVATIONS, canonical_activation, gain, recommended_scheme
from ..significance import Z_CRIT, log_std_se, rms_noise_band
from . import RuleOptions, rule
from .siblings import cousin_groups, sibling_groups, structure_key

TOLERANCE = math.sqrt(2.5)  # std factor accepted beyond the band of sound schemes
WARN_FACTOR = math.sqrt(3.0)  # beyond the tolerant band by this (3× in variance): warning
ERROR_FACTOR = math.sqrt(30.0)  # 30× in variance: error (×10 or ×0.1 in std on a sound layer)


def scale_verdict(layer: Layer) -> tuple[float, str] | None:
    """(factor outside the tolerant band, 'large'|'small'), or None inside it or when not judged."""
    exp = layer.judgement.expectation if layer.judgement is not None else None
    st = layer.weight.stats
    if exp is None or exp.convention or st is None or not st.finite or st.nan or st.inf or st.zero_fraction == 1.0 \
            or st.min == st.max:
        return None
    lo, hi = exp.band
    noise_lo, noise_hi = rms_noise_band(st.finite)
    upper = hi * TOLERANCE * noise_hi
    lower = lo / TOLERANCE * noise_lo
    if st.rms > upper:
        return st.rms / upper, "large"
    if st.rms < lower:
        return (lower / st.rms if st.rms > 0 else math.inf), "small"
    return None


def _severity(factor: float, layer: Layer, direction: str, model: Model) -> tuple[str, str]:
    """Severity and the reason for it. Context from a name tempers only with a message saying so."""
    ctx = layer.context
    named = " (from its name)" if ctx.from_name("residual") or ctx.from_name("position") else ""
    if direction == "small" and (ctx.residual or ctx.residual_branch):
        return "info", "last layer of a residual branch" + named + \
            ": a small or zero init there is deliberate (Fixup, zero-init residual)"
    if direction == "small" and ctx.attention_logits:
        return "info", "query/key projection: small weights start attention near uniform, the usual choice"
    if direction == "small" and ctx.position == "output":
        return "info", "output layer" + named + ": a small head is a common deliberate choice"
    if direction == "small" and getattr(ctx, "on_inference_path", True) is False:
        return "info", "training-only branch (not on the inference path): a small auxiliary head is deliberate"
    if direction == "small" and ctx.activation_source in ("graph", "trace") and not ctx.consumers \
            and not ctx.residual and kind_info(layer.kind).family is Family.DENSE:
        return "info", "no other layer consumes its output (a head, fused with others): a small head is a common " \
            "deliberate choice"
    if direction == "small" and _feeds_only_the_head(layer, model):
        return "info", "feeds only the output head: a small head is a common deliberate choice"
    conv = _convention_factor(layer, model)
    if ctx.norm_after:
        # forward scale is undone by the normalization, but a scale-invariant layer's effective
        # learning rate goes as 1/‖w‖²: what would be a warning or an error stays a warning
        loud = factor >= WARN_FACTOR or (conv or 0) >= CONVENTION_WARN
        return ("warning" if loud else "info"), "a normalization follows: the effective learning rate " \
            "scales as 1/‖w‖²"
    if factor >= ERROR_FACTOR or (conv or 0) >= CONVENTION_ERROR:
        return "error", f"×{conv:.3g} off the model's convention" if conv and factor < ERROR_FACTOR else ""
    if factor >= WARN_FACTOR or (conv or 0) >= CONVENTION_WARN:
        return "warning", f"×{conv:.3g} off the model's convention" if conv and factor < WARN_FACTOR else ""
    return "info", ""


def _feeds_only_the_head(layer: Layer, model: Model) -> bool:
    """The layer's outputs reach only the output layer (a two-layer classifier head's first layer)."""
    consumers = layer.context.consumers
    if not consumers or kind_info(layer.kind).family is not Family.DENSE:
        return False  # recurrent gates feed the cell's state, not just the head
    by_name = {m.name: m for m in model.layers}
    return all(c in by_name and by_name[c].context.position == "output" for c in consumers)


CONVENTION_WARN = 3.0  # std this far from every variant of the model's own convention: warning
CONVENTION_ERROR = 10.0


def _convention_factor(layer: Layer, model: Model) -> float | None:
    """How far (a factor ≥ 1) the layer's std is from the nearest variant of the model's convention."""
    verdict = getattr(model, "verdict", None)
    conv = verdict.convention if verdict is not None else None
    st = layer.weight.stats
    if conv is None or st is None or not st.rms > 0:
        return None
    return min(math.exp(abs(math.log(st.rms / s))) for s in conv.variants(layer.fan_in, block_index(layer.name)).values())


def _unit_normal(layer: Layer) -> bool:
    """N(0, 1) exactly, or trunc_normal_'s default arguments (std 1 cut at ±2, whose std is 0.88)."""
    from ..schemes import TRUNCATED_NORMAL_STD_FACTOR

    fp = layer.analysis.get("fingerprint") or {}
    if fp.get("scheme") != "normal" or fp.get("scheme_std") is None:
        return False
    unit = 1.0 if fp.get("distribution") != "truncated_normal" else TRUNCATED_NORMAL_STD_FACTOR
    return abs(fp["scheme_std"] - unit) < 1e-3


def _fix_text(layer: Layer, framework: str) -> str:
    act = layer.context.activation
    if act is None:
        return ("name the activation (--activation, or --model for the graph) for a sharper check; "
                "reinitialize with `initcheck fix --activation NAME`")
    fp = layer.analysis.get("fingerprint") or {}
    return scheme_hint(act, fp.get("distribution") or "normal", framework, layer.context.activation_param)


def _describe(layer: Layer) -> str:
    ctx = layer.context
    act = ctx.activation or "unknown activation"
    return f"{act}" + (f" ({ctx.activation_source})" if ctx.activation else "")


@rule(
    "IC101", "scale-too-large", "error",
    "Weights are larger than any sound scheme gives for the activation that follows.",
    """
    Each layer's weights are compared with the band of std values that Xavier/Glorot, He/Kaiming and LeCun
    give for its fans and the activation that consumes its output (detected from the model's graph), in
    fan_in, fan_out and averaged modes, widened by a tolerance of √2.5 and by the sampling error of the
    layer's size. Too-large weights grow the signal's variance at every such layer: activations saturate
    (tanh, sigmoid) or explode (ReLU), gradients follow. Severity: warning at 3× the band's variance,
    error at 30×. With a normalization right after, the forward scale is harmless and the finding is info,
    except for gross errors (warning), since a scale-invariant layer's effective learning rate goes as 1/‖w‖².

    Example: `fc2` (256→256, ReLU) has std 0.88, He gives 0.088: ratio 10.0.

    Fix: reinitialize with the scheme for the activation, e.g. `torch.nn.init.kaiming_normal_(w,
    nonlinearity='relu')`, or run `initcheck fix MODEL -o OUT`.
    """,
)
def too_large(model: Model, options: RuleOptions) -> Iterable[Finding]:
    yield from _scale_findings(model, options, "large", known=True)


@rule(
    "IC102", "scale-too-small", "error",
    "Weights are smaller than any sound scheme gives for the activation that follows.",
    """
    The mirror of IC101: too-small weights shrink the signal's variance at every layer, so deep stacks
    vanish (the classic failure of a deep ReLU MLP under PyTorch's default U(±1/√fan_in), which shrinks the
    variance ~6× per layer; see also IC105). A deliberately small or zero last layer of a residual branch
    (zero-init residual, Fixup, ReZero) or of the output head is good practice and is reported at info.

    Example: `blocks.3.fc1` (512→512, GELU) has std 0.0013, expected 0.068: ratio 0.02.

    Fix: reinitialize with the scheme for the activation, e.g. He for ReLU (`initcheck fix`).
    """,
)
def too_small(model: Model, options: RuleOptions) -> Iterable[Finding]:
    yield from _scale_findings(model, options, "small", known=True)


@rule(
    "IC103", "unexplained-scale", "error",
    "The activation is unknown and no plausible scheme explains the weights' scale.",
    """
    When initcheck cannot tell which activation follows a layer (a tensor-only file without `--model`, a
    model it could not trace), it accepts any std that some scheme in its table gives with some activation
    (gains from 0.75 to 1.74, fan_in to fan_out), widened as for IC101. What is outside that is wrong
    whatever the activation. Severity as IC101/IC102. Tell initcheck the activation with `--activation
    relu` or the architecture with `--model package.module:factory` for a sharper judgement.

    Example: `encoder.2.weight` (512×512) has std 0.45 where any scheme gives 0.033 to 0.077.

    Fix: reinitialize (`initcheck fix`), naming the activation.
    """,
)
def unexplained(model: Model, options: RuleOptions) -> Iterable[Finding]:
    yield from _scale_findings(model, options, None, known=False)


def _scale_findings(model: Model, options: RuleOptions, want: str | None, known: bool) -> Iterable[Finding]:
    for layer in model.layers:
        if not is_scale_layer(layer) or (layer.context.activation is not None) != known:
            continue
        verdict = scale_verdict(layer)
        if verdict is None:
            continue
        factor, direction = verdict
        if want is not None and direction != want:
            continue
        severity, why = _severity(factor, layer, direction, model)
        if severity == "error" and _unit_normal(layer):
            # N(0, 1) exactly is a convention (unit scaling, whose ops divide by √fan_in) as well as the
            # classic normal_() without std: loud, but not an error without the graph to tell them apart
            severity, why = "warning", ("N(0, 1) exactly: torch.nn.init.normal_'s default std, or unit scaling"
                                        if (layer.analysis.get("fingerprint") or {}).get("distribution") != "truncated_normal"
                                        else "trunc_normal_'s default arguments (std 1, cut at ±2), or unit scaling")
        a = layer.analysis
        st = layer.weight.stats
        lo, hi = layer.judgement.expectation.band
        code = {"large": "IC101", "small": "IC102"}[direction] if known else "IC103"
        if known:
            msg = (f"std {st.rms:.3g} is {a['std_ratio']:.2f}× the {recommended_scheme(layer.context.activation).family}"
                   f" expectation {a['expected_std']:.3g} for {_describe(layer)}, fans {layer.fan_in}/{layer.fan_out};"
                   f" sound schemes give {lo:.3g}–{hi:.3g}")
        else:
            msg = (f"std {st.rms:.3g} is outside {lo:.3g}–{hi:.3g}, what any scheme gives for fans "
                   f"{layer.fan_in}/{layer.fan_out} with any activation ({'too large' if direction == 'large' else 'too small'})")
        fp = a.get("fingerprint") or {}
        if fp.get("scheme") not in (None, "unknown"):
            msg += f"; looks like {fp.get('label')}"
        if why:
            msg += f" [{why}]"
        yield Finding(code, severity, layer.name, msg, fix=_fix_text(layer, options.framework),
                      data={"std": st.rms, "expected_std": a["expected_std"], "band": [lo, hi],
                            "factor_outside_band": factor})


# --------------------------------------------------------------------------------------------- siblings
@rule(
    "IC104", "sibling-outlier", "error",
    "A layer's scale differs from the layers that play the same role in other blocks.",
    """
    Layers with the same kind and shape whose names differ only in a block index (`encoder.layer.3.attention
    .self.query` and its 11 siblings) are initialized alike in every architecture initcheck knows. A layer
    whose std is more than 2× from the median of at least two siblings (and beyond their spread and its
    sampling error) was very likely missed or hit twice by an init loop, or corrupted.

    Cousins play one role in blocks of different widths (`stages.#.blocks.#.mlp.fc2` in a pyramid, every
    SE `conv_reduce` of a MobileNet; grouped by the name with every index replaced, else by the module's
    own name). Their std follows one scaling law — one σ for all, or ∝ 1/√fan_in, 1/√fan_out or
    1/√(fan_in + fan_out) — rather than one value. A layer that sits ×3 or more off its cousins under every
    law, while they agree under one, is flagged the same way.

    Example: `h.7.mlp.c_fc` has std 0.2, its 11 siblings 0.02 (×10.0).

    Fix: reinitialize that layer like its siblings (`initcheck fix --layers 'h.7.mlp.c_fc'`).
    """,
)
def sibling_outlier(model: Model, options: RuleOptions) -> Iterable[Finding]:
    flagged: set[str] = set()
    for finding in _sibling_findings(model):
        flagged.add(finding.layer)
        yield finding
    for finding in (*_cousin_findings(model), *_convention_outliers(model)):
        if finding.layer not in flagged:
            flagged.add(finding.layer)
            yield finding


CONVENTION_MAJORITY = 0.9  # of a kind's other matrices that follow the convention, for an outlier to stand out


def _convention_outliers(model: Model) -> Iterable[Finding]:
    """A layer ×3 or more off every variant of the model's convention, which nearly all the other matrices
    of its kind follow (a layer at 0.2 in a model where every other linear is N(0, 0.02)), even where
    some scheme would explain its std alone: the model says how it initializes its layers of this kind."""
    verdict = getattr(model, "verdict", None)
    if verdict is None or verdict.convention is None:
        return
    by_kind: dict[str, list[Layer]] = {}
    for layer in _judgeable(model, (m for m in model.layers if is_scale_layer(m) and m.judgement is not None
                                    and m.judgement.expectation is not None)):
        by_kind.setdefault(layer.kind, []).append(layer)
    for kind, layers in by_kind.items():
        following = [m for m in layers if m.judgement.expectation.convention]
        for m in layers:
            fan_based = (m.analysis.get("fingerprint") or {}).get("fans") not in (None, "none")
            if m.judgement.expectation.convention or _unit_normal(m) or (_plausibility(m) >= 1 and fan_based):
                # N(0, 1) exactly is unit scaling or normal_()'s default (IC101/IC103 say so, capped); a layer a
                # common fan-based scheme explains exactly is that scheme on purpose (OneFormer's Xavier query
                # projection), while another fixed σ is no explanation in a model of one σ (GoogLeNet's ×10)
                continue
            others = len(layers) - 1
            if len(following) < 3 or len(following) < CONVENTION_MAJORITY * others:
                continue
            factor = _convention_factor(m, model)
            if factor is None or factor < CONVENTION_WARN * math.exp(Z_CRIT * log_std_se(m.weight.stats.finite)):
                continue
            if m.weight.stats.rms < verdict.convention.sigma and (m.context.residual or m.context.residual_branch
                                                                   or m.context.position == "output"
                                                                   or m.context.attention_logits):
                continue  # small where small is deliberate: IC102's tempering holds here too
            severity = "error" if factor >= CONVENTION_ERROR else "warning"
            yield Finding(
                "IC104", severity, m.name,
                f"std {m.weight.stats.rms:.3g} is ×{factor:.3g} off every variant of the model's convention "
                f"{verdict.convention.name}, which {len(following)} of its {others} other {kind} layers follow",
                fix="reinitialize it like the layers of its kind", data={"ratio": factor, "siblings": len(following)})


def _judgeable(model: Model, layers: Iterable[Layer]) -> list[Layer]:
    """Layers with a finite, non-zero std; in a trained model only its fresh ones (a fresh layer among
    trained siblings differs because they trained: IC302's finding, not this)."""
    members = [m for m in layers if m.weight.stats is not None and m.weight.stats.finite
               and not (m.weight.stats.nan or m.weight.stats.inf) and m.weight.stats.rms > 0]
    verdict = getattr(model, "verdict", None)
    if model.trained is not None and verdict is not None:
        members = [m for m in members if m.name in verdict.fresh_layers]
    return members


def _sibling_findings(model: Model) -> Iterable[Finding]:
    for key, group in sibling_groups(model).items():
        members = _judgeable(model, group)
        if len(members) == 2:
            yield from _pair_outlier(key, *members)
        if len(members) < 3:
            continue
        logs = {m.name: math.log(m.weight.stats.rms) for m in members}
        for m in members:
            others = [v for k, v in logs.items() if k != m.name]
            center = median(others)
            spread = median(abs(v - center) for v in others) * 1.4826
            se = log_std_se(m.weight.stats.finite) * math.sqrt(2)
            dev = logs[m.name] - center
            threshold = max(math.log(2.0), 5 * spread, Z_CRIT * se)
            if abs(dev) > threshold:
                ratio = math.exp(dev)
                # the siblings agree and this one does not: a missed or doubled init, wherever it sits
                severity = "error" if abs(dev) >= math.log(10.0) - 1e-9 else "warning"
                yield Finding(
                    "IC104", severity, m.name,
                    f"std {m.weight.stats.rms:.3g} is ×{ratio:.3g} the median {math.exp(center):.3g} of its "
                    f"{len(others)} siblings ({key[2]})",
                    fix="reinitialize it like its siblings", data={"ratio": ratio, "siblings": len(others)})


# How a role's std may scale with the width of its block: one σ for all (fixed-σ conventions), or ∝ 1/√fan
# (every fan-scaled scheme, in its mode). Cousins of different widths agree under one of these.
# The framework's fans count too: torch's helper ignores a grouped conv's groups in fan_out (RegNet).
def _fans(layer: Layer, framework: bool) -> tuple[float, float]:
    fans = layer.framework_fans if framework and layer.framework_fans else (layer.fan_in, layer.fan_out)
    return float(fans[0] or 1), float(fans[1] or 1)


SCALE_LAWS: dict[str, Callable[[Layer], float]] = {"one std": lambda layer: 1.0}
for _fw, _label in ((False, ""), (True, " (framework fans)")):
    SCALE_LAWS.update({
        f"std·√fan_in{_label}": lambda layer, fw=_fw: _fans(layer, fw)[0],
        f"std·√fan_out{_label}": lambda layer, fw=_fw: _fans(layer, fw)[1],
        f"std·√(fan_in+fan_out){_label}": lambda layer, fw=_fw: sum(_fans(layer, fw)),
    })
COUSINS_AGREE = math.log(1.5)  # the others' spread under a law, beyond sampling error, for them to agree
COUSIN_FACTOR = math.log(3.0)  # how far, under every law, an outlier must sit


def _cousin_findings(model: Model) -> Iterable[Finding]:
    """A layer whose std no scaling law reconciles with cousins that agree under one (planted ×10 in one
    stage of a pyramid, one SE reduction of a MobileNet initialized twice)."""
    for key, (tested, group) in cousin_groups(model).items():
        members = _judgeable(model, group)
        by_name = key[1].startswith("…")
        for m in _judgeable(model, tested):
            others = [o for o in members if o is not m]
            if len(others) < 2:
                continue
            if by_name and any(structure_key(o) == structure_key(m) and abs(math.log(o.weight.stats.rms /
                                                                                   m.weight.stats.rms)) <= COUSINS_AGREE
                               for o in others):
                continue  # it agrees with its own sibling: namesakes elsewhere are another module, inited otherwise
            if by_name and _plausibility(m) >= 1:
                continue  # namesakes in another sub-model may use another common scheme (Mask2Former's Xavier
                # decoder beside its Swin backbone's N(0, 0.02)): only an unexplained std stands out
            se = max(log_std_se(o.weight.stats.finite) for o in [m, *others])
            agree = max(COUSINS_AGREE, 2 * Z_CRIT * se)
            deviations, agreeing = [], []
            for law, width in SCALE_LAWS.items():
                values = [math.log(o.weight.stats.rms) + 0.5 * math.log(width(o)) for o in others]
                dev = math.log(m.weight.stats.rms) + 0.5 * math.log(width(m)) - median(values)
                deviations.append(dev)
                if max(values) - min(values) <= agree:
                    agreeing.append((abs(dev), law, dev))
            nearest = min(abs(d) for d in deviations)
            if not agreeing or nearest <= max(COUSIN_FACTOR, Z_CRIT * se * math.sqrt(2)):
                continue
            _, law, dev = min(agreeing)
            ratio = math.exp(dev)
            severity = "error" if nearest >= math.log(10.0) - 1e-9 else "warning"
            yield Finding(
                "IC104", severity, m.name,
                f"std {m.weight.stats.rms:.3g} is ×{ratio:.3g} what its {len(others)} cousins by name ({key[1]}) "
                f"give under the scaling law they share ({law}); no law reconciles it with them",
                fix="reinitialize it like its cousins", data={"ratio": ratio, "siblings": len(others), "law": law})


def _claims_scheme(layer: Layer) -> bool:
    fp = layer.analysis.get("fingerprint") or {}
    exp = layer.judgement.expectation if layer.judgement is not None else None
    return fp.get("scheme") not in (None, "unknown") or bool(exp is not None and exp.convention)


def _pair_outlier(key: tuple, a: Layer, b: Layer) -> Iterable[Finding]:
    """Two siblings that disagree by ×3 or more beyond sampling error: the one no scheme explains is the
    odd one, when the other one is explained (a lone pair cannot say more)."""
    dev = math.log(a.weight.stats.rms / b.weight.stats.rms)
    se = math.hypot(log_std_se(a.weight.stats.finite), log_std_se(b.weight.stats.finite))
    if abs(dev) <= max(math.log(3.0), Z_CRIT * se) or _plausibility(a) == _plausibility(b):
        return
    odd, other = (b, a) if _plausibility(a) > _plausibility(b) else (a, b)
    ratio = odd.weight.stats.rms / other.weight.stats.rms
    severity = "error" if max(ratio, 1 / ratio) >= 10.0 - 1e-9 else "warning"
    why = ("a scheme explains and it does not" if _claims_scheme(other) and not _claims_scheme(odd) else
           f"which a common scheme explains ({_label(other)}) where it needs an unusual one ({_label(odd)})")
    yield Finding("IC104", severity, odd.name,
                  f"std {odd.weight.stats.rms:.3g} is ×{ratio:.3g} its sibling {other.name} ({key[2]}), {why}",
                  fix="reinitialize it like its sibling", data={"ratio": ratio, "siblings": 1})


def _label(layer: Layer) -> str:
    exp = layer.judgement.expectation if layer.judgement is not None else None
    if exp is not None and exp.convention:
        return exp.convention
    return (layer.analysis.get("fingerprint") or {}).get("label") or "no scheme"


COMMON_GAINS = (1.0, math.sqrt(2.0))  # linear/sigmoid and ReLU: what most layers are initialized with


def _plausibility(layer: Layer) -> int:
    """How ordinary the explanation of a layer's std is: 2 the model's convention, 1 a common scheme
    (gain 1 or √2, fan_in or averaged fans, a fixed σ, torch's default), 0 an unusual gain or mode (He
    fan_out with hardswish's gain: a combination that fits nearly any std), -1 no scheme at all."""
    if not _claims_scheme(layer):
        return -1
    exp = layer.judgement.expectation if layer.judgement is not None else None
    if exp is not None and exp.convention:
        return 2
    fp = layer.analysis.get("fingerprint") or {}
    g = fp.get("gain")
    common_gain = g is None or any(abs(g - c) < 1e-6 for c in COMMON_GAINS)
    return 1 if common_gain and fp.get("mode") in (None, "fan_in", "fan_avg") else 0


# ------------------------------------------------------------------------------------------ signal chain
def forward_gain(layer: Layer) -> float | None:
    """Variance multiplier of the signal through this layer and its activation, relative to preservation.

    With x = rms·√fan_in, a gain g preserves the variance when x = g. Saturating and smooth activations
    have a range of sound gains (tanh: 1 in its linear regime, 5/3 for unit-variance inputs), so any x in
    [min gain, max gain] counts as preserving; outside, the factor is (x / nearest gain)².
    """
    st = layer.weight.stats
    act = layer.context.activation
    if st is None or act is None or not layer.fan_in or not st.finite or st.nan or st.inf or st.min == st.max:
        return None
    name = canonical_activation(act)
    if name == "leaky_relu" and layer.context.activation_param is not None:
        gains = [gain(act, layer.context.activation_param)]
    else:
        gains = list(ACTIVATIONS[name].plausible_gains) if name else [1.0]
    x = st.rms * math.sqrt(layer.fan_in)
    g = min(max(x, min(gains)), max(gains))
    return (x / g) ** 2


@rule(
    "IC105", "signal-chain", "warning",
    "Through a chain of un-normalized layers the signal's variance vanishes or explodes.",
    """
    Per-layer scale errors compound: a stack of L layers each shrinking the forward variance by a factor
    r ends with r^L. initcheck follows the graph through consecutive layers that have no normalization
    after them and no residual connection, multiplies each layer's forward variance gain (1 for He with
    the right gain), and warns when the product over 3 or more layers leaves [1/100, 100].

    Example: an 8-layer ReLU MLP under PyTorch's default init: ×0.17 per layer, ×6e-7 at the output.

    Fix: He init for ReLU layers (`initcheck fix`), or normalization between layers.
    """,
)
def signal_chain(model: Model, options: RuleOptions) -> Iterable[Finding]:
    by_name = {layer.name: layer for layer in model.layers}
    eligible = {layer.name for layer in model.layers
                if is_scale_layer(layer) and not layer.context.norm_after and not layer.context.residual
                and not layer.context.residual_branch
                and forward_gain(layer) is not None}
    successors = {n: [c for c in by_name[n].context.consumers if c in eligible] for n in eligible}
    has_pred = {c for cs in successors.values() for c in cs}
    for start in [n for n in by_name if n in eligible and n not in has_pred]:
        chain = [start]
        while successors.get(chain[-1]) and len(successors[chain[-1]]) == 1 and successors[chain[-1]][0] not in chain:
            chain.append(successors[chain[-1]][0])
        if len(chain) < 3:
            continue
        gains = [forward_gain(by_name[n]) for n in chain]
        total = math.prod(gains)
        if 1e-2 <= total <= 1e2:
            continue
        # compounding, not one bad layer (which IC101/IC102/IC002 report on its own)
        same_way = sum(1 for g in gains if (g < 1 / 1.5 if total < 1 else g > 1.5))
        if same_way < 3:
            continue
        per_layer = total ** (1 / len(chain))
        direction = "shrinks" if total < 1 else "grows"
        yield Finding(
            "IC105", "warning", chain[0],
            f"signal variance {direction} ×{per_layer:.2g} per layer over {len(chain)} layers "
            f"({chain[0]} … {chain[-1]}): ×{total:.2g} at the end",
            fix="He init for ReLU layers / the activation's gain (`initcheck fix`), or add normalization",
            data={"chain": chain, "per_layer": per_layer, "total": total})


