"""Graph context of Keras layers, through initcheck's framework-neutral :class:`~initcheck.graph.OpGraph`.

Functional and Sequential models carry their graph (``_nodes_by_depth``); nested models are expanded in
place, so context crosses model boundaries. Each Keras op becomes OpGraph nodes named like PyTorch's ops
(``relu``, ``add``, ``reshape``, ``batch_norm``...), a layer's own ``activation`` argument becomes an
activation node after it, and layers with inner structure are spelled out (separable: depthwise → pointwise;
attention: query·key → softmax → ·value → output; recurrent: kernels → cell activation). The walk that turns
this into context is :func:`initcheck.graph.annotate`, the same as for PyTorch, so both frameworks get the
same verdicts for the same architecture. Subclassed models have no graph: only each layer's own activation
argument and first/last positions are used. Keras is not imported here.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

from ...graph import OpGraph, annotate, normalize_op
from ...model import Context, Model
from ...schemes import canonical_activation
from .modules import Built, LayerCollector, _sublayers, class_names, is_model, known_class

# Keras layer classes → the op names initcheck.graph knows (PyTorch's spelling).
LAYER_OPS = {
    "Dropout": "dropout", "SpatialDropout1D": "dropout", "SpatialDropout2D": "dropout",
    "SpatialDropout3D": "dropout", "GaussianDropout": "dropout", "GaussianNoise": "dropout",
    "AlphaDropout": "dropout", "ActivityRegularization": "identity", "Identity": "identity",
    "Masking": "identity", "Rescaling": "identity", "Normalization": "identity", "Resizing": "identity",
    "CenterCrop": "identity", "RandomFlip": "identity", "RandomRotation": "identity", "RandomZoom": "identity",
    "RandomCrop": "identity", "RandomTranslation": "identity", "RandomContrast": "identity",
    "Reshape": "reshape", "Flatten": "flatten", "Permute": "permute", "RepeatVector": "repeat",
    "Cropping1D": "slice", "Cropping2D": "slice", "Cropping3D": "slice",
    "ZeroPadding1D": "pad", "ZeroPadding2D": "pad", "ZeroPadding3D": "pad",
    "UpSampling1D": "upsample", "UpSampling2D": "upsample", "UpSampling3D": "upsample",
    "MaxPooling1D": "max_pool1d", "MaxPooling2D": "max_pool2d", "MaxPooling3D": "max_pool3d",
    "AveragePooling1D": "avg_pool1d", "AveragePooling2D": "avg_pool2d", "AveragePooling3D": "avg_pool3d",
    "GlobalMaxPooling1D": "mean", "GlobalMaxPooling2D": "mean", "GlobalMaxPooling3D": "mean",
    "GlobalAveragePooling1D": "mean", "GlobalAveragePooling2D": "mean", "GlobalAveragePooling3D": "mean",
    "Concatenate": "cat", "Add": "add", "Multiply": "mul", "Subtract": "sub", "Average": "mean",
    "Dot": "matmul", "Softmax": "softmax", "UnitNormalization": "normalize",
    "BatchNormalization": "batch_norm", "LayerNormalization": "layer_norm", "GroupNormalization": "group_norm",
    "RMSNormalization": "rms_norm",
    "CustomScaleLayer": "add",  # InceptionResNetV2: inputs[0] + inputs[1]·scale, the residual add
}
# Keras activation names initcheck's table spells differently.
KERAS_ACTIVATIONS = {"hard_silu": "hardswish", "hard_swish": "hardswish", "leakyrelu": "leaky_relu",
                     "relu6": "relu", "swish": "silu", "softmax": "linear", "log_softmax": "linear"}
# activation functions libraries register under their own names
KERAS_FUNCTIONS = {"gelu_approximate": "gelu_tanh", "approximate_gelu": "gelu_tanh", "quick_gelu": "gelu",
                   "gelu_new": "gelu_tanh", "relu_squared": "relu"}
# keras.activations.leaky_relu's default slope (the LeakyReLU layer's is 0.3, read from its config).
KERAS_LEAKY_DEFAULT = 0.2


def activation_name(value: Any) -> tuple[str | None, float | None, bool]:
    """(canonical name, parameter, known) for a Keras activation config (a string or a serialized dict)."""
    if value is None:
        return None, None, False
    if isinstance(value, dict):
        value = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
    if not isinstance(value, str):
        return None, None, False
    key = value.strip().lower().rpartition(">")[2]  # registered functions: 'keras_hub>gelu_approximate'
    key = KERAS_FUNCTIONS.get(key, key)
    key = KERAS_ACTIVATIONS.get(key, key)
    canon = canonical_activation(key)
    if canon == "leaky_relu":
        return canon, KERAS_LEAKY_DEFAULT, True
    return canon, None, canon is not None


def _config(op: Any) -> dict:
    try:
        return op.get_config()
    except Exception:
        return {}


def activation_layer(op: Any) -> tuple[str, str | None, float | None] | None:
    """(op name, canonical activation or None, param) if ``op`` is an activation layer; else None."""
    names = class_names(op)
    cfg = _config(op) if any(n in ("Activation", "ReLU", "LeakyReLU", "ELU", "PReLU") for n in names) else {}
    if "Activation" in names:
        raw = cfg.get("activation")
        if isinstance(raw, str) and raw.strip().lower() in ("softmax", "log_softmax"):
            return raw.strip().lower(), None, None  # reported as the softmax it is (see the walk)
        canon, param, known = activation_name(raw)
        if canon == "linear":
            return "identity", None, None
        return ("act", canon, param) if known else ("other", None, None)
    if "ReLU" in names:
        slope = float(cfg.get("negative_slope") or 0.0)
        return ("leaky_relu", "leaky_relu", slope) if slope > 0 else ("relu", "relu", None)
    if "LeakyReLU" in names:
        return "leaky_relu", "leaky_relu", float(cfg.get("negative_slope", cfg.get("alpha", 0.3)))
    if "ELU" in names:
        return "elu", "elu", None
    if "PReLU" in names:
        try:  # learned slopes; at initialization usually all 0, i.e. a ReLU
            import numpy as np

            slope = float(np.mean(np.asarray(op.alpha.numpy())))
        except Exception:
            slope = None
        return "prelu", "leaky_relu", slope
    if "ThresholdedReLU" in names:
        return "relu", "relu", None
    return None


class KerasGraph:
    """Op-level graph of a (possibly nested) Keras model; nodes are ids of Keras ops."""

    def __init__(self) -> None:
        self.succ: dict[int, list[int]] = defaultdict(list)
        self.pred: dict[int, list[int]] = defaultdict(list)
        self.ops: dict[int, Any] = {}
        self.order: list[int] = []
        self._expanded: dict[int, tuple[list[int], list[int]]] = {}
        self.complete = True
        self.restores: list = []  # undo the symbolic calls of custom layers, after the graph is read

    def edge(self, a: int, b: int) -> None:
        if b not in self.succ[a]:
            self.succ[a].append(b)
            self.pred[b].append(a)

    def add(self, op: Any) -> tuple[list[int], list[int]]:
        """Register an op; a nested model is expanded. Returns (entry ids, exit ids)."""
        if id(op) in self._expanded:
            return self._expanded[id(op)]
        if is_model(op):
            result = self.expand(op)
        else:
            self.ops[id(op)] = op
            self.order.append(id(op))
            result = ([id(op)], [id(op)])
        self._expanded[id(op)] = result
        return result

    def expand(self, model: Any) -> tuple[list[int], list[int]]:
        fn = functional_of(model)
        if fn is None:
            if known_class(model) != "Sequential":
                self.complete = False  # subclassed: call() is Python code with no recorded graph
                return [], []
            entries: list[int] = []
            prev: list[int] = []
            for layer in _sublayers(model):
                ins, outs = self.add(layer)
                for a in prev:
                    for b in ins:
                        self.edge(a, b)
                entries = entries or ins
                prev = outs or prev
            return entries, prev
        nodes = [n for depth in sorted(fn._nodes_by_depth, reverse=True) for n in fn._nodes_by_depth[depth]]
        node_ids = {id(n) for n in nodes}
        entries, exits = [], []
        for n in nodes:
            if self._expand_custom(n):
                continue
            ins, _ = self.add(n.operation)
            for parent in n.parent_nodes:
                if id(parent) in node_ids:
                    for a in self.add(parent.operation)[1]:
                        for b in ins:
                            self.edge(a, b)
            if "InputLayer" in class_names(n.operation):
                entries.extend(ins)
        for t in getattr(fn, "outputs", []) or []:
            hist = getattr(t, "_keras_history", None)
            if hist is not None:
                exits.extend(self.add(hist[0])[1])
        return entries, exits

    def _expand_custom(self, node: Any) -> bool:
        """A custom layer (a subclass with sublayers: keras_hub's TransformerEncoder...) in a functional graph:
        its call() is run once on fresh symbolic inputs, which records the inner layers and ops as a graph
        of their own; that graph is spliced in, each fresh input wired to the outer op that fed it."""
        op = node.operation
        if id(op) in self._expanded or is_model(op) or known_class(op) != type(op).__name__ \
                or not _sublayers(op) or type(op).__module__.startswith("keras.src"):
            return False
        traced = trace_custom_layer(op, node)
        if traced is None:
            return False
        inner, wiring, restore = traced
        self.restores.append(restore)
        entries, exits = self.expand(inner)
        if not entries or not exits:
            return False
        for original, input_op in wiring:
            hist = getattr(original, "_keras_history", None)
            if hist is None:
                continue
            for a in self.add(hist[0])[1]:
                self.edge(a, id(input_op))
        self._expanded[id(op)] = (entries, exits)
        return True

    def topological(self) -> list[int]:
        indeg = {n: len(self.pred[n]) for n in self.ops}
        queue = deque(n for n in self.order if indeg[n] == 0)
        out: list[int] = []
        while queue:
            n = queue.popleft()
            out.append(n)
            for s in self.succ[n]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    queue.append(s)
        return out


def trace_custom_layer(op: Any, node: Any):
    """(inner Functional, [(outer tensor, inner InputLayer)], restore) from ``op.call`` on fresh symbolic
    inputs, or None when its call() does not run symbolically. ``restore()`` removes the inbound nodes this
    added to the sublayers (call it once the graph has been read)."""
    import sys

    keras = sys.modules.get("keras")
    if keras is None:
        return None
    from keras import tree

    sublayers = [layer for layer in op._flatten_layers(include_self=False, recursive=True)]
    before = {id(layer): (len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in sublayers}
    fresh: dict[int, tuple[Any, Any]] = {}

    def restore() -> None:
        for layer in sublayers:
            n_in, n_out = before[id(layer)]
            del layer._inbound_nodes[n_in:]
            del layer._outbound_nodes[n_out:]

    def replace(x: Any) -> Any:
        if isinstance(x, keras.KerasTensor):
            if id(x) not in fresh:
                # concrete sizes for unknown dimensions: call() code often builds ranges or masks from them
                shape = tuple((1 if i == 0 else 8) if d is None else d for i, d in enumerate(x.shape))
                fresh[id(x)] = (x, keras.Input(batch_shape=shape, dtype=x.dtype, sparse=x.sparse))
            return fresh[id(x)][1]
        return x

    try:
        args = tree.map_structure(replace, node.arguments.args)
        kwargs = tree.map_structure(replace, node.arguments.kwargs)
        out = op.call(*args, **kwargs)
        outputs = [t for t in tree.flatten(out) if isinstance(t, keras.KerasTensor)]
        if not outputs:
            return None
        inner = keras.Model([t for _, t in fresh.values()], outputs)
    except Exception:  # call() that needs concrete values (Python control flow on shapes): stays opaque
        restore()
        return None
    wiring = [(original, t._keras_history[0]) for original, t in fresh.values()]
    return inner, wiring, restore


def functional_of(model: Any) -> Any:
    """The object that holds the graph: a Functional model itself, or a built Sequential's ``_functional``."""
    if known_class(model) == "Sequential":
        return getattr(model, "_functional", None)
    if hasattr(model, "_nodes_by_depth") and "Functional" in class_names(model):
        return model
    return None


def build_opgraph(root: Any, collector: LayerCollector) -> OpGraph | None:
    """The OpGraph of a functional or Sequential Keras model; None for a subclassed one."""
    kg = KerasGraph()
    try:
        entries, exits = kg.expand(root)
    finally:
        for restore in reversed(kg.restores):
            restore()
    if not entries or not kg.complete:
        return None
    og = OpGraph(source="graph")
    top_inputs = set(entries)
    out_id: dict[int, int] = {}
    for nid in kg.topological():
        ins = [out_id[p] for p in kg.pred[nid] if p in out_id]
        op = kg.ops[nid]
        if nid in top_inputs:
            out_id[nid] = og.add("input", []).id
            continue
        builts = collector.by_keras_id.get(nid)
        # a softmax that ends the model belongs to the output head (probabilities), not to attention
        final = nid in exits and not kg.succ[nid]
        if builts:
            outs = [_emit_built(og, b, ins, final) for b in builts]
            out_id[nid] = outs[0] if len(outs) == 1 else og.add("cat", outs).id
        else:
            out_id[nid] = _emit_op(og, op, ins, final)
    for e in exits:
        if e in out_id:
            og.add("output", [out_id[e]])
    return og


def _emit_op(og: OpGraph, op: Any, ins: list[int], final: bool = False) -> int:
    act = activation_layer(op)
    if "Softmax" in class_names(op) or (act is not None and act[0] in ("softmax", "log_softmax")):
        return og.add(act[0] if act is not None else "softmax", ins).id
    if final and act is not None and act[1] == "linear":
        return og.add("identity", ins).id
    if act is not None:
        name, canon, param = act
        node = og.add(name if name != "act" else (canon or "other"), ins, [], param)
        if canon is not None:
            node.activation = canon
        return node.id
    if "InputLayer" in class_names(op) or "Rotary" in type(op).__name__:
        # rotary position embeddings rotate pairs of features: the scale passes unchanged
        return og.add("identity", ins).id
    mapped = next((LAYER_OPS[n] for n in class_names(op) if n in LAYER_OPS), None)
    if mapped is None:
        # keras.ops called on symbolic tensors (ops.relu, ops.add, ops.reshape): the class is the function
        mapped = normalize_op(type(op).__name__.lower())
        if mapped == "lambda":
            mapped = "other"
    node = og.add(mapped, ins)
    if node.activation is None and mapped not in ("softmax", "log_softmax"):
        canon, param, known = activation_name(mapped)
        if known and canon != "linear":
            node.activation, node.param = canon, param
    return node.id


def _layer_op(kind: str) -> str:
    return {"batchnorm": "batch_norm", "layernorm": "layer_norm", "groupnorm": "group_norm",
            "rmsnorm": "rms_norm"}.get(kind, "embedding" if kind == "embedding" else
                                       "conv" if "conv" in kind else "linear")


def _emit_built(og: OpGraph, built: Built, ins: list[int], final: bool = False) -> int:
    """OpGraph nodes for one Keras layer's weights; returns the node that carries its output."""
    internal = [layer for layer, _, _ in built.internal]
    kinds = {layer.kind for layer in internal}
    if any(layer.attrs.get("separable") == "depthwise" for layer in internal):
        dw = og.add("conv", ins, [internal[0].name])
        x = og.add("conv", [dw.id], [layer.name for layer in built.external]).id if built.external else dw.id
    elif "attention_in_proj" in kinds:
        proj = {layer.attrs.get("projection"): og.add("linear", ins, [layer.name]).id for layer in internal}
        scores = og.add("einsum", [proj[k] for k in ("query", "key") if k in proj])
        weights = og.add("softmax", [scores.id])
        mixed = og.add("einsum", [weights.id] + [proj[k] for k in ("value", "gate") if k in proj])
        x = og.add("linear", [mixed.id], [layer.name for layer in built.external]).id if built.external \
            else mixed.id
    elif any(k.endswith(("_input", "_recurrent")) for k in kinds):
        inner = [og.add("linear", ins if not layer.kind.endswith("_recurrent") else [], [layer.name]).id
                 for layer in internal]
        act = next((a for _, a, _ in built.internal if a), "tanh")
        canon, param, known = activation_name(act)
        cell = og.add(act if known else "other", inner, [], param)
        cell.activation = canon if known else None
        x = cell.id
    elif built.external and built.external[0].kind == "prelu":
        return _emit_op(og, built.keras_layer, ins, final)
    else:
        op = _layer_op(built.external[0].kind) if built.external else "linear"
        x = og.add(op, ins, [layer.name for layer in built.external]).id
    own = _config(built.keras_layer).get("activation")
    if own is not None and not any(k.endswith(("_input", "_recurrent")) for k in kinds):
        canon, param, known = activation_name(own)
        if not known:
            x = og.add("other", [x]).id
        elif canon != "linear":
            node = og.add(canon, [x], [], param)
            node.activation, node.param = canon, param
            x = node.id
        elif str(own).lower() in ("softmax", "log_softmax"):
            x = og.add(str(own).lower(), [x]).id
    return x


def apply_context(model: Model, root: Any, collector: LayerCollector) -> None:
    """Fill ``layer.context`` for every layer the collector built from ``root`` (a keras.Model)."""
    og = build_opgraph(root, collector)
    if og is not None:
        annotate(model, og)
        _own_activations(model, collector, graph_reached=True)
        return
    model.graph_notes.append("subclassed Keras model: no functional graph; activations only from each layer's "
                             "own `activation` argument, positions from layer order")
    _own_activations(model, collector, graph_reached=False)


CUSTOM_LAYER_REASON = ("inside a custom Keras layer whose call() has no functional graph to follow: only the "
                       "layer's own `activation` argument is known")
SUBCLASSED_REASON = ("subclassed Keras model: no functional graph to follow, only each layer's own `activation` "
                     "argument is known")


def _own_activations(model: Model, collector: LayerCollector, graph_reached: bool) -> None:
    """Context from each Keras layer's own ``activation`` argument, for layers the graph did not reach
    (all of them in a subclassed model; those inside custom layers of a functional one)."""
    reached = {layer.name for layer in model.layers if layer.context.on_inference_path} if graph_reached else set()
    reason = CUSTOM_LAYER_REASON if graph_reached else SUBCLASSED_REASON
    for built in collector.built:
        own_canon, own_param, known = activation_name(_config(built.keras_layer).get("activation"))
        for layer in built.external:
            if layer.name in reached:
                continue
            if known and own_canon != "linear":
                layer.context = Context(activation=own_canon, activation_param=own_param,
                                        activation_source="graph")
            else:
                layer.context = Context(activation_unknown_reason=reason)
        for layer, act, consumers in built.internal:
            if layer.name in reached:
                continue
            canon, param, known = activation_name(act)
            if known:
                layer.context = Context(activation=canon, activation_param=param, activation_source="graph",
                                        consumers=list(consumers))
            else:
                layer.context = Context(activation_unknown_reason=reason)
    if graph_reached:
        return
    matrices = [layer for layer in model.layers if layer.is_matrix and layer.kind != "prelu"]
    if matrices:
        matrices[0].context.position = "input"
        if matrices[-1] is not matrices[0]:
            matrices[-1].context.position = "output"
