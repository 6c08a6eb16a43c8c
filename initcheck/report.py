"""Findings, severities and the report a run produces; the exit-code policy lives here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .model import Layer, Model

SEVERITIES = ("info", "warning", "error")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
JSON_SCHEMA_VERSION = 1


@dataclass
class Finding:
    """One thing a rule says about one layer (or the whole model, ``layer=None``)."""

    rule: str
    severity: str
    layer: str | None
    message: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"rule": self.rule, "severity": self.severity, "layer": self.layer, "message": self.message}
        if self.fix:
            out["fix"] = self.fix
        if self.data:
            out["data"] = {k: _jsonable(v) for k, v in self.data.items()}
        return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item"):
        return _jsonable(v.item())
    return v


@dataclass
class Report:
    """Everything a run found about one model. Renderers read this and nothing else."""

    model: Model
    findings: list[Finding]
    banners: list[str] = field(default_factory=list)  # model-level notes shown above the table

    @property
    def layers(self) -> list[Layer]:
        return self.model.layers

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def worst(self) -> str | None:
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=SEVERITY_RANK.__getitem__)

    def failed(self, fail_on: str = "error") -> bool:
        """True if any finding is at or above ``fail_on`` (exit code 1); never for ``"never"``."""
        if fail_on == "never":
            return False
        threshold = SEVERITY_RANK[fail_on]
        return any(SEVERITY_RANK[f.severity] >= threshold for f in self.findings)

    def exit_code(self, fail_on: str = "error") -> int:
        return 1 if self.failed(fail_on) else 0

    def findings_for(self, layer_name: str) -> list[Finding]:
        return [f for f in self.findings if f.layer == layer_name]

    def summary(self) -> dict:
        unknown = unknown_activations(self.model)
        return {
            "layers": len(self.model.layers),
            "parameters": self.model.parameter_count,
            "errors": self.count("error"),
            "warnings": self.count("warning"),
            "infos": self.count("info"),
            "unknown_activations": sum(unknown.values()),
            "unknown_activation_reasons": [{"reason": why, "layers": n} for why, n in unknown.items()],
        }

    def to_json(self) -> dict:
        """The document of ``--format json``; its shape is documented in docs/json-schema.md."""
        m = self.model
        return {
            "schema": JSON_SCHEMA_VERSION,
            "source": {
                "path": m.path,
                "format": m.format,
                "framework": m.framework,
                "checkpoint_key": m.checkpoint_key,
                "notes": list(m.source_notes),
            },
            "banners": list(self.banners),
            "verdict": verdict_json(m),
            "layers": [layer_json(layer) for layer in m.layers],
            "findings": [f.to_json() for f in self.findings],
            "summary": self.summary(),
        }


def verdict_json(model: Model) -> dict | None:
    """The model verdict: fresh, trained or mixed, the layers behind it and the convention."""
    v = model.verdict
    if v is None:
        return None
    conv = v.convention
    return {"verdict": v.verdict, "why": v.why, "trained_layers": len(v.trained_layers),
            "fresh_layers": list(v.fresh_layers),
            "convention": None if conv is None else {"name": conv.name, "sigma": conv.sigma, "source": conv.source,
                                                     "layers": conv.layers}}


def unknown_activations(model: Model) -> dict[str, int]:
    """Why the activation after a weight layer is unknown → how many layers: how much context the check had.

    Counted over layers whose scale an activation decides (matrices other than embeddings).
    """
    out: dict[str, int] = {}
    fallback = "no graph context" if model.handle is not None else "no graph in a tensor-only file; --model gives one"
    for layer in model.layers:
        if not layer.is_matrix or layer.kind in ("embedding", "prelu") or layer.context.activation is not None:
            continue
        why = getattr(layer.context, "activation_unknown_reason", None) or fallback
        out[why] = out.get(why, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def layer_json(layer: Layer) -> dict:
    st = layer.weight.stats
    out: dict[str, Any] = {
        "name": layer.name,
        "kind": layer.kind,
        "kind_source": layer.kind_source,
        "tensor": layer.weight.name,
        "shape": list(layer.shape),
        "dtype": layer.weight.tensor.dtype,
        "fan_in": layer.fan_in,
        "fan_out": layer.fan_out,
        "framework_fans": list(layer.framework_fans) if layer.framework_fans else None,
        "stats": st.to_json() if st is not None else None,
        "bias": None,
        "tied": list(layer.weight.aliases),
        "notes": list(layer.notes),
    }
    if layer.bias is not None and layer.bias.stats is not None:
        out["bias"] = {"tensor": layer.bias.name, "shape": list(layer.bias.shape), "stats": layer.bias.stats.to_json()}
    ctx = layer.context
    out["context"] = {
        "activation": ctx.activation,
        "activation_source": ctx.activation_source,
        "norm_after": ctx.norm_after,
        "residual": ctx.residual,
        "position": ctx.position,
        "attention_logits": ctx.attention_logits,
        "residual_branch": ctx.residual_branch,
        "activation_unknown_reason": getattr(ctx, "activation_unknown_reason", None),
        "on_inference_path": getattr(ctx, "on_inference_path", True),
        "activation_literal": getattr(ctx, "activation_literal", None),
        "softcap": getattr(ctx, "softcap", False),
    }
    out["activation"] = ctx.activation
    out["activation_source"] = ctx.activation_source
    for key in ("expected_std", "std_ratio", "fingerprint", "convention"):
        if key in layer.analysis:
            out[key] = _jsonable(layer.analysis[key]) if key != "fingerprint" else layer.analysis[key]
    if layer.judgement is not None:
        out["role"] = layer.judgement.role.value
        out["role_source"] = layer.judgement.role_source
        out["provenance"] = layer.judgement.provenance.to_json()
    return out
