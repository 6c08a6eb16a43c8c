"""Load Keras models safely: ``.keras`` archives, full-model ``.h5``, ``.weights.h5`` with a factory,
TensorFlow SavedModel directories (``--trust`` only) and in-memory ``keras.Model`` objects.

Keras is imported only when one of these is loaded. Without TensorFlow, Keras 3 runs on the torch (or JAX)
backend: when ``KERAS_BACKEND`` is unset and TensorFlow is not installed, initcheck selects an installed
backend before importing Keras, so a torch-only user can still check ``.keras`` and ``.h5`` files.
SavedModel directories always need TensorFlow.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

from ...errors import InitcheckError, MissingDependencyError, UntrustedFormatError
from ...model import Model, Param
from .layout import is_buffer, layers_from_named

INSTALL_HINT = "pip install 'initcheck[keras]'"


def _available(name: str) -> bool:
    """Whether a module could be imported, without importing it (a None entry in sys.modules blocks it)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def import_keras() -> Any:
    """Import Keras 3, choosing a backend that is installed when the user has not chosen one.

    Raises MissingDependencyError (exit 2) with an install hint when Keras or every backend is missing.
    """
    from ..quiet import quiet_framework_logs

    quiet_framework_logs()
    if sys.modules.get("keras") is not None:
        return sys.modules["keras"]
    if not _available("keras"):
        raise MissingDependencyError(f"this is a Keras model and keras is not installed: {INSTALL_HINT}")
    if "KERAS_BACKEND" not in os.environ and not _configured_backend() and not _available("tensorflow"):
        # Keras defaults to TensorFlow; pick what the user has so that a torch-only install still works
        for backend in ("torch", "jax"):
            if _available(backend):
                os.environ["KERAS_BACKEND"] = backend
                break
        else:
            raise MissingDependencyError("Keras needs a backend and none is installed: "
                                         f"{INSTALL_HINT} (TensorFlow), or install torch and set KERAS_BACKEND=torch")
    try:
        import keras
    except ImportError as e:
        raise MissingDependencyError(f"keras cannot be imported ({_one_line(e)}): {INSTALL_HINT}") from None
    if not hasattr(keras, "saving") or not str(getattr(keras, "__version__", "3")).startswith("3"):
        raise MissingDependencyError(f"initcheck needs Keras 3 (found {getattr(keras, '__version__', '?')}): "
                                     f"{INSTALL_HINT}")
    return keras


def _configured_backend() -> bool:
    """True when ~/.keras/keras.json (or $KERAS_HOME) names a backend: respect the user's choice."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return bool(json.load(f).get("backend"))
    except (OSError, ValueError, AttributeError):
        return False


def import_tensorflow() -> Any:
    from ..quiet import quiet_framework_logs

    quiet_framework_logs()
    try:
        import tensorflow as tf
    except ImportError:
        raise MissingDependencyError(f"a TensorFlow SavedModel needs tensorflow, which is not installed: "
                                     f"{INSTALL_HINT}") from None
    return tf


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


# ------------------------------------------------------------------------------------------ files
def load_keras_file(path: str, fmt: str, trust: bool = False, model_factory: str | None = None) -> Model:
    """Load a file sniffed as ``keras_zip``, ``hdf5`` or ``saved_model``.

    ``model_factory`` (``package.module:factory``) builds the architecture for a weights-only
    ``.weights.h5``; it is ignored for files that hold their own architecture.
    """
    if fmt == "saved_model":
        return load_saved_model(path, trust)
    if fmt == "keras_zip":
        config = _zip_config(path)
        _gate_lambdas(path, config, trust)
        _guard_archive_weights(path)
        return _load_full(path, "keras", trust)
    if fmt == "hdf5":
        kind, config = _h5_kind(path)
        if kind == "weights":
            if model_factory:
                return load_weights_with_factory(path, model_factory)
            return load_weights_file(path)
        _gate_lambdas(path, config, trust)
        return _load_full(path, "h5", trust)
    raise InitcheckError(f"not a Keras format: {fmt}", path)  # pragma: no cover - load.py dispatches


def _load_full(path: str, fmt: str, trust: bool) -> Model:
    keras = import_keras()
    try:
        obj = keras.saving.load_model(path, compile=False, safe_mode=not trust)
    except InitcheckError:
        raise
    except Exception as e:
        msg = _one_line(e)
        if "safe_mode" in str(e) or "Lambda" in str(e) and "lambda" in str(e):
            raise UntrustedFormatError("holds a Lambda layer with Python bytecode: loading it executes code; "
                                       "pass --trust if you trust its source", path) from None
        if "Could not locate" in msg or "Unknown layer" in msg or "custom_objects" in msg:
            raise InitcheckError(f"uses a custom class Keras cannot find ({msg}); check it from Python with "
                                 "initcheck.check(model) after importing your code", path) from None
        raise InitcheckError(f"cannot load as a Keras model: {msg}", path) from e
    return model_from_keras(obj, path, fmt)


MAX_CONFIG = 64 * 1024 * 1024  # a .keras config.json of a very large model is a few MB


def _zip_config(path: str) -> Any:
    """The archive's ``config.json`` — the member of exactly that name, which Keras reads too (an archive
    with two members of one name is refused by :func:`~initcheck.frameworks.archive.open_checked`), read
    once, at most ``MAX_CONFIG`` inflated bytes."""
    from ..archive import open_checked, read_member

    with open_checked(path) as z:
        raw = read_member(z, "config.json", MAX_CONFIG, path)
    if raw is None:
        raise InitcheckError(".keras archive without a top-level config.json", path)
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise InitcheckError(".keras archive whose config.json is not JSON (or nested too deeply)", path) from None


H5_ERRORS = (OSError, ValueError, KeyError, RuntimeError, TypeError, IndexError, AttributeError)
MAX_H5_RATIO = 100  # compressed datasets: at most this many declared bytes per stored byte


def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise MissingDependencyError(f"reading .h5 files needs h5py: {INSTALL_HINT}") from None
    return h5py


def _guard_archive_weights(path: str) -> None:
    """The ``model.weights.h5`` inside a ``.keras`` archive, its datasets checked like a ``.h5`` file's
    (read in place through the archive: a stored member is seekable, nothing is extracted)."""
    from ..archive import ZIP_ERRORS, open_checked

    h5py = _import_h5py()
    with open_checked(path) as z:
        try:
            info = z.getinfo("model.weights.h5")
        except KeyError:
            return
        try:
            with z.open(info) as member, h5py.File(member, "r") as f:
                guard_h5_datasets(f, info.file_size, path)
        except InitcheckError:
            raise
        except H5_ERRORS + ZIP_ERRORS as e:
            raise InitcheckError(f"damaged model.weights.h5 in the archive ({_one_line(e)})", path) from None


def _h5_kind(path: str) -> tuple[str, Any]:
    """('model', config) for a full-model .h5, ('weights', None) for a weights-only file. Every dataset's
    declared size is held against the bytes stored for it first (:func:`guard_h5_datasets`)."""
    h5py = _import_h5py()
    try:
        with h5py.File(path, "r") as f:
            guard_h5_datasets(f, os.path.getsize(path), path)
            raw = f.attrs.get("model_config")
            if raw is None:
                if "layers" in f or "model_weights" in f or "vars" in f or len(f.attrs.get("layer_names", [])):
                    return "weights", None
                raise InitcheckError("HDF5 file that is neither a Keras model nor Keras weights", path)
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8")
            if not isinstance(raw, str):
                raise InitcheckError("HDF5 attribute model_config is not text", path)
            return "model", json.loads(raw)
    except InitcheckError:
        raise
    except RecursionError:
        raise InitcheckError("model_config nested too deeply", path) from None
    except H5_ERRORS as e:
        raise InitcheckError(f"cannot read HDF5 file ({_one_line(e)}); it may be truncated or damaged",
                             path) from None


def h5_datasets(f) -> list[tuple[str, Any]]:
    """(name, dataset) for every dataset in an open h5py file, in visit order."""
    import h5py

    found: list[tuple[str, Any]] = []
    f.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
    return found


def dataset_written(ds) -> bool:
    """False for a dataset that has no bytes stored: it was never written, reading it would only
    produce its fill value (an unwritten dataset is empty, not data)."""
    return ds.size == 0 or ds.id.get_storage_size() > 0


def guard_h5_datasets(f, file_size: int, path: str) -> None:
    """Refuse, before any read, a dataset whose declared size its stored bytes cannot hold: contiguous
    storage must equal the declared size; chunked (compressed) storage may hold at most
    ``MAX_H5_RATIO`` times fewer bytes; nothing may store more than the file has. Readers (h5py,
    Keras) allocate the declared size: a 17 KB file can declare a 14 GB dataset."""
    for name, ds in h5_datasets(f):
        if ds.dtype.kind not in "fiucb":  # strings, references: their bytes live elsewhere (and are not read)
            continue
        declared = int(ds.size) * ds.dtype.itemsize
        stored = ds.id.get_storage_size()
        if stored > file_size:
            raise InitcheckError(f"dataset {name} claims {stored} stored bytes, the file has {file_size} "
                                 "(damaged or forged)", path)
        if stored == 0:
            continue  # unwritten: never read (see dataset_written)
        if ds.chunks is None and ds.compression is None and stored != declared:
            raise InitcheckError(f"dataset {name} declares shape {ds.shape} ({declared} bytes) but stores "
                                 f"{stored} (damaged or forged)", path)
        if declared > MAX_H5_RATIO * max(stored, 4096):
            raise InitcheckError(f"dataset {name} declares shape {ds.shape} ({declared} bytes) for {stored} "
                                 f"stored bytes (more than {MAX_H5_RATIO}x): refused", path)


def lambda_layers(config: Any) -> list[str]:
    """Names of Lambda layers anywhere in a serialized Keras config (they hold Python bytecode)."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                cfg = node.get("config") or {}
                found.append(str(cfg.get("name", "lambda")))
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(config)
    return found


def _gate_lambdas(path: str, config: Any, trust: bool) -> None:
    names = lambda_layers(config)
    if names and not trust:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise UntrustedFormatError(f"Lambda layer {shown} holds Python code that runs when the model is loaded; "
                                   "pass --trust if you trust its source", path)


# ------------------------------------------------------------------------------------------ objects
def model_from_keras(obj: Any, display_path: str, fmt: str = "keras_model") -> Model:
    """A Model from a live ``keras.Model``: layers by class, fans in Keras' layouts, graph context."""
    from .graph import apply_context
    from .modules import LayerCollector

    if not getattr(obj, "built", True) or not getattr(obj, "weights", None):
        raise InitcheckError("the Keras model is not built (no weights yet): build it with an Input or call "
                             "it once on data", display_path)
    collector = LayerCollector()
    collector.collect_model(obj) if hasattr(obj, "layers") else collector.collect(obj)
    layers = collector.layers
    if not layers:
        raise InitcheckError("the Keras model has no floating-point weights", display_path)
    model = Model(path=display_path, format=fmt, framework="keras", layers=layers, handle=obj)
    try:
        apply_context(model, obj, collector)
    except Exception as e:  # graph internals differ across Keras versions: keep the layers, say why
        model.graph_notes.append(f"Keras graph not analyzed ({type(e).__name__}: {_one_line(e)})")
    backend = _backend_name()
    if backend:
        model.source_notes.append(f"Keras {getattr(sys.modules.get('keras'), '__version__', '?')}, "
                                  f"{backend} backend")
    return model


def _backend_name() -> str | None:
    keras = sys.modules.get("keras")
    try:
        return keras.backend.backend() if keras is not None else None
    except Exception:
        return None


# ------------------------------------------------------------------------------------------ weights only
def load_weights_with_factory(path: str, factory_spec: str) -> Model:
    """Build the architecture with ``factory_spec`` (``package.module:factory``), load ``path`` into it.

    The factory is called without arguments and must return a ``keras.Model`` (or a ``keras.Model``
    class); the weights file is a Keras ``.weights.h5`` (or legacy weights ``.h5``). Mismatched weights
    are exit 2 with Keras' reason. The returned Model's ``handle`` is the built model with these weights.
    """
    from ..factory import resolve_factory

    from ..factory import call_factory

    keras = import_keras()
    obj = call_factory(resolve_factory(factory_spec), factory_spec)
    if not isinstance(obj, keras.Model):
        raise InitcheckError(f"--model {factory_spec!r} returned a {type(obj).__name__}, not a keras.Model "
                             "(for a PyTorch state_dict the factory must return an nn.Module)", path)
    try:
        obj.load_weights(path)
    except Exception as e:
        raise InitcheckError(f"weights do not fit the model built by {factory_spec}: {_one_line(e)}", path) from e
    return model_from_keras(obj, path, "keras_weights")


def load_weights_file(path: str) -> Model:
    """A ``.weights.h5`` without its architecture: kinds and fans inferred from layer names and shapes.

    Read with h5py alone (no Keras, no code executed); graph context stays unknown. ``--model`` gives exact
    kinds, fans and context.
    """
    import h5py
    import numpy as np

    from ...model import TensorRef

    entries: list[tuple[str, str, Param]] = []
    with_moving: set[str] = set()
    unwritten: list[str] = []
    try:
        with h5py.File(path, "r") as f:
            guard_h5_datasets(f, os.path.getsize(path), path)
            for name, ds in h5_datasets(f):
                if ds.dtype.kind != "f":
                    continue
                if not dataset_written(ds):
                    unwritten.append(name)
                    continue
                parts = name.split("/")
                layer_path, leaf_name = _weights_h5_names(parts)
                shape = tuple(int(s) for s in ds.shape)
                data = np.asarray(ds[()])

                def raw(a=data) -> np.ndarray:
                    return a

                p = Param(f"{layer_path}/{leaf_name}", "bias" if leaf_name == "bias" else "weight",
                          TensorRef(shape, str(data.dtype), raw, unit_axis=-1))
                if leaf_name in ("moving_mean", "moving_variance"):
                    with_moving.add(layer_path)
                entries.append((layer_path, leaf_name, p))
    except InitcheckError:
        raise
    except H5_ERRORS as e:
        raise InitcheckError(f"cannot read HDF5 file ({_one_line(e)}); it may be truncated or damaged",
                             path) from None
    # BatchNormalization in positional files: 4 vectors (gamma, beta, moving mean, moving variance)
    counts: dict[str, list[tuple[str, str, Param]]] = {}
    for e in entries:
        counts.setdefault(e[0], []).append(e)
    kept: list[tuple[str, str, Param]] = []
    for layer_path, group in counts.items():
        vectors = all(len(p.shape) == 1 for _, _, p in group)
        if len(group) == 4 and vectors and all(leaf_name.isdigit() for _, leaf_name, _ in group):
            with_moving.add(layer_path)
            group = sorted(group, key=lambda g: int(g[1]))[:2]
        kept.extend(group)
    if not kept:
        hint = f" ({len(unwritten)} datasets were never written)" if unwritten else ""
        raise InitcheckError(f"no floating-point weights found in this .weights.h5 file{hint}", path)
    layers = layers_from_named(kept, with_moving)
    notes = ["weights-only file: kinds and fans inferred from names and shapes; pass "
             "--model package.module:factory for the exact architecture"]
    if unwritten:
        notes.append(f"{len(unwritten)} datasets never written (no stored bytes), skipped: "
                     + ", ".join(unwritten[:3]) + (", ..." if len(unwritten) > 3 else ""))
    return Model(path=path, format="keras_weights", framework="keras", layers=layers, source_notes=notes)


def _weights_h5_names(parts: list[str]) -> tuple[str, str]:
    """Layer path and variable name in Keras 3 ``.weights.h5`` (``layers/dense/vars/0``) and legacy
    ``model_weights/dense/dense/kernel:0`` layouts."""
    if "vars" in parts:
        i = len(parts) - 1 - parts[::-1].index("vars")
        names = [p for p in parts[:i] if p != "layers"]
        return "/".join(names) or "<root>", parts[-1]
    leaf_name = parts[-1].split(":")[0]
    body = [p for p in parts[:-1] if p != "model_weights"]
    # legacy: group per layer, then the layer's variable path (layer/var); drop the repeated layer name
    dedup: list[str] = []
    for p in body:
        if not dedup or dedup[-1] != p:
            dedup.append(p)
    return "/".join(dedup) or "<root>", leaf_name


# ------------------------------------------------------------------------------------------ SavedModel
def load_saved_model(path: str, trust: bool) -> Model:
    """A TensorFlow SavedModel: a program (its graph runs when restored), so only with ``trust``.

    Layers come from variable names and shapes (``dense/kernel:0`` in Keras layouts); Keras graph context
    is not available. Needs TensorFlow whatever the Keras backend.
    """
    if not trust:
        raise UntrustedFormatError("TensorFlow SavedModel: loading it runs the graph it holds; pass --trust if you "
                                   "trust its source", path)
    tf = import_tensorflow()
    try:
        obj = tf.saved_model.load(path)
    except AttributeError as e:
        if "add_slot" in str(e):  # optimizer slots of a Keras 2 model, restored without its Keras classes
            raise InitcheckError(f"TensorFlow cannot restore this SavedModel without the Keras classes that wrote "
                                 f"it ({_one_line(e)}): save the model with model.export(DIR) or as .keras and "
                                 "check that", path) from None
        raise InitcheckError(f"cannot load SavedModel: {_one_line(e)}", path) from e
    except Exception as e:
        raise InitcheckError(f"cannot load SavedModel: {_one_line(e)}", path) from e
    variables = list(getattr(obj, "variables", []) or [])
    if not variables:
        raise InitcheckError("SavedModel exposes no model variables (tf.saved_model.save of a Keras 3 model tracks "
                             "only its optimizer): save it with model.export(DIR) or as .keras and check that",
                             path)
    from .modules import assigner, is_float_variable, variable_ref

    entries: list[tuple[str, str, Param]] = []
    with_moving: set[str] = set()
    seen: set[int] = set()
    for v in variables:
        if id(v) in seen or not is_float_variable(v):
            continue
        seen.add(id(v))
        full = v.name.split(":")[0]
        layer_path, _, leaf_name = full.rpartition("/")
        if leaf_name in ("moving_mean", "moving_variance"):
            with_moving.add(layer_path)
        if is_buffer(leaf_name):
            continue
        role = {"kernel": "weight", "bias": "bias"}.get(leaf_name, leaf_name)
        entries.append((layer_path or full, leaf_name,
                        Param(full, role, variable_ref(v), assign=assigner(v), native=v)))
    entries, with_moving = _strip_model_prefix(entries, with_moving)
    layers = layers_from_named(entries, with_moving)
    if not layers:
        raise InitcheckError("SavedModel holds no floating-point weights", path)
    # handle stays None: no Keras graph here, so the judgement applies its order/name context
    return Model(path=path, format="saved_model", framework="keras", layers=layers,
                 source_notes=["SavedModel: kinds and fans from variable names and shapes; no Keras graph "
                               "context (check the .keras file for that)"])


def _strip_model_prefix(entries: list[tuple[str, str, Param]], with_moving: set[str]
                        ) -> tuple[list[tuple[str, str, Param]], set[str]]:
    """Drop the outer model's name (``sequential/``) that every variable path starts with, so that layer
    names match those of the same model loaded from ``.keras``."""
    firsts = {e[0].split("/", 1)[0] for e in entries}
    if len(firsts) != 1 or not all("/" in e[0] for e in entries):
        return entries, with_moving
    cut = len(next(iter(firsts))) + 1
    return [(lp[cut:], leaf_name, p) for lp, leaf_name, p in entries], {m[cut:] for m in with_moving}
