"""--plot and --html: the picture renders on a model with findings, flagged layers are highlighted, the HTML
is self-contained, and a missing matplotlib gives a clear hint (exit 2)."""

from __future__ import annotations

import base64
import re
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import initcheck
from _faulty import save_model
from initcheck.cli import main
from initcheck.render import plot
from initcheck.render.html import render_html

PNG = b"\x89PNG\r\n\x1a\n"




@pytest.fixture
def report(tmp_path):
    return initcheck.check(save_model(tmp_path / "m.pt"), select=["IC00"], progress=False)


def test_figure_highlights_flagged_layers(report):
    fig = plot.figure_for(report)
    axes = fig.get_axes()
    flagged = sorted({f.layer for f in report.findings if f.severity in ("error", "warning")})
    assert flagged == ["2", "4"]
    assert len(axes) == 1 + len(flagged)  # the std panel, then one histogram per flagged layer
    std_ax = axes[0]
    labels = {t.get_text(): t for t in std_ax.get_xticklabels()}
    from matplotlib.colors import to_hex

    for name in ("0", "2", "4", "6"):
        color = to_hex(labels[name].get_color())
        assert (color == plot.COLOR["error"]) == (name in flagged), name
    # a red column behind each flagged layer, none elsewhere
    spans = [p for p in std_ax.patches if to_hex(p.get_facecolor()[:3]) == plot.COLOR["error"]]
    assert len(spans) == len(flagged)
    titles = [ax.get_title() for ax in axes[1:]]
    assert any(t.startswith("2") and "IC002" in t for t in titles)
    assert any(t.startswith("4") and "IC001" in t for t in titles)


def test_band_and_expected_std_are_drawn_when_present(report):
    for layer in report.layers:
        layer.analysis.update(expected_std=0.1, band=(0.05, 0.2))
    fig = plot.figure_for(report)
    std_ax = fig.get_axes()[0]
    from matplotlib.colors import to_hex

    bands = [p for p in std_ax.patches if to_hex(p.get_facecolor()[:3]) == "#2ca02c"]
    assert len(bands) == len(report.layers)
    assert any(abs(p.get_y() - 0.05) < 1e-12 and abs(p.get_height() - 0.15) < 1e-12 for p in bands)
    legend = [t.get_text() for t in std_ax.get_legend().get_texts()]
    assert "expected std" in legend and "acceptable band" in legend
    # without any analysis the picture still renders and says why the expectation is missing
    for layer in report.layers:
        layer.analysis.clear()
    fig = plot.figure_for(report)
    assert "expected std not available" in fig.get_axes()[0].get_title(loc="left")


def test_png_renders(report, tmp_path):
    data = plot.render_png(report)
    assert data.startswith(PNG) and len(data) > 20_000


def test_histogram_sample_is_bounded(tmp_path):
    big = nn.Linear(700, 600)  # 420k weights
    with torch.no_grad():
        big.weight[3, 4] = float("inf")
    report = initcheck.check(nn.Sequential(big), select=["IC00"], progress=False)
    values, nonfinite, size = plot._sample(report.layers[0])
    assert size <= plot.MAX_HIST_VALUES and values.size + nonfinite == size
    assert np.isfinite(values).all()


def test_cli_plot_and_html(tmp_path):
    model = save_model(tmp_path / "m.pt")
    png, page = tmp_path / "r.png", tmp_path / "r.html"
    result = CliRunner().invoke(main, [model, "--isolated", "--no-progress", "--select", "IC00", "--format",
                                       "concise", "--plot", str(png), "--html", str(page)])
    assert result.exit_code == 1, result.output
    assert png.read_bytes().startswith(PNG)
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 1 and base64.b64decode(images[0]).startswith(PNG)
    assert not re.search(r'(src|href)="(?!data:)', text)  # nothing outside the file
    assert text.count('<tr class="error">') >= 4  # findings rows and flagged layer rows


def test_html_escapes_names(report):
    report.layers[0].name = "<script>alert(1)</script>"
    page = render_html([report], plots=False)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_several_models_get_one_png_each(tmp_path):
    a = save_model(tmp_path / "a.pt")
    b = save_model(tmp_path / "b.pt", zero=(), nan=())
    out = tmp_path / "plots" / "report.png"
    out.parent.mkdir()
    result = CliRunner().invoke(main, [a, b, "--isolated", "--no-progress", "--select", "IC00", "-q",
                                       "--plot", str(out)])
    assert result.exit_code == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["report-a.png", "report-b.png"]


def test_missing_matplotlib_gives_a_hint_and_exit_2(tmp_path, monkeypatch):
    model = save_model(tmp_path / "m.pt")
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    result = CliRunner().invoke(main, [model, "--isolated", "--no-progress", "--plot", str(tmp_path / "r.png")])
    assert result.exit_code == 2
    assert result.stderr.strip() == "initcheck: error: --plot needs matplotlib: pip install 'initcheck[plot]'"
    assert result.stdout == "" and not (tmp_path / "r.png").exists()
    # --html still writes the page, without pictures, and says so
    page = tmp_path / "r.html"
    result = CliRunner().invoke(main, [model, "--isolated", "--no-progress", "-q", "--html", str(page)])
    assert result.exit_code == 1
    assert "initcheck[plot]" in result.stderr and "initcheck[plot]" in page.read_text()
