"""The command line: default command, exit codes 0/1/2 and --fail-on, output options, bad usage."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from conftest import FIXTURES, run_cli
from initcheck.cli import main

HEALTHY = os.path.join(FIXTURES, "healthy_mlp.pt")
BROKEN = os.path.join(FIXTURES, "broken_cnn.safetensors")
INTEGRITY = "IC001,IC002,IC003"


def invoke(*args):
    return CliRunner().invoke(main, [*args, "--no-progress"] if args and args[0] not in ("rules", "explain") else list(args))


def test_broken_fixture_exit_1_with_planted_faults():
    r = invoke(BROKEN, "--format", "json", "--select", INTEGRITY)
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    found = {(f["rule"], f["layer"], f["severity"]) for f in doc["findings"]}
    assert found == {("IC001", "classifier.0", "error"), ("IC002", "features.2", "error"),
                     ("IC003", "classifier.2", "error")}


def test_broken_fixture_planted_faults_among_all_rules():
    """With every rule on, the planted integrity faults are still reported (other rules may add more)."""
    r = invoke(BROKEN, "--format", "json")
    assert r.exit_code == 1
    found = {(f["rule"], f["layer"]) for f in json.loads(r.stdout)["findings"]}
    assert {("IC001", "classifier.0"), ("IC002", "features.2"), ("IC003", "classifier.2")} <= found


def test_healthy_fixture_no_integrity_findings():
    for fail_on in ("error", "warning", "info"):
        r = invoke(HEALTHY, "--select", INTEGRITY, "--fail-on", fail_on)
        assert r.exit_code == 0, (fail_on, r.output)


def test_fail_on_never_exits_0_on_errors():
    assert invoke(BROKEN, "--fail-on", "never").exit_code == 0


def test_default_command_equals_check():
    a = invoke(BROKEN, "--format", "json", "--select", INTEGRITY)
    b = CliRunner().invoke(main, ["check", BROKEN, "--format", "json", "--select", INTEGRITY, "--no-progress"])
    assert a.exit_code == b.exit_code == 1
    assert json.loads(a.stdout) == json.loads(b.stdout)


@pytest.mark.parametrize("severity,fail_on,code", [
    ("error", "error", 1), ("warning", "error", 0), ("info", "error", 0),
    ("error", "warning", 1), ("warning", "warning", 1), ("info", "warning", 0),
    ("error", "info", 1), ("warning", "info", 1), ("info", "info", 1),
    ("error", "never", 0), (None, "info", 0),
])
def test_exit_code_policy(monkeypatch, severity, fail_on, code):
    """Exit 1 iff a finding is at or above --fail-on; findings are planted, so no rule's judgement matters."""
    import initcheck.pipeline as pipeline
    from initcheck.report import Finding

    real = pipeline.analyze

    def planted(model, options=None):
        report = real(model, options)
        report.findings = [] if severity is None else [Finding("IC999", severity, None, "planted")]
        return report

    monkeypatch.setattr(pipeline, "analyze", planted)
    r = invoke(HEALTHY, "--fail-on", fail_on, "--format", "json")
    assert r.exit_code == code, (severity, fail_on, r.output)


@pytest.mark.parametrize("args", [
    ["--format", "nonsense"],
    ["--select", "IC999X"],
    ["--fail-on", "sometimes"],
    ["--no-such-option"],
])
def test_bad_usage_exit_2(args):
    r = invoke(HEALTHY, *args)
    assert r.exit_code == 2, (args, r.output)
    assert "Traceback" not in r.output


def test_no_path_is_bad_usage():
    assert CliRunner().invoke(main, ["check"]).exit_code == 2


def test_output_file_and_json(tmp_path):
    out = tmp_path / "report.json"
    r = invoke(HEALTHY, "--format", "json", "-o", str(out))
    assert r.exit_code == 0 and r.stdout == ""
    doc = json.loads(out.read_text())
    assert [layer["name"] for layer in doc["layers"]] == ["0", "2", "4"]
    assert doc["source"]["format"] == "state_dict"


def test_table_lists_every_layer_and_summary():
    r = CliRunner().invoke(main, [BROKEN, "--no-progress"], env={"COLUMNS": "100"})
    assert r.exit_code == 1
    for name in ("features.0", "features.2", "features.4", "classifier.0", "classifier.2"):
        assert name in r.stdout
    assert "safetensors" in r.stdout and "47,978" in r.stdout  # summary line: format and parameter count
    table = r.stdout.split("\n\n")[0].splitlines()  # the layer table: everything before the first blank line
    assert len(table) >= 7 and max(len(line) for line in table) <= 100


def test_several_paths_one_json_document():
    r = invoke(HEALTHY, BROKEN, "--format", "json", "--select", INTEGRITY)
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert [m["source"]["path"] for m in doc["models"]] == [HEALTHY, BROKEN]


def test_python_m_initcheck_and_console_script():
    r = run_cli(BROKEN, "--format", "json", "--select", INTEGRITY, "--no-progress")
    assert r.returncode == 1 and json.loads(r.stdout)["summary"]["errors"] == 3
    r = run_cli("--help")
    assert r.returncode == 0 and "check" in r.stdout
    import shutil
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(sys.executable), "initcheck")
    script = script if os.path.exists(script) else shutil.which("initcheck")
    if script:
        p = subprocess.run([script, HEALTHY, "--select", INTEGRITY, "--no-progress"], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr


def test_api_check_returns_report():
    import initcheck

    report = initcheck.check(BROKEN, select=["IC001", "IC002", "IC003"])
    assert report.exit_code() == 1 and report.exit_code("error") == 1
    assert report.summary()["errors"] == 3
    assert report.summary()["parameters"] == 47978
