"""A seeded sample of the stock sweep (benchmarks/corpus/stock_sweep.py; `make sweep` runs all of it).

Ten zoo models (4 transformers, 2 timm, 2 torchvision, 2 keras_hub; ``zoo.sample(n, seed=0, library=...)``)
built with their own libraries' init: no errors on stock init, in memory and as a tensor-only file; faults
planted on one mid-network matrix (×10, zeros, one NaN) found at warning or above on that exact layer, in
memory and tensor-only. Known current failures are ``xfail(strict=True)`` so they flip when fixed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import zoo  # noqa: E402
from benchmarks.corpus import stock_sweep  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("keras")

PER_LIBRARY = {"transformers": 4, "timm": 2, "torchvision": 2, "keras_hub": 2}
SAMPLE = [e.name for lib, n in PER_LIBRARY.items() for e in zoo.sample(n, seed=0, library=lib)]
FORMATS = ("memory", "tensor_only")

# (model, what) -> why it fails today; `what` is a format (stock errors) or "fault/format"
KNOWN: dict[tuple[str, str], str] = {}

_RECORDS: dict[str, dict] = {}


def record(name: str) -> dict:
    """The sweep record of one model, computed once per test session."""
    if name not in _RECORDS:
        _RECORDS[name] = stock_sweep.run_model(zoo.get(name), timeout=600)
    rec = _RECORDS[name]
    assert rec["ok"], f"{name} failed to build or check: {rec.get('error')}\n{rec.get('traceback', '')}"
    return rec


def cases(whats):
    out = []
    for name in SAMPLE:
        for what in whats:
            reason = KNOWN.get((name, what))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(name, what, marks=marks, id=f"{name}-{what}"))
    return out


def test_sample_is_the_seeded_one():
    assert len(SAMPLE) == 10 and len(set(SAMPLE)) == 10
    assert SAMPLE == [e.name for lib, n in PER_LIBRARY.items() for e in zoo.sample(n, seed=0, library=lib)]


@pytest.mark.parametrize("name, fmt", cases(FORMATS))
def test_stock_init_has_no_errors(name, fmt):
    errors = [f for f in record(name)[fmt] if f["severity"] == "error"]
    assert not errors, "\n".join(f"{f['rule']} {f['layer']}: {f['message']}" for f in errors)


@pytest.mark.parametrize("name, what", cases([f"{fault}/{fmt}" for fault in stock_sweep.FAULTS for fmt in FORMATS]))
def test_planted_fault_found_on_its_layer(name, what):
    rec = record(name)
    fault, fmt = what.split("/")
    assert rec["target"] is not None, f"{name} has no weight matrix of >= {stock_sweep.MIN_TARGET_SIZE} values"
    if fmt == "tensor_only":
        assert rec["target"]["file_layer"], f"{rec['target']['layer']} not found in the tensor-only file"
    assert rec["faults"][fault][fmt], f"{fault} on {rec['target']['layer']} not flagged at warning+ ({fmt})"
