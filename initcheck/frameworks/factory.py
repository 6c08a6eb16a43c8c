"""``--model package.module:factory``: build the user's architecture and load a tensor-only file into it.

This imports and runs the user's own code (it is their model definition), never code from the model file.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any, Callable

from ..errors import InitcheckError


def resolve_factory(spec: str) -> Callable[[], Any]:
    """``package.module:callable``, ``package.module.callable`` or ``path/file.py:callable`` → the callable.

    The current directory is importable, as with ``python -m``: the user's modules next to the model.
    """
    if ":" in spec:
        module_name, _, attr = spec.rpartition(":")
    else:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise InitcheckError(f"--model {spec!r} must look like package.module:factory")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if module_name.endswith(".py"):

            loader_spec = importlib.util.spec_from_file_location("_initcheck_user_model", module_name)
            if loader_spec is None or loader_spec.loader is None:
                raise ImportError(module_name)
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as e:
        raise InitcheckError(f"--model {spec!r}: cannot import {module_name} ({type(e).__name__}: {e})") from None
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise InitcheckError(f"--model {spec!r}: {module_name} has no attribute {attr!r}")
    if not callable(factory):
        raise InitcheckError(f"--model {spec!r}: {attr} is not callable")
    return factory


def build_torch_module(model, spec: str):
    """Build ``spec``'s nn.Module, load the model's tensors into it (exact names and shapes) and return
    a new Model read from the module, keeping the file's path and format."""
    import numpy as np
    import torch

    from .torch.load import model_from_module

    module = resolve_factory(spec)()
    if not isinstance(module, torch.nn.Module):
        raise InitcheckError(f"--model {spec!r} returned a {type(module).__name__}, not an nn.Module")
    state: dict[str, Any] = {}
    for layer in model.layers:
        for p in layer.params:
            t = p.native if isinstance(p.native, torch.Tensor) else torch.tensor(np.asarray(p.tensor.numpy()))
            for name in (p.name, *p.aliases):
                state[name] = t
    expected = dict(module.named_parameters(remove_duplicate=False))
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and k not in dict(module.named_buffers())]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} ({', '.join(missing[:3])}{'…' if len(missing) > 3 else ''})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} ({', '.join(unexpected[:3])}{'…' if len(unexpected) > 3 else ''})")
        raise InitcheckError(f"tensors do not match --model {spec}: " + "; ".join(parts), model.path)
    for name, param in expected.items():
        if tuple(param.shape) != tuple(state[name].shape):
            raise InitcheckError(f"tensor {name} has shape {tuple(state[name].shape)}, --model {spec} expects "
                                 f"{tuple(param.shape)}", model.path)
    with torch.no_grad():
        for name, param in expected.items():
            param.copy_(state[name].to(param.dtype))
    rebuilt = model_from_module(module, model.path, model.format)
    rebuilt.checkpoint_key = model.checkpoint_key
    rebuilt.source_notes = list(model.source_notes) + [f"architecture from --model {spec}"]
    return rebuilt
