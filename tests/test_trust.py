"""--trust gating: files that run code when loaded are refused without it, and their code never runs."""

from __future__ import annotations

import pickle

import pytest

from conftest import run_cli

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402


class CreatesFile:
    """Unpickling this calls open(path, "w"): a payload with a visible side effect."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _payload_files(tmp_path):
    """(file, marker) pairs: the marker appears only if the file's payload ran."""
    out = []
    for kind in ("zip", "legacy", "raw_pickle", "in_checkpoint"):
        marker = tmp_path / f"pwned_{kind}"
        f = tmp_path / f"evil_{kind}.pt"
        if kind == "zip":
            torch.save({"weight": torch.ones(2, 2), "x": CreatesFile(str(marker))}, f)
        elif kind == "legacy":
            torch.save({"weight": torch.ones(2, 2), "x": CreatesFile(str(marker))}, f,
                       _use_new_zipfile_serialization=False)
        elif kind == "raw_pickle":
            f.write_bytes(pickle.dumps(CreatesFile(str(marker)), protocol=4))
        else:
            torch.save({"state_dict": {"fc.weight": torch.ones(2, 2)}, "hook": CreatesFile(str(marker))}, f)
        assert not marker.exists()
        out.append((f, marker))
    return out


def _cli(*args):
    """In-process CLI run (fast); one test below runs the real command in a fresh interpreter."""
    from click.testing import CliRunner

    from initcheck.cli import main

    r = CliRunner().invoke(main, [*args, "--no-progress"])
    return r.exit_code, r.stdout, r.stderr


def test_payload_does_not_run_without_trust(tmp_path):
    for i, (f, marker) in enumerate(_payload_files(tmp_path)):
        if i == 0:
            p = run_cli(str(f))
            code, stdout, stderr = p.returncode, p.stdout, p.stderr
        else:
            code, stdout, stderr = _cli(str(f))
        assert code == 2, (f, stdout, stderr)
        assert not marker.exists(), f"{f.name}: the payload ran without --trust"
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        assert lines[0].startswith(f"initcheck: error: {f}: ")
        assert "--trust" in lines[0] and "execute code" in lines[0]
        assert "Traceback" not in stderr


def test_payload_runs_with_trust(tmp_path):
    """The control: the same files do run their payload with --trust (so the test above can fail)."""
    f, marker = _payload_files(tmp_path)[0]
    r = run_cli(str(f), "--trust")
    assert marker.exists()
    assert r.returncode in (0, 1, 2) and "Traceback" not in r.stderr


def _program_files(tmp_path):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    files = {
        "module": tmp_path / "whole.pt",
        "torchscript": tmp_path / "scripted.pt",
        "exported": tmp_path / "program.pt2",
    }
    torch.save(m, files["module"])
    torch.jit.save(torch.jit.script(m), str(files["torchscript"]))
    torch.export.save(torch.export.export(m, (torch.randn(1, 4),)), str(files["exported"]))
    return files


@pytest.mark.parametrize("kind,what", [("module", "nn.Module"), ("torchscript", "TorchScript"),
                                       ("exported", "torch.export")])
def test_programs_refused_with_one_line(tmp_path, kind, what):
    f = _program_files(tmp_path)[kind]
    code, stdout, stderr = _cli(str(f))
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    line = lines[0]
    assert line.startswith(f"initcheck: error: {f}: ")
    assert what in line and "execute" in line and "--trust" in line  # format, risk, flag
    assert stdout == ""


def test_program_refused_in_a_fresh_process(tmp_path):
    f = _program_files(tmp_path)["exported"]
    r = run_cli(str(f))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "--trust" in r.stderr


def test_programs_load_with_trust(tmp_path):
    import json

    for kind, f in _program_files(tmp_path).items():
        code, stdout, stderr = _cli(str(f), "--trust", "--format", "json")
        assert code in (0, 1), (kind, stderr)
        doc = json.loads(stdout)
        assert [layer["name"] for layer in doc["layers"]] == ["0", "2"], kind


def test_api_refuses_without_trust(tmp_path):
    import initcheck
    from initcheck.errors import UntrustedFormatError

    f = _program_files(tmp_path)["torchscript"]
    with pytest.raises(UntrustedFormatError):
        initcheck.check(str(f))
    assert initcheck.check(str(f), trust=True).layers[0].name == "0"


def test_torch_load_called_with_weights_only_true(tmp_path, monkeypatch):
    """weights_only=True is always explicit, so TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD-style defaults cannot flip it."""
    from initcheck.load import load

    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    torch.save({"fc.weight": torch.ones(3, 3)}, tmp_path / "sd.pt")
    load(str(tmp_path / "sd.pt"))
    f, marker = _payload_files(tmp_path)[0]
    with pytest.raises(Exception):
        load(str(f))
    assert calls and all(c is True for c in calls), calls
    assert not marker.exists()


def test_env_var_cannot_disable_weights_only(tmp_path):
    f, marker = _payload_files(tmp_path)[0]
    r = run_cli(str(f), env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "0"})
    assert r.returncode == 2 and not marker.exists(), r.stderr
