"""``--from-config``: build a Hugging Face checkpoint's architecture from its ``config.json`` with transformers.

A tensor-only directory (``config.json`` + ``model.safetensors`` / shards / ``pytorch_model*.bin``) then gets
the full graph context a live module gives (activations after each layer, residual adds, norms) without
``--model``. What is built, and how:

* **Only transformers' own classes.** ``config.json`` is read as JSON (bounded size); a config with
  ``auto_map`` anywhere (code shipped beside the model, which needs ``trust_remote_code``) is refused, as is
  a ``model_type`` transformers does not know or an attention implementation that names a Hub kernel. The
  class is the first of the config's ``architectures`` that one of transformers' auto mappings lists for
  its ``model_type`` (``BertForMaskedLM``...), else that model type's base model (``AutoModel``'s).
* **Nothing is downloaded.** The config comes from the file, never from a hub; ``HF_HUB_OFFLINE`` and
  ``TRANSFORMERS_OFFLINE`` are set while transformers builds the module.
* **One copy of the weights.** Parameters are created on the meta device (no memory), buffers normally
  (rotary tables, position ids: small). The file's tensors are attached without copying: safetensors as a
  copy-on-write memory map (``numpy.memmap(mode="c")`` → ``torch.from_numpy``), ``.bin`` zip files as
  ``torch.load(mmap=True)`` maps; ``load_state_dict(assign=True)`` makes them the module's parameters.
  Tied weights are re-tied (``tie_weights``) as ``from_pretrained`` does.
* **Key names as from_pretrained maps them**, with transformers' own code: the class's conversion mapping
  (legacy names) and the ``base_model_prefix`` (``bert.``) added or removed when the file holds the base
  model and the class a head model, or the reverse. Layouts transformers rebuilds with tensor operations
  (fused MoE experts) are refused: attaching them would need a copy.
  A parameter the class needs that the file lacks, or a file tensor the class has no place for, is one
  error line; buffers the file lacks keep their built values, and tensors transformers itself ignores on
  load are left out, each with a note.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from typing import Any, Iterator

from ...errors import InitcheckError, MissingDependencyError
from ...model import Model

CONFIG_NAME = "config.json"
MIN_TRANSFORMERS = 5  # its conversion mapping and tie_weights(missing_keys=...) are what from_pretrained uses
MAX_CONFIG_BYTES = 4 << 20
_REMOTE_CODE_KEYS = ("auto_map",)  # code beside the model: transformers would need trust_remote_code
_ATTENTION_KEYS = ("attn_implementation", "_attn_implementation", "_attn_implementation_internal")
_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def build_from_config(model: Model, trust: bool = False) -> Model:
    """``model`` (a tensor-only Hugging Face checkpoint) rebuilt as the transformers module its
    ``config.json`` names, holding the file's own tensors; the returned Model keeps the path and format."""
    from ...load import weight_files
    from ..quiet import captured_stderr
    from .load import model_from_module

    config_file, data = read_config(model.path)
    with _offline(), captured_stderr():
        transformers = _import_transformers(config_file)
        cls, arch_note = architecture_class(data, transformers, config_file)
        module = build_on_meta(cls, data, config_file)
        state = file_state(weight_files(model.path), trust)
        notes = attach(module, state, model.path, cls.__name__)
    module.eval()
    rebuilt = model_from_module(module, model.path, model.format)
    rebuilt.checkpoint_key = model.checkpoint_key
    rebuilt.source_notes = [n for n in model.source_notes if not n.startswith("tied tensors named")]
    rebuilt.source_notes += [f"architecture from {CONFIG_NAME} ({cls.__name__})", *arch_note, *notes]
    return rebuilt


# ---------------------------------------------------------------------------------------------- config.json
def read_config(model_path: str) -> tuple[str, dict]:
    """(path, content) of the ``config.json`` of a model directory (or beside a model file), refusing what
    would need code from outside transformers."""
    folder = model_path if os.path.isdir(model_path) else os.path.dirname(os.path.abspath(model_path))
    path = os.path.join(folder, CONFIG_NAME)
    if not os.path.isfile(path):
        raise InitcheckError(f"--from-config needs a {CONFIG_NAME} beside the weights; there is none in {folder}",
                             model_path)
    if os.path.getsize(path) > MAX_CONFIG_BYTES:
        raise InitcheckError(f"larger than {MAX_CONFIG_BYTES >> 20} MiB: not a model config", path)
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InitcheckError(f"not a JSON config ({type(e).__name__})", path) from None
    if not isinstance(data, dict):
        raise InitcheckError("not a JSON object", path)
    remote = _remote_code_key(data)
    if remote:
        raise InitcheckError(f"'{remote}' names model code shipped beside the checkpoint (it needs "
                             "trust_remote_code): --from-config builds transformers' own classes only; use "
                             "--model with your own factory instead", path)
    for key in _ATTENTION_KEYS:
        value = data.get(key)
        if isinstance(value, str) and "/" in value:
            raise InitcheckError(f"'{key}' is {value!r}, a kernel from the Hugging Face Hub: --from-config "
                                 "downloads nothing", path)
    if not isinstance(data.get("model_type"), str) or not data["model_type"]:
        raise InitcheckError("no 'model_type': not a transformers config", path)
    return path, data


def _remote_code_key(data: Any, where: str = "", depth: int = 0) -> str | None:
    """The dotted key of the first ``auto_map`` in the config or any sub-config (vision_config...)."""
    if depth > 6 or not isinstance(data, dict):
        return None
    for key, value in data.items():
        if key in _REMOTE_CODE_KEYS:
            return f"{where}{key}"
        found = _remote_code_key(value, f"{where}{key}.", depth + 1)
        if found:
            return found
    return None


@contextmanager
def _offline() -> Iterator[None]:
    """The Hugging Face libraries' offline switches, set while transformers is imported and used here.
    huggingface_hub reads them when it is imported: a process whose first import of it happens here stays
    offline for its lifetime (the CLI's does; an API user who imported transformers before is unaffected)."""
    saved = {k: os.environ.get(k) for k in _OFFLINE}
    os.environ.update(_OFFLINE)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _import_transformers(config_file: str):
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError("--from-config builds the model with transformers, which is not "
                                     "installed: pip install 'transformers>=5'", config_file) from None
    major = transformers.__version__.split(".", 1)[0]
    if not major.isdigit() or int(major) < MIN_TRANSFORMERS:
        raise MissingDependencyError(f"--from-config maps checkpoint names with transformers {MIN_TRANSFORMERS}'s "
                                     f"loading code; transformers {transformers.__version__} is installed: "
                                     f"pip install 'transformers>={MIN_TRANSFORMERS}'", config_file)
    return transformers


# ---------------------------------------------------------------------------------------------- the class
def known_architectures(model_type: str) -> dict[str, str]:
    """Class names transformers' auto mappings list for ``model_type`` → the mapping (task) naming each."""
    from transformers.models.auto import modeling_auto

    out: dict[str, str] = {}
    for mapping_name in sorted(vars(modeling_auto)):
        mapping = getattr(modeling_auto, mapping_name)
        if not (mapping_name.startswith("MODEL") and mapping_name.endswith("MAPPING_NAMES")
                and isinstance(mapping, dict)):
            continue
        names = mapping.get(model_type)
        for name in (names,) if isinstance(names, str) else tuple(names or ()):
            if isinstance(name, str):
                out.setdefault(name, mapping_name)
    return out


def architecture_class(data: dict, transformers, config_file: str) -> tuple[type, list[str]]:
    """(class, notes): the first of ``architectures`` transformers maps for the model type, else the base
    model of the type (with a note saying why)."""
    from transformers.models.auto import modeling_auto
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    model_type = data["model_type"]
    if model_type not in CONFIG_MAPPING_NAMES:
        raise InitcheckError(f"model_type {model_type!r} is not one transformers {transformers.__version__} "
                             "knows (a custom model needs its own code: use --model)", config_file)
    known = known_architectures(model_type)
    named = [a for a in data.get("architectures") or [] if isinstance(a, str)]
    for name in named:
        cls = getattr(transformers, name, None) if name in known else None
        if isinstance(cls, type):
            return cls, []
    base = modeling_auto.MODEL_MAPPING_NAMES.get(model_type)
    base = base if isinstance(base, str) else (base[0] if base else None)
    cls = getattr(transformers, base, None) if base else None
    if not isinstance(cls, type):
        raise InitcheckError(f"transformers {transformers.__version__} has no model class for model_type "
                             f"{model_type!r}", config_file)
    why = (f"{', '.join(named)} is not a class transformers maps for model_type {model_type!r}" if named
           else "it names no architectures")
    return cls, [f"{CONFIG_NAME}: {why}; built the base model {base}"]


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Every parameter registered meanwhile is moved to the meta device as it is registered (as accelerate's
    ``init_empty_weights(include_buffers=False)``): a layer's CPU tensor exists only until then, untouched
    (``torch.empty``), and the init functions run on meta tensors (no work). Buffers stay real. Patches
    ``nn.Module.register_parameter`` for the duration (not thread-safe, like accelerate's)."""
    import torch

    original = torch.nn.Module.register_parameter

    def register(module, name, param):
        original(module, name, param)
        if param is not None and param.device.type != "meta":
            kept = module._parameters[name]
            extra = dict(kept.__dict__)  # attributes set on the parameter (transformers' flags)
            module._parameters[name] = type(kept)(kept.to("meta"), requires_grad=kept.requires_grad)
            module._parameters[name].__dict__.update(extra)

    torch.nn.Module.register_parameter = register
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original


def build_on_meta(cls: type, data: dict, config_file: str):
    """``cls`` built from the config as ``AutoModel.from_config`` builds it, its parameters on meta."""
    config_class = cls.config_class
    try:
        config = config_class.from_dict(dict(data))
    except Exception as e:  # transformers validates configs with many exception types
        raise InitcheckError(f"transformers cannot read it as a {config_class.__name__}: {_first_line(e)}",
                             config_file) from None
    try:
        with parameters_on_meta():
            return cls._from_config(config)
    except Exception as e:  # a model's own __init__ can raise anything on a config it does not expect
        raise InitcheckError(f"building {cls.__name__} from it failed: {type(e).__name__}: {_first_line(e)}",
                             config_file) from None


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:200]


# ---------------------------------------------------------------------------------------------- the tensors
def file_state(files: list[str], trust: bool) -> dict[str, Any]:
    """Every tensor of the checkpoint files (floats and integer buffers), as torch tensors over the files'
    own bytes: no copy is made (a legacy, non-zip ``.bin`` is the exception: torch reads it whole)."""
    from ..sniff import sniff
    from .load import _torch_load, claim_shard_names, import_torch

    torch = import_torch()
    state: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for path in files:
        fmt = sniff(path)
        if fmt == "safetensors":
            tensors = safetensors_tensors(path)
        elif fmt in ("torch_zip", "torch_legacy", "pickle"):
            obj = _torch_load(torch, path, fmt, trust)
            if not isinstance(obj, dict):
                raise InitcheckError("does not hold a state_dict", path)
            tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        else:
            raise InitcheckError(f"is {fmt}: --from-config reads safetensors and PyTorch state_dict files", path)
        claim_shard_names(owner, tensors, path)
        state.update(tensors)
    return state


# safetensors dtype → torch dtype name; the numpy view holds the bits when numpy lacks the type
_TORCH_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                 "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn", "I64": "int64", "I32": "int32",
                 "I16": "int16", "I8": "int8", "U8": "uint8", "U16": "uint16", "U32": "uint32", "U64": "uint64",
                 "BOOL": "bool"}


def safetensors_tensors(path: str) -> dict[str, Any]:
    """The file's tensors as torch views of one copy-on-write memory map of the file: pages are read on
    first touch and shared with the page cache; a write (initcheck never writes) would copy that page
    privately, never change the file."""
    import numpy as np
    import torch

    from ..safetensors import _DTYPES, read_header

    header, data_start = read_header(path)  # validated as strictly as the reference reader
    whole = np.memmap(path, dtype=np.uint8, mode="c")
    out: dict[str, Any] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        _, np_dtype = _DTYPES[info["dtype"]]
        start, end = (data_start + o for o in info["data_offsets"])
        shape = tuple(info["shape"])
        target = getattr(torch, _TORCH_DTYPES[info["dtype"]])
        if start % np_dtype.itemsize:  # torch needs aligned memory; the library's writer always aligns
            raw = np.frombuffer(whole[start:end].tobytes(), dtype=np_dtype)
        else:
            raw = whole[start:end].view(np_dtype)
        t = torch.from_numpy(raw.reshape(shape))
        out[name] = t if t.dtype == target else t.view(target)
    return out


def attach(module, state: dict[str, Any], path: str, arch: str) -> list[str]:
    """Make ``state``'s tensors the module's parameters and buffers (``assign``: no copy), names mapped as
    ``from_pretrained`` maps them; re-tie tied weights. Returns notes; mismatches are InitcheckErrors."""
    state, notes = map_keys(module, state, path)
    expected = module.state_dict(keep_vars=True)
    params = {name for name, _ in module.named_parameters(remove_duplicate=False)}
    persistent_buffers = set(expected) - params
    all_buffers = {name for name, _ in module.named_buffers(remove_duplicate=False)}
    unexpected = [k for k in state if k not in expected]
    still_unexpected = set(_after_ignore_rules(module, [k for k in unexpected if k not in all_buffers]))
    dropped = [k for k in unexpected if k not in still_unexpected]
    unexpected = [k for k in unexpected if k not in dropped]
    for name in [k for k in state if k in expected]:
        want = tuple(expected[name].shape)
        if tuple(state[name].shape) != want:
            raise InitcheckError(f"tensor {name} has shape {tuple(state[name].shape)}; {arch} built from "
                                 f"{CONFIG_NAME} expects {want}", path)
    if unexpected:
        raise InitcheckError(f"{len(unexpected)} tensor{'s' if len(unexpected) > 1 else ''} of the file "
                             f"{'have' if len(unexpected) > 1 else 'has'} no place in {arch} built from "
                             f"{CONFIG_NAME}: {_some(unexpected)}", path)
    state = {k: v for k, v in state.items() if k in expected}
    missing = set(expected) - set(state)
    module.load_state_dict(state, strict=False, assign=True)
    _tie(module, missing)
    still_meta = sorted(n for n, p in module.named_parameters(remove_duplicate=False) if p.is_meta)
    if still_meta:
        raise InitcheckError(f"{len(still_meta)} parameter{'s' if len(still_meta) > 1 else ''} of {arch} "
                             f"built from {CONFIG_NAME} {'are' if len(still_meta) > 1 else 'is'} not in the file: "
                             f"{_some(still_meta)}", path)
    kept = sorted(missing & persistent_buffers)
    if kept:
        notes.append(f"buffers not in the file, kept as {arch} builds them: {_some(kept)}")
    if dropped:
        notes.append(f"tensors transformers ignores on load, left out: {_some(sorted(dropped))}")
    return notes


def _after_ignore_rules(module, unexpected: list[str]) -> list[str]:
    """Of ``unexpected``, the keys transformers still reports after its own exception rules
    (``_keys_to_ignore_on_load_unexpected``, old per-layer ``rotary_emb.inv_freq`` and ``position_ids``)."""
    from types import SimpleNamespace

    info = SimpleNamespace(missing_keys=set(), unexpected_keys=set(unexpected))
    module._adjust_missing_and_unexpected_keys(info)
    return sorted(info.unexpected_keys)


def _tie(module, missing: set[str]) -> None:
    """``tie_weights`` as from_pretrained calls it, with the keys the file lacks: transformers ties toward
    the tensor the file has (``lm_head.weight`` from ``wte.weight``, or the reverse)."""
    module.tie_weights(missing_keys=set(missing))


def map_keys(module, state: dict[str, Any], path: str) -> tuple[dict[str, Any], list[str]]:
    """File names → the module's names exactly as ``from_pretrained`` renames them: transformers' own
    conversion mapping for the class (legacy names such as ViT's ``encoder.layer.N.attention.attention``,
    ``LayerNorm.gamma``), then the ``base_model_prefix`` added (a base checkpoint into a head model) or
    removed (a head checkpoint's body into the base model). A key that transformers would rebuild with a
    tensor operation (fused MoE experts, permuted rotary halves) cannot be attached as it is stored: an
    InitcheckError."""
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    mapping = get_model_conversion_mapping(module)
    renamings = [m for m in mapping if isinstance(m, WeightRenaming)]
    converters = [m for m in mapping if isinstance(m, WeightConverter)]
    prefix = getattr(module, "base_model_prefix", None) or None
    expected = module.state_dict()
    out: dict[str, Any] = {}
    renamed = 0
    for key, tensor in state.items():
        new, converted = rename_source_key(key, renamings, converters, prefix, expected)
        if new not in expected and key in expected:  # as from_pretrained: the name was right as it was
            new, converted = rename_source_key(key, [], [], prefix, expected)
        if converted is not None and new in expected:
            raise InitcheckError(f"tensor {key} is stored in a layout transformers converts with a tensor "
                                 f"operation when it loads {type(module).__name__} ({converted} -> {new}): "
                                 "--from-config attaches the file's tensors as they are stored", path)
        if new in out:
            raise InitcheckError(f"two tensors of the file load as {new} (one is {key})", path)
        renamed += new != key
        out[new] = tensor
    notes = [f"{renamed} tensor names mapped as from_pretrained maps them (e.g. {_first_renamed(state, out)})"] \
        if renamed else []
    return out, notes


def _first_renamed(before: dict, after: dict) -> str:
    for old, new in zip(before, after):
        if old != new:
            return f"{old} -> {new}"
    return ""


def _some(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names) - n} more)" if len(names) > n else "")
