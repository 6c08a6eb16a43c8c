"""A pytest helper: fail a test when a model's initialization is broken.

.. code-block:: python

    from initcheck.testing import assert_init_ok

    def test_init():
        assert_init_ok(MyNet())            # raises AssertionError with the concise report

Works in any test runner (it raises a plain ``AssertionError``); importing it imports no framework.
"""

from __future__ import annotations

from typing import Any, Iterable

from .report import SEVERITY_RANK, Report


def assert_init_ok(model: Any, *, fail_on: str = "error", ignore: Iterable[str] | None = None,
                   select: Iterable[str] | None = None,
                   per_layer_ignores: dict[str, list[str]] | None = None, **check_kwargs: Any) -> Report:
    """Check ``model`` and raise ``AssertionError`` if a finding is at or above ``fail_on``.

    ``model`` is anything :func:`initcheck.check` accepts: an ``nn.Module``, a ``keras.Model``, a state_dict
    or a path. ``fail_on`` is ``"error"``, ``"warning"`` or ``"info"``; ``ignore``/``select`` take rule codes
    or prefixes; ``per_layer_ignores`` maps layer-name globs to codes (as in ``pyproject.toml``); other keyword
    arguments go to :func:`initcheck.check` (``activation``, ``activation_overrides``, ``input_shape``...).
    The error message is the concise report (one line per finding, then a summary). Returns the report when
    the check passes, for further assertions.
    """
    __tracebackhide__ = True  # pytest: show the caller's line, not this helper's
    from .config import apply_per_layer_ignores, check_codes
    from .pipeline import check
    from .render.ci_formats import render_concise

    if fail_on not in SEVERITY_RANK:
        raise ValueError(f"fail_on must be one of {', '.join(SEVERITY_RANK)}, not {fail_on!r}")
    ignore = [ignore] if isinstance(ignore, str) else (list(ignore) if ignore else None)
    select = [select] if isinstance(select, str) else (list(select) if select else None)
    per_layer_ignores = {glob: [c.upper() for c in ([codes] if isinstance(codes, str) else codes)]
                         for glob, codes in (per_layer_ignores or {}).items()}
    for glob, codes in per_layer_ignores.items():
        check_codes(codes, f"per_layer_ignores[{glob!r}]")
    check_kwargs.setdefault("progress", False)
    report = check(model, ignore=ignore, select=select, **check_kwargs)
    apply_per_layer_ignores(report, per_layer_ignores)
    if report.failed(fail_on):
        n = sum(1 for f in report.findings if SEVERITY_RANK[f.severity] >= SEVERITY_RANK[fail_on])
        head = (f"initcheck: {n} finding{'s' if n != 1 else ''} at or above {fail_on!r} in "
                f"{report.model.path}:\n")
        raise AssertionError(head + render_concise([report], {}).rstrip("\n"))
    return report
