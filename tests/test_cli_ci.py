"""The check command in CI: exit codes with --fail-on levels, --exit-zero, --quiet, --no-color, several
paths, the pre-commit hook definition and the documented pytest recipe."""

from __future__ import annotations

import os
import re

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import initcheck.pipeline
from initcheck.cli import main
from initcheck.report import Finding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def save_model(path, zero=()):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))
    with torch.no_grad():
        for i in zero:
            m[i].weight.zero_()
    torch.save(m.state_dict(), path)
    return str(path)


def invoke(*args, **kwargs):
    return CliRunner().invoke(main, [*args, "--no-progress", "--isolated"], **kwargs)


@pytest.fixture
def findings_of(monkeypatch):
    """Make every model report exactly the given severities (one finding each), whatever the rules say."""

    def install(*severities):
        def fake_rules(model, rules, options=None):
            return [Finding("IC002", sev, model.layers[0].name, f"a {sev} finding") for sev in severities]

        monkeypatch.setattr(initcheck.pipeline, "run_rules", fake_rules)

    return install


@pytest.mark.parametrize("severities, fail_on, code", [
    ((), "info", 0),
    (("info",), "error", 0), (("info",), "warning", 0), (("info",), "info", 1), (("info",), "never", 0),
    (("warning",), "error", 0), (("warning",), "warning", 1), (("warning",), "info", 1),
    (("error",), "error", 1), (("error",), "warning", 1), (("error",), "never", 0),
    (("info", "warning"), "warning", 1),
])
def test_exit_codes_with_fail_on(tmp_path, findings_of, severities, fail_on, code):
    findings_of(*severities)
    model = save_model(tmp_path / "m.pt")
    result = invoke(model, "--fail-on", fail_on, "--format", "concise")
    assert result.exit_code == code, result.output
    assert result.stdout.count("IC002") == len(severities)


def test_default_fail_on_is_error_and_exit_zero(tmp_path, findings_of):
    findings_of("warning")
    model = save_model(tmp_path / "m.pt")
    assert invoke(model).exit_code == 0
    findings_of("error")
    assert invoke(model).exit_code == 1
    result = invoke(model, "--exit-zero", "--format", "concise")
    assert result.exit_code == 0 and "IC002 [error]" in result.stdout


def test_real_findings_fail(tmp_path):
    model = save_model(tmp_path / "m.pt", zero=(2,))
    result = invoke(model, "--select", "IC00", "--format", "concise")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == f"{model}:2: IC002 [error] 2.weight is all zeros, shape (32, 32)"


def test_quiet_is_silent_when_clean_and_hides_infos(tmp_path, findings_of):
    model = save_model(tmp_path / "m.pt")
    findings_of()
    for fmt in ("concise", "github"):
        result = invoke(model, "-q", "--format", fmt)
        assert result.exit_code == 0 and result.stdout == "", (fmt, result.stdout)
    table = invoke(model, "-q")
    assert table.exit_code == 0 and table.stdout == ""  # not even the summary line
    findings_of("info", "warning")
    result = invoke(model, "-q", "--format", "concise")
    assert result.stdout.splitlines() == [f"{model}:0: IC002 [warning] a warning finding"]


def test_no_color_and_never_color_when_piped(tmp_path, findings_of, monkeypatch):
    findings_of("error")
    model = save_model(tmp_path / "m.pt")
    piped = CliRunner().invoke(main, [model, "--no-progress", "--isolated"], color=True)
    assert not ANSI.search(piped.stdout)  # CliRunner's stdout is not a terminal
    monkeypatch.setattr("initcheck.cli._stdout_is_terminal",
                        lambda: not os.environ.get("NO_COLOR"))  # as if on a terminal
    colored = CliRunner().invoke(main, [model, "--no-progress", "--isolated"], color=True)
    assert ANSI.search(colored.stdout), "a terminal gets colors"
    plain = CliRunner().invoke(main, [model, "--no-progress", "--isolated", "--no-color"], color=True)
    assert not ANSI.search(plain.stdout)
    concise = CliRunner().invoke(main, [model, "--no-progress", "--isolated", "--format", "concise"], color=True)
    assert not ANSI.search(concise.stdout)  # machine formats never


def test_no_color_variable(monkeypatch):
    from initcheck.cli import _stdout_is_terminal

    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert _stdout_is_terminal()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not _stdout_is_terminal()


def test_several_paths_one_unreadable(tmp_path):
    good = save_model(tmp_path / "a.pt", zero=(2,))
    missing = str(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model at all")
    result = invoke(good, missing, str(tmp_path / "junk.pt"), "--select", "IC00", "--format", "concise")
    assert result.exit_code == 2  # a file could not be checked
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith("initcheck: error: ") for e in errors)
    assert errors[0] == f"initcheck: error: {missing}: no such file or directory"
    assert "Traceback" not in result.output
    assert f"{good}:2: IC002 [error]" in result.stdout  # the readable model is still reported


def test_update_baseline_without_baseline_and_bad_format(tmp_path):
    model = save_model(tmp_path / "m.pt")
    result = invoke(model, "--update-baseline")
    assert result.exit_code == 2 and "--update-baseline needs --baseline" in result.stderr
    assert invoke(model, "--format", "xml").exit_code == 2


def test_pre_commit_hook_definition():
    yaml = pytest.importorskip("yaml")
    with open(os.path.join(ROOT, ".pre-commit-hooks.yaml"), encoding="utf-8") as f:
        hooks = yaml.safe_load(f)
    (hook,) = hooks
    assert hook["id"] == "initcheck" and hook["language"] == "python"
    assert hook["entry"].split()[:2] == ["initcheck", "check"]
    assert hook.get("pass_filenames", True)
    pattern = re.compile(hook["files"])
    for name in ("model.pt", "ckpt/last.ckpt", "m.safetensors", "net.keras", "w.pth",
                 "hf/pytorch_model-00001-of-00002.bin"):
        assert pattern.search(name), name
    for name in ("train.py", "data.csv", "firmware.bin", "README.md"):
        assert not pattern.search(name), name
    # the entry's options are real options of the check command
    from initcheck.cli import check

    known = {opt for p in check.params for opt in getattr(p, "opts", [])}
    assert all(arg in known for arg in hook["entry"].split()[2:] if arg.startswith("-"))


def test_documented_pytest_recipe_runs(tmp_path):
    """The three-line test in docs/ci.md, run against a healthy and a broken model."""
    with open(os.path.join(ROOT, "docs", "ci.md"), encoding="utf-8") as f:
        text = f.read()
    recipe = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "assert_init_ok" in b)
    assert len([line for line in recipe.strip().splitlines() if line.strip()]) == 3

    def build(zero):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
        nn.init.kaiming_normal_(m[0].weight, nonlinearity="relu")
        nn.init.xavier_normal_(m[2].weight)
        if zero:
            with torch.no_grad():
                m[0].weight.zero_()
        return m

    ns = {"build_model": lambda: build(False)}
    exec(recipe, ns)
    ns["test_model_init"]()
    ns = {"build_model": lambda: build(True)}
    exec(recipe, ns)
    with pytest.raises(AssertionError, match=r"<Sequential>:0: IC002 \[error\]"):
        ns["test_model_init"]()
