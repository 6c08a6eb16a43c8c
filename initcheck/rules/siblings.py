"""Siblings: layers that play the same role in repeated blocks, and so were initialized alike."""

from __future__ import annotations

import re

from ..model import Layer, Model

# a block index: a number between separators (blocks.3.mlp, h_7_attn); digits glued to a word are part of
# a role's name (fc1 and fc2, conv1 and conv2 play different roles)
_INDEX = re.compile(r"(?<=[._/])\d+(?=[._/]|$)")


def _keys(layer: Layer) -> list[tuple]:
    """One key per numeric name component: the name with that one index replaced by '#'."""
    out = []
    for m in _INDEX.finditer(layer.name):
        out.append((layer.kind, tuple(layer.shape), layer.name[:m.start()] + "#" + layer.name[m.end():]))
    return out


def sibling_key(layer: Layer, model: Model | None = None) -> tuple:
    """The group a layer belongs to: same kind and shape, names equal up to the block index.

    With several indices (``blocks.3.mlp.2``) the block index is the one whose replacement groups the most
    layers — the repeated blocks (``blocks.#.mlp.2``: one per block), not the positions inside one block
    (``blocks.3.mlp.#``)."""
    keys = _keys(layer)
    if not keys:
        return layer.kind, tuple(layer.shape), layer.name
    if model is None:
        return keys[0]
    counts = _key_counts(model)
    return max(keys, key=lambda k: (counts.get(k, 0), -keys.index(k)))


def _key_counts(model: Model) -> dict[tuple, int]:
    counts: dict[tuple, int] = {}
    for layer in model.layers:
        if layer.is_matrix:
            for k in _keys(layer):
                counts[k] = counts.get(k, 0) + 1
    return counts


def sibling_groups(model: Model) -> dict[tuple, list[Layer]]:
    """Groups of at least two matrices whose names differ only in the block index (computed once per model)."""
    cached = getattr(model, "_sibling_groups", None)
    if cached is not None and cached[0] == len(model.layers):
        return cached[1]
    groups: dict[tuple, list[Layer]] = {}
    for layer in model.layers:
        key = sibling_key(layer, model)
        if layer.is_matrix and "#" in key[2]:
            groups.setdefault(key, []).append(layer)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    model._sibling_groups = (len(model.layers), groups)
    return groups
