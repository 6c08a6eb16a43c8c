"""The same architecture in PyTorch and Keras, with the same initial values, gets the same kinds, fans,
context and verdicts."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")
from keras import layers  # noqa: E402

import initcheck  # noqa: E402


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(8)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = torch.nn.Conv2d(8, 8, 1)
        self.fc = torch.nn.Linear(8 * 4 * 4, 32)
        self.out = torch.nn.Linear(32, 4)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        y = self.pw(torch.nn.functional.leaky_relu(self.dw(x), 0.1))
        x = x + y
        x = torch.nn.functional.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        return self.out(torch.tanh(self.fc(x)))


def keras_net() -> "keras.Model":
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inp)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU()(x)
    y = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = layers.LeakyReLU(negative_slope=0.1)(y)
    y = layers.Conv2D(8, 1, name="pw")(y)
    x = layers.Add()([x, y])
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="tanh", name="fc")(x)
    return keras.Model(inp, layers.Dense(4, name="out")(x))


def copy_torch_to_keras(tnet: TorchNet, knet: "keras.Model") -> None:
    """Same values in each framework's layout: conv (out, in, k, k) → (k, k, in, out); depthwise
    (C, 1, k, k) → (k, k, C, 1); linear (out, in) → (in, out)."""
    t = {k: v.detach().numpy() for k, v in tnet.state_dict().items()}
    knet.get_layer("stem").kernel.assign(t["stem.weight"].transpose(2, 3, 1, 0))
    knet.get_layer("bn").gamma.assign(t["bn.weight"])
    knet.get_layer("bn").beta.assign(t["bn.bias"])
    knet.get_layer("dw").kernel.assign(t["dw.weight"].transpose(2, 3, 0, 1))
    knet.get_layer("dw").bias.assign(t["dw.bias"])
    knet.get_layer("pw").kernel.assign(t["pw.weight"].transpose(2, 3, 1, 0))
    knet.get_layer("pw").bias.assign(t["pw.bias"])
    for name in ("fc", "out"):
        knet.get_layer(name).kernel.assign(t[f"{name}.weight"].T)
        knet.get_layer(name).bias.assign(t[f"{name}.bias"])


def summary(report):
    rows = []
    for layer in report.model.layers:
        c = layer.context
        rows.append((layer.kind, layer.fan_in, layer.fan_out, c.activation, c.activation_param, c.norm_after,
                     c.residual, c.position))
    return rows


def verdicts(report):
    names = [layer.name.split("/")[-1].split(".")[0] for layer in report.model.layers]
    assert len(set(names)) == len(names)
    return sorted((f.rule, f.severity, f.layer.split(".")[0] if f.layer else None) for f in report.findings)


@pytest.fixture
def pair():
    torch.manual_seed(0)
    tnet = TorchNet()
    knet = keras_net()
    copy_torch_to_keras(tnet, knet)
    return tnet, knet


def test_same_kinds_fans_and_context(pair):
    tnet, knet = pair
    t, k = initcheck.check(tnet), initcheck.check(knet)
    assert [x.name.split(".")[0] for x in t.model.layers] == [x.name for x in k.model.layers]
    assert summary(t) == summary(k)
    # the expected std and its ratio follow from the same fans and context
    for a, b in zip(t.model.layers, k.model.layers):
        if "std_ratio" in a.analysis:
            assert b.analysis["std_ratio"] == pytest.approx(a.analysis["std_ratio"], rel=1e-5)


@pytest.mark.parametrize("fault", [None, "zeros_fc", "x10_pw", "nan_stem"])
def test_same_verdicts(pair, fault):
    tnet, knet = pair
    if fault == "zeros_fc":
        with torch.no_grad():
            tnet.fc.weight.zero_()
        knet.get_layer("fc").kernel.assign(np.zeros((128, 32), "float32"))
    elif fault == "x10_pw":
        with torch.no_grad():
            tnet.pw.weight.mul_(10)
        knet.get_layer("pw").kernel.assign(knet.get_layer("pw").kernel.numpy() * 10)
    elif fault == "nan_stem":
        with torch.no_grad():
            tnet.stem.weight[0, 0, 0, 0] = float("nan")
        k = knet.get_layer("stem").kernel.numpy()
        k[0, 0, 0, 0] = np.nan
        knet.get_layer("stem").kernel.assign(k)
    t, k = initcheck.check(tnet), initcheck.check(knet)
    assert verdicts(t) == verdicts(k)
    assert t.exit_code() == k.exit_code()
    if fault is not None:
        assert {f.layer.split(".")[0] for f in t.findings if f.severity in ("error", "warning")} == \
            {fault.split("_")[1]}
