"""Layers of a live ``keras.Model``, by layer class, in Keras' layouts (see ``layout.py``).

Keras is never imported here: everything is read from the objects handed in (class names along the MRO,
``get_config()``, variables). Each weight-bearing Keras layer becomes one or more initcheck Layers named by
the Keras layer path (``outer/inner`` for nested models); a SeparableConv gives ``name/depthwise`` and
``name/pointwise``, a recurrent layer ``name/kernel`` and ``name/recurrent_kernel``, a MultiHeadAttention
``name/query``, ``name/key``, ``name/value`` and ``name/attention_output``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ...model import BIT_DECODERS, Layer, Param, TensorRef
from ...roles import NORM_KINDS
from .layout import RECURRENT_GATES, is_buffer, layers_from_named, make_layer

_CONV = {"Conv1D": ("conv1d", 1), "Conv2D": ("conv2d", 2), "Conv3D": ("conv3d", 3)}
_CONV_T = {"Conv1DTranspose": ("conv_transpose1d", 1), "Conv2DTranspose": ("conv_transpose2d", 2),
           "Conv3DTranspose": ("conv_transpose3d", 3)}
_DEPTHWISE = {"DepthwiseConv1D": "depthwise_conv1d", "DepthwiseConv2D": "depthwise_conv2d"}
_SEPARABLE = {"SeparableConv1D": 1, "SeparableConv2D": 2}
_NORMS = {"BatchNormalization": "batchnorm", "LayerNormalization": "layernorm",
          "GroupNormalization": "groupnorm", "RMSNormalization": "rmsnorm"}
_RNN = {"LSTM": "LSTMCell", "GRU": "GRUCell", "SimpleRNN": "SimpleRNNCell",
        "ConvLSTM1D": "ConvLSTMCell", "ConvLSTM2D": "ConvLSTMCell", "ConvLSTM3D": "ConvLSTMCell"}
_ATTENTION = ("MultiHeadAttention", "GroupedQueryAttention", "GroupQueryAttention")
KNOWN = (set(_CONV) | set(_CONV_T) | set(_DEPTHWISE) | set(_SEPARABLE) | set(_NORMS) | set(_RNN)
         | set(_ATTENTION) | {"Dense", "EinsumDense", "Embedding", "PReLU", "RNN", "Bidirectional",
                              "TimeDistributed", "Functional", "Sequential", "Model"})


@dataclass
class Built:
    """initcheck Layers made from one Keras layer, and how graph context applies to each.

    ``external``: layers whose output is the Keras layer's output (context from the graph);
    ``internal``: (layer, activation) pairs whose successor is inside the Keras layer itself (a separable
    convolution's depthwise half, attention's query/key/value, recurrent kernels).
    """

    keras_layer: Any
    name: str
    external: list[Layer] = field(default_factory=list)
    internal: list[tuple[Layer, str | None, list[str]]] = field(default_factory=list)


def class_names(obj: Any) -> list[str]:
    return [c.__name__ for c in type(obj).__mro__]


def known_class(obj: Any) -> str:
    """The first Keras class along the MRO initcheck knows (a subclass of Dense is a Dense)."""
    for name in class_names(obj):
        if name in KNOWN:
            return name
    return type(obj).__name__


def is_model(obj: Any) -> bool:
    return any(n in ("Functional", "Sequential", "Model") for n in class_names(obj)) and hasattr(obj, "layers")


def variable_ref(v: Any, unit_axis: int = -1) -> TensorRef:
    """A TensorRef over a Keras variable; bfloat16 (an ml_dtypes array) travels as its bits."""
    dtype = _dtype_name(v)

    def raw() -> np.ndarray:
        a = _to_numpy(v)
        if dtype in BIT_DECODERS:
            return a.view(np.uint16 if a.itemsize == 2 else np.uint8)
        return a

    return TensorRef(tuple(int(s) for s in v.shape), dtype, raw, unit_axis=unit_axis,
                     decode=BIT_DECODERS.get(dtype))


def _to_numpy(v: Any) -> np.ndarray:
    """The variable's values; through the backend tensor where possible (TF's Variable.numpy() warns)."""
    value = getattr(v, "value", None)
    try:
        if hasattr(value, "detach"):  # torch backend: a Parameter that requires grad
            return value.detach().cpu().numpy()
        if hasattr(value, "numpy"):
            return np.asarray(value.numpy())
    except Exception:
        pass
    return np.asarray(v.numpy())


def _dtype_name(v: Any) -> str:
    d = getattr(v, "dtype", "float32")
    name = getattr(d, "name", None) or str(d)
    return name.replace("tf.", "").replace("torch.", "")


def is_float_variable(v: Any) -> bool:
    return _dtype_name(v) in ("float16", "float32", "float64", "bfloat16")


def assigner(v: Any, shape: tuple[int, ...] | None = None) -> Callable[[np.ndarray], None]:
    """In-place writer for a Keras variable (keeps its dtype; ``shape`` when the Param shows a reshaped view)."""

    def assign(values: np.ndarray) -> None:
        a = np.asarray(values, dtype=np.float64).reshape(tuple(int(s) for s in v.shape))
        v.assign(a.astype(_numpy_dtype(v)))

    return assign


def _numpy_dtype(v: Any):
    name = _dtype_name(v)
    if name == "bfloat16":
        import ml_dtypes  # shipped with TensorFlow and JAX; Keras' own bfloat16 numpy type

        return ml_dtypes.bfloat16
    return np.dtype(name)


def leaf(v: Any) -> str:
    return str(getattr(v, "name", "") or "").split("/")[-1].split(":")[0]


class LayerCollector:
    """Walks a Keras model's layers (recursively) and builds initcheck Layers, each variable once."""

    def __init__(self) -> None:
        self.built: list[Built] = []
        self.by_keras_id: dict[int, list[Built]] = {}
        self._seen: dict[int, Param] = {}
        self._constants: set[int] = set()
        self._layer_trainable = True

    # ------------------------------------------------------------------------------------ params
    def param(self, v: Any, layer_name: str, role: str, view_1d: bool = False,
              leaf_name: str | None = None) -> Param | None:
        """A Param for a variable seen for the first time, None for one already reported (shared)."""
        if v is None:
            return None
        name = f"{layer_name}/{leaf_name or leaf(v)}"
        if id(v) in self._seen:
            seen = self._seen[id(v)]
            if name != seen.name and name not in seen.aliases:
                seen.aliases.append(name)
            return None
        if not getattr(v, "trainable", True) and self._layer_trainable:
            # a constant the layer keeps (sinusoidal or interpolated positions): not a weight anyone initializes
            self._constants.add(id(v))
            return None
        ref = variable_ref(v)
        if view_1d and len(ref.shape) != 1:
            inner = ref
            ref = TensorRef((inner.size,), inner.dtype, lambda: inner.raw().reshape(-1), unit_axis=0,
                            decode=inner._decode)
        p = Param(name, role, ref, assign=assigner(v), native=v)
        self._seen[id(v)] = p
        return p

    # ------------------------------------------------------------------------------------ walking
    def collect_model(self, model: Any, prefix: str = "") -> None:
        """Layers of a (nested) model, named so the same model built or reloaded gets the same names.

        keras_hub backbones rebuild their layers from constructor arguments on reload: names Keras generated
        (``rms_normalization_2``) are replaced by the attribute that holds the layer, and the model's own name
        as a prefix (``dinov2_backbone_embeddings`` once reloaded, ``embeddings`` when built) is dropped.
        """
        children = _sublayers(model)
        for layer, name in zip(children, stable_names(model, children)):
            self.collect(layer, prefix, name)
        if not prefix:
            self.collect_leftovers(model)

    def collect(self, layer: Any, prefix: str = "", name: str | None = None) -> None:
        name = f"{prefix}{name or layer.name}"
        cls = known_class(layer)
        if is_model(layer):
            self.collect_model(layer, f"{name}/")
            return
        self._layer_trainable = bool(getattr(layer, "trainable", True))
        built = Built(layer, name)
        try:
            cfg = layer.get_config()
        except Exception:  # custom layers without get_config: attributes still work
            cfg = {}
        handled = self._classify(layer, cls, name, cfg, built)
        if not handled:
            self._generic(layer, name, built)
        if built.external or built.internal:
            self.built.append(built)
            self.by_keras_id.setdefault(id(layer), []).append(built)

    def _classify(self, layer: Any, cls: str, name: str, cfg: dict, built: Built) -> bool:
        attrs = {"keras_class": type(layer).__name__}
        for key in ("kernel_initializer", "bias_initializer", "embeddings_initializer",
                    "recurrent_initializer", "depthwise_initializer", "pointwise_initializer",
                    "gamma_initializer", "beta_initializer"):
            if key in cfg:
                attrs[key] = _initializer_summary(cfg[key])
        get = lambda attr: getattr(layer, attr, None)  # noqa: E731
        if cls == "Dense":
            w = self.param(_var(layer, "_kernel", "kernel"), name, "weight")
            if w is not None:
                built.external.append(make_layer(name, "linear", w, self.param(get("bias"), name, "bias"),
                                                 {**attrs, "units": cfg.get("units")}))
            return True
        if cls in _CONV or cls in _CONV_T:
            kind, d = _CONV.get(cls) or _CONV_T[cls]
            w = self.param(_var(layer, "_kernel", "kernel"), name, "weight")
            if w is not None:
                attrs.update(groups=int(cfg.get("groups") or 1), kernel_size=tuple(w.shape[:d]),
                             strides=tuple(cfg.get("strides") or ()), filters=cfg.get("filters"))
                built.external.append(make_layer(name, kind, w, self.param(get("bias"), name, "bias"), attrs))
            return True
        if cls in _DEPTHWISE:
            w = self.param(_var(layer, "_kernel", "kernel", "depthwise_kernel"), name, "weight")
            if w is not None:
                attrs.update(depth_multiplier=cfg.get("depth_multiplier"), kernel_size=tuple(w.shape[:-2]),
                             strides=tuple(cfg.get("strides") or ()), groups=int(w.shape[-2]))
                built.external.append(make_layer(name, _DEPTHWISE[cls], w,
                                                 self.param(get("bias"), name, "bias"), attrs))
            return True
        if cls in _SEPARABLE:
            d = _SEPARABLE[cls]
            dw = self.param(_var(layer, "depthwise_kernel"), f"{name}", "weight")
            pw = self.param(_var(layer, "pointwise_kernel"), f"{name}", "weight")
            if pw is not None:
                pw_layer = make_layer(f"{name}/pointwise", f"conv{d}d", pw, self.param(get("bias"), name, "bias"),
                                      {**attrs, "kernel_size": tuple(pw.shape[:d]), "groups": 1,
                                       "filters": cfg.get("filters"), "separable": "pointwise"})
            if dw is not None:
                dw_layer = make_layer(f"{name}/depthwise", f"depthwise_conv{d}d", dw, None,
                                      {**attrs, "kernel_size": tuple(dw.shape[:d]), "groups": int(dw.shape[-2]),
                                       "depth_multiplier": cfg.get("depth_multiplier"),
                                       "strides": tuple(cfg.get("strides") or ()), "separable": "depthwise"})
                # Keras applies no activation between the two halves of a separable convolution
                built.internal.append((dw_layer, "linear", [f"{name}/pointwise"] if pw is not None else []))
            if pw is not None:
                built.external.append(pw_layer)
            return True
        if cls == "Embedding":
            w = self.param(_var(layer, "_embeddings", "embeddings"), name, "weight")
            if w is not None:
                built.external.append(make_layer(name, "embedding", w, None,
                                                 {**attrs, "input_dim": cfg.get("input_dim"),
                                                  "output_dim": cfg.get("output_dim")}))
            return True
        if cls in _NORMS:
            kind = _NORMS[cls]
            if cls == "LayerNormalization" and cfg.get("rms_scaling"):
                kind = "rmsnorm"
            scale = self.param(_var(layer, "gamma", "scale"), name, "scale")
            shift = self.param(_var(layer, "beta"), name, "shift")
            weight = scale if scale is not None else shift
            if weight is not None:
                built.external.append(make_layer(name, kind, weight, shift if scale is not None else None,
                                                 {**attrs, "axis": cfg.get("axis"), "epsilon": cfg.get("epsilon")}))
            return True
        if cls == "PReLU":
            alpha = self.param(_var(layer, "alpha"), name, "slope", view_1d=True)
            if alpha is not None:
                built.external.append(make_layer(name, "prelu", alpha, None, {
                    **attrs, "stored_shape": tuple(int(s) for s in _var(layer, "alpha").shape)},
                    notes=["PReLU slopes shown as a vector (stored with the input's shape)"]))
            return True
        if cls == "EinsumDense":
            self._einsum(layer, name, "linear", attrs, built, external=True)
            return True
        if cls in _ATTENTION:
            self._attention(layer, name, attrs, built)
            return True
        if cls in _RNN or cls == "RNN":
            self._recurrent(layer, name, attrs, built)
            return True
        if cls in ("Bidirectional", "TimeDistributed"):
            before = len(self.built)
            for sub in (get("forward_layer"), get("backward_layer"), get("layer") if cls == "TimeDistributed"
                        else None):
                if sub is not None:
                    self.collect(sub, f"{name}/")
            # in the graph the wrapper stands for the layers it wraps
            self.by_keras_id.setdefault(id(layer), []).extend(self.built[before:])
            return True
        return False

    def _einsum(self, layer: Any, name: str, kind: str, attrs: dict, built: Built, external: bool,
                activation: str | None = None, consumers: list[str] | None = None) -> Layer | None:
        kernel = _var(layer, "_kernel", "kernel")
        w = self.param(kernel, name, "weight")
        if w is None:
            return None
        cfg = _safe_config(layer)
        axes = einsum_axes(cfg.get("equation", getattr(layer, "equation", "")), w.shape)
        a = dict(attrs)
        a["equation"] = cfg.get("equation")
        notes: list[str] = []
        if axes is not None:
            a["input_axes"], a["output_axes"] = axes
            from .layout import keras_compute_fans

            a["framework_fans_before_keras_3_15"] = keras_compute_fans(w.shape)
        else:
            notes.append("einsum equation not understood: fans assume a (..., in, out) layout")
        layer_obj = make_layer(name, kind, w, self.param(getattr(layer, "bias", None), name, "bias"), a,
                               notes=notes)
        if external:
            built.external.append(layer_obj)
        else:
            built.internal.append((layer_obj, activation, consumers or []))
        return layer_obj

    def _attention(self, layer: Any, name: str, attrs: dict, built: Built) -> None:
        parts = [("query", "_query_dense"), ("key", "_key_dense"), ("value", "_value_dense"),
                 ("gate", "_gate_dense")]
        out = getattr(layer, "_output_dense", None)
        out_name = f"{name}/{getattr(out, 'name', 'attention_output')}" if out is not None else None
        cfg = _safe_config(layer)
        a = {**attrs, "num_heads": cfg.get("num_heads"), "key_dim": cfg.get("key_dim"), "projections": 1}
        for label, attr in parts:
            sub = getattr(layer, attr, None)
            if sub is None:
                continue
            # the projections feed the attention product (softmax over scores, not over these outputs)
            self._einsum(sub, f"{name}/{getattr(sub, 'name', label)}", "attention_in_proj",
                         {**a, "projection": label}, built, external=False, activation="linear",
                         consumers=[out_name] if out_name else [])
        if out is not None:
            self._einsum(out, out_name, "linear", {**attrs, "projection": "output"}, built, external=True)

    def _recurrent(self, layer: Any, name: str, attrs: dict, built: Built) -> None:
        cell = getattr(layer, "cell", layer)
        cell_cls = next((n for n in class_names(cell) if n in RECURRENT_GATES), None)
        if cell_cls is None:  # a custom cell: its variables by name
            self._generic(cell, name, built)
            return
        kind_prefix, gates = RECURRENT_GATES[cell_cls]
        cfg = _safe_config(cell)
        units = cfg.get("units") or cfg.get("filters")
        a = {**attrs, "cell": kind_prefix, "gates": gates, "units": units}
        for key in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
            if key in cfg:
                a[key] = _initializer_summary(cfg[key])
        if "unit_forget_bias" in cfg:
            a["unit_forget_bias"] = cfg["unit_forget_bias"]
        if "reset_after" in cfg:
            a["reset_after"] = cfg["reset_after"]
        k = self.param(_var(cell, "kernel"), name, "weight")
        r = self.param(_var(cell, "recurrent_kernel"), name, "weight")
        bias = self.param(_var(cell, "bias"), name, "bias")
        # The recurrent state passes through the cell's own activation (tanh by default) and gates
        # (sigmoid); both kernels feed those, not the layer's consumers.
        act = cfg.get("activation") if isinstance(cfg.get("activation"), str) else None
        if k is not None:
            built.internal.append((make_layer(f"{name}/kernel", f"{kind_prefix}_input", k, bias, a), act, []))
        if r is not None:
            built.internal.append((make_layer(f"{name}/recurrent_kernel", f"{kind_prefix}_recurrent", r,
                                              None if k is not None else bias, a), act, []))

    def collect_leftovers(self, root: Any) -> None:
        """Every trainable variable no class handler reported (an extra kernel of a subclass of a known layer:
        keras_hub ReversibleEmbedding's reverse_embeddings, XLNet's relative-attention encoding), by its path."""
        entries = []
        for v in list(getattr(root, "weights", []) or []):
            if id(v) in self._seen or id(v) in self._constants or not is_float_variable(v):
                continue
            if not getattr(v, "trainable", True) or is_buffer(leaf(v)):
                continue
            path = str(getattr(v, "path", "") or getattr(v, "name", "")).split(":")[0]
            layer_path = path.rpartition("/")[0] or path
            p = self.param(v, layer_path, {"kernel": "weight", "bias": "bias"}.get(leaf(v), leaf(v)))
            if p is not None:
                entries.append((layer_path, leaf(v), p))
        if not entries:
            return
        built = Built(None, "leftovers")
        for layer_obj in layers_from_named(entries):
            layer_obj.notes.append("variable not read by its layer's class handler: kind inferred from its "
                                   "name and shape")
            built.external.append(layer_obj)
        self.built.append(built)

    def _generic(self, layer: Any, name: str, built: Built) -> None:
        """A layer initcheck does not know: sublayers by class, own variables by name and shape.

        Sublayers with auto-generated names (``layer_normalization_16``: a process-wide counter, different
        after a reload or when other models were built first) are named by the attribute that holds them.
        """
        children = _sublayers(layer)
        for sub, own in zip(children, stable_names(layer, children)):
            self.collect(sub, f"{name}/", own)
        self._layer_trainable = bool(getattr(layer, "trainable", True))
        own = [v for v in _own_variables(layer) if is_float_variable(v) and not is_buffer(leaf(v))]
        leaves = stable_variable_names(layer, own)
        entries = []
        for v in own:
            stable = leaves.get(id(v), leaf(v))
            role = {"kernel": "weight", "bias": "bias"}.get(stable, stable)
            p = self.param(v, name, role, leaf_name=stable)
            if p is not None:
                entries.append((name, stable, p))
        if entries:
            made = layers_from_named(entries)
            normalizes = "norm" in type(layer).__name__.lower()
            for layer_obj in made:
                if layer_obj.kind in NORM_KINDS and layer_obj.bias is None and not normalizes:
                    # a lone scale vector of a class that does not normalize (ConvNeXt's LayerScale): a gain,
                    # known from the class, not a normalization's scale
                    layer_obj.kind = "vector"
                    layer_obj.notes.append("one scale vector of a class that does not normalize: a gain")
                layer_obj.notes.append(f"layer class {type(layer).__name__}: kind inferred from names and shapes")
                layer_obj.attrs["keras_class"] = type(layer).__name__
            built.external.extend(made)

    @property
    def layers(self) -> list[Layer]:
        out: list[Layer] = []
        for b in self.built:
            # definition order inside a Keras layer: internal halves (depthwise, q/k/v) before the output
            internal = [layer for layer, _, _ in b.internal]
            out.extend(internal + b.external)
        return out


def _snake_case(name: str) -> str:
    """Keras' ``to_snake_case`` (the stem of automatic layer names)."""
    import re

    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _auto_named(layer: Any) -> bool:
    """True when the layer's name is Keras' automatic one: snake_case(class name) with an optional counter."""
    import re

    name = str(getattr(layer, "name", ""))
    return re.fullmatch(re.escape(_snake_case(type(layer).__name__)) + r"(_\d+)?", name) is not None


def stable_variable_names(layer: Any, variables: list[Any]) -> dict[int, str]:
    """id(variable) → a name that survives a reload: its own, unless Keras generated it (``add_weight``
    without a name gives ``variable_18``, a process-wide counter); then the attribute holding it, else
    ``variable``, ``variable_1``... in creation order within the layer."""
    import re

    try:
        attrs = {id(v): k.lstrip("_") for k, v in vars(layer).items() if hasattr(v, "assign") and k.lstrip("_")}
    except TypeError:
        attrs = {}
    out: dict[int, str] = {}
    k = 0
    for v in variables:
        name = leaf(v)
        if re.fullmatch(r"variable(_\d+)?", name):
            if id(v) in attrs:
                name = attrs[id(v)]
            else:
                name = "variable" if k == 0 else f"variable_{k}"
                k += 1
        out[id(v)] = name
    return out


def stable_names(parent: Any, children: list[Any]) -> list[str]:
    """Names for ``children`` that do not depend on Keras' process-wide name counters.

    A child with a name of its own keeps it (without the parent model's name as a prefix); an automatically
    named one takes the attribute that holds it, else its class stem numbered among its siblings
    (``conv2d``, ``conv2d_1``) in construction order.
    """
    attrs = _child_attributes(parent)
    own_prefix = f"{getattr(parent, 'name', '')}_"
    counts: dict[str, int] = {}
    names = []
    for child in children:
        name = str(child.name)
        if _auto_named(child):
            if id(child) in attrs:
                name = attrs[id(child)]
            else:
                stem = _snake_case(type(child).__name__)
                k = counts.get(stem, 0)
                counts[stem] = k + 1
                name = stem if k == 0 else f"{stem}_{k}"
        elif own_prefix != "_" and name.startswith(own_prefix) and len(name) > len(own_prefix):
            name = name[len(own_prefix):]
        names.append(name)
    return names


# Keras' own bookkeeping attributes that also hold sublayers (not names a user gave them)
_KERAS_TRACKING = frozenset({"layers", "tracker", "inbound_nodes", "outbound_nodes", "self_tracked_trackables",
                             "functional", "operations", "trainable_variables", "non_trainable_variables"})


def _child_attributes(parent: Any) -> dict[int, str]:
    """id(sublayer) → the attribute path that holds it (``feedforward_norm``, ``experts_0``), stable names."""
    out: dict[int, str] = {}
    try:
        items = list(vars(parent).items())
    except TypeError:
        return out
    for attr, value in items:
        label = attr.lstrip("_")
        if not label or attr.startswith("__") or label in _KERAS_TRACKING:
            continue
        if hasattr(value, "weights") and hasattr(value, "name") and not isinstance(value, type):
            out.setdefault(id(value), label)
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if hasattr(item, "weights") and hasattr(item, "name"):
                    out.setdefault(id(item), f"{label}_{i}")
    return out


def _sublayers(obj: Any) -> list[Any]:
    if is_model(obj) and hasattr(obj, "layers"):
        try:
            return [layer for layer in obj.layers]
        except Exception:
            pass
    try:
        return list(obj._flatten_layers(include_self=False, recursive=False))
    except Exception:
        return list(getattr(obj, "_layers", []) or [])


def _own_variables(layer: Any) -> list[Any]:
    own = list(getattr(layer, "_trainable_variables", []) or []) + \
        list(getattr(layer, "_non_trainable_variables", []) or [])
    if own or _sublayers(layer):
        return own
    return list(getattr(layer, "weights", []) or [])


def _var(layer: Any, *names: str) -> Any:
    """The layer's variable by attribute name (first found); None when absent or quantized away."""
    for n in names:
        try:
            v = getattr(layer, n, None)
        except Exception:  # e.g. a property that raises for unbuilt or quantized layers
            v = None
        if v is not None and hasattr(v, "shape") and hasattr(v, "assign") and is_float_variable(v):
            return v
    return None


def _safe_config(layer: Any) -> dict:
    try:
        return layer.get_config()
    except Exception:
        return {}


def _initializer_summary(cfg: Any) -> Any:
    """The declared initializer: a name, or {class_name, config} without Keras' bookkeeping keys."""
    if isinstance(cfg, dict):
        inner = cfg.get("config") or {}
        return {"class_name": cfg.get("class_name"),
                "config": {k: v for k, v in inner.items() if k not in ("seed",)}}
    return cfg


def einsum_axes(equation: str, shape: tuple[int, ...]) -> tuple[list[int], list[int]] | None:
    """Input (contracted) and output axes of an EinsumDense kernel, as Keras 3.15 computes them.

    A kernel axis whose letter appears in the output spec is an output axis; one that appears only in the
    input spec is contracted (an input axis). Mirrors ``_analyze_split_string`` in keras' einsum_dense.
    """
    import re

    eq = re.sub(r"\.\.\.", "0", equation or "")
    m = re.match(r"0?([a-zA-Z]+)0?,([a-zA-Z]+)->0?([a-zA-Z]+)0?$", eq)
    if not m:
        return None
    input_spec, weight_spec, output_spec = m.groups()
    if len(weight_spec) != len(shape):
        return None
    ins, outs = [], []
    for i, ch in enumerate(weight_spec):
        if ch in output_spec:
            outs.append(i)
        elif ch in input_spec:
            ins.append(i)
        else:
            return None
    return ins, outs
