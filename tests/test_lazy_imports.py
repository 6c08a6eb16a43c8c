"""Frameworks are imported only when a file of theirs is opened (checked in fresh interpreters)."""

from __future__ import annotations

import json
import os

import pytest

from conftest import FIXTURES, run_python

HEAVY = ("torch", "tensorflow", "keras", "jax", "transformers", "safetensors")

PROBE = """
import json, sys
{body}
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r})
print(json.dumps(heavy))
"""


def imported_after(body: str) -> list[str]:
    r = run_python(PROBE.format(body=body, heavy=HEAVY))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_import_initcheck_imports_no_framework():
    assert imported_after("import initcheck; initcheck.__version__") == []


def test_help_imports_no_framework():
    body = """
from click.testing import CliRunner
from initcheck.cli import main
for args in (["--help"], ["check", "--help"], ["rules"], ["explain", "IC001"]):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, (args, r.output)
"""
    assert imported_after(body) == []


def test_safetensors_check_imports_no_framework():
    path = os.path.join(FIXTURES, "broken_cnn.safetensors")
    body = f"""
from click.testing import CliRunner
from initcheck.cli import main
for fmt in ("table", "json"):
    r = CliRunner().invoke(main, [{path!r}, "--format", fmt, "--no-progress"])
    assert r.exit_code == 1, r.output
import initcheck
rep = initcheck.check({path!r})
assert rep.summary()["layers"] == 8
"""
    assert imported_after(body) == []


def test_sharded_safetensors_directory_imports_no_framework(tmp_path):
    from safetensors.numpy import save_file
    import numpy as np

    rng = np.random.default_rng(0)
    save_file({"a.weight": rng.standard_normal((4, 3)).astype(np.float32)}, str(tmp_path / "m-1.safetensors"))
    save_file({"b.weight": rng.standard_normal((2, 4)).astype(np.float32)}, str(tmp_path / "m-2.safetensors"))
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a.weight": "m-1.safetensors", "b.weight": "m-2.safetensors"}}))
    body = f"""
import initcheck
rep = initcheck.check({str(tmp_path)!r})
assert [l.name for l in rep.layers] == ["a", "b"], [l.name for l in rep.layers]
"""
    assert imported_after(body) == []


def test_torch_file_imports_torch_but_not_tensorflow():
    pytest.importorskip("torch")
    path = os.path.join(FIXTURES, "healthy_mlp.pt")
    heavy = imported_after(f"import initcheck; initcheck.check({path!r})")
    assert "torch" in heavy
    assert not [m for m in heavy if m.split(".")[0] in ("tensorflow", "keras", "jax")], heavy


def test_bad_file_imports_no_framework(tmp_path):
    p = tmp_path / "junk.pt"
    p.write_bytes(b"definitely not a model" * 10)
    body = f"""
import initcheck
from initcheck.errors import InitcheckError
try:
    initcheck.check({str(p)!r})
except InitcheckError:
    pass
else:
    raise SystemExit("no error")
"""
    assert imported_after(body) == []
