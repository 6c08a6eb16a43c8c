"""What one probe measured: per-layer signal and gradient sizes, activation health, attention entropy.

Framework-neutral: the measuring code (``frameworks/torch/probe.py``, ``frameworks/keras/probe.py``) fills
these; rules, renderers and the plot read them. Every size is a root mean square over all elements of a
tensor, ``rms(t) = √(mean(t²))`` (uncentred: it is the second moment that variance-propagation arguments
keep constant, e.g. He's ``E[y²] = fan_in·Var(w)·E[x²]``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LayerProbe:
    """One weight-bearing layer (a :class:`initcheck.model.Layer`) as the probe saw it, first call only.

    ``gain`` is ``rms(W·x)/rms(x)`` — the layer's own gain with its bias left out (``ratio`` includes it);
    ``predicted_gain`` is the static prediction from the stored weights, ``√fan_in·rms(w)`` (exact in
    expectation over random weights: ``E‖Wx‖² = fan_out·E[w²]·‖x‖²``); ``sound_gain`` is that of the
    judgement's expected std for the layer's activation (``√fan_in·expected_std``, e.g. √2 for ReLU/He).
    ``grad_in_rms`` is the gradient reaching the layer's input (kept for normalizations, whose input in a
    pre-norm network is the residual stream). ``update_ratio`` = ``lr·rms(∂L/∂w)/rms(w)``, the relative
    change one SGD step of ``lr`` would make to the weight.
    """

    name: str
    kind: str
    order: int  # position in execution (graph) order
    in_rms: float | None = None
    out_rms: float | None = None
    gain: float | None = None
    ratio: float | None = None
    grad_out_rms: float | None = None
    grad_in_rms: float | None = None
    weight_rms: float | None = None
    weight_grad_rms: float | None = None
    update_ratio: float | None = None
    predicted_gain: float | None = None
    sound_gain: float | None = None
    activation: str | None = None  # activation observed on this layer's output (relu, tanh, sigmoid, ...)
    dead_fraction: float | None = None  # ReLU units inactive on every sample of the batch
    saturated_fraction: float | None = None  # tanh/sigmoid pre-activations where the slope is < 5% of its peak
    units: int | None = None  # units the activation statistics are over
    samples: int | None = None  # independent samples per unit (batch × positions)
    calls: int = 1

    def to_json(self) -> dict:
        return {k: _finite(v) for k, v in asdict(self).items()}


@dataclass
class AttentionProbe:
    """One softmax attention seen in the pass: normalized entropy ``H/ln(keys)`` of its rows (1: uniform)."""

    name: str  # the layer that produced the queries, or "attention[i]"
    source: str  # scaled_dot_product_attention, softmax, multi_head_attention
    order: int
    keys: int
    entropy: float  # mean over rows (batch × heads × queries) of H/ln(visible keys)
    min_head_entropy: float  # the lowest per-head mean
    heads: int = 1

    def to_json(self) -> dict:
        return {k: _finite(v) for k, v in asdict(self).items()}


@dataclass
class ProbeResult:
    """Everything one probe measured for one model."""

    path: str
    framework: str
    input_shape: tuple[int, ...]
    input_kind: str  # synthetic normal, synthetic token ids, data FILE
    lr: float
    seed: int
    layers: list[LayerProbe] = field(default_factory=list)
    attention: list[AttentionProbe] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    output_shape: tuple[int, ...] | None = None
    seconds: float | None = None

    def layer(self, name: str) -> LayerProbe | None:
        return next((lp for lp in self.layers if lp.name == name), None)

    def to_json(self) -> dict:
        return {
            "path": self.path, "framework": self.framework, "input_shape": list(self.input_shape),
            "input": self.input_kind, "lr": self.lr, "seed": self.seed,
            "output_shape": list(self.output_shape) if self.output_shape else None,
            "seconds": _finite(self.seconds), "notes": list(self.notes),
            "layers": [lp.to_json() for lp in self.layers],
            "attention": [a.to_json() for a in self.attention],
        }


@dataclass
class CoordPoint:
    """One layer at one width in the coord check: sizes at init, after one SGD step and of the change."""

    width: int
    init_rms: float
    step_rms: float
    delta_rms: float


@dataclass
class CoordLayer:
    """One layer across widths. Slopes are d log(size)/d log(width): μP keeps them near 0."""

    name: str
    kind: str
    position: str  # input, hidden, output
    points: list[CoordPoint]
    init_slope: float
    delta_slope: float
    step_slope: float

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "position": self.position,
                "init_slope": _finite(self.init_slope), "delta_slope": _finite(self.delta_slope),
                "step_slope": _finite(self.step_slope),
                "points": [{k: _finite(v) for k, v in asdict(p).items()} for p in self.points]}


@dataclass
class CoordResult:
    """The coord check: one probe per width of a factory-built model, one SGD step each."""

    factory: str
    widths: list[int]
    lr: float
    layers: list[CoordLayer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"factory": self.factory, "widths": list(self.widths), "lr": self.lr, "notes": list(self.notes),
                "layers": [c.to_json() for c in self.layers]}


def _finite(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, tuple):
        return list(v)
    return v
