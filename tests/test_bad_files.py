"""Unreadable, truncated, random and mislabelled inputs: exit 2, one clear line, no traceback."""

from __future__ import annotations

import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from conftest import run_cli


def _st_bytes() -> bytes:
    from safetensors.numpy import save

    rng = np.random.default_rng(0)
    return save({"fc.weight": rng.standard_normal((16, 8)).astype(np.float32),
                 "fc.bias": np.zeros(16, np.float32)})


def _torch_bytes(tmp_path, legacy=False) -> bytes:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    p = tmp_path / ("_l.pt" if legacy else "_z.pt")
    torch.save({"fc.weight": torch.randn(64, 32), "fc.bias": torch.zeros(64)}, p,
               _use_new_zipfile_serialization=not legacy)
    return p.read_bytes()


def _short_record_zip(tmp_path) -> bytes:
    """A valid zip whose first tensor record holds half its bytes (torch.load(mmap=True) would not notice)."""
    src = tmp_path / "_src.pt"
    src.write_bytes(_torch_bytes(tmp_path))
    out = tmp_path / "_short.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/data/0"):
                data = data[: len(data) // 2]
            zout.writestr(info.filename, data)
    return out.read_bytes()


def _bad_header_st(kind: str) -> bytes:
    good = _st_bytes()
    (n,) = struct.unpack("<Q", good[:8])
    header = json.loads(good[8:8 + n])
    data = good[8 + n:]
    if kind == "offsets":
        header["fc.weight"]["data_offsets"] = [0, 10]
    elif kind == "dtype":
        header["fc.weight"]["dtype"] = "Q99"
    elif kind == "shape_type":
        header["fc.weight"]["shape"] = ["16", 8]
    elif kind == "offsets_type":
        header["fc.weight"]["data_offsets"] = [None, 512]
    raw = json.dumps(header).encode()
    if kind == "not_json":
        raw = b"{" + b"x" * 30
    return struct.pack("<Q", len(raw)) + raw + data


# name → (bytes factory, words the one-line message must contain (any of))
CASES = {
    "empty.pt": (lambda t: b"", ["empty"]),
    "empty.safetensors": (lambda t: b"", ["empty"]),
    "tiny.safetensors": (lambda t: b"\x01\x02\x03", ["bytes"]),
    "random.pt": (lambda t: np.random.default_rng(1).bytes(4096), ["not a model file"]),
    "random.safetensors": (lambda t: np.random.default_rng(2).bytes(4096), ["not a model file"]),
    "random_noext": (lambda t: np.random.default_rng(3).bytes(100_000), ["not a model file"]),
    "text.pt": (lambda t: b"this is not a checkpoint\n" * 20, ["text", "PyTorch"]),
    "text.safetensors": (lambda t: b"hello\n" * 50, ["text", "safetensors"]),
    "json.pt": (lambda t: b'{"weights": [1, 2, 3]}', ["JSON"]),
    "zip_of_docs.safetensors": (lambda t: _zip_of_docs(), ["zip"]),
    "truncated_header.safetensors": (lambda t: _st_bytes()[:40], ["truncated"]),
    "truncated_data.safetensors": (lambda t: _st_bytes()[:-7], ["truncated"]),
    "bad_offsets.safetensors": (lambda t: _bad_header_st("offsets"), ["data_offsets"]),
    "bad_dtype.safetensors": (lambda t: _bad_header_st("dtype"), ["dtype"]),
    "header_not_json.safetensors": (lambda t: _bad_header_st("not_json"), ["header"]),
    "shape_type.safetensors": (lambda t: _bad_header_st("shape_type"), ["invalid safetensors"]),
    "offsets_type.safetensors": (lambda t: _bad_header_st("offsets_type"), ["invalid safetensors"]),
    "truncated_zip_half.pt": (lambda t: (b := _torch_bytes(t))[: len(b) // 2], ["truncated", "damaged"]),
    "truncated_zip_tail.pt": (lambda t: _torch_bytes(t)[:-50], ["truncated", "damaged"]),
    "short_record.pt": (lambda t: _short_record_zip(t), ["shorter", "damaged"]),
    "truncated_legacy_head.pt": (lambda t: _torch_bytes(t, legacy=True)[:300], ["damaged", "truncated"]),
    "truncated_legacy_tail.pt": (lambda t: _torch_bytes(t, legacy=True)[:-20], ["damaged", "truncated"]),
    "list_pickle.pt": (lambda t: pickle.dumps([1, 2, 3], protocol=2), ["list"]),
    "ints_only.pt": (lambda t: _ints_only(t), ["floating-point"]),
}


def _zip_of_docs() -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not a model")
    return buf.getvalue()


def _ints_only(tmp_path) -> bytes:
    torch = pytest.importorskip("torch")
    p = tmp_path / "_ints.pt"
    torch.save({"ids": torch.arange(10), "mask": torch.ones(3, dtype=torch.bool)}, p)
    return p.read_bytes()


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    pytest.importorskip("safetensors")
    d = tmp_path_factory.mktemp("bad")
    for name, (make, _) in CASES.items():
        (d / name).write_bytes(make(d))
    (d / "no_models").mkdir()
    (d / "no_models" / "notes.txt").write_text("nothing here")
    (d / "index_missing_shard").mkdir()
    (d / "index_missing_shard" / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"fc.weight": "model-00001-of-00002.safetensors"}}))
    return d


def _invoke(path: str):
    from click.testing import CliRunner

    from initcheck.cli import main

    return CliRunner().invoke(main, [path, "--no-progress"])


def _assert_one_clear_line(stderr: str, path: str, words: list[str], expected_failure: bool = True) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    # the path given, or a file inside it (a directory's index names the index file)
    assert line.startswith(f"initcheck: error: {path}: ") or line.startswith(f"initcheck: error: {path}/"), line
    assert "Traceback" not in stderr, stderr
    if expected_failure:  # a known bad input is diagnosed, not caught as an internal failure
        assert "unexpected failure" not in line, line
    assert any(w.lower() in line.lower() for w in words), (words, line)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_file_exit_2_one_line(bad_dir, name):
    path = str(bad_dir / name)
    before = open(path, "rb").read()
    r = _invoke(path)
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert r.stdout == ""
    _assert_one_clear_line(r.stderr, path, CASES[name][1])
    assert open(path, "rb").read() == before  # never modified


@pytest.mark.parametrize("name,words", [("no_models", ["no model files"]),
                                        ("index_missing_shard", ["missing"]),
                                        ("does_not_exist.pt", ["no such file"])])
def test_bad_paths(bad_dir, name, words):
    path = str(bad_dir / name)
    r = _invoke(path)
    assert r.exit_code == 2
    _assert_one_clear_line(r.stderr, path, words)


def test_bad_files_in_a_fresh_process(bad_dir):
    """The real command: exit 2, one line, no traceback (no CliRunner in between)."""
    for name in ("empty.pt", "random.safetensors", "truncated_data.safetensors", "text.pt",
                 "truncated_zip_half.pt", "short_record.pt"):
        path = str(bad_dir / name)
        r = run_cli(path)
        assert r.returncode == 2, (name, r.stderr)
        _assert_one_clear_line(r.stderr, path, CASES[name][1])


def test_debug_shows_traceback_for_unexpected_errors(bad_dir, monkeypatch):
    """--debug is the only way to a traceback; without it an unexpected failure is still one line."""
    from click.testing import CliRunner

    import initcheck.pipeline as pipeline
    from initcheck.cli import main

    def boom(*a, **k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(pipeline, "analyze", boom)
    st = bad_dir / "ok.safetensors"
    st.write_bytes(_st_bytes())
    r = CliRunner().invoke(main, [str(st), "--no-progress"])
    assert r.exit_code == 2
    _assert_one_clear_line(r.stderr, str(st), ["simulated bug"], expected_failure=False)
    r = CliRunner().invoke(main, [str(st), "--no-progress", "--debug"])
    assert r.exit_code != 0 and isinstance(r.exception, RuntimeError)
