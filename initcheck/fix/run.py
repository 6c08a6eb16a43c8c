"""``initcheck fix``: load → check → reinit / ZCA / LSUV → write (same format, atomic) → reload and re-check.

Output policy (the CLI's flags):

* ``-o OUT`` is required unless ``--in-place`` or ``--dry-run``.
* OUT may not be the input file (same path or same file through a link) unless ``--in-place``.
* An existing OUT is not overwritten unless ``--force`` (``--in-place`` implies it for the input).
* The new file is written to a temporary file next to OUT, loaded again and re-checked there; only if the
  re-check passes is it renamed over OUT. The re-check fails when a reinitialized layer still has a
  finding at warning or above (except the relational rules IC104 sibling-outlier and IC105 signal-chain,
  which depend on layers the fix did not touch: those are printed as notes), when a ZCA/LSUV layer has an
  integrity finding (IC00x), or when a tensor the fix did not touch differs in any bit from the input.
  Then nothing is written (exit 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InitcheckError
from ..report import SEVERITY_RANK, Report
from .reinit import Change, parse_scheme, reinit_layers, select_layers


# Rules that compare a layer with others (siblings in other blocks, the chain of un-normalized layers):
# a correctly reinitialized layer can still be flagged because of layers the fix did not touch, so they
# do not block writing; they are reported in the notes.
RELATIONAL_RULES = frozenset({"IC104", "IC105"})


class RecheckError(InitcheckError):
    """The written model did not pass the re-check; nothing was written."""


@dataclass
class FixOutcome:
    changes: list[Change]
    report: Report  # of the input
    recheck: Report | None = None  # of the output (None on dry runs)
    out_path: str | None = None
    notes: list[str] = field(default_factory=list)


def merge_changes(changes: list[Change]) -> list[Change]:
    """One entry per tensor: the first ``before_std``, the last values/std, schemes joined."""
    merged: dict[str, Change] = {}
    for c in changes:
        if c.tensor in merged:
            m = merged[c.tensor]
            m.after_std, m.values = c.after_std, c.values
            m.scheme = f"{m.scheme} → {c.scheme}"
            m.note = "; ".join(x for x in (m.note, c.note) if x)
        else:
            merged[c.tensor] = Change(c.layer, c.tensor, c.before_std, c.after_std, c.scheme, c.note, c.values)
    return list(merged.values())


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def fix_path(path: str, out: str | None, *, scheme: str = "auto", layers: list[str] | None = None,
             all_layers: bool = False, seed: int | None = None, dry_run: bool = False, in_place: bool = False,
             force: bool = False, trust: bool = False, activation: str | None = None,
             model_factory: str | None = None, zca: str | None = None, zca_layer: str | None = None,
             zca_eps: float | None = None, lsuv: str | None = None, lsuv_tol: float | None = None,
             progress: bool | None = False, check_settings: dict[str, Any] | None = None) -> FixOutcome:
    """Everything ``initcheck fix`` does; raises :class:`InitcheckError` (exit 2) or
    :class:`RecheckError` (exit 1).

    ``check_settings``: keyword arguments of :class:`~initcheck.pipeline.CheckOptions` from the
    configuration file (``Settings.check_kwargs()``: select, ignore, per-layer activations, input shape);
    ``activation`` and ``model_factory`` given here win over theirs."""
    from ..load import load
    from ..pipeline import CheckOptions, analyze

    if in_place:
        if out is not None and not _same_file(out, path):
            raise InitcheckError("--in-place writes over the input; do not give a different -o")
        out = path
    elif out is None and not dry_run:
        raise InitcheckError("give an output file with -o OUT (or --in-place, or --dry-run)", path)
    if out is not None and not in_place:
        if os.path.exists(out) and _same_file(out, path):
            raise InitcheckError("the output is the input file: pass --in-place to overwrite it", out)
        if os.path.exists(out) and not force and not dry_run:
            raise InitcheckError("the output exists: pass --force to overwrite it", out)
        if os.path.isdir(out):
            raise InitcheckError("the output is a directory", out)
    sch = parse_scheme(scheme)  # validate before loading
    settings = dict(check_settings or {})
    activation = activation or settings.get("activation")
    model_factory = model_factory or settings.get("model_factory")
    settings.update(activation=activation, model_factory=model_factory)
    options = CheckOptions(trust=trust, progress=progress, **settings)
    model = load(path, trust=trust, model_factory=model_factory)
    report = analyze(model, options)
    model = report.model  # with --model, the user's architecture holding the file's tensors
    notes: list[str] = []
    changes: list[Change] = []
    chosen = select_layers(model, report, layers, all_layers)
    reinit_names = {la.name for la in chosen}
    changes += reinit_layers(model, chosen, sch, seed=seed, activation=activation, dry_run=dry_run)
    data_layers: set[str] = set()
    if zca:
        from .zca import DEFAULT_EPS, load_data, zca_model_layer

        data = load_data(zca)
        zc = zca_model_layer(model, zca_layer, data, eps=zca_eps or DEFAULT_EPS, seed=seed, activation=activation,
                             dry_run=dry_run)
        data_layers |= {c.layer for c in zc}
        changes += zc
    if lsuv:
        from .lsuv import DEFAULT_TOL, lsuv as lsuv_torch, lsuv_keras
        from .zca import load_data

        if model.handle is None or model.framework not in ("torch", "keras"):
            raise InitcheckError("LSUV runs the model: it needs a PyTorch module (a pickled module or "
                                 "TorchScript with --trust, or --model for a tensor-only file) or a Keras model; "
                                 "this file holds tensors only", path)
        run_lsuv = lsuv_keras if model.framework == "keras" else lsuv_torch
        if dry_run:
            notes.append("--dry-run: LSUV not run (it needs to modify the model to measure it)")
        else:
            data = load_data(lsuv)
            skip = {c.layer for c in changes if c.scheme == "zca"}
            res = run_lsuv(model.handle, data.astype(np.float32), tol=lsuv_tol or DEFAULT_TOL, seed=seed, skip=skip)
            data_layers |= {c.layer for c in res.changes}
            changes += res.changes
            notes.append(f"LSUV: {len(res.variances)} outputs at unit variance in {res.passes} forward passes")
            if res.skipped:
                notes.append("LSUV did not cover: " + ", ".join(res.skipped))
    changes = merge_changes(changes)
    if dry_run or not changes:
        if not changes:
            notes.append("nothing to fix: no layer has a finding at warning or above (use --layers or --all)")
        return FixOutcome(changes, report, None, None, notes)

    recheck: dict[str, Report] = {}

    def verify(tmp: str) -> None:
        recheck["report"] = _recheck(tmp, model, changes, reinit_names, data_layers, options, trust, notes)

    _write(model, changes, out, trust, verify)
    return FixOutcome(changes, report, recheck.get("report"), out, notes)


def _write(model, changes: list[Change], out: str, trust: bool, verify) -> None:
    if model.framework == "keras":
        from ..frameworks.keras.write import SUFFIXES, save_keras

        fmt = model.format
        if fmt not in SUFFIXES or model.handle is None:
            raise InitcheckError(f"writing Keras format {fmt} is not supported", model.path)
        source = model.path if model.path and os.path.isfile(model.path) else None
        save_keras(model.handle, out, fmt, verify=verify, mode_from=source)
        return
    from ..frameworks.torch.write import write_model

    write_model(model, changes, out, trust=trust, verify=verify)


def _recheck(tmp: str, model, changes: list[Change], reinit_names: set[str], data_layers: set[str], options,
             trust: bool, notes: list[str]) -> Report:
    from ..load import load
    from ..pipeline import analyze

    try:
        new = load(tmp, trust=trust, model_factory=options.model_factory)
    except InitcheckError as e:
        raise RecheckError(f"the written file does not load again: {e.message}") from None
    rep = analyze(new, options)
    new = rep.model
    problems = []
    for f in rep.findings:
        if f.layer is None or SEVERITY_RANK[f.severity] < SEVERITY_RANK["warning"]:
            continue
        if f.layer in data_layers:
            # ZCA/LSUV set the layer from data, not from a scheme: only integrity findings block it
            if f.rule.startswith("IC00"):
                problems.append(f"{f.layer}: {f.rule} {f.message}")
            else:
                notes.append(f"data-dependent init, not judged by a scheme: {f.layer}: {f.rule} {f.message}")
        elif f.rule in RELATIONAL_RULES and f.layer in reinit_names:
            notes.append(f"still flagged after the fix (depends on layers not fixed; try --all): "
                         f"{f.layer}: {f.rule} {f.message}")
        elif f.layer in reinit_names:
            problems.append(f"{f.layer}: {f.rule} {f.message}")
    changed = {c.tensor for c in changes}
    old = {p.name: p for la in model.layers for p in la.params}
    for la in new.layers:
        for p in la.params:
            if p.name in changed or p.name not in old:
                continue
            a, b = old[p.name].tensor.raw(), p.tensor.raw()
            if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
                problems.append(f"{p.name}: changed although the fix did not touch it")
    if problems:
        raise RecheckError("re-check of the output failed, nothing written: " + "; ".join(problems[:5]) +
                           (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""))
    return rep


def render_changes(outcome: FixOutcome) -> str:
    """The table ``initcheck fix`` prints: one row per rewritten tensor."""
    from tabulate import tabulate

    def fmt(x: float) -> str:
        return "nan" if x != x else f"{x:.4g}"

    rows = [(c.layer, c.tensor, fmt(c.before_std), fmt(c.after_std), c.scheme, c.note) for c in outcome.changes]
    text = tabulate(rows, headers=["layer", "tensor", "before std", "after std", "scheme", "note"],
                    tablefmt="simple") if rows else ""
    lines = [text] if text else []
    lines += outcome.notes
    return "\n".join(lines) + ("\n" if lines else "")


def fix_summary(outcome: FixOutcome, dry_run: bool) -> str:
    layers = len({c.layer for c in outcome.changes})
    if dry_run:
        return f"dry run: {len(outcome.changes)} tensors in {layers} layers would change; nothing written"
    if outcome.out_path is None:
        return "nothing written"
    worst = outcome.recheck.worst() if outcome.recheck else None
    return (f"wrote {outcome.out_path}: {len(outcome.changes)} tensors in {layers} layers reinitialized; "
            f"re-check passed" + (f" (other layers: worst finding {worst})" if worst else ""))


def as_json(outcome: FixOutcome) -> dict[str, Any]:
    return {"changes": [c.to_json() for c in outcome.changes], "out": outcome.out_path, "notes": outcome.notes}
