"""Layers of a live ``nn.Module`` (in memory, unpickled with --trust, or TorchScript), by module class."""

from __future__ import annotations

from ...model import Layer, Param
from ..torch_layout import layers_from_tensors, make_layer
from .tensors import assigner, is_float_tensor, storage_key, tensor_ref

_NORM_CLASSES = {
    "BatchNorm1d": "batchnorm", "BatchNorm2d": "batchnorm", "BatchNorm3d": "batchnorm", "SyncBatchNorm": "batchnorm",
    "LayerNorm": "layernorm", "GroupNorm": "groupnorm", "RMSNorm": "rmsnorm",
    "InstanceNorm1d": "instancenorm", "InstanceNorm2d": "instancenorm", "InstanceNorm3d": "instancenorm",
    "LocalResponseNorm": None,
}
_RECURRENT = {"LSTM": ("lstm", 4), "GRU": ("gru", 3), "RNN": ("rnn", 1)}


def module_class(module) -> str:
    """Class name, seeing through TorchScript (``original_name``)."""
    return getattr(module, "original_name", None) or type(module).__name__


def layers_from_module(root) -> list[Layer]:
    """One Layer per weight-bearing tensor group, in module definition order, tied tensors once."""
    from .device_stats import refuse_meta

    refuse_meta(root)  # a meta-device model has no values: one clear error, not an empty report
    seen: dict[tuple, Param] = {}
    layers: list[Layer] = []
    for mod_name, module in root.named_modules(remove_duplicate=False):
        own = [(n, p) for n, p in list(module.named_parameters(recurse=False))]
        own = [(n, p) for n, p in own if is_float_tensor(p)]
        if not own:
            continue
        fresh: dict[str, object] = {}
        for pname, p in own:
            full = f"{mod_name}.{pname}" if mod_name else pname
            key = storage_key(p)
            if key in seen:
                if full != seen[key].name and full not in seen[key].aliases:
                    seen[key].aliases.append(full)
                continue
            fresh[pname] = p
        if not fresh:
            continue
        made = _classify(mod_name, module, fresh)
        for layer in made:
            for prm in layer.params:
                key = storage_key(fresh[prm.name.rpartition(".")[2]])
                seen[key] = prm
        layers.extend(made)
    _on_device(layers)
    return layers


def _on_device(layers: list[Layer]) -> None:
    """Parameters on an accelerator get their statistics computed there (device_stats.py)."""
    from .device_stats import device_stats

    for layer in layers:
        for p in layer.params:
            t = p.native
            if t is not None and t.device.type not in ("cpu", "meta"):
                p.tensor.device_stats = (lambda per_unit, t=t, axis=p.tensor.unit_axis:
                                         device_stats(t, per_unit, axis))


def _p(mod_name: str, pname: str, role: str, t, unit_axis: int = 0) -> Param:
    full = f"{mod_name}.{pname}" if mod_name else pname
    return Param(full, role, tensor_ref(t, unit_axis), assign=assigner(t), native=t)


def _classify(mod_name: str, module, params: dict) -> list[Layer]:
    cls = module_class(module)
    w, b = params.get("weight"), params.get("bias")
    layers: list[Layer] = []
    used: set[str] = set()
    name = mod_name or "<root>"
    if cls in ("Linear", "NonDynamicallyQuantizableLinear", "LazyLinear") and w is not None:
        layers.append(make_layer(name, "linear", _p(mod_name, "weight", "weight", w),
                                 _p(mod_name, "bias", "bias", b) if b is not None else None))
        used |= {"weight", "bias"}
    elif cls == "Conv1D" and w is not None and w.dim() == 2:  # transformers' GPT-2 style (in, out)
        layers.append(make_layer(name, "linear_transposed", _p(mod_name, "weight", "weight", w),
                                 _p(mod_name, "bias", "bias", b) if b is not None else None,
                                 notes=["transformers Conv1D: weight stored (in, out)"]))
        used |= {"weight", "bias"}
    elif cls.startswith(("Conv", "LazyConv")) and w is not None and w.dim() in (3, 4, 5):
        groups = int(getattr(module, "groups", 1) or 1)
        d = w.dim() - 2
        transposed = "Transpose" in cls or bool(getattr(module, "transposed", False))
        in_ch = getattr(module, "in_channels", None)
        if transposed:
            kind = f"conv_transpose{d}d"
        elif groups > 1 and in_ch == groups:
            kind = f"depthwise_conv{d}d"
        else:
            kind = f"conv{d}d"
        attrs = {"groups": groups, "kernel_size": tuple(w.shape[2:]),
                 "stride": tuple(getattr(module, "stride", ()) or ())}
        layers.append(make_layer(name, kind, _p(mod_name, "weight", "weight", w),
                                 _p(mod_name, "bias", "bias", b) if b is not None else None, attrs))
        used |= {"weight", "bias"}
    elif cls in ("Embedding", "EmbeddingBag") and w is not None:
        layers.append(make_layer(name, "embedding", _p(mod_name, "weight", "weight", w),
                                 attrs={"padding_idx": getattr(module, "padding_idx", None)}))
        used |= {"weight"}
    elif cls == "Bilinear" and w is not None:
        layers.append(make_layer(name, "bilinear", _p(mod_name, "weight", "weight", w),
                                 _p(mod_name, "bias", "bias", b) if b is not None else None))
        used |= {"weight", "bias"}
    elif (cls in _NORM_CLASSES or "Norm" in cls) and w is not None and w.dim() == 1:
        kind = _NORM_CLASSES.get(cls) or ("rmsnorm" if "rms" in cls.lower() else
                                          "layernorm" if "layer" in cls.lower() else "norm")
        shift = _p(mod_name, "bias", "shift", b) if b is not None else None
        layers.append(make_layer(name, kind, _p(mod_name, "weight", "scale", w), shift))
        used |= {"weight", "bias"}
    elif cls in _RECURRENT or any(k.startswith("weight_ih_l") for k in params):
        cell, gates = _RECURRENT.get(cls, (None, None))
        sub = _infer(mod_name, params)
        for layer in sub:
            if cell and layer.kind.endswith(("_input", "_recurrent")):
                part = layer.kind.split("_", 1)[1]
                layer.kind = f"{cell}_{part}"
                layer.attrs.update({"gates": gates, "cell": cell})
                layer.kind_source = "module"
                layer.notes = []
                layer.fan_in, layer.fan_out = layer.shape[1], layer.shape[0] // gates
            elif cell and layer.kind.endswith("_projection"):  # LSTM proj_size: weight_hr (proj, H)
                layer.kind_source = "module"
                layer.notes = ["LSTM output projection (proj_size)"]
        layers.extend(sub)
        used |= set(params)
    elif cls == "MultiheadAttention":
        sub = _infer(mod_name, params)
        for layer in sub:
            layer.kind_source = "module"
        layers.extend(sub)
        used |= set(params)
    rest = {k: v for k, v in params.items() if k not in used}
    if rest:
        sub = _infer(mod_name, rest)
        for layer in sub:
            if layer.name == mod_name:
                layer.notes.append(f"module class {cls}: kind inferred from the weight's shape")
        layers.extend(sub)
    return layers


def _infer(mod_name: str, params: dict) -> list[Layer]:
    """Tensor-name inference for parameters the module's class does not explain."""
    full = {(f"{mod_name}.{k}" if mod_name else k): v for k, v in params.items()}
    layers = layers_from_tensors({k: tensor_ref(v) for k, v in full.items()})
    for layer in layers:
        for p in layer.params:
            p.assign, p.native = assigner(full[p.name]), full[p.name]
    return layers
