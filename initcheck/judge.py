"""Judgement inputs for the rules: graph context, expected std and acceptable band, fingerprints, and
whether the checkpoint looks trained. Framework code is reached only through ``frameworks.*.graph``.
"""

from __future__ import annotations

import fnmatch
import math
import re

import numpy as np
from typing import TYPE_CHECKING

from .fingerprint import fingerprint
from .graph import annotate
from .model import Layer, Model
from .schemes import canonical_activation, expected_std, plausible_std_range

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import CheckOptions

# Kinds whose weight scale the variance-propagation analysis applies to.
SCALE_KINDS_PREFIXES = ("linear", "conv", "depthwise_conv", "bilinear", "attention_in_proj")
RECURRENT_SUFFIXES = ("_input", "_recurrent")
# Tensor-only files: names of projections that end a residual branch in common architectures.
RESIDUAL_END_NAME = re.compile(
    r"(^|\.)(c_proj|o_proj|out_proj|down_proj|fc2|wo|proj|dense_4h_to_h|output\.dense|attention\.output\.dense|"
    r"mlp\.c_proj|attn\.c_proj|w2|conv3|conv2)$")
HEAD_NAME = re.compile(r"(^|\.)(lm_head|classifier|head|fc|cls\.predictions\.decoder|score|logits)$")


def is_scale_layer(layer: Layer) -> bool:
    return layer.is_matrix and (layer.kind.startswith(SCALE_KINDS_PREFIXES) or
                                layer.kind.endswith("_input")) and bool(layer.fan_in and layer.fan_out)


def judge(model: Model, options: "CheckOptions") -> list[str]:
    """Fill context and analysis on every layer; return model-level banners."""
    banners: list[str] = []
    _context(model, options)
    for layer in model.layers:
        _expectations(layer)
        if layer.is_matrix:
            layer.analysis["fingerprint"] = fingerprint(layer)
    trained, why = looks_trained(model)
    model.trained = why if trained else None
    if trained:
        banners.append(f"trained checkpoint ({why}): initialization rules report at info level")
    model.source_notes.extend(n for n in model.graph_notes if n not in model.source_notes)
    return banners


# ----------------------------------------------------------------------------------------------- context
def _context(model: Model, options: "CheckOptions") -> None:
    if model.framework == "torch" and model.handle is not None and (
            _is_torch_module(model.handle) or hasattr(model.handle, "graph_signature")):
        from .frameworks.torch.graph import torch_graph

        graph, why = torch_graph(model.handle, model, options.input_shape)
        if graph is not None:
            annotate(model, graph)
            if why:
                model.graph_notes.append(f"context from a traced forward pass ({why})")
        else:
            _order_context(model)
            model.graph_notes.append(f"no graph: {why}; activations unknown")
    elif model.handle is None:
        _name_context(model)
    for layer in model.layers:
        if layer.kind.endswith(RECURRENT_SUFFIXES) and layer.context.activation is None:
            # the gates squash with sigmoid/tanh inside the cell
            layer.context.activation, layer.context.activation_source = "tanh", "graph"
    for pattern, act in (options.activation_overrides or {}).items():
        name = canonical_activation(act)
        for layer in model.layers:
            if fnmatch.fnmatchcase(layer.name, pattern):
                layer.context.activation, layer.context.activation_source = name, "user"
    if options.activation:
        name = canonical_activation(options.activation)
        for layer in model.layers:
            if layer.is_matrix and layer.context.activation is None:
                layer.context.activation, layer.context.activation_source = name, "user"


def _is_torch_module(obj) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _order_context(model: Model) -> None:
    """Without a graph, only positions: the first matrix layer is the input, the last the output."""
    matrices = [layer for layer in model.layers if (is_scale_layer(layer) or layer.kind == "embedding")
                and layer.context.activation_source == "unknown"]
    if matrices:
        matrices[0].context.position = "input"
        matrices[-1].context.position = "output"


def _name_context(model: Model) -> None:
    """Tensor-only files: residual ends and heads from common names; positions from order only where the
    file keeps the module order (torch.save does, safetensors sorts names)."""
    if model.framework != "safetensors":
        _order_context(model)
    for layer in model.layers:
        if layer.context.activation_source != "unknown":
            continue
        if RESIDUAL_END_NAME.search(layer.name):
            layer.context.residual = True
        if HEAD_NAME.search(layer.name):
            layer.context.position = "output"


# ---------------------------------------------------------------------------------------- expectations
def _expectations(layer: Layer) -> None:
    st = layer.weight.stats
    if not is_scale_layer(layer) or st is None or not st.finite:
        return
    ctx = layer.context
    fi, fo = layer.fan_in, layer.fan_out
    exp = expected_std(ctx.activation, fi, fo, ctx.activation_param)
    lo, hi = plausible_std_range(ctx.activation, fi, fo, ctx.activation_param)
    if layer.framework_fans:
        flo, fhi = plausible_std_range(ctx.activation, *layer.framework_fans, ctx.activation_param)
        lo, hi = min(lo, flo), max(hi, fhi)
    layer.analysis["expected_std"] = exp
    layer.analysis["std_ratio"] = st.rms / exp if exp > 0 else math.nan
    layer.analysis["band"] = (lo, hi)


# ------------------------------------------------------------------------------------------ trained?
def trained_evidence(layer: Layer) -> bool:
    """Heavy tails or row-scale heterogeneity far beyond what any random init gives at this size."""
    st = layer.weight.stats
    if st is None or st.finite < 1024 or not (st.std > 0):
        return False
    heavy = st.excess_kurtosis > max(1.0, 8 * math.sqrt(24.0 / st.finite))
    hetero = False
    if st.units >= 8 and math.isfinite(st.unit_std_spread):
        per_unit = st.count / st.units
        expected = math.sqrt(max(st.excess_kurtosis, -1.2) + 2.0) / (2.0 * math.sqrt(per_unit))
        hetero = st.unit_std_spread > 4.0 * expected + 0.1
    spectral = (layer.analysis.get("spectral_edge_ratio") or 0.0) > 2.0
    return heavy or hetero or spectral


SPECTRAL_LAYERS = 8  # bounded extra work: a few matrix-vector products on at most this many layers
SPECTRAL_MAX_ELEMENTS = 1 << 22


def spectral_edge_ratio(layer: Layer, iterations: int = 12) -> float | None:
    """Top singular value over the random-matrix edge rms·(√m + √n), by power iteration.

    An iid matrix sits at ≈1 (power iteration from a random start slightly underestimates it);
    trained matrices have dominant directions far above the edge.
    """
    st = layer.weight.stats
    t = layer.weight.tensor
    if st is None or not st.rms > 0 or st.nan or st.inf or t.size > SPECTRAL_MAX_ELEMENTS or len(t.shape) < 2:
        return None
    m = t.unit_matrix()
    rng = np.random.default_rng(0)
    v = rng.standard_normal(m.shape[1])
    sigma = 0.0
    for _ in range(iterations):
        u = m @ v
        nu = np.linalg.norm(u)
        if nu == 0:
            return None
        v = m.T @ (u / nu)
        sigma = float(np.linalg.norm(v))
        v /= sigma
    edge = st.rms * (math.sqrt(m.shape[0]) + math.sqrt(m.shape[1]))
    return sigma / edge


def looks_trained(model: Model) -> tuple[bool, str]:
    """(trained?, why): at least half of the large layers carry evidence of training."""
    big = [layer for layer in model.layers if is_scale_layer(layer) and layer.weight.stats is not None
           and layer.weight.stats.finite >= 1024]
    if len(big) < 2:
        return False, ""
    for layer in big[:SPECTRAL_LAYERS]:
        layer.analysis["spectral_edge_ratio"] = spectral_edge_ratio(layer)
    hits = [layer for layer in big if trained_evidence(layer)]
    if len(hits) >= max(2, math.ceil(0.5 * len(big))):
        return True, f"{len(hits)} of {len(big)} large layers have heavy tails or uneven unit scales"
    return False, ""
