"""Layers in Keras' layouts: kinds and fans per layer class, without importing Keras.

Keras stores kernels with the output axis last: Dense ``(in, out)``, ConvND ``(k..., in/groups, filters)``,
ConvNDTranspose ``(k..., filters, in)``, DepthwiseConvND ``(k..., in, multiplier)``, recurrent kernels
``(in, gates·units)`` with the gates side by side, Embedding ``(input_dim, output_dim)`` and EinsumDense kernels
whose axes are each either contracted with the input or copied to the output. ``fan_in``/``fan_out`` follow
data flow (inputs feeding one output unit; outputs one input feeds), as for PyTorch (see ``docs/keras.md``);
``framework_fans`` are what ``keras.src.initializers.random_initializers.compute_fans`` gives for the stored
shape (with the einsum axes for EinsumDense, as Keras ≥ 3.15 passes them).
"""

from __future__ import annotations

import math
import re

from ...model import Layer, Param

# Gates per recurrent cell class: the kernel holds them side by side along the last axis.
RECURRENT_GATES = {"LSTMCell": ("lstm", 4), "GRUCell": ("gru", 3), "SimpleRNNCell": ("rnn", 1),
                   "ConvLSTMCell": ("conv_lstm", 4)}


def keras_compute_fans(shape: tuple[int, ...], input_axes: list[int] | None = None,
                       output_axes: list[int] | None = None) -> tuple[int, int]:
    """Keras 3.15 ``compute_fans``: (in, out) for 2-D; conv rule (k..., in, out) above; einsum axes if given."""
    shape = tuple(int(s) for s in shape)
    if input_axes is not None and output_axes is not None:
        return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def layer_fans(kind: str, shape: tuple[int, ...], attrs: dict) -> tuple[int | None, int | None]:
    """Data-flow fans of a kernel stored in Keras' layout (see the module docstring)."""
    if len(shape) < 2:
        return None, None
    if "input_axes" in attrs and "output_axes" in attrs:  # EinsumDense and the attention projections
        return keras_compute_fans(shape, attrs["input_axes"], attrs["output_axes"])
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    groups = int(attrs.get("groups") or 1)
    if kind == "embedding":
        # same convention as PyTorch's (num, dim) embedding: the tied output head maps dim → num
        return shape[1], shape[0]
    if kind.startswith("conv_transpose"):
        # (k..., filters, in): an output position sums every input channel × the taps that land on it
        from ..torch_layout import transposed_taps

        return shape[-1] * transposed_taps(shape[:-2], attrs.get("strides")), shape[-2] * receptive
    if kind.startswith("depthwise_conv"):
        # (k..., in, multiplier): an output channel sees one input channel's k taps only
        return receptive, shape[-1] * receptive
    if kind.endswith(("_input", "_recurrent")):
        gates = int(attrs.get("gates") or 1)
        return shape[-2] * receptive, (shape[-1] // gates) * receptive
    if kind.startswith("conv"):
        return shape[-2] * receptive, (shape[-1] // groups) * receptive
    return shape[-2] * receptive, shape[-1] * receptive  # linear and unknown kernels: (..., in, out)


def unit_axis(kind: str, shape: tuple[int, ...], attrs: dict) -> int:
    """The axis indexing output units (channels / neurons) in a Keras kernel."""
    if kind == "embedding":
        return 0  # one row per token, as PyTorch's (num, dim)
    if len(shape) < 2:
        return 0
    if kind.startswith(("conv_transpose", "depthwise_conv")):
        return -2  # filters (transpose) or input channel (depthwise: its `multiplier` outputs together)
    if "output_axes" in attrs and attrs["output_axes"]:
        return int(attrs["output_axes"][-1]) - len(shape)
    return -1


def make_layer(name: str, kind: str, weight: Param, bias: Param | None = None, attrs: dict | None = None,
               kind_source: str = "module", notes: list[str] | None = None) -> Layer:
    """A Layer with data-flow fans, Keras' own fans and the right unit axis for a Keras kernel."""
    attrs = dict(attrs or {})
    shape = weight.shape
    fan_in, fan_out = layer_fans(kind, shape, attrs)
    if len(shape) >= 2:
        framework = keras_compute_fans(shape, attrs.get("input_axes"), attrs.get("output_axes"))
    else:
        framework = None
    weight.tensor.unit_axis = unit_axis(kind, shape, attrs) if len(shape) else 0
    return Layer(name=name, kind=kind, weight=weight, bias=bias, fan_in=fan_in, fan_out=fan_out,
                 framework_fans=framework, kind_source=kind_source, notes=list(notes or []), attrs=attrs)


# ------------------------------------------------------------------------- from names and shapes only
_NORM_LEAVES = {"gamma": "scale", "beta": "shift", "scale": "scale"}
_BUFFER_LEAVES = {"moving_mean", "moving_variance", "count", "mean", "variance", "seed_generator_state",
                  "iterations", "seed"}


def kind_from_shape(leaf: str, shape: tuple[int, ...], layer_name: str) -> tuple[str, list[str]]:
    """Kind of a kernel known only by its name and shape (SavedModel, weights-only files)."""
    notes: list[str] = []
    base = layer_name.rsplit("/", 1)[-1].lower()
    if leaf == "depthwise_kernel":
        return f"depthwise_conv{len(shape) - 2}d", notes
    if leaf == "pointwise_kernel":
        return f"conv{len(shape) - 2}d", notes
    if leaf == "embeddings" or "embedding" in base:
        return "embedding", notes
    if leaf == "recurrent_kernel":
        return "rnn_recurrent", ["recurrent cell type unknown: fans taken per single gate"]
    if len(shape) == 2:
        return "linear", notes
    if len(shape) in (3, 4, 5):
        d = len(shape) - 2
        if re.search(r"transpose|deconv", base):
            return f"conv_transpose{d}d", ["name suggests a transposed convolution: layout (k..., filters, in)"]
        if re.search(r"depthwise", base):
            return f"depthwise_conv{d}d", notes
        notes.append("from names and shapes alone groups and depthwise kernels are unknown: taken as a "
                     "regular convolution (pass --model for exact fans)")
        return f"conv{d}d", notes
    return "parameter", ["weight of unusual rank: fans assume a (..., in, out) layout"]


def norm_kind(layer_name: str) -> str:
    base = layer_name.rsplit("/", 1)[-1].lower()
    if "batch" in base or base.startswith("bn") or "_bn" in base:
        return "batchnorm"
    if "rms" in base:
        return "rmsnorm"
    if "group" in base:
        return "groupnorm"
    return "layernorm"


def is_buffer(leaf: str) -> bool:
    """Non-trainable statistics and RNG state that are no initialization (BatchNorm moving stats...)."""
    return leaf in _BUFFER_LEAVES


def layers_from_named(entries: list[tuple[str, str, Param]], has_moving_stats: set[str] | None = None
                      ) -> list[Layer]:
    """Layers from ``(layer_path, leaf_name, Param)`` triples in file order, kinds from names and shapes.

    Leaves are Keras variable names (``kernel``, ``bias``, ``gamma``...) or, in ``.weights.h5`` files,
    positions (``0``, ``1``...): then the first tensor of a layer is its weight, a following 1-D tensor of
    the weight's output size its bias.
    """
    has_moving_stats = has_moving_stats or set()
    groups: dict[str, list[tuple[str, Param]]] = {}
    for layer_path, leaf, param in entries:
        if is_buffer(leaf):
            continue
        groups.setdefault(layer_path, []).append((leaf, param))
    layers: list[Layer] = []
    for layer_path, members in groups.items():
        by_leaf = dict(members)
        positional = all(leaf.isdigit() for leaf in by_leaf)
        if positional:
            layers.extend(_positional_group(layer_path, members, layer_path in has_moving_stats))
            continue
        used: set[str] = set()
        if "depthwise_kernel" in by_leaf and "pointwise_kernel" in by_leaf:
            dw, pw = by_leaf["depthwise_kernel"], by_leaf["pointwise_kernel"]
            d = len(dw.shape) - 2
            layers.append(make_layer(f"{layer_path}/depthwise", f"depthwise_conv{d}d", dw, None,
                                     kind_source="inferred"))
            layers.append(make_layer(f"{layer_path}/pointwise", f"conv{d}d", pw, by_leaf.get("bias"),
                                     kind_source="inferred"))
            used |= {"depthwise_kernel", "pointwise_kernel", "bias"}
        for leaf in ("kernel", "depthwise_kernel", "embeddings"):
            if leaf in by_leaf and leaf not in used:
                w = by_leaf[leaf]
                kind, notes = kind_from_shape(leaf, w.shape, layer_path)
                bias = by_leaf.get("bias") if "bias" not in used else None
                layers.append(make_layer(f"{layer_path}/{leaf}" if "recurrent_kernel" in by_leaf else layer_path,
                                         kind, w, bias, kind_source="inferred", notes=notes))
                used |= {leaf, "bias"}
        if "recurrent_kernel" in by_leaf:
            w = by_leaf["recurrent_kernel"]
            kind, notes = kind_from_shape("recurrent_kernel", w.shape, layer_path)
            if "kernel" in by_leaf:
                # the kernel above was a recurrent input kernel: re-label it and infer gates from the shapes
                units = w.shape[0]
                gates = max(1, w.shape[-1] // units)
                cell = {4: "lstm", 3: "gru"}.get(gates, "rnn")
                for layer in layers:
                    if layer.weight is by_leaf["kernel"]:
                        layer.kind = f"{cell}_input"
                        layer.attrs.update({"gates": gates, "units": units, "cell": cell})
                        layer.fan_in, layer.fan_out = layer_fans(layer.kind, layer.shape, layer.attrs)
                        layer.notes = [f"recurrent cell inferred as {cell.upper()} from {gates} gates"]
                kind = f"{cell}_recurrent"
                notes = [f"recurrent cell inferred as {cell.upper()} from {gates} gates"]
                layers.append(make_layer(f"{layer_path}/recurrent_kernel", kind, w, None,
                                         {"gates": gates, "units": units, "cell": cell},
                                         kind_source="inferred", notes=notes))
            else:
                layers.append(make_layer(f"{layer_path}/recurrent_kernel", kind, w, None, kind_source="inferred",
                                         notes=notes))
            used.add("recurrent_kernel")
        scale = next((by_leaf[k] for k in ("gamma", "scale") if k in by_leaf), None)
        shift = by_leaf.get("beta")
        if scale is not None or shift is not None:
            kind = "batchnorm" if layer_path in has_moving_stats else norm_kind(layer_path)
            if scale is not None:
                scale.role = "scale"
            if shift is not None:
                shift.role = "shift"
            weight = scale if scale is not None else shift
            layers.append(make_layer(layer_path, kind, weight, shift if scale is not None else None,
                                     kind_source="inferred"))
            used |= {"gamma", "scale", "beta"}
        for leaf, p in members:
            if leaf in used:
                continue
            kind = "bias" if leaf == "bias" else "parameter"
            layers.append(make_layer(f"{layer_path}/{leaf}", kind, p, None, kind_source="inferred",
                                     notes=["tensor of a layer initcheck does not know: fans assume (..., in, out)"]
                                     if len(p.shape) >= 2 else []))
    return layers


def _output_channels(kind: str, shape: tuple[int, ...]) -> int:
    """Length of the bias that goes with a kernel of this kind (Keras layouts)."""
    if kind.startswith("conv_transpose"):
        return shape[-2]
    if kind.startswith("depthwise_conv"):
        return shape[-2] * shape[-1]
    return shape[-1]


def _is_bias_of(shape: tuple[int, ...], kind: str, kernel: tuple[int, ...]) -> bool:
    """A tensor right after a kernel is its bias when it has the kernel's output size: one axis of the
    output channels, or the kernel's trailing axes (EinsumDense ``(hidden, heads, head_dim)`` has a
    ``(heads, head_dim)`` bias)."""
    if len(shape) == 1 and shape[0] == _output_channels(kind, kernel):
        return True
    if len(kernel) == 3 and tuple(shape) == (kernel[0], kernel[-1]):
        return True  # experts' batched kernel (experts, in, out) and its bias (experts, out)
    return 2 <= len(shape) < len(kernel) and tuple(kernel[-len(shape):]) == tuple(shape)


def _positional_group(layer_path: str, members: list[tuple[str, Param]], batchnorm: bool) -> list[Layer]:
    """A ``.weights.h5`` layer: variables by position only (0, 1, ...)."""
    params = [p for _, p in sorted(members, key=lambda m: int(m[0]))]
    base_name = layer_path.rsplit("/", 1)[-1].lower()
    if not batchnorm and len(params) == 1 and len(params[0].shape) == 1 and \
            not re.search(r"norm|(^|_)(bn|ln|gn)(_|$)", base_name):
        # one 1-D variable and no norm in the name: a LayerScale/gain vector, not a normalization's scale
        return [make_layer(f"{layer_path}", "vector", params[0], None, kind_source="inferred",
                           notes=["one 1-D variable: a scale vector (LayerScale, gain), not a normalization"])]
    if not batchnorm and re.fullmatch(r"normalization(_\d+)?", base_name) and len(params) == 2:
        # keras.layers.Normalization (its default name): adapted mean and variance, not a norm's scale/shift
        note = ["Keras Normalization statistics (mean, variance), known from the layer's default name"]
        return [make_layer(f"{layer_path}/{i}", "parameter", p, None, kind_source="inferred", notes=note)
                for i, p in enumerate(params)]
    if batchnorm or all(len(p.shape) == 1 for p in params):
        # gamma, beta (then moving mean and variance in a BatchNormalization)
        kind = "batchnorm" if batchnorm or len(params) == 4 else norm_kind(layer_path)
        params[0].role = "scale"
        shift = params[1] if len(params) > 1 else None
        if shift is not None:
            shift.role = "shift"
        note = ["variables by position: taken as scale, shift"]
        return [make_layer(layer_path, kind, params[0], shift, kind_source="inferred", notes=note)]
    layers: list[Layer] = []
    base = layer_path.rsplit("/", 1)[-1].lower()
    if "separable" in base and len(params) >= 2 and len(params[0].shape) >= 3 and len(params[1].shape) >= 3:
        # SeparableConv: depthwise kernel, pointwise kernel, bias (names by class in .weights.h5)
        d = len(params[0].shape) - 2
        bias = params[2] if len(params) > 2 and len(params[2].shape) == 1 else None
        if bias is not None:
            bias.role = "bias"
        note = ["weights-only file: kinds inferred from the layer's class name and shapes"]
        return [make_layer(f"{layer_path}/depthwise", f"depthwise_conv{d}d", params[0], None, kind_source="inferred",
                           notes=note),
                make_layer(f"{layer_path}/pointwise", f"conv{d}d", params[1], bias, kind_source="inferred",
                           notes=note)]
    # several tensors of one shape and no bias of their width in the layer: a custom layer's parameters
    # (relative-position tables, per-head biases), not kernels, which come one per layer with their bias
    shapes = [tuple(p.shape) for p in params]
    widths = {sh[0] for sh in shapes if len(sh) == 1}
    free = {id(p) for p, sh in zip(params, shapes)
            if len(sh) >= 2 and shapes.count(sh) >= 2 and sh[-1] not in widths}
    if free:
        note = ["weights-only file: several tensors of one shape and no bias, taken as free parameters"]
        layers.extend(make_layer(f"{layer_path}/{p.name.rsplit('/', 1)[-1]}", "parameter", p, None,
                                 kind_source="inferred", notes=note) for p in params if id(p) in free)
        params = [p for p in params if id(p) not in free]
    i = 0
    while i < len(params):
        w = params[i]
        i += 1
        bias = None
        kind, notes = kind_from_shape("kernel", w.shape, layer_path) if len(w.shape) >= 2 else ("vector", [])
        if len(w.shape) >= 2 and i < len(params) and _is_bias_of(params[i].shape, kind, w.shape):
            bias = params[i]
            bias.role = "bias"
            i += 1
        name = layer_path if i >= len(params) and not layers else f"{layer_path}/{w.name.rsplit('/', 1)[-1]}"
        layers.append(make_layer(name, kind, w, bias, kind_source="inferred",
                                 notes=notes + ["weights-only file: kind inferred from the shape "
                                                "(pass --model for exact kinds and context)"]))
    return layers
