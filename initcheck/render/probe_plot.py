"""``initcheck probe --plot``: RMS by depth — the forward signal on top, the gradient below — one line per
group of repeated layers (the groups the drift rules judge), flagged layers marked; the layer's static
prediction (input RMS × √fan_in·rms(w)) as crosses beside the measured
signal. For a coord check: each layer's size at init and of its change after one step against width.

matplotlib's object API with the Agg canvas (no pyplot, no display); values come from the probe's
measurements only.
"""

from __future__ import annotations

import io
import math
from typing import Any

from ..io import atomic_write_bytes
from ..probe import CoordReport, ProbeReport
from ..probe.analysis import backward_value, forward_value, group_key
from .plot import COLOR, layer_severity, require_matplotlib

MAX_GROUPS = 8  # lines drawn; the largest groups first, the rest as grey points


def _positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _depth_panel(ax: Any, report: ProbeReport, value, title: str, predicted: bool) -> None:
    layers = sorted(report.measurements.layers, key=lambda lp: lp.order)
    severity = layer_severity(report.report)
    groups: dict[str, list] = {}
    for lp in layers:
        groups.setdefault(group_key(lp), []).append(lp)
    ranked = sorted(groups, key=lambda k: -len(groups[k]))
    for i, key in enumerate(ranked):
        pts = [(lp.order, value(lp)) for lp in groups[key] if _positive(value(lp))]
        if not pts:
            continue
        xs, ys = zip(*pts)
        if i < MAX_GROUPS and len(pts) > 1:
            ax.plot(xs, ys, marker="o", ms=3, lw=1.2, label=key)
        else:
            ax.scatter(xs, ys, s=9, color="#999999")
    for lp in layers:
        sev = severity.get(lp.name)
        if sev in ("error", "warning") and _positive(value(lp)):
            ax.scatter([lp.order], [value(lp)], s=60, facecolors="none", edgecolors=COLOR[sev], lw=1.5, zorder=5)
    if predicted:
        _predicted_line(ax, layers)
    ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("layer, in execution order")
    ax.grid(True, which="both", alpha=0.25)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")


def _predicted_line(ax: Any, layers: list) -> None:
    """The static prediction of each matrix layer's output, input RMS × √fan_in·rms(w) (bias left out), as
    crosses: where prediction and measurement agree a cross sits on the measured point."""
    pts = [(lp.order, lp.in_rms * lp.predicted_gain) for lp in layers
           if _positive(lp.in_rms) and _positive(lp.predicted_gain)]
    if pts:
        xs, ys = zip(*pts)
        ax.scatter(xs, ys, marker="x", s=16, color="black", alpha=0.7, lw=0.8,
                   label="static prediction: input RMS·√fan_in·rms(w)", zorder=4)


def probe_figure(report: ProbeReport) -> Any:
    require_matplotlib()
    from matplotlib.figure import Figure

    n = len(report.measurements.layers)
    fig = Figure(figsize=(min(max(9.0, 0.12 * n + 5), 20.0), 7.5), dpi=100, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    _depth_panel(top, report, forward_value, "forward: output RMS (normalizations: input RMS)", True)
    _depth_panel(bottom, report, backward_value, "backward: gradient RMS at the same points", False)
    s = report.report.summary()
    fig.suptitle(f"{report.measurements.path} — probe: {s['errors']} errors, {s['warnings']} warnings",
                 fontsize=11, fontweight="bold")
    return fig


def coord_figure(report: CoordReport) -> Any:
    require_matplotlib()
    from matplotlib.figure import Figure

    c = report.measurements
    fig = Figure(figsize=(11, 4.5), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2)
    flagged = {f.layer for f in report.findings}
    for layer in c.layers:
        style = {"marker": "o", "lw": 2.0 if layer.name in flagged else 1.0}
        for ax, attr in ((left, "init_rms"), (right, "delta_rms")):
            pts = [(p.width, getattr(p, attr)) for p in layer.points if _positive(getattr(p, attr))]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, label=layer.name + (" ✗" if layer.name in flagged else ""), **style)
    for ax, title in ((left, "output RMS at init"), (right, "RMS of its change after one SGD step")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"coord check of {c.factory}: flat lines are μP's criterion", fontsize=11, fontweight="bold")
    return fig


def probe_png(report: ProbeReport | CoordReport, dpi: int = 110) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = coord_figure(report) if isinstance(report, CoordReport) else probe_figure(report)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def write_probe_plot(report: ProbeReport | CoordReport, path: str) -> str:
    """Write the probe's PNG atomically; returns the path."""
    atomic_write_bytes(path, probe_png(report))
    return path


def probe_html(report: ProbeReport | CoordReport) -> str:
    """A self-contained HTML page: the probe's table and findings, and its plot (when matplotlib is there)."""
    import base64
    import html

    from ..errors import MissingDependencyError
    from ..probe.render import render

    try:
        require_matplotlib("--html plots")
        img = ('<img alt="RMS by depth" style="max-width:100%" src="data:image/png;base64,'
               + base64.b64encode(probe_png(report)).decode("ascii") + '">')
    except MissingDependencyError as e:
        img = f"<p>{html.escape(str(e))}</p>"
    title = getattr(report.measurements, "path", None) or f"coord check of {report.measurements.factory}"
    return ("<!doctype html><html><head><meta charset='utf-8'><title>initcheck probe: "
            f"{html.escape(title)}</title></head><body><h1>initcheck probe: {html.escape(title)}</h1>"
            f"{img}<pre>{html.escape(render(report, 'table'))}</pre></body></html>\n")


def write_probe_html(report: ProbeReport | CoordReport, path: str) -> str:
    from ..io import atomic_write_text

    atomic_write_text(path, probe_html(report))
    return path
