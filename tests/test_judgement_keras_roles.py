"""Roles of a Keras weights-only file's tensors from their shapes: tokens, tables, batched expert biases
and custom layers' parameter pairs are not weight matrices, so their zeros are correct (keras_hub DINOv2
registers, ViTDet position and relative-position tables, GPT-OSS experts)."""

from __future__ import annotations

import numpy as np
import pytest

import initcheck

keras = pytest.importorskip("keras")


class Tables(keras.layers.Layer):
    """A cls token, a position table and a pair of relative-position tables, zeros as keras_hub makes them."""

    def build(self, input_shape):
        d = input_shape[-1]
        self.cls = self.add_weight(shape=(1, 1, d), initializer="zeros")
        self.pos = self.add_weight(shape=(1, input_shape[1] + 1, d), initializer="zeros")
        self.rel_h = self.add_weight(shape=(7, d), initializer="zeros")
        self.rel_w = self.add_weight(shape=(7, d), initializer="zeros")

    def call(self, x):
        cls = keras.ops.broadcast_to(self.cls, (keras.ops.shape(x)[0], 1, x.shape[-1]))
        x = keras.ops.concatenate([cls, x], axis=1) + self.pos
        return x + keras.ops.mean(self.rel_h) + keras.ops.mean(self.rel_w)


class Experts(keras.layers.Layer):
    """Batched expert kernels (experts, in, out) with their zero biases (experts, out)."""

    def build(self, input_shape):
        d = input_shape[-1]
        self.kernel = self.add_weight(shape=(4, d, 4 * d), initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.bias = self.add_weight(shape=(4, 4 * d), initializer="zeros")

    def call(self, x):
        return keras.ops.einsum("btd,edf->btf", x, self.kernel) + keras.ops.mean(self.bias)


def test_tables_tokens_and_expert_biases_are_not_zero_weight_errors(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 64))
    x = Tables()(inputs)
    x = Experts()(x)
    outputs = keras.layers.Dense(8)(x)
    model = keras.Model(inputs, outputs)
    path = str(tmp_path / "m.weights.h5")
    model.save_weights(path)
    report = initcheck.check(path)
    loud = [(f.rule, f.layer) for f in report.findings if f.severity != "info"]
    assert loud == []
    roles = {layer.shape: layer.analysis["role"] for layer in report.layers}
    assert roles[(1, 1, 64)] == "token" and roles[(1, 17, 64)] == "position"
    # a planted zero kernel is still an error: the shapes only describe tensors that are not kernels
    model.layers[-1].kernel.assign(np.zeros((256, 8), "float32"))
    model.save_weights(str(tmp_path / "z.weights.h5"))
    zeroed = initcheck.check(str(tmp_path / "z.weights.h5"))
    assert any(f.rule == "IC002" and f.severity == "error" for f in zeroed.findings)
