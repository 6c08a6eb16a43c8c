"""Command line: ``initcheck [check] PATH...``, ``initcheck rules``, ``initcheck explain CODE``.

Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; 2 bad usage or an unreadable,
unsupported or refused file (one line on stderr, no traceback unless --debug).
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import click

from . import __version__
from .errors import InitcheckError

FAIL_ON = ["error", "warning", "info", "never"]


class DefaultGroup(click.Group):
    """``initcheck PATH`` is short for ``initcheck check PATH``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["check", *args]
        return super().parse_args(ctx, args)


def _split_codes(values: tuple[str, ...]) -> list[str] | None:
    codes = [c.strip() for v in values for c in v.split(",") if c.strip()]
    return codes or None


def _fail(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    click.echo(f"initcheck: error: {message}", err=True)
    sys.exit(2)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="initcheck")
def main() -> None:
    """Diagnose the weight initialization of PyTorch and Keras models.

    \b
    initcheck model.pt                 check a model (same as 'initcheck check model.pt')
    initcheck check a.pt b.safetensors --format json
    initcheck rules                    list the rules
    initcheck explain IC101            explain one rule
    """


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", default=None, help="Output format: table (default), json, and more (see docs).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report to this file.")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default=None, show_default="error",
              help="Exit 1 when a finding is at or above this severity.")
@click.option("--select", multiple=True, help="Only these rule codes or prefixes (comma-separated).")
@click.option("--ignore", multiple=True, help="Skip these rule codes or prefixes (comma-separated).")
@click.option("--trust", is_flag=True, help="Allow formats that execute code when loaded (pickled modules, "
              "TorchScript, .pt2, SavedModel, Keras Lambda layers).")
@click.option("--activation", help="Activation for layers whose activation cannot be detected.")
@click.option("--model", "model_factory", help="package.module:factory building the architecture for a "
              "tensor-only file (imports your code).")
@click.option("--input-shape", help="Input shape for a traced forward pass, e.g. 1,3,224,224.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors, no table.")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def check(paths: tuple[str, ...], fmt: str | None, output: str | None, fail_on: str | None,
          select: tuple[str, ...], ignore: tuple[str, ...], trust: bool, activation: str | None,
          model_factory: str | None, input_shape: str | None, quiet: bool, no_progress: bool,
          debug: bool, **extra: Any) -> None:
    """Check the initialization of one or more models (PATHS: files or model directories)."""
    from .pipeline import CheckOptions, analyze
    from .load import load
    from .render import render, renderers

    fmt = fmt or "table"
    fail_on = fail_on or "error"
    try:
        if fmt not in renderers():
            raise InitcheckError(f"unknown format {fmt!r} (choose from {', '.join(renderers())})")
        options = CheckOptions(
            trust=trust, select=_split_codes(select), ignore=_split_codes(ignore), activation=activation,
            model_factory=model_factory, input_shape=_parse_shape(input_shape),
            progress=False if no_progress else None,
        )
        from .rules import select_rules

        select_rules(options.select, options.ignore)
        reports = []
        for path in paths:
            try:
                reports.append(analyze(load(path, trust=trust), options))
            except InitcheckError as e:
                if e.path is None:
                    e.path = path
                raise
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # a bug or an unexpected file: one line, never a traceback by default
                if debug:
                    raise
                raise InitcheckError(f"unexpected failure: {type(e).__name__}: {e} (rerun with --debug)",
                                     path) from e
        text = render(reports, fmt, color=sys.stdout.isatty() and not output, quiet=quiet)
        if output:
            from .io import atomic_write_text

            atomic_write_text(output, text)
        else:
            click.echo(text, nl=False)
    except InitcheckError as e:
        _fail(str(e), debug)
    if fail_on != "never" and any(r.failed(fail_on) for r in reports):
        sys.exit(1)


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        shape = tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise InitcheckError(f"--input-shape {text!r} is not a comma-separated list of integers") from None
    if not shape or any(s <= 0 for s in shape):
        raise InitcheckError(f"--input-shape {text!r} must list positive integers")
    return shape


@main.command("rules")
def rules_cmd() -> None:
    """List every rule: code, name, severity, summary."""
    from tabulate import tabulate

    from .rules import all_rules

    rows = [(r.code, r.name, r.severity, r.summary) for r in all_rules()]
    click.echo(tabulate(rows, headers=["code", "name", "up to", "summary"], tablefmt="simple"))


@main.command()
@click.argument("code")
def explain(code: str) -> None:
    """Explain one rule: what it means, an example, how to fix it."""
    from .rules import get_rule

    try:
        click.echo(get_rule(code).explain())
    except InitcheckError as e:
        _fail(str(e), False)


if __name__ == "__main__":  # pragma: no cover
    main()
