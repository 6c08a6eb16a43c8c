"""[tool.initcheck] configuration: discovery, validation (unknown keys/codes fail), precedence of the CLI."""

from __future__ import annotations

import json
import os
import re

import pytest
from click.testing import CliRunner

from _faulty import save_model
from initcheck.cli import main
from initcheck.config import (Settings, apply_per_layer_ignores, discover, find_config, layer_ignored,
                              load_config, resolve)
from initcheck.errors import InitcheckError
from initcheck.report import Finding

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")




def run(args, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, [*args, "--no-progress"])
    finally:
        os.chdir(old)


def rules_in(result) -> set[tuple[str, str]]:
    doc = json.loads(result.stdout)
    return {(f["rule"], f["layer"]) for f in doc["findings"]}


def write(path, text):
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------ discovery
def test_find_config_walks_up_and_skips_pyproject_without_section(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.initcheck]\nignore = ['IC002']\n")
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    write(tmp_path / "a" / "pyproject.toml", "[project]\nname = 'x'\n")  # no section: skipped, like ruff
    assert find_config(inner) == tmp_path / "pyproject.toml"
    model = save_model(inner / "m.pt")
    assert discover([model]) == tmp_path / "pyproject.toml"


def test_discover_falls_back_to_cwd(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    model = save_model(outside / "m.pt")
    project = tmp_path / "project"
    project.mkdir()
    write(project / "pyproject.toml", "[tool.initcheck]\nfail-on = 'warning'\n")
    monkeypatch.chdir(project)
    assert discover([model]) == project / "pyproject.toml"


# ------------------------------------------------------------------------------------------ validation
def test_every_key_parses(tmp_path):
    cfg = write(tmp_path / "pyproject.toml", """
[tool.initcheck]
select = ["IC0", "IC1"]
ignore = ["IC104"]
extend-select = ["IC2"]
extend-ignore = ["IC3"]
fail-on = "warning"
activation = "relu"
model = "mypkg.models:build"
input-shape = [1, 3, 32, 32]
format = "concise"
baseline = "ci/baseline.json"

[tool.initcheck.per-layer-ignores]
"head.*" = ["IC002"]
"encoder.*.attn" = ["IC1", "IC201"]

[tool.initcheck.per-layer-activations]
"decoder.*" = "gelu"
"gate" = "sigmoid"
""")
    s = load_config(cfg)
    assert s.select == ["IC0", "IC1"] and s.ignore == ["IC104"]
    assert s.extend_select == ["IC2"] and s.extend_ignore == ["IC3"]
    assert s.fail_on == "warning" and s.activation == "relu" and s.model_factory == "mypkg.models:build"
    assert s.input_shape == (1, 3, 32, 32) and s.format == "concise"
    assert s.per_layer_ignores == {"head.*": ["IC002"], "encoder.*.attn": ["IC1", "IC201"]}
    assert s.activation_overrides == {"decoder.*": "gelu", "gate": "sigmoid"}
    assert s.baseline == str(tmp_path / "ci" / "baseline.json")  # relative to the config file
    kwargs = s.check_kwargs()
    assert kwargs["select"] == ["IC0", "IC1", "IC2"] and kwargs["ignore"] == ["IC104", "IC3"]
    assert kwargs["activation_overrides"] == {"decoder.*": "gelu", "gate": "sigmoid"}


@pytest.mark.parametrize("body, needle", [
    ("selekt = ['IC001']", "'selekt'"),
    ("fail_on = 'warning'", "did you mean 'fail-on'"),
    ("select = ['IC999']", "'IC999'"),
    ("ignore = ['XY']", "'XY'"),
    ("fail-on = 'sometimes'", "'sometimes'"),
    ("select = 3", "'select' must be a list"),
    ("input-shape = [1, -3]", "'input-shape'"),
    ("activation = 'relu7'", "'relu7'"),
    ("format = 'xml'", "'xml'"),
    ("trust = true", "'trust' cannot be set"),
    ("[tool.initcheck.per-layer-ignores]\n'fc*' = ['IC0042']", "'IC0042'"),
    ("[tool.initcheck.per-layer-activations]\n'fc*' = 'sinusoid'", "'sinusoid'"),
])
def test_bad_config_is_an_error_naming_the_problem(tmp_path, body, needle):
    cfg = write(tmp_path / "pyproject.toml", "[tool.initcheck]\n" + body + "\n")
    with pytest.raises(InitcheckError) as err:
        load_config(cfg)
    assert needle in str(err.value)
    assert str(cfg) in str(err.value)


def test_unknown_key_via_cli_exits_2_with_one_line(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.initcheck]\nignroe = ['IC002']\n")
    model = save_model(tmp_path / "m.pt")
    result = run([model, "--format", "json"], tmp_path)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("initcheck: error: ")
    assert "'ignroe'" in lines[0] and "Traceback" not in result.output


def test_invalid_toml_and_missing_config_file(tmp_path):
    model = save_model(tmp_path / "m.pt")
    write(tmp_path / "bad.toml", "select = [\n")
    result = run([model, "--config", str(tmp_path / "bad.toml")], tmp_path)
    assert result.exit_code == 2 and "invalid TOML" in result.stderr
    result = run([model, "--config", str(tmp_path / "nope.toml")], tmp_path)
    assert result.exit_code == 2 and "config file not found" in result.stderr


def test_cli_code_typo_is_an_error(tmp_path):
    model = save_model(tmp_path / "m.pt")
    result = run([model, "--extend-select", "IC9"], tmp_path)
    assert result.exit_code == 2 and "'IC9'" in result.stderr


# ------------------------------------------------------------------------------------------ precedence
def test_resolve_precedence():
    file = Settings(select=["IC0"], extend_select=["IC1"], ignore=["IC003"], fail_on="warning", format="concise",
                    activation="tanh")
    s = resolve(file, {})
    assert s.effective_select() == ["IC0", "IC1"] and s.fail_on == "warning" and s.format == "concise"
    s = resolve(file, {"select": ["IC002"], "fail_on": "error", "format": "json", "activation": "relu"})
    assert s.effective_select() == ["IC002"]  # --select replaces select and extend-select
    assert (s.fail_on, s.format, s.activation) == ("error", "json", "relu")
    s = resolve(file, {"extend_select": ["IC2"], "ignore": ["IC001"], "extend_ignore": ["IC105"]})
    assert s.effective_select() == ["IC0", "IC1", "IC2"]
    assert s.effective_ignore() == ["IC001", "IC105"]  # --ignore replaces the file's ignore
    assert file.ignore == ["IC003"]  # the file's settings are not mutated


def test_config_applies_and_cli_overrides(tmp_path):
    model = save_model(tmp_path / "m.pt")
    write(tmp_path / "pyproject.toml", "[tool.initcheck]\nselect = ['IC00']\nignore = ['IC002']\n")
    from_file = run([model, "--format", "json"], tmp_path)
    assert ("IC001", "4") in rules_in(from_file)
    assert not any(rule == "IC002" for rule, _ in rules_in(from_file))
    # the command line wins: --ignore replaces the file's ignore
    overridden = run([model, "--format", "json", "--ignore", "IC001"], tmp_path)
    assert ("IC002", "2") in rules_in(overridden)
    assert not any(rule == "IC001" for rule, _ in rules_in(overridden))
    # --isolated: no file at all
    isolated = run([model, "--format", "json", "--isolated"], tmp_path)
    assert {("IC001", "4"), ("IC002", "2")} <= rules_in(isolated)


def test_fail_on_and_format_from_config_with_cli_override(tmp_path):
    model = save_model(tmp_path / "m.pt", zero=(), nan=())
    write(tmp_path / "pyproject.toml", "[tool.initcheck]\nselect = ['IC00']\nformat = 'concise'\n")
    result = run([model], tmp_path)
    assert result.exit_code == 0 and result.stdout.startswith("All checks passed")
    result = run([model, "--format", "json"], tmp_path)
    assert json.loads(result.stdout)["findings"] == []


def test_explicit_config_file_top_level_keys(tmp_path):
    model = save_model(tmp_path / "m.pt")
    other = write(tmp_path / "ci.toml", "ignore = ['IC001', 'IC002']\n")
    write(tmp_path / "pyproject.toml", "[tool.initcheck]\nselect = ['IC001']\n")  # not used with --config
    result = run([model, "--format", "json", "--config", str(other)], tmp_path)
    found = rules_in(result)
    assert not any(rule in ("IC001", "IC002") for rule, _ in found)


def test_per_layer_ignores_by_glob(tmp_path):
    model = save_model(tmp_path / "m.pt", zero=(2, 4), nan=())
    write(tmp_path / "pyproject.toml", "[tool.initcheck]\nselect = ['IC00']\n"
                                       "[tool.initcheck.per-layer-ignores]\n'[2]' = ['IC00']\n")
    result = run([model, "--format", "json"], tmp_path)
    assert rules_in(result) == {("IC002", "4")}


def test_layer_ignored_semantics():
    table = {"encoder.*": ["IC1"], "head": ["ALL"]}
    assert layer_ignored("encoder.3.fc1", "IC101", table)
    assert not layer_ignored("encoder.3.fc1", "IC002", table)
    assert layer_ignored("head", "IC002", table)
    assert not layer_ignored("head2", "IC002", table)
    assert not layer_ignored(None, "IC101", table)
    from initcheck.report import Report
    from initcheck.model import Model

    report = Report(Model("m", "state_dict", "torch", []), [Finding("IC101", "warning", "encoder.0", "x"),
                                                            Finding("IC002", "error", "encoder.0", "y")])
    dropped = apply_per_layer_ignores(report, table)
    assert [f.rule for f in dropped] == ["IC101"] and [f.rule for f in report.findings] == ["IC002"]


def test_per_layer_activations_reach_the_analysis(tmp_path):
    model = save_model(tmp_path / "m.pt", zero=(), nan=())
    write(tmp_path / "pyproject.toml", "[tool.initcheck.per-layer-activations]\n'[02]' = 'tanh'\n")
    doc = json.loads(run([model, "--format", "json"], tmp_path).stdout)
    acts = {layer["name"]: layer["activation"] for layer in doc["layers"]}
    assert acts["0"] == "tanh" and acts["2"] == "tanh"
    assert acts["4"] != "tanh"


def test_documented_configuration_example_is_valid(tmp_path):
    """The example in docs/configuration.md is loaded as written: it must stay valid."""
    with open(os.path.join(DOCS, "configuration.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/configuration.md has no toml example"
    for block in blocks:
        if "[tool.initcheck]" in block:
            load_config(write(tmp_path / "pyproject.toml", block))
