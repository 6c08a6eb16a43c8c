"""Text and JSON for probe results: the per-layer table (measured beside predicted), attention, findings.

Other formats (concise, sarif, github, markdown) are the existing renderers applied to the probe's
Report, whose findings are the IC4xx ones.
"""

from __future__ import annotations

import json
import math
import textwrap

from tabulate import tabulate

from ..render import counts_text
from . import CoordReport, ProbeReport

COLUMNS = ["layer", "kind", "out_rms", "ratio", "gain", "predicted", "sound", "grad_out", "grad_w", "update",
           "act", "dead", "saturated"]
EXPLAIN = ("out_rms: output RMS (norms: input RMS, the stream they read); ratio: out/in; gain: rms(Wx)/rms(x), "
           "bias left out; predicted: √fan_in·rms(w) from the weights; sound: the same for the judgement's "
           "expected std; grad_out: gradient RMS at the output; grad_w: of the weight; update: lr·grad_w/rms(w)")


def _num(x: float | None) -> str:
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "" if x is None else "nan"
    if x == 0:
        return "0"
    return f"{x:.2e}" if abs(x) >= 1e4 or abs(x) < 1e-3 else f"{x:.3g}"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.0%}"


def rows(report: ProbeReport) -> list[list[str]]:
    """Table rows in execution order; a layer's marker shows its worst finding."""
    rank = {"error": 3, "warning": 2, "info": 1}
    marks: dict[str, int] = {}
    for f in report.findings:
        if f.layer is not None:
            marks[f.layer] = max(marks.get(f.layer, 0), rank[f.severity])
    symbol = {0: "  ", 1: "· ", 2: "! ", 3: "✗ "}
    out = []
    for lp in report.measurements.layers:
        shown = lp.in_rms if lp.kind in ("batchnorm", "layernorm", "groupnorm", "rmsnorm") else lp.out_rms
        out.append([symbol[marks.get(lp.name, 0)] + lp.name, lp.kind, _num(shown), _num(lp.ratio), _num(lp.gain),
                    _num(lp.predicted_gain), _num(lp.sound_gain), _num(lp.grad_out_rms if lp.grad_in_rms is None
                                                                      else lp.grad_in_rms),
                    _num(lp.weight_grad_rms), _num(lp.update_ratio), lp.activation or "", _pct(lp.dead_fraction),
                    _pct(lp.saturated_fraction)])
    return out


def findings_text(findings: list, width: int = 100) -> list[str]:
    out = []
    for f in findings:
        head = f"{f.severity:7} {f.rule} {f.layer or '<model>'}: "
        line = textwrap.fill(head + f.message, width=width, subsequent_indent=" " * 8, break_on_hyphens=False)
        if f.fix:
            line += "\n" + textwrap.fill(f"fix: {f.fix}", width=width, initial_indent=" " * 8,
                                         subsequent_indent=" " * 13, break_on_hyphens=False)
        out.append(line)
    return out


def table(report: ProbeReport, width: int = 100) -> str:
    m = report.measurements
    data = rows(report)
    cols = [i for i, c in enumerate(COLUMNS) if c in ("layer", "kind", "out_rms") or any(r[i] for r in data)]
    text = tabulate([[r[i] for i in cols] for r in data], headers=[COLUMNS[i] for i in cols], tablefmt="simple",
                    disable_numparse=True, colalign=["left" if COLUMNS[i] in ("layer", "kind", "act") else "right"
                                                     for i in cols])
    out = [text, textwrap.fill(f"({EXPLAIN})", width=width, break_on_hyphens=False), ""]
    if m.attention:
        att = [[a.name, a.source, a.heads, a.keys, f"{a.entropy:.3f}", f"{a.min_head_entropy:.3f}"]
               for a in m.attention]
        out += [tabulate(att, headers=["attention", "source", "heads", "keys", "entropy", "lowest head"],
                         tablefmt="simple", disable_numparse=True), "(entropy: H/ln(keys), 1 is uniform)", ""]
    out += findings_text(report.findings, width)
    s = report.report.summary()
    secs = f", {m.seconds:.2f} s" if m.seconds is not None else ""
    out.append(f"{m.path}: probe of {len(m.layers)} layers on {m.input_kind} {tuple(m.input_shape)} "
               f"(lr {m.lr:g}, seed {m.seed}{secs}) — {counts_text(s)}")
    out += [f"  {n}" for n in m.notes]
    return "\n".join(out) + "\n"


def coord_table(report: CoordReport, width: int = 100) -> str:
    c = report.measurements
    head = ["layer", "position"] + [f"init@{w}" for w in c.widths] + [f"Δ@{w}" for w in c.widths] + \
        ["init slope", "Δ slope", "step slope"]
    data = []
    for layer in c.layers:
        data.append([layer.name, layer.position] + [_num(p.init_rms) for p in layer.points] +
                    [_num(p.delta_rms) for p in layer.points] +
                    [f"{s:+.2f}" if math.isfinite(s) else "nan" for s in
                     (layer.init_slope, layer.delta_slope, layer.step_slope)])
    out = [tabulate(data, headers=head, tablefmt="simple", disable_numparse=True),
           "(init: output RMS at init; Δ: RMS of its change after one SGD step; slopes: d log/d log width, μP ≈ 0)",
           ""]
    out += findings_text(report.findings, width)
    s = report.report.summary()
    out.append(f"coord check of {c.factory} at widths {', '.join(map(str, c.widths))} (lr {c.lr:g}) — "
               f"{counts_text(s)}")
    out += [f"  {n}" for n in c.notes]
    return "\n".join(out) + "\n"


def render(report: ProbeReport | CoordReport, fmt: str, **options) -> str:
    """``table`` and ``json`` here; any other format is the existing renderer of the report's findings."""
    if fmt == "json":
        return json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n"
    if fmt == "table":
        width = options.get("width") or 100
        return coord_table(report, width) if isinstance(report, CoordReport) else table(report, width)
    from ..render import render as render_findings

    return render_findings([report.report], fmt, **options)
