"""IC004 and IC2xx: symmetry between units, means, biases, normalization, embeddings, recurrence; IC301."""

from __future__ import annotations

import math
import re
from typing import Iterable

from ..frameworks.torch_layout import EMBED_HINT
from ..hints import ones_hint, zeros_hint
from ..judge import is_scale_layer
from ..model import NORM_KINDS, Layer, Model
from ..report import Finding
from ..roles import Role
from ..significance import Z_CRIT, log_std_se
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
    roles=(Role.WEIGHT, Role.RECURRENT, Role.ADAPTER_A),
)
def symmetric_units(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        st = layer.weight.stats
        if st is None or not layer.is_matrix or layer.kind == "embedding" or not st.units or st.nan or st.inf:
            continue
        if st.zero_fraction == 1.0 or st.min == st.max or st.count / st.units < 4:
            continue
        dup, const = st.duplicate_units, st.constant_units
        if layer.weight.aliases:
            const = 0  # a table tied to an embedding: constant rows are its padding rows
        if dup == 0 and const == 0:
            continue
        frac = (dup + const) / st.units
        severity = "error" if frac >= 0.01 or dup + const >= 2 else "warning"
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
        severity = "warning" if ratio >= 0.5 else "info"
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
        if st is None or st.unit_rms is None or layer.context.norm_after or st.zero_fraction == 1.0:
            continue  # a zero weight is IC002's: its units are not dead, the layer is
        bias = layer.bias.tensor.numpy().astype("float64").reshape(-1)
        unit_rms = st.unit_rms
        if bias.shape[0] != unit_rms.shape[0]:
            continue
        preact_std = unit_rms * math.sqrt(layer.fan_in)
        dead = int(((bias < -2.0 * preact_std) & (preact_std >= 0)).sum())
        frac = dead / max(bias.shape[0], 1)
        if frac < 0.1:
            continue
        severity = "error" if frac >= 0.5 else "warning"
        yield Finding("IC202", severity, layer.name,
                      f"{dead} of {bias.shape[0]} ReLU units have a bias below −2σ of their pre-activation",
                      fix=f"zero the biases ({zeros_hint(options.framework)})", data={"dead_units": dead})


def _norm_role(name: str) -> str:
    """What a norm is across repeated blocks: its name with the numbers of its blocks and stages replaced,
    and the norm's own name (and its layer's, when the norm is a plain ``bn``) kept: ``stages.1.blocks.0
    .conv2.bn`` → ``stages.#.blocks.#.conv2.bn``, torchvision RegNet's ``s1.b1.conv3.bn`` → ``s#.b#.conv3.bn``,
    ``layer2.1.bn3`` → ``layer#.#.bn3``; MobileViT's ``conv1_1x1.bn`` and ``conv3_1x1.bn`` stay two roles."""
    parts = re.split(r"([./])", name)
    names = [i for i, p in enumerate(parts) if p not in (".", "/")]
    keep = set(names[-1:]) if re.search(r"\d", parts[names[-1]]) else \
        {i for i in names[-2:] if not parts[i].isdigit()}
    return "".join(p if i in keep else re.sub(r"\d+", "#", p) for i, p in enumerate(parts))


def _coarse_norm_role(name: str) -> str:
    """Every number replaced (``conv1_kxk.bn`` and ``conv2_kxk.bn`` are one role): blocks of two kinds zero
    different norms, each its last (GerNet's basic blocks zero ``conv2_kxk.bn``, its bottlenecks
    ``conv3_1x1.bn``)."""
    return "~" + re.sub(r"\d+", "#", name)


def _zeroed_norm_roles(model: Model) -> set[str]:
    """Norm roles (``_norm_role``) zero in at least two norms and a third of the role's norms: one role
    zeroed across the blocks is the zero-init-residual pattern (ResNet ``zero_init_last``, CSP Darknet,
    MobileViT, GRN's identity start), not a stray bug, which hits one norm."""
    zero: dict[str, int] = {}
    other: dict[str, int] = {}
    for layer in model.layers:
        st = layer.weight.stats
        if layer.kind not in NORM_KINDS or layer.weight.role != "scale" or st is None or not st.finite:
            continue
        for role in (_norm_role(layer.name), _coarse_norm_role(layer.name)):
            if st.zero_fraction == 1.0:
                zero[role] = zero.get(role, 0) + 1
            else:
                other[role] = other.get(role, 0) + 1
    # blocks that downsample have no residual to zero: a role may keep a few nonzero members
    roles = {role for role, n in zero.items() if n >= 2 and 3 * n >= n + other.get(role, 0)}
    # or one zero norm in each of several blocks, whichever it is (GerNet zeroes each block's last norm:
    # conv2_kxk.bn in its basic blocks, conv3_1x1.bn in its bottlenecks)
    per_block: dict[str, int] = {}
    for layer in model.layers:
        st = layer.weight.stats
        if layer.kind in NORM_KINDS and layer.weight.role == "scale" and st is not None and st.finite \
                and st.zero_fraction == 1.0 and _block_of(layer.name):
            per_block[_block_of(layer.name)] = per_block.get(_block_of(layer.name), 0) + 1
    if len(per_block) >= 2 and all(n == 1 for n in per_block.values()):
        roles |= set(per_block)
    return roles


def _block_of(name: str) -> str:
    """The repeated block a layer sits in: its name up to its last index (``stages.1.0`` of
    ``stages.1.0.conv2_kxk.bn``); '' when it has none."""
    parts = re.split(r"[./]", name)
    last = max((i for i, p in enumerate(parts[:-1]) if p.isdigit()), default=-1)
    return "#block:" + ".".join(parts[:last + 1]) if last >= 0 else ""


NORM_SCALE_RANGE = (0.05, 5.0)  # mean scale outside this nearly blocks or strongly amplifies the signal


@rule(
    "IC203", "norm-parameters", "warning",
    "A normalization's scale is far from 1 or its shift far from 0.",
    """
    Batch/Layer/Group/RMS normalization layers start with scale 1 and shift 0 so that they pass a
    standardized signal. A scale of 0 blocks the signal (except deliberately at the end of a residual
    branch, known from the graph or from the pattern of one norm role zeroed across the blocks, or of one
    zeroed norm in each of several blocks: zero-init residual, reported at info), a scale of 10 amplifies it, a large shift moves every
    following ReLU. Libraries also damp branches on purpose (timm's RepVGG draws BN scales from
    N(0.1, 0.1)), and the next normalization renormalizes whatever a moderate scale did, so only scales
    that nearly block or strongly amplify are flagged: warning when the mean scale is outside [0.05, 5] or
    the shift's mean magnitude exceeds 0.5; NaN/Inf are IC001. Zero-centered norms (Gemma's x·(1 + w),
    measured on the module or known from the config) are judged on their effective scale 1 + w.

    Example: `layer2.1.bn2` has scale mean 0.0 and is not at a residual end.

    Fix: `torch.nn.init.ones_(norm.weight)`, `zeros_(norm.bias)`, or `initcheck fix`.
    """,
)
def norm_parameters(model: Model, options: RuleOptions) -> Iterable[Finding]:
    zeroed_roles = _zeroed_norm_roles(model)
    for layer in model.layers:
        if layer.kind not in NORM_KINDS:
            continue
        st = layer.weight.stats
        if st is None or not st.finite or st.nan or st.inf:
            continue
        sev = "warning"
        if layer.weight.role == "shift":  # no scale (Keras scale=False, center-only norms): judge the shift
            if math.sqrt(st.mean ** 2 + st.std ** 2) > 0.5:
                yield Finding("IC203", sev, layer.name, f"shift has mean {st.mean:.3g}, std {st.std:.3g} (fresh: 0)",
                              fix="set the shift to 0")
            continue
        offset = float(layer.attrs.get("scale_offset") or 0.0)
        scale_mean = st.mean + offset
        if st.zero_fraction == 1.0 and offset == 0.0:
            if layer.context.residual and not layer.context.from_name("residual"):
                yield Finding("IC203", "info", layer.name,
                              "scale is all zeros at the end of a residual branch (zero-init residual: deliberate)")
            elif _norm_role(layer.name) in zeroed_roles or _coarse_norm_role(layer.name) in zeroed_roles \
                    or _block_of(layer.name) in zeroed_roles:
                yield Finding("IC203", "info", layer.name,
                              "scale is all zeros, as in every block's norm of this role (zero-init residual "
                              "pattern: deliberate)")
            else:
                yield Finding("IC203", sev, layer.name, "scale is all zeros: this normalization blocks the signal",
                              fix=f"set the scale to 1 ({ones_hint(options.framework)})")
        elif not (NORM_SCALE_RANGE[0] <= scale_mean <= NORM_SCALE_RANGE[1]):
            sigma = _convention_draw(layer, model)
            if sigma is not None:
                yield Finding("IC203", "info", layer.name,
                              f"scale mean {scale_mean:.3g}, std {st.std:.3g}: drawn N(0, {sigma:g}) like the model's "
                              f"matrices (its library's own init); the normalized signal starts at ×{sigma:g}")
            else:
                yield Finding("IC203", sev, layer.name, f"scale mean {scale_mean:.3g} (fresh: 1)",
                              fix=f"set the scale to 1 ({ones_hint(options.framework)})")
        if layer.bias is not None and layer.bias.stats is not None and layer.bias.stats.finite:
            b = layer.bias.stats
            if math.sqrt(b.mean ** 2 + b.std ** 2) > 0.5:
                yield Finding("IC203", sev, layer.name, f"shift has mean {b.mean:.3g}, std {b.std:.3g} (fresh: 0)",
                              fix="set the shift to 0")


def _convention_draw(layer: Layer, model: Model) -> float | None:
    """The model's fixed σ when the norm's scale is a zero-mean draw of that σ (transformers' MobileViT
    draws its BatchNorm scales N(0, initializer_range) on purpose), else None."""
    verdict = getattr(model, "verdict", None)
    conv = verdict.convention if verdict is not None else None
    st = layer.weight.stats
    if conv is None or st is None or st.finite < 8 or not st.std > 0:
        return None
    centered = abs(st.mean) <= Z_CRIT * st.std / math.sqrt(st.finite)
    tol = Z_CRIT * log_std_se(st.finite) + 0.01
    return conv.sigma if centered and abs(math.log(st.rms / conv.sigma)) <= tol else None


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
        sev = "warning"
        dim = layer.shape[1] if len(layer.shape) == 2 else 1
        if not (0.002 <= st.std <= 2.0):
            if st.std < 0.002 and layer.context.norm_after:
                # a normalization right after undoes the scale: RWKV's small-init embedding (±1e-4, then a
                # LayerNorm) is deliberate, and learns fast since its effective step goes as 1/‖w‖²
                yield Finding("IC204", "info", layer.name, f"std {st.std:.3g} is below every convention, with a "
                              "normalization right after (small-init embedding: deliberate)")
                continue
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
        severity = "error" if radius > 5 else "warning"
        yield Finding("IC205", severity, layer.name,
                      f"per-gate spectral radius ≈ {radius:.3g} (hidden {hidden}): the state "
                      f"{'explodes' if radius > 1.5 else 'vanishes'} over time steps",
                      fix="orthogonal_ recurrent blocks", data={"radius": radius})


@rule(
    "IC206", "adapter-init", "warning",
    "A LoRA adapter does not start as the identity: B is not zero while A is random.",
    """
    LoRA adds B·A to a frozen weight; PEFT initializes A randomly (Kaiming uniform) and B to zeros, so
    the adapted model starts exactly as the base model and B receives gradient through A. A fresh
    adapter whose B is already nonzero changes the base model's outputs before any training step.
    (A zero A is IC002: with A = 0 and B = 0 neither gets a gradient — a dead adapter.)

    Example: `base_model.model.q_proj.lora_B.default` has std 0.02 next to a random lora_A.

    Fix: `torch.nn.init.zeros_(lora_B.weight)` (PEFT's `init_lora_weights=True`).
    """,
    roles=(Role.ADAPTER_B,),
)
def adapter_init(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        st = layer.weight.stats
        if st is None or not st.finite or st.nan or st.inf or st.zero_fraction == 1.0:
            continue
        yield Finding("IC206", "warning", layer.name,
                      f"LoRA B has std {st.std:.3g}: the adapter changes the base model at step 0",
                      fix=f"zero LoRA B ({zeros_hint(options.framework).replace('(b)', '(lora_B.weight)')})")


@rule(
    "IC207", "embedding-padding-row", "warning",
    "The padding row of an embedding is not zero.",
    """
    `nn.Embedding(padding_idx=i)` zeroes row i at construction and never updates it: padding tokens then
    contribute nothing. A custom init applied afterwards (`normal_(emb.weight)`) overwrites that row with
    random values, so every padded position adds noise to the sequence. Only layers whose padding index
    is known from the module are checked.

    Example: `embed_tokens` row 1 (padding_idx) has RMS 0.02.

    Fix: re-zero it after a custom init: `emb.weight.data[emb.padding_idx].zero_()`.
    """,
    roles=(Role.EMBEDDING,),
)
def embedding_padding_row(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        idx = layer.attrs.get("padding_idx")
        st = layer.weight.stats
        if idx is None or st is None or st.unit_rms is None or layer.weight.tensor.unit_axis != 0:
            continue
        idx = int(idx) % len(st.unit_rms)
        if st.unit_rms[idx] > 0:
            yield Finding("IC207", "warning", layer.name,
                          f"padding row {idx} has RMS {st.unit_rms[idx]:.3g}; nn.Embedding keeps it at zero",
                          fix="zero the padding row after a custom init")


@rule(
    "IC301", "trained-checkpoint", "info",
    "The model is trained; initialization rules skip its trained layers.",
    """
    Linting a trained model must not cry wolf: trained weights have heavy tails, skew, outliers, uneven
    unit scales and dominant directions that no initialization scheme produces. Each layer's provenance
    is tested for these (see docs/judgement.md: calibrated tests, a fresh layer is called trained with
    probability below 1e-5); when at least two matrices and a third of them carry such evidence the model
    is trained, initialization rules skip its trained layers and this note says how many findings that
    hid. Integrity rules (NaN/Inf, zeros, constants, duplicates, empty or uninitialized tensors) still
    apply to every layer.

    Example: 70 of 72 matrices carry evidence of training.

    Fix: nothing to fix; check the untrained model instead if initialization is the question.
    """,
    category="model",
)
def trained_checkpoint(model: Model, options: RuleOptions) -> Iterable[Finding]:
    if model.trained:
        yield Finding("IC301", "info", None, f"looks trained: {model.trained}")


def _is_head_or_adapter(model: Model, layer) -> bool:
    """A fresh head or adapter is how fine-tuning starts; a fresh middle block, expert or tied head is not."""
    if layer.judgement is not None and layer.judgement.role in (Role.ADAPTER_A, Role.ADAPTER_B):
        return True
    if layer.kind == "embedding" and layer.weight.aliases:
        return False  # a tied input/output table
    if layer.context.position == "output":
        return True
    matrices = [m for m in model.layers if m.is_matrix]
    return bool(matrices) and layer is matrices[-1]


@rule(
    "IC302", "fresh-layers-in-trained-model", "warning",
    "A trained model holds freshly initialized layers.",
    """
    The most common silent failure of loading a checkpoint: `from_pretrained` or `load_state_dict(strict=
    False)` leaves a block at its random init after a key-name mismatch, a resized head is never trained,
    MoE experts are not loaded, an untied `lm_head` is random. initcheck finds each layer whose values are
    an iid draw that matches a scheme or the model's convention inside a model whose other layers carry
    evidence of training. A fresh output head or adapter is how fine-tuning starts: info. A fresh layer
    anywhere else: warning, naming it.

    Example: `encoder.layer.5.attention.self.query` looks freshly initialized (normal(0.02)) in a trained model.

    Fix: check the loading step's missing keys (`load_state_dict(...)` returns them), key renames and
    `tie_word_embeddings`.
    """,
    category="model",
)
def fresh_in_trained(model: Model, options: RuleOptions) -> Iterable[Finding]:
    verdict = getattr(model, "verdict", None)
    if verdict is None or verdict.verdict != "mixed":
        return
    by_name = {layer.name: layer for layer in model.layers}
    for name in verdict.fresh_layers:
        layer = by_name[name]
        fp = layer.analysis.get("fingerprint") or {}
        label = layer.judgement.expectation.convention if layer.judgement.expectation and \
            layer.judgement.expectation.convention else fp.get("label", "a fresh draw")
        head = _is_head_or_adapter(model, layer)
        where = "output head or adapter: fine-tuning starts so" if head else "not a head: was it loaded?"
        yield Finding("IC302", "info" if head else "warning", name,
                      f"looks freshly initialized ({label}) in a trained model ({where})",
                      fix=None if head else "check the checkpoint's missing keys for this layer",
                      data={"fresh": True})
