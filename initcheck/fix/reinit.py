"""Reinitialize layers: choose a scheme per layer from the one table, draw, assign in place.

Choice of scheme (``scheme="auto"``), from the layer's detected activation (``layer.context.activation``,
else the ``activation`` the caller gives, else none):

* dense/conv/attention/recurrent-input matrices: :func:`initcheck.schemes.recommended_scheme` — He for the
  ReLU family and other non-saturating activations (with their gain), Xavier/Glorot for tanh, sigmoid,
  linear or unknown, LeCun for SELU — with :func:`initcheck.schemes.gain`. The distribution family of
  the layer's fingerprint is kept (uniform stays uniform, truncated normal stays truncated); else normal.
* recurrent (hidden-to-hidden) matrices: orthogonal over the whole (gates·H, H) matrix, as Keras'
  ``Orthogonal`` default for ``recurrent_kernel`` (Saxe et al. 2014); each gate block then has singular
  values averaging 1/√gates (per-gate radius ≈ 0.5 for an LSTM), within what IC205 accepts.
* embeddings: LeCun normal with fan_in = embedding width, std 1/√dim (a tied output head then produces
  unit-variance logits; close to the 0.02 of BERT/GPT-2 at their widths).
* normalization layers: scale 1, shift 0; other 1-D parameters and biases: 0.

Fans are the layer's data-flow fans (``layer.fan_in``/``fan_out``), per gate for recurrent layers and per
projection for fused attention projections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Iterable

import numpy as np

from .. import schemes as S
from ..errors import InitcheckError
from ..model import NORM_KINDS, Layer, Model, Param
from .sampling import layer_rng, orthogonal, sample

SCHEME_CHOICES = ("auto", "he_normal", "he_uniform", "xavier_normal", "xavier_uniform", "lecun_normal",
                  "lecun_uniform", "orthogonal", "uniform", "normal:STD")


@dataclass
class Change:
    """One tensor that a fix rewrote.

    ``before_std``/``after_std`` are population stds of the finite values (NaN when there were none);
    ``values`` holds the new values (float64, the tensor's shape) for writers of files that cannot be
    modified in place (safetensors); ``note`` says anything special (fill rows of ZCA, output variance of
    LSUV, a tensor that could only be zeroed).
    """

    layer: str
    tensor: str
    before_std: float
    after_std: float
    scheme: str
    note: str = ""
    values: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        def num(x: float) -> float | None:
            return float(x) if x is not None and math.isfinite(x) else None

        return {"layer": self.layer, "tensor": self.tensor, "before_std": num(self.before_std),
                "after_std": num(self.after_std), "scheme": self.scheme, "note": self.note}


def parse_scheme(text: str | S.Scheme | None) -> S.Scheme | None:
    """``'auto'``/None → None (choose per layer); a scheme name of the table; ``normal:STD``."""
    if text is None or isinstance(text, S.Scheme):
        return text
    key = text.strip().lower()
    if key == "auto":
        return None
    if key.startswith("normal:") or key.startswith("normal="):
        try:
            std = float(key.split(":", 1)[-1].split("=", 1)[-1])
        except ValueError:
            std = -1.0
        if not (std > 0 and math.isfinite(std)):
            raise InitcheckError(f"--scheme {text!r}: the std after 'normal:' must be a positive number")
        return S.fixed_normal(std)
    if key in S.SCHEMES:
        return S.SCHEMES[key]
    raise InitcheckError(f"unknown scheme {text!r} (choose from {', '.join(SCHEME_CHOICES)})")


def finite_std(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    fin = a[np.isfinite(a)]
    return float(fin.std()) if fin.size else math.nan


def _fans(layer: Layer) -> tuple[int, int]:
    if layer.fan_in and layer.fan_out:
        return int(layer.fan_in), int(layer.fan_out)
    shape = layer.shape
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return int(shape[1] * receptive), int(shape[0] * receptive)


def _blocks(layer: Layer) -> int:
    if layer.kind.endswith("_recurrent"):
        return 1  # whole-matrix orthogonal, as Keras (see the module docstring)
    if layer.kind.endswith("_input"):
        return int(layer.attrs.get("gates") or 1)
    if layer.kind == "attention_in_proj":
        return int(layer.attrs.get("projections") or 3)
    return 1


def _activation(layer: Layer, default: str | None) -> tuple[str | None, float | None]:
    if layer.context.activation is not None:
        return layer.context.activation, layer.context.activation_param
    return default, None


def _keep_distribution(layer: Layer, scheme: S.Scheme) -> S.Scheme:
    fp = layer.analysis.get("fingerprint") or {}
    dist = fp.get("distribution") if isinstance(fp, dict) else None
    if dist not in ("uniform", "truncated_normal", "normal") or scheme.distribution in ("orthogonal", dist):
        return scheme
    for s in S.SCHEMES.values():  # the table's own entry for this family and distribution (he_uniform...)
        if (s.family, s.mode, s.scale, s.uses_gain, s.distribution) == \
                (scheme.family, scheme.mode, scheme.scale, scheme.uses_gain, dist):
            return s
    base = scheme.with_distribution(dist)
    return S.Scheme(f"{scheme.family}_{dist}", base.family, base.scale, base.mode, dist, base.uses_gain,
                    base.fixed_std)


def choose(layer: Layer, scheme: S.Scheme | None, activation: str | None = None) -> tuple[S.Scheme, float, str]:
    """(scheme, gain, label) for a matrix layer; ``scheme=None`` means auto (see module docstring)."""
    act, param = _activation(layer, activation)
    known = S.canonical_activation(act) is not None
    if scheme is None:
        if layer.kind.endswith("_recurrent"):
            chosen, g = S.ORTHOGONAL, 1.0
        elif layer.kind == "embedding":
            chosen, g = S.LECUN_NORMAL, 1.0
        else:
            chosen, g = _keep_distribution(layer, S.recommended_scheme(act)), S.gain(act, param)
        label = chosen.name + (f" ({S.canonical_activation(act)}, gain {g:.4g})" if known and chosen.uses_gain
                               else "")
        return chosen, g, label
    if known:
        g = S.gain(act, param)
    else:
        g = math.sqrt(2.0) if scheme.family == "he" else 1.0  # torch's kaiming default: ReLU
    label = scheme.name + (f" (gain {g:.4g})" if scheme.uses_gain and g != 1.0 else "")
    return scheme, g, label


def new_values(layer: Layer, param: Param, scheme: S.Scheme | None, activation: str | None,
               rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The values a reinitialized ``param`` of ``layer`` gets, and the label of what was used."""
    shape = param.shape
    if param is layer.weight and layer.is_matrix:
        chosen, g, label = choose(layer, scheme, activation)
        fan_in, fan_out = _fans(layer)
        blocks = _blocks(layer)
        if chosen.distribution == "orthogonal":
            vals = orthogonal(shape, g if chosen.uses_gain else 1.0, rng, param.tensor.unit_axis, blocks)
        else:
            vals = sample(chosen, shape, fan_in, fan_out, g, rng, param.tensor.unit_axis, blocks)
        return vals, label
    if layer.kind in NORM_KINDS and param is layer.weight:
        return np.ones(shape), "ones (norm scale)"
    return np.zeros(shape), "zeros"


def select_layers(model: Model, report=None, layers: Iterable[str] | str | None = None,
                  all_layers: bool = False, min_severity: str = "warning") -> list[Layer]:
    """Layers to reinitialize: all; or those matching the globs (name or any tensor name); or those
    with findings at ``min_severity`` or above in ``report``."""
    from ..report import SEVERITY_RANK

    if all_layers:
        return list(model.layers)
    if layers:
        globs = [layers] if isinstance(layers, str) else list(layers)
        picked = []
        for layer in model.layers:
            names = [layer.name] + [n for p in layer.params for n in [p.name, *p.aliases]]
            if any(fnmatchcase(n, g) for n in names for g in globs):
                picked.append(layer)
        if not picked:
            raise InitcheckError(f"--layers {', '.join(globs)} matches no layer")
        return picked
    if report is None:
        return []
    flagged = {f.layer for f in report.findings
               if f.layer is not None and SEVERITY_RANK[f.severity] >= SEVERITY_RANK[min_severity]}
    return [layer for layer in model.layers if layer.name in flagged]


def reinit_layers(model: Model, chosen: list[Layer], scheme: str | S.Scheme | None = "auto", *,
                  seed: int | None = None, activation: str | None = None, dry_run: bool = False) -> list[Change]:
    """Redraw every tensor of ``chosen`` layers; assign in place where the tensor is live (``Param.assign``).

    Tensors of read-only files (safetensors) keep their new values in :attr:`Change.values` for the writer.
    ``dry_run`` computes the changes without assigning anything.
    """
    sch = parse_scheme(scheme) if not isinstance(scheme, S.Scheme) else scheme
    changes: list[Change] = []
    for layer in chosen:
        for p in layer.params:
            before = finite_std(p.tensor.numpy())
            vals, label = new_values(layer, p, sch, activation, layer_rng(seed, p.name))
            if not dry_run and p.assign is not None:
                p.assign(vals)
                p.stats = None
            changes.append(Change(layer.name, p.name, before, finite_std(vals), label, "", vals))
    return changes
