"""Layers of a live ``nn.Module`` (in memory, unpickled with --trust, or TorchScript), by module class."""

from __future__ import annotations

import numpy as np

from ...errors import InitcheckError
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
    """Class name, seeing through TorchScript (``original_name``) and the ``Parametrized<Class>``
    subclass ``torch.nn.utils.parametrize`` swaps in."""
    from torch.nn.utils import parametrize

    cls = type(module)
    if cls.__name__.startswith("Parametrized") and parametrize.is_parametrized(module):
        cls = cls.__mro__[1]
    return getattr(module, "original_name", None) or cls.__name__


def layers_from_module(root) -> list[Layer]:
    """One Layer per weight-bearing tensor group, in module definition order, tied tensors once."""
    from .device_stats import refuse_meta

    refuse_meta(root)  # a meta-device model has no values: one clear error, not an empty report
    seen: dict[tuple, Param] = {}
    layers: list[Layer] = []
    for mod_name, module in root.named_modules(remove_duplicate=False):
        if _is_parametrization_list(module):
            continue  # the originals: the owning module reports the effective weight instead
        own = [(n, p) for n, p in list(module.named_parameters(recurse=False))]
        effective = effective_parameters(module)
        own = [(n, p) for n, p in own if n not in effective.hidden] + list(effective.tensors.items())
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
                leaf = prm.name.rpartition(".")[2]
                if leaf in fresh:  # not an effective weight computed from stored originals (_infer)
                    seen[storage_key(fresh[leaf])] = prm
            effective.mark(layer)
        layers.extend(made)
    _on_device(layers)
    return layers


# ------------------------------------------------------------------------------ parametrized weights
_PARAMETRIZATION_KINDS = {"_WeightNorm": "weight_norm", "_SpectralNorm": "spectral_norm", "_Orthogonal": "orthogonal"}


def _is_parametrization_list(module) -> bool:
    from torch.nn.utils import parametrize

    return isinstance(module, parametrize.ParametrizationList)


class Effective:
    """A module's parametrized tensors as the module computes them (``torch.nn.utils.parametrize``, or the
    ``weight_norm``/``spectral_norm`` hooks of ``torch.nn.utils``): ``tensors`` by attribute name, the
    stored originals they replace (``hidden``), and per attribute a note and an assigner that writes
    through the parametrization (its ``right_inverse``)."""

    def __init__(self) -> None:
        self.tensors: dict[str, object] = {}
        self.hidden: set[str] = set()
        self.kinds: dict[str, str] = {}
        self.notes: dict[str, str] = {}
        self.assigners: dict[str, object] = {}

    def mark(self, layer: Layer) -> None:
        """Note the parametrization on the layer holding an effective tensor. Writes go through it
        (``assign``); ``native`` is None, since the computed tensor is no framework tensor a writer
        could change (statistics of an accelerator tensor are still computed where it lives)."""
        for p in layer.params:
            attr = p.name.rpartition(".")[2]
            if attr in self.tensors and p.native is self.tensors[attr]:
                layer.notes.append(self.notes[attr])
                layer.attrs["parametrization"] = self.kinds[attr]
                p.assign = self.assigners[attr]
                _stats_on_device(p, p.native)
                p.native = None


def effective_parameters(module) -> Effective:
    """The effective tensors of one module's parametrized attributes (none for most modules)."""
    from torch.nn.utils import parametrize

    eff = Effective()
    if parametrize.is_parametrized(module):
        for attr, plist in module.parametrizations.items():
            names = [type(p).__name__ for p in plist]
            kind = _PARAMETRIZATION_KINDS.get(names[0], "parametrized") if len(names) == 1 else "parametrized"
            eff.tensors[attr] = _spectral(plist) if kind == "spectral_norm" else _computed(module, attr, plist)
            eff.kinds[attr] = kind
            eff.notes[attr] = (f"{kind} parametrization ({', '.join(names)}): judged as its effective weight "
                               f"(what the module computes), not its stored parametrizations.{attr}.original*")
            eff.assigners[attr] = _through_parametrization(module, attr)
    _legacy_hooks(module, eff)
    return eff


def _computed(module, attr: str, plist):
    """getattr(module, attr) with the parametrizations in eval mode (spectral_norm would otherwise run a
    power iteration and update its buffers), gradients off; training flags restored."""
    import torch

    flags = [(m, m.training) for m in plist.modules()]
    try:
        plist.eval()
        with torch.no_grad():
            return getattr(module, attr).detach()
    finally:
        for m, flag in flags:
            m.training = flag


def _spectral(plist):
    """W/σ_max of a spectral_norm parametrization: where its power iteration converges (15 steps at
    registration leave σ a few % low), and the same value the tensor-only path computes."""
    import torch

    orig = plist.original
    with torch.no_grad():
        sigma = torch.linalg.matrix_norm(plist[0]._reshape_weight_to_matrix(orig).double(), ord=2)
        return (orig.double() / sigma).to(orig.dtype).detach()


def _through_parametrization(module, attr: str):
    import torch

    def assign(values: np.ndarray) -> None:
        current = getattr(module, attr)
        new = torch.as_tensor(np.asarray(values)).reshape(current.shape).to(dtype=current.dtype,
                                                                          device=current.device)
        try:
            with torch.no_grad():
                setattr(module, attr, new)  # parametrize calls each parametrization's right_inverse
        except (NotImplementedError, RuntimeError) as e:  # torch raises RuntimeError for a missing one
            why = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise InitcheckError(f"cannot write {attr} of {module_class(module)} through its parametrization: "
                                 f"{why}") from None

    return assign


def _legacy_hooks(module, eff: Effective) -> None:
    """``torch.nn.utils.weight_norm`` (params attr_g, attr_v) and ``spectral_norm`` (attr_orig) keep the
    effective weight as a plain attribute recomputed by a forward pre-hook; compute it from the hook."""
    from torch.nn.utils.spectral_norm import SpectralNorm
    from torch.nn.utils.weight_norm import WeightNorm

    import torch

    for hook in list(getattr(module, "_forward_pre_hooks", {}).values()):
        if isinstance(hook, WeightNorm):
            with torch.no_grad():
                eff.tensors[hook.name] = hook.compute_weight(module).detach()
            eff.hidden |= {f"{hook.name}_g", f"{hook.name}_v"}
            eff.kinds[hook.name] = "weight_norm"
            eff.notes[hook.name] = (f"weight_norm (torch.nn.utils.weight_norm, dim={hook.dim}): judged as its "
                                    f"effective weight g·v/‖v‖, not {hook.name}_g and {hook.name}_v")
            eff.assigners[hook.name] = _weight_norm_assigner(module, hook)
        elif isinstance(hook, SpectralNorm):
            # W/σ_max: what the hook's power iteration converges to (a fresh module's u, v are random
            # until its first training forward, so its eval-mode weight is no weight it trains with)
            orig = getattr(module, f"{hook.name}_orig")
            with torch.no_grad():
                sigma = torch.linalg.matrix_norm(hook.reshape_weight_to_matrix(orig).double(), ord=2)
                eff.tensors[hook.name] = (orig.double() / sigma).to(orig.dtype).detach()
            eff.hidden.add(f"{hook.name}_orig")
            eff.kinds[hook.name] = "spectral_norm"
            eff.notes[hook.name] = (f"spectral_norm (torch.nn.utils.spectral_norm): judged as its effective "
                                    f"weight W/σ (σ the largest singular value of {hook.name}_orig)")
            eff.assigners[hook.name] = assigner(getattr(module, f"{hook.name}_orig"))


def _weight_norm_assigner(module, hook):
    """Write w as weight_norm stores it: v = w, g = ‖w‖ over every axis but ``dim`` (the hook's own split)."""
    import torch

    g, v = getattr(module, f"{hook.name}_g"), getattr(module, f"{hook.name}_v")

    def assign(values: np.ndarray) -> None:
        w = torch.as_tensor(np.asarray(values)).reshape(v.shape).to(dtype=v.dtype, device=v.device)
        with torch.no_grad():
            v.copy_(w)
            g.copy_(torch.norm_except_dim(w, 2, hook.dim).to(g.dtype).reshape(g.shape))

    return assign


def _on_device(layers: list[Layer]) -> None:
    """Parameters on an accelerator get their statistics computed there (device_stats.py)."""
    for layer in layers:
        for p in layer.params:
            if p.native is not None:
                _stats_on_device(p, p.native)


def _stats_on_device(p: Param, t) -> None:
    from .device_stats import device_stats

    if t.device.type not in ("cpu", "meta"):
        p.tensor.device_stats = (lambda per_unit, t=t, axis=p.tensor.unit_axis: device_stats(t, per_unit, axis))


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
            if p.name in full:
                p.assign, p.native = assigner(full[p.name]), full[p.name]
            # else: an effective weight computed from stored originals (a torch.export program keeps a
            # parametrization's originals in a plain module): read-only, no framework tensor behind it
    return layers
