"""Layers in PyTorch's layouts: fans per kind, and layer discovery from names and shapes alone.

Used for PyTorch modules and for tensor-only files (state_dicts, safetensors), which almost always follow
PyTorch's naming and layouts. No framework is imported here. Conventions are documented in
docs/conventions.md; ``framework_fans`` are what ``torch.nn.init._calculate_fan_in_and_fan_out`` computes
for the stored shape, ``fan_in``/``fan_out`` follow data flow.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

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
    convolutions, a bias-free linear vs an embedding) is said in the layer's notes. Parametrized weights
    (weight norm, spectral norm: :func:`effective_weights`) are judged as the weight the module uses.
    """
    aliases = aliases or {}
    tensors, parametrized = effective_weights(tensors)
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
    for layer in layers:
        for p in layer.params:
            info = parametrized.get(p.name)
            if info is not None:
                layer.notes.append(info.note)
                layer.attrs["parametrization"] = info.kind
                layer.attrs["parametrization_sources"] = dict(info.sources)
    return layers


# ------------------------------------------------------------------- parametrized weights (tensor-only)
@dataclass(frozen=True)
class Parametrized:
    """A weight stored through a parametrization: what it is, the stored tensors it comes from (role →
    name), and the note the report carries. ``evaluable`` is False when tensors alone cannot give the
    effective weight (orthogonal, user parametrizations): the stored original is then a free parameter."""

    name: str  # the module attribute the layer uses, e.g. ``conv.weight``
    kind: str  # weight_norm, spectral_norm, parametrized
    sources: tuple[tuple[str, str], ...]
    evaluable: bool
    note: str


def _weight_norm_axes(g: tuple[int, ...], v: tuple[int, ...]) -> tuple[int, ...] | None:
    """Axes ‖v‖ runs over: those where g has size 1 (torch's ``norm_except_dim``; g scalar: all axes);
    None when the shapes do not pair as (g, v)."""
    if len(g) == 0 or (math.prod(g) == 1 and len(g) != len(v)):
        return tuple(range(len(v)))
    if len(g) != len(v) or any(a not in (1, b) for a, b in zip(g, v)):
        return None
    return tuple(i for i, (a, b) in enumerate(zip(g, v)) if a == 1 and b > 1) or tuple(range(len(v)))


def _out_dtype(ref: TensorRef) -> str:
    return "float64" if ref.dtype == "float64" else "float32"


def _rows(ref: TensorRef, axis: int) -> np.ndarray:
    """The tensor decoded, with ``axis`` first, as a (units, rest) array of the working float type."""
    a = np.moveaxis(np.asarray(ref.numpy()), axis, 0)
    return np.asarray(a, dtype=_out_dtype(ref)).reshape(a.shape[0], -1)


def weight_norm_ref(g: TensorRef, v: TensorRef, axes: tuple[int, ...]) -> TensorRef:
    """The effective weight g·v/‖v‖ of ``weight_norm`` (‖v‖ over ``axes``), computed when read: per
    kept index, in blocks of kept indices, ‖v‖ summed in float64."""
    keep = [i for i in range(len(v.shape)) if i not in axes]

    def raw() -> np.ndarray:
        vals = np.asarray(v.numpy(), dtype=_out_dtype(v))
        gain = np.asarray(g.numpy(), dtype=np.float64).reshape([v.shape[i] if i in keep else 1
                                                                for i in range(len(v.shape))])
        if len(keep) == 1:  # the usual case: one kept axis (dim=0 rows, dim=1 for transposed convs)
            rows = np.moveaxis(vals, keep[0], 0)
            flat = rows.reshape(rows.shape[0], -1)
            out = np.empty_like(flat)
            step = max(1, (1 << 22) // max(flat.shape[1], 1))
            scale = np.moveaxis(gain, keep[0], 0).reshape(-1)
            for i in range(0, flat.shape[0], step):
                block = flat[i:i + step].astype(np.float64)
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[i:i + step] = block * (scale[i:i + step] / np.sqrt((block * block).sum(axis=1)))[:, None]
            return np.moveaxis(out.reshape(rows.shape), 0, keep[0])
        wide = vals.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            eff = wide * (gain / np.sqrt((wide * wide).sum(axis=axes, keepdims=True)))
        return eff.astype(vals.dtype)

    return TensorRef(v.shape, _out_dtype(v), raw, unit_axis=v.unit_axis)


def _spectral_dim(w: tuple[int, ...], u: tuple[int, ...], v: tuple[int, ...]) -> int | None:
    """The axis torch's spectral norm reshapes to rows (0, or 1 for transposed convolutions), from the
    lengths of its power-iteration vectors u (that axis) and v (the rest)."""
    if len(u) != 1 or len(v) != 1 or len(w) < 1:
        return None
    for dim in (0, 1)[: len(w)]:
        if u[0] == w[dim] and v[0] * w[dim] == math.prod(w):
            return dim
    return None


def largest_singular_value(rows: np.ndarray, start: np.ndarray, iterations: int = 500, tol: float = 1e-9) -> float:
    """σ_max of a (units, rest) matrix by power iteration from ``start`` (the stored u: converged in a
    trained checkpoint, random in a fresh one), to relative change ``tol``."""
    a = rows.astype(np.float64)
    u = np.asarray(start, dtype=np.float64).reshape(-1)
    if not np.any(u):
        u = np.ones(a.shape[0])
    sigma = 0.0
    for _ in range(iterations):
        v = a.T @ u
        nv = np.linalg.norm(v)
        if not nv > 0:
            return 0.0
        u = a @ (v / nv)
        new = float(np.linalg.norm(u))
        if not new > 0:
            return 0.0
        u /= new
        if abs(new - sigma) <= tol * new:
            return new
        sigma = new
    return sigma


def spectral_norm_ref(w: TensorRef, u: TensorRef, v: TensorRef, dim: int) -> TensorRef:
    """W/σ with σ the largest singular value of W (rows along ``dim``): the value spectral_norm's power
    iteration converges to, and what the module uses from its first training steps on (a module fresh
    from ``torch.nn.utils.spectral_norm`` still holds random u, v; the new API iterates 15 times at once)."""

    def raw() -> np.ndarray:
        sigma = largest_singular_value(_rows(w, dim), u.numpy())
        full = np.asarray(w.numpy(), dtype=_out_dtype(w))
        with np.errstate(divide="ignore", invalid="ignore"):
            return (full / sigma).astype(full.dtype)

    return TensorRef(w.shape, _out_dtype(w), raw, unit_axis=w.unit_axis)


_PARAMETRIZATIONS = re.compile(r"^(?:(?P<owner>.+)\.)?parametrizations\.(?P<attr>[^.]+)\.(?P<rest>.+)$")


def effective_weights(tensors: Mapping[str, TensorRef]) -> tuple[dict[str, TensorRef], dict[str, Parametrized]]:
    """Replace the stored originals of parametrized weights by the weight the module computes.

    ============================================================  =========================================
    stored (state_dict names)                                     judged as
    ============================================================  =========================================
    ``m.parametrizations.weight.original0`` (g), ``.original1`` (v)  ``m.weight`` = g·v/‖v‖ (weight_norm)
    ``m.weight_g``, ``m.weight_v`` (``torch.nn.utils.weight_norm``)   ``m.weight`` = g·v/‖v‖
    ``m.parametrizations.weight.original``, ``.0._u``, ``.0._v``     ``m.weight`` = W/σ_max (spectral_norm)
    ``m.weight_orig``, ``m.weight_u``, ``m.weight_v``                ``m.weight`` = W/σ_max (old spectral_norm)
    ``m.parametrizations.weight.original`` with anything else       not computable (orthogonal, user code):
                                                                  the original, a free parameter, with a note
    ============================================================  =========================================

    ‖v‖ runs over the axes where g has size 1 (any ``dim``). The effective tensor takes the module's name
    for it, in the place of its first stored tensor, so the layer is inferred as if the weight were stored
    plainly; g, u, v and parametrization buffers are not layers. Returns the new ordered mapping and, by
    the name of the tensor that stands for each parametrized weight, what was recognized.
    """
    found = {**_old_api(tensors), **_new_api(tensors)}
    if not found:
        return dict(tensors), {}
    stands_for = {p.name: (p.name if p.evaluable else dict(p.sources)["original"]) for p, _ in found.values()}
    replaced = {stored: eff for eff, (p, _) in found.items() for _, stored in p.sources}
    out: dict[str, TensorRef] = {}
    for name, ref in tensors.items():
        eff = replaced.get(name)
        if eff is None:
            out[name] = ref
        elif found[eff][0].evaluable:
            out.setdefault(eff, found[eff][1])  # first stored tensor's place
        elif name == stands_for[eff]:
            out[name] = ref  # the original, as a free parameter; parametrization buffers dropped
    return out, {stands_for[eff]: p for eff, (p, _) in found.items()}


def _new_api(tensors: Mapping[str, TensorRef]) -> dict[str, tuple[Parametrized, TensorRef | None]]:
    """``torch.nn.utils.parametrize`` names: ``owner.parametrizations.attr.original[N]`` and the
    parametrization modules' tensors ``owner.parametrizations.attr.K.*``."""
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for name in tensors:
        m = _PARAMETRIZATIONS.match(name)
        if m:
            groups.setdefault((m.group("owner") or "", m.group("attr")), {})[m.group("rest")] = name
    out: dict[str, tuple[Parametrized, TensorRef | None]] = {}
    for (owner, attr), parts in groups.items():
        eff = f"{owner}.{attr}" if owner else attr
        stored = f"{owner + '.' if owner else ''}parametrizations.{attr}"
        if set(parts) == {"original0", "original1"}:
            g, v = tensors[parts["original0"]], tensors[parts["original1"]]
            axes = _weight_norm_axes(g.shape, v.shape)
            if axes is not None:
                out[eff] = (Parametrized(eff, "weight_norm", (("g", parts["original0"]), ("v", parts["original1"])),
                                         True, f"weight_norm parametrization: judged as its effective weight "
                                         f"g·v/‖v‖ from {stored}.original0 (g) and .original1 (v)"),
                            weight_norm_ref(g, v, axes))
                continue
        if set(parts) == {"original", "0._u", "0._v"}:
            w, u, v = tensors[parts["original"]], tensors[parts["0._u"]], tensors[parts["0._v"]]
            dim = _spectral_dim(w.shape, u.shape, v.shape)
            if dim is not None:
                out[eff] = (Parametrized(eff, "spectral_norm", (("original", parts["original"]), ("u", parts["0._u"]),
                                                                ("v", parts["0._v"])), True,
                                         f"spectral_norm parametrization: judged as its effective weight W/σ "
                                         f"from {stored}.original (σ = its largest singular value)"),
                            spectral_norm_ref(w, u, v, dim))
                continue
        if "original" in parts:
            others = sorted(k for k in parts if k != "original")
            what = ", ".join(f".{k}" for k in others) if others else "no other tensor"
            out[eff] = (Parametrized(eff, "parametrized", tuple(("original" if k == "original" else k, n)
                                                                for k, n in sorted(parts.items())), False,
                                     f"parametrized {eff} (orthogonal or a user parametrization; {stored}.original "
                                     f"with {what}): its effective weight cannot be computed from tensors alone, "
                                     "so the stored original is not judged as a weight (check the live module)"),
                        None)
    return out


def _old_api(tensors: Mapping[str, TensorRef]) -> dict[str, tuple[Parametrized, TensorRef | None]]:
    """``torch.nn.utils.weight_norm`` (``attr_g``, ``attr_v``) and ``torch.nn.utils.spectral_norm``
    (``attr_orig``, ``attr_u``, ``attr_v``) hooks' names."""
    out: dict[str, tuple[Parametrized, TensorRef | None]] = {}
    for name in tensors:
        if name.endswith("_orig"):
            base = name[: -len("_orig")]
            u, v = f"{base}_u", f"{base}_v"
            if u in tensors and v in tensors and base not in tensors:
                dim = _spectral_dim(tensors[name].shape, tensors[u].shape, tensors[v].shape)
                if dim is not None:
                    out[base] = (Parametrized(base, "spectral_norm", (("original", name), ("u", u), ("v", v)), True,
                                              f"spectral_norm (torch.nn.utils.spectral_norm): judged as its effective "
                                              f"weight W/σ from {name} (σ = its largest singular value)"),
                                 spectral_norm_ref(tensors[name], tensors[u], tensors[v], dim))
        elif name.endswith("_g"):
            base = name[: -len("_g")]
            v = f"{base}_v"
            if v in tensors and base not in tensors and f"{base}_orig" not in tensors:
                axes = _weight_norm_axes(tensors[name].shape, tensors[v].shape)
                if axes is not None:
                    out[base] = (Parametrized(base, "weight_norm", (("g", name), ("v", v)), True,
                                              f"weight_norm (torch.nn.utils.weight_norm): judged as its effective "
                                              f"weight g·v/‖v‖ from {name} (g) and {v} (v)"),
                                 weight_norm_ref(tensors[name], tensors[v], axes))
    return out


def parametrization_notes(layers: list[Layer]) -> list[str]:
    """One model-level line on parametrized weights, for the report's source notes (empty when none)."""
    kinds: dict[str, list[str]] = {}
    for layer in layers:
        kind = layer.attrs.get("parametrization")
        if kind:
            kinds.setdefault(kind, []).append(layer.name)
    parts = []
    for kind, names in kinds.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        if kind == "parametrized":
            parts.append(f"{len(names)} parametrized weight(s) not computable from tensors ({shown}): "
                         "their stored originals are not judged as weights")
        else:
            parts.append(f"{len(names)} {kind} layer(s) judged as their effective weight ({shown})")
    return ["; ".join(parts)] if parts else []


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
