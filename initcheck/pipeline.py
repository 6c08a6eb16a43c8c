"""The pipeline: load → statistics → judgement (context, roles, provenance, expectations, fingerprints) →
rules → Report. Data flows one way: nothing downstream of the judgement re-derives it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import InitcheckError
from .judge import judge
from .load import load
from .model import Model
from .report import Report
from .rules import RuleOptions, run_rules, select_rules


@dataclass
class CheckOptions:
    """Everything a check can be told; the CLI and the Python API both fill this."""

    trust: bool = False
    select: list[str] | None = None
    ignore: list[str] | None = None
    activation: str | None = None  # for layers whose activation stays unknown
    activation_overrides: dict[str, str] = field(default_factory=dict)  # layer glob → activation
    model_factory: str | None = None  # package.module:factory for tensor-only files
    from_config: bool = False  # build a Hugging Face directory's architecture from its config.json
    input_shape: tuple[int, ...] | None = None
    progress: bool | None = None  # None: on a terminal only
    jobs: int | None = None  # threads for the statistics pass; None: all CPUs (results do not depend on it)

    def __post_init__(self) -> None:
        """Unknown activation names are an error here too (the CLI and the config file refuse them), so a
        typo never silently turns a sharp check into the 'any activation' band."""
        from .config import check_activation

        if self.from_config and self.model_factory:
            raise InitcheckError("--from-config and --model both name the architecture: give one")
        if self.activation is not None:
            check_activation(self.activation, "activation")
        for pattern, act in (self.activation_overrides or {}).items():
            check_activation(act, f"activation for {pattern!r}")


def compute_statistics(model: Model, progress: bool | None = None, jobs: int | None = None) -> None:
    """One streaming pass per tensor on ``jobs`` threads; tied tensors are read once (they are one Param)."""
    from .statpass import compute_all

    compute_all(model, jobs=jobs, progress=progress)


def analyze(model: Model, options: CheckOptions | None = None) -> Report:
    """Statistics, context, expectations, fingerprints and rules for an already loaded model."""
    options = options or CheckOptions()
    rules = select_rules(options.select, options.ignore)  # validates codes before any work
    model = attach_architecture(model, options)
    compute_statistics(model, options.progress, options.jobs)
    banners = judge(model, options)
    findings = run_rules(model, rules, RuleOptions(trained=model.trained is not None, framework=model.framework))
    return Report(model=model, findings=findings, banners=banners)


def attach_architecture(model: Model, options: CheckOptions) -> Model:
    """With ``--model``, a tensor-only file is loaded into the user's architecture (for its graph); with
    ``--from-config``, into the transformers class its config.json names (frameworks/torch/hfbuild.py)."""
    if model.handle is not None:
        return model
    if options.from_config:
        if model.framework not in ("torch", "safetensors"):
            raise InitcheckError("--from-config builds PyTorch transformers models; this is a "
                                 f"{model.framework} model", model.path)
        from .frameworks.torch.hfbuild import build_from_config

        return build_from_config(model, trust=options.trust)
    if not options.model_factory:
        return model
    if model.framework in ("torch", "safetensors"):
        from .frameworks.factory import build_torch_module

        return build_torch_module(model, options.model_factory)
    from .frameworks.keras.load import load_weights_with_factory  # Keras .weights.h5

    return load_weights_with_factory(model.path, options.model_factory)


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
