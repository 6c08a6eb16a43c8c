"""A Hugging Face ``config.json`` beside a checkpoint: the model's own statement of its init convention.

Only JSON is read (bounded size); nothing is built or executed. The fields initcheck uses:
``initializer_range`` (the σ of every matrix: GPT-2, BERT, Llama...), the number of blocks (for σ/√(2L)
residual scaling), the MLP activation, ``tie_word_embeddings`` and ``model_type``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

MAX_CONFIG_BYTES = 4 << 20
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "encoder_layers")
_ACT_KEYS = ("hidden_act", "activation_function", "hidden_activation", "feed_forward_proj", "activation")
_RANGE_KEYS = ("initializer_range", "init_std")


@dataclass(frozen=True)
class ModelConfig:
    path: str
    model_type: str | None = None
    initializer_range: float | None = None
    layers: int | None = None
    activation: str | None = None
    tie_word_embeddings: bool | None = None
    other_ranges: tuple[float, ...] = ()  # initializer_range of sub-configs that differ (vision_config...)
    initializer_factor: float | None = None  # T5's factor scaling (its family has no initializer_range)
    head_dim: int | None = None  # T5's d_kv: its query projection is scaled by 1/√d_kv on top of 1/√fan_in

    @property
    def factor_scaled(self) -> bool:
        """T5 and its descendants draw every matrix N(0, factor/√fan_in), the query N(0, factor/√(fan_in·d_kv))
        and embeddings N(0, factor): ``initializer_factor`` instead of ``initializer_range``."""
        return self.model_type in FACTOR_SCALED_TYPES and bool(self.initializer_factor)

    @property
    def zero_centered_norms(self) -> bool:
        """Gemma's RMSNorm computes x·(1 + weight): its stored scale is zero at init."""
        return bool(self.model_type) and self.model_type.startswith(("gemma", "paligemma", "shieldgemma"))

    def describe(self) -> list[str]:
        out = []
        if self.model_type:
            out.append(f"model_type {self.model_type}")
        if self.initializer_range:
            out.append(f"initializer_range {self.initializer_range:g}")
        if self.factor_scaled:
            out.append(f"initializer_factor {self.initializer_factor:g}")
        if self.layers:
            out.append(f"{self.layers} layers")
        if self.activation:
            out.append(f"activation {self.activation}")
        if self.tie_word_embeddings is not None:
            out.append("tied embeddings" if self.tie_word_embeddings else "untied embeddings")
        return out


# model types whose _init_weights is T5's factor scaling (transformers' T5PreTrainedModel and its copies)
FACTOR_SCALED_TYPES = frozenset({"t5", "mt5", "umt5", "longt5", "switch_transformers", "udop", "pop2piano"})


def config_path(model_path: str) -> str | None:
    """``config.json`` in the model's directory (the path itself when it is a directory)."""
    folder = model_path if os.path.isdir(model_path) else os.path.dirname(os.path.abspath(model_path))
    candidate = os.path.join(folder, "config.json")
    return candidate if os.path.isfile(candidate) else None


def read_model_config(model_path: str) -> ModelConfig | None:
    """The config beside ``model_path``, or None when there is none or it is not a transformers config
    (no ``model_type``/``architectures``): a stray config.json of another tool is ignored, with no error,
    since the checkpoint itself is what was asked about."""
    path = config_path(model_path)
    if path is None or os.path.getsize(path) > MAX_CONFIG_BYTES:
        return None
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None  # an unreadable side file gives no context; the checkpoint is judged without it
    if not isinstance(data, dict) or not ("model_type" in data or "architectures" in data):
        return None
    return config_from_dict(data, path)


def config_from_object(config) -> ModelConfig | None:
    """From a live ``transformers.PretrainedConfig`` (its ``to_dict()``: plain data, no framework)."""
    try:
        data = config.to_dict()
    except (TypeError, ValueError, AttributeError):
        return None
    return config_from_dict(data, f"the model's config ({type(config).__name__})") if isinstance(data, dict) else None


def _nested_ranges(data, depth: int = 0) -> list[float]:
    out: list[float] = []
    if depth > 4 or not isinstance(data, dict):
        return out
    for k, v in data.items():
        if k in _RANGE_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 10:
            out.append(float(v))
        elif isinstance(v, dict):
            out += _nested_ranges(v, depth + 1)
    return out


def config_from_dict(data: dict, path: str) -> ModelConfig:
    text = data.get("text_config") if isinstance(data.get("text_config"), dict) else {}
    merged = {**text, **data}

    def first(keys, kind):
        for k in keys:
            v = merged.get(k)
            if isinstance(v, kind) and not isinstance(v, bool):
                return v
        return None

    rng = first(_RANGE_KEYS, (int, float))
    layers = first(_LAYER_KEYS, int)
    tie = merged.get("tie_word_embeddings")
    main = float(rng) if rng and 0 < rng < 10 else None
    others = tuple(sorted({r for r in _nested_ranges(data) if main is None or abs(r - main) > 1e-12 * main}))
    if main is None and others:
        main, others = others[0], others[1:]
    return ModelConfig(
        path=path,
        model_type=data.get("model_type") if isinstance(data.get("model_type"), str) else None,
        initializer_range=main,
        layers=layers if layers and layers > 0 else None,
        activation=first(_ACT_KEYS, str),
        tie_word_embeddings=tie if isinstance(tie, bool) else None,
        other_ranges=others,
        initializer_factor=_positive(merged.get("initializer_factor")),
        head_dim=merged.get("d_kv") if isinstance(merged.get("d_kv"), int) and merged.get("d_kv") > 0 else None,
    )


def _positive(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e3 \
        else None
