"""--jobs: the report does not depend on the number of statistics threads."""

from __future__ import annotations

import os

from click.testing import CliRunner

from conftest import FIXTURES
from initcheck.cli import main


def test_jobs_option_gives_the_same_report():
    path = os.path.join(FIXTURES, "broken_cnn.safetensors")
    outs = []
    for jobs in ("1", "3"):
        r = CliRunner().invoke(main, ["check", path, "--format", "json", "--no-progress", "--jobs", jobs])
        assert r.exit_code == 1, r.output  # the fixture has findings
        outs.append(r.output)
    assert outs[0] == outs[1]


def test_jobs_must_be_positive():
    r = CliRunner().invoke(main, ["check", os.path.join(FIXTURES, "broken_cnn.safetensors"), "--jobs", "0"])
    assert r.exit_code == 2
