"""Tell a model file's format from its content (magic bytes, archive members), not its extension."""

from __future__ import annotations

import json
import os
import struct
import zipfile

from ..errors import InitcheckError

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# torch's legacy (pre-1.6) serialization starts with a pickled magic number: 0x1950a86a20f9469cfc6c
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit
MAX_INDEX_JSON = 64 * 1024 * 1024  # larger JSON is no index (and is not parsed)
TORCH_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def sniff(path: str) -> str:
    """One of: safetensors, safetensors_index, torch_zip, torch_legacy, pickle, torchscript,
    exported_program, keras_zip, hdf5, saved_model, hf_directory. Raises InitcheckError otherwise."""
    from ..paths import require_regular_file

    if os.path.isdir(path):
        return _sniff_directory(path)
    size = require_regular_file(path).st_size
    if size == 0:
        raise InitcheckError("empty file", path)
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise InitcheckError(f"cannot read: {e.strerror or e}", path) from None
    if head.startswith(ZIP_MAGIC) or _is_zip(path):
        return _sniff_zip(path)
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if len(head) >= 10 and _looks_like_safetensors(path, head, size):
        return "safetensors"
    if head[:1] == b"\x80" and len(head) > 2 and head[1] in (2, 3, 4, 5):
        if TORCH_LEGACY_MAGIC in head[:32]:
            return "torch_legacy"
        return "pickle"
    if size < 16 and not head.lstrip()[:1] == b"{":
        raise InitcheckError(f"not a model file: only {size} bytes (empty or truncated)", path)
    if head.lstrip()[:1] == b"{":
        doc = None
        if size <= MAX_INDEX_JSON:
            try:
                with open(path, "rb") as f:
                    doc = json.loads(f.read().decode("utf-8"))
            except (ValueError, UnicodeDecodeError, RecursionError):
                doc = None
        if isinstance(doc, dict) and isinstance(doc.get("weight_map"), dict):
            return "safetensors_index" if _index_points_to(doc, ".safetensors") else "torch_index"
    raise InitcheckError(f"not a model file initcheck can read: the content looks like {_describe(head)}"
                         f"{_name_says(path)}; expected a PyTorch checkpoint, safetensors, Keras .keras/.h5 "
                         "or a SavedModel directory", path)


# What an extension promises, for messages about files whose content says otherwise.
EXTENSION_FORMATS = {
    ".safetensors": "safetensors", ".pt": "PyTorch", ".pth": "PyTorch", ".bin": "PyTorch", ".ckpt": "PyTorch",
    ".pt2": "torch.export", ".ptl": "PyTorch", ".keras": "Keras", ".h5": "HDF5/Keras", ".hdf5": "HDF5/Keras",
    ".json": "index JSON",
}


def expected_by_name(path: str) -> str | None:
    """The format a file's extension promises (None when the extension says nothing)."""
    return EXTENSION_FORMATS.get(os.path.splitext(path)[1].lower())


def _name_says(path: str) -> str:
    said = expected_by_name(path)
    return f" although its name says {said}" if said else ""


def _describe(head: bytes) -> str:
    """A few words about unrecognized content: text, JSON, or binary."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of no known model format"
    if text.lstrip().startswith(("{", "[")):
        return "JSON that is not a safetensors/PyTorch index (no 'weight_map')"
    return "text"


def _is_zip(path: str) -> bool:
    from .archive import ZIP_ERRORS

    try:
        return zipfile.is_zipfile(path)
    except ZIP_ERRORS:
        return False


def _index_points_to(doc: dict, suffix: str) -> bool:
    return any(str(v).endswith(suffix) for v in doc["weight_map"].values())


def _looks_like_safetensors(path: str, head: bytes, size: int) -> bool:
    """8-byte little-endian header length, then a JSON object. A header length past the end of the file
    still counts (a truncated safetensors file), so the reader reports the truncation clearly."""
    (n,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or n < 2 or n > MAX_SAFETENSORS_HEADER:
        return False
    if n <= size - 8:
        return True
    return head[9:10] in (b'"', b"}", b" ", b"\n")  # '{"name": ...' cut short: truncated


def _sniff_zip(path: str) -> str:
    from .archive import open_checked

    with open_checked(path) as z:
        names = z.namelist()
    base = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if "config.json" in base and ("model.weights.h5" in base or "metadata.json" in base):
        return "keras_zip"
    if any(n.endswith("serialized_exported_program.json") or n.endswith("archive_format") or
           "/models/" in n and n.endswith(".json") for n in names):
        return "exported_program"
    if any("/code/" in n or n.startswith("code/") for n in names) and "constants.pkl" in base:
        return "torchscript"
    if "data.pkl" in base:
        return "torch_zip"
    raise InitcheckError(f"a zip archive that is neither a PyTorch checkpoint nor a Keras model{_name_says(path)}",
                         path)


def _sniff_directory(path: str) -> str:
    """saved_model, or hf_directory: a folder of model files (load.directory_plan says how to read it)."""
    try:
        entries = set(os.listdir(path))
    except OSError as e:
        raise InitcheckError(f"cannot list directory: {e.strerror or e}", path) from None
    if "saved_model.pb" in entries or "saved_model.pbtxt" in entries:
        return "saved_model"
    return "hf_directory"
