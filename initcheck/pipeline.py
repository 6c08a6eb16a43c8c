"""The pipeline: load → statistics → context → expectations and fingerprints → rules → Report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .load import load
from .model import Model
from .progress import Progress
from .report import Report
from .rules import RuleOptions, run_rules, select_rules
from .stats import compute_stats


@dataclass
class CheckOptions:
    """Everything a check can be told; the CLI and the Python API both fill this."""

    trust: bool = False
    select: list[str] | None = None
    ignore: list[str] | None = None
    activation: str | None = None  # for layers whose activation stays unknown
    activation_overrides: dict[str, str] = field(default_factory=dict)  # layer glob → activation
    model_factory: str | None = None  # package.module:factory for tensor-only files
    input_shape: tuple[int, ...] | None = None
    progress: bool | None = None  # None: on a terminal only


def compute_statistics(model: Model, progress: bool | None = None) -> None:
    """One streaming pass per tensor; tied tensors are read once (they are one Param)."""
    total = sum(p.tensor.size for layer in model.layers for p in layer.params)
    with Progress(total, "statistics", enabled=progress) as bar:
        for layer in model.layers:
            for p in layer.params:
                if p.stats is None:
                    per_unit = p is layer.weight and layer.is_matrix
                    p.stats = compute_stats(p.tensor.blocks(), per_unit=per_unit, total_units=p.tensor.units())
                bar.advance(p.tensor.size, layer.name)


def analyze(model: Model, options: CheckOptions | None = None) -> Report:
    """Statistics, context, expectations, fingerprints and rules for an already loaded model."""
    options = options or CheckOptions()
    rules = select_rules(options.select, options.ignore)  # validates codes before any work
    model = attach_architecture(model, options)
    compute_statistics(model, options.progress)
    banners = _judge(model, options)
    findings = run_rules(model, rules, RuleOptions(trained=model.trained is not None))
    return Report(model=model, findings=findings, banners=banners)


def attach_architecture(model: Model, options: CheckOptions) -> Model:
    """With ``--model``, a tensor-only file is loaded into the user's architecture (for its graph)."""
    if not options.model_factory or model.handle is not None:
        return model
    if model.framework in ("torch", "safetensors"):
        from .frameworks.factory import build_torch_module

        return build_torch_module(model, options.model_factory)
    from .frameworks.keras.load import load_weights_with_factory  # Keras .weights.h5

    return load_weights_with_factory(model.path, options.model_factory)


def _judge(model: Model, options: CheckOptions) -> list[str]:
    """Graph context, expectations and fingerprints (see initcheck.context and initcheck.fingerprint)."""
    try:
        from .judge import judge
    except ImportError:  # pragma: no cover - present once the judgement layer exists
        return []
    return judge(model, options)


def check(source: Any, **kwargs: Any) -> Report:
    """Check a model: a path, an ``nn.Module``, a ``keras.Model`` or a state_dict.

    Keyword arguments are those of :class:`CheckOptions` (``trust``, ``select``, ``ignore``,
    ``activation``, ``model_factory``, ``input_shape``...). Returns a :class:`~initcheck.report.Report`;
    ``report.exit_code()`` is what the CLI would exit with.
    """
    options = CheckOptions(**kwargs)
    select_rules(options.select, options.ignore)
    model = load(source, trust=options.trust)
    return analyze(model, options)


def check_many(sources: Iterable[Any], **kwargs: Any) -> list[Report]:
    return [check(s, **kwargs) for s in sources]
