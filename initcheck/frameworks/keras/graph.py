"""Graph context of Keras layers, through initcheck's framework-neutral :class:`~initcheck.graph.OpGraph`.

Functional and Sequential models carry their graph (``_nodes_by_depth``); nested models are expanded in
place, so context crosses model boundaries. Each Keras op becomes OpGraph nodes named like PyTorch's ops
(``relu``, ``add``, ``reshape``, ``batch_norm``...), a layer's own ``activation`` argument becomes an
activation node after it, and layers with inner structure are spelled out (separable: depthwise → pointwise;
attention: query·key → softmax → ·value → output; recurrent: kernels → cell activation). The walk that turns
this into context is :func:`initcheck.graph.annotate`, the same as for PyTorch, so both frameworks get the
same verdicts for the same architecture.

A vertex is one call of an op (a Keras ``Node``), so a layer called twice is two vertices. Custom layers
(keras_hub's blocks) are followed into their call(): first run on fresh symbolic inputs (the recorded calls
are spliced in); when that fails (call() reads sizes as values, calls TensorFlow directly), traced into a
TensorFlow graph, where each Keras layer's call is one vertex and the TensorFlow ops between them are read
by type. A custom layer neither trace runs stays opaque, and its layers' reason names it and both errors.
Subclassed models have no graph: only each layer's own activation argument and first/last positions are
used. Keras is not imported here (TensorFlow only inside the TensorFlow-graph trace, on that backend).
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from typing import Any

from ...graph import KNOWN_OPS, OpGraph, annotate, normalize_op
from ...model import Context, Model
from ...schemes import canonical_activation
from .modules import _ATTENTION, Built, LayerCollector, _sublayers, class_names, is_model, known_class

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
    """Op-level graph of a (possibly nested) Keras model.

    A vertex is one call of an op (a Keras ``Node``): a layer called twice (ViT's MLP applies one Dropout
    before and after its second Dense) is two vertices, not a cycle. ``ops`` maps each vertex to the op
    called; a weight layer called twice shares its weights between both vertices.
    """

    def __init__(self) -> None:
        self.succ: dict[int, list[int]] = defaultdict(list)
        self.pred: dict[int, list[int]] = defaultdict(list)
        self.ops: dict[int, Any] = {}
        self.order: list[int] = []
        self._expanded: dict[int, tuple[list[int], list[int]]] = {}
        self._alive: list[Any] = []  # the Nodes and ops whose ids are vertex ids (ids stay unique while alive)
        self.complete = True
        self.restores: list = []  # undo the symbolic calls of custom layers, after the graph is read
        self.failures: dict[int, str] = {}  # id(custom layer) -> why its call() did not trace
        self.opaque: list[Any] = []  # the custom layers that stayed opaque
        self.var_layers: dict[int, str] = {}  # id(TF variable handle) -> initcheck layer holding it

    def edge(self, a: int, b: int) -> None:
        if b not in self.succ[a]:
            self.succ[a].append(b)
            self.pred[b].append(a)

    def _vertex(self, key: Any, op: Any) -> tuple[list[int], list[int]]:
        self._alive.append(key)
        self.ops[id(key)] = op
        self.order.append(id(key))
        result = ([id(key)], [id(key)])
        self._expanded[id(key)] = result
        return result

    def add(self, op: Any) -> tuple[list[int], list[int]]:
        """Register an op outside any recorded call (a Sequential's layer); a nested model is expanded.
        Returns (entry ids, exit ids)."""
        if id(op) in self._expanded:
            return self._expanded[id(op)]
        if is_model(op):
            result = self.expand(op)
            self._alive.append(op)
            self._expanded[id(op)] = result
            return result
        return self._vertex(op, op)

    def add_node(self, node: Any) -> tuple[list[int], list[int]]:
        """Register one call (a Keras Node); a nested model's call is its expansion (shared between calls)."""
        if id(node) in self._expanded:
            return self._expanded[id(node)]
        if is_model(node.operation):
            return self.add(node.operation)
        return self._vertex(node, node.operation)

    def producer(self, tensor: Any) -> Any:
        """The Node that made a symbolic tensor, or None."""
        hist = getattr(tensor, "_keras_history", None)
        if hist is None or hist[0] is None:
            return None
        nodes = hist[0]._inbound_nodes
        return nodes[hist[1]] if hist[1] < len(nodes) else None

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
        return self.expand_nodes(nodes, getattr(fn, "outputs", []) or [])

    def expand_nodes(self, nodes: list[Any], outputs: list[Any]) -> tuple[list[int], list[int]]:
        """Vertices and edges for recorded calls (``nodes`` in execution order) ending in ``outputs``."""
        node_ids = {id(n) for n in nodes}
        entries, exits = [], []
        for n in nodes:
            if self._expand_custom(n):
                continue
            ins, _ = self.add_node(n)
            for parent in _data_parents(n):
                if id(parent) in node_ids:
                    for a in self.add_node(parent)[1]:
                        for b in ins:
                            self.edge(a, b)
            if "InputLayer" in class_names(n.operation):
                entries.extend(ins)
        for t in outputs:
            node = self.producer(t)
            if node is not None:
                exits.extend(self.add_node(node)[1])
        return entries, exits

    def _expand_custom(self, node: Any) -> bool:
        """A custom layer (a subclass with sublayers: keras_hub's TransformerEncoder...) in a functional graph:
        its call() is run once on fresh symbolic inputs, which records the inner layers and ops as a graph
        of their own; that graph is spliced in, each fresh input wired to the outer op that fed it."""
        op = node.operation
        if id(node) in self._expanded or is_model(op) or known_class(op) != type(op).__name__ \
                or type(op).__module__.startswith("keras.src") or "Rotary" in type(op).__name__:
            return False
        if not _sublayers(op) and op.weights:
            return False  # its weights are applied by call() code, not by layers a trace would record
        traced = trace_custom_layer(op, node, self.failures)
        if traced is None:
            return self._expand_in_tf_graph(node)
        (nodes, outputs), wiring, restore = traced
        self.restores.append(restore)
        entries, exits = self.expand_nodes(nodes, outputs)
        if not entries or not exits:
            return False
        for original, input_op in wiring:
            source = self.producer(original)
            if source is None:
                continue
            for a in self.add_node(source)[1]:
                for b in self.add_node(input_op._inbound_nodes[0])[0]:
                    self.edge(a, b)
        self._expanded[id(node)] = (entries, exits)
        return True

    def _expand_in_tf_graph(self, node: Any) -> bool:
        """A custom layer whose call() does not run symbolically, traced into a TensorFlow graph instead."""
        op = node.operation
        traced = tf_trace_custom_layer(op, node, self, self.var_layers, is_unit)
        if traced is None:
            self.opaque.append(op)
            return False
        entries, exits, wiring = traced
        for original, entry in wiring:
            source = self.producer(original)
            if source is None:
                continue
            for a in self.add_node(source)[1]:
                self.edge(a, entry)
        self._expanded[id(node)] = (entries, exits)
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


# sizes tried, in order, for a custom layer's unknown input dimensions (None first: the most faithful; then
# concrete ones, for call() code that builds ranges or masks from a dimension, or adds a fixed-length table)
TRACE_SIZES: tuple[int | None, ...] = (None, 8, 16, 32, 64, 128)


def trace_custom_layer(op: Any, node: Any, failures: dict[int, str] | None = None):
    """((recorded calls, outputs), [(outer tensor, inner InputLayer)], restore) from ``op.call`` on fresh
    symbolic inputs, or None when its call() does not run symbolically (the last error goes to ``failures[id(op)]``).
    ``restore()`` removes the inbound nodes this added to the sublayers (call it once the graph is read).

    While call() runs, nested custom layers are made traceable (see :func:`_traceable_sublayers`), and each
    unknown input dimension is tried at the sizes of ``TRACE_SIZES`` until call() runs.
    """
    import sys

    keras = sys.modules.get("keras")
    if keras is None:
        return None
    from keras import tree

    sublayers = [layer for layer in op._flatten_layers(include_self=False, recursive=True)]
    before = {id(layer): (len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in sublayers}

    def restore() -> None:
        for layer in sublayers:
            n_in, n_out = before[id(layer)]
            del layer._inbound_nodes[n_in:]
            del layer._outbound_nodes[n_out:]

    error = "call() returned no symbolic tensor"
    for size in TRACE_SIZES:
        fresh: dict[int, tuple[Any, Any]] = {}

        def replace(x: Any) -> Any:
            if isinstance(x, keras.KerasTensor):
                if id(x) not in fresh:
                    shape = tuple((1 if i == 0 else size) if d is None else d for i, d in enumerate(x.shape))
                    fresh[id(x)] = (x, keras.Input(batch_shape=shape, dtype=x.dtype, sparse=x.sparse))
                return fresh[id(x)][1]
            return x

        undo = _traceable_sublayers(sublayers)
        try:
            args = tree.map_structure(replace, node.arguments.args)
            kwargs = _accepted_kwargs(op.call, tree.map_structure(replace, node.arguments.kwargs))
            out = op.call(*args, **kwargs)
            outputs = [t for t in tree.flatten(out) if isinstance(t, keras.KerasTensor)]
            if outputs:
                wiring = [(original, t._keras_history[0]) for original, t in fresh.values()]
                return (recorded_calls(outputs), outputs), wiring, restore
        except Exception as e:  # noqa: BLE001 - any failure of foreign call() code leaves the layer opaque
            error = f"{type(e).__name__}: {_first_line(e)}"
        finally:
            undo()
        restore()
    if failures is not None:
        failures[id(op)] = error
    return None


def recorded_calls(outputs: list[Any]) -> list[Any]:
    """The Keras Nodes that made ``outputs``, back to their inputs, in execution order (parents first).

    What a Functional would hold, without its checks: layers of different custom blocks may share a name
    (T5's self- and cross-attention both have a ``query_projector``), which a Functional refuses.
    """
    order: list[Any] = []
    state: dict[int, bool] = {}  # id(node) -> finished
    stack: list[tuple[Any, bool]] = []
    for t in reversed(outputs):
        hist = getattr(t, "_keras_history", None)
        if hist is not None and hist[0] is not None and hist[1] < len(hist[0]._inbound_nodes):
            stack.append((hist[0]._inbound_nodes[hist[1]], False))
    while stack:
        node, done = stack.pop()
        if done:
            if not state.get(id(node)):
                state[id(node)] = True
                order.append(node)
            continue
        if id(node) in state:
            continue
        state[id(node)] = False
        stack.append((node, True))
        stack.extend((parent, False) for parent in reversed(node.parent_nodes) if id(parent) not in state)
    return order


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = next((line for line in lines if not line.startswith("Exception encountered")), "")
    return text.replace("\x1b[1m", "").replace("\x1b[0m", "")[:160]


def _accepted_kwargs(fn: Any, kwargs: dict) -> dict:
    """The keyword arguments ``fn`` accepts (a layer's ``__call__`` drops ``training`` and ``mask`` for a
    call() that takes neither; calling call() directly must do the same)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def _traceable_sublayers(sublayers: list[Any]):
    """Patch the classes of a custom layer's nested custom layers so that its call() runs symbolically; returns
    the undo. Two things stop it otherwise, both in code outside Keras:

    - a layer with a call() of its own under a parent's ``compute_output_spec`` or ``compute_output_shape``
      (keras_hub's CachedMultiHeadAttention under MultiHeadAttention) gets an output spec written for
      another call signature: the generic one (run call() on placeholders) is used instead;
    - a custom layer whose call() returns None among its outputs (``attention, cache``) cannot be a graph
      node: its call() runs inline instead, so its own sublayers become nodes of the traced graph.

    Only classes defined outside Keras are patched, and only while the trace runs.
    """
    from keras.src.ops.operation import Operation

    patched: list[tuple[type, str, Any]] = []
    seen: set[type] = set()
    for layer in sublayers:
        cls = type(layer)
        if cls in seen or cls.__module__.startswith("keras.") or is_model(layer):
            continue
        seen.add(cls)
        if _spec_predates_call(cls):
            patched.append((cls, "compute_output_spec", cls.__dict__.get("compute_output_spec")))
            cls.compute_output_spec = Operation.compute_output_spec
        if known_class(layer) != cls.__name__:
            continue  # a Keras layer's subclass is one graph node (the loader spelled out its weights)
        patched.append((cls, "__call__", cls.__dict__.get("__call__")))
        cls.__call__ = _inline_on_failure(cls.__call__)

    def undo() -> None:
        for cls, attr, old in reversed(patched):
            if old is None:
                delattr(cls, attr)
            else:
                setattr(cls, attr, old)

    return undo


def _spec_predates_call(cls: type) -> bool:
    """Whether ``cls`` inherits its output spec or shape from a class above the one that defines its call()
    (keras_hub's ESMRotaryEmbedding returns (q, k) from a call() of its own, under RotaryEmbedding's
    one-tensor ``compute_output_shape``); Keras's own generic defaults do not count."""
    mro = cls.__mro__
    call_at = next((i for i, k in enumerate(mro) if "call" in k.__dict__), None)
    spec_at = next((i for i, k in enumerate(mro) if k.__module__ not in ("keras.src.layers.layer",
                                                                        "keras.src.ops.operation")
                    and ("compute_output_spec" in k.__dict__ or "compute_output_shape" in k.__dict__)), None)
    return call_at is not None and spec_at is not None and call_at < spec_at


def _inline_on_failure(call: Any):
    def __call__(self, *args, **kwargs):
        try:
            return call(self, *args, **kwargs)
        except (ValueError, TypeError):  # no graph node for this call (None outputs): run its body inline
            return self.call(*args, **_accepted_kwargs(self.call, kwargs))
    return __call__


# ---------------------------------------------------------------------------------------------- TF trace
# TensorFlow op types → initcheck.graph op names (a custom layer's call() traced into a TF graph)
TF_OPS = {
    "MatMul": "matmul", "BatchMatMul": "matmul", "BatchMatMulV2": "matmul", "BatchMatMulV3": "matmul",
    "Einsum": "einsum", "AddV2": "add", "Add": "add", "BiasAdd": "add", "Sub": "sub", "Mul": "mul",
    "RealDiv": "div", "Div": "div", "Neg": "neg", "Softmax": "softmax", "LogSoftmax": "log_softmax",
    "Relu": "relu", "Relu6": "relu6", "Elu": "elu", "Selu": "selu", "Tanh": "tanh", "Sigmoid": "sigmoid",
    "Softplus": "softplus", "LeakyRelu": "leaky_relu", "Reshape": "reshape", "Transpose": "transpose",
    "StridedSlice": "slice", "Slice": "slice", "ConcatV2": "cat", "Pack": "stack", "Unpack": "unstack",
    "Split": "split", "SplitV": "split", "Squeeze": "squeeze", "ExpandDims": "expand_dims",
    "Identity": "identity", "IdentityN": "identity", "Cast": "cast", "GatherV2": "gather",
    "ResourceGather": "embedding", "Tile": "tile", "Shape": "shape", "Size": "size", "Rank": "dim",
    "Range": "arange", "Fill": "full_like", "ZerosLike": "zeros_like", "OnesLike": "ones_like", "Mean": "mean",
    "Sum": "sum", "Max": "max", "Min": "min", "Pad": "pad", "PadV2": "pad", "MirrorPad": "pad",
    "SelectV2": "where", "Select": "where", "Conv2D": "conv", "Conv3D": "conv",
    "DepthwiseConv2dNative": "conv", "Conv2DBackpropInput": "conv_transpose2d", "MaxPool": "max_pool2d",
    "AvgPool": "avg_pool2d", "Maximum": "max", "Minimum": "min", "ClipByValue": "clamp",
    "StopGradient": "stop_gradient", "TopKV2": "topk", "BroadcastTo": "broadcast_to", "Cumsum": "cumsum",
    "Less": "lt", "LessEqual": "le", "Greater": "gt", "GreaterEqual": "ge", "Equal": "eq", "NotEqual": "ne",
    "GatherNd": "gather", "ScatterNd": "other", "Roll": "roll", "ReverseV2": "flip", "OneHot": "one_hot",
    "MatrixBandPart": "where", "Square": "pow_by_constant",
}
CONSTANT_TF_OPS = frozenset({"Const", "Placeholder", "VarHandleOp", "NoOp", "RandomUniform",
                             "RandomStandardNormal", "StatelessRandomUniformV2"})
SHAPE_TF_OPS = frozenset({"Shape", "Size", "Rank", "ShapeN"})
# keras.ops / keras.activations functions recorded as one activation when call() code calls them (in a TF
# graph GELU and SiLU are several ops each)
TRACED_ACTIVATIONS = ("relu", "relu6", "gelu", "silu", "swish", "sigmoid", "tanh", "softmax", "log_softmax",
                      "softplus", "elu", "selu", "leaky_relu", "hard_sigmoid", "hard_silu", "hard_swish",
                      "log_sigmoid", "mish", "squareplus", "sparse_plus")


# (leading, other) sizes tried for unknown dimensions in a TensorFlow-graph trace; ("rank+1", n) last: a
# tensor declared (None,) gets a second dimension, as some layers declare fewer dimensions than
# they return (keras_hub's Moonshine declares its rotary table (None,) and indexes it as 2-D). A size that
# lets call() run is only a shape to trace with: the values are never read.
TF_TRACE_SIZES = ((1, 8), (8, 8), (1, 16), (16, 16), (1, 32), ("rank+1", 8))


def _tf_spec(tf: Any, t: Any, batch: Any, size: int) -> Any:
    """A TensorSpec for symbolic tensor ``t`` with its unknown dimensions set (see TF_TRACE_SIZES)."""
    shape = list(t.shape)
    if batch == "rank+1":
        batch = 1
        if shape == [None]:
            shape.append(None)
            batch = size
    return tf.TensorSpec([(batch if i == 0 else size) if d is None else d for i, d in enumerate(shape)], t.dtype)


class TFOp:
    """A vertex for one TensorFlow op of a traced call() (or a recorded activation function)."""

    def __init__(self, op: str, layers: list[str] | None = None, param: float | None = None) -> None:
        self.op, self.layers, self.param = op, list(layers or []), param


def tf_trace_custom_layer(op: Any, node: Any, kg: KerasGraph, var_layers: dict[int, str],
                          is_unit: Any) -> tuple[list[int], list[int], list] | None:
    """Run ``op.call`` in a TensorFlow graph (concrete shapes, so call() code that reads sizes as values or
    calls TensorFlow directly runs) and splice its ops into ``kg``: (entries, exits, [(outer tensor, entry)]).

    Each call of a layer ``is_unit`` accepts (Keras's own layers and their subclasses, which the loader spells
    out) becomes one vertex holding the ops made while it ran; each activation function call() code calls
    one activation vertex; every other TF op a vertex of its own (``TF_OPS``). Constants and shape-derived
    values are no inputs (``x * cos_table`` is a constant multiplier); a read of a variable an initcheck
    layer holds puts that layer on the op that uses it. None when TensorFlow is not the backend or call()
    does not run.
    """
    import sys

    keras = sys.modules.get("keras")
    if keras is None or keras.config.backend() != "tensorflow":
        return None
    import tensorflow as tf
    from keras import tree

    from keras.src.layers.layer import Layer

    kts = [t for t in tree.flatten((node.arguments.args, node.arguments.kwargs)) if isinstance(t, keras.KerasTensor)]
    kts = list({id(t): t for t in kts}.values())
    units: list[tuple[Any, int, int]] = []  # (layer or activation name, first op index, end op index)
    masks: set[str] = set()  # names of the TF tensors given to attention layers as masks
    depth = [0]
    layer_call = Layer.__call__

    def recorded(unit: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        graph = tf.compat.v1.get_default_graph()
        start = len(graph.get_operations())
        depth[0] += 1
        try:
            out = fn(*args, **kwargs)
        finally:
            depth[0] -= 1
        if depth[0] == 0:
            units.append((unit, start, len(graph.get_operations())))
        return out

    def unit_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if depth[0] or not is_unit(self):
            return layer_call(self, *args, **kwargs)
        for key, value in kwargs.items():  # masks given to attention are no data edges (see MASK_ARGUMENTS)
            if key in MASK_ARGUMENTS and (key == "mask" or known_class(self) in _ATTENTION):
                masks.update(t.name for t in tree.flatten(value) if hasattr(t, "name") and hasattr(t, "op"))
        return recorded(self, layer_call, self, *args, **kwargs)

    def activation(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if depth[0]:
                return fn(*args, **kwargs)
            tanh_form = name == "gelu" and bool(kwargs.get("approximate", args[1] if len(args) > 1 else True))
            return recorded("gelu_new" if tanh_form else name, fn, *args, **kwargs)
        return wrapper

    def body(*xs: Any) -> Any:
        values = dict(zip((id(t) for t in kts), xs))
        swap = lambda x: values.get(id(x), x) if isinstance(x, keras.KerasTensor) else x  # noqa: E731
        args = tree.map_structure(swap, node.arguments.args)
        kwargs = _accepted_kwargs(op.call, tree.map_structure(swap, node.arguments.kwargs))
        if "training" in kwargs and kwargs["training"] is None:
            kwargs["training"] = False
        return op.call(*args, **kwargs)

    patched: list[tuple[Any, str, Any]] = []
    for module in (keras.ops, keras.activations):
        for name in TRACED_ACTIVATIONS:
            if hasattr(module, name):
                patched.append((module, name, getattr(module, name)))
                setattr(module, name, activation(name, getattr(module, name)))
    Layer.__call__ = unit_call
    concrete = None
    try:
        for batch, size in TF_TRACE_SIZES:  # unknown dimensions: a leading one is not always the batch
            specs = [_tf_spec(tf, t, batch, size) for t in kts]
            units.clear()
            masks.clear()
            try:
                concrete = tf.function(body, autograph=False).get_concrete_function(*specs)
                break
            except Exception as e:  # noqa: BLE001 - foreign call() code: any failure leaves the layer opaque
                error = f"{type(e).__name__}: {_first_line(e)}"
        if concrete is None:
            kg.failures[id(op)] = kg.failures.get(id(op), "") + f"; in a TensorFlow graph too ({error})"
            return None
    finally:
        Layer.__call__ = layer_call
        for module, name, fn in reversed(patched):
            setattr(module, name, fn)
    return _splice_tf_graph(concrete, kts, units, kg, var_layers, masks)


def _splice_tf_graph(concrete: Any, kts: list, units: list, kg: KerasGraph, var_layers: dict[int, str],
                     masks: set[str] = frozenset()):
    """Vertices and edges in ``kg`` for the ops of a traced TensorFlow function (see tf_trace_custom_layer)."""
    graph = concrete.graph
    operations = graph.get_operations()
    index = {id(o): i for i, o in enumerate(operations)}
    unit_of: dict[int, int] = {}  # op index -> unit number
    for u, (_, start, end) in enumerate(units):
        for i in range(start, end):
            unit_of.setdefault(i, u)
    captured = {id(internal.op): var_layers.get(id(external)) for external, internal in graph.captures}
    n_args = len(kts)
    arg_ops = [t.op for t in concrete.inputs[:n_args]]
    arg_index = {id(o): k for k, o in enumerate(arg_ops)}
    constant: set[int] = set()
    weights: dict[int, list[str]] = {}  # op index -> layers whose variables it only views
    keys: dict[Any, Any] = {}

    def vertex_for(i: int) -> int | None:
        if i in constant or i in weights:
            return None
        if i in unit_of:
            key = ("unit", unit_of[i])
        else:
            key = ("op", i)
        return keys.get(key)

    for i, o in enumerate(operations):
        if id(o) in captured:  # a variable's handle (or a captured constant), wherever it was first read
            name = captured[id(o)]
            if name:
                weights[i] = [name]
            else:
                constant.add(i)
            continue
        if i in unit_of:
            u = unit_of[i]
            if ("unit", u) not in keys:
                unit = units[u][0]
                if isinstance(unit, str):  # an activation function
                    act = TFOp(keras_op_name(unit))
                    keys[("unit", u)] = kg._vertex(act, act)[0][0]
                else:  # a layer's call: the op is the layer, as in a functional graph
                    keys[("unit", u)] = kg._vertex(_Call(unit), unit)[0][0]
            continue
        if id(o) in arg_index:
            entry = TFOp("identity")
            keys[("op", i)] = kg._vertex(entry, entry)[0][0]
            continue
        ins = [index[id(t.op)] for t in o.inputs]
        data = [j for j in ins if j not in constant and j not in weights]
        views = [name for j in ins if j in weights for name in weights[j]]
        if o.type in CONSTANT_TF_OPS or (not data and not views) or \
                all(operations[j].type in SHAPE_TF_OPS for j in data) and not views and data:
            constant.add(i)
            continue
        if not data:
            weights[i] = views  # a view of weights only (ReadVariableOp, a cast or reshape of it)
            continue
        name = TF_OPS.get(o.type, "other")
        if name == "add" and views:
            name = "param_add"
        made = TFOp(name, views)
        keys[("op", i)] = kg._vertex(made, made)[0][0]
    for i, o in enumerate(operations):
        target = vertex_for(i)
        if target is None:
            continue
        for t in o.inputs:
            j = index[id(t.op)]
            if unit_of.get(j, -1) == unit_of.get(i, -2):
                continue  # inside one unit
            if i in unit_of and t.name in masks:
                continue  # a mask into an attention layer
            source = vertex_for(j)
            if source is not None and source != target:
                kg.edge(source, target)
    entries = [keys[("op", index[id(o)])] for o in arg_ops]
    exits = [v for v in (vertex_for(index[id(t.op)]) for t in concrete.outputs) if v is not None]
    wiring = [(kts[k], entries[k]) for k in range(n_args)]
    return entries, exits, wiring


class _Call:
    """The vertex key of one recorded call of a layer (a layer called twice is two vertices)."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer


# keyword arguments of Keras's attention layers (and Keras's mask convention) that carry masks: a mask selects
# which positions attend, it carries no values, so it is no data edge (BERT's padding mask is a model input;
# wired in, it made every attention projection look like an input layer)
MASK_ARGUMENTS = frozenset({"attention_mask", "query_mask", "value_mask", "key_mask", "mask"})


def _data_parents(node: Any) -> list[Any]:
    """The Nodes feeding ``node`` its data: all its parents, less those that only give an attention layer
    (or any layer, through Keras's ``mask`` argument) a mask."""
    kwargs = node.arguments.kwargs
    masks = {k for k in kwargs if k in MASK_ARGUMENTS and (k == "mask" or known_class(node.operation) in _ATTENTION)}
    if not masks:
        return list(node.parent_nodes)
    import sys

    tree = sys.modules["keras"].tree
    data = tree.flatten((node.arguments.args, {k: v for k, v in kwargs.items() if k not in masks}))
    out: list[Any] = []
    for t in data:
        hist = getattr(t, "_keras_history", None)
        if hist is None or hist[0] is None or hist[1] >= len(hist[0]._inbound_nodes):
            continue
        parent = hist[0]._inbound_nodes[hist[1]]
        if all(parent is not p for p in out):
            out.append(parent)
    return out


def functional_of(model: Any) -> Any:
    """The object that holds the graph: a Functional model itself, or a built Sequential's ``_functional``."""
    if known_class(model) == "Sequential":
        return getattr(model, "_functional", None)
    if hasattr(model, "_nodes_by_depth") and "Functional" in class_names(model):
        return model
    return None


def build_opgraph(root: Any, collector: LayerCollector, opaque: dict[int, str] | None = None,
                  swallowed: dict[str, str] | None = None) -> OpGraph | None:
    """The OpGraph of a functional or Sequential Keras model; None for a subclassed one.

    ``opaque`` receives, for every Keras layer inside a custom layer whose call() could not be traced, why;
    ``swallowed``, by initcheck layer name, the layers applied inside a Keras layer read as one op.
    """
    kg = KerasGraph()
    kg.var_layers = _variable_layers(collector)
    try:
        entries, exits = kg.expand(root)
    finally:
        for restore in reversed(kg.restores):
            restore()
    if opaque is not None:
        for op in kg.opaque:
            why = (f"inside custom Keras layer '{op.name}' ({type(op).__name__}), whose call() does not run on "
                   f"symbolic inputs ({kg.failures.get(id(op), 'not traced')}): only the layer's own "
                   "`activation` argument is known")
            for inner in op._flatten_layers(include_self=False, recursive=True):
                opaque.setdefault(id(inner), why)
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
        if isinstance(op, TFOp):
            out_id[nid] = og.add(op.op, ins, op.layers, op.param).id
            continue
        builts = collector.by_keras_id.get(id(op))
        # a softmax that ends the model belongs to the output head (probabilities), not to attention
        final = nid in exits and not kg.succ[nid]
        if builts:
            outs = [_emit_built(og, b, ins, final) for b in builts]
            out_id[nid] = outs[0] if len(outs) == 1 else og.add("cat", outs).id
            if swallowed is not None and _sublayers(op):
                _note_swallowed(op, collector, swallowed)
        else:
            out_id[nid] = _emit_op(og, op, ins, final)
    for e in exits:
        if e in out_id:
            og.add("output", [out_id[e]])
    return og


# keras.ops classes whose snake-case name initcheck.graph spells differently
KERAS_OP_ALIASES = {"get_item": "getitem", "top_k": "topk", "dot_product_attention": "scaled_dot_product_attention",
                    "swap_axes": "swapaxes", "move_axis": "movedim", "take_along_axis": "take_along_dim",
                    "hard_sigmoid": "hardsigmoid", "hard_silu": "hardswish", "hard_swish": "hardswish",
                    "expand_dims": "expand_dims"}


def keras_op_name(class_name: str) -> str:
    """The op name of a keras.ops class (``ExpandDims`` → ``expand_dims``, ``TopK`` → ``topk``, ``Add`` → ``add``);
    the run-together spelling (``Matmul`` → ``matmul``) when only that one is known."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", class_name).lower()
    snake = normalize_op(KERAS_OP_ALIASES.get(snake, snake))
    if snake in KNOWN_OPS:
        return snake
    joined = normalize_op(class_name.lower())
    return joined if joined in KNOWN_OPS else snake


def _note_swallowed(op: Any, collector: LayerCollector, swallowed: dict[str, str]) -> None:
    """Layers whose weights belong to sublayers of a Keras layer read as one op, beyond what the loader spelled
    out for it (XLNet's relative attention, a MultiHeadAttention subclass, also applies an ``encoding``
    projection): the graph does not see how that call() uses them; ``swallowed`` gets their reason."""
    inner = op._flatten_layers(include_self=False, recursive=True)
    variables = {id(v) for layer in inner for v in layer.weights}
    if not variables:
        return
    why = (f"applied inside '{op.name}' ({type(op).__name__}), which initcheck reads as one operation: how its "
           "call() uses this weight is not followed")
    for built in collector.built:
        for layer in list(built.external) + [x for x, _, _ in built.internal]:
            if any(id(p.native) in variables for p in layer.params):
                swallowed.setdefault(layer.name, why)


def _variable_layers(collector: LayerCollector) -> dict[int, str]:
    """id(TensorFlow handle of a Keras variable) -> the initcheck layer holding it (empty off TensorFlow)."""
    out: dict[int, str] = {}
    for built in collector.built:
        for layer in list(built.external) + [x for x, _, _ in built.internal]:
            for p in layer.params:
                handle = getattr(getattr(p.native, "value", None), "handle", None)
                if handle is not None:
                    out[id(handle)] = layer.name
    return out


def is_unit(layer: Any) -> bool:
    """Whether a layer called inside traced call() code is one vertex: Keras's own layers and subclasses of
    them (the loader spells out their weights), and custom layers holding weights but no sublayers."""
    cls = type(layer)
    return cls.__module__.startswith("keras.") or known_class(layer) != cls.__name__ \
        or (not _sublayers(layer) and bool(layer.weights))


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
        mapped = keras_op_name(type(op).__name__)
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
    opaque: dict[int, str] = {}
    swallowed: dict[str, str] = {}
    og = build_opgraph(root, collector, opaque, swallowed)
    if og is not None:
        annotate(model, og)
        _own_activations(model, collector, graph_reached=True, opaque=opaque)
        for layer in model.layers:
            if not layer.context.on_inference_path and layer.name in swallowed:
                # used by the op that holds it, as far as the graph can tell: on the path, activation unknown
                layer.context.on_inference_path = True
                layer.context.activation_unknown_reason = swallowed[layer.name]
        return
    model.graph_notes.append("subclassed Keras model: no functional graph; activations only from each layer's "
                             "own `activation` argument, positions from layer order")
    _own_activations(model, collector, graph_reached=False)


SUBCLASSED_REASON = ("subclassed Keras model: no functional graph to follow, only each layer's own `activation` "
                     "argument is known")


def _own_activations(model: Model, collector: LayerCollector, graph_reached: bool,
                     opaque: dict[int, str] | None = None) -> None:
    """Context from each Keras layer's own ``activation`` argument, for layers the graph did not reach
    (all of them in a subclassed model; those inside untraceable custom layers of a functional one, whose
    ``opaque`` reason says which layer and why). A layer of a functional graph outside any opaque layer that
    the graph never reached keeps the walk's "not on the inference path"."""
    reached = {layer.name for layer in model.layers if layer.context.on_inference_path} if graph_reached else set()
    for built in collector.built:
        reason = SUBCLASSED_REASON
        if graph_reached:
            reason = (opaque or {}).get(id(built.keras_layer))
            if reason is None:
                continue
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
