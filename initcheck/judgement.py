"""Typed results of the judgement: what each layer is, where its values come from, what they should be.

Produced once by :func:`initcheck.judge.judge` and handed on: rules, renderers and ``fix`` read these
objects and never re-derive them. ``Layer.analysis`` is only a flat JSON view of them for renderers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .provenance import Provenance
from .roles import Role


@dataclass(frozen=True)
class Expectation:
    """The std a sound init gives this layer, the band of sound schemes, and where that came from."""

    std: float  # the recommended scheme's std for the layer's activation and fans
    band: tuple[float, float]  # smallest and largest std of a sound scheme (before statistical tolerance)
    scheme: str  # family of the recommended scheme (he, xavier, lecun) or a convention's name
    source: str  # "activation" (graph/user/...), "convention" (the model's own), "any activation"
    convention: str | None = None  # the model-wide convention this layer follows, when it does
    ratio: float = float("nan")  # observed RMS / std


@dataclass(frozen=True)
class Convention:
    """A model-wide init convention: the fixed-σ family of GPT-2/BERT/Llama and its scaled variants."""

    name: str  # e.g. "normal(0.02)"
    sigma: float
    source: str  # "config.json (initializer_range)", "weights (N of M matrices)", "user"
    layers: int | None = None  # blocks, for σ/√(2L) residual scaling
    other_sigmas: tuple[float, ...] = ()  # sub-models' own ranges (SAM's vision encoder: 1e-10)
    fan_scaled: bool = False  # T5's factor scaling: σ/√fan_in for matrices (σ = initializer_factor)
    head_dim: int | None = None  # T5's d_kv: the query is σ/√(fan_in·d_kv)

    def variants(self, fan_in: int | None = None, depth: int | None = None) -> dict[str, float]:
        """Stds this convention gives a layer: σ itself, torch's uncorrected 2σ-truncated draw,
        residual-scaled σ/√(2L) (GPT-2, Megatron) and σ/√L; under T5's factor scaling also σ/√fan_in and
        the query's σ/√(fan_in·d_kv) (σ itself is then the embeddings')."""
        from .schemes import TRUNCATED_NORMAL_STD_FACTOR

        out = {f"N(0, {self.sigma:g})": self.sigma,
               f"trunc_normal(std={self.sigma:g}, ±2σ)": self.sigma * TRUNCATED_NORMAL_STD_FACTOR}
        if depth is not None and depth >= 0:
            # depth-scaled σ/√(2(i+1)) of the i-th block's output projections (OLMo, torchtitan, timm's PE)
            out[f"N(0, {self.sigma:g}/√(2·{depth + 1}))"] = self.sigma / (2 * (depth + 1)) ** 0.5
        if self.fan_scaled and fan_in:
            out[f"N(0, {self.sigma:g}/√fan_in)"] = self.sigma / fan_in ** 0.5
            if self.head_dim:
                out[f"N(0, {self.sigma:g}/√(fan_in·{self.head_dim}))"] = self.sigma / (fan_in * self.head_dim) ** 0.5
        if self.layers:
            out[f"N(0, {self.sigma:g}/√(2·{self.layers}))"] = self.sigma / (2 * self.layers) ** 0.5
            out[f"N(0, {self.sigma:g}/√{self.layers})"] = self.sigma / self.layers ** 0.5
        for s in self.other_sigmas:
            out[f"N(0, {s:g})"] = s
            out[f"trunc_normal(std={s:g}, ±2σ)"] = s * TRUNCATED_NORMAL_STD_FACTOR
        return out


@dataclass(frozen=True)
class Judgement:
    """Everything the judgement concluded about one layer."""

    role: Role
    role_source: str  # "module" (layer class), "kind" (tensor-only kind), "shape", "name" (a hint only)
    provenance: Provenance
    expectation: Expectation | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)  # see initcheck.fingerprint

    def view(self) -> dict[str, Any]:
        """The flat dict renderers and JSON read (``Layer.analysis``)."""
        out: dict[str, Any] = {"role": self.role.value, "role_source": self.role_source,
                               "provenance": self.provenance.to_json()}
        if self.fingerprint:
            out["fingerprint"] = self.fingerprint
        if self.expectation is not None:
            out["expected_std"] = self.expectation.std
            out["std_ratio"] = self.expectation.ratio
            out["band"] = self.expectation.band
            out["expectation_source"] = self.expectation.source
            if self.expectation.convention:
                out["convention"] = self.expectation.convention
        return out


@dataclass(frozen=True)
class ModelVerdict:
    """fresh, trained or mixed, with the layers that made it so."""

    verdict: str  # fresh | trained | mixed
    why: str
    trained_layers: tuple[str, ...] = ()
    fresh_layers: tuple[str, ...] = ()  # fresh layers inside a trained model (mixed)
    convention: Convention | None = None
