"""Siblings: layers that play the same role in repeated blocks, and so were initialized alike."""

from __future__ import annotations

import re

from ..model import Layer, Model

_INDEX = re.compile(r"(?<=[._/])\d+(?=[._/]|$)")


def sibling_key(layer: Layer) -> tuple:
    """Layers playing the same role: same kind and shape, names equal up to block indices."""
    return layer.kind, tuple(layer.shape), _INDEX.sub("#", layer.name)


def sibling_groups(model: Model) -> dict[tuple, list[Layer]]:
    """Groups of at least two matrices whose names differ only in block indices (computed once per model)."""
    cached = getattr(model, "_sibling_groups", None)
    if cached is not None and cached[0] == len(model.layers):
        return cached[1]
    groups: dict[tuple, list[Layer]] = {}
    for layer in model.layers:
        key = sibling_key(layer)
        if layer.is_matrix and "#" in key[2]:
            groups.setdefault(key, []).append(layer)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    model._sibling_groups = (len(model.layers), groups)
    return groups
