"""Fans of every PyTorch layer kind against hand-computed values (docs/conventions.md).

fan_in = inputs feeding one output unit, fan_out = outputs one input feeds (data flow); ``framework_fans``
are what ``torch.nn.init._calculate_fan_in_and_fan_out`` computes for the stored shape.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from initcheck.frameworks.torch_layout import layer_fans, torch_helper_fans  # noqa: E402
from initcheck.load import load  # noqa: E402


class Zoo(nn.Module):
    """One of every weight-bearing kind; attribute names chosen so tensor-only inference has its hints."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(20, 30)
        self.conv1 = nn.Conv1d(4, 6, 5)
        self.conv2 = nn.Conv2d(3, 8, 3)
        self.conv3 = nn.Conv3d(2, 4, (2, 3, 3))
        self.grouped = nn.Conv2d(8, 16, 3, groups=2)
        self.depthwise = nn.Conv2d(8, 8, 3, groups=8)
        self.depthwise_mult = nn.Conv2d(8, 16, 3, groups=8)
        self.deconv1 = nn.ConvTranspose1d(4, 6, 3)
        self.deconv = nn.ConvTranspose2d(16, 8, 4)
        self.gdeconv = nn.ConvTranspose2d(16, 8, 4, groups=2)
        self.emb = nn.Embedding(100, 16)
        self.lstm = nn.LSTM(16, 32, num_layers=2, bidirectional=True)
        self.lstmp = nn.LSTM(16, 32, proj_size=8)
        self.gru = nn.GRU(16, 24)
        self.rnn = nn.RNN(16, 12)
        self.mha = nn.MultiheadAttention(16, 4)
        self.mha_kv = nn.MultiheadAttention(16, 4, kdim=10, vdim=6)
        self.bn = nn.BatchNorm2d(8)
        self.ln = nn.LayerNorm(16)
        self.gn = nn.GroupNorm(2, 8)
        self.rms = nn.RMSNorm(16)
        self.bilinear = nn.Bilinear(5, 7, 3)


# name → (kind, shape, fan_in, fan_out), computed by hand from each layer's definition
MODULE_EXPECTED = {
    "fc": ("linear", (30, 20), 20, 30),
    "conv1": ("conv1d", (6, 4, 5), 4 * 5, 6 * 5),
    "conv2": ("conv2d", (8, 3, 3, 3), 3 * 9, 8 * 9),
    "conv3": ("conv3d", (4, 2, 2, 3, 3), 2 * 18, 4 * 18),
    # groups=2: an output channel sees 8/2 input channels; an input channel feeds 16/2 output channels
    "grouped": ("conv2d", (16, 4, 3, 3), 4 * 9, 8 * 9),
    "depthwise": ("depthwise_conv2d", (8, 1, 3, 3), 9, 9),
    "depthwise_mult": ("depthwise_conv2d", (16, 1, 3, 3), 9, 2 * 9),
    # transposed (in, out/g, k...): an output unit sums in/g channels × taps; an input feeds out/g × taps
    "deconv1": ("conv_transpose1d", (4, 6, 3), 4 * 3, 6 * 3),
    "deconv": ("conv_transpose2d", (16, 8, 4, 4), 16 * 16, 8 * 16),
    "gdeconv": ("conv_transpose2d", (16, 4, 4, 4), 8 * 16, 4 * 16),
    "emb": ("embedding", (100, 16), 16, 100),
    "lstm.weight_ih_l0": ("lstm_input", (128, 16), 16, 32),
    "lstm.weight_hh_l0": ("lstm_recurrent", (128, 32), 32, 32),
    "lstm.weight_ih_l0_reverse": ("lstm_input", (128, 16), 16, 32),
    "lstm.weight_hh_l0_reverse": ("lstm_recurrent", (128, 32), 32, 32),
    "lstm.weight_ih_l1": ("lstm_input", (128, 64), 64, 32),  # layer 2 reads both directions: 2·32
    "lstm.weight_hh_l1": ("lstm_recurrent", (128, 32), 32, 32),
    "lstm.weight_ih_l1_reverse": ("lstm_input", (128, 64), 64, 32),
    "lstm.weight_hh_l1_reverse": ("lstm_recurrent", (128, 32), 32, 32),
    "lstmp.weight_ih_l0": ("lstm_input", (128, 16), 16, 32),
    "lstmp.weight_hh_l0": ("lstm_recurrent", (128, 8), 8, 32),  # the recurrent input is the projected h
    "lstmp.weight_hr_l0": ("lstm_projection", (8, 32), 32, 8),
    "gru.weight_ih_l0": ("gru_input", (72, 16), 16, 24),
    "gru.weight_hh_l0": ("gru_recurrent", (72, 24), 24, 24),
    "rnn.weight_ih_l0": ("rnn_input", (12, 16), 16, 12),
    "rnn.weight_hh_l0": ("rnn_recurrent", (12, 12), 12, 12),
    "mha.in_proj_weight": ("attention_in_proj", (48, 16), 16, 16),  # per projection, not 48
    "mha.out_proj": ("linear", (16, 16), 16, 16),
    "mha_kv.q_proj_weight": ("attention_proj", (16, 16), 16, 16),
    "mha_kv.k_proj_weight": ("attention_proj", (16, 10), 10, 16),
    "mha_kv.v_proj_weight": ("attention_proj", (16, 6), 6, 16),
    "mha_kv.in_proj_bias": ("bias", (48,), None, None),
    "mha_kv.out_proj": ("linear", (16, 16), 16, 16),
    "bn": ("batchnorm", (8,), None, None),
    "ln": ("layernorm", (16,), None, None),
    "gn": ("groupnorm", (8,), None, None),
    "rms": ("rmsnorm", (16,), None, None),
    "bilinear": ("bilinear", (3, 5, 7), 5 * 7, 3),
}

# What a file of tensors alone cannot tell (docs/conventions.md): groups and depthwise-ness
TENSOR_ONLY_DIFFERENCES = {
    "grouped": ("conv2d", (16, 4, 3, 3), 4 * 9, 16 * 9),
    "depthwise": ("conv2d", (8, 1, 3, 3), 9, 8 * 9),
    "depthwise_mult": ("conv2d", (16, 1, 3, 3), 9, 16 * 9),
    "gdeconv": ("conv_transpose2d", (16, 4, 4, 4), 16 * 16, 4 * 16),
}


@pytest.fixture(scope="module")
def zoo():
    torch.manual_seed(0)
    return Zoo()


def summary(model):
    return {layer.name: (layer.kind, tuple(layer.shape), layer.fan_in, layer.fan_out) for layer in model.layers}


def test_module_fans_by_hand(zoo):
    got = summary(load(zoo))
    assert got == MODULE_EXPECTED


def test_module_layers_have_module_kind_source(zoo):
    for layer in load(zoo).layers:
        assert layer.kind_source == "module", layer.name


def test_tensor_only_fans_by_hand(zoo):
    got = summary(load(zoo.state_dict()))
    expected = {**MODULE_EXPECTED, **TENSOR_ONLY_DIFFERENCES}
    assert got == expected


def test_tensor_only_states_what_it_cannot_tell(zoo):
    model = load(zoo.state_dict())
    by_name = {layer.name: layer for layer in model.layers}
    for name in ("conv2", "grouped", "depthwise"):
        assert any("groups" in n for n in by_name[name].notes), by_name[name].notes
    assert any("depthwise" in n for n in by_name["depthwise"].notes)
    assert any("Bilinear" in n for n in by_name["conv1"].notes)  # a 3-D weight could be a Bilinear
    assert any("transposed" in n for n in by_name["deconv"].notes)
    assert all(layer.kind_source == "inferred" for layer in model.layers)


def test_framework_fans_match_torch_helper(zoo):
    from torch.nn.init import _calculate_fan_in_and_fan_out

    model = load(zoo)
    params = dict(zoo.named_parameters())
    checked = 0
    for layer in model.layers:
        t = params[layer.weight.name]
        if t.dim() < 2:
            assert layer.framework_fans is None
            continue
        assert layer.framework_fans == _calculate_fan_in_and_fan_out(t), layer.name
        assert torch_helper_fans(tuple(t.shape)) == _calculate_fan_in_and_fan_out(t)
        checked += 1
    assert checked >= 25


def test_data_flow_differs_from_helper_where_layout_differs(zoo):
    """Transposed, depthwise and fused layers: the data-flow fans are not torch's helper fans."""
    layers = {layer.name: layer for layer in load(zoo).layers}
    assert layers["deconv1"].framework_fans == (18, 12) and (layers["deconv1"].fan_in, layers["deconv1"].fan_out) == (12, 18)
    assert layers["depthwise"].framework_fans == (9, 72) and layers["depthwise"].fan_out == 9
    assert layers["mha.in_proj_weight"].framework_fans == (16, 48) and layers["mha.in_proj_weight"].fan_out == 16
    assert layers["lstm.weight_ih_l0"].framework_fans == (16, 128) and layers["lstm.weight_ih_l0"].fan_out == 32


def test_norm_roles_and_bias(zoo):
    layers = {layer.name: layer for layer in load(zoo).layers}
    for name in ("bn", "ln", "gn"):
        assert layers[name].weight.role == "scale" and layers[name].bias.role == "shift"
    assert layers["rms"].bias is None
    assert layers["fc"].bias is not None and layers["fc"].bias.name == "fc.bias"
    assert layers["lstm.weight_ih_l0"].bias.name == "lstm.bias_ih_l0"
    assert layers["mha.in_proj_weight"].bias.name == "mha.in_proj_bias"


def test_transformers_conv1d_fans_and_units():
    pytest.importorskip("transformers")
    from transformers.pytorch_utils import Conv1D

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = Conv1D(12, 5)  # nf=12 outputs, nx=5 inputs: weight stored (5, 12)
            self.c_proj = Conv1D(5, 5)  # square: only its sibling shows the transposed storage

    torch.manual_seed(0)
    root = nn.Module()
    root.mlp = Block()
    for source in (root, root.state_dict()):
        layers = {layer.name: layer for layer in load(source).layers}
        fc, proj = layers["mlp.c_fc"], layers["mlp.c_proj"]
        assert (fc.kind, fc.fan_in, fc.fan_out) == ("linear_transposed", 5, 12)
        assert (proj.kind, proj.fan_in, proj.fan_out) == ("linear_transposed", 5, 5)
        assert fc.framework_fans == (12, 5)  # torch's helper reads the (in, out) storage backwards
        assert fc.weight.tensor.unit_axis == 1 and fc.weight.tensor.units() == 12


def test_conv_transpose_units_are_output_channels(zoo):
    layers = {layer.name: layer for layer in load(zoo).layers}
    assert layers["deconv"].weight.tensor.units() == 8  # (in=16, out=8, k, k): 8 output channels


def test_standalone_parameters_squeeze_leading_axes():
    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.cls_token = nn.Parameter(torch.zeros(1, 1, 32))
            self.position_embeddings = nn.Parameter(torch.randn(1, 17, 32))

    root = nn.Module()
    root.embeddings = Tokens()
    layers = {layer.name: layer for layer in load(root).layers}
    cls, pos = layers["embeddings.cls_token"], layers["embeddings.position_embeddings"]
    assert (cls.fan_in, cls.fan_out) == (None, None)
    assert (pos.fan_in, pos.fan_out) == (32, 17)  # a (17, 32) table, not 17·32 inputs


@pytest.mark.parametrize("kind,shape,attrs,expected", [
    ("linear", (30, 20), {}, (20, 30)),
    ("linear_transposed", (20, 30), {}, (20, 30)),
    ("conv2d", (16, 4, 3, 3), {"groups": 2}, (36, 72)),
    ("depthwise_conv2d", (8, 1, 3, 3), {"groups": 8}, (9, 9)),
    ("conv_transpose2d", (16, 4, 4, 4), {"groups": 2}, (128, 64)),
    ("conv_transpose3d", (6, 3, 2, 2, 2), {}, (48, 24)),
    ("lstm_input", (128, 16), {"gates": 4}, (16, 32)),
    ("gru_recurrent", (72, 24), {"gates": 3}, (24, 24)),
    ("attention_in_proj", (48, 16), {"projections": 3}, (16, 16)),
    ("bilinear", (3, 5, 7), {}, (35, 3)),
    ("embedding", (100, 16), {}, (16, 100)),
    ("layernorm", (16,), {}, (None, None)),
])
def test_layer_fans_table(kind, shape, attrs, expected):
    assert layer_fans(kind, shape, attrs) == expected
