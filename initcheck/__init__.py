"""initcheck: diagnose and lint the weight initialization of PyTorch and Keras models.

Importing initcheck imports no framework; torch or tensorflow are imported only when a model of theirs
is opened.

>>> import initcheck
>>> report = initcheck.check("model.pt")          # or an nn.Module / keras.Model in memory
>>> report.exit_code(), report.summary()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["check", "load", "analyze", "fix", "probe", "Report", "Finding", "InitcheckError", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import analyze, check
    from .errors import InitcheckError
    from .load import load
    from .report import Finding, Report


def __getattr__(name: str) -> Any:
    if name in ("check", "analyze"):
        from . import pipeline as _pipeline

        return getattr(_pipeline, name)
    if name == "load":
        from .load import load

        return load
    if name in ("Report", "Finding"):
        from . import report

        return getattr(report, name)
    if name == "InitcheckError":
        from .errors import InitcheckError

        return InitcheckError
    if name == "fix":
        from .fix import fix

        return fix
    if name == "probe":  # a callable module: initcheck.probe(model), initcheck.probe.coord_check(...)
        import importlib

        return importlib.import_module(".probe", __name__)
    raise AttributeError(f"module 'initcheck' has no attribute {name!r}")
