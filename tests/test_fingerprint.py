"""Fingerprints recognise layers drawn by the frameworks' own initializers, over shapes and seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from _layers import array_layer, judge_layers
from initcheck.fingerprint import MIN_ELEMENTS, fingerprint

torch = pytest.importorskip("torch")
nn_init = torch.nn.init

SHAPES = [(64, 32), (128, 128), (256, 64), (32, 512), (512, 512)]
SEEDS = range(3)

R2, TANH = math.sqrt(2), 5 / 3
# initializer → (scheme, distribution, std the scheme gives for (fan_in, fan_out)) — std from the formulas
# of torch.nn.init, written out independently of initcheck
TORCH_CASES = {
    "kaiming_normal_relu": (lambda w: nn_init.kaiming_normal_(w, nonlinearity="relu"), "he", "normal",
                            lambda fi, fo: R2 / math.sqrt(fi)),
    "kaiming_uniform_relu": (lambda w: nn_init.kaiming_uniform_(w, nonlinearity="relu"), "he", "uniform",
                             lambda fi, fo: R2 / math.sqrt(fi)),
    "kaiming_normal_fan_out": (lambda w: nn_init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"), "he",
                               "normal", lambda fi, fo: R2 / math.sqrt(fo)),
    "xavier_uniform": (nn_init.xavier_uniform_, "xavier", "uniform", lambda fi, fo: math.sqrt(2 / (fi + fo))),
    "xavier_normal": (nn_init.xavier_normal_, "xavier", "normal", lambda fi, fo: math.sqrt(2 / (fi + fo))),
    "xavier_uniform_tanh": (lambda w: nn_init.xavier_uniform_(w, gain=nn_init.calculate_gain("tanh")), "xavier",
                            "uniform", lambda fi, fo: TANH * math.sqrt(2 / (fi + fo))),
    "torch_default": (lambda w: nn_init.kaiming_uniform_(w, a=math.sqrt(5)), "uniform", "uniform",
                      lambda fi, fo: 1 / math.sqrt(3 * fi)),
    "orthogonal": (nn_init.orthogonal_, "orthogonal", "orthogonal", None),
    "normal_0.02": (lambda w: nn_init.normal_(w, std=0.02), "normal", "normal", lambda fi, fo: 0.02),
    "trunc_normal_2sigma": (lambda w: nn_init.trunc_normal_(w, std=0.02, a=-0.04, b=0.04), "normal",
                            "truncated_normal", lambda fi, fo: 0.02 * 0.87962566103423978),
}


def _assert_explains(fp, scheme, true_std, context):
    """The named scheme, or one that gives the very same std (a square layer cannot tell He(fan_in),
    He(fan_out) and Xavier·gain apart; (2n, n) cannot tell He(fan_out) from LeCun)."""
    assert fp["confidence"] >= 0.4, (context, fp)
    if fp["scheme"] != scheme:
        assert true_std is not None and abs(math.log(fp["scheme_std"] / true_std)) < 0.01, (context, fp)


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_torch_initializers_are_recognised(name):
    init, scheme, dist, std_of = TORCH_CASES[name]
    for shape in SHAPES:
        for seed in SEEDS:
            torch.manual_seed(seed)
            w = torch.empty(shape)
            init(w)
            layer = array_layer("l", w.numpy(), activation="relu")
            judge_layers([layer])
            fp = layer.analysis["fingerprint"]
            assert fp["distribution"] == dist, (name, shape, seed, fp)
            _assert_explains(fp, scheme, std_of(shape[1], shape[0]) if std_of else None, (name, shape, seed))
            if fp["scheme"] == scheme and name == "kaiming_normal_fan_out" and shape[0] != shape[1]:
                assert fp["mode"] == "fan_out", (shape, fp)
            assert fp["std"] == pytest.approx(float(w.std(unbiased=False)), rel=1e-4)


def test_conv_fans_are_used_for_conv_layers():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 64, 3)  # fan_out = 4·fan_in: He(fan_out) differs from every fan_in scheme
    nn_init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    import initcheck

    layer = initcheck.check(conv).layers[0]
    assert layer.analysis["fingerprint"]["label"] == "he_normal(fan_out)"
    dw = torch.nn.Conv2d(32, 32, 3, groups=32)
    nn_init.kaiming_normal_(dw.weight, mode="fan_out")  # torchvision MobileNet: torch's fan_out = C·k²
    fp = initcheck.check(dw).layers[0].analysis["fingerprint"]
    # xavier with the framework's fans gives within 2% of the same std: either, but with torch's fans
    assert fp["scheme"] in ("he", "xavier") and fp["fans"] == "framework", fp


keras = pytest.importorskip("keras")

KERAS_CASES = {  # name → (scheme, distribution, std for (fan_in, fan_out)): VarianceScaling's formulas
    "glorot_uniform": ("xavier", "uniform", lambda fi, fo: math.sqrt(2 / (fi + fo))),
    "glorot_normal": ("xavier", "truncated_normal", lambda fi, fo: math.sqrt(2 / (fi + fo))),
    "he_normal": ("he", "truncated_normal", lambda fi, fo: math.sqrt(2 / fi)),
    "he_uniform": ("he", "uniform", lambda fi, fo: math.sqrt(2 / fi)),
    "lecun_normal": ("lecun", "truncated_normal", lambda fi, fo: math.sqrt(1 / fi)),
    "lecun_uniform": ("lecun", "uniform", lambda fi, fo: math.sqrt(1 / fi)),
    "orthogonal": ("orthogonal", "orthogonal", None),
}


@pytest.mark.parametrize("name", sorted(KERAS_CASES))
def test_keras_initializers_are_recognised(name):
    scheme, dist, std_of = KERAS_CASES[name]
    for in_dim, out_dim in [(64, 128), (256, 256), (512, 64)]:
        for seed in SEEDS:
            init = keras.initializers.get({"class_name": name, "config": {"seed": seed}})
            kernel = np.asarray(init((in_dim, out_dim)))  # Keras layout (in, out)
            layer = array_layer("l", kernel.T, activation="relu")  # as (out, in)
            judge_layers([layer])
            fp = layer.analysis["fingerprint"]
            assert fp["distribution"] == dist, (name, in_dim, out_dim, fp)
            _assert_explains(fp, scheme, std_of(in_dim, out_dim) if std_of else None, (name, in_dim, out_dim, seed))


def test_keras_random_normal_default_and_truncated():
    for cls, label_part in [("RandomNormal", "N(0, 0.05)"), ("TruncatedNormal", "trunc_normal(std=0.05")]:
        w = np.asarray(keras.initializers.get({"class_name": cls, "config": {"seed": 1}})((256, 128)))
        layer = array_layer("l", w.T, activation="relu")
        judge_layers([layer])
        assert label_part in layer.analysis["fingerprint"]["label"], layer.analysis["fingerprint"]
    w = np.asarray(keras.initializers.RandomUniform(seed=2)((256, 128)))
    layer = array_layer("l", w.T, activation="relu")
    judge_layers([layer])
    assert layer.analysis["fingerprint"]["label"] == "U(±0.05)"


def test_refuses_to_guess_on_tiny_layers():
    rng = np.random.default_rng(0)
    for shape in [(2, 2), (3, 5), (4, 8), (7, 9)]:
        assert shape[0] * shape[1] < MIN_ELEMENTS
        layer = array_layer("l", rng.standard_normal(shape) * 0.3, activation="relu")
        judge_layers([layer])
        fp = layer.analysis["fingerprint"]
        assert fp["scheme"] == "unknown" and fp["confidence"] == 0.0, fp


def test_structural_fingerprints():
    layer = array_layer("z", np.zeros((16, 16)), activation="relu")
    judge_layers([layer])
    assert layer.analysis["fingerprint"]["scheme"] == "zeros"
    layer = array_layer("c", np.full((16, 16), 0.1), activation="relu")
    judge_layers([layer])
    assert layer.analysis["fingerprint"]["scheme"] == "constant"
    layer = array_layer("i", np.eye(16), activation="relu")
    judge_layers([layer])
    assert layer.analysis["fingerprint"]["scheme"] == "identity"


def test_heavy_tailed_weights_fit_no_scheme():
    rng = np.random.default_rng(3)
    w = rng.standard_t(3, size=(256, 256)) * 0.05  # trained-like heavy tails
    layer = array_layer("t", w, activation="relu")
    judge_layers([layer])
    assert fingerprint(layer)["scheme"] == "unknown"
