"""The graph walk follows what real code does between a layer and its consumers (issue 13).

Each module below is written the way stock architectures write it (timm, transformers): the test checks
the context the walk reads for the named layer, through torch.fx and through a recorded forward pass.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from initcheck.frameworks.torch.graph import example_inputs, fx_graph, torch_graph, traced_graph  # noqa: E402
from initcheck.graph import annotate  # noqa: E402
from initcheck.load import load  # noqa: E402
from initcheck.report import Report  # noqa: E402


def context_of(module, *example, source="fx"):
    """Layers' contexts (by name) from an fx graph or a recorded forward pass on ``example``."""
    torch.manual_seed(0)
    model = load(module.eval())
    if source == "fx":
        graph = fx_graph(module, model)
    else:
        graph = traced_graph(module, model, example)
    annotate(model, graph)
    return {layer.name: layer.context for layer in model.layers}, model


BOTH = pytest.mark.parametrize("source", ["fx", "trace"])


class TransposedWeight(nn.Module):
    """``x @ self.weight.T`` then GELU: the transpose is a view of the weight, not the op after the layer."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 16)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        h = F.gelu(x @ self.proj.weight.T + self.proj.bias)
        return self.out(h)


@BOTH
def test_weight_transpose_is_looked_through(source):
    ctx, _ = context_of(TransposedWeight(), torch.randn(2, 8), source=source)
    assert ctx["proj"].activation == "gelu"
    assert ctx["out"].position == "output"


class ShapeQueryThenNorm(nn.Module):
    """conv → (x.shape read for a check) → BN → ReLU: the shape query ends nothing."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = self.conv(x)
        b, c, h, w = x.shape
        torch._assert(c == 8, "channels")
        x = F.relu(self.bn(x))
        return self.head(x.mean((2, 3)))


@BOTH
def test_shape_queries_do_not_end_the_walk(source):
    ctx, _ = context_of(ShapeQueryThenNorm(), torch.randn(1, 3, 8, 8), source=source)
    assert ctx["conv"].activation == "relu"
    assert ctx["conv"].norm_after is True


class RMSNorm(nn.Module):
    """An RMSNorm written out (pow, mean, rsqrt), as transformers and timm write theirs."""

    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        v = x.float().pow(2).mean(-1, keepdim=True)
        return (x * torch.rsqrt(v + 1e-6)) * self.weight


class PostNormResidual(nn.Module):
    """o_proj → RMSNorm → ·0.5 → + residual (Gemma 2 post-norms, a residual multiplier)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.o_proj = nn.Linear(8, 8)
        self.post_norm = RMSNorm(8)

    def forward(self, x):
        h = F.silu(self.fc(x))
        return x + self.post_norm(self.o_proj(h)) * 0.5


@BOTH
def test_norm_and_scalar_multiplier_between_projection_and_residual_add(source):
    ctx, _ = context_of(PostNormResidual(), torch.randn(2, 8), source=source)
    assert ctx["o_proj"].activation == "linear"
    assert ctx["o_proj"].residual is True
    assert ctx["o_proj"].norm_after is True
    assert ctx["fc"].activation == "silu"


class SoftcappedAttention(nn.Module):
    """Attention with a tanh softcap on the logits and a softcapped LM head (Gemma 2)."""

    def __init__(self):
        super().__init__()
        self.q = nn.Linear(8, 8)
        self.k = nn.Linear(8, 8)
        self.v = nn.Linear(8, 8)
        self.lm_head = nn.Linear(8, 11)

    def forward(self, x):
        scores = self.q(x) @ self.k(x).transpose(-1, -2) / 8 ** 0.5
        scores = torch.tanh(scores / 50.0) * 50.0
        h = torch.softmax(scores, dim=-1) @ self.v(x)
        logits = self.lm_head(h)
        return torch.tanh(logits / 30.0) * 30.0


@BOTH
def test_softcaps_are_looked_through(source):
    ctx, _ = context_of(SoftcappedAttention(), torch.randn(1, 5, 8), source=source)
    assert ctx["q"].attention_logits and ctx["k"].attention_logits
    assert ctx["lm_head"].activation == "linear"
    assert ctx["lm_head"].softcap is True
    assert ctx["lm_head"].position == "output"


class SoftmaxHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return torch.softmax(self.fc(torch.tanh(self.body(x))), dim=-1)


def test_softmax_head_reports_the_softmax():
    ctx, _ = context_of(SoftmaxHead(), torch.randn(2, 8), source="trace")
    assert ctx["fc"].activation_literal == "softmax"
    assert ctx["fc"].activation is not None
    assert ctx["fc"].position == "output"


class AuxHead(nn.Module):
    """An auxiliary classifier that only runs in training (Inception)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 8)
        self.aux = nn.Linear(8, 3)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = F.relu(self.body(x))
        if self.training:
            return self.head(h), self.aux(h)
        return self.head(h)


def test_training_only_branch_is_reported_off_the_inference_path():
    ctx, model = context_of(AuxHead(), torch.randn(2, 8), source="trace")
    assert ctx["aux"].activation is None
    assert ctx["aux"].on_inference_path is False
    assert "not on the inference path" in ctx["aux"].activation_unknown_reason
    assert ctx["body"].activation == "relu"
    report = Report(model=model, findings=[])
    assert report.summary()["unknown_activations"] == 1
    assert [r["layers"] for r in report.summary()["unknown_activation_reasons"]] == [1]


class UnknownOp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        return self.out(torch.erf(self.fc(x)))


def test_an_unknown_op_is_named_in_the_reason_and_counted_in_the_summary():
    ctx, model = context_of(UnknownOp(), torch.randn(2, 8), source="fx")
    assert ctx["fc"].activation is None
    assert "'erf'" in ctx["fc"].activation_unknown_reason
    summary = Report(model=model, findings=[]).summary()
    assert summary["unknown_activations"] == 1


# ------------------------------------------------------------------------------------------ input inference
class Config:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class WaveformModel(nn.Module):
    """A wav2vec2-style front end: conv1d over a (batch, samples) waveform, not traceable by fx."""

    def __init__(self):
        super().__init__()
        self.config = Config(is_encoder_decoder=False)
        self.conv = nn.Conv1d(1, 8, 10, stride=5)
        self.proj = nn.Linear(8, 4)

    def forward(self, input_values):
        if input_values.dim() != 2:
            raise ValueError("expects (batch, samples)")
        x = F.gelu(self.conv(input_values[:, None]))
        return self.proj(x.transpose(1, 2))


class FixedSizeImage(nn.Module):
    """A ViT-style model that only accepts the image size its config declares (a list)."""

    def __init__(self):
        super().__init__()
        self.config = Config(image_size=[48, 40], is_encoder_decoder=False)
        self.patch = nn.Conv2d(3, 8, 8, stride=8)
        self.pos = nn.Parameter(torch.zeros(1, 8, 6, 5))
        self.head = nn.Linear(8, 2)

    def forward(self, pixel_values):
        if tuple(pixel_values.shape[-2:]) != tuple(self.config.image_size):
            raise ValueError("image size must match the config")
        x = self.patch(pixel_values) + self.pos
        return self.head(F.relu(x).mean((2, 3)))


class MelEncoderDecoder(nn.Module):
    """A Whisper-style encoder-decoder: mel frames of a fixed length in, decoder token ids too."""

    def __init__(self):
        super().__init__()
        self.config = Config(is_encoder_decoder=True, max_source_positions=12, decoder_start_token_id=1)
        self.conv = nn.Conv1d(16, 8, 3, stride=2, padding=1)
        self.embed = nn.Embedding(20, 8)
        self.out = nn.Linear(8, 20)

    def forward(self, input_features=None, decoder_input_ids=None, decoder_inputs_embeds=None):
        if decoder_input_ids is not None and decoder_inputs_embeds is not None:
            raise ValueError("cannot specify both decoder_input_ids and decoder_inputs_embeds")
        if input_features.shape[-1] != 2 * self.config.max_source_positions:
            raise ValueError("mel frames must be 2 * max_source_positions")
        enc = F.gelu(self.conv(input_features)).transpose(1, 2)
        dec = self.embed(decoder_input_ids)
        return self.out(dec + enc.mean(1, keepdim=True))


@pytest.mark.parametrize("cls", [WaveformModel, FixedSizeImage, MelEncoderDecoder])
def test_inputs_are_inferred_from_the_model(cls):
    module = cls().eval()
    model = load(module)
    graph, why = torch_graph(module, model, None)
    assert graph is not None and "failed" not in why, why
    annotate(model, graph)
    first = model.layers[0] if cls is not FixedSizeImage else next(m for m in model.layers if m.name == "patch")
    assert first.context.activation in ("gelu", "relu")


def test_a_failed_inference_says_why_and_what_to_pass():
    class Picky(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            if x.shape[0] != 7:
                raise ValueError("batch must be 7")
            return self.fc(x) if x.numel() else x

    module = Picky().eval()
    model = load(module)
    _, why = torch_graph(module, model, (3, 8))  # an explicit shape skips fx and is tried alone
    assert "batch must be 7" in why and "--input-shape" in why


def test_input_shape_override_is_the_only_candidate():
    module = FixedSizeImage().eval()
    model = load(module)
    shapes = [kw.get("pixel_values", a[0] if a else None).shape for a, kw, _ in
              example_inputs(module, model, (1, 3, 48, 40))]
    assert shapes == [torch.Size([1, 3, 48, 40])]


class InceptionLikeAux(nn.Module):
    """An auxiliary classifier that runs only in training mode (torchvision's Inception and GoogLeNet)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 4)
        self.aux_hidden = nn.Linear(8, 8)
        self.aux_out = nn.Linear(8, 4)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x))).mean((2, 3))
        out = self.head(h)
        if self.training:
            return out, self.aux_out(torch.tanh(self.aux_hidden(h)))
        return out


def test_training_only_branch_gets_context_from_a_training_mode_trace():
    torch.manual_seed(0)
    module = InceptionLikeAux().eval()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    model = load(module)
    graph, why = torch_graph(module, model, None)
    assert graph is not None and graph.training is not None, why
    annotate(model, graph)
    ctx = {layer.name: layer.context for layer in model.layers}
    assert ctx["aux_hidden"].activation == "tanh" and ctx["aux_hidden"].on_inference_path is False
    assert ctx["aux_out"].activation == "linear" and ctx["aux_out"].on_inference_path is False
    assert ctx["conv"].activation == "relu" and ctx["conv"].on_inference_path is True
    # the trace restores every submodule's mode and moves no weight or statistic
    assert not any(m.training for m in module.modules())
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_no_training_trace_when_eval_graph_reaches_every_layer():
    module = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    model = load(module)
    graph, _ = torch_graph(module, model, None)
    assert graph.training is None


class LeafAttention(nn.Module):
    """nn.MultiheadAttention stays one fx leaf: its out_proj child is applied by that node."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        y, _ = self.attn(x, x, x, need_weights=False)
        return self.fc(torch.relu(x + y))


def test_leaf_module_children_are_applied_by_the_leaf():
    ctx, _ = context_of(LeafAttention())
    assert ctx["attn.out_proj"].on_inference_path is True
    assert ctx["attn.out_proj"].residual is True
