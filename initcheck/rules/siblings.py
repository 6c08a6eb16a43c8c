"""Siblings: layers that play the same role in repeated blocks, and so were initialized alike."""

from __future__ import annotations

import re

from ..model import Layer, Model

# a block index: a number between separators (blocks.3.mlp, h_7_attn); digits glued to a word are part of
# a role's name (fc1 and fc2, conv1 and conv2 play different roles)
_INDEX = re.compile(r"(?<=[._/])\d+(?=[._/]|$)")


# Keras names the first layer of a class without a counter and the next ones name_1, name_2...: in a
# Keras path (``decoder/attention`` and ``decoder_1/attention``) a component without a counter is index 0
_KERAS_FIRST = re.compile(r"(?<![^/])([A-Za-z][A-Za-z0-9_]*[A-Za-z])(?=/)")  # digits inside: qwen3_moe_decoder


def _keys(layer: Layer) -> list[tuple]:
    """One key per numeric name component: the name with that one index replaced by '#' (a Keras path's
    component without a counter counts as index 0)."""
    out = []
    for m in _INDEX.finditer(layer.name):
        out.append((layer.kind, tuple(layer.shape), layer.name[:m.start()] + "#" + layer.name[m.end():]))
    if "/" in layer.name:
        for m in _KERAS_FIRST.finditer(layer.name):
            out.append((layer.kind, tuple(layer.shape), layer.name[:m.end()] + "_#" + layer.name[m.end():]))
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



def structure_key(layer: Layer) -> tuple:
    """The layer's place in the repeated structure: kind, and its name with every index replaced by '#'
    (``stages.#.blocks.#.mlp.fc2``): the same role in every stage, whatever the stage's width. A Keras
    path's components get their counter, 0 when they have none."""
    name = _KERAS_FIRST.sub(lambda m: m.group(1) + "_0", layer.name) if "/" in layer.name else layer.name
    return layer.kind, _INDEX.sub("#", name), _form(layer)


def _form(layer: Layer) -> tuple[bool, ...]:
    """Which axes have size 1: a depthwise kernel (C, 1, 3, 3), a pointwise (O, I, 1, 1) and a 3×3 conv
    are told apart even where a weights-only file calls them all conv2d."""
    return tuple(d == 1 for d in layer.shape)


def _module_key(layer: Layer) -> tuple:
    """Kind and the module's own name, the name's last component (``down_proj``, ``se.conv_reduce`` keeps
    only ``conv_reduce``): a weaker grouping, for layers their structure leaves alone."""
    parts = [p for p in re.split(r"[./]", layer.name) if p and not p.isdigit()]
    return layer.kind, "…" + (parts[-1] if parts else layer.name), _form(layer)


def cousin_groups(model: Model) -> dict[tuple, tuple[list[Layer], list[Layer]]]:
    """Matrices that play one role in blocks of different widths: key → (the layers judged against the
    group, the whole group). Computed once per model.

    Siblings (``sibling_groups``) share a shape; cousins need not: ``stages.#.blocks.#.mlp.fc2`` in a
    pyramid whose stages widen, or every ``conv_reduce`` of the SE modules of a MobileNet. Their std then
    follows one scaling law (a fixed σ, or ∝ 1/√fan) rather than one value. A layer is grouped by its
    place in the structure (every index replaced), or, when that leaves it with fewer than two cousins, by
    its module's own name. Names are the module paths of the model; each finding names the group."""
    cached = getattr(model, "_cousin_groups", None)
    if cached is not None and cached[0] == len(model.layers):
        return cached[1]
    matrices = [layer for layer in model.layers if layer.is_matrix]
    by_structure: dict[tuple, list[Layer]] = {}
    for layer in matrices:
        by_structure.setdefault(structure_key(layer), []).append(layer)
    structure = {k: v for k, v in by_structure.items() if len(v) >= 3}
    groups = {k: (v, v) for k, v in structure.items()}
    grouped = {id(layer) for members in structure.values() for layer in members}
    by_module: dict[tuple, list[Layer]] = {}
    for layer in matrices:
        if id(layer) not in grouped:
            by_module.setdefault(_module_key(layer), []).append(layer)
    for key, members in by_module.items():
        # the module's name joins a layer to the structure groups of the same name too
        kin = [m for k, ms in structure.items() if k[0] == key[0] and _module_key(ms[0]) == key for m in ms]
        if len(members) + len(kin) >= 3:
            groups[key] = (members, members + kin)
    model._cousin_groups = (len(model.layers), groups)
    return groups
