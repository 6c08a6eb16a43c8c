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

# safetensors dtype → (our dtype name, numpy dtype of the stored bits)
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
    "U8": ("uint8", np.dtype("u1")),
    "BOOL": ("bool", np.dtype("?")),
}
MAX_HEADER = 100 * 1024 * 1024  # the format's own limit


def read_header(path: str) -> tuple[dict, int]:
    """The parsed JSON header and the offset where tensor data starts; validates every entry."""
    size = os.path.getsize(path)
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
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InitcheckError("invalid safetensors header (not JSON)", path) from None
    if not isinstance(header, dict):
        raise InitcheckError("invalid safetensors header (not a JSON object)", path)
    data_start = 8 + n
    data_size = size - data_start
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise InitcheckError(f"invalid safetensors entry for {name!r}", path) from None
        if not (isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                 for s in shape)
                and all(isinstance(o, int) and not isinstance(o, bool) for o in (start, end))
                and isinstance(dtype, str)):
            raise InitcheckError(f"invalid safetensors entry for {name!r} (shape {shape!r}, "
                                 f"data_offsets {info['data_offsets']!r})", path)
        if dtype not in _DTYPES:
            raise InitcheckError(f"tensor {name!r} has unsupported dtype {dtype}", path)
        need = math.prod(shape) * _DTYPES[dtype][1].itemsize
        if end - start != need or start < 0:
            raise InitcheckError(f"tensor {name!r}: data_offsets {start}..{end} do not fit its shape {shape}", path)
        if end > data_size:
            raise InitcheckError(f"truncated: tensor {name!r} ends at byte {data_start + end}, "
                                 f"file has {size}", path)
    return header, data_start


def open_safetensors(path: str) -> tuple[dict[str, TensorRef], dict]:
    """Float tensors of one file, in file order of their data, lazily memory-mapped; and its metadata."""
    header, data_start = read_header(path)
    metadata = header.get("__metadata__") or {}
    entries = [(k, v) for k, v in header.items() if k != "__metadata__"]
    entries.sort(key=lambda kv: kv[1]["data_offsets"][0])
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


def read_index(path: str) -> list[str]:
    """The shard files named by a ``*.index.json`` (in order of first appearance), checked to exist."""
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
        weight_map = doc["weight_map"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InitcheckError("invalid index file (expected JSON with a 'weight_map')", path) from None
    folder = os.path.dirname(os.path.abspath(path))
    shards: list[str] = []
    for shard in weight_map.values():
        full = os.path.join(folder, shard)
        if full not in shards:
            shards.append(full)
    missing = [s for s in shards if not os.path.exists(s)]
    if missing:
        raise InitcheckError(f"shard {os.path.basename(missing[0])} named in the index is missing", path)
    return shards


def open_many(paths: Iterable[str]) -> tuple[dict[str, TensorRef], dict]:
    tensors: dict[str, TensorRef] = {}
    metadata: dict = {}
    for p in paths:
        t, m = open_safetensors(p)
        tensors.update(t)
        metadata.update(m)
    return tensors, metadata
