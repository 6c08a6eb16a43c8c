"""Command line: ``initcheck [check] PATH...``, ``initcheck rules``, ``initcheck explain CODE``.

Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; 2 bad usage or an unreadable,
unsupported or refused file (one line on stderr, no traceback unless --debug).
"""

from __future__ import annotations

import sys
import traceback
from contextlib import contextmanager
from typing import Any, Iterator

import click

from . import __version__
from .errors import InitcheckError

FAIL_ON = ["error", "warning", "info", "never"]


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(SystemExit):
    """SIGTERM, raised where the program is so that every temporary file is cleaned up on the way out."""


def one_line(text: str) -> str:
    """Error text as one line: a framework's multi-line message (torch's UnpicklingError) collapsed."""
    return " ".join(str(text).split())


class DefaultGroup(click.Group):
    """``initcheck PATH`` is short for ``initcheck check PATH``.

    Also the one place that turns the ways a run can end into exit codes and one stderr line: a usage error
    (exit 2), Ctrl-C (exit 130) and SIGTERM (exit 143) — instead of click's usage block and "Aborted!"."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["check", *args]
        return super().parse_args(ctx, args)

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        previous = _on_sigterm()
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as e:
            hint = f" (see 'initcheck {e.ctx.info_name} --help')" if e.ctx is not None and e.ctx.parent else \
                " (see 'initcheck --help')"
            _echo_error(e.format_message() + hint)
            sys.exit(2)
        except click.ClickException as e:
            _echo_error(e.format_message())
            sys.exit(e.exit_code)
        except (click.Abort, KeyboardInterrupt, EOFError):
            _echo_error("interrupted")
            sys.exit(EXIT_INTERRUPTED)
        except Terminated:
            _echo_error("terminated")
            sys.exit(EXIT_TERMINATED)
        finally:
            _restore_sigterm(previous)
        sys.exit(rv if isinstance(rv, int) else 0)


def _on_sigterm() -> Any:
    """SIGTERM raises :class:`Terminated` (main thread only: signals are delivered there)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(EXIT_TERMINATED)

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _echo_error(message: str) -> None:
    try:
        click.echo(f"initcheck: error: {one_line(message)}", err=True)
    except (OSError, ValueError):  # stderr closed: the exit code still tells
        pass


def _split_codes(values: tuple[str, ...]) -> list[str] | None:
    codes = [c.strip() for v in values for c in v.split(",") if c.strip()]
    return codes or None


def _model_options(fn):
    """Options every command that opens a model shares: --trust, --activation, --model."""
    fn = click.option("--model", "model_factory", help="package.module:factory building the architecture for "
                      "a tensor-only file (imports your code).")(fn)
    fn = click.option("--activation", help="Activation for layers whose activation cannot be detected.")(fn)
    return click.option("--trust", is_flag=True, help="Allow formats that execute code when loaded (pickled "
                        "modules, TorchScript, .pt2, SavedModel, Keras Lambda layers).")(fn)


@contextmanager
def _errors_name(path: str, debug: bool) -> Iterator[None]:
    """Inside: an InitcheckError gets ``path`` if it names none; any other exception (a bug or an
    unexpected file) becomes a one-line InitcheckError, re-raised as is with --debug."""
    try:
        yield
    except InitcheckError as e:
        if e.path is None:
            e.path = path
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except MemoryError:
        if debug:
            raise
        raise InitcheckError("out of memory while reading it", path) from None
    except RecursionError:
        if debug:
            raise
        raise InitcheckError("structure nested too deeply to read", path) from None
    except Exception as e:
        if debug:
            raise
        raise InitcheckError(f"unexpected failure: {type(e).__name__}: {e} (rerun with --debug)", path) from e


def _fail(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
        _print_captured()
    _echo_error(message)
    sys.exit(2)


def _print_captured() -> None:
    """With --debug: what the frameworks printed while the model was loaded (captured, see frameworks/quiet.py)."""
    from .frameworks import quiet

    if quiet.last_captured.strip():
        click.echo("--- output of the frameworks while loading ---\n" + quiet.last_captured.rstrip(), err=True)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="initcheck")
def main() -> None:
    """Diagnose the weight initialization of PyTorch and Keras models.

    \b
    initcheck model.pt                 check a model (same as 'initcheck check model.pt')
    initcheck check a.pt b.safetensors --format json
    initcheck rules                    list the rules
    initcheck explain IC101            explain one rule
    initcheck fix model.pt -o fixed.pt reinitialize flagged layers (see docs/fixing.md)
    """


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["table", "concise", "json", "sarif", "github", "markdown"]),
              default=None, help="Output format (default: table, or 'format' in the config).")
@click.option("-o", "--output", type=click.Path(), help="Write the report to this file (atomically).")
@click.option("--config", "config_file", type=click.Path(),
              help="Read settings from this file instead of the nearest pyproject.toml [tool.initcheck].")
@click.option("--isolated", is_flag=True, help="Ignore every configuration file.")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default=None, show_default="error",
              help="Exit 1 when a finding is at or above this severity.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when findings are at or above --fail-on.")
@click.option("--select", multiple=True, help="Only these rule codes or prefixes (comma-separated).")
@click.option("--extend-select", multiple=True, help="Add these rule codes or prefixes to the selection.")
@click.option("--ignore", multiple=True, help="Skip these rule codes or prefixes (comma-separated).")
@click.option("--extend-ignore", multiple=True, help="Skip these too, on top of the config's 'ignore'.")
@_model_options
@click.option("--from-config/--no-from-config", "from_config", default=None,
              help="Build a Hugging Face directory's architecture from its config.json with transformers, for "
              "full graph context (transformers' own classes only; costs the module, not a second copy).")
@click.option("--input-shape", help="Input shape for a traced forward pass, e.g. 1,3,224,224.")
@click.option("--baseline", type=click.Path(dir_okay=False),
              help="Accept the findings recorded in this file; only new ones are shown and fail.")
@click.option("--update-baseline", is_flag=True, help="Record the current findings in the --baseline file.")
@click.option("--statistics", is_flag=True, help="Show the count of findings per rule instead of the report.")
@click.option("--plot", type=click.Path(dir_okay=False),
              help="Also draw std per layer and histograms of flagged layers to this PNG (needs matplotlib).")
@click.option("--html", type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML report (table and plots) to this file.")
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors: no table, no summary when clean.")
@click.option("--no-color", is_flag=True, help="Never color the output (also: the NO_COLOR variable).")
@click.option("--no-progress", is_flag=True, help="Never show a progress bar.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Threads for the statistics pass (default: all CPUs; results do not depend on it).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def check(paths: tuple[str, ...], fmt: str | None, output: str | None, config_file: str | None, isolated: bool,
          fail_on: str | None, exit_zero: bool, select: tuple[str, ...], extend_select: tuple[str, ...],
          ignore: tuple[str, ...], extend_ignore: tuple[str, ...], trust: bool, activation: str | None,
          model_factory: str | None, from_config: bool | None, input_shape: str | None, baseline: str | None,
          update_baseline: bool, statistics: bool, plot: str | None, html: str | None, quiet: bool,
          no_color: bool, no_progress: bool, debug: bool, jobs: int | None = None, **extra: Any) -> None:
    """Check the initialization of one or more models (PATHS: files or model directories).

    Settings come from the nearest pyproject.toml [tool.initcheck] (or --config); flags override them.
    Exit 0: nothing at or above --fail-on; 1: findings at or above it; 2: bad usage or a file that
    could not be checked (the other files are still reported).
    """
    import os

    from .baseline import Baseline, describe_stale
    from .config import apply_per_layer_ignores, discover, load_config, parse_shape, resolve
    from .load import expand_path, load
    from .pipeline import CheckOptions, analyze
    from .render import render, renderers
    from .rules import select_rules

    reports: list = []
    failures = 0
    settings = None
    try:
        config_path = config_file or (None if isolated else discover(paths))
        settings = resolve(load_config(config_path) if config_path else None, {
            "select": _split_codes(select), "ignore": _split_codes(ignore),
            "extend_select": _split_codes(extend_select), "extend_ignore": _split_codes(extend_ignore),
            "fail_on": fail_on, "activation": activation, "model_factory": model_factory,
            "from_config": from_config, "input_shape": parse_shape(input_shape) if input_shape else None,
            "format": fmt, "baseline": baseline,
        })
        fmt = settings.format or "table"
        if fmt not in renderers():
            raise InitcheckError(f"unknown format {fmt!r} (choose from {', '.join(renderers())})")
        if update_baseline and not settings.baseline:
            raise InitcheckError("--update-baseline needs --baseline FILE (or 'baseline' in the config)")
        for target in (output, plot, html, settings.baseline if update_baseline else None):
            _check_output_folder(target)  # before minutes of loading, not after
        if plot:
            from .render.plot import require_matplotlib

            require_matplotlib("--plot")
        options = CheckOptions(trust=trust, progress=False if no_progress else None, jobs=jobs,
                               from_config=settings.from_config, **settings.check_kwargs())
        select_rules(options.select, options.ignore)
        accepted = None
        if settings.baseline and not update_baseline:
            accepted = Baseline.load(settings.baseline)
    except InitcheckError as e:
        _fail(str(e), debug)

    for path in _expanded(paths, expand_path, debug):
        if isinstance(path, InitcheckError):
            _report_failure(path, debug)
            failures += 1
            continue
        try:
            with _errors_name(path, debug):
                report = analyze(load(path, trust=trust), options)
            apply_per_layer_ignores(report, settings.per_layer_ignores)
            reports.append(report)
        except InitcheckError as e:
            _report_failure(e, debug)
            failures += 1

    try:
        if update_baseline and reports:
            accepted = Baseline.load(settings.baseline) if os.path.exists(settings.baseline) \
                else Baseline(settings.baseline)
            count = accepted.update(reports)
            accepted.save()
            if not quiet:
                click.echo(f"initcheck: baseline {settings.baseline}: {count} entries recorded", err=True)
        results = [accepted.apply(r) for r in reports] if accepted is not None else None
        color = fmt == "table" and not output and not no_color and _stdout_is_terminal()
        render_options = {"color": color, "quiet": quiet, "baseline": results}
        if reports or not failures:
            if statistics:
                from .render.ci_formats import render_statistics

                text = render_statistics(reports, render_options, "json" if fmt == "json" else "text")
            else:
                text = render(reports, fmt, **render_options)
            if output:
                from .io import atomic_write_text

                atomic_write_text(output, text)
            elif text:
                click.echo(text, nl=False)
        if plot and reports:
            from .render.plot import write_plots

            for written in write_plots(reports, plot):
                if not quiet:
                    click.echo(f"initcheck: wrote {written}", err=True)
        if html and reports:
            from .errors import MissingDependencyError
            from .render.html import write_html
            from .render.plot import require_matplotlib

            try:
                require_matplotlib("--html plots")
            except MissingDependencyError as e:
                click.echo(f"initcheck: note: {e} (the page is written without them)", err=True)
            write_html(reports, html, baseline=results)
            if not quiet:
                click.echo(f"initcheck: wrote {html}", err=True)
        if results and not quiet and not update_baseline:
            hidden = sum(len(r.suppressed) for r in results)
            click.echo(f"initcheck: baseline {settings.baseline}: {hidden} finding{'' if hidden == 1 else 's'} "
                       "accepted (not shown)", err=True)
            stale = [e for r in results for e in r.stale]
            if stale:
                click.echo(f"initcheck: baseline {settings.baseline}: {len(stale)} stale "
                           f"entr{'y' if len(stale) == 1 else 'ies'} no longer occur "
                           "(refresh with --update-baseline):", err=True)
                for entry in stale:
                    click.echo(f"  {describe_stale(entry)}", err=True)
    except InitcheckError as e:
        _fail(str(e), debug)
    except OSError as e:  # an output that could not be written, named by the OS error
        _fail(f"{e.filename or 'output'}: cannot write: {e.strerror or e}", debug)
    if failures:
        sys.exit(2)
    threshold = settings.fail_on
    if not exit_zero and threshold != "never" and any(r.failed(threshold) for r in reports):
        sys.exit(1)


def _check_output_folder(target: str | None) -> None:
    """An output whose folder is missing (or is a file) fails now, with the output's name."""
    import os

    if target is None:
        return
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise InitcheckError(f"cannot write: the folder {folder} does not exist", target)
    if os.path.isdir(target):
        raise InitcheckError("cannot write: the output is a directory", target)


def _expanded(paths: tuple[str, ...], expand_path: Any, debug: bool) -> Iterator[Any]:
    """Each model the paths name (a folder of separate models: each file); an InitcheckError in place of
    a path that cannot be expanded."""
    for given in paths:
        try:
            with _errors_name(given, debug):
                targets = expand_path(given)
        except InitcheckError as e:
            yield e
            continue
        yield from targets


def _report_failure(e: InitcheckError, debug: bool) -> None:
    if debug:
        traceback.print_exc()
        _print_captured()
    _echo_error(str(e))


def _stdout_is_terminal() -> bool:
    """Colors only on a terminal, and never when the NO_COLOR variable is set (https://no-color.org)."""
    import os

    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


@main.command("fix")
@click.argument("path", type=click.Path())
@click.option("-o", "--output", "out", type=click.Path(), help="Write the fixed model here (same format as PATH).")
@click.option("--scheme", default="auto", show_default=True,
              help="auto|he_normal|he_uniform|xavier_normal|xavier_uniform|lecun_normal|lecun_uniform|"
                   "orthogonal|uniform|normal:STD. auto: per layer from its activation.")
@click.option("--layers", "layer_globs", multiple=True, help="Reinitialize layers matching this glob "
              "(layer or tensor name); repeatable. Default: layers with findings at warning or above.")
@click.option("--all", "all_layers", is_flag=True, help="Reinitialize every layer.")
@click.option("--seed", type=int, default=None, help="Seed for reproducible draws.")
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.option("--in-place", is_flag=True, help="Overwrite the input file (atomically, after the re-check).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@_model_options
@click.option("--zca", "zca_data", type=click.Path(), help="ZCA-whiten a first layer on this data sample "
              "(.npy/.npz/.pt shaped like the model input).")
@click.option("--zca-layer", help="Layer to whiten (default: the first weight layer).")
@click.option("--zca-eps", type=float, default=None, help="ZCA epsilon relative to the mean eigenvalue "
              "(default 1e-2).")
@click.option("--lsuv", "lsuv_data", type=click.Path(), help="LSUV on this data batch (PyTorch modules).")
@click.option("--lsuv-tol", type=float, default=None, help="LSUV tolerance on |variance - 1| (default 0.1).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--config", "config_file", type=click.Path(), help="Read settings from this file instead of the "
              "nearest pyproject.toml [tool.initcheck].")
@click.option("--isolated", is_flag=True, help="Ignore every configuration file.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def fix_cmd(path: str, out: str | None, scheme: str, layer_globs: tuple[str, ...], all_layers: bool,
            seed: int | None, dry_run: bool, in_place: bool, force: bool, trust: bool, activation: str | None,
            model_factory: str | None, zca_data: str | None, zca_layer: str | None, zca_eps: float | None,
            lsuv_data: str | None, lsuv_tol: float | None, fmt: str, config_file: str | None, isolated: bool,
            debug: bool) -> None:
    """Reinitialize what the check flags (or --layers/--all), optionally ZCA or LSUV, and write the model
    back in its format. The output is reloaded and re-checked before it replaces OUT.

    Settings come from the nearest pyproject.toml [tool.initcheck] (or --config), as for 'check'."""
    from .config import discover, load_config, resolve
    from .fix.run import RecheckError, as_json, fix_path, fix_summary, render_changes

    try:
        config_path = config_file or (None if isolated else discover([path]))
        settings = resolve(load_config(config_path) if config_path else None,
                           {"activation": activation, "model_factory": model_factory})
        try:
            with _errors_name(path, debug):
                outcome = fix_path(path, out, scheme=scheme, layers=list(layer_globs) or None,
                                   all_layers=all_layers, seed=seed, dry_run=dry_run, in_place=in_place,
                                   force=force, trust=trust, activation=settings.activation,
                                   model_factory=settings.model_factory, zca=zca_data, zca_layer=zca_layer,
                                   zca_eps=zca_eps, lsuv=lsuv_data, lsuv_tol=lsuv_tol,
                                   check_settings=settings.check_kwargs())
        except RecheckError as e:  # the written model failed its re-check: exit 1, nothing written
            if debug:
                traceback.print_exc()
            _echo_error(str(e))
            sys.exit(1)
    except InitcheckError as e:
        _fail(str(e), debug)
    if fmt == "json":
        import json

        click.echo(json.dumps(as_json(outcome), indent=2))
    else:
        click.echo(render_changes(outcome), nl=False)
        click.echo(fix_summary(outcome, dry_run))


# ------------------------------------------------------------------------------- probe (docs/probe.md)
@main.command("probe")
@click.argument("path", required=False, type=click.Path())
@_model_options
@click.option("--input-shape", help="Shape of the synthetic input, e.g. 8,3,32,32 (default: inferred).")
@click.option("--data", type=click.Path(dir_okay=False), help="Use this sample (.npy/.npz/.pt) as the input.")
@click.option("--lr", type=float, default=None, help="SGD learning rate for the update-to-weight ratio "
              "(default 1e-3; 0.1 for the coord check).")
@click.option("--widths", help="Coord check: comma-separated widths for --model factory(width), e.g. 64,128,256,512.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic input and cotangent.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "concise", "sarif", "github", "markdown"]),
              default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report to this file (atomically).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also draw RMS by depth (forward, backward) to this PNG.")
@click.option("--html", type=click.Path(dir_okay=False), help="Also write the table and plot as one HTML page.")
@click.option("--select", multiple=True, help="Only these IC4xx codes or prefixes (comma-separated).")
@click.option("--ignore", multiple=True, help="Skip these codes or prefixes (comma-separated).")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="error", show_default=True)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def probe_cmd(path: str | None, trust: bool, activation: str | None, model_factory: str | None,
              input_shape: str | None, data: str | None, lr: float | None, widths: str | None, seed: int, fmt: str,
              output: str | None, plot: str | None, html: str | None, select: tuple[str, ...],
              ignore: tuple[str, ...], fail_on: str, debug: bool) -> None:
    """Measure signal propagation: one forward and one backward pass (eval mode, random cotangent, no
    optimizer step, weights untouched) and the IC4xx rules on what it saw; --widths runs the coord check."""
    from .probe.command import run

    try:
        with _errors_name(path or model_factory or "probe", debug):
            report = run(path, model_factory=model_factory, trust=trust, activation=activation,
                         input_shape=input_shape, data=data, lr=lr, widths=widths, seed=seed, fmt=fmt,
                         output=output, plot=plot, html=html, select=_split_codes(select),
                         ignore=_split_codes(ignore))
    except InitcheckError as e:
        _fail(str(e), debug)
    sys.exit(report.exit_code(fail_on))


@main.command("rules")
@click.option("--markdown", is_flag=True, help="Every rule's full explanation as Markdown (docs/rules.md).")
def rules_cmd(markdown: bool) -> None:
    """List every rule: code, name, severity, summary."""
    from tabulate import tabulate

    from .rules import all_rules, rules_markdown

    if markdown:
        click.echo(rules_markdown(), nl=False)
        return
    import shutil

    rows = [(r.code, r.name, r.severity, r.summary) for r in all_rules()]
    width = shutil.get_terminal_size((80, 24)).columns
    fixed = max(len(r[0]) for r in rows) + max(len(r[1]) for r in rows) + len("warning") + 9
    # the summary column wraps so that the table fits the terminal (80 columns when not a terminal)
    click.echo(tabulate(rows, headers=["code", "name", "up to", "summary"], tablefmt="simple",
                        maxcolwidths=[None, None, None, max(20, width - fixed)]))


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
