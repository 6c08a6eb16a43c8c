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
                  "Upsample": "upsample", "PixelShuffle": "pixel_shuffle", "ChannelShuffle": "channel_shuffle",
                  "Unfold": "unfold", "Fold": "fold", "PixelUnshuffle": "pixel_unshuffle",
                  "UpsamplingNearest2d": "upsample", "UpsamplingBilinear2d": "upsample", "ZeroPad1d": "pad",
                  "ZeroPad3d": "pad", "ConstantPad1d": "pad", "ConstantPad3d": "pad", "ReflectionPad1d": "pad",
                  "ReplicationPad1d": "pad", "CircularPad2d": "pad", "AdaptiveMaxPool1d": "adaptive_max_pool1d",
                  "AdaptiveMaxPool3d": "adaptive_max_pool3d", "LPPool2d": "lp_pool2d"}


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
        def is_leaf_module(self, m, qualname):  # composite activations and custom norms stay one node
            return (type(m).__name__ in COMPOSITE_ACTIVATIONS or is_norm_module(m)
                    or super().is_leaf_module(m, qualname))

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
            # a leaf module applies its children's weights too (nn.MultiheadAttention's out_proj)
            prefix = f"{node.target}."
            layers = list(dict.fromkeys(layer_modules.get(str(node.target), []) + [
                x for path, names in layer_modules.items() if path.startswith(prefix) for x in names]))
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
            elif is_norm_module(mod):
                op = norm_op(cls)
            elif layers:
                op = "linear"
            else:
                op = "other"
        else:  # call_function / call_method
            target = node.target
            name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
            if target is operator.add or target is operator.iadd:
                name = "add"
            if isinstance(target, type) and issubclass(target, (tuple, list, dict)):
                name = "identity"  # packing outputs (torchvision's InceptionOutputs namedtuple) moves no values
            if target is getattr and len(node.args) > 1 and node.args[1] in ("T", "mT", "H", "mH"):
                name = "transpose"  # x.T is a view of the values; x.shape and x.dtype stay shape queries
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


def is_norm_module(mod) -> bool:
    """A normalization written as its own module (RMSNorm variants, LayerNorm2d...): one op, not its arithmetic.

    Its class name says Norm and it holds its own parameters and no submodules (timm's BatchNormAct2d, which
    wraps an activation, is traced through instead).
    """
    cls = type(mod).__name__
    if "Norm" not in cls and "RMS" not in cls:
        return False
    if any(True for _ in mod.children()):
        return False
    return any(True for _ in mod.parameters(recurse=False))


def norm_op(cls: str) -> str:
    if cls in _NORM_MODULES:
        return _NORM_MODULES[cls]
    low = cls.lower()
    return "rms_norm" if "rms" in low else "batch_norm" if "batch" in low else "group_norm" if "group" in low \
        else "layer_norm"


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


def tensors_in(obj: Any, depth: int = 0):
    """The tensors inside a module's output: nested lists, tuples, dicts, transformers ModelOutputs."""
    import torch

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

    def leave_as(op, layers=None):
        def leave(mod, args, out):
            inside[0] -= 1
            record(op, args, {}, out, layers)
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
        layers = None
        if op is None and is_norm_module(mod) and not type(mod).__module__.startswith("torch.nn"):
            op = norm_op(type(mod).__name__)  # its arithmetic (pow, mean, rsqrt) recorded as one norm
            layers = list(dict.fromkeys(n for p in mod.parameters(recurse=False) for n in param_layers.get(id(p), [])))
        if op is not None:
            hooks.append(mod.register_forward_pre_hook(enter))
            hooks.append(mod.register_forward_hook(leave_as(op, layers)))
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
    """Arguments for one forward pass: the first of :func:`example_inputs` (``(args, kwargs)``)."""
    for args, kwargs, _ in example_inputs(module, model, input_shape):
        return args, kwargs
    raise ValueError("no layer to infer an input from")


# forward parameters of transformers models that take the model's main input
_INPUT_NAMES = ("input_ids", "input_values", "input_features", "pixel_values", "inputs_embeds", "x", "input",
                "inputs", "hidden_states", "src", "image", "images", "audio", "waveform", "spectrogram")


def example_inputs(module, model: Model, input_shape: tuple[int, ...] | None = None):
    """Candidate arguments for one forward pass, most likely first: ``(args, kwargs, description)``.

    Read from the model itself: the first layer's kind and channels; a fixed image size from the config
    (``image_size``, int or list) or timm's ``pretrained_cfg['input_size']``; an audio front end (conv1d over a
    waveform when it takes one channel, over mel frames otherwise, Whisper's ``2·max_source_positions``
    frames); the forward's own parameter name (``input_values``, ``input_features``, ``pixel_values``) and,
    for encoder-decoder models, ``decoder_input_ids``. ``input_shape`` (``--input-shape``) overrides the shape.
    """
    import torch

    first = _input_layer(model)
    gen = torch.Generator().manual_seed(0)
    config = getattr(module, "config", None)
    shapes = _candidate_shapes(module, model, first, input_shape)
    if not shapes:
        raise ValueError(f"cannot infer an input for a first layer of kind {first.kind if first else None}")
    name = _input_name(module)
    for shape, is_ids in shapes:
        if is_ids:
            x = torch.randint(0, max(2, first.shape[0]) if first is not None else 2, shape, generator=gen)
        else:
            x = torch.randn(*shape, generator=gen)
        kwargs: dict = {}
        if getattr(config, "is_encoder_decoder", False):
            start = getattr(config, "decoder_start_token_id", None)
            start = start if isinstance(start, int) else 0
            kwargs["decoder_input_ids"] = torch.full((shape[0], 4), start, dtype=torch.long)
        if name == "pixel_values" and "input_ids" in _required_parameters(module):
            # image-and-text models (Grounding DINO's text prompt): a few token ids beside the image
            vocab = getattr(config, "vocab_size", None) or getattr(getattr(config, "text_config", None), "vocab_size", None)
            kwargs["input_ids"] = torch.randint(0, vocab if isinstance(vocab, int) and vocab > 1 else 2,
                                                (shape[0], 8), generator=gen)
        if name is not None and (kwargs or name != _positional_name(module)):
            yield (), {name: x, **kwargs}, f"{name} of shape {tuple(shape)}"
        elif kwargs:
            yield (x,), kwargs, f"input of shape {tuple(shape)}"
        else:
            yield _fit_signature(module, x), {}, f"input of shape {tuple(shape)}"


def _required_parameters(module) -> list[str]:
    """The forward's parameters without a default."""
    import inspect

    try:
        params = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


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


def _input_layer(model: Model):
    return next((layer for layer in model.layers if layer.kind not in ("parameter", "vector", "bias")
                 and not layer.kind.endswith("norm")), None)


def _input_name(module) -> str | None:
    """The forward's parameter for the main input when it is one transformers names (None: positional)."""
    import inspect

    try:
        params = list(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        return None
    return next((p for p in params if p in _INPUT_NAMES[:5]), None)


def _positional_name(module) -> str | None:
    import inspect

    try:
        params = list(inspect.signature(module.forward).parameters)
    except (TypeError, ValueError):
        return None
    return params[0] if params else None


def _config_size(config, module) -> tuple[int, ...] | None:
    """A fixed spatial size the model declares: ``config.image_size`` (int or list), timm's input_size."""
    size = getattr(config, "image_size", None) or getattr(getattr(config, "vision_config", None), "image_size", None)
    if isinstance(size, (list, tuple)) and size and all(isinstance(v, int) for v in size):
        return tuple(size[-2:]) if len(size) >= 2 else (size[0], size[0])
    if isinstance(size, int) and size > 0:
        return (size, size)
    cfg = getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None)
    if isinstance(cfg, dict) and isinstance(cfg.get("input_size"), (list, tuple)) and len(cfg["input_size"]) >= 3:
        return tuple(int(v) for v in cfg["input_size"][1:])
    embed = getattr(module, "patch_embed", None)
    img = getattr(embed, "img_size", None)
    if isinstance(img, (list, tuple)) and len(img) == 2:
        return tuple(int(v) for v in img)
    return None


def _candidate_shapes(module, model: Model, first, input_shape) -> list[tuple[tuple[int, ...], bool]]:
    """(shape, is_token_ids) candidates in the order tried."""
    is_ids = first is not None and first.kind == "embedding"
    if input_shape is not None:
        return [(tuple(input_shape), is_ids)]
    if first is None:
        return []
    config = getattr(module, "config", None)
    if is_ids:
        return [((1, 8), True), ((1, 64), True)]
    if first.kind in ("linear", "linear_transposed", "bilinear"):
        width = first.fan_in if first.kind != "bilinear" else first.shape[1]
        return [((2, width), False), ((1, 8, width), False)]
    if first.kind.startswith(("conv", "depthwise_conv")):
        d = len(first.shape) - 2
        channels = first.shape[1] * int(first.attrs.get("groups") or 1)
        if first.kind.startswith("conv_transpose"):
            channels = first.shape[0]
        if d == 1:
            return _audio_shapes(config, channels)
        out = []
        fixed = _config_size(config, module)
        if fixed is not None and len(fixed) == d:
            out.append(((1, channels, *fixed), False))
        for size in ({2: (64, 224), 3: (16, 32)}[d] if d in (2, 3) else (16,)):
            shape = (1, channels, *([size] * d))
            if (shape, False) not in out:
                out.append((shape, False))
        return out
    if first.kind.endswith("_input") or first.kind in ("attention_in_proj", "attention_proj"):
        # (batch, sequence, features): batch-first modules read it so, sequence-first ones as (seq, batch, E)
        return [((2, 5, first.shape[1]), False)]
    return []


def _audio_shapes(config, channels: int) -> list[tuple[tuple[int, ...], bool]]:
    """conv1d front ends: a raw waveform (one channel: wav2vec2, HuBERT) or mel frames (Whisper, Speech2Text)."""
    if channels == 1:
        return [((1, 16000), False), ((1, 1, 16000), False)]
    frames = int(getattr(config, "max_source_positions", 0) or 0) * 2  # Whisper: stride-2 conv to positions
    out = [((1, channels, frames), False)] if frames else []
    out += [((1, channels, 64), False), ((1, 64, channels), False), ((1, 3000, channels), False)]
    return out


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


def training_fx_graph(module, model: Model, graph: OpGraph) -> OpGraph | None:
    """The fx graph of ``module`` in training mode, when the eval-mode ``graph`` leaves layers unused and
    the training-mode trace reaches some of them (Inception's auxiliary head runs under ``if self.training``).

    fx traces symbolically: nothing is computed, so no batch-norm statistic moves; every submodule's mode is
    restored afterwards. None when nothing is missing, the trace fails or it reaches no more layers.
    """
    used = {name for node in graph.nodes for name in node.layers}
    missing = {layer.name for layer in model.layers} - used
    if not missing:
        return None
    modes = [(m, m.training) for m in module.modules()]
    try:
        module.train()
        training = fx_graph(module, model)
    except Exception:  # noqa: BLE001 - a training-only branch fx cannot trace stays off the inference path
        return None
    finally:
        for m, mode in modes:
            m.training = mode
    reached = {name for node in training.nodes for name in node.layers}
    return training if reached & missing else None


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
            graph = fx_graph(module, model)
            graph.training = training_fx_graph(module, model, graph)
            return graph, ""
        except Exception as e:  # fx cannot trace data-dependent control flow; fall back
            notes.append(f"torch.fx could not trace ({type(e).__name__})")
    failures = []
    try:
        for args, kwargs, what in example_inputs(module, model, input_shape):
            try:
                return traced_graph(module, model, args, kwargs), "; ".join(notes)
            except Exception as e:  # the model's own error for this input: try the next candidate
                first_line = str(e).splitlines()[0][:120] if str(e) else ""
                failures.append(f"{what}: {type(e).__name__}: {first_line}")
    except ValueError as e:
        failures.append(str(e))
    if failures:
        hint = ("pass --input-shape with the shape the model takes" if input_shape is None
                else "check --input-shape")
        notes.append(f"a traced forward pass failed ({'; '.join(failures[:3])}); {hint}")
    graph = order_graph(module, model)
    if graph is not None:
        notes.append("context from module order")
        return graph, "; ".join(notes)
    return None, "; ".join(notes)


__all__ = ["torch_graph", "fx_graph", "traced_graph", "example_input", "NORM_OPS"]
