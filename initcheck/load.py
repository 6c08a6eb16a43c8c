"""Open any supported model — a path or an in-memory object — as a framework-neutral Model.

Frameworks are imported only here, lazily, for the format at hand: a safetensors file never imports
torch or tensorflow, and a PyTorch file never imports tensorflow.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from .errors import InitcheckError
from .frameworks.sniff import sniff
from .model import Model

_NATURAL = re.compile(r"(\d+)")


def natural_key(name: str) -> list:
    """'h.10.attn' after 'h.2.attn': numbered blocks in forward order."""
    return [int(p) if p.isdigit() else p for p in _NATURAL.split(name)]


def load(source: Any, *, trust: bool = False, model_factory: str | None = None) -> Model:
    """Load ``source`` (a path, an ``nn.Module`` or a ``keras.Model``) as a Model.

    Files that hold programs (pickled modules, TorchScript, exported programs, SavedModels, Keras Lambda
    layers) load only with ``trust=True``; otherwise :class:`~initcheck.errors.UntrustedFormatError`.
    ``model_factory`` (``package.module:factory``) builds the architecture for a Keras ``.weights.h5``.
    """
    if isinstance(source, (str, os.PathLike)):
        return load_path(os.fspath(source), trust=trust, model_factory=model_factory)
    return load_object(source)


def load_object(obj: Any) -> Model:
    if _is_instance_of(obj, "torch.nn", "Module"):
        from .frameworks.torch.load import model_from_module

        return model_from_module(obj, f"<{type(obj).__name__}>", "module")
    if _is_keras_model(obj):
        from .frameworks.keras.load import model_from_keras

        return model_from_keras(obj, f"<{type(obj).__name__}>", "keras_model")
    if isinstance(obj, dict):
        from .frameworks.torch.load import model_from_object

        return model_from_object(obj, "<state_dict>")
    raise InitcheckError(f"cannot check an object of type {type(obj).__name__}: pass a path, an nn.Module, "
                         "a keras.Model or a state_dict")


def _is_instance_of(obj: Any, module_prefix: str, cls_name: str) -> bool:
    """isinstance without importing the framework: only true if the framework is already imported."""
    mod = sys.modules.get(module_prefix)
    cls = getattr(mod, cls_name, None) if mod else None
    return cls is not None and isinstance(obj, cls)


def _is_keras_model(obj: Any) -> bool:
    return any(c.__module__.startswith(("keras", "tf_keras", "tensorflow")) and c.__name__ in ("Model", "Layer")
               for c in type(obj).__mro__)


def load_path(path: str, *, trust: bool = False, model_factory: str | None = None) -> Model:
    """Load a file or model directory; what frameworks print meanwhile is captured (frameworks/quiet.py)."""
    from .frameworks.quiet import captured_stderr

    fmt = sniff(path)
    with captured_stderr():
        model = _load_sniffed(path, fmt, trust, model_factory)
    note = _extension_note(path, fmt)
    if note:
        model.source_notes.append(note)
    return model


# Sniffed formats each extension is honest about.
_HONEST = {
    "safetensors": {"safetensors"},
    "PyTorch": {"torch_zip", "torch_legacy", "pickle", "torchscript", "exported_program"},
    "torch.export": {"exported_program"},
    "Keras": {"keras_zip"},
    "HDF5/Keras": {"hdf5"},
    "index JSON": {"safetensors_index", "torch_index"},
}


def _extension_note(path: str, fmt: str) -> str | None:
    """A note when the file's name promises another format than its content (content wins)."""
    from .frameworks.sniff import expected_by_name

    if os.path.isdir(path):
        return None
    said = expected_by_name(path)
    if said is None or fmt in _HONEST.get(said, {fmt}):
        return None
    return f"the name says {said} but the content is {fmt}: read as {fmt}"


def _load_sniffed(path: str, fmt: str, trust: bool, model_factory: str | None = None) -> Model:
    if fmt == "safetensors":
        return _safetensors_model([path], path, "safetensors")
    if fmt == "safetensors_index":
        from .frameworks.safetensors import read_index

        return _safetensors_model(read_index(path), path, "safetensors_sharded")
    if fmt == "torch_index":
        from .frameworks.safetensors import read_index
        from .frameworks.torch.load import load_bin_shards

        return load_bin_shards(read_index(path), trust, path)
    if fmt == "hf_directory":
        return _load_directory(path, trust)
    if fmt in ("torch_zip", "torch_legacy", "pickle", "torchscript", "exported_program"):
        from .frameworks.torch.load import load_torch_file

        return load_torch_file(path, fmt, trust)
    if fmt in ("keras_zip", "hdf5", "saved_model"):
        from .frameworks.keras.load import load_keras_file

        return load_keras_file(path, fmt, trust, model_factory=model_factory)
    raise InitcheckError(f"unsupported format {fmt}", path)  # pragma: no cover - sniff returns known formats


def _safetensors_model(files: list[str], path: str, fmt: str) -> Model:
    from .frameworks.safetensors import open_many
    from .frameworks.torch_layout import layers_from_tensors

    tensors, metadata = open_many(files)
    if not tensors:
        raise InitcheckError("no floating-point tensors found", path)
    tensors, aliases = _tied_from_metadata(tensors, metadata)
    ordered = {k: tensors[k] for k in sorted(tensors, key=natural_key)}
    notes = [f"{len(files)} shards"] if len(files) > 1 else []
    if metadata.get("format"):
        notes.append(f"metadata format={metadata['format']}")
    if aliases:
        notes.append("tied tensors named in the file's metadata: " +
                     ", ".join(f"{' = '.join([k, *v])}" for k, v in aliases.items()))
    from .frameworks.torch_layout import parametrization_notes

    layers = layers_from_tensors(ordered, aliases)
    notes += parametrization_notes(layers)
    return Model(path=path, format=fmt, framework="safetensors", layers=layers, source_notes=notes)


def _tied_from_metadata(tensors: dict, metadata: dict) -> tuple[dict, dict[str, list[str]]]:
    """Tied tensors that ``safetensors.torch.save_model`` stored once: it records each dropped name in the
    metadata as ``{dropped: kept}``. Report them as aliases, under the input embedding's name when one of
    the names is an embedding (as a live module reports ``transformer.wte`` with alias ``lm_head.weight``)."""
    from .frameworks.torch_layout import prefers_as_tied_owner

    groups: dict[str, list[str]] = {}
    for dropped, kept in metadata.items():
        if isinstance(kept, str) and kept in tensors and dropped not in tensors and dropped != kept:
            groups.setdefault(kept, []).append(dropped)
    if not groups:
        return tensors, {}
    tensors = dict(tensors)
    aliases: dict[str, list[str]] = {}
    for kept, dropped in groups.items():
        names = [kept, *sorted(dropped, key=natural_key)]
        owner = next((n for n in names if prefers_as_tied_owner(n)), kept)
        if owner != kept:
            tensors[owner] = tensors.pop(kept)
        aliases[owner] = [n for n in names if n != owner]
    return tensors, aliases


# A folder is one model only when it says so; otherwise each model file in it is its own model.
SHARD_NAME = re.compile(r"^(?P<stem>.+)-(?P<index>\d+)-of-(?P<total>\d+)\.(?P<ext>safetensors|bin)$")
HF_SINGLE = ("model.safetensors", "pytorch_model.bin")  # Hugging Face's names for a one-file model
MODEL_EXTENSIONS = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".pt2", ".keras", ".h5", ".hdf5")


def directory_plan(path: str) -> tuple[str, list[str]]:
    """How a model directory is read: ``("index", [index])``, ``("shards", files)``, ``("single", [file])``
    (one model), or ``("separate", files)`` (several models, each checked on its own). Names only; every
    file is checked to stay inside the folder when it is opened.

    One model: a ``*.safetensors.index.json`` (else ``*.bin.index.json``); Hugging Face's single-file names
    ``model.safetensors``/``pytorch_model.bin`` (a Trainer checkpoint folder also holds optimizer.pt etc.);
    files whose names say they are shards (``model-00001-of-00003.safetensors``), all of one set; or
    a folder with exactly one model file.
    """
    entries = sorted(e for e in os.listdir(path) if not e.startswith("."))
    for suffix in (".safetensors.index.json", ".bin.index.json"):
        indexes = [e for e in entries if e.endswith(suffix)]
        if len(indexes) == 1:
            return "index", indexes
        if len(indexes) > 1:
            return "separate", indexes
    for name in HF_SINGLE:
        if name in entries:
            return "single", [name]
    files = [e for e in entries if e.lower().endswith(MODEL_EXTENSIONS) and not os.path.isdir(os.path.join(path, e))]
    for ext in ("safetensors", "bin"):
        shards = [e for e in files if e.endswith("." + ext) and SHARD_NAME.match(e)]
        if not shards:
            continue
        sets = {(m.group("stem"), m.group("total")) for m in map(SHARD_NAME.match, shards)}
        if len(sets) > 1 or len(shards) != len(files):
            raise InitcheckError(f"mixes shard files ({shards[0]}, ...) with other model files or another shard "
                                 "set: add an *.index.json, or check the files one by one", path)
        (stem, total), = sets
        numbers = sorted(int(SHARD_NAME.match(e).group("index")) for e in shards)
        if numbers != list(range(1, int(total) + 1)):
            missing = sorted(set(range(1, int(total) + 1)) - set(numbers))
            what = f"shard {missing[0]} of {int(total)} is missing" if missing else "shard numbers do not match"
            raise InitcheckError(f"{what} ({stem}-*-of-{total}.{ext})", path)
        return "shards", shards
    if len(files) == 1:
        return "single", files
    if files:
        return "separate", files
    raise InitcheckError("directory holds no model files (no *.safetensors, *.pt, *.bin, *.keras, *.h5, "
                         "*.index.json or saved_model.pb)", path)


def expand_path(path: str) -> list[str]:
    """The models a command-line path names: itself, or each model file of a folder of separate models."""
    if not os.path.isdir(path) or sniff(path) == "saved_model":
        return [path]
    kind, names = directory_plan(path)
    if kind != "separate":
        return [path]
    return [os.path.join(path, n) for n in names]


def weight_files(path: str) -> list[str]:
    """The files a model path's tensors are read from: a directory's (see :func:`directory_plan`; each
    checked to stay inside it), an index's shards, or the file itself."""
    from .frameworks.safetensors import read_index
    from .paths import inside

    if not os.path.isdir(path):
        return read_index(path) if sniff(path) in ("safetensors_index", "torch_index") else [path]
    kind, names = directory_plan(path)
    if kind == "separate":
        raise InitcheckError(f"holds {len(names)} separate models ({', '.join(names[:3])}"
                             f"{', ...' if len(names) > 3 else ''}), not one: check each file", path)
    files = [inside(path, n, "file", path) for n in names]
    return read_index(files[0]) if kind == "index" else files


def _load_directory(path: str, trust: bool) -> Model:
    """A model directory (see :func:`directory_plan`); every file it names must stay inside it."""
    from .frameworks.safetensors import read_index
    from .paths import inside

    kind, names = directory_plan(path)
    if kind == "separate":
        raise InitcheckError(f"holds {len(names)} separate models ({', '.join(names[:3])}"
                             f"{', ...' if len(names) > 3 else ''}), not one: check each file", path)
    files = [inside(path, n, "file", path) for n in names]
    if kind == "index":
        fmt = sniff(files[0])
        if fmt == "safetensors_index":
            return _safetensors_model(read_index(files[0]), path, "safetensors_sharded")
        from .frameworks.torch.load import load_bin_shards

        return load_bin_shards(read_index(files[0]), trust, path)
    if kind == "shards" and files[0].endswith(".safetensors"):
        return _safetensors_model(files, path, "safetensors_sharded")
    if kind == "shards":
        from .frameworks.torch.load import load_bin_shards

        return load_bin_shards(files, trust, path)
    model = _load_sniffed(files[0], sniff(files[0]), trust)
    model.path = path
    return model
