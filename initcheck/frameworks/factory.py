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
    from .quiet import captured_stderr

    try:
        with captured_stderr():
            module = _import(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # SystemExit too: user code that exits must not end initcheck's run with its code
        raise InitcheckError(f"--model {spec!r}: cannot import {module_name} ({_what(e)})") from None
    factory = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise InitcheckError(f"--model {spec!r}: {module_name} has no attribute {attr!r}")
    if not callable(factory):
        raise InitcheckError(f"--model {spec!r}: {attr} is not callable")
    return factory


def _import(module_name: str) -> Any:
    if module_name.endswith(".py"):
        loader_spec = importlib.util.spec_from_file_location("_initcheck_user_model", module_name)
        if loader_spec is None or loader_spec.loader is None:
            raise ImportError(module_name)
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
        return module
    return importlib.import_module(module_name)


def _what(e: BaseException) -> str:
    if isinstance(e, SystemExit):
        return f"it called sys.exit({e.code!r})"
    text = " ".join(str(e).split())[:200]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def call_factory(factory: Callable[[], Any], spec: str) -> Any:
    """``factory()`` (or the class itself when it is not callable); any failure, ``sys.exit`` included, is
    an InitcheckError naming ``spec``."""
    from .quiet import captured_stderr

    try:
        with captured_stderr():
            return factory() if callable(factory) else factory
    except KeyboardInterrupt:
        raise
    except InitcheckError:
        raise
    except BaseException as e:
        raise InitcheckError(f"--model {spec!r} failed when called ({_what(e)})") from None


def build_torch_module(model, spec: str):
    """Build ``spec``'s nn.Module, load the model's tensors into it (exact names and shapes) and return
    a new Model read from the module, keeping the file's path and format."""
    import numpy as np
    import torch

    from .torch.load import model_from_module

    module = call_factory(resolve_factory(spec), spec)
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
