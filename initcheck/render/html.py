"""``--html``: one self-contained HTML file per run — for each model its summary, findings, layer table and
the plots of :mod:`initcheck.render.plot` embedded as base64 PNG (no external files, scripts or fonts).

Without matplotlib the page is still written, with a note where the plots would be.
"""

from __future__ import annotations

import base64
import html
import math
from typing import Any

from .. import __version__
from ..report import Report
from .plot import layer_severity
from . import plural

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1600px}
h1{font-size:22px}h2{font-size:18px;margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:10px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.error td{background:#fde2e2}tr.warning td{background:#fff0d9}tr.info td{background:#e6f7fa}
.sev-error{color:#b30000;font-weight:600}.sev-warning{color:#b36200;font-weight:600}.sev-info{color:#007a8a}
.banner{background:#f6f6ff;border-left:4px solid #88a;padding:6px 10px}
.ok{color:#1a7f37;font-weight:600}code{font-size:12px}img{max-width:100%;border:1px solid #eee}
.note{color:#777}
"""


def _num(x: Any) -> str:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return ""
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else "inf"
    if x == 0:
        return "0"
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 else f"{x:.2e}"



def _plot_img(report: Report) -> str:
    try:
        from .plot import render_png, require_matplotlib

        require_matplotlib("--html plots")
    except Exception as e:  # MissingDependencyError: the page is still useful without pictures
        return f'<p class="note">{html.escape(str(e))}</p>'
    data = base64.b64encode(render_png(report)).decode("ascii")
    return f'<img alt="std per layer and histograms of flagged layers" src="data:image/png;base64,{data}">'


def _section(report: Report, baseline: Any = None, plots: bool = True) -> str:
    e = html.escape
    m = report.model
    s = report.summary()
    out = [f"<section><h2><code>{e(m.path)}</code></h2>"]
    verdict = (f'<span class="sev-error">{plural(s["errors"], "error")}</span>, ' if s["errors"]
               else '<span class="ok">no errors</span>, ')
    out.append(f"<p>{e(m.format)} ({e(m.framework)}), {s['layers']} layers, {s['parameters']:,} parameters — "
               f"{verdict}{plural(s['warnings'], 'warning')}, {plural(s['infos'], 'info')}</p>")
    for note in list(report.banners) + list(m.source_notes):
        out.append(f'<p class="banner">{e(note)}</p>')
    if baseline is not None and (baseline.suppressed or baseline.stale):
        out.append(f'<p class="note">Baseline: {plural(len(baseline.suppressed), "finding")} accepted, '
                   f'{plural(len(baseline.stale), "stale entry")}.</p>')
    if report.findings:
        out.append("<table><tr><th>severity</th><th>rule</th><th>layer</th><th>message</th><th>fix</th></tr>")
        for f in report.findings:
            out.append(f'<tr class="{e(f.severity)}"><td class="sev-{e(f.severity)}">{e(f.severity)}</td>'
                       f"<td>{e(f.rule)}</td><td><code>{e(f.layer or '(model)')}</code></td>"
                       f"<td>{e(f.message)}</td><td>{e(f.fix or '')}</td></tr>")
        out.append("</table>")
    if plots:
        out.append(_plot_img(report))
    severity = layer_severity(report)
    out.append("<table><tr><th>layer</th><th>kind</th><th>shape</th><th>fan_in</th><th>fan_out</th>"
               "<th>std</th><th>expected</th><th>ratio</th><th>activation</th><th>init</th><th>findings</th></tr>")
    for layer in report.layers:
        st = layer.weight.stats
        a = layer.analysis
        fp = a.get("fingerprint") if isinstance(a.get("fingerprint"), dict) else {}
        codes = " ".join(sorted({f.rule for f in report.findings_for(layer.name)}))
        sev = severity.get(layer.name, "")
        out.append(
            f'<tr class="{e(sev)}"><td><code>{e(layer.name)}</code></td><td>{e(layer.kind)}</td>'
            f"<td>{e('×'.join(map(str, layer.shape)) or 'scalar')}</td>"
            f'<td class="num">{layer.fan_in if layer.fan_in is not None else ""}</td>'
            f'<td class="num">{layer.fan_out if layer.fan_out is not None else ""}</td>'
            f'<td class="num">{_num(st.std) if st is not None else ""}</td>'
            f'<td class="num">{_num(a.get("expected_std"))}</td><td class="num">{_num(a.get("std_ratio"))}</td>'
            f"<td>{e(layer.context.activation or '')}</td>"
            f"<td>{e(str((fp or {}).get('label') or (fp or {}).get('scheme') or ''))}</td>"
            f"<td>{e(codes)}</td></tr>")
    out.append("</table></section>")
    return "\n".join(out)


def render_html(reports: list[Report], baseline: list | None = None, plots: bool = True) -> str:
    """The whole page for ``reports`` (``baseline``: one BaselineResult per report, or None)."""
    baseline = baseline or [None] * len(reports)
    errors = sum(r.count("error") for r in reports)
    warnings = sum(r.count("warning") for r in reports)
    head = (f"initcheck report — {plural(errors, 'error')}, {plural(warnings, 'warning')} in "
            f"{plural(len(reports), 'model')}")
    body = "\n".join(_section(r, b, plots) for r, b in zip(reports, baseline))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"generator\" content=\"initcheck {html.escape(__version__)}\">"
            f"<title>{html.escape(head)}</title><style>{CSS}</style></head>\n<body>\n"
            f"<h1>{html.escape(head)}</h1>\n{body}\n</body></html>\n")


def write_html(reports: list[Report], path: str, baseline: list | None = None) -> None:
    """Write :func:`render_html` to ``path`` atomically."""
    from ..io import atomic_write_text

    atomic_write_text(path, render_html(reports, baseline))
