"""Issue 10's "Why", item by item: each test failed on the main branch before the hardening work.

The hostile files themselves (payloads, bombs, escapes, FIFOs, malformed headers) are in the corpus of
tests/test_hardening_corpus.py; here are the behaviours around them: exit codes, one-line messages,
folders of models, strict safetensors parsing, writes, and the smaller items a new user hit.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, run_cli

st = pytest.importorskip("safetensors.numpy")


def _save(path, scale=0.18, seed=0, shape=(64, 32), dtype=np.float32, **extra):
    rng = np.random.default_rng(seed)
    tensors = {"fc.weight": (rng.standard_normal(shape) * scale).astype(dtype), **extra}
    st.save_file(tensors, str(path))
    return str(path)


def _invoke(*args):
    from click.testing import CliRunner

    from initcheck.cli import main

    return CliRunner().invoke(main, [*args, "--no-progress"] if args and args[0] not in ("rules", "fix") else list(args))


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("initcheck: error: "), lines[0]
    assert "Traceback" not in stderr and "unexpected failure" not in stderr
    return lines[0]


# ------------------------------------------------------------------------------------- strict safetensors
def _header_file(tmp_path, name, raw: bytes, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return str(p)


E28 = b'"a":{"dtype":"F32","shape":[7],"data_offsets":[0,28]}'
STRICT_CASES = {  # name → (header JSON, data): the safetensors library rejects every one
    "duplicate_key": (b'{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},'
                      b'"a":{"dtype":"F32","shape":[3],"data_offsets":[16,28]}}', bytes(28)),
    "metadata_number": (b'{"__metadata__":5,' + E28 + b'}', bytes(28)),
    "metadata_list": (b'{"__metadata__":["x"],' + E28 + b'}', bytes(28)),
    "metadata_int_value": (b'{"__metadata__":{"k":1},' + E28 + b'}', bytes(28)),
    "metadata_nested": (b'{"__metadata__":{"k":{"a":"b"}},' + E28 + b'}', bytes(28)),
    "trailing_bytes": (b'{' + E28 + b'}', bytes(32)),
    "hole": (b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
             b'"b":{"dtype":"F32","shape":[3],"data_offsets":[16,28]}}', bytes(28)),
    "overlap": (b'{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},'
                b'"b":{"dtype":"F32","shape":[4],"data_offsets":[12,28]}}', bytes(28)),
    "negative_zero": (b'{"a":{"dtype":"F32","shape":[7],"data_offsets":[-0,28]}}', bytes(28)),
    "float_offset": (b'{"a":{"dtype":"F32","shape":[7],"data_offsets":[0,2.8e1]}}', bytes(28)),
    "lone_surrogate": (b'{"__metadata__":{"k":"\\ud800"},' + E28 + b'}', bytes(28)),
    "nan": (b'{"__metadata__":{"k":NaN},' + E28 + b'}', bytes(28)),
    "overflowing_shape": (b'{"z":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]},'
                          + E28 + b'}', bytes(28)),
    "deep": (b'{"__metadata__":' + b"[" * 100_000 + b"]" * 100_000 + b'}', b""),
}


@pytest.mark.parametrize("case", sorted(STRICT_CASES))
def test_safetensors_as_strict_as_the_library(tmp_path, case):
    from safetensors import safe_open

    raw, data = STRICT_CASES[case]
    path = _header_file(tmp_path, f"{case}.safetensors", raw, data)
    with pytest.raises(Exception):
        with safe_open(path, framework="np") as f:
            [f.get_tensor(k) for k in f.keys()]
    r = _invoke(path)
    assert r.exit_code == 2, r.output
    line = _one_error_line(r.stderr)
    assert path in line


def test_library_accepts_what_we_accept(tmp_path):
    """The reverse direction on legal oddities: null metadata, zero-size tensors, entries out of order."""
    raw = (b'{"__metadata__":null,"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},'
           b'"b":{"dtype":"F32","shape":[3],"data_offsets":[16,28]},'
           b'"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}')
    path = _header_file(tmp_path, "odd.safetensors", raw, np.arange(7, dtype="<f4").tobytes())
    from initcheck.frameworks.safetensors import read_header

    header, _ = read_header(path)
    assert set(header) == {"__metadata__", "z", "a", "b"}


# ------------------------------------------------------------------------------------- folders and shards
def test_folder_of_separate_models_is_checked_file_by_file(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    _save(folder / "good.safetensors", scale=0.177, seed=1)
    _save(folder / "broken.safetensors", scale=10.0, seed=2)
    r = _invoke(str(folder), "--format", "json")
    assert r.exit_code == 1, r.output  # the worst of the two: the broken model's error
    doc = json.loads(r.stdout)
    paths = sorted(os.path.basename(m["source"]["path"]) for m in doc["models"])
    assert paths == ["broken.safetensors", "good.safetensors"]


def test_shard_named_files_with_the_same_tensors_are_an_error(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    _save(folder / "model-00001-of-00002.safetensors", seed=1)
    _save(folder / "model-00002-of-00002.safetensors", seed=2)
    r = _invoke(str(folder))
    assert r.exit_code == 2
    assert "two shards" in _one_error_line(r.stderr)


def test_shards_named_as_one_model_are_one_model(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    rng = np.random.default_rng(0)
    st.save_file({"a.weight": (rng.standard_normal((32, 16)) * 0.25).astype(np.float32)},
                 str(folder / "model-00001-of-00002.safetensors"))
    st.save_file({"b.weight": (rng.standard_normal((8, 32)) * 0.18).astype(np.float32)},
                 str(folder / "model-00002-of-00002.safetensors"))
    r = _invoke(str(folder), "--format", "json")
    assert r.exit_code in (0, 1), r.output
    doc = json.loads(r.stdout)
    assert doc["source"]["format"] == "safetensors_sharded"


def test_index_lists_each_shard_once(tmp_path):
    from initcheck.frameworks.safetensors import read_index

    folder = tmp_path / "m"
    folder.mkdir()
    _save(folder / "model-00001-of-00001.safetensors")
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"fc.weight": "model-00001-of-00001.safetensors",
                                                "fc.bias": "./model-00001-of-00001.safetensors"}}))
    assert len(read_index(str(index))) == 1


def test_hugging_face_cache_snapshot_symlinks_are_followed(tmp_path):
    """HF's cache keeps snapshot files as symlinks into the entry's blobs/: inside, not an escape."""
    entry = tmp_path / "models--org--name"
    (entry / "blobs").mkdir(parents=True)
    snap = entry / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    _save(entry / "blobs" / "deadbeef")
    os.symlink("../../blobs/deadbeef", snap / "model.safetensors")
    r = _invoke(str(snap), "--format", "json")
    assert r.exit_code in (0, 1), r.stderr


# ------------------------------------------------------------------------------------- crashes and exits
# fingerprint.py warns on the overflow (numpy RuntimeWarning): the lead's file, reported in issue 10's notes
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_overflowing_statistics_write_null_not_a_traceback(tmp_path):
    path = _save(tmp_path / "huge.safetensors", scale=1e200, dtype=np.float64)
    for fmt in ("json", "sarif", "table"):
        r = _invoke(path, "--format", fmt)
        assert r.exit_code in (0, 1), (fmt, r.output, r.exception)
        if fmt == "json":
            json.loads(r.stdout)  # strict JSON: NaN/Infinity would not parse as standard JSON with null


@pytest.mark.parametrize("flag", ["-o", "--plot", "--html", "--baseline"])
def test_output_into_a_missing_folder_is_exit_2_one_line(tmp_path, flag):
    if flag == "--plot":
        pytest.importorskip("matplotlib")
    path = _save(tmp_path / "m.safetensors")
    target = str(tmp_path / "missing" / "out.file")
    extra = ["--update-baseline"] if flag == "--baseline" else []
    r = _invoke(path, flag, target, *extra)
    assert r.exit_code == 2, (r.output, r.exception)
    assert target in _one_error_line(r.stderr)


def test_output_under_a_file_is_exit_2_one_line(tmp_path):
    path = _save(tmp_path / "m.safetensors")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    r = _invoke(path, "-o", str(blocker / "out.json"))
    assert r.exit_code == 2
    _one_error_line(r.stderr)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_into_a_read_only_folder_is_exit_2_one_line(tmp_path):
    path = _save(tmp_path / "m.safetensors")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = _invoke(path, "-o", str(ro / "out.json"))
    finally:
        ro.chmod(0o755)
    assert r.exit_code == 2
    _one_error_line(r.stderr)


@pytest.mark.parametrize("name, body", [("exits_on_import", "import sys\nsys.exit(0)\n"),
                                        ("raises_on_import", "raise RuntimeError('boom')\n"),
                                        ("exits_when_called", "def f():\n    import sys\n    sys.exit(0)\n")])
def test_model_module_that_exits_or_raises_is_exit_2_naming_it(tmp_path, monkeypatch, name, body):
    pytest.importorskip("torch")
    path = _save(tmp_path / "m.safetensors")
    module = f"usermod_ic_{name}"
    (tmp_path / f"{module}.py").write_text(body)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    r = _invoke(path, "--model", f"{module}:f")
    assert r.exit_code == 2, (r.output, r.exception)
    assert module in _one_error_line(r.stderr)


def test_ctrl_c_is_exit_130_one_line(tmp_path):
    pytest.importorskip("torch")
    path = _save(tmp_path / "m.safetensors")
    (tmp_path / "slowmod_ic.py").write_text("import time\nopen('STARTED', 'w').close()\ntime.sleep(60)\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "initcheck", path, "--model", "slowmod_ic:f", "--no-progress"],
                            cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "STARTED").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in _one_error_line(err)


def test_usage_errors_are_one_line(tmp_path):
    path = _save(tmp_path / "m.safetensors")
    r = _invoke(path, "--format", "bogus")
    assert r.exit_code == 2
    _one_error_line(r.stderr)
    r = _invoke(path, "--config", str(tmp_path))  # a directory where a file is expected
    assert r.exit_code == 2
    _one_error_line(r.stderr)


def test_multi_line_framework_errors_become_one_line(tmp_path):
    """torch's UnpicklingError spans many lines; with --trust a damaged pickle reaches it."""
    pytest.importorskip("torch")
    import pickle

    p = tmp_path / "bad.pt"
    p.write_bytes(pickle.dumps({"a": 1}, protocol=2)[:-3] + b"\x00\x00")
    r = run_cli(str(p), "--trust", "--no-progress")
    assert r.returncode == 2
    _one_error_line(r.stderr)


def test_any_multi_line_message_is_printed_as_one_line(tmp_path, monkeypatch):
    """Whatever text an exception carries (torch's UnpicklingError has a dozen lines), stderr gets one."""
    import initcheck.load
    from initcheck.errors import InitcheckError

    def failing(*args, **kwargs):
        raise InitcheckError("cannot load: Weights only load failed.\n(1) In PyTorch 2.6 ...\n(2) ...", None)

    monkeypatch.setattr(initcheck.load, "load_path", failing)
    path = _save(tmp_path / "m.safetensors")
    r = _invoke(path)
    assert r.exit_code == 2
    assert "(2)" in _one_error_line(r.stderr)


def test_tensorflow_logs_never_reach_stderr(tmp_path):
    """A .keras file Keras cannot load: the error is the only stderr line, no absl/oneDNN banner."""
    pytest.importorskip("keras")
    sys.path.insert(0, os.path.join(ROOT, "tests", "hostile"))
    from build_corpus import keras_archive, keras_config

    cfg = keras_config(None)
    cfg["config"]["layers"][-1]["class_name"] = "NoSuchLayer"
    p = tmp_path / "bad.keras"
    p.write_bytes(keras_archive([("config.json", cfg)]))
    r = run_cli(str(p), "--no-progress")
    assert r.returncode == 2, r.stderr
    line = _one_error_line(r.stderr)
    assert str(p) in line


# ------------------------------------------------------------------------------------- writes
def _fixable(tmp_path, mode=None):
    path = _save(tmp_path / "m.safetensors", scale=10.0, seed=3, shape=(128, 64))
    if mode is not None:
        os.chmod(path, mode)
    return path


def test_fix_output_keeps_the_input_mode_not_0600(tmp_path):
    pytest.importorskip("torch")
    path = _fixable(tmp_path, 0o640)
    out = tmp_path / "fixed.safetensors"
    r = _invoke("fix", path, "-o", str(out), "--seed", "0")
    assert r.exit_code == 0, (r.output, r.exception)
    assert (os.stat(out).st_mode & 0o777) == 0o640
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".initcheck-")]


def test_reports_get_the_umask_mode(tmp_path):
    path = _save(tmp_path / "m.safetensors")
    out = tmp_path / "report.json"
    old = os.umask(0o022)
    try:
        r = _invoke(path, "--format", "json", "-o", str(out))
    finally:
        os.umask(old)
    assert r.exit_code in (0, 1)
    assert (os.stat(out).st_mode & 0o777) == 0o644


def test_failed_write_names_the_output_not_the_input(tmp_path):
    pytest.importorskip("torch")
    path = _fixable(tmp_path)
    out = str(tmp_path / "missing" / "fixed.safetensors")
    r = _invoke("fix", path, "-o", out)
    assert r.exit_code == 2
    line = _one_error_line(r.stderr)
    assert out in line and f"error: {path}:" not in line


def test_sigterm_during_a_write_leaves_no_temp_file(tmp_path):
    code = f"""
import os, sys, time
sys.path.insert(0, {ROOT!r})
from initcheck.cli import _on_sigterm
from initcheck.io import atomic_output
_on_sigterm()
def write(tmp):
    with open(tmp, 'wb') as f:
        f.write(b'x' * 1000)
    open({str(tmp_path / 'WRITING')!r}, 'w').close()
    time.sleep(60)
atomic_output({str(tmp_path / 'out.bin')!r}, write)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (tmp_path / "WRITING").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".initcheck-")]
    assert not (tmp_path / "out.bin").exists()


def test_interrupted_write_removes_its_temp_file(tmp_path):
    from initcheck.io import atomic_output

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_output(str(tmp_path / "out.bin"), write)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------- also seen
def test_nested_checkpoint_is_found(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    p = tmp_path / "ckpt.pt"
    torch.save({"model": {"state_dict": {"fc.weight": torch.randn(64, 32) * 0.17, "fc.bias": torch.zeros(64)}},
                "optimizer": {"state": {}, "param_groups": []}, "epoch": 3}, p)
    r = _invoke(str(p), "--format", "json")
    assert r.exit_code in (0, 1), r.output
    doc = json.loads(r.stdout)
    assert doc["source"]["checkpoint_key"] == "model.state_dict"


def test_activation_with_a_parameter_is_refused_not_dropped(tmp_path):
    path = _save(tmp_path / "m.safetensors")
    r = _invoke(path, "--activation", "leaky_relu:0.2")
    assert r.exit_code == 2
    assert "leaky_relu" in _one_error_line(r.stderr)


def test_quiet_prints_nothing_on_a_clean_model(tmp_path):
    path = _save(tmp_path / "m.safetensors", scale=0.15)
    assert _invoke(path, "--format", "concise").stdout.startswith("All checks passed")
    r = _invoke(path, "-q")
    assert r.exit_code == 0
    assert r.stdout == "" and r.stderr == ""


def test_rules_and_summary_fit_80_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    r = _invoke("rules")
    assert r.exit_code == 0
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    monkeypatch.chdir(tmp_path)
    _save(tmp_path / "a_model_with_a_rather_long_name.safetensors", scale=10.0)
    r = _invoke("a_model_with_a_rather_long_name.safetensors")
    assert max(len(line) for line in r.stdout.splitlines()) <= 80, r.stdout


def test_baseline_says_how_many_findings_it_accepted(tmp_path):
    path = _save(tmp_path / "m.safetensors", scale=10.0)
    base = str(tmp_path / "baseline.json")
    assert _invoke(path, "--baseline", base, "--update-baseline").exit_code in (0, 1)
    r = _invoke(path, "--baseline", base)
    assert r.exit_code == 0
    assert "accepted" in r.stderr and any(ch.isdigit() for ch in r.stderr)


def test_fix_honours_the_config_file(tmp_path):
    pytest.importorskip("torch")
    path = _fixable(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.initcheck]\nactivation = "nonexistent_act"\n')
    r = _invoke("fix", path, "-o", str(tmp_path / "fixed.safetensors"), "--dry-run")
    assert r.exit_code == 2  # the config was read: its bad activation is reported
    assert "nonexistent_act" in _one_error_line(r.stderr)


def test_zca_layer_is_judged_by_integrity_only(tmp_path, monkeypatch):
    """docs/fixing.md: only integrity findings block a ZCA layer. With the activation known (--model) and
    pixel-scale data, the whitened layer's std is far from any scheme's, which must not refuse the output."""
    torch = pytest.importorskip("torch")
    from click.testing import CliRunner

    from initcheck.cli import main

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from test_zca import smooth_images

    (tmp_path / "zca_arch_ic.py").write_text(
        "import torch\n\ndef net():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), "
        "torch.nn.Flatten(), torch.nn.Linear(16 * 14 * 14, 10))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import zca_arch_ic

    torch.manual_seed(0)
    state = zca_arch_ic.net().state_dict()
    state["0.weight"] *= 10  # flagged, so it is both reinitialized and whitened
    torch.save(state, tmp_path / "m.pt")
    np.savez(tmp_path / "x.npz", x=smooth_images(64) * 255)
    r = CliRunner().invoke(main, ["fix", "m.pt", "-o", "o.pt", "--zca", "x.npz", "--model", "zca_arch_ic:net"])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "data-dependent init" in r.stdout and (tmp_path / "o.pt").exists()


def test_savedmodel_add_slot_failure_has_its_own_message(tmp_path, monkeypatch):
    """TensorFlow fails with "'_UserObject' object has no attribute 'add_slot'" on Keras 2 SavedModels with
    optimizer slots; a stand-in tensorflow module raises exactly that (no TensorFlow import needed)."""
    import types

    def load(path):
        raise AttributeError("'_UserObject' object has no attribute 'add_slot'")

    fake = types.ModuleType("tensorflow")
    fake.saved_model = types.SimpleNamespace(load=load)
    monkeypatch.setitem(sys.modules, "tensorflow", fake)
    sm = tmp_path / "sm"
    sm.mkdir()
    (sm / "saved_model.pb").write_bytes(b"\x08\x01")
    r = _invoke(str(sm), "--trust")
    assert r.exit_code == 2
    line = _one_error_line(r.stderr)
    assert "add_slot" in line and "model.export" in line


def test_index_naming_a_tensor_twice_is_an_error(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    _save(folder / "model-00001-of-00002.safetensors")
    _save(folder / "model-00002-of-00002.safetensors", seed=1)
    (folder / "model.safetensors.index.json").write_text(
        '{"weight_map": {"fc.weight": "model-00001-of-00002.safetensors", '
        '"fc.weight": "model-00002-of-00002.safetensors"}}')
    r = _invoke(str(folder))
    assert r.exit_code == 2
    assert "duplicate key 'fc.weight'" in _one_error_line(r.stderr)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files")
def test_unreadable_file_is_one_line(tmp_path):
    path = _save(tmp_path / "m.safetensors")
    os.chmod(path, 0)
    try:
        r = _invoke(path)
    finally:
        os.chmod(path, 0o644)
    assert r.exit_code == 2
    assert "cannot read" in _one_error_line(r.stderr)


def test_unreadable_config_is_one_line(tmp_path):
    """--config naming something that is not a readable file: one line, not click's usage block."""
    path = _save(tmp_path / "m.safetensors")
    r = _invoke(path, "--config", str(tmp_path / "nope.toml"))
    assert r.exit_code == 2
    _one_error_line(r.stderr)


def test_non_finite_numbers_in_a_report_are_written_as_null(tmp_path, monkeypatch):
    """Whatever statistic ends up non-finite (a std that overflowed), strict JSON is still written."""
    from initcheck.report import Report

    original = Report.to_json

    def with_inf(self):
        doc = original(self)
        doc["layers"][0]["stats"]["std"] = float("inf")
        doc["layers"][0]["stats"]["mean"] = float("nan")
        return doc

    monkeypatch.setattr(Report, "to_json", with_inf)
    path = _save(tmp_path / "m.safetensors")
    r = _invoke(path, "--format", "json")
    assert r.exit_code in (0, 1), (r.output, r.exception)
    doc = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert doc["layers"][0]["stats"]["std"] is None and doc["layers"][0]["stats"]["mean"] is None
