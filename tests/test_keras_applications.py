"""Real Keras architectures (keras.applications, weights=None): stock initialization passes, planted faults
are found on the exact layer, and .keras/.h5 files give the same layers as the model in memory."""

from __future__ import annotations

import collections

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import initcheck  # noqa: E402
from initcheck.load import load  # noqa: E402

ERRORS = ("error",)


@pytest.fixture(scope="module")
def mobilenet():
    # alpha=0.35 and 96×96 keep it small; the layer structure (expand/depthwise/project, ReLU6) is the same
    return keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), alpha=0.35)


def _kernel(model, name):
    layer = model.get_layer(name)
    return getattr(layer, "depthwise_kernel", None) or layer.kernel


def test_mobilenet_v2_structure_and_context(mobilenet):
    m = load(mobilenet)
    got = {layer.name: layer for layer in m.layers}
    kinds = collections.Counter(layer.kind for layer in m.layers)
    assert kinds["depthwise_conv2d"] == 17 and kinds["batchnorm"] == 52 and kinds["linear"] == 1
    stem = got["Conv1"]  # 3×3, 3 → 16 channels (alpha 0.35 rounds to 16)
    assert (stem.fan_in, stem.fan_out, stem.context.position, stem.context.activation) == (27, 144, "input", "relu")
    assert stem.context.norm_after
    dw = got["block_3_depthwise"]  # (3, 3, C, 1): data flow sees 9 inputs; Keras' compute_fans 9·C
    c = dw.shape[2]
    assert (dw.fan_in, dw.fan_out, dw.framework_fans) == (9, 9, (9 * c, 9))
    assert dw.context.activation == "relu"
    # linear bottleneck: the projection has no activation, and block 2's is added to the next block's input
    assert got["block_2_project"].context.activation == "linear"
    assert got["block_2_project_BN"].context.residual
    assert got["predictions"].context.position == "output"


def test_mobilenet_v2_stock_init_has_no_errors(mobilenet):
    report = initcheck.check(mobilenet)
    assert report.model.framework == "keras"
    assert [f for f in report.findings if f.severity in ERRORS] == []
    assert report.exit_code() == 0


@pytest.mark.parametrize("layer,fault,rule", [
    ("block_3_expand", "x10", None),
    ("block_3_depthwise", "zeros", "IC002"),
    ("block_5_project", "nan", "IC001"),
    ("Conv1", "constant", "IC003"),
])
def test_planted_faults_found_on_the_layer(mobilenet, layer, fault, rule):
    v = _kernel(mobilenet, layer)
    original = np.array(v.numpy())
    clean = initcheck.check(mobilenet)
    clean_layer = next(x for x in clean.model.layers if x.name == layer)
    planted = {"x10": original * 10, "zeros": np.zeros_like(original),
               "nan": np.where(np.arange(original.size).reshape(original.shape) == 5, np.nan, original),
               "constant": np.full_like(original, 0.05)}[fault]
    v.assign(planted)
    try:
        report = initcheck.check(mobilenet)
    finally:
        v.assign(original)
    flagged = {f.layer for f in report.findings if f.severity in ("error", "warning")}
    assert flagged == {layer}, [(f.rule, f.layer) for f in report.findings]
    if rule is not None:
        assert any(f.rule == rule and f.layer == layer and f.severity == "error" for f in report.findings)
    else:
        hit = next(x for x in report.model.layers if x.name == layer)
        assert hit.weight.stats.std == pytest.approx(10 * clean_layer.weight.stats.std, rel=1e-6)
        if "std_ratio" in hit.analysis:
            assert hit.analysis["std_ratio"] == pytest.approx(10 * clean_layer.analysis["std_ratio"], rel=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name,factory,kwargs,depthwise", [
    ("ResNet50", "ResNet50", {}, 0),
    ("EfficientNetB0", "EfficientNetB0", {}, 16),
    ("Xception", "Xception", {"input_shape": (71, 71, 3)}, 34),
    ("DenseNet121", "DenseNet121", {"input_shape": (32, 32, 3)}, 0),
])
def test_applications_stock_init(name, factory, kwargs, depthwise):
    model = getattr(keras.applications, factory)(weights=None, **kwargs)
    report = initcheck.check(model)
    assert [f for f in report.findings if f.severity in ERRORS] == []
    layers = report.model.layers
    assert sum(layer.kind == "depthwise_conv2d" for layer in layers) == depthwise
    matrices = [layer for layer in layers if layer.is_matrix]
    # every matrix layer's activation comes from the graph, and exactly one layer is the model's output
    assert all(layer.context.activation_source == "graph" for layer in matrices)
    assert [layer.name for layer in matrices if layer.context.position == "output"] == ["predictions"]
    inputs = [layer for layer in matrices if layer.context.position == "input"]
    assert len(inputs) == 1 and inputs[0].fan_in == 3 * np.prod(inputs[0].shape[:-2])


@pytest.mark.slow
def test_resnet_context_from_graph():
    model = keras.applications.ResNet50(weights=None)
    got = {layer.name: layer for layer in load(model).layers}
    # conv → BN → ReLU inside a block; conv → BN → Add at its end; the shortcut projection likewise
    assert got["conv2_block1_1_conv"].context.activation == "relu"
    assert got["conv2_block1_1_conv"].context.norm_after
    assert got["conv2_block1_3_bn"].context.residual
    assert got["conv2_block1_0_bn"].context.residual


@pytest.mark.slow
@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_files_of_a_real_architecture(tmp_path, mobilenet, ext):
    path = str(tmp_path / f"mnv2.{ext}")
    mobilenet.save(path)
    ref = load(mobilenet)
    m = load(path)
    assert [(x.name, x.kind, x.fan_in, x.fan_out, x.context.activation, x.context.position) for x in m.layers] == \
        [(x.name, x.kind, x.fan_in, x.fan_out, x.context.activation, x.context.position) for x in ref.layers]
    report = initcheck.check(path)
    assert [f for f in report.findings if f.severity in ERRORS] == []
