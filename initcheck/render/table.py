"""``--format table``: one row per layer, then findings and a summary; fits the terminal's width."""

from __future__ import annotations

import math
import os
import shutil
import textwrap

from tabulate import tabulate

from ..report import Report
from . import plural

# Columns in the order shown; the ones dropped first when the terminal is narrow come last here.
COLUMNS = ["layer", "kind", "shape", "fan_in", "fan_out", "std", "act", "expected", "ratio", "init",
           "mean", "min", "max"]
DROP_ORDER = ["min", "max", "mean", "fan_out", "expected", "kind"]
MIN_NAME = 28
COLORS = {"error": "\033[31m", "warning": "\033[33m", "info": "\033[36m", "bold": "\033[1m", "reset": "\033[0m"}


def _num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "nan" if isinstance(x, float) and math.isnan(x) else ("inf" if x else "-")
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def _shape(shape) -> str:
    return "×".join(str(s) for s in shape) if shape else "scalar"


def _middle_truncate(s: str, width: int) -> str:
    if len(s) <= width:
        return s
    keep = width - 1
    return s[: keep // 2] + "…" + s[len(s) - (keep - keep // 2):]


def _row(layer, marker: str) -> dict:
    st = layer.weight.stats
    a = layer.analysis
    fp = a.get("fingerprint") or {}
    init = fp.get("label") or fp.get("scheme") or ""
    ctx = layer.context
    act = ctx.activation or ("?" if ctx.activation_source == "unknown" and layer.is_matrix else "")
    return {
        "layer": marker + layer.name,
        "kind": layer.kind,
        "shape": _shape(layer.shape),
        "fan_in": "" if layer.fan_in is None else layer.fan_in,
        "fan_out": "" if layer.fan_out is None else layer.fan_out,
        "std": _num(st.std) if st else "",
        "act": act,
        "expected": _num(a.get("expected_std")) if a.get("expected_std") else "",
        "ratio": f"{a['std_ratio']:.2f}" if isinstance(a.get("std_ratio"), float) and math.isfinite(a["std_ratio"])
        else "",
        "init": init,
        "mean": _num(st.mean) if st else "",
        "min": _num(st.min) if st else "",
        "max": _num(st.max) if st else "",
    }


def _width() -> int:
    env = os.environ.get("COLUMNS")
    if env and env.isdigit():
        return int(env)
    return shutil.get_terminal_size((100, 24)).columns


def layer_table(report: Report, width: int | None = None) -> str:
    width = width or _width()
    marks = {}
    for f in report.findings:
        if f.layer is not None:
            rank = {"error": 3, "warning": 2, "info": 1}[f.severity]
            marks[f.layer] = max(marks.get(f.layer, 0), rank)
    symbol = {0: "  ", 1: "· ", 2: "! ", 3: "✗ "}
    rows = [_row(layer, symbol[marks.get(layer.name, 0)]) for layer in report.layers]
    columns = [c for c in COLUMNS if any(r[c] != "" for r in rows) or c in ("layer", "kind", "shape", "std")]
    dropped: list[str] = []

    def build(cols, name_width=None):
        data = []
        for r in rows:
            vals = [r[c] for c in cols]
            if name_width:
                vals[0] = r["layer"][:2] + _middle_truncate(r["layer"][2:], name_width)
            data.append(vals)
        return tabulate(data, headers=cols, tablefmt="simple", disable_numparse=True,
                        colalign=["left" if c in ("layer", "kind", "shape", "act", "init") else "right"
                                  for c in cols])

    name_width = max((len(r["layer"]) - 2 for r in rows), default=0)
    text = build(columns)
    drops = [c for c in DROP_ORDER if c in columns]
    # names matter most: drop the least useful columns first, then shorten names (middle ellipsis)
    while _max_line(text) > width:
        over = _max_line(text) - width
        if drops:
            col = drops.pop(0)
            columns.remove(col)
            dropped.append(col)
        elif name_width > MIN_NAME:
            name_width = max(MIN_NAME, name_width - over)
        else:
            break
        text = build(columns, name_width)
    note = "\n" + textwrap.fill(f"(narrow terminal: {', '.join(dropped)} hidden; --format json has every value)",
                                width=width) if dropped else ""
    return text + note



def _max_line(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def _color(text: str, key: str, enabled: bool) -> str:
    return f"{COLORS[key]}{text}{COLORS['reset']}" if enabled else text


def render_one(report: Report, options: dict) -> str:
    color = options.get("color", False)
    quiet = options.get("quiet", False)
    out: list[str] = []
    m = report.model
    if quiet and all(f.severity == "info" for f in report.findings):
        return ""  # -q: nothing at all to say about a clean model
    if not quiet:
        for banner in report.banners:
            out.append(_color(f"note: {banner}", "bold", color))
        out.append(layer_table(report, options.get("width")))
        out.append("")
    for f in report.findings:
        if quiet and f.severity == "info":
            continue
        where = f.layer or "<model>"
        sev = _color(f"{f.severity:7}", f.severity, color)
        width = options.get("width") or _width()
        head = f"{f.severity:7} {f.rule} {where}: "
        body = textwrap.fill(head + f.message, width=max(width, 60), subsequent_indent=" " * 8,
                             break_on_hyphens=False)
        line = sev + body[len(f"{f.severity:7}"):]
        if f.fix:
            line += "\n" + textwrap.fill(f"fix: {f.fix}", width=max(width, 60), initial_indent=" " * 8,
                                         subsequent_indent=" " * 13, break_on_hyphens=False)
        out.append(line)
    s = report.summary()
    src = f"{m.format}" + (f" (key {m.checkpoint_key!r})" if m.checkpoint_key else "")
    width = options.get("width") or _width()
    summary = (f"{m.path}: {src}, {s['layers']} layers, {s['parameters']:,} parameters — "
               f"{plural(s['errors'], 'error')}, {plural(s['warnings'], 'warning')}, {plural(s['infos'], 'info')}")
    if s.get("unknown_activations"):
        reasons = s.get("unknown_activation_reasons") or {}
        why = reasons[0]["reason"] if reasons else ""
        more = f" and {len(reasons) - 1} more reasons" if len(reasons) > 1 else ""
        summary += (f"; activation unknown for {plural(s['unknown_activations'], 'layer')}"
                    + (f" ({why}{more})" if why else ""))
    out.append(textwrap.fill(summary, width=width, subsequent_indent="  ", break_on_hyphens=False,
                             break_long_words=False))
    for note in m.source_notes:
        out.append(textwrap.fill(note, width=width, initial_indent="  ", subsequent_indent="    ",
                                 break_on_hyphens=False, break_long_words=False))
    return "\n".join(x for x in out if x is not None) + "\n"


def render(reports: list[Report], options: dict) -> str:
    return "\n".join(text for text in (render_one(r, options) for r in reports) if text)
