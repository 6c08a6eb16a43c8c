"""Renderers: a Report in, text out. Nothing here imports a framework."""

from __future__ import annotations

import math
from typing import Any, Callable

from ..report import Report

Renderer = Callable[[list[Report], dict], str]


def plural(n: int, word: str) -> str:
    """'1 error', '2 errors'."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def counts_text(summary: dict) -> str:
    """'1 error, 2 warnings, 0 infos' from ``Report.summary()``."""
    return ", ".join(plural(summary[k + "s"], k) for k in ("error", "warning", "info"))


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf: a std that overflowed) replaced by None (JSON null),
    so that strict JSON (``allow_nan=False``) can always be written."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def renderers() -> dict[str, Renderer]:
    """Format name → renderer. A renderer module that fails to import is a bug and raises."""
    from . import ci_formats, json_format, table

    found: dict[str, Renderer] = {"table": table.render, "json": json_format.render}
    found.update(ci_formats.RENDERERS)  # machine formats for CI: concise, sarif, github, markdown
    return found


def render(reports: list[Report], fmt: str, **options) -> str:
    return renderers()[fmt](reports, options)
