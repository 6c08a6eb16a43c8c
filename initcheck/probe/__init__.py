"""The signal-propagation probe: forward and backward sizes by depth, measured, not predicted.

>>> import initcheck
>>> result = initcheck.probe(model)            # nn.Module, keras.Model, or a path (--model for tensor files)
>>> result.report.findings, result.measurements.layers[0].out_rms
>>> coord = initcheck.probe.coord_check(make_mlp, [64, 128, 256, 512])   # μP's coord check

One forward and one backward pass (eval mode, random unit-variance cotangent, no optimizer step, weights
bit-identical afterwards) measure per layer the output RMS and its ratio to the input's, the gradient
RMS at the output and of the weights, dead ReLU and saturated tanh/sigmoid units, attention entropy and the
update-to-weight ratio one SGD step would make; the IC4xx rules (``initcheck.rules.probe``) judge them.
This package is framework-neutral: the measuring lives in ``frameworks/torch/probe.py`` and
``frameworks/keras/probe.py``. See docs/probe.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InitcheckError
from ..model import Model
from .result import AttentionProbe, CoordLayer, CoordPoint, CoordResult, LayerProbe, ProbeResult

DEFAULT_LR = 1e-3
DEFAULT_COORD_LR = 0.1

__all__ = ["probe", "coord_check", "ProbeReport", "CoordReport", "ProbeResult", "LayerProbe", "AttentionProbe",
           "CoordResult", "CoordLayer", "CoordPoint", "probe_of", "coord_of"]


def probe_of(model: Model) -> ProbeResult | None:
    """The probe's measurements attached to ``model`` (None when it was not probed)."""
    value = getattr(model, "probe", None)
    return value if isinstance(value, ProbeResult) else None


def coord_of(model: Model) -> CoordResult | None:
    """The coord check attached to ``model`` (the widest model of the check), or None."""
    value = getattr(model, "probe_coord", None)
    return value if isinstance(value, CoordResult) else None


class _MeasuredReport:
    """A report of IC4xx findings (``initcheck.report.Report``) with the measurements behind them."""

    json_key = ""
    measurements: Any
    report: Any

    @property
    def findings(self) -> list:
        return self.report.findings

    def exit_code(self, fail_on: str = "error") -> int:
        return self.report.exit_code(fail_on)

    def to_json(self) -> dict:
        doc = self.report.to_json()
        doc[self.json_key] = self.measurements.to_json()
        return doc


@dataclass
class ProbeReport(_MeasuredReport):
    """The measurements and the IC4xx findings of one probe."""

    measurements: ProbeResult
    report: Any  # initcheck.report.Report
    json_key = "probe"


@dataclass
class CoordReport(_MeasuredReport):
    """The coord check's measurements and findings (on the widest model's report)."""

    measurements: CoordResult
    report: Any
    probes: list[ProbeResult] = field(default_factory=list)
    json_key = "coord_check"


def _rules(select: Sequence[str] | None, ignore: Sequence[str] | None):
    import importlib

    from ..rules import select_rules

    importlib.import_module("..rules.probe", __name__)  # registers IC4xx (until the registry imports it)

    return select_rules(list(select) if select else ["IC4"], ignore)


def _load_data(data: Any) -> tuple[np.ndarray | None, str | None]:
    if data is None:
        return None, None
    if isinstance(data, (str, os.PathLike)):
        from ..fix.zca import load_data

        return load_data(os.fspath(data)), os.fspath(data)
    return np.asarray(data), "array"


def measure(model: Model, *, input_shape: tuple[int, ...] | None = None, data: np.ndarray | None = None,
            data_label: str | None = None, lr: float = DEFAULT_LR, seed: int = 0) -> ProbeResult:
    """Run the framework's measuring pass on a loaded model that has its live object (``handle``)."""
    if model.handle is None:
        raise InitcheckError("the probe needs the model's architecture: a module or Keras model, or "
                             "--model package.module:factory for a tensor-only file", model.path)
    if model.framework == "torch":
        from ..frameworks.torch.probe import measure as torch_measure

        return torch_measure(model, input_shape=input_shape, data=data, data_label=data_label, lr=lr, seed=seed)
    if model.framework == "keras":
        from ..frameworks.keras.probe import measure as keras_measure

        return keras_measure(model, input_shape=input_shape, data=data, data_label=data_label, lr=lr, seed=seed)
    raise InitcheckError(f"the probe cannot run a {model.framework} model", model.path)


def probe(source: Any, *, input_shape: tuple[int, ...] | None = None, data: Any = None, lr: float = DEFAULT_LR,
          seed: int = 0, trust: bool = False, model_factory: str | None = None, activation: str | None = None,
          select: Sequence[str] | None = None, ignore: Sequence[str] | None = None) -> ProbeReport:
    """Probe a model: an ``nn.Module``, a ``keras.Model``, or a path (with ``model_factory`` for
    tensor-only files). ``data``: an array or a .npy/.npz/.pt file used as the input instead of a
    synthetic one. ``lr``: the SGD learning rate of the update-to-weight ratio. The static judgement runs
    first, so each layer's prediction stands beside its measurement."""
    from ..load import load
    from ..pipeline import CheckOptions, analyze
    from ..report import Report
    from ..rules import RuleOptions, run_rules

    rules = _rules(select, ignore)
    arr, label = _load_data(data)
    model = source if isinstance(source, Model) else load(source, trust=trust)
    static = analyze(model, CheckOptions(trust=trust, model_factory=model_factory, input_shape=input_shape,
                                         activation=activation, select=["IC4"], progress=False))
    model = static.model
    result = measure(model, input_shape=input_shape, data=arr, data_label=label, lr=lr, seed=seed)
    model.probe = result  # read back through probe_of()
    findings = run_rules(model, rules, RuleOptions(trained=model.trained is not None))
    return ProbeReport(result, Report(model=model, findings=findings, banners=static.banners))


def coord_check(factory: Callable[[int], Any] | str, widths: Sequence[int], *, lr: float = DEFAULT_COORD_LR,
                seed: int = 0, input_shape: tuple[int, ...] | None = None, data: Any = None,
                select: Sequence[str] | None = None, ignore: Sequence[str] | None = None) -> CoordReport:
    """μP's coord check: build the model at each width (``factory(width)``), probe it, take one SGD step
    of ``lr`` and measure each layer's output size at init, after the step and of the change; IC408 flags
    layers whose sizes grow or shrink with width."""
    from ..load import load
    from ..report import Report
    from ..rules import RuleOptions, run_rules
    from .analysis import coord_slopes

    rules = _rules(select or ["IC408"], ignore)
    widths = sorted({int(w) for w in widths})
    if len(widths) < 2:
        raise InitcheckError("the coord check needs at least two widths (--widths 64,128,256,512)")
    label = factory if isinstance(factory, str) else getattr(factory, "__name__", repr(factory))
    if isinstance(factory, str):
        from ..frameworks.factory import resolve_factory

        build = resolve_factory(factory)
    else:
        build = factory
    arr, _ = _load_data(data)
    per_width: dict[int, list[tuple[str, tuple]]] = {}
    kinds: dict[str, str] = {}
    model = None
    for w in widths:
        try:
            obj = build(w)
        except Exception as e:
            raise InitcheckError(f"the factory {label} failed for width {w}: {type(e).__name__}: {e}") from e
        model = load(obj)
        per_width[w] = list(_coord_sizes(model, input_shape, arr, lr, seed).items())
        kinds.update({la.name: la.kind for la in model.layers})
    coord = CoordResult(label, widths, lr)
    rows = _match_layers(per_width, widths, coord.notes)
    for i, (name, sizes) in enumerate(rows):
        points = [CoordPoint(w, *s) for w, s in zip(widths, sizes)]
        position = "input" if i == 0 else "output" if i == len(rows) - 1 else "hidden"
        init_s, delta_s, step_s = coord_slopes(points)
        coord.layers.append(CoordLayer(name, kinds.get(name, "?"), position, points, init_s, delta_s, step_s))
    model.probe_coord = coord  # read back through coord_of()
    findings = run_rules(model, rules, RuleOptions())
    return CoordReport(coord, Report(model=model, findings=findings))


def _match_layers(per_width: dict[int, list[tuple[str, tuple]]], widths: list[int],
                  notes: list[str]) -> list[tuple[str, list[tuple]]]:
    """(name, sizes at each width) for the layers every width has: by name, or — when the names differ,
    as Keras numbers its layers per session — by execution order; named as at the widest width."""
    widest = per_width[widths[-1]]
    by_name = [dict(per_width[w]) for w in widths]
    shared = [(n, [d[n] for d in by_name]) for n, _ in widest if all(n in d for d in by_name)]
    if len(shared) == len(widest):
        return shared
    counts = {len(per_width[w]) for w in widths}
    if len(counts) == 1:
        notes.append("layers matched across widths by execution order (their names differ)")
        return [(widest[i][0], [per_width[w][i][1] for w in widths]) for i in range(len(widest))]
    dropped = [n for n, _ in widest if n not in {s for s, _ in shared}]
    notes.append(f"{len(dropped)} layer(s) not present at every width: {', '.join(dropped[:4])}")
    return shared


def _coord_sizes(model: Model, input_shape, data, lr: float, seed: int) -> dict[str, tuple]:
    if model.framework == "torch":
        from ..frameworks.torch.probe import build_inputs, coord_measure

        args, kwargs, _, _ = build_inputs(model.handle, model, input_shape, data, seed)
        return coord_measure(model.handle, model, args, kwargs, seed=seed, lr=lr)
    if model.framework == "keras":
        from ..frameworks.keras.probe import coord_measure as keras_coord

        return keras_coord(model, input_shape=input_shape, data=data, seed=seed, lr=lr)
    raise InitcheckError(f"the coord check cannot run a {model.framework} model", model.path)


class _CallableModule(type(os)):
    """``initcheck.probe(model)`` calls :func:`probe`; ``initcheck.probe.coord_check`` is the module's."""

    def __call__(self, *args: Any, **kwargs: Any) -> ProbeReport:
        return probe(*args, **kwargs)


import sys as _sys  # noqa: E402

_sys.modules[__name__].__class__ = _CallableModule
