"""Build framework-neutral models straight from numpy arrays, for fast statistical tests of the rules."""

from __future__ import annotations

import numpy as np

from initcheck.frameworks.torch_layout import make_layer
from initcheck.model import Context, Layer, Model, Param, TensorRef
from initcheck.pipeline import CheckOptions, analyze


def array_layer(name: str, w: np.ndarray, kind: str = "linear", activation: str | None = None,
                source: str = "user", **ctx) -> Layer:
    w = np.asarray(w, dtype=np.float32)
    ref = TensorRef(w.shape, "float32", lambda w=w: w)
    layer = make_layer(name, kind, Param(f"{name}.weight", "weight", ref))
    layer.context = Context(activation=activation, activation_source=source if activation else "unknown", **ctx)
    return layer


def judge_layers(layers, **options):
    """Run statistics, expectations, fingerprints and every rule on these layers; return the Report."""
    model = Model(path="<arrays>", format="arrays", framework="numpy", layers=list(layers))
    return analyze(model, CheckOptions(progress=False, **options))
