"""Adapters from torch tensors to initcheck's framework-neutral TensorRef (zero-copy where possible)."""

from __future__ import annotations

import numpy as np

from ...model import BIT_DECODERS, TensorRef

_NATIVE = {"float16", "float32", "float64"}
_BITS = {"bfloat16": "int16", "float8_e5m2": "uint8", "float8_e4m3fn": "uint8"}


def dtype_name(t) -> str:
    return str(t.dtype).replace("torch.", "")


def is_float_tensor(t) -> bool:
    import torch

    return isinstance(t, torch.Tensor) and dtype_name(t) in _NATIVE | set(_BITS) and not t.is_meta \
        and not t.is_quantized


def tensor_ref(t, unit_axis: int = 0) -> TensorRef:
    """A TensorRef over a torch tensor; bfloat16/float8 travel as their bits and are decoded per block."""
    import torch

    t = t.detach()
    name = dtype_name(t)

    if name in _NATIVE:
        def raw() -> np.ndarray:
            return t.cpu().numpy()
    else:
        bits = getattr(torch, _BITS[name])

        def raw() -> np.ndarray:
            a = t.cpu().contiguous().view(bits).numpy()
            return a.view(np.uint16) if a.dtype == np.int16 else a

    return TensorRef(tuple(t.shape), name, raw, unit_axis=unit_axis, decode=BIT_DECODERS.get(name))


def storage_key(t) -> tuple:
    """Identity of a tensor's memory: equal keys mean tied (shared) parameters."""
    try:
        ptr = t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        ptr = id(t)
    return (ptr, t.storage_offset(), tuple(t.shape), tuple(t.stride()), str(t.dtype))


def assigner(t):
    """In-place writer for a torch tensor/parameter: keeps dtype, device and every alias (tied) intact."""
    import torch

    def assign(values: np.ndarray) -> None:
        new = torch.as_tensor(np.asarray(values)).reshape(t.shape).to(dtype=t.dtype, device=t.device)
        with torch.no_grad():
            t.data.copy_(new) if hasattr(t, "data") else t.copy_(new)

    return assign
