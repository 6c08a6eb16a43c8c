"""Normalizations whose stored scale is an offset from 1 (Gemma's ``x · (1 + weight)``), measured.

A norm's weight of zeros means "scale 1" in Gemma, Qwen3-Next and other zero-centered RMSNorms, and "block
the signal" everywhere else. The module itself says which: initcheck runs each norm whose weight is all
zeros once on a small random input (no_grad, the module's own code, as the graph trace already does) and
looks at the output.
"""

from __future__ import annotations


def zero_centered_norms(root, names: dict[str, str]) -> set[str]:
    """Layer names (values of ``names``: module name → layer name) of norms that pass a signal with an
    all-zero weight, so their effective scale is 1 + weight."""
    import torch

    out: set[str] = set()
    modules = dict(root.named_modules())
    for mod_name, layer_name in names.items():
        module = modules.get(mod_name)
        w = getattr(module, "weight", None)
        if module is None or not isinstance(w, torch.Tensor) or w.dim() != 1 or bool(w.detach().any()):
            continue
        x = torch.randn(2, w.shape[0], generator=torch.Generator().manual_seed(0), dtype=w.dtype, device=w.device)
        try:
            with torch.no_grad():
                y = module(x)
        except (RuntimeError, TypeError, ValueError, IndexError, AssertionError, NotImplementedError):
            continue  # a norm that needs another input layout (BatchNorm2d, timm's BatchNormAct2d asserts 4-D): no evidence
        if isinstance(y, torch.Tensor) and bool(torch.isfinite(y).all()) and float(y.abs().max()) > 0:
            out.add(layer_name)
    return out
