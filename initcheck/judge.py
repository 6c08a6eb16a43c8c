"""The judgement: for every layer its role, context, provenance, expectation and fingerprint; for the model
its verdict (fresh, trained or mixed) and convention.

Evidence comes in this order of authority: the model's graph, the model's own config (a Hugging Face
``config.json``), the user (``--activation``), the layer's siblings and the model-wide convention, and only
last a name (tensor-only files). A name adds context and is recorded as such (``Context.evidence``); it
never makes an integrity finding milder. Framework code is reached only through ``frameworks.*.graph``.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections import Counter
from typing import TYPE_CHECKING

from .fingerprint import COMMON_FIXED_STDS, fingerprint
from .graph import annotate, explain_unknown
from .hfconfig import ModelConfig, config_from_object, read_model_config
from .judgement import Convention, Expectation, Judgement, ModelVerdict
from .model import Layer, Model
from .provenance import Verdict, provenance_of
from .roles import Family, Role, adapter_role, free_role_from_name, kind_info
from .schemes import TRUNCATED_NORMAL_STD_FACTOR, canonical_activation, expected_std, plausible_std_range
from .significance import Z_CRIT, log_std_se

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import CheckOptions

# Tensor-only files: names of projections that end a residual branch in common architectures (a hint only).
RESIDUAL_END_NAME = re.compile(
    r"(^|\.)(c_proj|o_proj|out_proj|down_proj|fc2|wo|proj|dense_4h_to_h|output\.dense|attention\.output\.dense|"
    r"mlp\.c_proj|attn\.c_proj|w2|conv3|conv2)$")
HEAD_NAME = re.compile(r"(^|\.)(lm_head|classifier|head|fc|cls\.predictions\.decoder|score|logits)$")
QUERY_KEY_NAME = re.compile(r"(^|[./])(q|k|query|key|q_proj|k_proj|wq|wk|to_q|to_k|query_proj(ector)?|key_proj(ector)?|"
                            r"query_dense|key_dense)$")


def is_scale_layer(layer: Layer) -> bool:
    """The variance-propagation analysis applies: a dense/conv/recurrent-input weight with both fans."""
    return (layer.is_matrix and kind_info(layer.kind).scale_judged and bool(layer.fan_in and layer.fan_out)
            and layer_role(layer) in (Role.WEIGHT, Role.ADAPTER_A))


def judge(model: Model, options: "CheckOptions") -> list[str]:
    """Fill context and the typed judgement on every layer; set the model verdict; return banners."""
    banners: list[str] = []
    config = model_config(model)
    _context(model, options, config)
    convention = detect_convention(model, config)
    judgements: dict[str, Judgement] = {}
    for layer in model.layers:
        role, role_source = role_of(layer)
        fp = fingerprint(layer) if layer.is_matrix else {}
        structured = fp.get("label") if fp.get("scheme") in ("orthogonal", "identity") else None
        prov = provenance_of(layer.weight.stats, role, structured)
        judgements[layer.name] = Judgement(role, role_source, prov, _expectation(layer, convention), fp)
    for layer in model.layers:
        layer.judgement = judgements[layer.name]
    verdict = model_verdict(model, convention)
    model.verdict = verdict
    model.trained = verdict.why if verdict.verdict != "fresh" else None
    for layer in model.layers:
        layer.analysis.update(layer.judgement.view())
    if verdict.verdict == "trained":
        banners.append(f"trained checkpoint ({verdict.why}): initialization rules skip trained layers")
    elif verdict.verdict == "mixed":
        banners.append(f"trained checkpoint with freshly initialized layers ({verdict.why})")
    if convention is not None:
        model.source_notes.append(f"init convention {convention.name} (from {convention.source})")
    if config is not None:
        model.source_notes.append(f"context from {config.path}: " + ", ".join(config.describe()))
    model.source_notes.extend(n for n in model.graph_notes if n not in model.source_notes)
    return banners


# ----------------------------------------------------------------------------------------------- roles
def role_of(layer: Layer) -> tuple[Role, str]:
    """(role of the layer's main tensor, where that came from)."""
    adapter = adapter_role(layer.name)
    if adapter is not None:
        return adapter, "name (PEFT adapter module)"
    info = kind_info(layer.kind)
    shape_role = _table_role(layer)
    if shape_role is not None:
        return shape_role, "shape"
    if layer.kind_source == "inferred" and layer.bias is not None and len(layer.shape) >= 2 \
            and tuple(layer.bias.shape) == tuple(layer.shape):
        # a "bias" of the weight's own shape is no kernel's bias: an elementwise scale and shift (ConvNeXt-V2's
        # GRN γ, β of shape (1, 1, 1, C), zeros at init; a LayerNorm over several axes), known from the shapes
        return Role.GAIN, "shape"
    if info.family is not Family.FREE:
        return info.weight_role, "module" if layer.kind_source == "module" else "kind"
    if layer.weight.role == "shift":
        return Role.NORM_SHIFT, "kind"
    hint = free_role_from_name(layer.name)
    if hint is not None:
        return hint, "name"
    return info.weight_role, "kind"


def _table_role(layer: Layer) -> Role | None:
    """A tensor added to the tokens, known from its shape: ``(1, 1, D)`` is a cls/mask token, ``(1, N, D)``
    or ``(1, H, W, D)`` a learned table. Only where the kind itself is a guess (a free tensor, or a kind a
    weights-only file's shape suggested) and no bias goes with it: a Keras pointwise Conv1D kernel is
    ``(1, in, out)`` too, and has its bias beside it; a 4-D table is a square grid ``(1, H, H, D)`` or
    ``(1, 1, 1, D)``, never a Keras ``(1, k, in, out)`` kernel."""
    if layer.kind_source == "module" or layer.bias is not None:
        return None
    if kind_info(layer.kind).family is not Family.FREE and layer.kind_source != "inferred":
        return None
    shape = layer.shape
    if len(shape) not in (3, 4) or shape[0] != 1 or shape[-1] <= 1:
        return None
    if len(shape) == 4 and not (shape[1] == shape[2] and (shape[1] > 1 or shape[-2] == 1)):
        return None  # a Keras 1×k conv kernel (1, k, in, out), InceptionV3's 1×7 or any 1×1, is no (1, H, W, D) grid
    if all(d == 1 for d in shape[1:-1]):
        return Role.TOKEN  # (1, 1, D): a cls/mask token
    return Role.POSITION  # (1, N, D), (1, H, W, D): a learned table added to the tokens


def layer_role(layer: Layer) -> Role:
    j = getattr(layer, "judgement", None)
    return j.role if j is not None else role_of(layer)[0]


# ----------------------------------------------------------------------------------------------- context
def model_config(model: Model) -> ModelConfig | None:
    """The model's own config: a live transformers model's ``.config``, or config.json beside the file."""
    live = getattr(model.handle, "config", None) if model.handle is not None else None
    if live is not None and hasattr(live, "to_dict"):
        return config_from_object(live)
    return read_model_config(model.path) if isinstance(model.path, str) else None


def _context(model: Model, options: "CheckOptions", config: ModelConfig | None) -> None:
    if model.framework == "torch" and model.handle is not None and (
            _is_torch_module(model.handle) or hasattr(model.handle, "graph_signature")):
        from .frameworks.torch.graph import torch_graph

        _mark_zero_centered_norms(model)
        graph, why = torch_graph(model.handle, model, options.input_shape)
        if graph is not None:
            annotate(model, graph)
            if why:
                model.graph_notes.append(f"context from a traced forward pass ({why})")
        else:
            _order_context(model)
            explain_unknown(model, f"no graph: {why}")
            model.graph_notes.append(f"no graph: {why}; activations unknown")
    elif model.handle is None:
        _name_context(model)
    _zero_centered_from_weights(model)
    if config is not None and config.zero_centered_norms:
        for layer in model.layers:
            if kind_info(layer.kind).family is Family.NORM:
                layer.attrs.setdefault("scale_offset", 1.0)
                layer.context.evidence.setdefault("scale_offset", "config")
    _terminal_by_shape(model)
    for layer in model.layers:
        if kind_info(layer.kind).family is Family.RECURRENT_INPUT and layer.context.activation is None:
            # the gates squash with sigmoid/tanh inside the cell
            layer.context.activation, layer.context.activation_source = "tanh", "graph"
    for pattern, act in (options.activation_overrides or {}).items():
        name = canonical_activation(act)
        for layer in model.layers:
            if fnmatch.fnmatchcase(layer.name, pattern):
                layer.context.activation, layer.context.activation_source = name, "user"
    if options.activation:
        name = canonical_activation(options.activation)
        for layer in model.layers:
            if layer.is_matrix and layer.context.activation is None:
                layer.context.activation, layer.context.activation_source = name, "user"


def _mark_zero_centered_norms(model: Model) -> None:
    """Gemma-style norms store scale − 1: measured on the live module (see frameworks.torch.norms)."""
    if not _is_torch_module(model.handle):
        return
    from .frameworks.torch.norms import zero_centered_norms

    norms = {layer.name if layer.name != "<root>" else "": layer.name for layer in model.layers
             if kind_info(layer.kind).family is Family.NORM}
    for name in zero_centered_norms(model.handle, norms):
        for layer in model.layers:
            if layer.name == name:
                layer.attrs["scale_offset"] = 1.0
                layer.context.evidence["scale_offset"] = "module"


def _io_sizes(layer: Layer) -> tuple[int, int] | None:
    """(output channels, input channels) of a dense/conv layer in its stored layout: PyTorch (out, in, ...),
    transposed (in, out, ...), Keras (..., in, out)."""
    shape = layer.shape
    if len(shape) < 2 or not kind_info(layer.kind).scale_judged:
        return None
    axis = layer.weight.tensor.unit_axis % len(shape)
    if axis == 0:
        return shape[0], shape[1]
    if axis == 1:
        return shape[1], shape[0]
    return shape[-1], shape[-2]


def _terminal_by_shape(model: Model) -> None:
    """The one matrix whose output size no other layer takes as input (and no norm normalizes) is where
    the network ends: the output head. Structural evidence from the shapes, used where the graph gave no
    consumers (tensor-only files, layers a trace did not reach). Fused outputs are excluded — q/k/v
    (3E), gates (4H), gated MLPs (2×) — as is any size that is a small multiple of an input size, and
    nothing is concluded unless exactly one layer qualifies, or up to 8 of one output size (heads on
    several stages, summed at the end)."""
    sizes = {layer.name: _io_sizes(layer) for layer in model.layers
             if kind_info(layer.kind).family is Family.DENSE and not (layer.attrs.get("gates")
                                                                     or layer.attrs.get("projections"))}
    inputs = {s[1] for s in sizes.values() if s}
    inputs |= {layer.shape[0] for layer in model.layers if kind_info(layer.kind).family is Family.NORM and layer.shape}
    inputs |= {layer.shape[1] for layer in model.layers if layer.kind == "embedding" and len(layer.shape) == 2}
    candidates = []
    for layer in model.layers:
        s = sizes.get(layer.name)
        ctx = layer.context
        named_head = ctx.position == "output" and ctx.from_name("position")
        if s is None or ctx.consumers or (ctx.position != "hidden" and not named_head) or s[0] in inputs:
            continue
        if any(s[0] % i == 0 and 2 <= s[0] // i <= 8 for i in inputs if i):
            continue
        candidates.append(layer)
    # one head, or several heads of one output size fused at the end (EfficientViM's per-stage heads)
    if len(candidates) == 1 or (len(candidates) <= 8 and len({sizes[c.name][0] for c in candidates}) == 1):
        for layer in candidates:
            layer.context.position = "output"
            layer.context.evidence["position"] = "shape"


def _zero_centered_from_weights(model: Model) -> None:
    """Every norm scale of the model (or every one without a shift) exactly zero: a zero-centered
    parametrization x·(1 + w) (Gemma), not a model whose every normalization blocks the signal.
    Relational evidence from the weights."""
    norms = [layer for layer in model.layers if kind_info(layer.kind).family is Family.NORM
             and layer.weight.role == "scale" and layer.weight.stats is not None]
    # a multimodal model's towers may use plain norms (SigLIP's LayerNorms, with a shift): the zero-centered
    # RMSNorms are then every norm without a shift
    for group in (norms, [n for n in norms if n.bias is None]):
        if len(group) >= 2 and all(n.weight.stats.finite and n.weight.stats.zero_fraction == 1.0 for n in group):
            for n in group:
                n.attrs.setdefault("scale_offset", 1.0)
                n.context.evidence.setdefault("scale_offset", "weights")
            return


def _is_torch_module(obj) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _order_context(model: Model) -> None:
    """Without a graph, only positions: the first matrix layer is the input, the last the output."""
    matrices = [layer for layer in model.layers if (is_scale_layer(layer) or layer.kind == "embedding")
                and layer.context.activation_source == "unknown"]
    if matrices:
        matrices[0].context.position = "input"
        matrices[-1].context.position = "output"
        matrices[0].context.evidence.setdefault("position", "order")
        matrices[-1].context.evidence.setdefault("position", "order")


def _name_context(model: Model) -> None:
    """Tensor-only files: residual ends and heads from common names, recorded as name evidence (they
    temper scale findings with a message saying so, never integrity ones); positions from order only where
    the file keeps the module order (torch.save does, safetensors sorts names)."""
    if model.framework != "safetensors":
        _order_context(model)
    for layer in model.layers:
        if layer.context.activation_source != "unknown":
            continue
        if RESIDUAL_END_NAME.search(layer.name):
            layer.context.residual = True
            layer.context.evidence["residual"] = "name"
        if HEAD_NAME.search(layer.name):
            layer.context.position = "output"
            layer.context.evidence["position"] = "name"
        if QUERY_KEY_NAME.search(layer.name):
            layer.context.attention_logits = True
            layer.context.evidence["attention_logits"] = "name"


# -------------------------------------------------------------------------------------------- convention
# a fixed σ of 0.02 is told from any fan-based std from 32 values on (fans 4/4 give 0.35 and more)
MIN_CONVENTION_VALUES = 32


def detect_convention(model: Model, config: ModelConfig | None) -> Convention | None:
    """The model-wide fixed-σ convention, from config.json's ``initializer_range`` or from the weights.

    From the weights: a σ of the common table that at least 3 matrices and a third of them match within
    their sampling error (or as σ·0.88, torch's uncorrected 2σ truncation), spanning at least two
    different fan pairs — so the shared scale is not one fan-derived scheme's coincidence.
    """
    blocks = config.layers if config is not None and config.layers else _block_count(model)
    if config is not None and config.factor_scaled:
        return Convention(f"t5_factor({config.initializer_factor:g})", config.initializer_factor,
                          f"{config.path} (model_type {config.model_type}, initializer_factor)", blocks,
                          fan_scaled=True, head_dim=config.head_dim)
    if config is not None and config.initializer_range:
        return Convention(f"normal({config.initializer_range:g})", config.initializer_range,
                          f"{config.path} (initializer_range)", blocks, config.other_ranges)
    mats = [layer for layer in model.layers if is_scale_layer(layer) or layer.kind == "embedding"]
    mats = [m for m in mats if m.weight.stats is not None and m.weight.stats.finite >= MIN_CONVENTION_VALUES
            and m.weight.stats.rms > 0 and not (m.weight.stats.nan or m.weight.stats.inf)]
    if len(mats) < 3:
        return None
    best: tuple[int, float, list[Layer]] | None = None
    for sigma in COMMON_FIXED_STDS:
        hits = [m for m in mats if _matches_fixed(m, sigma)]
        if best is None or len(hits) > best[0]:
            best = (len(hits), sigma, hits)
    count, sigma, hits = best
    if count < 3 or count < len(mats) / 3 or len({(m.fan_in, m.fan_out) for m in hits}) < 2:
        return None
    return Convention(f"normal({sigma:g})", sigma, f"weights: {count} of {len(mats)} matrices", blocks)


def _matches_fixed(layer: Layer, sigma: float) -> bool:
    st = layer.weight.stats
    tol = 4.0 * log_std_se(st.finite, max(st.excess_kurtosis, -1.2) if math.isfinite(st.excess_kurtosis) else 0)
    return any(abs(math.log(st.rms / s)) <= tol + 0.01 for s in (sigma, sigma * TRUNCATED_NORMAL_STD_FACTOR))


_BLOCK_INDEX = re.compile(r"(?<=[._/])(\d+)(?=[._/])")


def block_index(name: str) -> int | None:
    """The index of the block a layer sits in: the first number between separators of its name."""
    m = _BLOCK_INDEX.search(name)
    return int(m.group(1)) if m else None


def _block_count(model: Model) -> int | None:
    """Repeated blocks: the most common count of distinct indices among names that differ only by one."""
    groups: dict[str, set[str]] = {}
    for layer in model.layers:
        for m in _BLOCK_INDEX.finditer(layer.name):
            key = layer.name[:m.start()] + "#" + layer.name[m.end():]
            groups.setdefault(key, set()).add(m.group(1))
    sizes = Counter(len(v) for v in groups.values() if len(v) >= 2)
    return max(sizes, key=lambda s: (sizes[s], s)) if sizes else None


# ---------------------------------------------------------------------------------------- expectations
def _expectation(layer: Layer, convention: Convention | None) -> Expectation | None:
    st = layer.weight.stats
    if not is_scale_layer(layer) or st is None or not st.finite:
        return None
    ctx = layer.context
    fi, fo = layer.fan_in, layer.fan_out
    exp = expected_std(ctx.activation, fi, fo, ctx.activation_param)
    lo, hi = plausible_std_range(ctx.activation, fi, fo, ctx.activation_param)
    if layer.framework_fans:
        flo, fhi = plausible_std_range(ctx.activation, *layer.framework_fans, ctx.activation_param)
        lo, hi = min(lo, flo), max(hi, fhi)
    source = "activation" if ctx.activation is not None else "any activation"
    follows = None
    if convention is not None and st.rms > 0:
        tol = 4.0 * log_std_se(st.finite) + 0.01
        for name, s in convention.variants(layer.fan_in, block_index(layer.name)).items():
            if abs(math.log(st.rms / s)) <= tol:
                follows = name
                lo, hi = min(lo, s), max(hi, s)
                break
    scheme = "convention" if follows else _recommended_family(ctx.activation)
    return Expectation(exp, (lo, hi), scheme, source, follows, st.rms / exp if exp > 0 else math.nan)


def _recommended_family(activation: str | None) -> str:
    from .schemes import recommended_scheme

    return recommended_scheme(activation).family


# ------------------------------------------------------------------------------------------ model verdict
def _judged_matrices(model: Model) -> list[Layer]:
    """The tensors whose provenance decides the model's: weight matrices, embeddings and large free
    parameters; gains only in a model of free tensors alone (DISTS' α and β), since structured gains
    (RWKV's time-mix ramps) look trained in a fresh model. A constant says nothing either way."""
    def judged(layer: Layer, roles) -> bool:
        return (layer.judgement is not None and layer.judgement.role in roles
                and (layer.is_matrix or layer.judgement.role not in (Role.WEIGHT, Role.RECURRENT, Role.EMBEDDING))
                and (layer.judgement.role not in (Role.PARAMETER, Role.GAIN) or layer.weight.tensor.size >= 256)
                # structured (orthogonal, identity) is a fresh init's sign, counted against training
                and layer.judgement.provenance.verdict in (Verdict.FRESH, Verdict.TRAINED, Verdict.UNDETERMINED,
                                                           Verdict.STRUCTURED)
                and layer.weight.stats is not None and layer.weight.stats.min != layer.weight.stats.max)

    mats = [m for m in model.layers if judged(m, (Role.WEIGHT, Role.RECURRENT, Role.EMBEDDING, Role.PARAMETER))]
    if any(m.judgement.role is not Role.PARAMETER for m in mats):
        return mats
    return [m for m in model.layers if judged(m, (Role.PARAMETER, Role.GAIN))]


def model_verdict(model: Model, convention: Convention | None = None) -> ModelVerdict:
    """fresh, trained or mixed.

    Trained: at least two matrices (or the only one) carry significant evidence of training and they are
    at least a third of the matrices that could be judged — a fresh model with one odd layer stays fresh
    and is judged as an init. Mixed: trained, with fresh layers inside (an iid draw that matches a scheme
    or the model's convention: what ``from_pretrained`` leaves when a key did not load).
    """
    mats = _judged_matrices(model)
    trained = [m for m in mats if m.judgement.provenance.verdict == Verdict.TRAINED]
    shifts, moved = _norm_shifts(model)
    by_norms = len(shifts) >= 2 and len(moved) >= max(2, len(shifts) / 2)
    by_matrices = bool(mats) and len(trained) >= min(2, len(mats)) and len(trained) >= len(mats) / 3
    if not (by_matrices or by_norms):
        return ModelVerdict("fresh", "", tuple(m.name for m in trained), convention=convention)
    why = f"{len(trained)} of {len(mats)} matrices carry evidence of training"
    if by_norms:
        why += f"; {len(moved)} of {len(shifts)} normalization shifts moved from 0"
    fresh = [m for m in mats if m.judgement.provenance.verdict == Verdict.FRESH and _scheme_matched(m)]
    if fresh:
        return ModelVerdict("mixed", why + f"; {len(fresh)} look freshly initialized",
                            tuple(m.name for m in trained), tuple(m.name for m in fresh), convention)
    return ModelVerdict("trained", why, tuple(m.name for m in trained), convention=convention)


def _norm_shifts(model: Model) -> tuple[list[Layer], list[Layer]]:
    """(norm layers with a shift of ≥ 8 values, those whose shift is not constant). Every scheme starts a
    normalization's shift at exactly 0 (a constant); only training spreads it."""
    shifts = [layer for layer in model.layers if kind_info(layer.kind).family is Family.NORM
              and layer.bias is not None and layer.bias.stats is not None and layer.bias.stats.finite >= 8
              and not (layer.bias.stats.nan or layer.bias.stats.inf)]
    moved = [layer for layer in shifts if layer.bias.stats.min != layer.bias.stats.max]
    if _one_random_draw([layer.bias.stats for layer in moved]):
        return shifts, []  # drawn at random on purpose (timm's RepVGG: N(0, 0.1) shifts), not moved by training
    return shifts, moved


def _one_random_draw(stats: list) -> bool:
    """Shifts that are one zero-mean draw of one std in every norm: an init (timm's RepVGG draws its
    BatchNorm shifts N(0, 0.1)), not training, which leaves each layer's shifts at a scale of its own."""
    if len(stats) < 3:
        return False
    logs = [math.log(st.std) for st in stats if st.std > 0]
    if len(logs) != len(stats):
        return False
    se = max(log_std_se(st.finite) for st in stats)
    centered = all(abs(st.mean) <= Z_CRIT * st.std / math.sqrt(st.finite) for st in stats)
    return centered and max(logs) - min(logs) <= math.log(1.5) + 2 * Z_CRIT * se


def _scheme_matched(layer: Layer) -> bool:
    """Positive evidence of a fresh init: the fingerprint names a scheme, or the layer follows the
    model's convention."""
    j = layer.judgement
    if j.expectation is not None and j.expectation.convention:
        return True
    fp = j.fingerprint or {}
    return fp.get("scheme") not in (None, "unknown", "zeros", "constant") and fp.get("confidence", 0) >= 0.5
