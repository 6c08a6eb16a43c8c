"""The hostile corpus (tests/hostile/build_corpus.py), every case run through the CLI in its own process.

Asserted for each case: exit 2 with exactly one stderr line that names the file and says why; no payload
ran (the sentinel file does not exist); no input changed; no file outside the model's folder was read (its
access time is unchanged); peak RSS under 1 GiB and under 30 CPU seconds.
"""

from __future__ import annotations

import os
import sys

import pytest

HOSTILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile")
sys.path.insert(0, HOSTILE)

from build_corpus import build  # noqa: E402
from run_corpus import run_all  # noqa: E402


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("h5py")
    pytest.importorskip("safetensors")
    out = str(tmp_path_factory.mktemp("hostile"))
    build(out)
    return run_all(out)


def test_every_case_refused_with_one_line(figures):
    assert figures["cases"] >= 40
    assert figures["problems"] == {}, figures["problems"]
    assert figures["one_line_refusals"] == figures["cases"]


def test_no_payload_ran_and_nothing_changed(figures):
    assert figures["payload_cases"] >= 8
    assert not figures["sentinel_touched"]
    assert figures["inputs_changed"] == []


def test_nothing_outside_read(figures):
    if not figures["atime_observable"]:
        pytest.skip("this filesystem does not update access times (noatime): reads outside are not observable")
    assert figures["outside_read"] == []


def test_memory_and_time_bounded(figures):
    """Under 1 GiB and 30 s of CPU each (CPU time, not wall clock: on a loaded 2-core machine importing torch
    alone can take 20 s of wall clock); a child still running after 120 s counts as a hang (judge())."""
    assert figures["max_rss_mib"] < 1024
    assert figures["max_cpu_seconds"] < 30


def test_payloads_are_real(tmp_path):
    """The corpus' pickle payload, loaded the unsafe way on purpose (--trust), does create its sentinel:
    the refusals above are what stands between such a file and its code."""
    import pickle

    from build_corpus import Payload
    from conftest import run_cli

    pytest.importorskip("torch")
    sentinel = tmp_path / "RAN"
    model = tmp_path / "payload.pt"
    model.write_bytes(pickle.dumps(Payload(str(sentinel)), protocol=2))
    run_cli(str(model), "--trust", "--no-progress")
    assert sentinel.exists()
