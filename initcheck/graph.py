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
# Ops linear in the layer's output: no nonlinearity follows before them, so the layer feeds a linear map.
LINEAR_OPS = frozenset({"matmul", "bmm", "mm", "einsum", "scaled_dot_product_attention", "mul", "div",
                        "baddbmm", "addmm", "multi_head_attention_forward", "softmax", "log_softmax",
                        "linear", "conv1d", "conv2d", "conv3d", "truediv", "neg", "sub", "rsub"})
NORM_OPS = frozenset({"batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm", "normalize",
                      "local_response_norm"})
ADD_OPS = frozenset({"add", "iadd", "radd"})
ACTIVATION_OPS = {
    "relu": "relu", "relu6": "relu", "hardtanh": "tanh", "leaky_relu": "leaky_relu", "prelu": "leaky_relu",
    "rrelu": "leaky_relu", "gelu": "gelu", "silu": "silu", "mish": "mish", "elu": "elu", "celu": "elu",
    "selu": "selu", "softplus": "softplus", "tanh": "tanh", "sigmoid": "sigmoid", "hardswish": "hardswish",
    "hardsigmoid": "sigmoid", "logsigmoid": "sigmoid", "softsign": "tanh", "tanhshrink": "linear",
    "glu": "sigmoid", "swish": "silu", "quick_gelu": "gelu", "gelu_new": "gelu_tanh", "exp": "linear",
}


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
            "truediv": "div", "isub": "sub", "getitem": "getitem"}.get(n, n)


def annotate(model: Model, graph: OpGraph) -> None:
    """Fill each layer's Context from the graph (layers whose context a loader already set are kept)."""
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
            continue
        ctx = _walk(graph, consumers, nodes[-1], output_ids, scale_vectors)
        ctx.activation_source = graph.source if ctx.activation is not None else "unknown"
        if layer.name in first_layers:
            ctx.position = "input"
        if layer.kind == "attention_in_proj":
            ctx.activation, ctx.residual, ctx.activation_source = "linear", False, graph.source
        layer.context = ctx
    mark_residual_branches(model)


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
    """
    ctx = Context(activation_source="unknown")
    downstream = _descendants(consumers, start.id)
    activation: str | None = None
    param: float | None = None
    decided = False
    seen = {start.id}
    queue = deque((c, True, start.id) for c in consumers.get(start.id, []))
    # 'direct' = only transparent or norm ops so far: an activation here is this layer's activation
    while queue:
        nid, direct, prev = queue.popleft()
        if nid in seen:
            continue
        seen.add(nid)
        node = graph.nodes[nid]
        if direct and _is_attention_logit_input(node, prev, graph, consumers):
            ctx.attention_logits = True
            if not decided:
                activation, decided = "linear", True
            continue
        if nid in output_ids:
            if direct and not ctx.residual:
                ctx.position = "output"
                if activation is None and not decided:
                    activation, decided = "linear", True
            continue
        if node.layers and node.op == "mul" and set(node.layers) <= scale_vectors:
            if direct:
                ctx.scaled_by.extend(x for x in node.layers if x not in ctx.scaled_by)
            queue.extend((c, direct, nid) for c in consumers.get(nid, []))
            continue
        if node.layers:
            ctx.consumers.extend(x for x in node.layers if x not in ctx.consumers)
            if node.op in NORM_OPS and direct:
                ctx.norm_after = True
                queue.extend((c, True, nid) for c in consumers.get(nid, []))
            elif direct and not decided:
                activation, decided = "linear", True
            continue
        if node.op in TRANSPARENT:
            queue.extend((c, direct, nid) for c in consumers.get(nid, []))
            continue
        if node.op in NORM_OPS:
            if direct:
                ctx.norm_after = True
            queue.extend((c, direct, nid) for c in consumers.get(nid, []))
            continue
        if node.activation is not None:
            if direct and not decided:
                activation, param, decided = node.activation, node.param, True
            queue.extend((c, False, nid) for c in consumers.get(nid, []))
            continue
        if node.op in ADD_OPS:
            # a residual add joins another path; x + f(x) inside an activation formula does not
            if direct and len(node.inputs) >= 2 and any(i not in downstream for i in node.inputs):
                ctx.residual = True
                if not decided:
                    activation, decided = "linear", True
            queue.extend((c, False, nid) for c in consumers.get(nid, []))
            continue
        if node.op in ("softmax", "log_softmax"):
            # a classifier's softmax: linear for the layer's scale, and it still ends at the output
            if direct and not decided:
                activation, decided = "linear", True
            queue.extend((c, direct, nid) for c in consumers.get(nid, []))
            continue
        if node.op in LINEAR_OPS:
            if direct and not decided:
                activation, decided = "linear", True
            queue.extend((c, False, nid) for c in consumers.get(nid, []))
            continue
        # an op initcheck does not know: the activation stays unknown unless decided elsewhere
        if direct and not decided:
            decided = True
        queue.extend((c, False, nid) for c in consumers.get(nid, []))
    ctx.activation = activation
    ctx.activation_param = param
    return ctx


def _is_attention_logit_input(node: OpNode, prev: int, graph: OpGraph | None = None,
                              consumers: dict[int, list[int]] | None = None) -> bool:
    """The query or key of an attention: q·kᵀ goes to a softmax, so the scale only sharpens attention."""
    if node.op == "scaled_dot_product_attention":
        return prev in node.inputs[:2]
    if node.op in ("matmul", "bmm", "einsum", "baddbmm") and graph is not None and consumers is not None:
        return _leads_to_softmax(graph, consumers, node.id)
    return False


_LOGIT_PATH = TRANSPARENT | {"div", "mul", "add", "sub", "masked_fill", "where", "float", "to"}


def _leads_to_softmax(graph: OpGraph, consumers: dict[int, list[int]], nid: int, depth: int = 6) -> bool:
    frontier = [nid]
    for _ in range(depth):
        nxt = []
        for i in frontier:
            for c in consumers.get(i, []):
                op = graph.nodes[c].op
                if op in ("softmax", "log_softmax"):
                    return True
                if op in _LOGIT_PATH and not graph.nodes[c].layers:
                    nxt.append(c)
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
