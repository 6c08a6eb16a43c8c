"""Fingerprint accuracy over every initializer of torch.nn.init and keras.initializers (issue 9): right on at
least 99 % of layers of ≥ 1,000 weights — the scheme named, or one that gives the same std within 1 % (a
square layer cannot tell He(fan_in) from He(fan_out)) — with truncated normals corrected and uncorrected.

Stds are written out from each library's own formulas, independently of initcheck.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from _layers import array_layer, judge_layers

torch = pytest.importorskip("torch")
I = torch.nn.init

SHAPES = [(32, 32), (64, 128), (256, 64), (128, 512), (512, 512)]
SEEDS = range(4)
R2 = math.sqrt(2)


def _sd_trunc(c: float) -> float:
    phi = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
    return math.sqrt(1 - 2 * c * phi / math.erf(c / math.sqrt(2)))


# name → (init(w), distribution, std(fan_in, fan_out) or None for orthogonal)
TORCH = {
    "kaiming_normal_relu": (lambda w: I.kaiming_normal_(w, nonlinearity="relu"), "normal", lambda i, o: R2 / math.sqrt(i)),
    "kaiming_uniform_relu": (lambda w: I.kaiming_uniform_(w, nonlinearity="relu"), "uniform", lambda i, o: R2 / math.sqrt(i)),
    "kaiming_normal_fan_out": (lambda w: I.kaiming_normal_(w, mode="fan_out"), "normal", lambda i, o: R2 / math.sqrt(o)),
    "kaiming_uniform_leaky02": (lambda w: I.kaiming_uniform_(w, a=0.2, nonlinearity="leaky_relu"), "uniform",
                                lambda i, o: math.sqrt(2 / 1.04) / math.sqrt(i)),
    "kaiming_normal_linear": (lambda w: I.kaiming_normal_(w, nonlinearity="linear"), "normal", lambda i, o: 1 / math.sqrt(i)),
    "xavier_uniform": (I.xavier_uniform_, "uniform", lambda i, o: math.sqrt(2 / (i + o))),
    "xavier_normal": (I.xavier_normal_, "normal", lambda i, o: math.sqrt(2 / (i + o))),
    "xavier_uniform_tanh": (lambda w: I.xavier_uniform_(w, gain=5 / 3), "uniform", lambda i, o: 5 / 3 * math.sqrt(2 / (i + o))),
    "torch_default": (lambda w: I.kaiming_uniform_(w, a=math.sqrt(5)), "uniform", lambda i, o: 1 / math.sqrt(3 * i)),
    "normal_0.02": (lambda w: I.normal_(w, std=0.02), "normal", lambda i, o: 0.02),
    "normal_1": (lambda w: I.normal_(w), "normal", lambda i, o: 1.0),
    "trunc_normal_2sigma_uncorrected": (lambda w: I.trunc_normal_(w, std=0.02, a=-0.04, b=0.04), "truncated_normal",
                                        lambda i, o: 0.02 * _sd_trunc(2.0)),
    "trunc_normal_3sigma_uncorrected": (lambda w: I.trunc_normal_(w, std=0.02, a=-0.06, b=0.06), "truncated_normal",
                                        lambda i, o: 0.02 * _sd_trunc(3.0)),
    "trunc_normal_timm_0.02": (lambda w: I.trunc_normal_(w, std=0.02), "normal", lambda i, o: 0.02),  # cut at ±2 (100σ)
    "orthogonal": (I.orthogonal_, "orthogonal", None),
}


def _right(fp, dist, true_std, name="") -> bool:
    """The answer, or a listed alternative, gives the true std within 1 %; the distribution is right (a
    normal cut at 3σ counts as a normal: at these sizes its extremes barely reach the cut)."""
    if true_std is None:
        return fp["scheme"] == "orthogonal"
    dists = {dist, "normal"} if "3sigma" in name else {dist}
    if dist == "normal" and fp.get("cut") is not None and fp["cut"] >= 2.8:
        dists.add("truncated_normal")  # and a normal sample whose extremes stop near 3σ looks cut there
    if fp.get("distribution") not in dists or fp["scheme"] == "unknown":
        return False
    stds = [fp["scheme_std"]] + [a["std"] for a in fp.get("alternatives", [])]
    return any(abs(math.log(s / true_std)) < 0.01 for s in stds)


def _sweep(draws):
    wrong = []
    total = 0
    for name, w, dist, true_std in draws:
        layer = array_layer("l", w, activation="relu")
        judge_layers([layer])
        fp = layer.analysis["fingerprint"]
        total += 1
        if not _right(fp, dist, true_std, name):
            wrong.append((name, w.shape, fp.get("label"), fp.get("distribution"), fp.get("scheme_std"), true_std))
    return wrong, total


def test_torch_initializers_fingerprinted_on_99_percent():
    def draws():
        for name, (init, dist, std_of) in TORCH.items():
            for shape in SHAPES:
                for seed in SEEDS:
                    torch.manual_seed(seed)
                    w = torch.empty(shape)
                    init(w)
                    yield name, w.numpy(), dist, std_of(shape[1], shape[0]) if std_of else None

    wrong, total = _sweep(draws())
    assert total == len(TORCH) * len(SHAPES) * len(SEEDS)
    assert len(wrong) <= 0.01 * total, wrong


keras = pytest.importorskip("keras")

KERAS = {  # class → (config, distribution, std(fan_in, fan_out)): VarianceScaling and the fixed ones
    "GlorotUniform": ({}, "uniform", lambda i, o: math.sqrt(2 / (i + o))),
    "GlorotNormal": ({}, "truncated_normal", lambda i, o: math.sqrt(2 / (i + o))),  # corrected truncation
    "HeNormal": ({}, "truncated_normal", lambda i, o: math.sqrt(2 / i)),
    "HeUniform": ({}, "uniform", lambda i, o: math.sqrt(2 / i)),
    "LecunNormal": ({}, "truncated_normal", lambda i, o: math.sqrt(1 / i)),
    "LecunUniform": ({}, "uniform", lambda i, o: math.sqrt(1 / i)),
    "RandomNormal": ({"stddev": 0.05}, "normal", lambda i, o: 0.05),
    "TruncatedNormal": ({"stddev": 0.05}, "truncated_normal", lambda i, o: 0.05 * _sd_trunc(2.0)),  # uncorrected
    "RandomUniform": ({}, "uniform", lambda i, o: 0.05 / math.sqrt(3)),
    "Orthogonal": ({}, "orthogonal", None),
}


def test_keras_initializers_fingerprinted_on_99_percent():
    def draws():
        for name, (config, dist, std_of) in KERAS.items():
            for in_dim, out_dim in [(32, 32), (128, 64), (64, 256), (512, 128)]:
                for seed in SEEDS:
                    init = keras.initializers.get({"class_name": name, "config": {**config, "seed": seed}})
                    kernel = np.asarray(init((in_dim, out_dim)))  # Keras layout (in, out)
                    yield name, kernel.T, dist, std_of(in_dim, out_dim) if std_of else None

    wrong, total = _sweep(draws())
    assert len(wrong) <= 0.01 * total, wrong
