"""The Keras graph builder follows custom layers' call() the way keras_hub writes them (issue 13).

Each custom layer below copies a pattern of a keras_hub block that used to leave its inner layers without
context: one Dropout called twice (ViT's MLP), a nested layer returning ``(output, None)`` (attention with
an empty cache), same-named sublayers in two blocks (T5's self- and cross-attention), a weightless
stochastic-depth layer, a subclass of MultiHeadAttention with a call() of its own, a call() that calls
TensorFlow directly (traced in a TensorFlow graph), and a call() that needs concrete values (it stays opaque,
and the reason names it).
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")
from keras import layers, ops  # noqa: E402

from initcheck.load import load  # noqa: E402


class SharedDropoutMLP(layers.Layer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.fc1 = layers.Dense(16, activation="gelu", name="fc1")
        self.fc2 = layers.Dense(8, name="fc2")
        self.drop = layers.Dropout(0.1, name="drop")

    def call(self, x):
        return self.drop(self.fc2(self.drop(self.fc1(x))))


class CacheAttention(layers.Layer):
    """Returns ``(output, cache)``; the cache is None without decoding."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.proj = layers.Dense(8, name="proj")

    def call(self, x, cache=None):
        return self.proj(x), cache


class DropPath(layers.Layer):
    def call(self, x, training=None):
        return x  # identity at inference (stochastic depth)


class Block(layers.Layer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.norm = layers.LayerNormalization(name="norm")
        self.attn = CacheAttention(name="attn")
        self.mlp = SharedDropoutMLP(name="mlp")
        self.drop_path = DropPath(name="drop_path")

    def call(self, x):
        y, _ = self.attn(self.norm(x))
        x = x + self.drop_path(y)
        return x + self.mlp(x)


class TwoBlocks(layers.Layer):
    """Two blocks whose sublayers share names (a Functional would refuse them)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.first = Block(name="first")
        self.second = Block(name="second")

    def call(self, x):
        return self.second(self.first(x))


class OwnCallAttention(layers.MultiHeadAttention):
    """A MultiHeadAttention subclass with its own call() signature (keras_hub's CachedMultiHeadAttention)."""

    def call(self, query, value, key=None, attention_mask=None, cache=None, training=None):
        return super().call(query, value, key=key, attention_mask=attention_mask, training=training)


class OwnCallBlock(layers.Layer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.attn = OwnCallAttention(num_heads=2, key_dim=4, name="attn")

    def build(self, input_shape):
        self.attn.build(input_shape, input_shape)

    def call(self, x):
        return x + self.attn(x, x, cache=None)


class CallsTensorFlow(layers.Layer):
    """call() calls TensorFlow directly (keras_hub's RWKV7): no symbolic run, a TensorFlow-graph trace."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.fc1 = layers.Dense(16, name="fc1")
        self.fc2 = layers.Dense(8, name="fc2")

    def build(self, input_shape):
        self.fc1.build(input_shape)
        self.fc2.build((*input_shape[:-1], 16))

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, x):
        import tensorflow as tf

        steps = tf.shape(x)[1]  # a size read as a value
        h = tf.math.tanh(self.fc1(x)) * tf.cast(steps, x.dtype) / tf.cast(steps, x.dtype)
        return x + ops.gelu(self.fc2(h)) * 0.5


class NeedsValues(layers.Layer):
    """call() branches on a tensor's value: it cannot run on symbolic inputs."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.fc = layers.Dense(8, name="fc")

    def build(self, input_shape):
        self.fc.build(input_shape)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 8)

    def call(self, x):
        if ops.convert_to_numpy(ops.sum(x)) > 0:
            return self.fc(x)
        return x


def _contexts(block):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 8))
    model = keras.Model(inputs, layers.Dense(3, name="head")(block(inputs)))
    report_model = load(model)
    return {layer.name: layer.context for layer in report_model.layers}


def test_custom_blocks_with_shared_calls_empty_caches_and_repeated_names():
    ctx = _contexts(TwoBlocks(name="blocks"))
    for block in ("first", "second"):
        assert ctx[f"blocks/{block}/mlp/fc1"].activation == "gelu"
        fc2 = ctx[f"blocks/{block}/mlp/fc2"]  # after the Dropout's second call
        assert fc2.activation == "linear" and fc2.residual, fc2
        proj = ctx[f"blocks/{block}/attn/proj"]  # inside the nested (output, None) layer, then DropPath
        assert proj.activation == "linear" and proj.residual, proj
    assert all(c.activation is not None for c in ctx.values())


def test_subclassed_attention_with_its_own_call_is_traced():
    ctx = _contexts(OwnCallBlock(name="block"))
    out = [c for name, c in ctx.items() if name.startswith("block/attn") and c.residual]
    assert out, {n: (c.activation, c.activation_unknown_reason) for n, c in ctx.items()}
    assert all(c.activation is not None for c in ctx.values())


def test_call_that_calls_tensorflow_is_traced_in_a_tensorflow_graph():
    if keras.config.backend() != "tensorflow":
        pytest.skip("the TensorFlow-graph trace needs the TensorFlow backend")
    ctx = _contexts(CallsTensorFlow(name="tfcall"))
    assert ctx["tfcall/fc1"].activation == "tanh"
    assert ctx["tfcall/fc2"].activation == "gelu_tanh"  # ops.gelu's default is the tanh form
    assert ctx["head"].position == "output"


def test_untraceable_custom_layer_is_named_in_the_reason():
    ctx = _contexts(NeedsValues(name="needs_values"))
    fc = ctx["needs_values/fc"]
    assert fc.activation is None
    assert "'needs_values' (NeedsValues)" in fc.activation_unknown_reason
    assert "symbolic" in fc.activation_unknown_reason
    if keras.config.backend() == "tensorflow":
        assert "in a TensorFlow graph too" in fc.activation_unknown_reason


def test_attention_mask_from_a_model_input_is_no_data_edge():
    keras.utils.set_random_seed(0)
    tokens, mask = keras.Input((4, 8)), keras.Input((4, 4), dtype="bool")
    x = layers.Dense(8, name="embed")(tokens)
    y = layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(x, x, attention_mask=mask)
    model = keras.Model([tokens, mask], layers.Dense(3, name="head")(x + y))
    ctx = {layer.name: layer.context for layer in load(model).layers}
    assert ctx["embed"].position == "input"
    inner = [name for name in ctx if name.startswith("mha")]
    assert inner and all(ctx[name].position != "input" for name in inner), {n: ctx[n].position for n in inner}
