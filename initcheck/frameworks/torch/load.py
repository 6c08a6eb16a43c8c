"""Load PyTorch files safely: state_dicts and checkpoints with ``weights_only=True``; programs only with trust.

Formats: zip and legacy ``torch.save`` files (state_dict or checkpoint dict), ``pytorch_model*.bin`` shards,
whole pickled modules, TorchScript archives and ``torch.export`` programs (the last three execute code when
loaded and need ``trust=True``).
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from typing import Any

from ...errors import InitcheckError, MissingDependencyError, UntrustedFormatError
from ...model import Model
from ..torch_layout import layers_from_tensors, parametrization_notes
from .modules import layers_from_module
from .tensors import assigner, is_float_tensor, storage_key, tensor_ref

# Keys under which training scripts nest the model's tensors, most specific first.
MODEL_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "module", "net", "network",
              "model_ema", "ema_state_dict", "params", "weights", "generator", "student")
SKIP_KEY = re.compile(r"optim|scheduler|scaler|lr_|sched|grad", re.I)
WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.", "_forward_module.", "net.")
HOLDER_PREFIXES = ("model.", "net.")  # stripped once, and only inside a checkpoint dict


def import_torch():
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("this is a PyTorch file and torch is not installed: "
                                     "pip install 'initcheck[torch]'") from None
    return torch


def load_torch_file(path: str, fmt: str, trust: bool = False) -> Model:
    """Load a PyTorch file sniffed as ``fmt`` (torch_zip, torch_legacy, pickle, torchscript, exported_program)."""
    if fmt == "torchscript":
        _require_trust(path, "TorchScript archive", trust)
        torch = import_torch()
        module = _call(path, lambda: torch.jit.load(path, map_location="cpu"))
        return model_from_module(module, path, "torchscript")
    if fmt == "exported_program":
        _require_trust(path, "torch.export program (.pt2)", trust)
        torch = import_torch()
        ep = _call(path, lambda: torch.export.load(path))
        module = _call(path, ep.module)
        restore_exported_classes(ep, module)
        return model_from_module(module, path, "exported_program", handle=ep)
    torch = import_torch()
    obj = _torch_load(torch, path, fmt, trust)
    return model_from_object(obj, path, trust)


def restore_exported_classes(ep, module) -> None:
    """``ExportedProgram.module()`` keeps parameter names but turns every submodule into a plain
    ``Module``. The graph still records each call's original class (``nn_module_stack``) and each
    convolution's ``groups``/``transposed`` arguments: put them back as ``original_name`` and attributes,
    so the module walker classifies layers exactly as for the live model."""
    classes: dict[str, str] = {}
    conv_args: dict[str, dict] = {}
    params = dict(getattr(ep.graph_signature, "inputs_to_parameters", {}) or {})
    for node in ep.graph.nodes:
        for entry in (node.meta.get("nn_module_stack") or {}).values():
            try:
                fqn, cls = entry
            except (TypeError, ValueError):
                continue
            cls_name = cls if isinstance(cls, str) else getattr(cls, "__name__", str(cls))
            classes[str(fqn)] = cls_name.rsplit(".", 1)[-1]
        schema = getattr(node.target, "_schema", None)
        if node.op != "call_function" or schema is None or "conv" not in schema.name:
            continue
        names = [a.name for a in schema.arguments]
        if "weight" not in names:
            continue

        def arg(name, default=None):
            if name in node.kwargs:
                return node.kwargs[name]
            i = names.index(name) if name in names else None
            return node.args[i] if i is not None and i < len(node.args) else default

        weight = arg("weight")
        fqn = params.get(getattr(weight, "name", None))
        if fqn and fqn.endswith(".weight"):
            conv_args[fqn[: -len(".weight")]] = {"groups": int(arg("groups", 1) or 1),
                                                 "transposed": bool(arg("transposed", False))
                                                 or "transpose" in schema.name}
    for name, sub in module.named_modules():
        cls = classes.get(name)
        if cls and type(sub).__name__ in ("Module", "InterpreterModule"):
            object.__setattr__(sub, "original_name", cls)
        info = conv_args.get(name)
        w = getattr(sub, "weight", None)
        if info and w is not None and w.dim() >= 3:
            object.__setattr__(sub, "groups", info["groups"])
            object.__setattr__(sub, "transposed", info["transposed"])
            if not info["transposed"]:
                object.__setattr__(sub, "in_channels", int(w.shape[1]) * info["groups"])


def _require_trust(path: str, what: str, trust: bool) -> None:
    if not trust:
        raise UntrustedFormatError(
            f"{what}: loading it executes code stored in the file; pass --trust if you trust its source", path)


def _quiet(fn):
    """Run a torch loading call with its warnings silenced: stderr carries initcheck's one-line errors only
    (torch warns about pickle protocols, deprecated TorchScript APIs, storage types...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn()


def _call(path: str, fn):
    try:
        return _quiet(fn)
    except InitcheckError:
        raise
    except Exception as e:  # the frameworks raise many types for damaged files
        raise InitcheckError(f"cannot load: {_one_line(e)}", path) from e


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def _torch_load(torch, path: str, fmt: str, trust: bool) -> Any:
    if fmt == "torch_zip":
        _check_zip_records(path)
    mmap = fmt == "torch_zip"
    # torch.load hands any path ending in .safetensors to the safetensors library; the content said
    # otherwise (sniffed above), so give it an open file instead (mmap needs a path: not for these).
    misnamed = path.lower().endswith(".safetensors")
    if misnamed:
        mmap = False
    try:
        if misnamed:
            with open(path, "rb") as f:
                obj = _quiet(lambda: torch.load(f, map_location="cpu", weights_only=True))
        else:
            obj = _quiet(lambda: torch.load(path, map_location="cpu", weights_only=True, mmap=mmap))
    except Exception as e:
        msg = _one_line(e)
        if "Weights only load failed" in str(e) or "Unsupported global" in str(e) or \
                isinstance(e, __import__("pickle").UnpicklingError):
            if not trust:
                detail = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
                what = f" (it needs {detail.group(1)})" if detail else ""
                raise UntrustedFormatError(
                    f"pickled Python objects beyond tensors{what}, e.g. a whole nn.Module: loading it can "
                    "execute code; pass --trust if you trust its source", path) from None
            try:
                if misnamed:
                    with open(path, "rb") as f:
                        return _quiet(lambda: torch.load(f, map_location="cpu", weights_only=False))
                return _quiet(lambda: torch.load(path, map_location="cpu", weights_only=False, mmap=mmap))
            except Exception as e2:
                raise InitcheckError(f"cannot load: {_one_line(e2)}", path) from e2
        if "resize storage" in msg or "not resizable" in msg or "storage has wrong byte size" in msg:
            raise InitcheckError("tensor records are shorter than the tensors they hold (damaged file)",
                                 path) from e
        hint = " (damaged or truncated file?)" if fmt in ("torch_legacy", "pickle") else ""
        raise InitcheckError(f"cannot load as a PyTorch file{hint}: {msg}", path) from e
    if mmap:
        _check_storage_sizes(path, obj)
    return obj


def _check_zip_records(path: str) -> None:
    """torch.load(mmap=True) trusts record sizes; refuse compressed records before loading."""
    from ..archive import open_checked

    with open_checked(path) as z:  # declared sizes held against the file's: no zip bomb reaches torch
        for info in z.infolist():
            if "/data/" in info.filename and info.compress_type != zipfile.ZIP_STORED:
                raise InitcheckError(f"record {info.filename} is compressed; PyTorch writes tensors stored "
                                     "(the file was modified)", path)


def _check_storage_sizes(path: str, obj: Any) -> None:
    """Total bytes of loaded storages must fit in the data records (a short record loads silently)."""
    with zipfile.ZipFile(path) as z:
        records = {i.filename.rsplit("/", 1)[-1]: i.file_size for i in z.infolist() if "/data/" in i.filename}
    storages: dict[int, int] = {}
    for t in _iter_tensors(obj):
        try:
            st = t.untyped_storage()
            storages[st.data_ptr()] = st.nbytes()
        except (RuntimeError, NotImplementedError):
            continue
    if sum(storages.values()) > sum(records.values()):
        raise InitcheckError("tensor records are shorter than the tensors they hold (damaged file)", path)


def _iter_tensors(obj: Any, depth: int = 0):
    import torch

    if depth > 6:
        return
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _iter_tensors(v, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _iter_tensors(v, depth + 1)


def model_from_object(obj: Any, path: str, trust: bool = False, fmt: str | None = None) -> Model:
    """A Model from what ``torch.load`` returned: a module, a state_dict or a checkpoint dict."""
    import torch

    if isinstance(obj, torch.nn.Module):
        return model_from_module(obj, path, fmt or "module")
    if not isinstance(obj, dict):
        raise InitcheckError(f"holds a {type(obj).__name__}, not a state_dict, checkpoint or module", path)
    try:
        key, tensors_obj = find_model_tensors(obj)
    except InitcheckError as e:
        raise InitcheckError(e.message, path) from None
    if key is None:
        fmt = fmt or "state_dict"
        notes = []
    else:
        fmt = fmt or "checkpoint"
        notes = [f"model tensors under key {key!r}"]
        if isinstance(tensors_obj, torch.nn.Module):
            m = model_from_module(tensors_obj, path, fmt)
            m.checkpoint_key, m.source_notes = key, notes + m.source_notes
            return m
    state = {k: v for k, v in tensors_obj.items() if isinstance(k, str)}
    state, stripped = strip_wrapper_prefixes(state, in_checkpoint=key is not None)
    if stripped:
        notes.append(f"stripped prefix {stripped!r} from every name")
    model = model_from_state_dict(state, path, fmt)
    model.checkpoint_key = key
    model.source_notes = notes + model.source_notes
    return model


def find_model_tensors(obj: dict, depth: int = 0) -> tuple[str | None, Any]:
    """(key, dict) of the model's tensors in a checkpoint; key None when ``obj`` is itself a state_dict.

    Nested checkpoints (``{"model": {"state_dict": ...}, "optimizer": ...}``) are searched two levels
    down; the key then names the path, ``model.state_dict``."""
    import torch

    def tensor_count(d: Any) -> int:
        return sum(isinstance(v, torch.Tensor) for v in d.values()) if isinstance(d, dict) else 0

    values = list(obj.values())
    if values and tensor_count(obj) >= max(1, len(values) // 2) and tensor_count(obj) > 0:
        return None, obj
    for key in MODEL_KEYS:
        if key in obj and (tensor_count(obj[key]) or isinstance(obj[key], torch.nn.Module)):
            return key, obj[key]
    candidates = [(tensor_count(v), k) for k, v in obj.items()
                  if isinstance(k, str) and not SKIP_KEY.search(k) and tensor_count(v)]
    if candidates:
        _, key = max(candidates)
        return key, obj[key]
    if depth < 2:
        nested = [k for k in MODEL_KEYS if isinstance(obj.get(k), dict)]
        nested += [k for k, v in obj.items() if isinstance(k, str) and isinstance(v, dict) and k not in nested
                   and not SKIP_KEY.search(k)]
        for key in nested:
            try:
                inner_key, inner = find_model_tensors(obj[key], depth + 1)
            except InitcheckError:
                continue
            return (key if inner_key is None else f"{key}.{inner_key}"), inner
    raise InitcheckError("no model tensors found (a dict without a state_dict or tensors)", None)


def strip_wrapper_prefixes(state: dict, in_checkpoint: bool = True) -> tuple[dict, str]:
    """Drop a prefix every key shares: wrappers' (``module.`` from DataParallel/DDP, ``_orig_mod.`` from
    torch.compile, ``_forward_module.``) repeatedly; and, once, the attribute under which a training
    wrapper holds the model (``model.``/``net.``, as in Lightning's ``state_dict``) — only inside a
    checkpoint dict: a plain state_dict whose keys all start with ``model.`` (a Hugging Face
    ``LlamaForCausalLM`` without its tied head) is the model's own naming, and stripping it would make
    the names disagree with the same model's safetensors file and module paths."""
    stripped = ""
    holder_used = False
    while state:
        for prefix in WRAPPER_PREFIXES:
            if prefix in HOLDER_PREFIXES and (not in_checkpoint or holder_used):
                continue
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                stripped += prefix
                holder_used = holder_used or prefix in HOLDER_PREFIXES
                break
        else:
            break
    return state, stripped


def model_from_state_dict(state: dict, path: str, fmt: str) -> Model:
    """Layers inferred from tensor names and shapes; tied tensors reported once with their aliases."""
    tensors = {}
    aliases: dict[str, list[str]] = {}
    first_by_key: dict[tuple, str] = {}
    for name, t in state.items():
        if not is_float_tensor(t):
            continue
        key = storage_key(t)
        if key in first_by_key:
            aliases.setdefault(first_by_key[key], []).append(name)
            continue
        first_by_key[key] = name
        tensors[name] = tensor_ref(t)
    if not tensors:
        raise InitcheckError("no floating-point tensors found", path)
    layers = layers_from_tensors(tensors, aliases)
    for layer in layers:
        for p in layer.params:
            if p.name in state:
                p.native = state[p.name]
                p.assign = assigner(state[p.name])
            else:  # an effective weight computed from its stored parametrization (torch_layout)
                p.assign = _stored_parametrization_assigner(layer, state)
    return Model(path=path, format=fmt, framework="torch", layers=layers,
                 source_notes=parametrization_notes(layers))


def _stored_parametrization_assigner(layer, state: dict):
    """Writes of an effective weight-norm weight go to its stored (g, v): v = w, g = ‖w‖ over the axes
    where g has size 1 (weight_norm's own split); other parametrizations are not written (None)."""
    import torch

    sources = layer.attrs.get("parametrization_sources") or {}
    if layer.attrs.get("parametrization") != "weight_norm" or not {"g", "v"} <= set(sources):
        return None
    g, v = state[sources["g"]], state[sources["v"]]
    axes = [i for i in range(v.dim()) if g.dim() != v.dim() or g.shape[i] == 1]

    def assign(values) -> None:
        w = torch.as_tensor(values).reshape(v.shape).to(dtype=v.dtype, device=v.device)
        with torch.no_grad():
            v.copy_(w)
            norm = w.double().pow(2).sum(dim=axes, keepdim=True).sqrt() if axes else w.double().abs()
            g.copy_(norm.reshape(g.shape).to(g.dtype))

    return assign


def model_from_module(module, path: str, fmt: str = "module", handle: Any = None) -> Model:
    layers = layers_from_module(module)
    if not layers:
        raise InitcheckError("module has no floating-point parameters", path)
    return Model(path=path, format=fmt, framework="torch", layers=layers, handle=handle or module,
                 source_notes=parametrization_notes(layers))


def load_bin_shards(paths: list[str], trust: bool, display_path: str) -> Model:
    """``pytorch_model-0000x-of-0000y.bin`` shards merged into one state_dict."""
    torch = import_torch()
    from ..sniff import sniff

    merged: dict = {}
    owner: dict = {}
    for p in paths:
        fmt = sniff(p)
        if fmt not in ("torch_zip", "torch_legacy", "pickle"):
            raise InitcheckError(f"shard is {fmt}, not a PyTorch state_dict", p)
        obj = _torch_load(torch, p, fmt, trust)
        if not isinstance(obj, dict):
            raise InitcheckError("shard does not hold a state_dict", p)
        claim_shard_names(owner, obj, p)
        merged.update(obj)
    return model_from_object(merged, display_path, trust, fmt="state_dict")


def claim_shard_names(owner: dict[str, str], names, path: str) -> None:
    """Record which shard holds each tensor name; a name in two shards means they are not one model's."""
    for name in names:
        if name in owner:
            raise InitcheckError(f"tensor {name!r} is in two shards ({os.path.basename(owner[name])} and "
                                 f"{os.path.basename(path)}): these are not shards of one model", path)
        owner[name] = path


def list_bin_shards(index_path: str) -> list[str]:
    from ..safetensors import read_index

    return read_index(index_path)


