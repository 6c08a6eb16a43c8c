"""Configuration: ``[tool.initcheck]`` in ``pyproject.toml`` (or ``--config FILE``), merged with the command line.

Discovery works like ruff's: starting from the directory of the first model path, then from the current
directory, initcheck walks up to the first ``pyproject.toml`` that has a ``[tool.initcheck]`` table
(a ``pyproject.toml`` without one is skipped). ``--config FILE`` names the file instead: a ``pyproject.toml``
(its ``[tool.initcheck]`` table is read) or any other TOML file whose top level holds the keys.
``--isolated`` ignores every configuration file.

Every key is documented in ``docs/configuration.md``. An unknown key, a value of the wrong type, an unknown
rule code or activation is an :class:`~initcheck.errors.InitcheckError` naming the file and the key, so a
typo never silently turns a check off. Command-line flags override the file, key by key.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from .errors import InitcheckError
from .report import Finding, Report

if sys.version_info >= (3, 11):  # pragma: no cover - version dependent
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FAIL_ON = ("error", "warning", "info", "never")
FORMATS = ("table", "concise", "json", "sarif", "github", "markdown")
SECTION = "tool.initcheck"


@dataclass
class Settings:
    """The effective settings of one run: defaults, then the config file, then the command line."""

    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    extend_select: list[str] = field(default_factory=list)
    extend_ignore: list[str] = field(default_factory=list)
    fail_on: str = "error"
    per_layer_ignores: dict[str, list[str]] = field(default_factory=dict)  # layer glob → rule codes/prefixes
    activation: str | None = None  # for layers whose activation stays unknown
    activation_overrides: dict[str, str] = field(default_factory=dict)  # layer glob → activation
    model_factory: str | None = None
    from_config: bool = False  # build a Hugging Face directory's architecture from its config.json
    input_shape: tuple[int, ...] | None = None
    format: str | None = None
    baseline: str | None = None  # path, already resolved against the config file's directory
    source: str | None = None  # the config file these settings came from, if any

    def effective_select(self) -> list[str] | None:
        """``select`` plus ``extend-select`` (None: every rule)."""
        if self.select is None:
            return None  # every rule is on already; extend-select cannot add anything
        return [*self.select, *self.extend_select]

    def effective_ignore(self) -> list[str] | None:
        """``ignore`` plus ``extend-ignore``."""
        codes = [*self.ignore, *self.extend_ignore]
        return codes or None

    def check_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`initcheck.pipeline.CheckOptions` (without ``trust``/``progress``;
        without ``from_config`` too, which only ``check`` takes: ``fix`` re-checks the file it writes,
        which has no config.json beside it)."""
        return {
            "select": self.effective_select(),
            "ignore": self.effective_ignore(),
            "activation": self.activation,
            "activation_overrides": dict(self.activation_overrides),
            "model_factory": self.model_factory,
            "input_shape": self.input_shape,
        }


# key in the file → (Settings attribute, parser)
def _codes(value: Any, key: str, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InitcheckError(f"{where}: '{key}' must be a list of rule codes, e.g. [\"IC001\", \"IC1\"]")
    return [c.strip().upper() for v in value for c in v.split(",") if c.strip()]


def _str(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InitcheckError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def _bool(value: Any, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise InitcheckError(f"{where}: '{key}' must be true or false")
    return value


def _fail_on(value: Any, key: str, where: str) -> str:
    value = _str(value, key, where).lower()
    if value not in FAIL_ON:
        raise InitcheckError(f"{where}: '{key}' must be one of {', '.join(FAIL_ON)}, not {value!r}")
    return value


def _format(value: Any, key: str, where: str) -> str:
    value = _str(value, key, where).lower()
    if value not in FORMATS:
        raise InitcheckError(f"{where}: '{key}' must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def _shape(value: Any, key: str, where: str) -> tuple[int, ...]:
    if isinstance(value, str):
        return parse_shape(value, f"{where}: '{key}'")
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                 for v in value):
        return tuple(value)
    raise InitcheckError(f"{where}: '{key}' must be a list of positive integers, e.g. [1, 3, 224, 224]")


def _activation(value: Any, key: str, where: str) -> str:
    value = _str(value, key, where)
    check_activation(value, f"{where}: '{key}'")
    return value


def _glob_codes(value: Any, key: str, where: str) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise InitcheckError(f"{where}: '{key}' must be a table of layer glob = [rule codes]")
    return {str(glob): _codes(codes, f"{key}.{glob}", where) for glob, codes in value.items()}


def _glob_activation(value: Any, key: str, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InitcheckError(f"{where}: '{key}' must be a table of layer glob = \"activation\"")
    return {str(glob): _activation(act, f"{key}.{glob}", where) for glob, act in value.items()}


KEYS = {
    "select": ("select", _codes),
    "ignore": ("ignore", _codes),
    "extend-select": ("extend_select", _codes),
    "extend-ignore": ("extend_ignore", _codes),
    "fail-on": ("fail_on", _fail_on),
    "per-layer-ignores": ("per_layer_ignores", _glob_codes),
    "activation": ("activation", _activation),
    "per-layer-activations": ("activation_overrides", _glob_activation),
    "model": ("model_factory", _str),
    "from-config": ("from_config", _bool),
    "input-shape": ("input_shape", _shape),
    "format": ("format", _format),
    "baseline": ("baseline", _str),
}


def parse_shape(text: str, what: str = "--input-shape") -> tuple[int, ...]:
    """``"1,3,224,224"`` or ``"1x3x224x224"`` → ``(1, 3, 224, 224)``; an InitcheckError otherwise."""
    try:
        shape = tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise InitcheckError(f"{what} {text!r} is not a comma-separated list of integers") from None
    if not shape or any(s <= 0 for s in shape):
        raise InitcheckError(f"{what} {text!r} must list positive integers")
    return shape


def check_activation(name: str, what: str) -> None:
    """Raise unless ``name`` is an activation initcheck knows, by name alone.

    A parameter (``leaky_relu:0.2``, ``elu(1.0)``) is refused rather than accepted and then silently lost:
    the judgement takes activation names only (the leaky-ReLU slope is its default, 0.01)."""
    from .schemes import ACTIVATIONS, canonical_activation

    base = re.split(r"[:(]", name, maxsplit=1)[0]
    if canonical_activation(base) is None:
        raise InitcheckError(f"{what}: unknown activation {name!r} (known: {', '.join(sorted(ACTIVATIONS))})")
    if base != name:
        raise InitcheckError(f"{what}: {name!r}: activation parameters are not supported; give the name alone "
                             f"({base.strip()!r})")


def check_codes(codes: Iterable[str], what: str) -> None:
    """Raise if a code or prefix in ``codes`` matches no rule (``ALL`` is allowed)."""
    from .rules import all_rules

    known = [r.code for r in all_rules()]
    for code in codes:
        if code != "ALL" and not any(k.startswith(code) for k in known):
            raise InitcheckError(f"{what}: unknown rule code or prefix {code!r} (see 'initcheck rules')")


def find_config(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` with a ``[tool.initcheck]`` table, walking up from ``start`` (a file
    or directory; default the current directory). ``None`` when there is none."""
    here = Path(start or os.getcwd()).resolve()
    if not here.is_dir():
        here = here.parent
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            data = _read_toml(candidate)
            if isinstance(data.get("tool"), dict) and "initcheck" in data["tool"]:
                return candidate
    return None


def discover(paths: Iterable[str]) -> Path | None:
    """Config for a run on ``paths``: searched from the first path's folder, then from the current directory."""
    first = next(iter(paths), None)
    found = None
    if first is not None and os.path.exists(first):
        found = find_config(first)
    return found or find_config(os.getcwd())


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise InitcheckError(f"cannot read config file: {e.strerror or e}", str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise InitcheckError(f"invalid TOML: {e}", str(path)) from None


def load_config(path: str | os.PathLike) -> Settings:
    """Settings from one file: the ``[tool.initcheck]`` table of a ``pyproject.toml``, or the top level of
    any other TOML file. Validates every key, code and activation."""
    path = Path(path)
    if not path.is_file():
        raise InitcheckError("config file not found", str(path))
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("initcheck") if isinstance(data.get("tool"), dict) else None
        if table is None:
            raise InitcheckError("no [tool.initcheck] table in this pyproject.toml", str(path))
        where = f"{path} [{SECTION}]"
    else:
        table = data
        where = str(path)
    return settings_from_table(table, where, base_dir=path.resolve().parent, source=str(path))


def settings_from_table(table: dict, where: str, base_dir: Path | None = None,
                        source: str | None = None) -> Settings:
    """Validate a configuration table (keys as in the file) into :class:`Settings`."""
    if not isinstance(table, dict):
        raise InitcheckError(f"{where}: expected a table of settings")
    if "trust" in table:
        raise InitcheckError(f"{where}: 'trust' cannot be set in a config file (a checked-out repository "
                             "could then run code from model files); pass --trust on the command line")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in KEYS:
            hint = _close_key(key)
            raise InitcheckError(f"{where}: unknown key {key!r}" + (f" (did you mean {hint!r}?)" if hint else "")
                                 + f"; known keys: {', '.join(KEYS)}")
        attr, parse = KEYS[key]
        values[attr] = parse(value, key, where)
    settings = Settings(**values, source=source)
    for attr, key in (("select", "select"), ("ignore", "ignore"), ("extend_select", "extend-select"),
                      ("extend_ignore", "extend-ignore")):
        check_codes(getattr(settings, attr) or [], f"{where}: '{key}'")
    for glob, codes in settings.per_layer_ignores.items():
        check_codes(codes, f"{where}: 'per-layer-ignores' {glob!r}")
    if settings.baseline and base_dir is not None and not os.path.isabs(settings.baseline):
        settings.baseline = str(base_dir / settings.baseline)
    return settings


def _close_key(key: str) -> str | None:
    import difflib

    normal = key.replace("_", "-").lower()
    if normal in KEYS:
        return normal
    match = difflib.get_close_matches(normal, list(KEYS), n=1, cutoff=0.7)
    return match[0] if match else None


def resolve(file: Settings | None, cli: dict[str, Any]) -> Settings:
    """Merge command-line values over the file's settings.

    ``cli`` holds the command line's values, ``None`` (or an empty list) for a flag not given. A given
    ``--select`` replaces both ``select`` and ``extend-select`` of the file; ``--ignore`` replaces ``ignore``;
    ``--extend-select``/``--extend-ignore`` add to whatever is in effect; every other flag replaces its key.
    """
    s = replace(file) if file is not None else Settings()
    s.ignore = list(s.ignore)
    s.extend_select = list(s.extend_select)
    s.extend_ignore = list(s.extend_ignore)
    if cli.get("select"):
        s.select = list(cli["select"])
        s.extend_select = []
    if cli.get("ignore"):
        s.ignore = list(cli["ignore"])
    s.extend_select += list(cli.get("extend_select") or [])
    s.extend_ignore += list(cli.get("extend_ignore") or [])
    if cli.get("model_factory") and cli.get("from_config") is None:
        s.from_config = False  # --model names the architecture; the file's from-config gives way
    if cli.get("from_config"):
        s.model_factory = None  # and the reverse
    for attr in ("fail_on", "activation", "model_factory", "from_config", "input_shape", "format", "baseline"):
        if cli.get(attr) is not None:
            setattr(s, attr, cli[attr])
    for codes, what in ((s.select or [], "--select"), (s.ignore, "--ignore"), (s.extend_select, "--extend-select"),
                        (s.extend_ignore, "--extend-ignore")):
        check_codes(codes, what)
    if s.activation:
        check_activation(s.activation, "--activation")
    return s


def layer_ignored(layer: str | None, rule: str, per_layer_ignores: dict[str, list[str]]) -> bool:
    """True if a ``per-layer-ignores`` glob matches ``layer`` and lists ``rule`` (or a prefix of it).

    Globs are shell-style (``fnmatch``, case-sensitive) on the whole layer name; ``*`` crosses dots, so
    ``encoder.*`` covers every layer under ``encoder``. Model-level findings (no layer) match the glob ``<model>``.
    """
    name = layer if layer is not None else "<model>"
    rule = rule.upper()
    for glob, codes in per_layer_ignores.items():
        if fnmatch.fnmatchcase(name, glob) and any(c == "ALL" or rule.startswith(c) for c in codes):
            return True
    return False


def apply_per_layer_ignores(report: Report, per_layer_ignores: dict[str, list[str]]) -> list[Finding]:
    """Drop the report's findings that a ``per-layer-ignores`` entry covers; returns the dropped ones."""
    if not per_layer_ignores:
        return []
    kept: list[Finding] = []
    dropped: list[Finding] = []
    for f in report.findings:
        (dropped if layer_ignored(f.layer, f.rule, per_layer_ignores) else kept).append(f)
    report.findings[:] = kept
    return dropped
