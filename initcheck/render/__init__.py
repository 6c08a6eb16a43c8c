"""Renderers: a Report in, text out. Nothing here imports a framework."""

from __future__ import annotations

from typing import Callable

from ..report import Report

Renderer = Callable[[list[Report], dict], str]


def plural(n: int, word: str) -> str:
    """'1 error', '2 errors'."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def counts_text(summary: dict) -> str:
    """'1 error, 2 warnings, 0 infos' from ``Report.summary()``."""
    return ", ".join(plural(summary[k + "s"], k) for k in ("error", "warning", "info"))


def renderers() -> dict[str, Renderer]:
    from . import json_format, table

    found: dict[str, Renderer] = {"table": table.render, "json": json_format.render}
    try:  # machine formats for CI (concise, sarif, github, markdown) live in their own module
        from . import ci_formats

        found.update(ci_formats.RENDERERS)
    except ImportError:  # pragma: no cover
        pass
    return found


def render(reports: list[Report], fmt: str, **options) -> str:
    return renderers()[fmt](reports, options)
