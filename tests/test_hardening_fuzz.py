"""A short seeded run of the mutation fuzzer (tests/fuzz_formats.py); `make fuzz` runs 1,500 mutants.

Every mutant of every seed format ends in a report (exit 0/1) or in exactly one stderr line naming the file
(exit 2): no traceback, no hang, no memory blow-up, no "unexpected failure" catch-all, and no safetensors
file accepted that the safetensors library rejects.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def test_short_fuzz_run_finds_no_defect():
    pytest.importorskip("torch")
    pytest.importorskip("h5py")
    pytest.importorskip("safetensors")
    from fuzz_formats import fuzz

    figures = fuzz(mutants=100, seed=7, subprocess_sample=2)
    assert figures["mutants"] == 100 and figures["seed_formats"] >= 8
    assert figures["defects"] == [], figures["defects"][:5]
    assert figures["safetensors_mutants"] > 10
    # both outcomes occur: the mutations are neither all harmless nor all fatal
    assert figures["accepted"] > 0 and figures["refused_one_line"] > 0


def test_the_checker_can_fail():
    """The fuzzer's verdicts on planted outcomes: each defect is recognised (a checker that cannot fail
    would make the run above meaningless)."""
    from fuzz_formats import classify

    m = {"path": "/x/m.safetensors", "safetensors": True}
    line = "initcheck: error: /x/m.safetensors: bad"
    assert classify(m, {"rc": 2, "stderr": line + "\n"}) == "ok-refused"
    assert classify(m, {"rc": 2, "stderr": line + "\nmore\n"}) == "lines"
    assert classify(m, {"rc": 2, "stderr": "initcheck: error: /x/m.safetensors: unexpected failure: KeyError"}) \
        == "catch-all"
    assert classify(m, {"rc": 2, "stderr": "initcheck: error: other: bad"}) == "unnamed"
    assert classify(m, {"rc": 1, "stderr": "", "traceback": "Traceback ..."}) == "traceback"
    assert classify(m, {"rc": 0, "stderr": "", "library_ok": False}) == "library"
    assert classify(m, {"rc": 0, "stderr": "", "library_ok": True}) == "ok-accepted"
    assert classify(m, {"rc": 3, "stderr": ""}) == "rc"
