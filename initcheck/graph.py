"""Framework-neutral operator graph and the per-layer context read from it.

Framework code (``frameworks/torch/graph.py``, the Keras loader) turns a model into an :class:`OpGraph`;
:func:`annotate` walks it forward from each layer's output to find what consumes it: the activation
(looking through shape-only ops), a normalization, a residual add, the model's output, the next layers.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from .model import Context, Model
from .schemes import canonical_activation

# Ops that move or select values without mixing them: the activation after them is the layer's.
TRANSPARENT = frozenset({
    "view", "reshape", "flatten", "unflatten", "permute", "transpose", "t", "contiguous", "dropout",
    "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout", "identity",
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_avg_pool3d", "max_pool2d_with_indices", "pad", "squeeze",
    "unsqueeze", "getitem", "split", "chunk", "unbind", "narrow", "expand", "repeat", "to", "type",
    "float", "half", "bfloat16", "double", "clone", "detach", "contiguous", "pixel_shuffle",
    "pixel_unshuffle", "channel_shuffle", "zero_pad2d", "upsample", "interpolate", "movedim",
    "swapaxes", "select", "slice", "index_select", "roll", "flip", "cat", "stack", "mean", "sum",
})
# Ops that read only a tensor's shape, dtype or device, or make a new tensor of its shape: they pass no
# values on, so the walk neither follows nor stops at them (fx's getattr for ``x.shape``, timm's _assert).
SHAPE_QUERIES = frozenset({
    "size", "dim", "numel", "shape", "getattr", "eq", "ne", "lt", "le", "gt", "ge", "assert", "_assert",
    "zeros_like", "ones_like", "full_like", "empty_like", "new_zeros", "new_ones", "new_full", "new_empty",
    "arange", "is_floating_point", "len", "sym_size", "sym_numel", "dtype", "device", "scalar_tensor",
})
# Transparent ops that pass on only a part of their input.
SELECTING = frozenset({"getitem", "split", "chunk", "unbind", "narrow", "split_with_sizes", "tensor_split",
                       "hsplit", "vsplit", "select", "slice"})

# More ops that move, select or reshape values (fx/aten spellings of the TRANSPARENT ones).
TRANSPARENT = TRANSPARENT | frozenset({
    "get", "type_as", "view_as", "reshape_as", "expand_as", "masked_fill", "split_with_sizes",
    "tensor_split", "repeat_interleave", "tile", "gather", "take_along_dim", "_unsafe_view", "alias",
    "clamp", "clip", "nan_to_num", "real", "amax", "amin", "max", "min", "logsumexp", "adaptive_avg_pool",
    "lp_pool2d", "fractional_max_pool2d", "upsample_nearest2d", "upsample_bilinear2d", "grid_sample",
    "stride", "as_strided", "index", "unfold", "fold", "im2col", "col2im", "view_as_real", "view_as_complex",
    "where", "broadcast_to", "one_hot", "hsplit", "vsplit", "cast", "convert_to_tensor", "expand_dims",
    "concatenate", "take", "stop_gradient", "topk", "unstack", "sort", "stochastic_depth", "drop_path",
})
# Ops linear in the layer's output: no nonlinearity follows before them, so the layer feeds a linear map.
LINEAR_OPS = frozenset({"matmul", "bmm", "mm", "einsum", "scaled_dot_product_attention", "mul", "div",
                        "baddbmm", "addmm", "multi_head_attention_forward", "softmax", "log_softmax",
                        "linear", "conv1d", "conv2d", "conv3d", "truediv", "neg", "sub", "rsub", "fft_fft",
                        "fft_fftn", "fft_fft2", "fft_rfft", "fft_irfft", "cumsum", "conv_transpose1d",
                        "conv_transpose2d", "conv_transpose3d", "convolution", "_convolution", "addcmul",
                        "complex", "bilinear", "embedding", "lerp", "conv", "fft_ifft", "fft", "fft2", "rfft",
                        "irfft", "ifft2"})
NORM_OPS = frozenset({"batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "normalize",
                      "local_response_norm", "native_layer_norm", "native_batch_norm", "native_group_norm",
                      "_native_batch_norm_legit_no_training", "_native_batch_norm_legit", "fused_rms_norm"})
# Multiplying or dividing by a constant (a scalar, no second tensor) scales the signal without mixing it.
SCALAR_OPS = frozenset({"mul", "div", "add", "sub", "rsub", "neg", "pow_by_constant"})
ADD_OPS = frozenset({"add", "iadd", "radd"})
ACTIVATION_OPS = {
    "relu": "relu", "relu6": "relu", "hardtanh": "tanh", "leaky_relu": "leaky_relu", "prelu": "leaky_relu",
    "rrelu": "leaky_relu", "gelu": "gelu", "silu": "silu", "mish": "mish", "elu": "elu", "celu": "elu",
    "selu": "selu", "softplus": "softplus", "tanh": "tanh", "sigmoid": "sigmoid", "hardswish": "hardswish",
    "hardsigmoid": "sigmoid", "logsigmoid": "sigmoid", "softsign": "tanh", "tanhshrink": "linear",
    "glu": "sigmoid", "swish": "silu", "quick_gelu": "gelu", "gelu_new": "gelu_tanh", "exp": "linear",
}


# Every op name the walk treats by name (an op outside this set is one initcheck does not know).
KNOWN_OPS = (TRANSPARENT | SHAPE_QUERIES | LINEAR_OPS | NORM_OPS | SCALAR_OPS | ADD_OPS | frozenset(ACTIVATION_OPS)
             | frozenset({"softmax", "log_softmax", "input", "output"}))


@dataclass
class OpNode:
    """One operation. ``layers``: model layers whose weights this op applies (a layer node)."""

    id: int
    op: str  # normalized name: relu, add, view, layer_norm, linear, input, output, other...
    inputs: list[int] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    param: float | None = None  # leaky_relu slope
    activation: str | None = None  # canonical activation name when op is an activation


@dataclass
class OpGraph:
    nodes: list[OpNode] = field(default_factory=list)
    source: str = "graph"  # graph, trace, order
    # the graph of a training-mode forward, when it reaches layers this one does not (Inception's aux head)
    training: OpGraph | None = None

    def add(self, op: str, inputs: list[int] | None = None, layers: list[str] | None = None,
            param: float | None = None) -> OpNode:
        node = OpNode(len(self.nodes), op, list(inputs or []), list(layers or []), param)
        act = ACTIVATION_OPS.get(op)
        if act is not None:
            node.activation = canonical_activation(act)
        self.nodes.append(node)
        return node

    def consumers(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                if i in out and n.id not in out[i]:
                    out[i].append(n.id)
        return out


def normalize_op(name: str) -> str:
    """'__iadd__' → 'iadd' → 'add'; 'relu_' → 'relu'; 'Tensor.view' → 'view'."""
    n = name.rsplit(".", 1)[-1].strip("_").lower()
    if n.endswith("_") and n[:-1]:
        n = n[:-1]
    return {"iadd": "add", "radd": "add", "imul": "mul", "rmul": "mul", "itruediv": "div",
            "truediv": "div", "isub": "sub", "getitem": "getitem", "multiply": "mul", "divide": "div",
            "true_divide": "div", "subtract": "sub", "matrix_multiply": "matmul"}.get(n, n)


def annotate(model: Model, graph: OpGraph) -> None:
    """Fill each layer's Context from the graph (layers whose context a loader already set are kept).

    Layers the graph never uses get ``on_inference_path = False`` and a reason; every layer whose activation
    stays unknown gets ``activation_unknown_reason``.
    """
    fold_weight_views(graph)
    consumers = graph.consumers()
    by_layer: dict[str, list[OpNode]] = {}
    for node in graph.nodes:
        for name in node.layers:
            by_layer.setdefault(name, []).append(node)
    input_ids = {n.id for n in graph.nodes if n.op == "input"}
    output_ids = {n.id for n in graph.nodes if n.op == "output"}
    first_layers = _first_layers(graph, consumers, input_ids)
    scale_vectors = frozenset(layer.name for layer in model.layers
                              if layer.kind in ("parameter", "vector") and len(layer.shape) == 1)
    for layer in model.layers:
        if layer.context.activation_source not in ("unknown",):
            continue
        nodes = by_layer.get(layer.name)
        if not nodes:
            layer.context.on_inference_path = False
            layer.context.activation_unknown_reason = NOT_ON_PATH
            continue
        ctx = _walk(graph, consumers, nodes[-1], output_ids, scale_vectors)
        ctx.activation_source = graph.source if ctx.activation is not None else "unknown"
        if layer.name in first_layers:
            ctx.position = "input"
        if layer.kind == "attention_in_proj":
            ctx.activation, ctx.residual, ctx.activation_source = "linear", False, graph.source
        if ctx.activation is not None:
            ctx.activation_unknown_reason = None
        layer.context = ctx
    if graph.training is not None:
        _annotate_training_only(model, graph.training, scale_vectors)
    mark_residual_branches(model)


def _annotate_training_only(model: Model, training: OpGraph, scale_vectors: frozenset[str]) -> None:
    """Context for the layers only a training-mode forward reaches, from that forward's graph; they keep
    ``on_inference_path = False`` (the report says they are off the inference path)."""
    fold_weight_views(training)
    consumers = training.consumers()
    output_ids = {n.id for n in training.nodes if n.op == "output"}
    by_layer: dict[str, list[OpNode]] = {}
    for node in training.nodes:
        for name in node.layers:
            by_layer.setdefault(name, []).append(node)
    for layer in model.layers:
        if layer.context.on_inference_path or layer.name not in by_layer:
            continue
        ctx = _walk(training, consumers, by_layer[layer.name][-1], output_ids, scale_vectors)
        ctx.on_inference_path = False
        ctx.activation_source = training.source if ctx.activation is not None else "unknown"
        if ctx.activation is not None:
            ctx.activation_unknown_reason = None
        else:
            ctx.activation_unknown_reason = (f"only a training-mode forward uses this weight, and there "
                                             f"{ctx.activation_unknown_reason}")
        layer.context = ctx


NOT_ON_PATH = ("not on the inference path: the forward pass never uses this weight (a training-only branch such "
               "as an auxiliary head, an MoE expert the example input's tokens were not routed to, or an unused "
               "layer)")


# Ops that apply a layer's weights to data: with no recorded input (a recurrent kernel fed by the state, a
# Keras layer spelled out by the loader) they are still the layer, not a view of its weight.
APPLIES_WEIGHTS = NORM_OPS | frozenset({
    "linear", "conv", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "embedding", "embedding_bag", "lstm", "gru", "rnn_tanh", "rnn_relu", "bilinear", "prelu",
    "multi_head_attention_forward", "matmul", "einsum", "bmm", "addmm", "convolution", "_convolution",
})


def fold_weight_views(graph: OpGraph) -> None:
    """Ops that only transform a weight (``self.weight.T``, weight standardization, weight norm, a cast)
    hand the weight's layers on to the op that applies it, so the walk starts where the data meets the weight.

    A node with layers and no data input (its inputs are parameters or other such nodes) is such a view.
    """
    consumers = graph.consumers()
    weight_only: set[int] = set()
    for node in graph.nodes:  # nodes are in execution order: a view's inputs come before it
        if node.op.startswith("param:"):
            weight_only.add(node.id)
            continue
        if not node.layers or node.op in ("input", "output"):
            continue
        if node.inputs and all(i in weight_only for i in node.inputs):
            weight_only.add(node.id)
        elif not node.inputs and node.op not in APPLIES_WEIGHTS:
            weight_only.add(node.id)  # a recorded pass sees the weight itself as no input: w.T, w.reshape
    for node in graph.nodes:
        if node.id not in weight_only or not node.layers or node.op.startswith("param:"):
            continue
        users = [graph.nodes[c] for c in consumers.get(node.id, []) if c not in weight_only]
        if not users:
            continue
        for user in users:
            user.layers.extend(x for x in node.layers if x not in user.layers)
        node.layers = []


def explain_unknown(model: Model, reason: str) -> None:
    """Give every layer whose activation is still unknown (and unexplained) ``reason``."""
    for layer in model.layers:
        ctx = layer.context
        if ctx.activation is None and not ctx.activation_unknown_reason:
            ctx.activation_unknown_reason = reason


DAMPING_SCALE = 0.1  # a layer scale below this (ConvNeXt/CaiT start at 1e-6..1e-4) silences its branch


def mark_residual_branches(model: Model) -> None:
    """Layers whose scale only scales a residual branch, not the signal through the model:

    - a layer whose output reaches only residual-branch ends through linear maps (attention's value
      projection → out_proj → add) scales the branch like the end itself does;
    - every layer of a branch whose end is multiplied by a small layer scale (mean |γ| < 0.1) before the
      add: the branch contributes almost nothing at initialization, whatever its inner scales.
    """
    by_name = {layer.name: layer for layer in model.layers}
    for layer in model.layers:
        ctx = layer.context
        if ctx.activation != "linear" or ctx.residual or not ctx.consumers:
            continue
        ends = [by_name.get(c) for c in ctx.consumers]
        if all(e is not None and e.context.residual and e.context.activation == "linear" for e in ends):
            ctx.residual_branch = True
    damped = {layer.name for layer in model.layers if layer.context.residual and _damped(layer, by_name)}
    changed = True
    while changed:  # walk the branch backwards: layers feeding only damped layers are damped too
        changed = False
        for layer in model.layers:
            ctx = layer.context
            if layer.name in damped or ctx.residual or not ctx.consumers:
                continue
            if all(c in damped for c in ctx.consumers):
                damped.add(layer.name)
                changed = True
    for name in damped:
        by_name[name].context.residual_branch = True


def _damped(layer, by_name) -> bool:
    for name in layer.context.scaled_by:
        st = by_name[name].weight.stats if name in by_name else None
        if st is not None and st.finite and math.sqrt(st.mean ** 2 + st.std ** 2) < DAMPING_SCALE:
            return True
    return False


def _descendants(consumers: dict[int, list[int]], start: int) -> set[int]:
    out: set[int] = {start}
    stack = [start]
    while stack:
        for c in consumers.get(stack.pop(), []):
            if c not in out:
                out.add(c)
                stack.append(c)
    return out


def _walk(graph: OpGraph, consumers: dict[int, list[int]], start: OpNode, output_ids: set[int],
          scale_vectors: frozenset[str] = frozenset()) -> Context:
    """Breadth-first from a layer's op through the ops that do not end its influence.

    ``scale_vectors``: per-channel parameters (layer scale, ReZero α) whose multiply passes the signal on.
    The first op after the layer that mixes or bends values decides the activation; shape-only ops, norms,
    constant multipliers and softcaps are looked through.
    """
    ctx = Context(activation_source="unknown")
    downstream = _descendants(consumers, start.id)
    activation: str | None = None
    param: float | None = None
    decided = False
    seen = {start.id}
    queue = deque((c, True, start.id) for c in consumers.get(start.id, []))

    def decide(name: str | None, value: float | None = None, literal: str | None = None) -> None:
        nonlocal activation, param, decided
        if direct and not decided:
            activation, param, decided = name, value, True
            if literal is not None:
                ctx.activation_literal = literal

    # 'direct' = only transparent or norm ops so far: an activation here is this layer's activation
    while queue:
        nid, direct, prev = queue.popleft()
        if nid in seen:
            continue
        seen.add(nid)
        node = graph.nodes[nid]
        nxt = consumers.get(nid, [])
        if node.op in SHAPE_QUERIES or node.op.startswith("param:"):
            continue  # reads the shape only: nothing of the layer's values goes on from here
        if direct and _is_attention_logit_input(node, prev, graph, consumers):
            ctx.attention_logits = True
            decide("linear")
            continue
        if nid in output_ids:
            if direct and not ctx.residual:
                ctx.position = "output"
                if activation is None:
                    decide("linear")
            continue
        if node.layers and node.op == "param_add":
            # a learned constant added to the signal (position embedding, a bias applied apart): looked through
            ctx.consumers.extend(x for x in node.layers if x not in ctx.consumers)
            queue.extend((c, direct, nid) for c in nxt)
            continue
        if node.layers and node.op == "mul" and set(node.layers) <= scale_vectors:
            if direct:
                ctx.scaled_by.extend(x for x in node.layers if x not in ctx.scaled_by)
            queue.extend((c, direct, nid) for c in nxt)
            continue
        if node.layers:
            ctx.consumers.extend(x for x in node.layers if x not in ctx.consumers)
            if node.op in NORM_OPS and direct:
                ctx.norm_after = True
                queue.extend((c, True, nid) for c in nxt)
            else:
                decide("linear")
            continue
        if node.op in TRANSPARENT:
            if direct and not decided and node.op in SELECTING:
                ctx.output_split = True  # what follows sees a part of the output (fused qkv, gate and up)
            queue.extend((c, direct, nid) for c in nxt)
            continue
        if node.op in NORM_OPS:
            if direct:
                ctx.norm_after = True
            queue.extend((c, direct, nid) for c in nxt)
            continue
        if (node.op in SCALAR_OPS and len(node.inputs) == 1) or node.op == "param_add":
            # (param_add without layers: a constant tensor the report does not list, like a bias buffer)
            # x·c, x/c, x + c: a constant multiplier (residual scale, attention scale) keeps the activation
            queue.extend((c, direct, nid) for c in nxt)
            continue
        if node.activation is not None:
            if direct and node.op == "tanh" and _is_softcap(graph, consumers, node):
                ctx.softcap = True  # c·tanh(x/c): near-linear for |x| ≪ c, it bounds logits
                queue.extend((c, direct, nid) for c in nxt)
                continue
            decide(node.activation, node.param)
            queue.extend((c, False, nid) for c in nxt)
            continue
        if node.op in ADD_OPS:
            # a residual add joins another path; x + f(x) inside an activation formula does not
            if direct and len(node.inputs) >= 2 and any(i not in downstream for i in node.inputs):
                ctx.residual = True
                decide("linear")
            elif direct and not decided:
                # every input is the layer's own values through transparent or constant-scaled ops (a rotary
                # embedding's x·cos + rotate(x)·sin): still linear in them, the next op decides
                queue.extend((c, True, nid) for c in nxt)
                continue
            queue.extend((c, False, nid) for c in nxt)
            continue
        if node.op in ("softmax", "log_softmax"):
            # a classifier's softmax: the reported activation is the softmax; it still ends at the output
            decide(canonical_activation(node.op) or "linear", literal=node.op)
            queue.extend((c, direct, nid) for c in nxt)
            continue
        if node.op in LINEAR_OPS:
            decide("linear")
            queue.extend((c, False, nid) for c in nxt)
            continue
        # an op initcheck does not know: the activation stays unknown unless decided elsewhere
        if direct and not decided:
            decided = True
            ctx.activation_unknown_reason = (f"the layer's output goes to '{node.op}', an operation initcheck "
                                             "does not know; pass --activation or an override for it")
        queue.extend((c, False, nid) for c in nxt)
    ctx.activation = activation
    ctx.activation_param = param
    if activation is None and not ctx.activation_unknown_reason:
        ctx.activation_unknown_reason = "no operation follows the layer's output in the graph"
    return ctx


def _is_softcap(graph: OpGraph, consumers: dict[int, list[int]], node: OpNode) -> bool:
    """``c·tanh(x / c)`` (Gemma 2 attention and final-logit softcaps): tanh between two constant scalings."""
    before = [graph.nodes[i] for i in node.inputs]
    after = [graph.nodes[c] for c in consumers.get(node.id, [])]
    scaled = lambda n: n.op in ("mul", "div") and len(n.inputs) == 1  # noqa: E731
    return bool(before) and all(scaled(n) for n in before) and bool(after) and all(scaled(n) for n in after)


def _is_attention_logit_input(node: OpNode, prev: int, graph: OpGraph | None = None,
                              consumers: dict[int, list[int]] | None = None) -> bool:
    """The query or key of an attention: q·kᵀ goes to a softmax, so the scale only sharpens attention."""
    if node.op == "scaled_dot_product_attention":
        return prev in node.inputs[:2]
    if node.op in ("matmul", "bmm", "einsum", "baddbmm") and graph is not None and consumers is not None:
        return _leads_to_softmax(graph, consumers, node.id)
    return False


_LOGIT_PATH = TRANSPARENT | {"div", "mul", "add", "sub", "masked_fill", "where", "float", "to", "tanh"}


def _leads_to_softmax(graph: OpGraph, consumers: dict[int, list[int]], nid: int, depth: int = 10) -> bool:
    frontier = [nid]
    for _ in range(depth):
        nxt = []
        for i in frontier:
            for c in consumers.get(i, []):
                op = graph.nodes[c].op
                if op in ("softmax", "log_softmax"):
                    return True
                if (op in _LOGIT_PATH or op in SHAPE_QUERIES) and not graph.nodes[c].layers:
                    nxt.append(c)
                elif op == "param_add" or (op in ("add", "mul") and graph.nodes[c].layers):
                    nxt.append(c)  # a relative-position bias or ALiBi added to the scores
        frontier = nxt
    return False


def _first_layers(graph: OpGraph, consumers: dict[int, list[int]], input_ids: set[int]) -> set[str]:
    """Layers reached from an input through shape-only ops (the model's input layers)."""
    found: set[str] = set()
    queue = deque(c for i in input_ids for c in consumers.get(i, []))
    seen: set[int] = set()
    while queue:
        nid = queue.popleft()
        if nid in seen:
            continue
        seen.add(nid)
        node = graph.nodes[nid]
        if node.layers:
            found.update(node.layers)
            continue
        if node.op in TRANSPARENT or node.op in NORM_OPS:
            queue.extend(consumers.get(nid, []))
    return found
