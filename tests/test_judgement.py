"""Judgement on real models: context from the graph, planted faults found on the exact layer, no errors
on correctly initialized architectures, the deep-MLP story, deliberate zero inits."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import initcheck  # noqa: E402


def _he(model):
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def _mlp(depth=8, width=256, norm=False):
    layers = [nn.Linear(64, width)]
    for _ in range(depth - 1):
        if norm:
            layers.append(nn.BatchNorm1d(width))
        layers += [nn.ReLU(), nn.Linear(width, width)]
    layers += [nn.ReLU(), nn.Linear(width, 10)]
    return nn.Sequential(*layers)


def _by_layer(report, min_severity="warning"):
    rank = {"info": 0, "warning": 1, "error": 2}
    out = {}
    for f in report.findings:
        if rank[f.severity] >= rank[min_severity]:
            out.setdefault(f.layer, set()).add(f.rule)
    return out


class Residual(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.inp = nn.Linear(32, width)
        self.blocks = nn.ModuleList(nn.ModuleDict({"fc1": nn.Linear(width, width), "fc2": nn.Linear(width, width)})
                                    for _ in range(3))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 5)

    def forward(self, x):
        h = self.inp(x)
        for b in self.blocks:
            h = h + b["fc2"](torch.nn.functional.gelu(b["fc1"](h)))
        return self.head(self.norm(h))


def test_context_from_fx_graph():
    m = Residual()
    report = initcheck.check(m)
    ctx = {layer.name: layer.context for layer in report.layers}
    assert ctx["blocks.0.fc1"].activation == "gelu" and ctx["blocks.0.fc1"].activation_source == "graph"
    assert ctx["blocks.0.fc2"].residual and ctx["blocks.0.fc2"].activation == "linear"
    assert ctx["inp"].position == "input" and ctx["head"].position == "output"
    assert ctx["blocks.2.fc2"].consumers  # feeds the norm / head


class Untraceable(nn.Module):
    """Data-dependent control flow: fx cannot trace it, a recorded forward pass can."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 32)
        self.b = nn.Linear(32, 32)
        self.c = nn.Linear(32, 4)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        if h.sum() > -1e9:  # always true, but data-dependent
            h = torch.nn.functional.leaky_relu(self.b(h), 0.2)
        return self.c(h)


def test_context_from_recorded_forward_pass():
    report = initcheck.check(Untraceable())
    ctx = {layer.name: layer.context for layer in report.layers}
    assert ctx["a"].activation == "tanh" and ctx["a"].activation_source == "trace"
    assert ctx["b"].activation == "leaky_relu" and ctx["b"].activation_param == pytest.approx(0.2)
    assert ctx["c"].position == "output"


def test_deep_relu_mlp_under_pytorch_default_is_reported_with_the_fix():
    torch.manual_seed(0)
    report = initcheck.check(_mlp())
    chains = [f for f in report.findings if f.rule == "IC105"]
    assert len(chains) == 1 and chains[0].severity == "warning"
    assert chains[0].data["per_layer"] == pytest.approx(1 / 6, rel=0.15)  # variance ÷6 per layer
    small = [f for f in report.findings if f.rule == "IC102"]
    relu_layers = [f for f in small if f.layer != report.layers[-1].name]  # the head feeds no ReLU
    assert len(relu_layers) >= 7 and all("kaiming" in f.fix for f in relu_layers)
    assert report.count("error") == 0


def test_same_mlp_with_batchnorm_is_not_an_error():
    torch.manual_seed(0)
    report = initcheck.check(_mlp(norm=True))
    assert report.count("error") == 0
    assert not [f for f in report.findings if f.rule == "IC105"]
    assert all(f.severity == "info" for f in report.findings if f.rule in ("IC101", "IC102"))


def test_he_initialized_mlp_is_clean():
    torch.manual_seed(0)
    report = initcheck.check(_he(_mlp()))
    assert [f for f in report.findings if f.severity != "info"] == []


PLANTS = {
    "x10": (lambda w: w.mul_(10), {"IC101"}),
    "x0.03": (lambda w: w.mul_(0.03), {"IC102"}),
    "zeros": (lambda w: w.zero_(), {"IC002"}),
    "constant": (lambda w: w.fill_(0.05), {"IC003"}),
    "nan": (lambda w: w.view(-1)[7].fill_(float("nan")), {"IC001"}),
    "inf": (lambda w: w.view(-1)[3].fill_(float("inf")), {"IC001"}),
}


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_planted_fault_in_module_found_on_exact_layer(plant):
    torch.manual_seed(1)
    m = _he(_mlp(depth=5))
    fn, rules = PLANTS[plant]
    with torch.no_grad():
        fn(m[4].weight)
    flagged = _by_layer(initcheck.check(m))
    assert set(flagged) == {"4"} or (plant in ("x10",) and "4" in flagged), flagged
    assert rules <= flagged["4"], flagged


@pytest.mark.parametrize("plant", sorted(PLANTS))
@pytest.mark.parametrize("fmt", ["state_dict", "safetensors"])
def test_planted_fault_in_tensor_only_file_found_on_exact_layer(plant, fmt, tmp_path):
    torch.manual_seed(2)
    m = _he(_mlp(depth=5))
    fn, rules = PLANTS[plant]
    with torch.no_grad():
        fn(m[4].weight)
    if fmt == "state_dict":
        path = tmp_path / "m.pt"
        torch.save(m.state_dict(), path)
    else:
        from safetensors.torch import save_file

        path = tmp_path / "m.safetensors"
        save_file(m.state_dict(), str(path))
    flagged = _by_layer(initcheck.check(str(path)))
    assert "4" in flagged, flagged
    expected = {"IC101": "IC103", "IC102": "IC103"}  # activation unknown in a tensor-only file
    assert {expected.get(r, r) for r in rules} <= flagged["4"], flagged
    assert set(flagged) == {"4"}, flagged
    # with the activation named, the sharper rule applies
    flagged = _by_layer(initcheck.check(str(path), activation="relu"))
    assert rules <= flagged["4"], flagged


def test_sibling_outlier_catches_one_block():
    torch.manual_seed(3)
    m = Residual(width=128)
    for b in m.blocks:
        nn.init.normal_(b["fc1"].weight, std=0.02)
        nn.init.normal_(b["fc2"].weight, std=0.02)
    m.blocks.append(nn.ModuleDict({"fc1": nn.Linear(128, 128), "fc2": nn.Linear(128, 128)}))
    nn.init.normal_(m.blocks[3]["fc1"].weight, std=0.02)
    nn.init.normal_(m.blocks[3]["fc2"].weight, std=0.02)
    with torch.no_grad():
        m.blocks[1]["fc1"].weight.mul_(2.5)  # inside every scheme's band, but not like its siblings
    report = initcheck.check(m, input_shape=(2, 32))
    outliers = [f for f in report.findings if f.rule == "IC104"]
    assert [f.layer for f in outliers] == ["blocks.1.fc1"] and outliers[0].severity == "warning"


def test_zero_init_residual_and_zero_head_are_deliberate():
    torch.manual_seed(4)
    m = Residual()
    _he(m)
    for b in m.blocks:
        nn.init.zeros_(b["fc2"].weight)
    nn.init.zeros_(m.head.weight)
    report = initcheck.check(m)
    assert report.count("error") == 0
    zero = [f for f in report.findings if f.rule == "IC002"]
    assert {f.layer for f in zero} == {"blocks.0.fc2", "blocks.1.fc2", "blocks.2.fc2", "head"}
    assert all(f.severity == "info" for f in zero)


def test_activation_override_and_unknown():
    torch.manual_seed(5)
    m = _he(_mlp(depth=3))
    report = initcheck.check(m.state_dict())
    assert all(layer.context.activation_source == "unknown" for layer in report.layers)
    report = initcheck.check(m.state_dict(), activation="relu")
    assert {layer.context.activation_source for layer in report.layers} == {"user"}


def test_model_factory_gives_graph_context(tmp_path, monkeypatch):
    (tmp_path / "arch_for_test.py").write_text(
        "import torch\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import arch_for_test

    torch.save(arch_for_test.build().state_dict(), tmp_path / "w.pt")
    report = initcheck.check(str(tmp_path / "w.pt"), model_factory="arch_for_test:build")
    assert report.layers[0].context.activation == "tanh"
    assert report.layers[0].context.activation_source == "graph"
    bad = torch.nn.Sequential(torch.nn.Linear(8, 16))
    torch.save(bad.state_dict(), tmp_path / "bad.pt")
    with pytest.raises(initcheck.InitcheckError, match="do not match"):
        initcheck.check(str(tmp_path / "bad.pt"), model_factory="arch_for_test:build")


def test_trained_checkpoint_gets_banner_and_info_only():
    torch.manual_seed(6)
    m = _mlp(depth=4, width=256)
    with torch.no_grad():
        for layer in m:
            if isinstance(layer, nn.Linear):  # heavy-tailed, uneven rows: what training leaves behind
                w = torch.distributions.StudentT(2.5).sample(layer.weight.shape) * 0.02
                w *= torch.rand(layer.weight.shape[0], 1) * 3
                layer.weight.copy_(w)
    report = initcheck.check(m)
    assert any(b.startswith("trained checkpoint") for b in report.banners)
    assert [f for f in report.findings if f.severity != "info"] == []
    assert any(f.rule == "IC301" for f in report.findings)


def test_recurrent_and_embedding_rules():
    torch.manual_seed(7)
    lstm = nn.LSTM(32, 64)
    report = initcheck.check(lstm)
    assert report.count("error") == report.count("warning") == 0  # PyTorch's default is sound
    with torch.no_grad():
        lstm.weight_hh_l0.mul_(10)
    flagged = _by_layer(initcheck.check(lstm))
    assert flagged == {"weight_hh_l0": {"IC205"}}

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(100, 256)
            self.out = nn.Linear(256, 100, bias=False)
            self.out.weight = self.emb.weight

        def forward(self, ids):
            return self.out(self.emb(ids))

    flagged = _by_layer(initcheck.check(Tied()))
    assert flagged == {"emb": {"IC204"}}  # N(0, 1) tied to the head: logits std 16


def test_dead_relu_biases_and_symmetric_units():
    torch.manual_seed(8)
    m = _he(_mlp(depth=3, width=128))
    with torch.no_grad():
        m[2].bias.fill_(-5.0)
        m[4].weight[1:].copy_(m[4].weight[0])  # every unit the same
    flagged = _by_layer(initcheck.check(m))
    assert "IC202" in flagged["2"] and "IC004" in flagged["4"]


@pytest.mark.slow
def test_real_architectures_have_no_errors_or_warnings():
    transformers = pytest.importorskip("transformers")
    T = transformers
    torch.manual_seed(0)
    models = {
        "bert": T.BertModel(T.BertConfig(hidden_size=768, num_hidden_layers=2, num_attention_heads=12,
                                         intermediate_size=3072, vocab_size=2000)),
        "gpt2": T.GPT2LMHeadModel(T.GPT2Config(n_embd=768, n_layer=2, n_head=12, vocab_size=2000, n_positions=64,
                                               bos_token_id=0, eos_token_id=0)),
        "vit": T.ViTModel(T.ViTConfig(hidden_size=768, num_hidden_layers=2, num_attention_heads=12,
                                      intermediate_size=3072, image_size=32, patch_size=8)),
        "resnet": T.ResNetModel(T.ResNetConfig(embedding_size=32, hidden_sizes=[32, 64], depths=[1, 1],
                                               layer_type="bottleneck")),
    }
    for name, model in models.items():
        report = initcheck.check(model)
        bad = [(f.rule, f.layer, f.message) for f in report.findings if f.severity != "info"]
        assert bad == [], (name, bad)
        assert all(layer.context.activation_source != "unknown" for layer in report.layers
                   if layer.kind in ("linear", "linear_transposed")), name


@pytest.mark.slow
def test_pytorch_default_cnn_has_no_errors():
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10))
    report = initcheck.check(cnn)
    assert report.count("error") == 0
    ctx = {layer.name: layer.context for layer in report.layers}
    assert ctx["0"].activation == "relu" and ctx["7"].activation == "relu"  # through pool and flatten
    assert math.isclose(report.layers[0].fan_in, 27)


def test_docs_rules_md_is_generated_from_the_registry():
    from pathlib import Path

    from initcheck.rules import all_rules, rules_markdown

    doc = (Path(__file__).resolve().parents[1] / "docs" / "rules.md").read_text()
    assert doc == rules_markdown(), "regenerate with: initcheck rules --markdown > docs/rules.md"
    for r in all_rules():
        assert f"## {r.code} {r.name}" in doc and "Example" in r.explanation and "Fix" in r.explanation


class _TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 16)
        self.b = nn.Conv1d(16, 4, 1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)).unsqueeze(-1))


@pytest.mark.parametrize("fmt", ["torchscript", "exported_program"])
def test_context_from_torchscript_and_exported_graphs(fmt, tmp_path):
    m = _TwoLayer()
    path = tmp_path / "m.pt"
    if fmt == "torchscript":
        torch.jit.save(torch.jit.trace(m, torch.randn(2, 8)), str(path))
    else:
        torch.export.save(torch.export.export(m, (torch.randn(2, 8),)), str(path))
    report = initcheck.check(str(path), trust=True)
    assert report.model.format == fmt
    ctx = {layer.name: layer.context for layer in report.layers}
    assert (ctx["a"].activation, ctx["a"].activation_source) == ("tanh", "graph")
    assert ctx["b"].position == "output" and ctx["a"].consumers == ["b"]


class _Quirky(nn.Module):
    """A leaf module neither fx nor a synthetic forward pass gets through."""

    def forward(self, x):
        if x.shape[-1] != 12345:
            raise RuntimeError("needs a very particular input")
        return x


def test_context_from_module_order_when_nothing_else_works():
    torch.manual_seed(9)
    m = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.LeakyReLU(0.1), _Quirky(), nn.Linear(16, 4), nn.Tanh())
    report = initcheck.check(m)
    ctx = {layer.name: layer.context for layer in report.layers}
    assert (ctx["0"].activation, ctx["0"].activation_source) == ("leaky_relu", "order")
    assert ctx["0"].activation_param == pytest.approx(0.1)
    assert ctx["4"].activation == "tanh"
    assert any("module order" in n for n in report.model.source_notes)


@pytest.mark.parametrize("act,init", [
    (nn.Tanh, lambda w: nn.init.xavier_uniform_(w, gain=nn.init.calculate_gain("tanh"))),
    (nn.Tanh, nn.init.xavier_normal_),  # Glorot's original gain 1
    (nn.SELU, lambda w: nn.init.normal_(w, std=1 / math.sqrt(w.shape[1]))),  # LeCun normal
    (nn.ReLU, lambda w: nn.init.orthogonal_(w, gain=math.sqrt(2))),
    (nn.GELU, lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu")),
    (nn.ReLU, lambda w: nn.init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu")),
])
def test_own_nets_with_sound_schemes_are_clean(act, init):
    torch.manual_seed(10)
    dims = [48, 256, 256, 128, 256, 10]
    layers = []
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(act())
    m = nn.Sequential(*layers)
    for layer in m:
        if isinstance(layer, nn.Linear):
            init(layer.weight)
            nn.init.zeros_(layer.bias)
    report = initcheck.check(m)
    assert [(f.rule, f.layer, f.message) for f in report.findings if f.severity != "info"] == []


def test_demo_fixture_with_its_architecture():
    """The README's demo: the broken CNN's tensors loaded into fixtures/architectures.py:BrokenCNN."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    report = initcheck.check(str(root / "fixtures" / "broken_cnn.safetensors"),
                             model_factory=str(root / "fixtures" / "architectures.py") + ":BrokenCNN")
    found = {(f.rule, f.layer, f.severity) for f in report.findings}
    assert found == {("IC002", "features.2", "error"), ("IC101", "features.4", "warning"),
                     ("IC001", "classifier.0", "error"), ("IC003", "classifier.2", "error")}
    ctx = {layer.name: layer.context for layer in report.layers}
    assert ctx["features.0"].activation == "relu" and ctx["features.0"].norm_after
    assert ctx["classifier.2"].position == "output"
