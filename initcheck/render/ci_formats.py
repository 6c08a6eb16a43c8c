"""Formats for CI and the tools around it: ``concise``, ``sarif``, ``github``, ``markdown``; and ``--statistics``.

Every renderer is ``fn(reports, options) -> str``. Options read here: ``quiet`` (drop info findings and
summaries), ``baseline`` (a list of :class:`initcheck.baseline.BaselineResult`, one per report, when a
baseline is in use). Nothing here imports a framework.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from .. import __version__
from ..report import Finding, Report
from . import finite_json, plural

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}
INFORMATION_URI = "https://github.com/initcheck/initcheck"


def _visible(report: Report, options: dict) -> list[Finding]:
    quiet = options.get("quiet", False)
    return [f for f in report.findings if not (quiet and f.severity == "info")]


def _one_line(text: str) -> str:
    return " ".join(text.split())



def _totals(reports: list[Report]) -> dict[str, int]:
    return {sev: sum(r.count(sev) for r in reports) for sev in ("error", "warning", "info")}


def _totals_text(t: dict[str, int]) -> str:
    return f"{plural(t['error'], 'error')}, {plural(t['warning'], 'warning')}, {plural(t['info'], 'info')}"


# ---------------------------------------------------------------------------------------------- concise
def concise_line(path: str, f: Finding) -> str:
    """``PATH:LAYER: IC010 [warning] message`` (``PATH: ...`` for a model-level finding)."""
    where = f"{path}:{f.layer}" if f.layer is not None else path
    return f"{where}: {f.rule} [{f.severity}] {_one_line(f.message)}"


def render_concise(reports: list[Report], options: dict) -> str:
    """One line per finding, then one summary line (none with ``quiet``)."""
    lines = [concise_line(r.model.path, f) for r in reports for f in _visible(r, options)]
    if not options.get("quiet", False):
        t = _totals(reports)
        models = plural(len(reports), "model")
        if sum(t.values()):
            lines.append(f"Found {_totals_text(t)} in {models}.")
        else:
            lines.append(f"All checks passed ({models}).")
        accepted = sum(len(b.suppressed) for b in options.get("baseline") or [])
        if accepted:
            lines.append(f"{plural(accepted, 'finding')} accepted by the baseline.")
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------------------------------------- sarif
def artifact_uri(path: str) -> str:
    """The model file as GitHub code scanning wants it: a path relative to the current directory (the
    repository root in CI) with forward slashes; a ``file://`` URI for files outside it."""
    if path.startswith("<"):  # an in-memory model
        return quote(path)
    absolute = Path(os.path.abspath(path))
    try:
        rel = absolute.relative_to(Path(os.getcwd()).resolve())
    except ValueError:
        try:
            rel = absolute.relative_to(Path(os.getcwd()))
        except ValueError:
            return absolute.as_uri()
    return quote(rel.as_posix())


def _rule_descriptor(rule: Any) -> dict:
    body = textwrap.dedent(rule.explanation).strip()
    first_paragraph = _one_line(body.split("\n\n")[0]) if body else rule.summary
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": first_paragraph},
        "help": {"text": body or rule.summary, "markdown": body or rule.summary},
        "defaultConfiguration": {"level": SARIF_LEVEL.get(rule.severity, "warning")},
        "properties": {"tags": ["initialization", rule.name]},
    }


def _fingerprint(uri: str, report: Report, f: Finding) -> str:
    shape = next((list(layer.shape) for layer in report.layers if layer.name == f.layer), None)
    key = json.dumps([uri, f.rule, f.layer, shape])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _json_safe(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if hasattr(v, "item"):
        return _json_safe(v.item())
    if v is None or isinstance(v, (str, int, bool)):
        return v
    return str(v)


def sarif_document(reports: list[Report], options: dict | None = None) -> dict:
    """A SARIF 2.1.0 log with one run: every rule (with descriptions and help) and one result per finding,
    located on the model file (``region.startLine`` 1: a model file has no lines) and, logically, on the layer."""
    from ..rules import all_rules

    options = options or {}
    rules = all_rules()
    known = {r.code for r in rules}
    # findings of rules not in the registry (should not happen) still get a descriptor
    extra = sorted({f.rule for r in reports for f in r.findings} - known)
    descriptors = [_rule_descriptor(r) for r in rules] + [
        {"id": code, "shortDescription": {"text": code}, "fullDescription": {"text": code},
         "help": {"text": code}} for code in extra
    ]
    index = {d["id"]: i for i, d in enumerate(descriptors)}
    results = []
    for report in reports:
        uri = artifact_uri(report.model.path)
        for f in _visible(report, options):
            text = f"{f.layer}: {_one_line(f.message)}" if f.layer is not None else _one_line(f.message)
            if f.fix:
                text += f" Fix: {_one_line(f.fix)}"
            location: dict[str, Any] = {
                "physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": 1}},
            }
            if f.layer is not None:
                location["logicalLocations"] = [{"fullyQualifiedName": f.layer, "kind": "member"}]
            result: dict[str, Any] = {
                "ruleId": f.rule,
                "ruleIndex": index[f.rule],
                "level": SARIF_LEVEL[f.severity],
                "message": {"text": text},
                "locations": [location],
                "partialFingerprints": {"initcheckFinding/v1": _fingerprint(uri, report, f)},
                "properties": {"layer": f.layer, "severity": f.severity},
            }
            if f.data:
                result["properties"]["data"] = _json_safe(f.data)
            results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "initcheck",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": descriptors,
            }},
            "invocations": [{"executionSuccessful": True}],
            "results": results,
        }],
    }


def render_sarif(reports: list[Report], options: dict) -> str:
    return json.dumps(finite_json(sarif_document(reports, options)), indent=2, allow_nan=False) + "\n"


# ---------------------------------------------------------------------------------------------- github
def escape_data(text: str) -> str:
    """Escape a workflow command's message (as @actions/core does): ``%``, ``\\r``, ``\\n``."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value: as :func:`escape_data`, plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_line(path: str, f: Finding, rule_name: str | None = None) -> str:
    """``::error file=PATH,title=IC002 all-zero-weights::LAYER: message`` with both parts escaped."""
    title = f"{f.rule} {rule_name}" if rule_name else f.rule
    message = f"{f.layer}: {f.message}" if f.layer is not None else f.message
    if f.fix:
        message += f"\nfix: {f.fix}"
    return (f"::{GITHUB_LEVEL[f.severity]} file={escape_property(path)},title={escape_property(title)}"
            f"::{escape_data(message)}")


def render_github(reports: list[Report], options: dict) -> str:
    """GitHub Actions workflow commands: one annotation per finding on the model file; nothing when clean."""
    from ..rules import REGISTRY, all_rules

    all_rules()
    lines = []
    for r in reports:
        for f in _visible(r, options):
            rule = REGISTRY.get(f.rule)
            lines.append(github_line(r.model.path, f, rule.name if rule else None))
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------------------------------------- markdown
ICON = {"error": "❌", "warning": "⚠️", "info": "ℹ️"}


def md_cell(text: Any) -> str:
    """Text safe inside a Markdown table cell: no pipes, newlines or raw HTML."""
    s = "" if text is None else str(text)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")


def md_code(text: str, in_table: bool = True) -> str:
    """Inline code that survives backticks in ``text`` and, in a table cell, pipes."""
    ticks = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    escaped = text.replace("|", "\\|") if in_table else text  # GFM tables unescape \| even inside code spans
    return f"{ticks}{pad}{escaped}{pad}{ticks}"


def _num(x: Any) -> str:
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return ""
    return f"{x:.3g}" if x == 0 or 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"


def render_markdown(reports: list[Report], options: dict) -> str:
    """A pull-request comment: a headline, then per model its findings and (folded) its layers."""
    from ..rules import REGISTRY, all_rules

    all_rules()
    t = _totals(reports)
    baselines = options.get("baseline") or [None] * len(reports)
    models = plural(len(reports), "model")
    if t["error"]:
        head = f"## initcheck: ❌ {_totals_text(t)} in {models}"
    elif t["warning"]:
        head = f"## initcheck: ⚠️ {_totals_text(t)} in {models}"
    else:
        head = f"## initcheck: ✅ no errors or warnings in {models}"
    out = [head, ""]
    for report, base in zip(reports, baselines):
        s = report.summary()
        out.append(f"### {md_code(report.model.path, in_table=False)}")
        out.append("")
        out.append(f"{report.model.format}, {s['layers']} layers, {s['parameters']:,} parameters — "
                   f"{plural(s['errors'], 'error')}, {plural(s['warnings'], 'warning')}, "
                   f"{plural(s['infos'], 'info')}")
        out.append("")
        for banner in report.banners:
            out.append(f"> {md_cell(banner)}")
            out.append("")
        findings = _visible(report, options)
        if findings:
            out.append("| | rule | layer | finding |")
            out.append("|---|---|---|---|")
            for f in findings:
                rule = REGISTRY.get(f.rule)
                name = f" {md_cell(rule.name)}" if rule else ""
                message = md_cell(f.message) + (f"<br>fix: {md_cell(f.fix)}" if f.fix else "")
                layer = md_code(f.layer) if f.layer is not None else "(model)"
                out.append(f"| {ICON[f.severity]} {f.severity} | **{f.rule}**{name} | {layer} | {message} |")
            out.append("")
        if base is not None and (base.suppressed or base.stale):
            out.append(f"Baseline: {plural(len(base.suppressed), 'finding')} accepted, "
                       f"{plural(len(base.stale), 'stale entry')} no longer occurring.")
            out.append("")
        if not options.get("quiet", False) and report.layers:
            out.append(f"<details><summary>{plural(len(report.layers), 'layer')}</summary>")
            out.append("")
            out.append("| layer | kind | shape | std | expected | ratio |")
            out.append("|---|---|---|---:|---:|---:|")
            for layer in report.layers:
                st = layer.weight.stats
                a = layer.analysis
                shape = "×".join(map(str, layer.shape)) or "scalar"
                out.append(f"| {md_code(layer.name)} | {md_cell(layer.kind)} | {shape} | "
                           f"{_num(st.std) if st else ''} | {_num(a.get('expected_std'))} | "
                           f"{_num(a.get('std_ratio'))} |")
            out.append("")
            out.append("</details>")
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------- statistics
def statistics(reports: list[Report], options: dict | None = None) -> list[dict]:
    """Count of findings per rule (and severity), most frequent first."""
    from ..rules import REGISTRY, all_rules

    all_rules()
    counts = Counter((f.rule, f.severity) for r in reports for f in _visible(r, options or {}))
    rows = []
    for (code, severity), n in counts.items():
        rule = REGISTRY.get(code)
        rows.append({"rule": code, "name": rule.name if rule else "", "severity": severity, "count": n})
    rows.sort(key=lambda row: (-row["count"], row["rule"], row["severity"]))
    return rows


def render_statistics(reports: list[Report], options: dict, fmt: str = "text") -> str:
    """``--statistics``: a JSON list with ``--format json``, else aligned text lines ``COUNT CODE [severity] name``."""
    rows = statistics(reports, options)
    if fmt == "json":
        return json.dumps(finite_json(rows), indent=2, allow_nan=False) + "\n"
    if not rows:
        return "" if options.get("quiet") else "No findings.\n"
    width = max(len(str(row["count"])) for row in rows)
    return "".join(f"{row['count']:>{width}}  {row['rule']}  [{row['severity']}]  {row['name']}\n" for row in rows)


RENDERERS: dict[str, Callable[[list[Report], dict], str]] = {
    "concise": render_concise,
    "sarif": render_sarif,
    "github": render_github,
    "markdown": render_markdown,
}
