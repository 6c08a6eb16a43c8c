"""Baselines: accept today's findings so that only new ones fail a build.

Workflow (documented in ``docs/ci.md``)::

    initcheck check models/*.pt --baseline initcheck-baseline.json --update-baseline   # record, exit 0
    initcheck check models/*.pt --baseline initcheck-baseline.json                     # CI: only new findings

An entry is keyed by (model, rule, layer, shape of the layer's weight). The model is the file's path
relative to the baseline file's folder, so the baseline works from any current directory. The shape is part of
the key so that resizing a layer (a different architecture) brings its findings back. Keys are counted: two
findings with one key need two entries. A finding covered by an entry is removed from the report (it neither
shows nor fails); an entry of a model checked in this run that matched nothing is *stale* — the problem was
fixed — and is reported so the baseline can be refreshed with ``--update-baseline``. Entries of models not
checked in a run are left alone, by both checking and updating.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .errors import InitcheckError
from .io import atomic_write_text
from .report import Finding, Report

BASELINE_VERSION = 1
Key = tuple[str, str, str | None, tuple[int, ...] | None]


@dataclass
class BaselineResult:
    """What a baseline did to one report: findings it accepted and entries that matched nothing."""

    model: str  # the model's key in the baseline
    suppressed: list[Finding] = field(default_factory=list)
    stale: list[dict] = field(default_factory=list)


class Baseline:
    """A baseline file: a list of accepted findings, grouped by model.

    ``Baseline.load(path)`` reads one (an error if it is missing or malformed), ``Baseline(path)`` starts an
    empty one; :meth:`apply` filters a report, :meth:`update` records reports, :meth:`save` writes atomically.
    """

    def __init__(self, path: str, entries: list[dict] | None = None):
        self.path = path
        self.entries: list[dict] = list(entries or [])

    @classmethod
    def load(cls, path: str) -> "Baseline":
        if not os.path.isfile(path):
            raise InitcheckError("baseline file not found (create it with --update-baseline)", path)
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise InitcheckError(f"cannot read baseline: {e}", path) from None
        if not isinstance(doc, dict) or doc.get("initcheck_baseline") != BASELINE_VERSION \
                or not isinstance(doc.get("entries"), list):
            raise InitcheckError(f"not an initcheck baseline (expected {{\"initcheck_baseline\": {BASELINE_VERSION}, "
                                 "\"entries\": [...]}})", path)
        for e in doc["entries"]:
            if not isinstance(e, dict) or not isinstance(e.get("model"), str) or not isinstance(e.get("rule"), str):
                raise InitcheckError(f"malformed baseline entry {e!r}", path)
        return cls(path, doc["entries"])

    # -- keys -----------------------------------------------------------------------------------------------
    def model_key(self, model_path: str) -> str:
        """A model's key: its path relative to the baseline's folder (posix), or the name of an in-memory model."""
        if not os.path.exists(model_path):
            return model_path
        base = os.path.dirname(os.path.abspath(self.path))
        rel = os.path.relpath(os.path.abspath(model_path), base)
        return rel.replace(os.sep, "/")

    @staticmethod
    def _entry_key(e: dict) -> Key:
        shape = e.get("shape")
        return (e["model"], e["rule"].upper(), e.get("layer"), tuple(shape) if shape is not None else None)

    def _finding_key(self, model: str, report: Report, f: Finding) -> Key:
        return (model, f.rule.upper(), f.layer, _layer_shape(report, f.layer))

    # -- use ------------------------------------------------------------------------------------------------
    def apply(self, report: Report) -> BaselineResult:
        """Remove the findings this baseline accepts from ``report.findings``; report stale entries."""
        model = self.model_key(report.model.path)
        budget = Counter(self._entry_key(e) for e in self.entries if e["model"] == model)
        result = BaselineResult(model)
        kept: list[Finding] = []
        for f in report.findings:
            key = self._finding_key(model, report, f)
            if budget[key] > 0:
                budget[key] -= 1
                result.suppressed.append(f)
            else:
                kept.append(f)
        report.findings[:] = kept
        for e in self.entries:
            key = self._entry_key(e)
            if e["model"] == model and budget[key] > 0:
                budget[key] -= 1
                result.stale.append(e)
        return result

    def update(self, reports: list[Report]) -> int:
        """Replace the entries of the reports' models with their current findings; returns the entry count."""
        models = {self.model_key(r.model.path) for r in reports}
        entries = [e for e in self.entries if e["model"] not in models]
        for r in reports:
            model = self.model_key(r.model.path)
            for f in r.findings:
                shape = _layer_shape(r, f.layer)
                entries.append({"model": model, "rule": f.rule, "layer": f.layer,
                                "shape": list(shape) if shape is not None else None,
                                "severity": f.severity, "message": f.message})
        entries.sort(key=lambda e: (e["model"], str(e.get("layer")), e["rule"], e.get("message", "")))
        self.entries = entries
        return len(entries)

    def save(self) -> None:
        doc: dict[str, Any] = {
            "initcheck_baseline": BASELINE_VERSION,
            "comment": "Findings accepted on purpose; only new ones fail. "
                       "Refresh with: initcheck check MODELS --baseline THIS_FILE --update-baseline",
            "entries": self.entries,
        }
        atomic_write_text(self.path, json.dumps(doc, indent=2, allow_nan=False) + "\n")


def _layer_shape(report: Report, layer: str | None) -> tuple[int, ...] | None:
    if layer is None:
        return None
    for candidate in report.layers:
        if candidate.name == layer:
            return tuple(int(s) for s in candidate.shape)
    return None


def describe_stale(entry: dict) -> str:
    """One line naming a stale entry: ``models/a.pt:fc1: IC002 (shape 128x64)``."""
    shape = entry.get("shape")
    where = f"{entry['model']}:{entry.get('layer') or '<model>'}"
    return f"{where}: {entry['rule']}" + (f" (shape {'x'.join(map(str, shape))})" if shape else "")
