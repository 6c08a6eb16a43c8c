"""IC00x: weights that cannot train at all — non-finite, all zero, constant, symmetric units."""

from __future__ import annotations

from typing import Iterable

from ..model import Layer, Model
from ..report import Finding
from . import RuleOptions, rule


def _tensors(layer: Layer):
    yield layer.weight
    if layer.bias is not None:
        yield layer.bias


@rule(
    "IC001", "non-finite-weights", "error",
    "A tensor holds NaN or Inf values.",
    """
    One NaN or Inf in a weight spreads to every activation and gradient it touches: the first forward pass
    returns NaN and training never recovers. It usually comes from a division by a zero std in a custom
    initializer, an overflow when casting to float16, or a corrupted checkpoint.

    Example: `fc.weight` has 1 NaN of 65536 values.

    Fix: reinitialize the layer (`initcheck fix MODEL -o OUT --layers fc`) or find the step that produced it.
    """,
)
def non_finite(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        for p in _tensors(layer):
            st = p.stats
            if st is not None and (st.nan or st.inf):
                yield Finding(
                    "IC001", "error", layer.name,
                    f"{p.name} has {st.nan} NaN and {st.inf} Inf of {st.count} values",
                    fix="reinitialize this layer; check casts to float16 and custom initializers",
                    data={"tensor": p.name, "nan": st.nan, "inf": st.inf},
                )


def deliberate_zero(layer: Layer) -> bool:
    """A zero weight matrix that is a known good practice: the last layer of a residual branch
    (zero-init residual, Fixup, ReZero) or the model's output head (zero classifier)."""
    return layer.context.residual or layer.context.position == "output"


@rule(
    "IC002", "all-zero-weights", "error",
    "A weight matrix is all zeros.",
    """
    With every weight at zero, every unit of the layer computes the same output and receives the same
    gradient, so the units never become different (and for a layer feeding a ReLU, gradients below are zero).
    Biases, normalization shifts and deliberately zeroed layers are not flagged: a zero last layer of a
    residual branch (zero-init residual, Fixup) or a zero output head is a known good practice and is
    reported at info.

    Example: `encoder.3.fc1.weight` is all zeros, shape (512, 512).

    Fix: reinitialize with the scheme for its activation (`initcheck fix`), e.g. He for ReLU.
    """,
)
def all_zero(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        st = layer.weight.stats
        if st is None or not layer.is_matrix or st.finite == 0 or st.nan or st.inf:
            continue
        if st.zero_fraction == 1.0:
            severity = "info" if deliberate_zero(layer) else "error"
            why = " (zero last layer of a residual branch or head: deliberate)" if severity == "info" else ""
            yield Finding(
                "IC002", severity, layer.name,
                f"{layer.weight.name} is all zeros, shape {tuple(layer.shape)}{why}",
                fix=None if severity == "info" else "reinitialize with the scheme for its activation",
            )


@rule(
    "IC003", "constant-weights", "error",
    "A weight tensor has one value everywhere (not zero).",
    """
    A constant weight tensor (e.g. filled with 0.01) gives every unit the same output and the same
    gradient: symmetry is never broken and the layer behaves like a single unit. Normalization scales at
    1 and biases at a constant are normal and are not flagged; this rule looks at matrices.

    Example: `fc2.weight` is 0.01 everywhere, shape (128, 256).

    Fix: reinitialize with a random scheme (`initcheck fix`).
    """,
)
def constant(model: Model, options: RuleOptions) -> Iterable[Finding]:
    for layer in model.layers:
        st = layer.weight.stats
        if st is None or not layer.is_matrix or st.finite < 2 or st.nan or st.inf:
            continue
        if st.min == st.max and st.min != 0:
            yield Finding(
                "IC003", "error", layer.name,
                f"{layer.weight.name} is {st.min:.6g} everywhere, shape {tuple(layer.shape)}",
                fix="reinitialize with a random scheme for its activation",
            )
