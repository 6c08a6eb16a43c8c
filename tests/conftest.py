"""Shared helpers for the test suite (generic: any test module may use them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")
DOCS = os.path.join(ROOT, "docs")


@pytest.fixture(scope="session")
def fixtures_dir() -> str:
    return FIXTURES


def run_cli(*args: str, cwd: str | None = None, env: dict | None = None, timeout: int = 300):
    """Run ``python -m initcheck ARGS`` in a fresh interpreter; returns the CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.setdefault("COLUMNS", "160")
    full_env["PYTHONPATH"] = ROOT + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "initcheck", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout)


def run_python(code: str, timeout: int = 300):
    """Run a snippet in a fresh interpreter with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)


def cli_json(*args: str) -> dict:
    """Run the CLI in-process with --format json; returns (exit code, parsed document)."""
    from click.testing import CliRunner

    from initcheck.cli import main

    result = CliRunner().invoke(main, [*args, "--format", "json", "--no-progress"])
    assert result.exit_code in (0, 1), (result.exit_code, result.output, result.exception)
    return json.loads(result.stdout)


def layer_summary(model) -> dict[str, tuple]:
    """name → (kind, shape, fan_in, fan_out) of a loaded Model, for comparing loaders."""
    return {layer.name: (layer.kind, tuple(layer.shape), layer.fan_in, layer.fan_out) for layer in model.layers}


def tensor_values(model) -> dict[str, np.ndarray]:
    """Tensor name → float64 values of every parameter of a loaded Model (weights and biases)."""
    out = {}
    for layer in model.layers:
        for p in layer.params:
            out[p.name] = np.asarray(p.tensor.numpy(), dtype=np.float64)
    return out


def assert_same_model(a, b, *, kinds: bool = True, order: bool = False) -> None:
    """Same layer names (and order if asked), kinds, shapes, fans and tensor values."""
    sa, sb = layer_summary(a), layer_summary(b)
    if order:
        assert list(sa) == list(sb)
    assert set(sa) == set(sb), (sorted(set(sa) ^ set(sb)))
    for name in sa:
        ka, kb = sa[name], sb[name]
        if kinds:
            assert ka == kb, (name, ka, kb)
        else:
            assert ka[1] == kb[1], (name, ka, kb)
    va, vb = tensor_values(a), tensor_values(b)
    assert set(va) == set(vb)
    for name in va:
        np.testing.assert_array_equal(va[name], vb[name], err_msg=name)
