"""Output formats on models with findings: concise, sarif (GitHub's 2.1.0 requirements), github (escaping),
markdown, json with several models, --statistics."""

from __future__ import annotations

import json
import os
import re

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

from initcheck.cli import main
from initcheck.model import Model
from initcheck.render.ci_formats import (concise_line, escape_data, escape_property, github_line,
                                         render_github, render_markdown, sarif_document, statistics)
from initcheck.report import Finding, Report


def save_model(path, zero=(2,), nan=(4,), const=(6,)):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                      nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    with torch.no_grad():
        for i in zero:
            m[i].weight.zero_()
        for i in nan:
            m[i].weight[0, 0] = float("nan")
        for i in const:
            m[i].weight.fill_(0.01)
    torch.save(m.state_dict(), path)
    return str(path)


@pytest.fixture
def models(tmp_path, monkeypatch):
    """Two models with findings, addressed relative to the current directory (as in CI)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    save_model(tmp_path / "models" / "a.pt")
    save_model(tmp_path / "models" / "b.pt", zero=(4,), nan=(), const=())
    return ["models/a.pt", "models/b.pt"]


def invoke(*args):
    return CliRunner().invoke(main, [*args, "--no-progress", "--isolated", "--select", "IC00"])


# ------------------------------------------------------------------------------------------ concise
def test_concise_one_line_per_finding_for_each_model(models):
    result = invoke(*models, "--format", "concise")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    pattern = re.compile(r"^(models/[ab]\.pt):(\S+): (IC\d{3}) \[(error|warning|info)\] \S.*$")
    findings = [pattern.match(line) for line in lines[:-1]]
    assert all(findings), lines
    got = {(m.group(1), m.group(2), m.group(3)) for m in findings}
    assert got == {("models/a.pt", "2", "IC002"), ("models/a.pt", "4", "IC001"), ("models/a.pt", "6", "IC003"),
                   ("models/b.pt", "4", "IC002")}
    assert lines[-1] == "Found 4 errors, 0 warnings, 0 infos in 2 models."


def test_concise_line_model_level_and_newlines():
    f = Finding("IC105", "warning", None, "signal\nshrinks")
    assert concise_line("m.pt", f) == "m.pt: IC105 [warning] signal shrinks"


# ------------------------------------------------------------------------------------------ sarif
def validate_sarif_for_github(doc: dict) -> None:
    """The SARIF 2.1.0 structure GitHub code scanning requires (structural checks, no network schema)."""
    assert doc["version"] == "2.1.0"
    assert isinstance(doc["$schema"], str) and "sarif" in doc["$schema"] and "2.1.0" in doc["$schema"]
    assert isinstance(doc["runs"], list) and doc["runs"]
    for run in doc["runs"]:
        driver = run["tool"]["driver"]
        assert isinstance(driver["name"], str) and driver["name"]
        rules = driver["rules"]
        ids = [r["id"] for r in rules]
        assert len(ids) == len(set(ids)), "rule ids must be unique"
        for r in rules:
            for key in ("shortDescription", "fullDescription", "help"):
                assert isinstance(r[key]["text"], str) and r[key]["text"].strip(), (r["id"], key)
            if "defaultConfiguration" in r:
                assert r["defaultConfiguration"]["level"] in ("error", "warning", "note", "none")
        for res in run["results"]:
            assert isinstance(res["ruleId"], str)
            assert res["level"] in ("error", "warning", "note")
            assert isinstance(res["message"]["text"], str) and res["message"]["text"]
            if "ruleIndex" in res:
                assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
            else:
                assert res["ruleId"] in ids
            assert res["locations"], "GitHub needs at least one location"
            for loc in res["locations"]:
                phys = loc["physicalLocation"]
                uri = phys["artifactLocation"]["uri"]
                assert isinstance(uri, str) and uri and "\\" not in uri
                assert phys["region"]["startLine"] >= 1
            for value in res.get("partialFingerprints", {}).values():
                assert isinstance(value, str)
    json.dumps(doc, allow_nan=False)  # strict JSON


def test_sarif_accepted_structure_with_findings(models):
    result = invoke(*models, "--format", "sarif")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    validate_sarif_for_github(doc)
    results = doc["runs"][0]["results"]
    got = {(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], r["ruleId"],
            r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]) for r in results}
    assert got == {("models/a.pt", "IC002", "2"), ("models/a.pt", "IC001", "4"), ("models/a.pt", "IC003", "6"),
                   ("models/b.pt", "IC002", "4")}
    assert all(r["level"] == "error" for r in results)
    rules = {r["id"]: r for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    assert "all zeros" in rules["IC002"]["shortDescription"]["text"]
    # stable fingerprints: same finding, same value; different findings, different values
    fps = [r["partialFingerprints"]["initcheckFinding/v1"] for r in results]
    assert len(set(fps)) == len(fps)
    again = json.loads(invoke(*models, "--format", "sarif").stdout)
    assert [r["partialFingerprints"] for r in again["runs"][0]["results"]] == \
        [r["partialFingerprints"] for r in results]


def test_sarif_levels_and_outside_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = Model(path=str(tmp_path.parent / "elsewhere.pt"), format="state_dict", framework="torch", layers=[])
    report = Report(model, [Finding("IC002", "info", "head", "deliberate"),
                            Finding("IC105", "warning", None, "chain shrinks", data={"x": float("nan")})])
    doc = sarif_document([report])
    validate_sarif_for_github(doc)
    res = doc["runs"][0]["results"]
    assert [r["level"] for r in res] == ["note", "warning"]
    assert res[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith("file:///")
    assert res[1]["properties"]["data"] == {"x": None}
    assert "logicalLocations" not in res[1]["locations"][0]


# ------------------------------------------------------------------------------------------ github
def test_github_escaping_of_percent_colon_comma_newlines():
    assert escape_data("50% done\r\nnext: a,b") == "50%25 done%0D%0Anext: a,b"
    assert escape_property("dir:x,y%\n") == "dir%3Ax%2Cy%25%0A"
    f = Finding("IC101", "warning", "enc.0:attn,q", "std 250% of expected,\ntoo: large", fix="use he, gain 2")
    line = github_line("models/v1,final:best.pt", f, "scale-too-large")
    assert line == ("::warning file=models/v1%2Cfinal%3Abest.pt,title=IC101 scale-too-large"
                    "::enc.0:attn,q: std 250%25 of expected,%0Atoo: large%0Afix: use he, gain 2")
    # one physical line per annotation, whatever the message holds
    assert "\n" not in line and "\r" not in line


def test_github_format_on_models(models):
    result = invoke(*models, "--format", "github")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    pattern = re.compile(r"^::(error|warning|notice) file=models/[ab]\.pt,title=IC\d{3} [a-z-]+::\S")
    assert all(pattern.match(line) for line in lines), lines
    assert any(line.startswith("::error file=models/a.pt,title=IC001 non-finite-weights::4: ") for line in lines)


def test_github_levels_and_clean_output():
    model = Model(path="m.pt", format="state_dict", framework="torch", layers=[])
    report = Report(model, [Finding("IC002", "info", "head", "x"), Finding("IC201", "warning", "fc", "y")])
    out = render_github([report], {})
    assert out.splitlines()[0].startswith("::notice ") and out.splitlines()[1].startswith("::warning ")
    assert render_github([report], {"quiet": True}).count("\n") == 1
    assert render_github([Report(model, [])], {}) == ""


# ------------------------------------------------------------------------------------------ markdown
def test_markdown_summary_for_a_pull_request(models):
    result = invoke(*models, "--format", "markdown")
    assert result.exit_code == 1
    text = result.stdout
    assert text.startswith("## initcheck: ❌ 4 errors, 0 warnings, 0 infos in 2 models")
    assert "### `models/a.pt`" in text and "### `models/b.pt`" in text
    rows = [line for line in text.splitlines() if line.startswith("| ❌ error |")]
    assert len(rows) == 4
    assert any("**IC001** non-finite-weights" in r and "| `4` |" in r for r in rows)
    assert text.count("<details>") == 2


def test_markdown_escapes_table_cells():
    model = Model(path="m.pt", format="state_dict", framework="torch", layers=[])
    report = Report(model, [Finding("IC201", "warning", "a|b", "x | y\nz <b>", fix="do|it")])
    text = render_markdown([report], {})
    row = next(line for line in text.splitlines() if line.startswith("| ⚠️ warning"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 5  # exactly 4 cells: every inner pipe is escaped
    assert "`a\\|b`" in row
    assert "x \\| y<br>z &lt;b&gt;" in row and "do\\|it" in row
    clean = render_markdown([Report(model, [])], {})
    assert clean.startswith("## initcheck: ✅")


# ------------------------------------------------------------------------------------------ json, statistics
def test_json_with_several_models(models):
    result = invoke(*models, "--format", "json")
    doc = json.loads(result.stdout)
    assert [m["source"]["path"] for m in doc["models"]] == models


def test_statistics_counts_per_rule(models):
    result = invoke(*models, "--statistics")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["2", "IC002", "[error]", "all-zero-weights"]
    assert sorted(line.split()[1] for line in lines) == ["IC001", "IC002", "IC003"]
    as_json = json.loads(invoke(*models, "--statistics", "--format", "json").stdout)
    assert {(r["rule"], r["count"]) for r in as_json} == {("IC002", 2), ("IC001", 1), ("IC003", 1)}


def test_statistics_function_respects_quiet():
    model = Model(path="m.pt", format="state_dict", framework="torch", layers=[])
    report = Report(model, [Finding("IC002", "info", "h", "x"), Finding("IC002", "error", "f", "y")])
    assert [(r["severity"], r["count"]) for r in statistics([report])] == [("error", 1), ("info", 1)]
    assert [(r["severity"], r["count"]) for r in statistics([report], {"quiet": True})] == [("error", 1)]


def test_output_file_written_atomically(models, tmp_path):
    out = tmp_path / "report.sarif"
    result = invoke(*models, "--format", "sarif", "--output", str(out))
    assert result.exit_code == 1 and result.stdout == ""
    validate_sarif_for_github(json.loads(out.read_text()))
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".initcheck-")]
