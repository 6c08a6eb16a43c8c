"""IC00x: weights that cannot train at all — non-finite, empty, uninitialized, all zero, constant,
duplicated. Integrity rules apply to every layer, trained or fresh, and a layer name never makes them
milder (the runner's policy: ``category="integrity"``)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..model import Layer, Model
from ..provenance import UNINITIALIZED_MAGNITUDE
from ..report import Finding
from ..roles import Role, role_info
from . import RuleOptions, rule
from .siblings import cousin_groups, sibling_groups

RANDOM_ROLES = frozenset(r for r, info in ((r, role_info(r)) for r in Role) if info.random)


def _tensors(layer: Layer):
    yield layer.weight
    if layer.bias is not None:
        yield layer.bias


def _role(layer: Layer) -> Role:
    return layer.judgement.role if layer.judgement is not None else Role.WEIGHT


@rule(
    "IC001", "non-finite-weights", "error",
    "A tensor holds NaN or Inf values.",
    """
    One NaN or Inf in a weight spreads to every activation and gradient it touches: the first forward pass
    returns NaN and training never recovers. It usually comes from a division by a zero std in a custom
    initializer, an overflow when casting to float16, or a corrupted checkpoint. Applies to every tensor
    of every layer, trained or not.

    Example: `fc.weight` has 1 NaN of 65536 values. A tiny free parameter that is ±Inf everywhere is a
    clamp limit (Gemma's clipped linears): info.

    Fix: reinitialize the layer (`initcheck fix MODEL -o OUT --layers fc`) or find the step that produced it.
    """,
    category="integrity",
)
def non_finite(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        for p in _tensors(layer):
            st = p.stats
            if st is not None and (st.nan or st.inf):
                if _infinite_bound(layer, p):
                    yield Finding("IC001", "info", layer.name,
                                  f"{p.name} is ±Inf everywhere ({st.count} value(s)): a free parameter used as a "
                                  "clamp bound (no limit), not a corrupted weight")
                    continue
                yield Finding(
                    "IC001", "error", layer.name,
                    f"{p.name} has {st.nan} NaN and {st.inf} Inf of {st.count} values",
                    fix="reinitialize this layer; check casts to float16 and custom initializers",
                    data={"tensor": p.name, "nan": st.nan, "inf": st.inf},
                )


def _empty_by_config(layer: Layer) -> bool:
    """A layer with zero outputs by configuration (``Linear(256, 0)``): its weight keeps its other axis, so
    its empty bias is no unsaved shard."""
    shape = layer.weight.shape
    return len(shape) >= 2 and 0 in shape and any(s > 0 for s in shape)


def _infinite_bound(layer: Layer, p) -> bool:
    """A tiny free parameter that is entirely ±Inf (no NaN) is a clamp limit (Gemma's clipped linears store
    ``input_max = +inf``), not arithmetic gone wrong; weights, biases and norms never are."""
    st = p.stats
    return (p is layer.weight and _role(layer) not in RANDOM_ROLES and _role(layer) is not Role.NORM_SCALE
            and st.nan == 0 and st.inf == st.count and st.count <= 16)


@rule(
    "IC005", "empty-tensor", "error",
    "A tensor has no values (a sharded save that was never gathered).",
    """
    A parameter with zero elements cannot be the model's weight: DeepSpeed ZeRO-3 and FSDP keep each
    parameter sharded across ranks, and a `state_dict()` taken without gathering saves empty placeholders
    (`torch.Size([0])`). Loading such a file silently leaves the model's layers at whatever they were.
    A multi-axis shape with one zero axis, like `(1, 0, 256)`, is empty by configuration (no register
    tokens) and is not flagged.

    Example: `model.layers.3.mlp.up_proj.weight` has shape (0,).

    Fix: save with the gathered state dict (`zero_to_fp32.py`, `FSDP.state_dict_type(FULL_STATE_DICT)`).
    """,
    category="integrity",
)
def empty_tensor(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        for p in _tensors(layer):
            # ZeRO-3/FSDP placeholders are flat torch.Size([0]); a (1, 0, 256) table is an empty-by-config
            # parameter (DINOv3 with no register tokens), which is no fault
            if p.stats is not None and p.stats.count == 0 and len(p.shape) <= 1 and not _empty_by_config(layer):
                yield Finding("IC005", "error", layer.name, f"{p.name} is empty, shape {tuple(p.shape)}",
                              fix="save the gathered (unsharded) state dict")


@rule(
    "IC006", "uninitialized-memory", "error",
    "Values no initializer or training produces: the tensor was allocated and never initialized.",
    f"""
    `torch.empty`, `nn.Module.to_empty()` after building on the meta device, or `tf.Variable` of an
    uninitialized buffer hold whatever was in memory: mostly zeros or denormals with a few astronomically
    large values. No scheme and no training run gives a weight with |w| ≥ {UNINITIALIZED_MAGNITUDE:g}.

    Example: `blocks.2.attn.qkv.weight` has |w| up to 3.4e+38 (max/std 1e+4).

    Fix: call the model's init (`model.apply(model._init_weights)`, `reset_parameters()`) after `to_empty()`.
    """,
    category="integrity",
)
def uninitialized(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        for p in _tensors(layer):
            st = p.stats
            if st is None or not st.finite or st.nan or st.inf:
                continue
            if st.max_abs >= UNINITIALIZED_MAGNITUDE:
                yield Finding("IC006", "error", layer.name,
                              f"{p.name} has |w| up to {st.max_abs:.3g}: uninitialized memory, not a draw",
                              fix="initialize after to_empty() / reset_parameters()",
                              data={"max_abs": st.max_abs})


def deliberate_zero(layer: Layer) -> bool:
    """A zero weight matrix that is a known good practice: the last layer of a residual branch (zero-init
    residual, Fixup, ReZero) or the model's output head — known from the graph, not from a name. Not
    when a normalization follows: zero-init residual zeroes the norm's scale; a zero matrix before a
    norm gives it a constant input (variance 0, gradients scaled by 1/√eps)."""
    ctx = layer.context
    if ctx.norm_after:
        return False
    return (ctx.residual and not ctx.from_name("residual")) or \
        (ctx.position == "output" and not ctx.from_name("position"))


def _routed_experts(model: Model, layer: Layer) -> int:
    """The number of experts a matrix routes to: its output size, when its block (the module holding it,
    or the one above) holds a fused expert tensor ``(experts, in, out)`` whose first axis is that size. 0 when it is no
    router. From shapes and the module tree, not from names."""
    if len(layer.shape) != 2 or not layer.fan_out or layer.fan_out < 2:
        return 0
    cuts = [i for i, c in enumerate(layer.name) if c in "./"]
    count = layer.fan_out
    for cut in cuts[::-1][:2]:  # its module, or the one above (AFMoE's mlp.router.gate beside mlp.experts)
        prefix = layer.name[:cut + 1]
        for other in model.layers:
            if other is not layer and other.name.startswith(prefix) and len(other.shape) == 3 \
                    and other.shape[0] == count and other.weight.tensor.size > count * (layer.fan_in or 0):
                return count
    return 0


def _beside_sampling_offsets(model: Model, layer: Layer) -> str | None:
    """The sampling-offset layer beside a zero matrix, when the pair is deformable attention: in the same
    module, a zero matrix with a patterned bias (the offsets' grid of directions) and 2 or 3 outputs per
    output of this one (an x, y(, z) offset per sampling point). From shapes and the module tree."""
    if len(layer.shape) != 2 or not layer.fan_out:
        return None
    cut = max(layer.name.rfind("."), layer.name.rfind("/"))
    if cut <= 0:
        return None
    prefix = layer.name[:cut + 1]
    for other in model.layers:
        st = other.weight.stats
        if other is layer or not other.name.startswith(prefix) or "." in other.name[cut + 1:] \
                or "/" in other.name[cut + 1:] or len(other.shape) != 2 or other.fan_in != layer.fan_in:
            continue
        if other.fan_out in (2 * layer.fan_out, 3 * layer.fan_out) and st is not None and st.finite \
                and st.zero_fraction == 1.0 and _starts_from_bias(other):
            return other.name
    return None


def _nonzero_residual_ends(model: Model, layer: Layer) -> int:
    """How many other residual ends are not zero, when this layer is the model's only zero one (and at
    one other is not): zero-init residual zeroes every branch's end, never just one (ALBERT's one shared
    block, zeroed in its attention output only). 0 otherwise, and for an output head."""
    if not layer.context.residual:
        return 0
    ends = [m for m in model.layers if m is not layer and m.is_matrix and m.context.residual
            and not m.context.from_name("residual") and m.weight.stats is not None and m.weight.stats.finite]
    if any(m.weight.stats.zero_fraction == 1.0 for m in ends):
        return 0
    return len(ends)


def _starts_from_bias(layer: Layer) -> bool:
    """A zero matrix whose bias is a deliberate pattern (Deformable DETR's sampling offsets start as a grid
    of directions in the bias: few distinct values, repeated) starts from its bias, and the pattern breaks
    symmetry between units. An iid random bias (a layer's default) is no such evidence: a zeroed weight
    there cuts the layer's input off."""
    b = layer.bias.stats if layer.bias is not None else None
    if b is None or b.finite < 4 or b.nan or b.inf or b.min == b.max:
        return False
    values = layer.bias.tensor.numpy().reshape(-1)
    return np.unique(values).size <= values.size // 2


def _feeds_softmax(layer: Layer) -> bool:
    """Zero weights into a softmax start it uniform (attention weights of deformable attention), from the graph."""
    ctx = layer.context
    # a fused projection whose part goes to a softmax (CoaT's k) has parts that do not
    return ctx.activation_source in ("graph", "trace") and ctx.activation == "softmax" and not ctx.output_split


def _nonzero(layers: Iterable[Layer], layer: Layer) -> int:
    return sum(1 for m in layers if m is not layer and m.weight.stats is not None
               and m.weight.stats.finite and m.weight.stats.zero_fraction < 1.0)


def _nonzero_siblings(model: Model, layer: Layer) -> int:
    """Siblings (same shape, other blocks) or cousins (same role, blocks of other widths) that are not
    zero. A cousin found only by its module's name counts from two on: one namesake elsewhere may be
    a different module."""
    for members in sibling_groups(model).values():
        if layer in members:
            return _nonzero(members, layer)
    for key, (tested, group) in cousin_groups(model).items():
        if layer in tested:
            # a cousin plays the same part: a residual end like this one, or the output like this one (an
            # MLP head's first layers share its container's name, not its part)
            same = [m for m in group if m.context.residual == layer.context.residual
                    and m.context.position == layer.context.position]
            count = _nonzero(same, layer)
            return count if not key[1].startswith("…") or count >= 2 else 0
    return 0


@rule(
    "IC002", "all-zero-weights", "error",
    "A weight matrix is all zeros where its role needs a random init.",
    """
    With every weight at zero, every unit of the layer computes the same output and receives the same
    gradient, so the units never become different (and for a layer feeding a ReLU, gradients below are zero).
    Roles whose fresh value is zero are not flagged: biases, normalization shifts, layer-scale and gate
    parameters, position tables, LoRA B. A zero matrix with a patterned bias starts from that bias, which
    breaks symmetry (Deformable DETR's sampling offsets), and one that feeds a softmax (known from the
    graph) starts it uniform (deformable attention weights): info. A zero last layer of a
    residual branch (zero-init residual, Fixup)
    or a zero output head, *known from the graph*, is a known good practice and is reported at info —
    unless its siblings in the other blocks are not zero (then one block was missed: warning). A layer
    name alone never excuses a zero matrix, and in a trained model nothing does: training moves every
    matrix it updates.

    Example: `encoder.3.fc1.weight` is all zeros, shape (512, 512).

    Fix: reinitialize with the scheme for its activation (`initcheck fix`), e.g. He for ReLU.
    """,
    category="integrity",
    roles=RANDOM_ROLES,
)
def all_zero(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        st = layer.weight.stats
        if st is None or len(layer.shape) < 2 or st.finite == 0 or st.nan or st.inf or st.zero_fraction != 1.0:
            continue
        siblings = _nonzero_siblings(model, layer)
        experts = _routed_experts(model, layer)
        offsets = _beside_sampling_offsets(model, layer)
        if (_starts_from_bias(layer) or _feeds_softmax(layer) or experts or offsets) and model.trained is None:
            why = ("a patterned bias: the layer starts from it (deformable-attention offsets)" if _starts_from_bias(layer)
                   else "it feeds a softmax, which starts uniform (attention weights, a router)" if _feeds_softmax(layer)
                   else f"one output per expert of its block ({experts}, known from the shapes): a router, which "
                        "starts routing uniformly (AFMoE, ERNIE 4.5 start there)" if experts
                   else f"one output per sampling point of {offsets}, the zero offsets with a patterned bias beside "
                        "it (known from the shapes): deformable attention's weights, whose softmax starts uniform")
            if siblings:  # deliberate in every block, or nowhere: one zero among non-zero siblings was missed
                why += f"; but {siblings} sibling(s) are not zero"
            yield Finding("IC002", "warning" if siblings else "info", layer.name,
                          f"{layer.weight.name} is all zeros, shape {tuple(layer.shape)}, with {why}",
                          data={"nonzero_siblings": siblings})
            continue
        if deliberate_zero(layer) and model.trained is None:  # in a trained model no zero is an init's design
            others = _nonzero_residual_ends(model, layer)
            severity = "warning" if siblings >= 1 or others else "info"
            why = (f" (zero end of a residual branch or head, but {siblings} sibling(s) are not zero)"
                   if siblings >= 1 else
                   f" (the only zero residual end: the model's {others} other residual ends are not zero)"
                   if others else " (zero last layer of a residual branch or head: deliberate)")
        else:
            severity, why = "error", ""
            if layer.context.from_name("residual") or layer.context.from_name("position"):
                why = " (its name suggests a residual end or head; a name alone does not excuse a zero matrix)"
        yield Finding(
            "IC002", severity, layer.name,
            f"{layer.weight.name} is all zeros, shape {tuple(layer.shape)}{why}",
            fix=None if severity == "info" else "reinitialize with the scheme for its activation",
            data={"nonzero_siblings": siblings},
        )


@rule(
    "IC003", "constant-weights", "error",
    "A weight tensor has one value everywhere (not zero) where its role needs a random init.",
    """
    A constant weight tensor (e.g. filled with 0.01) gives every unit the same output and the same
    gradient: symmetry is never broken and the layer behaves like a single unit. Roles whose fresh value is
    a constant are not flagged: normalization scales at 1, biases, layer scales (1e-5), gains, temperatures,
    logit scales.

    Example: `fc2.weight` is 0.01 everywhere, shape (128, 256).

    Fix: reinitialize with a random scheme (`initcheck fix`).
    """,
    category="integrity",
    roles=RANDOM_ROLES,
)
def constant(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        st = layer.weight.stats
        if st is None or len(layer.shape) < 2 or st.finite < 2 or st.nan or st.inf:
            continue
        if st.min == st.max and st.min != 0:
            yield Finding(
                "IC003", "error", layer.name,
                f"{layer.weight.name} is {st.min:.6g} everywhere, shape {tuple(layer.shape)}",
                fix="reinitialize with a random scheme for its activation",
            )


DUPLICATE_MIN_VALUES = 64  # below this, two layers can share values by chance (tiny constant-ish tensors)


def duplicate_pairs(model: Model) -> list[tuple[Layer, Layer]]:
    """Pairs of layers whose weight tensors hold exactly the same values (not tied: separate storage).

    Candidates are matched on shape and statistics (count, mean, std, min, max, kurtosis); each candidate
    pair is then compared value by value, so a match is exact. Zero and constant tensors are IC002/IC003.
    """
    buckets: dict[tuple, list[Layer]] = {}
    for layer in model.layers:
        st = layer.weight.stats
        if st is None or st.finite < DUPLICATE_MIN_VALUES or st.nan or st.inf or st.min == st.max:
            continue
        if layer.judgement is not None and layer.judgement.provenance.verdict == "structured":
            continue  # identity/orthogonal inits are deterministic or deliberate (ConViT's identity values)
        key = (tuple(layer.shape), st.count, st.mean, st.std, st.min, st.max, st.excess_kurtosis)
        buckets.setdefault(key, []).append(layer)
    pairs = []
    for members in buckets.values():
        if len(members) < 2:
            continue
        first = members[0]
        ref = first.weight.tensor.numpy()
        for other in members[1:]:
            if np.array_equal(ref, other.weight.tensor.numpy()):
                pairs.append((first, other))
    return pairs


@rule(
    "IC007", "duplicate-tensors", "warning",
    "Two layers hold exactly the same weights without being tied.",
    """
    Independent draws never coincide. Two untied layers with bit-identical weights come from a
    `copy.deepcopy` of an initialized block (every block of the stack starts the same, so the blocks only
    diverge through noise), from reseeding the generator before each layer, or from loading one tensor
    into two keys. Tied parameters (one storage under two names) are not duplicates and are not flagged,
    nor are deterministic tensors (Mamba's A_log, gains, tables: roles whose fresh value is no random draw).
    In a trained model identical weights mean one of them never trained. Keras 3's seeded initializers
    cloned with their seed (keras_hub's `clone_initializer`) give a grouped-query attention's key and value
    the same kernel. A warning: the copies diverge with training, but start as one.

    Example: `layers.1.mlp.fc1` has exactly the weights of `layers.0.mlp.fc1`.

    Fix: initialize each block after copying it (`block.apply(init_fn)`), draw from one generator.
    """,
    category="integrity",
    roles=RANDOM_ROLES,
)
def duplicate_tensors(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for first, other in duplicate_pairs(model):
        yield Finding("IC007", "warning", other.name,
                      f"{other.weight.name} is bit-identical to {first.weight.name} (shape {tuple(other.shape)}), "
                      "and they are not tied", fix="initialize each copy independently",
                      data={"duplicate_of": first.name})


MIN_UNTRAINED_VALUES = 64  # below this a constant free tensor may be a scalar setting, trained or not


@rule(
    "IC008", "untrained-parameter", "error",
    "In a trained model, a free parameter is exactly zero or constant: it was never trained, or overwritten.",
    """
    A free parameter (a tensor of no layer initcheck knows: DISTS' α and β, a learned gate vector) may
    start at zero or at a constant, so a fresh model's constant parameters are fine. Training moves every
    parameter it updates off its constant start; in a model whose weights carry evidence of training
    (see docs/judgement.md §1b), a free tensor of 64 or more values that is still exactly constant was
    never trained (frozen, skipped by the optimizer, not loaded) or was overwritten after training.
    Biases and normalization shifts are not judged here: a bias right before a normalization gets no
    gradient and stays at 0 through training.

    Example: `beta` (1, 1475, 1, 1) of a trained DISTS checkpoint is all zeros.

    Fix: reload the parameter from the checkpoint it came from, or check that it is trained.
    """,
    category="integrity",
    roles=(Role.PARAMETER,),
)
def untrained_parameter(model: Model, options: RuleOptions) -> Iterable[Finding]:
    if model.trained is None:
        return
    for layer in model.layers:
        st = layer.weight.stats
        if st is None or st.finite < MIN_UNTRAINED_VALUES or st.nan or st.inf or st.min != st.max:
            continue
        what = "all zeros" if st.zero_fraction == 1.0 else f"{st.min:.4g} everywhere"
        yield Finding("IC008", "error", layer.name,
                      f"{layer.weight.name} is {what}, shape {tuple(layer.shape)}, in a trained model: a parameter "
                      "training moves is still constant (never trained, or overwritten)",
                      fix="reload it from its checkpoint")
