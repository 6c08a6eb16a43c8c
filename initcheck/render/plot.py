"""``--plot``: pictures of a report — observed std per layer against the expected std and its acceptable band,
flagged layers highlighted, and histograms of the flagged layers' weights against the expected density.

matplotlib is an optional extra (``pip install 'initcheck[plot]'``). It is used through the object API with
the Agg canvas (no pyplot, no global backend switch, no display needed). Values are read from the report only:
``layer.weight.stats`` and ``layer.analysis`` (``expected_std``, ``band``, ``std_ratio``, ``fingerprint`` when
the judgement layer filled them in — each is optional); histograms read at most :data:`MAX_HIST_VALUES` values
of a flagged layer's weight.
"""

from __future__ import annotations

import io
import math
import os
from typing import Any

import numpy as np

from ..errors import MissingDependencyError
from ..report import SEVERITY_RANK, Report
from . import counts_text

MAX_HIST_VALUES = 200_000
MAX_HISTOGRAMS = 8
HIST_COLUMNS = 4
MAX_NAME = 28
COLOR = {"error": "#d62728", "warning": "#ff7f0e", "info": "#17becf", "ok": "#1f77b4"}
SPAN_ALPHA = {"error": 0.16, "warning": 0.14}


def require_matplotlib(what: str = "--plot") -> None:
    """Raise :class:`MissingDependencyError` with an install hint when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(f"{what} needs matplotlib: pip install 'initcheck[plot]'") from None


def _short(name: str, width: int = MAX_NAME) -> str:
    if len(name) <= width:
        return name
    keep = width - 1
    return name[: keep // 2] + "…" + name[len(name) - (keep - keep // 2):]


def layer_severity(report: Report) -> dict[str, str]:
    """Worst severity of the findings on each layer."""
    worst: dict[str, str] = {}
    for f in report.findings:
        if f.layer is None:
            continue
        if f.layer not in worst or SEVERITY_RANK[f.severity] > SEVERITY_RANK[worst[f.layer]]:
            worst[f.layer] = f.severity
    return worst


def _positive(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def _band(analysis: dict) -> tuple[float, float] | None:
    band = analysis.get("band")
    if not isinstance(band, (list, tuple)) or len(band) != 2:
        return None
    lo, hi = _positive(band[0]), _positive(band[1])
    return (lo, hi) if lo is not None and hi is not None and hi >= lo else None


def figure_for(report: Report) -> Any:
    """A matplotlib Figure for one report (std per layer on top, histograms of flagged layers below)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    severity = layer_severity(report)
    flagged = [layer for layer in report.layers if severity.get(layer.name) in ("error", "warning")]
    flagged.sort(key=lambda layer: -SEVERITY_RANK[severity[layer.name]])  # errors first, then model order
    shown = flagged[:MAX_HISTOGRAMS]
    hist_rows = math.ceil(len(shown) / HIST_COLUMNS)
    n = len(report.layers)
    width = min(max(11.0, 0.22 * n + 3), 22.0)
    fig = Figure(figsize=(width, 4.6 + 2.7 * hist_rows), dpi=100, layout="constrained")
    grid = fig.add_gridspec(1 + hist_rows, HIST_COLUMNS, height_ratios=[1.75] + [1.0] * hist_rows)
    _std_panel(fig.add_subplot(grid[0, :]), report, severity)
    for i, layer in enumerate(shown):
        ax = fig.add_subplot(grid[1 + i // HIST_COLUMNS, i % HIST_COLUMNS])
        _histogram(ax, layer, severity[layer.name], [f.rule for f in report.findings_for(layer.name)])
    s = report.summary()
    more = f" (histograms of the first {len(shown)} of {len(flagged)} flagged layers)" if len(flagged) > len(shown) \
        else ""
    fig.suptitle(f"{report.model.path} — {s['layers']} layers: {counts_text(s)}{more}", fontsize=11,
                 fontweight="bold")
    return fig


def _std_panel(ax: Any, report: Report, severity: dict[str, str]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    layers = report.layers
    n = len(layers)
    observed = [(_positive(layer.weight.stats.std) if layer.weight.stats is not None else None) for layer in layers]
    expected = [_positive(layer.analysis.get("expected_std")) for layer in layers]
    bands = [_band(layer.analysis) for layer in layers]
    values = [v for v in observed + expected if v] + [v for b in bands if b for v in b]
    lo = min(values) if values else 1e-3
    hi = max(values) if values else 1.0
    floor = lo / 4  # where layers with std 0 or no finite std are drawn
    ax.set_yscale("log")
    ax.set_ylim(floor / 1.8, hi * 3)
    ax.set_xlim(-0.7, n - 0.3)

    half = max(0.45, 0.006 * n)  # flagged columns stay visible among hundreds of layers
    for i, layer in enumerate(layers):
        sev = severity.get(layer.name)
        if sev in SPAN_ALPHA:
            ax.axvspan(i - half, i + half, color=COLOR[sev], alpha=SPAN_ALPHA[sev], lw=0, zorder=0)
    for i, band in enumerate(bands):
        if band:
            ax.bar(i, band[1] - band[0], bottom=band[0], width=0.7, color="#2ca02c", alpha=0.22, lw=0, zorder=1)
    ex = [(i, e) for i, e in enumerate(expected) if e]
    if ex:
        ax.scatter([i for i, _ in ex], [e for _, e in ex], marker="_", s=260, linewidths=2.2, color="#2ca02c",
                   zorder=3)
    ok = [(i, v) for i, v in enumerate(observed) if v and severity.get(layers[i].name) not in ("error", "warning")]
    if ok:
        ax.plot([i for i, _ in ok], [v for _, v in ok], "o", ms=5 if n <= 80 else 3, color=COLOR["ok"], zorder=4)
    annotations = 0
    for i, layer in enumerate(layers):
        sev = severity.get(layer.name)
        v = observed[i]
        if sev not in ("error", "warning"):
            if v is None:
                ax.plot(i, floor, "v", ms=6, color="#7f7f7f", zorder=4)
            continue
        y = v if v is not None else floor
        ax.plot(i, y, "X" if sev == "error" else "D", ms=11 if sev == "error" else 9, color=COLOR[sev],
                markeredgecolor="black", markeredgewidth=0.8, zorder=5)
        if annotations < 40:
            codes = sorted({f.rule for f in report.findings_for(layer.name) if f.severity == sev})
            st = layer.weight.stats
            why = "" if v is not None else (" std=0" if st is not None and st.finite else " no finite values")
            ax.annotate(" ".join(codes) + why, (i, y), xytext=(0, 9), textcoords="offset points", ha="center",
                        fontsize=8, color=COLOR[sev], fontweight="bold", zorder=6)
            annotations += 1
    ax.axhline(floor, color="#7f7f7f", lw=0.6, ls=":", zorder=1)
    ax.text(1.005, floor, "std 0 or\nno finite values", transform=ax.get_yaxis_transform(), va="center",
            ha="left", fontsize=7, color="#7f7f7f")

    step = 1 if n <= 45 else math.ceil(n / 40)
    ticks = [i for i in range(n) if i % step == 0 or layers[i].name in severity]
    ax.set_xticks(ticks)
    ax.set_xticklabels([_short(layers[i].name) for i in ticks], rotation=55, ha="right", fontsize=8)
    for label, i in zip(ax.get_xticklabels(), ticks):
        sev = severity.get(layers[i].name)
        if sev in ("error", "warning"):
            label.set_color(COLOR[sev])
            label.set_fontweight("bold")
    ax.set_ylabel("weight std (log)")
    ax.grid(axis="y", which="major", alpha=0.3)
    present = set(severity.values())
    handles = [Line2D([], [], marker="o", ls="", color=COLOR["ok"], label="observed std")]
    if "error" in present:
        handles.append(Line2D([], [], marker="X", ls="", ms=10, color=COLOR["error"], markeredgecolor="black",
                              label="error (observed std)"))
    if "warning" in present:
        handles.append(Line2D([], [], marker="D", ls="", ms=8, color=COLOR["warning"], markeredgecolor="black",
                              label="warning (observed std)"))
    if ex:
        handles.append(Line2D([], [], marker="_", ls="", ms=14, mew=2.2, color="#2ca02c", label="expected std"))
    if any(bands):
        handles.append(Patch(color="#2ca02c", alpha=0.22, label="acceptable band"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    if not ex:
        ax.set_title("expected std not available for these layers (activation or judgement missing)",
                     fontsize=8, color="#7f7f7f", loc="left")


def _sample(layer: Any) -> tuple[np.ndarray, int, int]:
    """Up to MAX_HIST_VALUES weight values (an evenly strided subsample), the non-finite count in it, its size."""
    tensor = layer.weight.tensor
    flat = np.asarray(tensor.numpy()).reshape(-1)
    if flat.size > MAX_HIST_VALUES:
        flat = flat[:: math.ceil(flat.size / MAX_HIST_VALUES)]
    flat = flat.astype(np.float64, copy=False)
    finite = flat[np.isfinite(flat)]
    return finite, int(flat.size - finite.size), int(flat.size)


def _expected_pdf(x: np.ndarray, std: float, distribution: str | None) -> np.ndarray:
    if distribution == "uniform":
        a = std * math.sqrt(3.0)
        return np.where(np.abs(x) <= a, 1.0 / (2 * a), 0.0)
    return np.exp(-0.5 * (x / std) ** 2) / (std * math.sqrt(2 * math.pi))


def _histogram(ax: Any, layer: Any, sev: str, codes: list[str]) -> None:
    color = COLOR[sev]
    ax.set_title(f"{_short(layer.name, 34)}  {' '.join(sorted(set(codes)))}", fontsize=9, color=color,
                 fontweight="bold")
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(1.4)
    ax.tick_params(labelsize=7)
    ax.set_yticks([])
    try:
        values, nonfinite, size = _sample(layer)
    except Exception as e:  # a tensor that cannot be read back: say so in the panel, never abort the picture
        ax.text(0.5, 0.5, f"weights unavailable\n({type(e).__name__})", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)
        return
    a = layer.analysis
    expected = _positive(a.get("expected_std"))
    fp = a.get("fingerprint") if isinstance(a.get("fingerprint"), dict) else {}
    distribution = fp.get("distribution") if fp else None
    notes = []
    if nonfinite:
        notes.append(f"{nonfinite:,} non-finite of {size:,}")
    if values.size == 0:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes, fontsize=9,
                color=color, fontweight="bold")
        ax.set_xticks([])
    else:
        lo, hi = float(values.min()), float(values.max())
        scale = expected or (float(values.std()) or max(abs(lo), 1e-3))
        if lo == hi:  # constant tensor: a spike, not a histogram
            left, right = min(lo, 0.0) - 4 * scale, max(hi, 0.0) + 4 * scale
            ax.axvline(lo, color=color, lw=3)
            notes.append(f"all values = {lo:.4g}")
        else:
            p_lo, p_hi = np.percentile(values, [0.1, 99.9]) if values.size > 1000 else (lo, hi)
            left, right = min(float(p_lo), -4 * (expected or 0)), max(float(p_hi), 4 * (expected or 0))
            ax.hist(np.clip(values, left, right), bins=60, range=(left, right), density=True, color=color,
                    alpha=0.55, lw=0)
            std = float(values.std())
            ratio = f" ({std / expected:.2g}× expected)" if expected else ""
            notes.append(f"std {std:.3g}{ratio}")
        ax.set_xlim(left, right)
        if expected:
            x = np.linspace(left, right, 400)
            pdf = _expected_pdf(x, expected, distribution)
            ax.plot(x, pdf, color="black", lw=1.3, label="expected")
            shape = "U(±√3σ)" if distribution == "uniform" else "N(0, σ²)"
            notes.append(f"curve: expected {shape}, σ={expected:.3g}")
            top = ax.get_ylim()[1] if lo != hi else 0.0
            ax.set_ylim(0, max(top, float(pdf.max())) * 1.45)  # room for the notes box
        elif lo != hi:
            ax.set_ylim(0, ax.get_ylim()[1] * 1.35)
    if not expected:
        notes.append("no expected density")
    ax.text(0.02, 0.97, "\n".join(notes), transform=ax.transAxes, va="top", ha="left", fontsize=7,
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8, "lw": 0})


def render_png(report: Report, dpi: int = 110) -> bytes:
    """The report's figure as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figure_for(report)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def plot_paths(reports: list[Report], path: str) -> list[str]:
    """Where ``--plot PATH`` writes: PATH itself for one model; ``STEM-<model>.png`` for each of several."""
    if len(reports) == 1:
        return [path]
    stem, ext = os.path.splitext(path)
    out, seen = [], set()
    for r in reports:
        name = os.path.splitext(os.path.basename(r.model.path.rstrip("/\\")))[0] or "model"
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        candidate, k = f"{stem}-{name}{ext or '.png'}", 2
        while candidate in seen:
            candidate, k = f"{stem}-{name}-{k}{ext or '.png'}", k + 1
        seen.add(candidate)
        out.append(candidate)
    return out


def write_plots(reports: list[Report], path: str) -> list[str]:
    """Write one PNG per report (see :func:`plot_paths`), atomically; returns the paths written."""
    from ..io import atomic_write_bytes

    targets = plot_paths(reports, path)
    for report, target in zip(reports, targets):
        atomic_write_bytes(target, render_png(report))
    return targets
