"""A zoo of stock architectures, freshly initialized by their own libraries (nothing downloaded).

Each :class:`Entry` names a model, its framework and library, a builder that returns the model with the
library's own initialization, and the input shape a trace needs when the model cannot be asked for it::

    from benchmarks import zoo
    for entry in zoo.sample(10, seed=0, framework="torch"):
        model = entry.build()
        report = initcheck.check(model, input_shape=entry.input_shape)

Libraries: timm (``create_model(name, pretrained=False)``), torchvision (``weights=None``), transformers
(``AutoModel``/``AutoModelForCausalLM.from_config`` of the model type's own default config, shrunk: see
:mod:`benchmarks.zoo.hf`), keras.applications (``weights=None``) and keras_hub backbones (constructors).
timm, torchvision and keras-hub come from ``make zoo-deps`` (``.cache/zoo-site``, see :mod:`._env`).
Importing this module imports no framework; ``entry.build()`` does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from . import hf, keras_models, torch_models
from ._env import ZooDependencyMissing

__all__ = ["Entry", "ZooDependencyMissing", "entries", "get", "sample", "libraries"]


@dataclass(frozen=True)
class Entry:
    """One stock architecture: ``build()`` returns it freshly initialized (torch: in eval mode)."""

    name: str  # "<library>/<model>", unique
    framework: str  # "torch" | "keras"
    library: str  # "timm" | "torchvision" | "transformers" | "keras.applications" | "keras_hub"
    build: Callable[[], Any]
    input_shape: tuple[int, ...] | None = None  # with batch 1; None: initcheck infers it


def _timm() -> Iterator[Entry]:
    for name, side in torch_models.TIMM.items():
        yield Entry(f"timm/{name}", "torch", "timm", torch_models.timm_builder(name), (1, 3, side, side))


def _torchvision() -> Iterator[Entry]:
    for name, builder, shape in torch_models.torchvision_entries():
        yield Entry(f"torchvision/{name}", "torch", "torchvision", builder, shape)


def _transformers() -> Iterator[Entry]:
    for model_type, (auto, overrides, shape) in hf.MODEL_TYPES.items():
        yield Entry(f"transformers/{model_type}", "torch", "transformers",
                    _hf_builder(model_type, auto, overrides), shape)


def _hf_builder(model_type: str, auto: str, overrides: dict[str, Any]) -> Callable[[], Any]:
    return lambda: hf.build(model_type, auto, overrides)


def _keras() -> Iterator[Entry]:
    for name, size in keras_models.APPLICATIONS.items():
        yield Entry(f"keras.applications/{name}", "keras", "keras.applications",
                    keras_models.application(name, size), (1, size, size, 3))
    for name, extra in keras_models.TEXT_BACKBONES.items():
        yield Entry(f"keras_hub/{name}", "keras", "keras_hub", keras_models.hub_backbone(name, extra, fill=True))
    for name, (cls, kwargs) in keras_models.VISION_BACKBONES.items():
        yield Entry(f"keras_hub/{name}", "keras", "keras_hub", keras_models.hub_backbone(cls, kwargs))
    for name, builder in keras_models.PAIRS.items():
        yield Entry(f"keras_hub/{name}", "keras", "keras_hub", builder)


_ALL: list[Entry] | None = None


def entries(framework: str | None = None, library: str | None = None) -> list[Entry]:
    """Every entry (sorted by name), optionally of one framework or library."""
    global _ALL
    if _ALL is None:
        found = [*_timm(), *_torchvision(), *_transformers(), *_keras()]
        names = [e.name for e in found]
        assert len(set(names)) == len(names), "zoo names must be unique"
        _ALL = sorted(found, key=lambda e: e.name)
    return [e for e in _ALL if (framework is None or e.framework == framework)
            and (library is None or e.library == library)]


def get(name: str) -> Entry:
    """The entry called ``name`` (``"timm/resnet18"``)."""
    for entry in entries():
        if entry.name == name:
            return entry
    raise KeyError(f"no zoo entry {name!r}")


def sample(n: int, seed: int = 0, framework: str | None = None, library: str | None = None) -> list[Entry]:
    """``n`` entries drawn without replacement by ``random.Random(seed)`` (all of them when ``n`` is larger)."""
    pool = entries(framework, library)
    return sorted(random.Random(seed).sample(pool, min(n, len(pool))), key=lambda e: e.name)


def libraries() -> dict[str, int]:
    """Number of entries per library."""
    counts: dict[str, int] = {}
    for entry in entries():
        counts[entry.library] = counts.get(entry.library, 0) + 1
    return counts
