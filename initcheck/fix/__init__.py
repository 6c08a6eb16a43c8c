"""Repair what initcheck flags: reinitialize layers, ZCA-whiten a first layer, LSUV.

>>> import initcheck, torch
>>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
>>> changes = initcheck.fix(net, seed=0)              # in place; only layers with findings ≥ warning
>>> changes = initcheck.fix(net, layers=["0"], scheme="he_uniform", seed=0)

Writing files back (same format, atomically) is :mod:`initcheck.frameworks.torch.write` and the Keras
writer; the ``initcheck fix`` command ties loading, fixing, writing and the re-check together.
"""

from __future__ import annotations

from typing import Any, Iterable

from .reinit import SCHEME_CHOICES, Change, parse_scheme, reinit_layers, select_layers

__all__ = ["fix", "Change", "SCHEME_CHOICES", "parse_scheme", "select_layers", "reinit_layers", "as_model"]


def as_model(source: Any, report=None, *, trust: bool = False):
    """The framework-neutral :class:`~initcheck.model.Model` for ``source`` (an initcheck Model, an
    ``nn.Module``, a ``keras.Model``, a state_dict or a path), reusing ``report.model`` when the report
    was made for this same object."""
    from ..model import Model

    if isinstance(source, Model):
        return source
    if report is not None and (report.model.handle is source or report.model.path == source):
        return report.model
    from ..load import load

    return load(source, trust=trust)


def fix(
    model: Any,
    report=None,
    *,
    scheme: str = "auto",
    layers: Iterable[str] | str | None = None,
    seed: int | None = None,
    all_layers: bool = False,
    activation: str | None = None,
    dry_run: bool = False,
    trust: bool = False,
) -> list[Change]:
    """Reinitialize, in place, the layers of ``model`` that need it; return what changed.

    ``model``: an ``nn.Module``, a ``keras.Model``, a state_dict (its tensors are modified in place) or an
    already loaded :class:`~initcheck.model.Model`. ``report``: a report of this model; when None the
    model is analyzed first (with ``activation`` for layers whose activation is unknown).

    Which layers: ``all_layers=True`` → every layer; ``layers`` (glob patterns on layer or tensor names)
    → those; otherwise the layers with findings at warning or above. Weights are drawn from ``scheme``
    (``"auto"``: per layer from its activation, see :mod:`initcheck.fix.reinit`; or a name of the table:
    he_normal, he_uniform, xavier_normal, xavier_uniform, lecun_normal, lecun_uniform, orthogonal,
    uniform (PyTorch's default), ``normal:0.02``); biases go to 0, normalization scales/shifts to 1/0.
    ``seed`` makes the draws reproducible (each tensor's generator depends on the seed and its name).
    ``dry_run`` computes the changes without modifying anything.
    """
    m = as_model(model, report, trust=trust)
    if report is None:  # always from a judgement: a chosen layer gets the activation the check would use
        from ..pipeline import CheckOptions, analyze

        report = analyze(m, CheckOptions(activation=activation, progress=False))
    sch = parse_scheme(scheme)
    chosen = select_layers(m, report, layers, all_layers)
    return reinit_layers(m, chosen, sch, seed=seed, activation=activation, dry_run=dry_run)


# ``initcheck.fix`` is both this package and the function above: importing a submodule
# (``initcheck.fix.zca``) binds the package as the attribute ``initcheck.fix``, which would shadow the
# lazily exported function. Making the package callable keeps ``initcheck.fix(model, ...)`` working either way.
import sys as _sys
import types as _types


class _CallablePackage(_types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> list[Change]:
        return fix(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallablePackage
