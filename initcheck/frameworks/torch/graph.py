"""Operator graphs of live PyTorch modules: torch.fx symbolic trace, else a recorded forward pass.

The recorded pass runs the model once in eval mode under ``torch.no_grad`` on a small synthetic input and
notes every torch function call (module and functional ops alike) through a TorchFunctionMode; an op
that receives a layer's weight tensor is that layer's node. The model's state is restored afterwards.
"""

from __future__ import annotations

import operator
from typing import Any

from ...graph import NORM_OPS, OpGraph, normalize_op
from ...model import Model

_ACT_MODULES = {
    "ReLU": "relu", "ReLU6": "relu6", "LeakyReLU": "leaky_relu", "PReLU": "prelu", "RReLU": "rrelu",
    "GELU": "gelu", "SiLU": "silu", "Mish": "mish", "ELU": "elu", "CELU": "celu", "SELU": "selu",
    "Softplus": "softplus", "Tanh": "tanh", "Sigmoid": "sigmoid", "Hardswish": "hardswish",
    "Hardsigmoid": "hardsigmoid", "Hardtanh": "hardtanh", "Softmax": "softmax", "LogSoftmax": "log_softmax",
    "Softsign": "softsign", "LogSigmoid": "logsigmoid", "GLU": "glu",
}
_NORM_MODULES = {"BatchNorm1d": "batch_norm", "BatchNorm2d": "batch_norm", "BatchNorm3d": "batch_norm",
                 "SyncBatchNorm": "batch_norm", "LayerNorm": "layer_norm", "GroupNorm": "group_norm",
                 "InstanceNorm1d": "instance_norm", "InstanceNorm2d": "instance_norm",
                 "InstanceNorm3d": "instance_norm", "RMSNorm": "rms_norm", "LocalResponseNorm": "local_response_norm"}
_SHAPE_MODULES = {"Dropout": "dropout", "Dropout1d": "dropout", "Dropout2d": "dropout", "Dropout3d": "dropout",
                  "AlphaDropout": "dropout", "Identity": "identity", "Flatten": "flatten", "Unflatten": "unflatten",
                  "MaxPool1d": "max_pool1d", "MaxPool2d": "max_pool2d", "MaxPool3d": "max_pool3d",
                  "AvgPool1d": "avg_pool1d", "AvgPool2d": "avg_pool2d", "AvgPool3d": "avg_pool3d",
                  "AdaptiveAvgPool1d": "adaptive_avg_pool1d", "AdaptiveAvgPool2d": "adaptive_avg_pool2d",
                  "AdaptiveAvgPool3d": "adaptive_avg_pool3d", "AdaptiveMaxPool2d": "adaptive_max_pool2d",
                  "ZeroPad2d": "pad", "ConstantPad2d": "pad", "ReflectionPad2d": "pad", "ReplicationPad2d": "pad",
                  "Upsample": "upsample", "PixelShuffle": "pixel_shuffle", "ChannelShuffle": "channel_shuffle"}


def activation_param(op: str, args: tuple, kwargs: dict) -> float | None:
    if op == "leaky_relu":
        if "negative_slope" in kwargs:
            return float(kwargs["negative_slope"])
        if len(args) > 1 and isinstance(args[1], (int, float)):
            return float(args[1])
        return 0.01
    return None


def _activation_op(op: str, kwargs: dict) -> str:
    if op == "gelu" and kwargs.get("approximate") == "tanh":
        return "gelu_new"
    return op


def _layer_owner(model: Model) -> dict[str, list[str]]:
    """Parameter name (and alias) → layer names using it."""
    owner: dict[str, list[str]] = {}
    for layer in model.layers:
        for p in layer.params:
            for n in [p.name, *p.aliases]:
                owner.setdefault(n, []).append(layer.name)
    return owner


# ------------------------------------------------------------------------------------------------ torch.fx
def fx_graph(module, model: Model) -> OpGraph:
    """The graph of ``torch.fx.symbolic_trace``; raises if the module cannot be traced symbolically."""
    import torch.fx

    class _Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):  # composite activations stay one node
            return type(m).__name__ in COMPOSITE_ACTIVATIONS or super().is_leaf_module(m, qualname)

    tracer = _Tracer()
    traced = torch.fx.GraphModule(tracer.root if hasattr(tracer, "root") else module, tracer.trace(module))
    owner = _layer_owner(model)
    layer_modules: dict[str, list[str]] = {}
    for pname, layers in owner.items():
        layer_modules.setdefault(pname.rpartition(".")[0], []).extend(layers)
    modules = dict(traced.named_modules())
    g = OpGraph(source="graph")
    ids: dict[str, int] = {}
    for node in traced.graph.nodes:
        inputs = [ids[a.name] for a in _flat_nodes(node.args, node.kwargs) if a.name in ids]
        layers: list[str] = []
        param = None
        if node.op == "placeholder":
            op = "input"
        elif node.op == "output":
            op = "output"
        elif node.op == "get_attr":
            op = "param"
            layers = []
            g_node = g.add(op, [], [])
            g_node.layers = []
            ids[node.name] = g_node.id
            g_node.param = None
            g_node.op = "param:" + str(node.target)
            continue
        elif node.op == "call_module":
            mod = modules.get(node.target)
            cls = getattr(mod, "original_name", None) or type(mod).__name__
            layers = list(dict.fromkeys(layer_modules.get(str(node.target), [])))
            if cls in COMPOSITE_ACTIVATIONS:
                op = COMPOSITE_ACTIVATIONS[cls]
            elif cls in _ACT_MODULES:
                op = _ACT_MODULES[cls]
                if op == "leaky_relu":
                    param = float(getattr(mod, "negative_slope", 0.01))
                if op == "gelu" and getattr(mod, "approximate", "none") == "tanh":
                    op = "gelu_new"
            elif cls in _NORM_MODULES:
                op = _NORM_MODULES[cls]
            elif cls in _SHAPE_MODULES:
                op = _SHAPE_MODULES[cls]
            elif "Norm" in cls and layers:
                op = "layer_norm"
            elif layers:
                op = "linear"
            else:
                op = "other"
        else:  # call_function / call_method
            target = node.target
            name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
            if target is operator.add or target is operator.iadd:
                name = "add"
            op = normalize_op(name)
            op = _activation_op(op, dict(node.kwargs))
            param = activation_param(op, tuple(node.args), dict(node.kwargs))
            for a in _flat_nodes(node.args, node.kwargs):
                if a.op == "get_attr":
                    layers.extend(owner.get(str(a.target), []))
            # an add of a parameter (position embedding) is not a residual connection
            if op == "add" and any(a.op == "get_attr" for a in _flat_nodes(node.args, node.kwargs)):
                op = "param_add"
        n = g.add(op, inputs, list(dict.fromkeys(layers)), param)
        ids[node.name] = n.id
    return g


def _flat_nodes(args: Any, kwargs: Any) -> list:
    import torch.fx

    out: list = []

    def visit(a: Any) -> None:
        if isinstance(a, torch.fx.Node):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            for x in a:
                visit(x)
        elif isinstance(a, dict):
            for x in a.values():
                visit(x)

    visit(args)
    visit(kwargs)
    return out


# --------------------------------------------------------------------------------------- recorded forward
# Activation modules written with primitive ops (transformers' NewGELU = 0.5·x·(1 + tanh(...)), QuickGELU =
# x·sigmoid(1.702x)): the pass records them as one activation instead of the mul/add/tanh they are made of.
COMPOSITE_ACTIVATIONS = {
    "NewGELUActivation": "gelu_new", "GELUTanh": "gelu_new", "PytorchGELUTanh": "gelu_new",
    "FastGELUActivation": "gelu_new", "AccurateGELUActivation": "gelu_new", "GELUActivation": "gelu",
    "QuickGELUActivation": "quick_gelu", "SiLUActivation": "silu", "MishActivation": "mish",
    "GELUPytorchTanh": "gelu_new", "ClippedGELUActivation": "gelu", "LaplaceActivation": "gelu",
    "LinearActivation": "identity", "ReLUSquaredActivation": "relu",
}


def traced_graph(module, model: Model, example: Any, example_kwargs: dict | None = None) -> OpGraph:
    """Run ``module(*example, **example_kwargs)`` once and record every torch op (see module docstring)."""
    import torch
    from torch.overrides import TorchFunctionMode

    owner = _layer_owner(model)
    param_layers: dict[int, list[str]] = {}
    for pname, p in list(module.named_parameters(remove_duplicate=False)):
        if pname in owner:
            param_layers.setdefault(id(p), []).extend(owner[pname])
    g = OpGraph(source="trace")
    producer: dict[int, int] = {}
    keep: list[Any] = []  # keeps recorded tensors alive so ids are not reused during the pass

    def tensors_in(obj: Any, depth: int = 0):
        if depth > 4:
            return
        if isinstance(obj, torch.Tensor):
            yield obj
        elif isinstance(obj, (list, tuple)):
            for x in obj:
                yield from tensors_in(x, depth + 1)
        elif isinstance(obj, dict):
            for x in obj.values():
                yield from tensors_in(x, depth + 1)
        elif hasattr(obj, "to_tuple"):  # transformers ModelOutput
            yield from tensors_in(obj.to_tuple(), depth + 1)

    def record(op: str, args, kwargs, out, layers=None, param=None):
        ins = []
        for t in tensors_in((args, kwargs)):
            if id(t) in producer and producer[id(t)] not in ins:
                ins.append(producer[id(t)])
        node = g.add(op, ins, layers, param)
        for t in tensors_in(out):
            producer[id(t)] = node.id
            keep.append(t)
        return node

    inside = [0]  # depth inside a composite activation module: its primitive ops are not recorded

    class Recorder(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if inside[0] or not any(True for _ in tensors_in(out)):
                return out
            name = getattr(func, "__name__", str(func))
            op = _activation_op(normalize_op(name), kwargs)
            layers: list[str] = []
            direct_param = False
            for t in tensors_in((args, kwargs)):
                if id(t) in param_layers:
                    layers.extend(param_layers[id(t)])
                    direct_param = True
            if op == "add" and direct_param:
                op = "param_add"
            record(op, args, kwargs, out, list(dict.fromkeys(layers)), activation_param(op, args, kwargs))
            return out

    def enter(mod, args):
        inside[0] += 1

    def leave_as(op):
        def leave(mod, args, out):
            inside[0] -= 1
            record(op, args, {}, out)
        return leave

    inputs = example if isinstance(example, tuple) else (example,)
    kwargs = example_kwargs or {}
    for t in tensors_in((inputs, kwargs)):
        node = g.add("input")
        producer[id(t)] = node.id
        keep.append(t)
    hooks = []
    for mod in module.modules():
        op = COMPOSITE_ACTIVATIONS.get(type(mod).__name__)
        if op is not None:
            hooks.append(mod.register_forward_pre_hook(enter))
            hooks.append(mod.register_forward_hook(leave_as(op)))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), Recorder():
            out = module(*inputs, **kwargs)
    finally:
        module.train(was_training)
        for h in hooks:
            h.remove()
    ins = sorted({producer[id(t)] for t in tensors_in(out) if id(t) in producer})
    g.add("output", ins)
    return g


def example_input(module, model: Model, input_shape: tuple[int, ...] | None = None):
    """Arguments for one forward pass: ``(args, kwargs)`` built from a small synthetic tensor for the
    first layer (or of ``input_shape``), fitted to the forward's signature (encoder-decoder models get
    ``decoder_input_ids``, ``nn.Transformer`` gets src and tgt)."""
    import torch

    x = _first_tensor(module, model, input_shape)
    config = getattr(module, "config", None)
    if getattr(config, "is_encoder_decoder", False) and x.dtype == torch.long:
        return (), {"input_ids": x, "decoder_input_ids": x[:, :4]}
    return _fit_signature(module, x), {}


def _first_tensor(module, model: Model, input_shape: tuple[int, ...] | None):
    import torch

    first = next((layer for layer in model.layers if layer.kind not in ("parameter", "vector", "bias")), None)
    config = getattr(module, "config", None)
    if input_shape is not None:
        if first is not None and first.kind == "embedding":
            return torch.randint(0, first.shape[0], input_shape)
        return torch.randn(*input_shape)
    if first is None:
        raise ValueError("no layer to infer an input from")
    gen = torch.Generator().manual_seed(0)
    if first.kind == "embedding":
        return torch.randint(0, first.shape[0], (1, 8), generator=gen)
    if first.kind in ("linear", "linear_transposed", "bilinear"):
        return torch.randn(2, first.fan_in if first.kind != "bilinear" else first.shape[1], generator=gen)
    if first.kind.startswith(("conv", "depthwise_conv")):
        d = len(first.shape) - 2
        channels = first.shape[1] * int(first.attrs.get("groups") or 1)
        if first.kind.startswith("conv_transpose"):
            channels = first.shape[0]
        size = int(getattr(config, "image_size", 0) or 0) or {1: 64, 2: 64, 3: 16}[d]
        return torch.randn(1, channels, *([size] * d), generator=gen)
    if first.kind.endswith("_input") or first.kind in ("attention_in_proj", "attention_proj"):
        # (batch, sequence, features): batch-first modules read it so, sequence-first ones as (seq, batch, E)
        return torch.randn(2, 5, first.shape[1], generator=gen)
    raise ValueError(f"cannot infer an input for a first layer of kind {first.kind}")


def _fit_signature(module, x) -> tuple:
    """As many copies of ``x`` as the forward has required positional parameters (src, tgt, ...)."""
    import inspect

    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return (x,)
    required = [p for p in params if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return tuple(x for _ in range(max(1, len(required))))


# ------------------------------------------------------------------------------------------- module order
def order_graph(module, model: Model) -> OpGraph | None:
    """For a plain ``nn.Sequential`` stack: its leaf modules in order, as a chain (source 'order')."""
    import torch

    if not isinstance(module, torch.nn.Sequential):
        return None
    owner = _layer_owner(model)
    layer_modules: dict[str, list[str]] = {}
    for pname, layers in owner.items():
        layer_modules.setdefault(pname.rpartition(".")[0], []).extend(layers)
    g = OpGraph(source="order")
    prev = g.add("input").id
    for name, mod in module.named_modules():
        if list(mod.children()):
            continue
        cls = type(mod).__name__
        layers = list(dict.fromkeys(layer_modules.get(name, [])))
        if cls in _ACT_MODULES:
            op = _ACT_MODULES[cls]
        elif cls in _NORM_MODULES:
            op = _NORM_MODULES[cls]
        elif cls in _SHAPE_MODULES:
            op = _SHAPE_MODULES[cls]
        elif layers:
            op = "linear"
        else:
            op = "other"
        param = float(getattr(mod, "negative_slope", 0.01)) if op == "leaky_relu" else None
        prev = g.add(op, [prev], layers, param).id
    g.add("output", [prev])
    return g


# ------------------------------------------------------------------------------ exported programs, TorchScript
def _aten_name(target: Any) -> str:
    """'aten.linear.default' / 'aten::linear' → 'linear'."""
    text = str(target).replace("::", ".")
    parts = [p for p in text.split(".") if p]
    if parts and parts[0] in ("aten", "prims", "_ops", "ops", "torch"):
        parts = parts[1:]
    return normalize_op(parts[0] if parts else text)


def exported_graph(ep, model: Model) -> OpGraph:
    """The graph of a ``torch.export`` ExportedProgram; parameters are lifted placeholders."""
    owner = _layer_owner(model)
    sig = ep.graph_signature
    param_of = dict(getattr(sig, "inputs_to_parameters", {}) or {})
    param_of.update(getattr(sig, "inputs_to_buffers", {}) or {})
    g = OpGraph(source="graph")
    ids: dict[str, int] = {}
    params: dict[str, str] = {}
    for node in ep.graph.nodes:
        if node.op == "placeholder":
            if node.name in param_of:
                params[node.name] = param_of[node.name]
                continue
            ids[node.name] = g.add("input").id
            continue
        args = _flat_nodes(node.args, node.kwargs)
        inputs = [ids[a.name] for a in args if a.name in ids]
        if node.op == "output":
            ids[node.name] = g.add("output", inputs).id
            continue
        layers = [name for a in args if a.name in params for name in owner.get(params[a.name], [])]
        op = _aten_name(node.target) if node.op == "call_function" else str(node.target)
        if op == "add" and any(a.name in params for a in args):
            op = "param_add"
        param = activation_param(op, tuple(node.args), dict(node.kwargs))
        ids[node.name] = g.add(op, inputs, list(dict.fromkeys(layers)), param).id
    return g


def torchscript_graph(module, model: Model) -> OpGraph:
    """The inlined graph of a TorchScript module; ``prim::GetAttr`` chains name the parameters."""
    owner = _layer_owner(model)
    graph = module.inlined_graph
    g = OpGraph(source="graph")
    producer: dict[str, int] = {}
    path: dict[str, str] = {}
    inputs = list(graph.inputs())
    if inputs:
        path[inputs[0].debugName()] = ""  # self
    for value in inputs[1:]:
        producer[value.debugName()] = g.add("input").id
    for node in graph.nodes():
        kind = node.kind()
        outs = list(node.outputs())
        ins = list(node.inputs())
        if kind == "prim::GetAttr":
            base = path.get(ins[0].debugName())
            if base is not None:
                path[outs[0].debugName()] = f"{base}.{node.s('name')}" if base else node.s("name")
            continue
        if kind in ("prim::Constant", "prim::ListConstruct", "prim::TupleConstruct", "prim::NumToTensor"):
            if kind in ("prim::ListConstruct", "prim::TupleConstruct"):  # pass tensors through lists
                srcs = [producer[i.debugName()] for i in ins if i.debugName() in producer]
                layer_names = [n for i in ins for n in owner.get(path.get(i.debugName(), "\0"), [])]
                if srcs or layer_names:
                    node_id = g.add("identity", srcs, layer_names).id
                    producer[outs[0].debugName()] = node_id
            continue
        layers = [n for i in ins for n in owner.get(path.get(i.debugName(), "\0"), [])]
        srcs = [producer[i.debugName()] for i in ins if i.debugName() in producer]
        for i in ins:  # parameters packed into a list (LSTM flat weights)
            src = producer.get(i.debugName())
            if src is not None and g.nodes[src].op == "identity" and g.nodes[src].layers:
                layers.extend(g.nodes[src].layers)
        op = _aten_name(kind)
        if op in ("convolution", "_convolution"):
            op = "conv2d"
        if op == "add" and any(path.get(i.debugName()) for i in ins):
            op = "param_add"
        node_id = g.add(op, srcs, list(dict.fromkeys(layers))).id
        for o in outs:
            producer[o.debugName()] = node_id
    outs = [producer[o.debugName()] for o in graph.outputs() if o.debugName() in producer]
    g.add("output", outs)
    return g


def torch_graph(module, model: Model, input_shape: tuple[int, ...] | None = None) -> tuple[OpGraph | None, str]:
    """Best available graph: fx, else a recorded forward pass; (None, why) when neither works."""
    import torch

    notes = []
    if isinstance(module, torch.jit.ScriptModule):
        try:
            return torchscript_graph(module, model), ""
        except Exception as e:  # pragma: no cover - TorchScript IR varies by version
            return None, f"TorchScript graph unreadable ({type(e).__name__})"
    if hasattr(module, "graph_signature") and hasattr(module, "graph"):
        return exported_graph(module, model), ""
    if input_shape is None and not isinstance(module, torch.jit.ScriptModule):
        try:
            return fx_graph(module, model), ""
        except Exception as e:  # fx cannot trace data-dependent control flow; fall back
            notes.append(f"torch.fx could not trace ({type(e).__name__})")
    try:
        args, kwargs = example_input(module, model, input_shape)
        return traced_graph(module, model, args, kwargs), "; ".join(notes)
    except Exception as e:
        first_line = str(e).splitlines()[0][:120] if str(e) else ""
        notes.append(f"a traced forward pass failed ({type(e).__name__}: {first_line}); pass --input-shape")
    graph = order_graph(module, model)
    if graph is not None:
        notes.append("context from module order")
        return graph, "; ".join(notes)
    return None, "; ".join(notes)


__all__ = ["torch_graph", "fx_graph", "traced_graph", "example_input", "NORM_OPS"]
