"""``initcheck probe``: the command's work, called from the small block in ``initcheck/cli.py``."""

from __future__ import annotations

from typing import Any

import click

from ..errors import InitcheckError


def parse_widths(text: str) -> list[int]:
    try:
        widths = [int(w) for w in text.replace(" ", "").split(",") if w]
    except ValueError:
        raise InitcheckError(f"--widths {text!r} must be comma-separated integers, e.g. 64,128,256,512") from None
    if len(set(widths)) < 2 or min(widths) < 1:
        raise InitcheckError(f"--widths {text!r}: give at least two different positive widths")
    return widths


def run(path: str | None, *, model_factory: str | None, trust: bool, activation: str | None,
        input_shape: str | None, data: str | None, lr: float | None, widths: str | None, seed: int, fmt: str,
        output: str | None, plot: str | None, select: list[str] | None, ignore: list[str] | None,
        html: str | None = None) -> Any:
    """Probe PATH (or run the coord check with --widths); write the output; return the report."""
    from ..config import parse_shape
    from . import DEFAULT_COORD_LR, DEFAULT_LR, coord_check, probe
    from .render import render

    shape = parse_shape(input_shape) if input_shape else None
    if plot:
        from ..render.plot import require_matplotlib

        require_matplotlib("--plot")
    if widths:
        if not model_factory:
            raise InitcheckError("--widths needs --model package.module:factory, a factory taking the width")
        if path:
            raise InitcheckError("--widths builds its models with --model; give no MODEL path")
        report = coord_check(model_factory, parse_widths(widths), lr=lr if lr is not None else DEFAULT_COORD_LR,
                             seed=seed, input_shape=shape, data=data, select=select, ignore=ignore)
    else:
        if not path:
            raise InitcheckError("give a MODEL path (or --model with --widths for the coord check)")
        report = probe(path, input_shape=shape, data=data, lr=lr if lr is not None else DEFAULT_LR, seed=seed,
                       trust=trust, model_factory=model_factory, activation=activation, select=select,
                       ignore=ignore)
    text = render(report, fmt)
    if output:
        from ..io import atomic_write_text

        atomic_write_text(output, text)
    else:
        click.echo(text, nl=False)
    if plot:
        from ..render.probe_plot import write_probe_plot

        click.echo(f"initcheck: wrote {write_probe_plot(report, plot)}", err=True)
    if html:
        from ..render.probe_plot import write_probe_html

        click.echo(f"initcheck: wrote {write_probe_html(report, html)}", err=True)
    return report
