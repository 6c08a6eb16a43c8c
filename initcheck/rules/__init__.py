"""Rule registry. Each rule has a code, a short name, a default severity and an explanation.

Rules are functions ``check(model, options) -> Iterable[Finding]`` registered with :func:`rule`; they read
only the framework-neutral model (layers, statistics, context, analysis) and never import a framework.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Callable, Iterable

from ..errors import InitcheckError
from ..model import Model
from ..report import Finding


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: str  # the most severe level this rule reports
    summary: str
    explanation: str  # paragraph(s): what, why, an example, how to fix
    check: Callable[[Model, "RuleOptions"], Iterable[Finding]]

    def explain(self) -> str:
        body = textwrap.dedent(self.explanation).strip()
        return f"{self.code} {self.name} ({self.severity})\n\n{self.summary}\n\n{body}\n"


@dataclass
class RuleOptions:
    """Settings rules may consult (filled from the CLI or API)."""

    trained: bool = False  # the checkpoint looks trained: init rules report at info


REGISTRY: dict[str, Rule] = {}


def rule(code: str, name: str, severity: str, summary: str, explanation: str):
    """Decorator registering a rule function under ``code``."""

    def register(fn: Callable[[Model, RuleOptions], Iterable[Finding]]):
        if code in REGISTRY:
            raise RuntimeError(f"duplicate rule code {code}")
        REGISTRY[code] = Rule(code, name, severity, summary, explanation, fn)
        return fn

    return register


def all_rules() -> list[Rule]:
    _load_rule_modules()
    return [REGISTRY[c] for c in sorted(REGISTRY)]


def get_rule(code: str) -> Rule:
    _load_rule_modules()
    try:
        return REGISTRY[code.upper()]
    except KeyError:
        raise InitcheckError(f"unknown rule code {code!r} (see 'initcheck rules')") from None


def select_rules(select: Iterable[str] | None = None, ignore: Iterable[str] | None = None) -> list[Rule]:
    """Rules whose code starts with one of ``select`` (all when None) and none of ``ignore``.

    An entry that matches no rule is an error, so a typo never silently disables a check.
    """
    rules = all_rules()
    select = [s.strip().upper() for s in select or [] if s.strip()]
    ignore = [s.strip().upper() for s in ignore or [] if s.strip()]
    for prefix in select + ignore:
        if prefix != "ALL" and not any(r.code.startswith(prefix) for r in rules):
            raise InitcheckError(f"unknown rule code or prefix {prefix!r} (see 'initcheck rules')")
    if select and "ALL" not in select:
        rules = [r for r in rules if any(r.code.startswith(p) for p in select)]
    return [r for r in rules if not any(r.code.startswith(p) for p in ignore)]


def run_rules(model: Model, rules: list[Rule], options: RuleOptions | None = None) -> list[Finding]:
    options = options or RuleOptions()
    findings: list[Finding] = []
    for r in rules:
        findings.extend(r.check(model, options))
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    findings.sort(key=lambda f: (order.get(f.layer, -1), f.rule))
    return findings


def _load_rule_modules() -> None:
    from . import integrity  # noqa: F401  (registers on import)
    try:
        from . import scale, structure  # noqa: F401
    except ImportError:  # pragma: no cover - modules added by later work
        pass
