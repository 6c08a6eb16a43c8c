"""``initcheck fix`` end to end: every PyTorch/safetensors format written back, input untouched, re-check."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from initcheck.cli import main  # noqa: E402
from initcheck.load import load  # noqa: E402
from initcheck.pipeline import analyze  # noqa: E402
from initcheck.report import SEVERITY_RANK  # noqa: E402

from conftest import run_cli  # noqa: E402


class WriteNet(torch.nn.Module):
    """Importable at module level so a pickled whole module loads again (with --trust)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3)
        self.fc1 = torch.nn.Linear(16, 64)
        self.fc2 = torch.nn.Linear(64, 64)
        self.head = torch.nn.Linear(64, 4)

    def forward(self, x):
        x = torch.relu(self.conv(x)).mean((2, 3))
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def planted() -> WriteNet:
    torch.manual_seed(0)
    net = WriteNet()
    with torch.no_grad():
        net.fc1.weight.zero_()
        net.fc2.weight[3, 4] = float("nan")
    return net


def sha(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def serious_on(path: str, layers: set[str], trust: bool = False) -> list:
    rep = analyze(load(path, trust=trust))
    return [f for f in rep.findings if f.layer in layers and SEVERITY_RANK[f.severity] >= 1]


def assert_fixed(src: str, out: str, trust: bool = False, fixed=("fc1", "fc2")):
    a, b = load(src, trust=trust), load(out, trust=trust)
    old = {p.name: p.tensor for la in a.layers for p in la.params}
    for la in b.layers:
        for p in la.params:
            if la.name in fixed:
                assert not np.array_equal(p.tensor.numpy(), old[p.name].numpy(), equal_nan=True) or \
                    p.role == "bias"
            else:  # healthy tensors: bit-identical
                assert p.tensor.raw().tobytes() == old[p.name].raw().tobytes(), p.name
    assert not serious_on(out, set(fixed), trust)


@pytest.mark.parametrize("kind", ["state_dict", "checkpoint", "legacy", "safetensors", "module", "torchscript"])
def test_fix_each_format(tmp_path, kind):
    net = planted()
    src = str(tmp_path / ("m.safetensors" if kind == "safetensors" else "m.pt"))
    trust = kind in ("module", "torchscript")
    if kind == "state_dict":
        torch.save(net.state_dict(), src)
    elif kind == "legacy":
        torch.save(net.state_dict(), src, _use_new_zipfile_serialization=False)
    elif kind == "checkpoint":
        torch.save({"epoch": 7, "model_state_dict": net.state_dict(), "optimizer": {"lr": 0.1, "m": torch.ones(3)},
                    "note": "keep me"}, src)
    elif kind == "safetensors":
        from safetensors.torch import save_file

        save_file(dict(net.state_dict()), src, metadata={"format": "pt", "author": "test"})
    elif kind == "module":
        torch.save(net, src)
    else:
        torch.jit.save(torch.jit.script(net), src)
    digest = sha(src)
    out = str(tmp_path / ("out.safetensors" if kind == "safetensors" else "out.pt"))
    args = ["fix", src, "-o", out, "--seed", "0"] + (["--trust"] if trust else [])
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert "re-check passed" in res.output and "fc1.weight" in res.output
    assert sha(src) == digest, "the input file changed"
    assert_fixed(src, out, trust)
    leftovers = [f for f in os.listdir(tmp_path) if f.startswith(".initcheck-")]
    assert not leftovers
    if kind == "checkpoint":
        ck = torch.load(out, weights_only=True)
        assert ck["epoch"] == 7 and ck["note"] == "keep me" and torch.equal(ck["optimizer"]["m"], torch.ones(3))
        assert set(ck) == {"epoch", "model_state_dict", "optimizer", "note"}
    if kind == "safetensors":
        from safetensors import safe_open

        with safe_open(out, "pt") as f:
            assert f.metadata() == {"format": "pt", "author": "test"}
        with open(src, "rb") as f1, open(out, "rb") as f2:
            n = int.from_bytes(f1.read(8), "little")
            assert f2.read(8 + n)[8:] == f1.read(n)  # same header bytes
    if kind == "legacy":
        import zipfile

        assert not zipfile.is_zipfile(out)  # still the legacy format
    if kind == "torchscript":
        m = torch.jit.load(out)
        assert m(torch.randn(2, 3, 8, 8)).shape == (2, 4)


def test_mmap_assign_does_not_touch_input(tmp_path):
    src = str(tmp_path / "sd.pt")
    torch.save(planted().state_dict(), src)
    digest = sha(src)
    model = load(src)
    for la in model.layers:
        for p in la.params:
            p.assign(np.full(p.shape, 3.0))
    assert float(model.layers[0].weight.native.flatten()[0]) == 3.0
    del model
    assert sha(src) == digest


def test_tied_state_dict_stays_tied(tmp_path):
    torch.manual_seed(0)
    emb = torch.nn.Embedding(50, 16)
    sd = {"emb.weight": emb.weight.detach(), "head.weight": emb.weight.detach(),
          "fc.weight": torch.zeros(16, 16), "fc.bias": torch.zeros(16)}
    src, out = str(tmp_path / "tied.pt"), str(tmp_path / "out.pt")
    torch.save(sd, src)
    res = invoke("fix", src, "-o", out, "--layers", "emb", "--layers", "fc", "--seed", "1")
    assert res.exit_code == 0, res.output
    new = torch.load(out, weights_only=True)
    assert new["emb.weight"].data_ptr() == new["head.weight"].data_ptr()
    assert not torch.equal(new["emb.weight"], sd["emb.weight"])


def test_bfloat16_safetensors_encoding(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    sd = {"a.weight": torch.zeros(32, 32, dtype=torch.bfloat16), "b.weight": torch.nn.Linear(32, 32).weight.detach().bfloat16()}
    src, out = str(tmp_path / "bf.safetensors"), str(tmp_path / "out.safetensors")
    save_file(sd, src)
    res = invoke("fix", src, "-o", out, "--seed", "0", "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert [c["tensor"] for c in doc["changes"]] == ["a.weight"]
    new = load_file(out)
    assert new["a.weight"].dtype == torch.bfloat16 and torch.equal(new["b.weight"], sd["b.weight"])
    # our round-to-nearest-even equals torch's float32 → bfloat16 cast
    from initcheck.frameworks.torch.write import encode

    vals = np.random.default_rng(0).standard_normal(1000)
    ours = np.frombuffer(encode(vals, "bfloat16", np.dtype("<u2")), dtype="<u2")
    ref = torch.tensor(vals, dtype=torch.float32).bfloat16().view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(ours, ref)


def test_output_policy(tmp_path):
    src = str(tmp_path / "sd.pt")
    torch.save(planted().state_dict(), src)
    digest = sha(src)
    res = invoke("fix", src, "-o", src)
    assert res.exit_code == 2 and "--in-place" in res.output
    out = str(tmp_path / "out.pt")
    with open(out, "wb") as f:
        f.write(b"precious")
    res = invoke("fix", src, "-o", out)
    assert res.exit_code == 2 and "--force" in res.output
    with open(out, "rb") as f:
        assert f.read() == b"precious"
    assert invoke("fix", src, "-o", out, "--force", "--seed", "0").exit_code == 0
    res = invoke("fix", src, "--dry-run", "--scheme", "he_uniform")
    assert res.exit_code == 0 and "nothing written" in res.output and sha(src) == digest
    res = invoke("fix", src)
    assert res.exit_code == 2 and "-o" in res.output
    res = invoke("fix", src, "--in-place", "--seed", "0")
    assert res.exit_code == 0, res.output
    assert sha(src) != digest and not serious_on(src, {"fc1", "fc2"})


def test_recheck_failure_writes_nothing(tmp_path, monkeypatch):
    import initcheck.fix.reinit as reinit

    src, out = str(tmp_path / "sd.pt"), str(tmp_path / "out.pt")
    torch.save(planted().state_dict(), src)
    monkeypatch.setattr(reinit, "new_values", lambda layer, param, *a: (np.zeros(param.shape), "broken"))
    res = invoke("fix", src, "-o", out)
    assert res.exit_code == 1 and "re-check" in res.output
    assert not os.path.exists(out)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".initcheck-")]


def test_cli_errors_one_line_exit_2(tmp_path):
    src = str(tmp_path / "sd.pt")
    torch.save(planted().state_dict(), src)
    res = run_cli("fix", src, "-o", str(tmp_path / "o.pt"), "--scheme", "bogus")
    assert res.returncode == 2
    assert res.stderr.startswith(f"initcheck: error: {src}: unknown scheme") and "Traceback" not in res.stderr
    res = run_cli("fix", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "o.pt"))
    assert res.returncode == 2 and "missing.pt" in res.stderr


def test_keras_fix_roundtrip(tmp_path):
    keras = pytest.importorskip("keras")
    try:
        from initcheck.frameworks.keras.write import save_keras  # noqa: F401
    except ImportError:
        pytest.skip("Keras writer (initcheck.frameworks.keras.write) not available yet")
    inp = keras.Input((8,))
    h = keras.layers.Dense(32, activation="relu", name="d1")(inp)
    h = keras.layers.Dense(32, activation="relu", name="d2")(h)
    m = keras.Model(inp, keras.layers.Dense(4, name="d3")(h))
    m.get_layer("d1").kernel.assign(np.zeros((8, 32)))
    m.get_layer("d2").kernel.assign(np.full((32, 32), 0.05))
    for ext in ("keras", "h5"):
        src, out = str(tmp_path / f"k.{ext}"), str(tmp_path / f"out.{ext}")
        m.save(src)
        digest = sha(src)
        res = invoke("fix", src, "-o", out, "--seed", "0")
        assert res.exit_code == 0, res.output
        assert sha(src) == digest
        assert_fixed(src, out, fixed=("d1", "d2"))


@pytest.mark.parametrize("fmt", ["state_dict", "safetensors"])
def test_tensor_only_file_with_model_factory(tmp_path, fmt):
    """--model gives a tensor-only file its graph: auto picks He for the ReLU layers, and LSUV can run."""
    net = planted()
    src = str(tmp_path / ("m.safetensors" if fmt == "safetensors" else "m.pt"))
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(dict(net.state_dict()), src, metadata={"format": "pt"})
    else:
        torch.save(net.state_dict(), src)
    digest = sha(src)
    out = str(tmp_path / ("o.safetensors" if fmt == "safetensors" else "o.pt"))
    res = invoke("fix", src, "-o", out, "--model", "test_write:WriteNet", "--seed", "0")
    assert res.exit_code == 0, res.output
    assert "he_normal (relu" in res.output and sha(src) == digest
    assert_fixed(src, out)
    data = str(tmp_path / "x.npy")
    np.save(data, np.random.default_rng(0).standard_normal((64, 3, 8, 8)).astype("float32"))
    res = invoke("fix", src, "-o", out, "--force", "--model", "test_write:WriteNet", "--lsuv", data, "--seed", "0")
    assert res.exit_code == 0, res.output
    fixed = WriteNet()
    if fmt == "safetensors":
        from safetensors.torch import load_file

        fixed.load_state_dict(load_file(out))
    else:
        fixed.load_state_dict(torch.load(out, weights_only=True))
    seen = {}
    for name in ("conv", "fc1", "fc2", "head"):
        getattr(fixed, name).register_forward_hook(
            lambda m, a, y, name=name: seen.__setitem__(name, float(y.var(unbiased=False))))
    with torch.no_grad():
        fixed.eval()(torch.tensor(np.load(data)))
    assert all(abs(v - 1) < 0.1 for v in seen.values()), seen


@pytest.mark.parametrize("fault", ["x10", "x0.03", "constant"])
@pytest.mark.parametrize("fmt", ["state_dict", "safetensors"])
def test_scale_faults_in_files_with_activation(tmp_path, fault, fmt):
    """Tensor-only files with --activation: scale faults are flagged, fixed, and the rest is bit-identical."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(4)])
    with torch.no_grad():
        w = net[1].weight
        {"x10": lambda: w.mul_(10), "x0.03": lambda: w.mul_(0.03), "constant": lambda: w.fill_(0.02)}[fault]()
    src = str(tmp_path / ("m.safetensors" if fmt == "safetensors" else "m.pt"))
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(dict(net.state_dict()), src)
    else:
        torch.save(net.state_dict(), src)
    digest = sha(src)
    from initcheck.pipeline import CheckOptions

    flagged = [f for f in analyze(load(src), CheckOptions(activation="relu")).findings
               if f.layer == "1" and SEVERITY_RANK[f.severity] >= 1]
    assert flagged, "planted fault not flagged"
    out = str(tmp_path / ("o.safetensors" if fmt == "safetensors" else "o.pt"))
    res = invoke("fix", src, "-o", out, "--activation", "relu", "--seed", "0", "--format", "json")
    assert res.exit_code == 0, res.output
    changed = {c["tensor"] for c in json.loads(res.output)["changes"]}
    assert {"1.weight", "1.bias"} <= changed
    assert sha(src) == digest
    rep = analyze(load(out), CheckOptions(activation="relu"))
    assert not [f for f in rep.findings if f.layer == "1" and SEVERITY_RANK[f.severity] >= 1]
    a, b = load(src), load(out)
    old = {p.name: p.tensor for la in a.layers for p in la.params}
    for la in b.layers:
        for p in la.params:
            same = p.tensor.raw().tobytes() == old[p.name].raw().tobytes()
            assert same == (p.name not in changed), p.name
