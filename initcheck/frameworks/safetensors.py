"""safetensors files read with numpy alone (memory-mapped): no framework import, nothing executed.

Format: 8-byte little-endian header length N, N bytes of JSON ({name: {dtype, shape, data_offsets}},
optional "__metadata__"), then the raw little-endian tensor bytes.
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Iterable

import numpy as np

from ..errors import InitcheckError
from ..model import BIT_DECODERS, FLOAT_DTYPES, TensorRef

# safetensors dtype → (our dtype name, numpy dtype of the stored bits); None: a dtype the format knows
# that holds no float weights initcheck judges (read past, never decoded)
_DTYPES = {
    "F64": ("float64", np.dtype("<f8")),
    "F32": ("float32", np.dtype("<f4")),
    "F16": ("float16", np.dtype("<f2")),
    "BF16": ("bfloat16", np.dtype("<u2")),
    "F8_E5M2": ("float8_e5m2", np.dtype("u1")),
    "F8_E4M3": ("float8_e4m3fn", np.dtype("u1")),
    "I64": ("int64", np.dtype("<i8")),
    "I32": ("int32", np.dtype("<i4")),
    "I16": ("int16", np.dtype("<i2")),
    "I8": ("int8", np.dtype("i1")),
    "U64": ("uint64", np.dtype("<u8")),
    "U32": ("uint32", np.dtype("<u4")),
    "U16": ("uint16", np.dtype("<u2")),
    "U8": ("uint8", np.dtype("u1")),
    "BOOL": ("bool", np.dtype("?")),
}
MAX_HEADER = 100 * 1024 * 1024  # the format's own limit
_U64 = 2 ** 64
_ENTRY_KEYS = ("dtype", "shape", "data_offsets")


class _HeaderError(ValueError):
    """A header that the reference reader (the ``safetensors`` library) rejects too."""


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    """``object_pairs_hook``: json.loads would silently keep the last of two equal keys."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _HeaderError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _integer(text: str) -> int:
    """``parse_int``: the format's integers are unsigned 64-bit (``-0`` included, the reference refuses it)."""
    if text.startswith("-"):
        raise _HeaderError(f"negative integer {text}")
    value = int(text)
    if value >= _U64:
        raise _HeaderError(f"integer {text} does not fit in 64 bits")
    return value


def _no_float(text: str) -> float:
    raise _HeaderError(f"number {text} where the format allows only integers and strings")


def _no_constant(text: str) -> float:
    raise _HeaderError(f"{text} is not JSON")


def _checked_text(s: str, what: str) -> str:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise _HeaderError(f"{what} holds an unpaired surrogate escape") from None
    return s


def parse_header(raw: bytes) -> dict:
    """The header's JSON exactly as strictly as the ``safetensors`` library reads it: UTF-8, an object,
    no duplicate keys, integers only (unsigned, 64-bit), no NaN; ``__metadata__`` a str→str map (or null);
    every other entry ``{dtype, shape, data_offsets}`` with known dtype, integer shape and two offsets.
    Raises :class:`_HeaderError` with the reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _HeaderError("not UTF-8") from None
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_integer, parse_float=_no_float,
                            parse_constant=_no_constant)
    except _HeaderError:
        raise
    except RecursionError:
        raise _HeaderError("JSON nested too deeply") from None
    except ValueError as e:
        raise _HeaderError(f"not JSON ({str(e).splitlines()[0][:80]})") from None
    if not isinstance(header, dict):
        raise _HeaderError("not a JSON object")
    for name, info in header.items():
        _checked_text(name, "a key")
        if name == "__metadata__":
            _check_metadata(info)
        else:
            _check_entry(name, info)
    return header


def _json_type(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "an integer", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _check_metadata(meta: object) -> None:
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise _HeaderError(f"__metadata__ is {_json_type(meta)}, not a map of strings to strings")
    for k, v in meta.items():
        if not isinstance(v, str):
            raise _HeaderError(f"__metadata__ value of {k!r} is {_json_type(v)}, not a string")
        _checked_text(v, "__metadata__")


def _check_entry(name: str, info: object) -> None:
    if not isinstance(info, dict) or any(k not in info for k in _ENTRY_KEYS):
        raise _HeaderError(f"entry {name!r} lacks dtype, shape or data_offsets")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise _HeaderError(f"tensor {name!r} has unsupported dtype {dtype!r}")
    if not isinstance(shape, list) or not all(type(s) is int for s in shape):
        raise _HeaderError(f"tensor {name!r} has shape {shape!r}, not a list of integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets):
        raise _HeaderError(f"tensor {name!r} has data_offsets {offsets!r}, not two integers")
    count = 1
    for s in shape:  # checked like the reference: every partial product must fit in 64 bits
        count *= s
        if count >= _U64:
            raise _HeaderError(f"tensor {name!r}: shape {shape} overflows 64 bits")
    if count * _DTYPES[dtype][1].itemsize >= _U64:
        raise _HeaderError(f"tensor {name!r}: shape {shape} overflows 64 bits")


def read_header(path: str) -> tuple[dict, int]:
    """The parsed JSON header and the offset where tensor data starts.

    Validated as the reference reader validates: header length within the file and the format's 100 MiB
    limit, the JSON rules of :func:`parse_header`, each tensor's byte count equal to its shape times its
    dtype size, and the tensors' byte ranges, sorted, contiguous from 0 to the end of the file (no
    overlap, no hole, no trailing byte).
    """
    from ..paths import require_regular_file

    size = require_regular_file(path).st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise InitcheckError("truncated safetensors file (no header length)", path)
        (n,) = struct.unpack("<Q", head)
        if n <= MAX_HEADER and n > size - 8:
            raise InitcheckError(f"truncated safetensors file: its header alone is {n} bytes, the file has "
                                 f"{size}", path)
        if n > min(MAX_HEADER, size - 8):
            raise InitcheckError(f"invalid safetensors header length {n} for a file of {size} bytes", path)
        raw = f.read(n)
    try:
        header = parse_header(raw)
    except _HeaderError as e:
        raise InitcheckError(f"invalid safetensors header: {e}", path) from None
    data_start = 8 + n
    _check_layout(header, size - data_start, data_start, size, path)
    return header, data_start


def _check_layout(header: dict, data_size: int, data_start: int, size: int, path: str) -> None:
    """Byte ranges in offset order, each starting where the previous ended, the last ending at the file's end."""
    entries = sorted(((tuple(v["data_offsets"]), k) for k, v in header.items() if k != "__metadata__"))
    expected = 0
    for (start, end), name in entries:
        info = header[name]
        need = math.prod(info["shape"]) * _DTYPES[info["dtype"]][1].itemsize
        if end < start or end - start != need:
            raise InitcheckError(f"tensor {name!r}: data_offsets {start}..{end} do not fit its shape "
                                 f"{info['shape']}", path)
        if start != expected:
            what = "overlaps the previous tensor" if start < expected else f"leaves a hole after byte {expected}"
            raise InitcheckError(f"tensor {name!r}: data_offsets {start}..{end} {what} (invalid offsets)", path)
        if end > data_size:
            raise InitcheckError(f"truncated: tensor {name!r} ends at byte {data_start + end}, "
                                 f"file has {size}", path)
        expected = end
    if expected != data_size:
        raise InitcheckError(f"{data_size - expected} bytes after the last tensor (the file is not fully "
                             "covered by its header: damaged or tampered)", path)


def open_safetensors(path: str) -> tuple[dict[str, TensorRef], dict]:
    """Float tensors of one file, in file order of their data, lazily memory-mapped; and its metadata."""
    header, data_start = read_header(path)
    metadata = header.get("__metadata__") or {}
    entries = [(k, v) for k, v in header.items() if k != "__metadata__"]
    entries.sort(key=lambda kv: tuple(kv[1]["data_offsets"]))
    tensors: dict[str, TensorRef] = {}
    for name, info in entries:
        ours, np_dtype = _DTYPES[info["dtype"]]
        if ours not in FLOAT_DTYPES:
            continue
        shape = tuple(info["shape"])
        start = data_start + info["data_offsets"][0]
        count = math.prod(shape)
        tensors[name] = TensorRef(shape, ours, _mapper(path, np_dtype, start, count, shape),
                                  decode=BIT_DECODERS.get(ours))
    return tensors, metadata


def _mapper(path: str, dtype: np.dtype, offset: int, count: int, shape: tuple[int, ...]):
    def raw() -> np.ndarray:
        if count == 0:
            return np.zeros(shape, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,)).reshape(shape)

    return raw


MAX_INDEX = 64 * 1024 * 1024  # an index of a 1T-parameter model is a few MB


def read_index(path: str) -> list[str]:
    """The shard files named by a ``*.index.json``, each once, in order of first appearance.

    Every name must be a relative path that stays (symlinks resolved) inside the index's folder and names
    a regular file; two spellings of one file (``a.safetensors``, ``./a.safetensors``) are one shard.
    """
    from ..paths import inside, require_regular_file

    if require_regular_file(path).st_size > MAX_INDEX:
        raise InitcheckError(f"index file larger than {MAX_INDEX // 2**20} MiB: refused", path)
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"), object_pairs_hook=_no_duplicates)
    except _HeaderError as e:  # a tensor mapped twice: json.loads would keep the last shard silently
        raise InitcheckError(f"invalid index file: {e}", path) from None
    except (OSError, ValueError, RecursionError):
        raise InitcheckError("invalid index file (expected JSON with a 'weight_map')", path) from None
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise InitcheckError("invalid index file (expected JSON with a non-empty 'weight_map' object)", path)
    bad = next(((k, v) for k, v in weight_map.items() if not isinstance(v, str) or not v), None)
    if bad is not None:
        raise InitcheckError(f"invalid index file: weight_map[{bad[0]!r}] is {bad[1]!r}, not a shard file name",
                             path)
    folder = os.path.dirname(os.path.abspath(path))
    shards: list[str] = []
    seen: set[str] = set()
    for shard in weight_map.values():
        if shard in seen:
            continue
        seen.add(shard)
        if not os.path.lexists(os.path.join(folder, shard)) and not os.path.isabs(shard) and ".." not in shard:
            raise InitcheckError(f"shard {shard} named in the index is missing", path)
        full = inside(folder, shard, "shard", path)
        if all(not os.path.samefile(full, s) for s in shards):
            shards.append(full)
    return shards


def open_many(paths: Iterable[str]) -> tuple[dict[str, TensorRef], dict]:
    """Float tensors of several shards of one model; a tensor name in two shards is an error (one
    would silently replace the other)."""
    tensors: dict[str, TensorRef] = {}
    owner: dict[str, str] = {}
    metadata: dict = {}
    for p in paths:
        header, _ = read_header(p)
        for name in header:
            if name != "__metadata__" and name in owner:
                raise InitcheckError(f"tensor {name!r} is in two shards ({os.path.basename(owner[name])} and "
                                     f"{os.path.basename(p)}): these are not shards of one model", p)
            owner.setdefault(name, p)
        t, m = open_safetensors(p)
        tensors.update(t)
        metadata.update(m)
    return tensors, metadata
