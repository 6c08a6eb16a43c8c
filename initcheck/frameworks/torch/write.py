"""Write a fixed PyTorch (or safetensors) model back in the format it was read from, atomically.

* state_dict / checkpoint dict / pickled module (``torch.save`` zip or legacy files): the input file is
  loaded again (``weights_only=True``; a pickled module only with ``trust``), the changed tensors are
  overwritten in that fresh object by name, and the object is saved whole — every other checkpoint entry
  (optimizer state, epoch, config) comes back untouched, under the same key, and tensors that shared
  storage in the input (tied weights) still share it. Legacy (pre-zip) files are written in the legacy
  format.
* TorchScript (``trust``): the live, fixed module is saved with ``torch.jit.save``.
* safetensors: the file is copied byte for byte and only the byte ranges of changed tensors are
  rewritten (same dtype, same offsets): header, metadata and every other tensor stay bit-identical.
  Needs no framework (bfloat16 is rounded to nearest even with numpy; float8 needs torch).

Every writer goes through :func:`initcheck.io.atomic_output`: a temporary file in the output's folder,
which the caller may ``verify`` (reload and re-check), renamed over the output (``os.replace``) with the
input's file mode; on any failure or signal the temporary file is removed and nothing at the output path
changes. Sharded files, directories and ``torch.export`` programs are not
written (an :class:`~initcheck.errors.InitcheckError` says so).
"""

from __future__ import annotations

import os
import shutil
from typing import Callable, Iterable

import numpy as np

from ...errors import InitcheckError
from ...io import atomic_output
from ...model import Model

Verify = Callable[[str], None]


def write_model(model: Model, changes: Iterable, out_path: str, *, trust: bool = False,
                verify: Verify | None = None) -> None:
    """Write ``model`` (loaded from ``model.path``, fixed by ``changes``) to ``out_path`` in its format.

    ``changes`` are :class:`initcheck.fix.Change` objects whose ``values`` hold the new tensors.
    """
    changes = list(changes)
    src = model.path
    if not src or src.startswith("<") or not os.path.isfile(src):
        raise InitcheckError("only models read from a single file can be written back", src or None)
    if model.framework == "safetensors" or model.format.startswith("safetensors"):  # also via --model
        if model.format != "safetensors":
            raise InitcheckError(f"writing {model.format} (several files) is not supported; fix the shards "
                                 "one by one", src)
        atomic_output(out_path, lambda tmp: write_safetensors(src, changes, tmp), verify, mode_from=src)
        return
    if model.framework != "torch":
        raise InitcheckError(f"not a PyTorch model ({model.framework})", src)
    if model.format == "exported_program":
        raise InitcheckError("writing torch.export programs (.pt2) is not supported", src)
    if model.format == "torchscript":
        if not trust:
            raise InitcheckError("TorchScript: writing needs --trust (it was loaded with it)", src)
        import torch

        atomic_output(out_path, lambda tmp: torch.jit.save(model.handle, tmp), verify, mode_from=src)
        return
    atomic_output(out_path, lambda tmp: _write_torch_object(src, changes, tmp, trust), verify, mode_from=src)


# ----------------------------------------------------------------------------------- torch.save files
def _write_torch_object(src: str, changes: list, dest: str, trust: bool) -> None:
    import torch

    from ..sniff import sniff
    from .load import find_model_tensors, strip_wrapper_prefixes

    fmt = sniff(src)
    if fmt not in ("torch_zip", "torch_legacy", "pickle"):
        raise InitcheckError(f"cannot write a {fmt} file as a PyTorch checkpoint", src)
    try:
        obj = torch.load(src, map_location="cpu", weights_only=True)
    except Exception:
        if not trust:
            raise InitcheckError("the file holds pickled Python objects; writing it back needs --trust", src) \
                from None
        obj = torch.load(src, map_location="cpu", weights_only=False)
    if isinstance(obj, torch.nn.Module):
        named = _module_tensors(obj)
    elif isinstance(obj, dict):
        key, inner = find_model_tensors(obj)
        if isinstance(inner, torch.nn.Module):
            named = _module_tensors(inner)
        else:
            named, _ = strip_wrapper_prefixes({k: v for k, v in inner.items() if isinstance(k, str)},
                                              in_checkpoint=key is not None)
    else:
        raise InitcheckError(f"holds a {type(obj).__name__}; cannot write it back", src)
    for c in changes:
        t = named.get(c.tensor)
        if t is None or c.values is None:
            raise InitcheckError(f"tensor {c.tensor!r} not found when writing back", src)
        new = torch.as_tensor(np.asarray(c.values)).reshape(t.shape).to(dtype=t.dtype)
        with torch.no_grad():
            (t.data if hasattr(t, "data") else t).copy_(new)
    kwargs = {"_use_new_zipfile_serialization": False} if fmt == "torch_legacy" else {}
    torch.save(obj, dest, **kwargs)


def _module_tensors(module) -> dict:
    named = dict(module.named_parameters(remove_duplicate=False))
    for k, v in module.named_buffers(remove_duplicate=False):
        named.setdefault(k, v)
    return named


# ----------------------------------------------------------------------------------------- safetensors
def write_safetensors(src: str, changes: list, dest: str) -> None:
    """Copy ``src`` to ``dest`` and rewrite only the changed tensors' bytes (same dtype and offsets)."""
    from ..safetensors import _DTYPES, read_header

    header, data_start = read_header(src)
    shutil.copyfile(src, dest)
    with open(dest, "r+b") as f:
        for c in changes:
            info = header.get(c.tensor)
            if info is None or c.values is None:
                raise InitcheckError(f"tensor {c.tensor!r} not found when writing back", src)
            ours, np_dtype = _DTYPES[info["dtype"]]
            data = encode(np.asarray(c.values).reshape(tuple(info["shape"])), ours, np_dtype)
            start, end = info["data_offsets"]
            if len(data) != end - start:  # pragma: no cover - encode keeps sizes
                raise InitcheckError(f"tensor {c.tensor!r}: encoded size differs", src)
            f.seek(data_start + start)
            f.write(data)


def encode(values: np.ndarray, dtype: str, np_dtype: np.dtype) -> bytes:
    """Little-endian bytes of ``values`` stored as ``dtype`` (initcheck's dtype names)."""
    if dtype in ("float16", "float32", "float64"):
        return np.ascontiguousarray(values, dtype=np_dtype).tobytes()
    if dtype == "bfloat16":
        f32 = np.ascontiguousarray(values, dtype=np.float32)
        bits = f32.view(np.uint32).astype(np.uint64)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        rounded = np.where(np.isnan(f32), np.uint16(0x7FC0), rounded)
        return rounded.astype("<u2").tobytes()
    if dtype.startswith("float8"):
        try:
            import torch
        except ImportError:
            raise InitcheckError(f"writing {dtype} tensors needs torch") from None
        t = torch.as_tensor(np.ascontiguousarray(values, dtype=np.float32)).to(getattr(torch, dtype))
        return t.view(torch.uint8).numpy().tobytes()
    raise InitcheckError(f"cannot write tensors of dtype {dtype}")
