"""Baselines: recorded findings are accepted, new ones fail, fixed ones show up as stale."""

from __future__ import annotations

import json
import os

import torch
import torch.nn as nn
from click.testing import CliRunner

from initcheck.baseline import Baseline, describe_stale
from initcheck.cli import main
from initcheck.model import Model
from initcheck.report import Finding, Report


def save_model(path, zero=(2,), width=64):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(32, width), nn.ReLU(), nn.Linear(width, 64), nn.ReLU(), nn.Linear(64, 64),
                      nn.ReLU(), nn.Linear(64, 64))
    with torch.no_grad():
        for i in zero:
            m[i].weight.zero_()
    torch.save(m.state_dict(), path)
    return os.path.basename(str(path))  # tests run in tmp_path: the name as a user would type it


def invoke(*args):
    return CliRunner().invoke(main, [*args, "--no-progress", "--isolated", "--select", "IC00"])


def test_update_then_only_new_findings_fail(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = save_model(tmp_path / "m.pt", zero=(2,))
    base = "baseline.json"
    first = invoke(model, "--baseline", base, "--update-baseline", "--format", "concise")
    assert first.exit_code == 0, first.output
    assert "1 entries recorded" in first.stderr
    doc = json.loads((tmp_path / base).read_text())
    assert doc["initcheck_baseline"] == 1
    assert [(e["model"], e["rule"], e["layer"], e["shape"]) for e in doc["entries"]] == \
        [("m.pt", "IC002", "2", [64, 64])]

    same = invoke(model, "--baseline", base, "--format", "concise")
    assert same.exit_code == 0
    assert same.stdout.splitlines() == ["All checks passed (1 model).", "1 finding accepted by the baseline."]

    save_model(tmp_path / "m.pt", zero=(2, 4))  # a new problem appears
    new = invoke(model, "--baseline", base, "--format", "concise")
    assert new.exit_code == 1
    assert [line for line in new.stdout.splitlines() if "IC0" in line] == \
        ["m.pt:4: IC002 [error] 4.weight is all zeros, shape (64, 64)"]


def test_fixed_finding_is_reported_stale(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = save_model(tmp_path / "m.pt", zero=(2, 4))
    assert invoke(model, "--baseline", "b.json", "--update-baseline").exit_code == 0
    save_model(tmp_path / "m.pt", zero=(4,))  # layer 2 was fixed
    result = invoke(model, "--baseline", "b.json", "--format", "concise")
    assert result.exit_code == 0
    assert "1 stale entry no longer occur" in result.stderr
    assert "m.pt:2: IC002 (shape 64x64)" in result.stderr
    quiet = invoke(model, "--baseline", "b.json", "--format", "concise", "--quiet")
    assert quiet.stderr == "" and quiet.stdout == ""
    # refreshing drops the stale entry
    assert invoke(model, "--baseline", "b.json", "--update-baseline").exit_code == 0
    entries = json.loads((tmp_path / "b.json").read_text())["entries"]
    assert [(e["layer"], e["rule"]) for e in entries] == [("4", "IC002")]


def test_shape_is_part_of_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = save_model(tmp_path / "m.pt", zero=(2,), width=64)
    invoke(model, "--baseline", "b.json", "--update-baseline")
    save_model(tmp_path / "m.pt", zero=(2,), width=48)  # layer 2 is now 64x48: not the accepted finding
    result = invoke(model, "--baseline", "b.json", "--format", "concise")
    assert result.exit_code == 1
    assert "m.pt:2: IC002 [error]" in result.stdout
    assert "stale" in result.stderr


def test_baseline_paths_are_relative_to_the_baseline_file(tmp_path, monkeypatch):
    (tmp_path / "ci").mkdir()
    (tmp_path / "models").mkdir()
    save_model(tmp_path / "models" / "m.pt")
    monkeypatch.chdir(tmp_path)
    assert invoke("models/m.pt", "--baseline", "ci/b.json", "--update-baseline").exit_code == 0
    entries = json.loads((tmp_path / "ci" / "b.json").read_text())["entries"]
    assert entries[0]["model"] == "../models/m.pt"
    monkeypatch.chdir(tmp_path / "models")  # another working directory, same files
    assert invoke("m.pt", "--baseline", "../ci/b.json").exit_code == 0


def test_update_keeps_entries_of_models_not_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = save_model(tmp_path / "a.pt", zero=(2,))
    b = save_model(tmp_path / "b.pt", zero=(4,))
    invoke(a, b, "--baseline", "b.json", "--update-baseline")
    save_model(tmp_path / "a.pt", zero=())
    invoke(a, "--baseline", "b.json", "--update-baseline")
    entries = json.loads((tmp_path / "b.json").read_text())["entries"]
    assert [(e["model"], e["layer"]) for e in entries] == [("b.pt", "4")]
    # checking only a.pt does not call b.pt's entries stale
    result = invoke(a, "--baseline", "b.json")
    assert result.exit_code == 0 and "stale" not in result.stderr


def test_missing_or_malformed_baseline_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = save_model(tmp_path / "m.pt")
    missing = invoke(model, "--baseline", "nope.json")
    assert missing.exit_code == 2
    assert missing.stderr.strip() == "initcheck: error: nope.json: baseline file not found " \
                                     "(create it with --update-baseline)"
    (tmp_path / "bad.json").write_text('{"entries": 3}')
    assert invoke(model, "--baseline", "bad.json").exit_code == 2
    assert invoke(model, "--update-baseline").exit_code == 2


def test_keys_are_counted(tmp_path):
    model = Model(path="<net>", format="module", framework="torch", layers=[])
    two = [Finding("IC001", "error", "fc", "weight has NaN"), Finding("IC001", "error", "fc", "bias has NaN")]
    base = Baseline(str(tmp_path / "b.json"))
    base.update([Report(model, [two[0]])])  # only one of the two accepted
    report = Report(model, list(two))
    result = base.apply(report)
    assert len(result.suppressed) == 1 and len(report.findings) == 1 and result.stale == []
    base.update([Report(model, list(two))])
    base.save()
    loaded = Baseline.load(str(tmp_path / "b.json"))
    fewer = Report(model, [two[0]])
    result = loaded.apply(fewer)
    assert fewer.findings == [] and len(result.stale) == 1
    assert describe_stale(result.stale[0]) == "<net>:fc: IC001"
    assert os.path.exists(tmp_path / "b.json")
