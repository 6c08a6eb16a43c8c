"""LSUV: every covered layer's output variance on the batch within tolerance of 1, in few forward passes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from initcheck.errors import InitcheckError  # noqa: E402
from initcheck.fix.lsuv import lsuv  # noqa: E402


class ConvAttn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(16, 32, 3, stride=2)
        self.fc = torch.nn.Linear(32, 64)
        self.attn = torch.nn.MultiheadAttention(64, 4, batch_first=True)
        self.norm = torch.nn.LayerNorm(64)
        self.head = torch.nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.tanh(self.fc(x.flatten(2).transpose(1, 2)))
        a, _ = self.attn(x, x, x)
        return self.head(torch.relu(self.norm(a + x)))


def measure(module, x) -> dict[str, float]:
    """Output variance of every Linear/Conv module and of q/k/v/out of each attention, by a clean pass."""
    out: dict[str, float] = {}
    hooks = []
    for name, m in module.named_modules():
        if isinstance(m, torch.nn.MultiheadAttention):
            def pre(mod, args, kwargs, name=name):
                e = mod.embed_dim
                for i, tag in enumerate("qkv"):
                    y = torch.nn.functional.linear(args[i], mod.in_proj_weight[i * e:(i + 1) * e],
                                                   mod.in_proj_bias[i * e:(i + 1) * e])
                    out[f"{name}.{tag}"] = float(y.var(unbiased=False))

            def post(mod, args, res, name=name):
                out[f"{name}.out"] = float(res[0].var(unbiased=False))
            hooks += [m.register_forward_pre_hook(pre, with_kwargs=True), m.register_forward_hook(post)]
        elif isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and not name.endswith("out_proj"):
            hooks.append(m.register_forward_hook(
                lambda mod, a, res, name=name: out.__setitem__(name, float(res.var(unbiased=False)))))
    with torch.no_grad():
        module.eval()(x)
    for h in hooks:
        h.remove()
    return out


@pytest.mark.parametrize("scale", [0.05, 1.0, 20.0])
def test_every_covered_layer_unit_variance(scale):
    torch.manual_seed(0)
    net = ConvAttn()
    x = torch.randn(32, 3, 16, 16) * scale + 0.3
    calls = []
    net.register_forward_pre_hook(lambda m, a: calls.append(1))
    before = measure(net, x)
    calls.clear()
    res = lsuv(net, x, tol=0.1, seed=0)
    passes = len(calls)
    after = measure(net, x)
    print(f"\nLSUV input×{scale}: before {({k: round(v, 3) for k, v in before.items()})}\n"
          f"  after {({k: round(v, 4) for k, v in after.items()})}, {passes} forward passes")
    assert set(after) == set(res.variances) == {"conv1", "conv2", "fc", "attn.q", "attn.k", "attn.v",
                                                  "attn.out", "head"}
    for k, v in after.items():
        assert abs(v - 1) < 0.1, (k, v)
        assert abs(res.variances[k] - v) < 1e-6  # what LSUV reports is what a clean pass measures
    assert any(abs(v - 1) > 0.1 for v in before.values())  # there was something to do
    assert passes <= 3 and res.passes == passes  # not one pass per layer
    assert res.skipped == ["norm"]


def test_orthogonal_preinit_and_changes():
    torch.manual_seed(0)
    net = ConvAttn()
    res = lsuv(net, torch.randn(8, 3, 16, 16), seed=0)
    w = net.fc.weight.detach().double().numpy()
    sv = np.linalg.svd(w, compute_uv=False)
    assert np.allclose(sv, sv[0], rtol=1e-6)  # orthogonal, uniformly rescaled
    ip = net.attn.in_proj_weight.detach().double().numpy()
    for i in range(3):  # each projection block orthogonal up to its own scale
        s = np.linalg.svd(ip[i * 64:(i + 1) * 64], compute_uv=False)
        assert np.allclose(s, s[0], rtol=1e-6)
    assert all(torch.all(b == 0) for b in (net.fc.bias, net.attn.in_proj_bias, net.attn.out_proj.bias))
    tensors = {c.tensor for c in res.changes}
    assert {"conv1.weight", "attn.in_proj_weight", "attn.out_proj.weight", "head.bias"} <= tensors
    assert "norm.weight" not in tensors
    assert all(c.values is not None for c in res.changes)


def test_skip_keeps_layer_and_errors():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    w0 = net[0].weight.detach().clone()
    res = lsuv(net, torch.randn(64, 8), skip={"0"})
    assert torch.equal(net[0].weight, w0) and set(res.variances) == {"2"}
    with pytest.raises(InitcheckError, match="forward pass"):
        lsuv(net, torch.randn(4, 5))
    with pytest.raises(InitcheckError):
        lsuv(torch.nn.Sequential(torch.nn.LayerNorm(4)), torch.randn(2, 4))


def test_lsuv_cli_on_pickled_module(tmp_path):
    from click.testing import CliRunner

    from initcheck.cli import main

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(),
                              torch.nn.Linear(32, 3))
    src, out, data = str(tmp_path / "m.pt"), str(tmp_path / "o.pt"), str(tmp_path / "x.npy")
    torch.save(net, src)
    x = np.random.default_rng(0).standard_normal((128, 12)).astype("float32") * 4
    np.save(data, x)
    res = CliRunner().invoke(main, ["fix", src, "-o", out, "--trust", "--lsuv", data, "--seed", "0"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    fixed = torch.load(out, weights_only=False)
    variances = measure(fixed, torch.tensor(x))
    assert variances and all(abs(v - 1) < 0.1 for v in variances.values()), variances
    res = CliRunner().invoke(main, ["fix", src, "-o", out, "--force", "--lsuv", data], catch_exceptions=False)
    assert res.exit_code == 2  # pickled module without --trust
    torch.save(net.state_dict(), str(tmp_path / "sd.pt"))
    res = CliRunner().invoke(main, ["fix", str(tmp_path / "sd.pt"), "-o", out, "--force", "--lsuv", data],
                             catch_exceptions=False)
    assert res.exit_code == 2 and "LSUV" in res.output


def _keras_model():
    keras = pytest.importorskip("keras")
    inp = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inp)
    h2 = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.Flatten()(keras.layers.Add()([h, h2]))
    h = keras.layers.Dense(32, activation="tanh", name="d1")(h)
    h = keras.layers.Dense(32, activation="relu", name="d2")(h)
    return keras.Model(inp, keras.layers.Dense(4, name="d3")(h))


def keras_preactivation_vars(model, x) -> dict[str, float]:
    """Independent measurement: each layer's input from a probe model, then x·K + b (or conv) by hand."""
    import keras

    names = ["c1", "c2", "d1", "d2", "d3"]
    probe = keras.Model(model.inputs, [model.get_layer(n).input for n in names])
    out = {}
    for n, xin in zip(names, probe([x])):
        la = model.get_layer(n)
        k, b = la.kernel.numpy(), la.bias.numpy()
        if n.startswith("c"):
            y = np.asarray(keras.ops.conv(xin, k, strides=1, padding=la.padding)) + b
        else:
            y = np.asarray(xin) @ k + b
        out[n] = float(np.asarray(y, dtype=np.float64).var())
    return out


def test_keras_lsuv_unit_variance(tmp_path):
    from initcheck.fix.lsuv import lsuv_keras

    model = _keras_model()
    x = (np.random.default_rng(0).standard_normal((64, 12, 12, 3)) * 5).astype("float32")
    res = lsuv_keras(model, x, seed=0)
    after = keras_preactivation_vars(model, x)
    print(f"\nKeras LSUV: {({k: round(v, 4) for k, v in after.items()})}, {res.passes} passes")
    assert all(abs(v - 1) < 0.1 for v in after.values()), after
    assert res.passes <= 6 and {c.tensor for c in res.changes} >= {"c1/kernel", "d3/bias"}


def test_keras_lsuv_cli(tmp_path):
    from click.testing import CliRunner

    from initcheck.cli import main

    model = _keras_model()
    src, out, data = str(tmp_path / "k.keras"), str(tmp_path / "o.keras"), str(tmp_path / "x.npy")
    model.save(src)
    x = (np.random.default_rng(1).standard_normal((64, 12, 12, 3)) * 0.1).astype("float32")
    np.save(data, x)
    res = CliRunner().invoke(main, ["fix", src, "-o", out, "--lsuv", data, "--seed", "0"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    import keras

    after = keras_preactivation_vars(keras.saving.load_model(out), x)
    assert all(abs(v - 1) < 0.1 for v in after.values()), after
