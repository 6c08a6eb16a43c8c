"""Keras loading: every format, fans in Keras layouts (hand-computed), graph context, trust gating,
missing dependencies, the torch backend, and the writer."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import numpy as np
import pytest

from conftest import run_cli, run_python

keras = pytest.importorskip("keras")
from keras import layers  # noqa: E402

from initcheck.errors import InitcheckError, MissingDependencyError, UntrustedFormatError  # noqa: E402
from initcheck.load import load  # noqa: E402


def by_name(model):
    return {layer.name: layer for layer in model.layers}


def small_functional() -> "keras.Model":
    """Every Keras layout with hand-checkable fans, a nested Sequential and residual/norm context."""
    inp = keras.Input((16, 16, 3), name="img")
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inp)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    y = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    y = layers.LeakyReLU(negative_slope=0.1, name="leaky")(y)
    y = layers.Conv2D(8, 1, name="pw_proj")(y)
    x = layers.Add(name="add")([x, y])
    x = layers.SeparableConv2D(12, 3, padding="same", activation="relu", name="sep")(x)
    x = layers.Conv2D(12, 3, padding="same", groups=4, activation="gelu", name="grouped")(x)
    x = layers.Conv2DTranspose(6, 3, strides=2, name="up")(x)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Flatten(name="flat")(x)
    x = layers.Dropout(0.1, name="drop")(x)
    x = layers.Dense(20, name="fc")(x)
    x = layers.Activation("tanh", name="fc_tanh")(x)
    head = keras.Sequential([keras.Input((20,)), layers.Dense(10, activation="elu", name="inner_fc"),
                             layers.Dense(4, activation="softmax", name="logits")], name="head")
    return keras.Model(inp, head(x), name="net")


EXPECTED_FANS = {
    # name: (kind, fan_in, fan_out, keras compute_fans)
    "stem": ("conv2d", 3 * 9, 8 * 9, (27, 72)),
    "dw": ("depthwise_conv2d", 9, 2 * 9, (9 * 8, 9 * 2)),  # data flow: one channel × 3×3; Keras: ×in
    "pw_proj": ("conv2d", 16, 8, (16, 8)),
    "sep/depthwise": ("depthwise_conv2d", 9, 9, (72, 9)),
    "sep/pointwise": ("conv2d", 8, 12, (8, 12)),
    "grouped": ("conv2d", 3 * 9, 3 * 9, (27, 108)),  # 12 in / 4 groups = 3; 12 out / 4 groups = 3
    # kernel (3, 3, 6, 12): an output position sums in=12 channels × ≈(3/2)² = 2.25 taps (stride 2), rounded
    "up": ("conv_transpose2d", 12 * 2, 6 * 9, (54, 108)),
    "fc": ("linear", 16 * 16 * 6, 20, (1536, 20)),  # 16 → (16-1)·2+3 = 33 → pool → 16
    "head/inner_fc": ("linear", 20, 10, (20, 10)),
    "head/logits": ("linear", 10, 4, (10, 4)),
}


@pytest.fixture(scope="module")
def functional():
    return small_functional()


def test_in_memory_fans_and_kinds(functional):
    m = load(functional)
    assert m.framework == "keras" and m.format == "keras_model" and m.handle is functional
    got = by_name(m)
    for name, (kind, fi, fo, fw) in EXPECTED_FANS.items():
        layer = got[name]
        assert (layer.kind, layer.fan_in, layer.fan_out, layer.framework_fans) == (kind, fi, fo, fw), name
    assert got["stem_bn"].kind == "batchnorm"
    assert got["stem_bn"].weight.role == "scale" and got["stem_bn"].bias.role == "shift"
    assert got["stem"].bias is None and got["pw_proj"].bias.role == "bias"
    # the separable conv's bias belongs to its pointwise half
    assert got["sep/depthwise"].bias is None and got["sep/pointwise"].bias.shape == (12,)
    # unit axes: Keras kernels index output units last; transposed conv kernels (k, k, filters, in) at -2
    assert got["fc"].weight.tensor.units() == 20
    assert got["up"].weight.tensor.units() == 6
    assert got["dw"].weight.tensor.units() == 8
    # BatchNorm moving statistics are no parameters to judge
    assert not any("moving" in p.name for layer in m.layers for p in layer.params)


def test_graph_context(functional):
    got = by_name(load(functional))

    def ctx(name):
        c = got[name].context
        return c.activation, c.activation_param, c.norm_after, c.residual, c.position

    assert ctx("stem") == ("relu", None, True, False, "input")
    assert ctx("dw") == ("leaky_relu", 0.1, False, False, "hidden")
    assert ctx("pw_proj")[:4] == ("linear", None, False, True)  # ends a residual branch into Add
    assert ctx("sep/depthwise")[0] == "linear"  # no activation inside a separable convolution
    assert got["sep/depthwise"].context.consumers == ["sep/pointwise"]
    assert ctx("sep/pointwise")[0] == "relu"  # the layer's own activation argument
    assert ctx("grouped")[0] == "gelu"
    assert ctx("up")[0] == "linear"  # through pooling, flatten and dropout into the next Dense
    assert ctx("fc")[0] == "tanh"  # the Activation layer after it, across the nested model boundary
    assert got["fc"].context.consumers == ["head/inner_fc"]
    assert ctx("head/inner_fc")[0] == "elu"
    assert ctx("head/logits")[4] == "output"
    assert all(layer.context.activation_source == "graph" for layer in got.values() if layer.is_matrix)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, functional):
    d = tmp_path_factory.mktemp("keras_files")
    paths = {"keras": str(d / "m.keras"), "h5": str(d / "m.h5"), "weights": str(d / "m.weights.h5")}
    functional.save(paths["keras"])
    functional.save(paths["h5"])
    functional.save_weights(paths["weights"])
    return paths


@pytest.mark.parametrize("fmt,expected_format", [("keras", "keras"), ("h5", "h5")])
def test_files_match_in_memory(saved, functional, fmt, expected_format):
    ref = load(functional)
    m = load(saved[fmt])
    assert m.framework == "keras" and m.format == expected_format and m.path == saved[fmt]
    assert [layer.name for layer in m.layers] == [layer.name for layer in ref.layers]
    for a, b in zip(m.layers, ref.layers):
        assert (a.kind, a.fan_in, a.fan_out, a.framework_fans) == (b.kind, b.fan_in, b.fan_out, b.framework_fans)
        assert a.context.activation == b.context.activation and a.context.position == b.context.position
        np.testing.assert_array_equal(a.weight.tensor.numpy(), b.weight.tensor.numpy())


FACTORY = textwrap.dedent('''
    import sys
    sys.path.insert(0, {tests!r})
    from test_keras_formats import small_functional

    def build():
        return small_functional()

    def not_a_model():
        return 42
''')


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "my_arch.py").write_text(FACTORY.format(tests=os.path.dirname(__file__)))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_arch", None)
    return "my_arch:build"


def test_weights_h5_with_factory(saved, functional, factory_module):
    from initcheck.frameworks.keras.load import load_weights_with_factory

    m = load(saved["weights"], model_factory=factory_module)
    direct = load_weights_with_factory(saved["weights"], factory_module)
    ref = load(functional)
    for got in (m, direct):
        assert got.format == "keras_weights" and got.framework == "keras"
        assert [(x.name, x.kind, x.fan_in, x.context.activation) for x in got.layers] == \
            [(x.name, x.kind, x.fan_in, x.context.activation) for x in ref.layers]
        # the weights in the file, not the factory's fresh initialization
        np.testing.assert_array_equal(by_name(got)["fc"].weight.tensor.numpy(),
                                      functional.get_layer("fc").kernel.numpy())


def test_weights_h5_factory_errors(saved, factory_module):
    with pytest.raises(InitcheckError, match="not a keras.Model"):
        load(saved["weights"], model_factory="my_arch:not_a_model")
    with pytest.raises(InitcheckError, match="cannot import"):
        load(saved["weights"], model_factory="no_such_module_xyz:build")
    with pytest.raises(InitcheckError, match="package.module:factory"):
        load(saved["weights"], model_factory="nocolon")


def test_weights_h5_without_factory_infers_from_shapes(saved):
    m = load(saved["weights"])
    assert m.format == "keras_weights" and m.handle is None
    assert any("--model" in note for note in m.source_notes)
    dense = [layer for layer in m.layers if layer.kind == "linear"]
    # Dense kernels (in, out) are unambiguous from shapes: fc (1536, 20) and the nested head's two layers
    assert sorted((x.fan_in, x.fan_out) for x in dense) == [(10, 4), (20, 10), (1536, 20)]
    # .weights.h5 names layers by class (conv2d_1, separable_conv2d), not by the user's names
    kinds = {layer.name: layer.kind for layer in m.layers}
    assert kinds["separable_conv2d/depthwise"] == "depthwise_conv2d"
    assert kinds["separable_conv2d/pointwise"] == "conv2d"
    assert kinds["depthwise_conv2d"] == "depthwise_conv2d"
    norms = [layer for layer in m.layers if layer.kind == "batchnorm"]
    assert len(norms) == 1 and norms[0].weight.shape == (8,) and norms[0].bias.role == "shift"


def test_cli_weights_h5_with_model_option(saved, tmp_path):
    (tmp_path / "my_arch_cli.py").write_text(FACTORY.format(tests=os.path.dirname(__file__)))
    res = run_cli(saved["weights"], "--model", "my_arch_cli:build", "--format", "json", "--no-progress",
                  cwd=str(tmp_path))
    assert res.returncode in (0, 1), res.stderr
    doc = json.loads(res.stdout)
    layers_doc = {layer["name"]: layer for layer in doc["layers"]}
    # the factory's architecture: exact names, kinds and graph context (inference alone has none of these)
    assert layers_doc["head/inner_fc"]["context"]["activation"] == "elu"
    assert layers_doc["sep/depthwise"]["kind"] == "depthwise_conv2d"
    assert (layers_doc["fc"]["fan_in"], layers_doc["fc"]["fan_out"]) == (1536, 20)


# ------------------------------------------------------------------------------------------ gating
@pytest.fixture(scope="module")
def lambda_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lambda")
    inp = keras.Input((4,))
    x = layers.Dense(8, activation="relu", name="d1")(inp)
    x = layers.Lambda(lambda t: t * 2.0, name="double")(x)
    m = keras.Model(inp, layers.Dense(2, name="d2")(x))
    paths = {"keras": str(d / "lam.keras"), "h5": str(d / "lam.h5")}
    m.save(paths["keras"])
    m.save(paths["h5"])
    return paths


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_lambda_refused_without_trust(lambda_files, fmt):
    from click.testing import CliRunner

    from initcheck.cli import main

    path = lambda_files[fmt]
    with pytest.raises(UntrustedFormatError, match="Lambda layer double"):
        load(path)
    result = CliRunner().invoke(main, [path, "--no-progress"])
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"initcheck: error: {path}: Lambda layer double")
    assert "--trust" in lines[0]


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_lambda_loads_with_trust(lambda_files, fmt):
    m = load(lambda_files[fmt], trust=True)
    got = by_name(m)
    assert set(got) == {"d1", "d2"}
    assert got["d1"].context.activation == "relu"  # its own argument; the Lambda after it is opaque
    assert got["d2"].context.position == "output"


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory):
    pytest.importorskip("tensorflow")
    d = str(tmp_path_factory.mktemp("sm") / "exported")
    m = keras.Sequential([keras.Input((6,)), layers.Dense(5, name="a"), layers.BatchNormalization(name="bn"),
                          layers.Dense(3, name="b")], name="seq")
    m.export(d, verbose=False)
    return d, m


def test_saved_model_needs_trust(saved_model_dir):
    path, _ = saved_model_dir
    with pytest.raises(UntrustedFormatError, match="SavedModel"):
        load(path)
    res = run_cli(path, "--no-progress")
    assert res.returncode == 2 and "SavedModel" in res.stderr and "--trust" in res.stderr
    assert "Traceback" not in res.stderr


def test_saved_model_with_trust(saved_model_dir):
    path, keras_model = saved_model_dir
    m = load(path, trust=True)
    assert m.format == "saved_model" and m.framework == "keras"
    got = by_name(m)
    assert (got["a"].kind, got["a"].fan_in, got["a"].fan_out) == ("linear", 6, 5)
    assert (got["b"].kind, got["b"].fan_in, got["b"].fan_out) == ("linear", 5, 3)
    assert got["bn"].kind == "batchnorm" and got["bn"].weight.role == "scale"
    np.testing.assert_array_equal(got["a"].weight.tensor.numpy(), keras_model.get_layer("a").kernel.numpy())
    res = run_cli(path, "--trust", "--format", "json", "--no-progress")
    assert res.returncode in (0, 1), res.stderr


# ------------------------------------------------------------------------------------------ dependencies
def test_missing_keras_gives_install_hint(monkeypatch, saved):
    from initcheck.frameworks.keras import load as kload

    monkeypatch.setitem(sys.modules, "keras", None)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'initcheck\[keras\]'"):
        kload.import_keras()
    with pytest.raises(MissingDependencyError, match=r"initcheck\[keras\]"):
        load(saved["keras"])


def test_missing_keras_cli_exit_2(saved):
    code = textwrap.dedent(f"""
        import sys
        sys.modules['keras'] = None
        sys.modules['tensorflow'] = None
        from initcheck.cli import main
        sys.argv = ['initcheck', {saved['keras']!r}, '--no-progress']
        main()
    """)
    res = run_python(code)
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'initcheck[keras]'" in lines[0], res.stderr


def test_no_backend_at_all(monkeypatch):
    from initcheck.frameworks.keras import load as kload

    for name in ("keras", "tensorflow", "torch", "jax"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setattr(kload, "_available", lambda name: name == "keras")
    monkeypatch.setattr(kload, "_configured_backend", lambda: False)
    with pytest.raises(MissingDependencyError, match="backend"):
        kload.import_keras()


def test_torch_backend_without_tensorflow(saved):
    """A torch-only install checks .keras and .h5 files: initcheck selects Keras' torch backend."""
    pytest.importorskip("torch")
    code = textwrap.dedent(f"""
        import os, sys, json
        os.environ.pop('KERAS_BACKEND', None)
        os.environ['KERAS_HOME'] = {os.path.dirname(saved['keras'])!r}  # no keras.json there
        sys.modules['tensorflow'] = None
        import initcheck
        for p in ({saved['keras']!r}, {saved['h5']!r}):
            r = initcheck.check(p)
            names = [l.name for l in r.model.layers]
            print(json.dumps({{'backend': os.environ.get('KERAS_BACKEND'), 'names': names,
                              'notes': r.model.source_notes, 'tf': 'tensorflow.python' in sys.modules}}))
    """)
    res = run_python(code)
    assert res.returncode == 0, res.stderr[-2000:]
    for line in res.stdout.strip().splitlines()[-2:]:
        doc = json.loads(line)
        assert doc["backend"] == "torch" and not doc["tf"]
        assert "sep/depthwise" in doc["names"] and "head/logits" in doc["names"]
        assert any("torch backend" in n for n in doc["notes"])


def test_import_initcheck_and_torch_files_never_import_tensorflow(tmp_path):
    torch = pytest.importorskip("torch")
    path = str(tmp_path / "sd.pt")
    torch.save(torch.nn.Linear(4, 3).state_dict(), path)
    code = textwrap.dedent(f"""
        import sys, initcheck
        initcheck.check({path!r})
        print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))
    """)
    res = run_python(code)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "[]"


# ------------------------------------------------------------------------------------------ layers
def test_recurrent_attention_embedding_einsum():
    inp = keras.Input((7,), dtype="int32")
    e = layers.Embedding(50, 16, name="emb")(inp)
    a = layers.MultiHeadAttention(num_heads=4, key_dim=8, name="mha")(e, e)
    x = layers.Add(name="res")([e, a])
    x = layers.LayerNormalization(name="ln")(x)
    x = layers.LSTM(12, return_sequences=True, name="lstm")(x)
    x = layers.Bidirectional(layers.GRU(5, return_sequences=True), name="bi")(x)
    x = layers.SimpleRNN(3, name="rnn")(x)
    x = layers.EinsumDense("ab,bc->ac", output_shape=6, bias_axes="c", name="ein")(x)
    m = keras.Model(inp, x)
    got = by_name(load(m))
    assert (got["emb"].kind, got["emb"].fan_in, got["emb"].fan_out, got["emb"].context.position) == \
        ("embedding", 16, 50, "input")
    for proj in ("query", "key", "value"):
        layer = got[f"mha/{proj}"]
        # kernel (16, 4, 8): the model dim is contracted, heads × key_dim are outputs (Keras ≥ 3.15 rule)
        assert (layer.kind, layer.shape, layer.fan_in, layer.fan_out) == ("attention_in_proj", (16, 4, 8), 16, 32)
        assert layer.framework_fans == (16, 32)
        assert layer.attrs["framework_fans_before_keras_3_15"] == (64, 128)  # conv rule: 16·4, 16·8
    assert got["mha/query"].context.attention_logits and got["mha/key"].context.attention_logits
    out = got["mha/attention_output"]
    assert (out.kind, out.shape, out.fan_in, out.fan_out) == ("linear", (4, 8, 16), 32, 16)
    assert out.context.residual and out.context.activation == "linear"
    assert got["ln"].kind == "layernorm"
    k, r = got["lstm/kernel"], got["lstm/recurrent_kernel"]
    assert (k.kind, k.fan_in, k.fan_out, k.framework_fans) == ("lstm_input", 16, 12, (16, 48))
    assert (r.kind, r.fan_in, r.fan_out, r.framework_fans) == ("lstm_recurrent", 12, 12, (12, 48))
    assert k.bias is not None and k.bias.shape == (48,) and k.attrs["unit_forget_bias"] is True
    assert k.context.activation == "tanh"
    for direction in ("forward_gru", "backward_gru"):
        g = got[f"bi/{direction}/kernel"]
        assert (g.kind, g.fan_in, g.fan_out) == ("gru_input", 12, 5)
        assert got[f"bi/{direction}/recurrent_kernel"].kind == "gru_recurrent"
    s = got["rnn/kernel"]
    assert (s.kind, s.fan_in, s.fan_out) == ("rnn_input", 10, 3)
    ein = got["ein"]
    assert (ein.kind, ein.fan_in, ein.fan_out, ein.context.position) == ("linear", 3, 6, "output")


def test_subclassed_model_uses_own_activations():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.a = layers.Dense(8, activation="relu", name="a")
            self.b = layers.Dense(8, name="b")
            self.c = layers.Dense(2, name="c")

        def call(self, x):
            return self.c(keras.activations.tanh(self.b(self.a(x))))

    net = Net()
    net(np.zeros((1, 4), "float32"))
    m = load(net)
    got = by_name(m)
    assert got["a"].context.activation == "relu" and got["a"].context.position == "input"
    # b's activation is applied in call(): unknown without a graph, never guessed as linear
    assert got["b"].context.activation is None and got["b"].context.activation_source == "unknown"
    assert got["c"].context.position == "output"
    assert any("subclassed" in note for note in m.graph_notes)


def test_prelu_and_unbuilt_model():
    inp = keras.Input((6,))
    x = layers.Dense(4, name="d")(inp)
    x = layers.PReLU(name="p")(x)
    m = load(keras.Model(inp, layers.Dense(2, name="o")(x)))
    got = by_name(m)
    assert got["d"].context.activation == "leaky_relu" and got["d"].context.activation_param == 0.0
    assert got["p"].kind == "prelu" and not got["p"].is_matrix and got["p"].weight.shape == (4,)
    with pytest.raises(InitcheckError, match="not built"):
        load(keras.Sequential([layers.Dense(3)]))


# ------------------------------------------------------------------------------------------ writing
@pytest.mark.parametrize("fmt,ext", [("keras_zip", "keras"), ("hdf5", "h5"), ("keras_weights", "weights.h5")])
def test_assign_and_save_roundtrip(tmp_path, fmt, ext):
    from initcheck.frameworks.keras.write import save_keras

    inp = keras.Input((5,))
    km = keras.Model(inp, layers.Dense(3, name="d")(inp))
    m = load(km)
    w = m.layers[0].weight
    new = np.arange(15, dtype=np.float64).reshape(w.shape) / 10
    w.assign(new)
    assert w.native is km.get_layer("d").kernel
    out = str(tmp_path / f"out.{ext}")
    save_keras(km, out, fmt)
    assert sorted(os.listdir(tmp_path)) == [f"out.{ext}"]  # no temporary left behind
    if fmt == "keras_weights":
        fresh = keras.Model(inp, layers.Dense(3, name="d")(inp))
        fresh.load_weights(out)
        np.testing.assert_allclose(fresh.get_layer("d").kernel.numpy(), new, rtol=1e-6)
    else:
        np.testing.assert_allclose(load(out).layers[0].weight.tensor.numpy(), new, rtol=1e-6)
    with pytest.raises(InitcheckError, match="overwrite the input"):
        save_keras(km, out, fmt, source=out)
    with pytest.raises(InitcheckError, match="cannot write Keras format"):
        save_keras(km, out, "onnx")
