"""Layers in PyTorch's layouts: fans per kind, and layer discovery from names and shapes alone.

Used for PyTorch modules and for tensor-only files (state_dicts, safetensors), which almost always follow
PyTorch's naming and layouts. No framework is imported here. Conventions are documented in
docs/conventions.md; ``framework_fans`` are what ``torch.nn.init._calculate_fan_in_and_fan_out`` computes
for the stored shape, ``fan_in``/``fan_out`` follow data flow.
"""

from __future__ import annotations

import math
import re
from typing import Mapping

from ..model import Layer, Param, TensorRef


def torch_helper_fans(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """``torch.nn.init._calculate_fan_in_and_fan_out``: (size(1)·∏k, size(0)·∏k) for ndim ≥ 2."""
    if len(shape) < 2:
        return None
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def transposed_taps(kernel: tuple[int, ...], stride: tuple[int, ...] | None) -> int:
    """Kernel taps that reach one output position of a transposed convolution: ∏ max(1, k/s)."""
    if not stride or len(stride) != len(kernel):
        return math.prod(kernel) if kernel else 1
    return max(1, round(math.prod(max(1.0, k / s) for k, s in zip(kernel, stride))))


def layer_fans(kind: str, shape: tuple[int, ...], attrs: dict) -> tuple[int | None, int | None]:
    """Data-flow fans of a layer stored in PyTorch's layout.

    linear (out, in); linear_transposed (in, out) as transformers' Conv1D; conv (out, in/g, k...);
    conv_transpose (in, out/g, k...); embedding (num, dim) like the tied output head (dim → num);
    recurrent (gates·H, in) per gate; attention_in_proj (3E, E) per projection; bilinear (out, in1, in2).
    """
    if len(shape) < 2:
        return None, None
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    groups = int(attrs.get("groups") or 1)
    if kind == "linear_transposed":
        return shape[0], shape[1]
    if kind.startswith("conv_transpose"):
        # each input feeds out/g channels × kernel taps; an output position sums in/g channels × the taps
        # that land on it, ∏ max(1, k/s) with stride s (all ∏k at stride 1)
        return (shape[0] // groups) * transposed_taps(shape[2:], attrs.get("stride")), shape[1] * receptive
    if kind.startswith(("conv", "depthwise_conv")):
        return shape[1] * receptive, (shape[0] // groups) * receptive
    if kind.endswith("_projection"):  # LSTM weight_hr (proj, H)
        return shape[1], shape[0]
    if kind.endswith(("_input", "_recurrent")):
        gates = int(attrs.get("gates") or 1)
        return shape[1], shape[0] // gates
    if kind == "attention_in_proj":
        return shape[1], shape[0] // int(attrs.get("projections") or 3)
    if kind == "bilinear":
        return shape[1] * shape[2], shape[0]
    if kind == "embedding":
        return shape[1], shape[0]
    return shape[1] * receptive, shape[0] * receptive  # linear and unknown matrices: (out, in, ...)


def make_layer(
    name: str,
    kind: str,
    weight: Param,
    bias: Param | None = None,
    attrs: dict | None = None,
    kind_source: str = "module",
    notes: list[str] | None = None,
) -> Layer:
    attrs = dict(attrs or {})
    shape = weight.shape
    fan_in, fan_out = layer_fans(kind, shape, attrs)
    fw = torch_helper_fans(shape)
    if kind in ("linear_transposed",):
        weight.tensor.unit_axis = 1
    elif kind.startswith("conv_transpose") and int(attrs.get("groups") or 1) == 1:
        weight.tensor.unit_axis = 1
    return Layer(name=name, kind=kind, weight=weight, bias=bias, fan_in=fan_in, fan_out=fan_out,
                 framework_fans=fw, kind_source=kind_source, notes=list(notes or []), attrs=attrs)


# ------------------------------------------------------------------------------ tensor-only inference
_RNN_PARAM = re.compile(r"^(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")
EMBED_HINT = re.compile(r"(^|[._])(embed\w*|emb|wte|wpe|tok_embeddings|word_embeddings|position_embeddings|"
                         r"token_type_embeddings|embed_tokens|shared|lookup)($|[._])", re.I)
_NORM_HINT = re.compile(r"norm|(^|[._])(ln|bn|gn)(_?\w*)?($|[._])|layernorm|batchnorm", re.I)
_RMS_HINT = re.compile(r"rms", re.I)
_LN_HINT = re.compile(r"(^|[._])ln|layer_?norm|(^|[._])norm", re.I)
_GN_HINT = re.compile(r"(^|[._])gn|group_?norm", re.I)
_BILINEAR_HINT = re.compile(r"bilinear", re.I)
_TRANSPOSE_HINT = re.compile(r"deconv|transpose|convtranspose|upconv", re.I)
BUFFER_NAMES = {"running_mean", "running_var", "num_batches_tracked"}


def prefers_as_tied_owner(tensor_name: str) -> bool:
    """Among tied names, the input embedding owns the storage (``transformer.wte.weight`` rather than
    ``lm_head.weight``), as module walkers meet it first."""
    return bool(EMBED_HINT.search(tensor_name.rpartition(".")[0]))


def _split(name: str) -> tuple[str, str]:
    prefix, _, leaf = name.rpartition(".")
    return prefix, leaf


def _param(name: str, role: str, tensors: Mapping[str, TensorRef], aliases: Mapping[str, list[str]]) -> Param:
    return Param(name, role, tensors[name], aliases=list(aliases.get(name, [])))


def layers_from_tensors(
    tensors: Mapping[str, TensorRef], aliases: Mapping[str, list[str]] | None = None
) -> list[Layer]:
    """Infer layers from a flat, ordered mapping of float tensors named as in a PyTorch state_dict.

    Kinds come from names (``weight_ih_l0``, ``in_proj_weight``, ``running_mean``, embedding and norm
    hints) and shapes (bias length tells a transposed matrix). What tensors cannot tell (groups, transposed
    convolutions, a bias-free linear vs an embedding) is said in the layer's notes.
    """
    aliases = aliases or {}
    groups: dict[str, dict[str, str]] = {}
    order: list[str] = []
    for full in tensors:
        prefix, leaf = _split(full)
        if prefix not in groups:
            groups[prefix] = {}
            order.append(prefix)
        groups[prefix][leaf] = full
    transposed_parents = _transposed_parents(tensors, groups)
    layers: list[Layer] = []
    for prefix in order:
        members = groups[prefix]
        layers.extend(_infer_group(prefix, members, tensors, aliases, transposed_parents))
    return layers


def _transposed_parents(tensors: Mapping[str, TensorRef], groups: dict[str, dict[str, str]]) -> set[str]:
    """Parents of 2-D weights whose bias matches their second axis: GPT-2 style Conv1D (in, out) storage.

    Square siblings under the same parent (``attn.c_proj``) cannot show it by shape; they inherit it.
    """
    parents: set[str] = set()
    for prefix, members in groups.items():
        w, b = members.get("weight"), members.get("bias")
        if w and b and len(tensors[w].shape) == 2 and len(tensors[b].shape) == 1:
            out_dim, in_dim = tensors[w].shape
            if tensors[b].shape[0] == in_dim and in_dim != out_dim:
                parents.add(prefix.rpartition(".")[0])
    return parents


def _infer_group(prefix, members, tensors, aliases, transposed_parents) -> list[Layer]:
    def full(leaf: str) -> str:
        return f"{prefix}.{leaf}" if prefix else leaf

    layers: list[Layer] = []
    used: set[str] = set(m for m in members if m in BUFFER_NAMES)
    # recurrent layers: weight_ih_l0 / weight_hh_l0 / bias_ih_l0 ...
    rnn = {leaf: _RNN_PARAM.match(leaf) for leaf in members}
    rnn = {leaf: m for leaf, m in rnn.items() if m}
    if rnn:
        # hidden size: weight_hr (proj, H) when the LSTM has proj_size, else weight_hh (gates·H, H)
        hidden = None
        for leaf, m in rnn.items():
            if m.group(1) == "weight" and m.group(2) == "hr":
                hidden = tensors[members[leaf]].shape[1]
        for leaf, m in rnn.items():
            if hidden is None and m.group(1) == "weight" and m.group(2) == "hh":
                hidden = tensors[members[leaf]].shape[1]
        has_projection = any(m.group(2) == "hr" for m in rnn.values())
        for leaf, m in sorted(rnn.items(), key=lambda kv: (int(kv[1].group(3)), kv[1].group(4) or "",
                                                           ["ih", "hh", "hr"].index(kv[1].group(2)))):
            if m.group(1) != "weight":
                continue
            w = tensors[members[leaf]]
            part = {"ih": "input", "hh": "recurrent", "hr": "projection"}[m.group(2)]
            if part == "projection":  # LSTM proj_size: (proj, H), a plain (out, in) matrix
                gates, cell = 1, "lstm"
                note = "LSTM output projection (proj_size)"
            else:
                gates = max(1, w.shape[0] // hidden) if hidden else 1
                cell = "lstm" if has_projection else {4: "lstm", 3: "gru"}.get(gates, "rnn")
                note = f"recurrent cell inferred as {cell.upper()} from {gates} gate{'s' if gates > 1 else ''}"
            bias_leaf = f"bias_{m.group(2)}_l{m.group(3)}{m.group(4) or ''}"
            bias = _param(members[bias_leaf], "bias", tensors, aliases) if bias_leaf in members else None
            used.update({leaf, bias_leaf})
            layers.append(make_layer(
                full(leaf), f"{cell}_{part}",
                _param(members[leaf], leaf, tensors, aliases), bias,
                {"gates": gates, "hidden_size": hidden, "cell": cell}, kind_source="inferred",
                notes=[note],
            ))
    if "in_proj_weight" in members:
        w = tensors[members["in_proj_weight"]]
        bias = _param(members["in_proj_bias"], "bias", tensors, aliases) if "in_proj_bias" in members else None
        used.update({"in_proj_weight", "in_proj_bias"})
        layers.append(make_layer(full("in_proj_weight"), "attention_in_proj",
                                 _param(members["in_proj_weight"], "in_proj_weight", tensors, aliases), bias,
                                 {"projections": 3}, kind_source="inferred"))
    # MultiheadAttention with kdim/vdim != embed_dim: separate (E, E), (E, kdim), (E, vdim) matrices
    for leaf in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
        if leaf in members and len(tensors[members[leaf]].shape) == 2:
            used.add(leaf)
            layers.append(make_layer(full(leaf), "attention_proj", _param(members[leaf], leaf, tensors, aliases),
                                     None, {"projection": leaf[0]}, kind_source="inferred",
                                     notes=["separate attention projection (out, in); its bias is a third "
                                            "of in_proj_bias"] if "in_proj_bias" in members else []))
    if "weight" in members:
        wname = members["weight"]
        w = tensors[wname]
        bias_name = members.get("bias")
        bias = _param(bias_name, "bias", tensors, aliases) if bias_name else None
        used.update({"weight", "bias"})
        kind, notes, attrs = _infer_weight_kind(prefix, w, tensors[bias_name] if bias_name else None,
                                                "running_mean" in members, transposed_parents)
        role = "scale" if kind in ("batchnorm", "layernorm", "groupnorm", "rmsnorm", "norm") else "weight"
        if bias is not None and role == "scale":
            bias.role = "shift"
        layers.append(make_layer(prefix or wname, kind, _param(wname, role, tensors, aliases), bias, attrs,
                                 kind_source="inferred", notes=notes))
    for leaf, name in members.items():
        if leaf in used:
            continue
        t = tensors[name]
        kind = "bias" if "bias" in leaf else "parameter"
        layer = make_layer(name, kind, _param(name, leaf, tensors, aliases), None, {}, kind_source="inferred")
        core = _squeeze_leading(t.shape)
        if len(core) >= 2:
            layer.fan_in, layer.fan_out = layer_fans("parameter", core, {})
            layer.notes.append("standalone parameter: fans assume an (out, in, ...) layout"
                               + (f" of its {tuple(core)} core" if core != t.shape else ""))
        elif len(t.shape) >= 2:  # e.g. a ViT cls_token (1, 1, D): a vector, no fans
            layer.fan_in = layer.fan_out = None
            layer.notes.append(f"standalone parameter: a vector of {core[0] if core else 1} values "
                               "stored with leading singleton axes; no fans")
        layers.append(layer)
    return layers


def _squeeze_leading(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(1, 1, 768) → (768,); (1, 197, 768) → (197, 768): leading size-1 axes carry no fan."""
    i = 0
    while i < len(shape) - 1 and shape[i] == 1:
        i += 1
    return tuple(shape[i:])


def _infer_weight_kind(prefix, w, b, has_running_stats, transposed_parents):
    shape = w.shape
    notes: list[str] = []
    attrs: dict = {}
    if len(shape) == 1:
        if has_running_stats:
            return "batchnorm", notes, attrs
        if _RMS_HINT.search(prefix) or (b is None and _NORM_HINT.search(prefix)):
            return "rmsnorm", ["inferred from name: RMS-style norm (scale only)"], attrs
        if _GN_HINT.search(prefix):
            return "groupnorm", notes, attrs
        if _LN_HINT.search(prefix) or _NORM_HINT.search(prefix) or b is not None:
            return "layernorm", ["inferred as a normalization from a 1-D weight; kind not certain"], attrs
        return "vector", ["1-D weight of unknown role"], attrs
    if len(shape) == 2:
        out_dim, in_dim = shape
        if b is not None and len(b.shape) == 1 and b.shape[0] == in_dim and in_dim != out_dim:
            return "linear_transposed", ["stored (in, out) as transformers' Conv1D: bias length matches axis 1"], attrs
        if prefix.rpartition(".")[0] in transposed_parents and (b is None or b.shape[0] == in_dim):
            return "linear_transposed", ["stored (in, out) like its siblings (transformers' Conv1D)"], attrs
        if b is None and EMBED_HINT.search(prefix):
            return "embedding", notes, attrs
        if b is None:
            notes.append("2-D weight without bias: taken as a linear layer (out, in); could be an embedding")
        return "linear", notes, attrs
    if len(shape) in (3, 4, 5):
        d = len(shape) - 2
        if len(shape) == 3 and _BILINEAR_HINT.search(prefix):
            return "bilinear", ["inferred from the name: Bilinear (out, in1, in2)"], attrs
        if _TRANSPOSE_HINT.search(prefix):
            notes.append("name suggests a transposed convolution: layout taken as (in, out/groups, k...)")
            return f"conv_transpose{d}d", notes, attrs
        notes.append("from tensors alone groups and transposition are unknown: fan_out assumes a regular "
                     "convolution with groups=1 (check the live module for exact fans)")
        if len(shape) == 3:
            notes.append("a 3-D weight could also be a Bilinear (out, in1, in2): fan_in would be in1·in2")
        if shape[1] == 1 and shape[0] > 1:
            notes.append("one input channel per filter: a depthwise convolution or a single-channel input")
        return f"conv{d}d", notes, attrs
    return "parameter", ["weight of unusual rank: fans assume an (out, in, ...) layout"], attrs
