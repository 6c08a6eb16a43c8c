"""Judgement from evidence: roles, model verdicts (fresh/trained/mixed), names that only add context,
relational evidence, conventions, config.json, and the failure signatures of issue 9."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import initcheck

torch = pytest.importorskip("torch")
nn = torch.nn
safetensors_torch = pytest.importorskip("safetensors.torch")


def _findings(report, at_least="warning"):
    rank = {"info": 0, "warning": 1, "error": 2}
    return [(f.rule, f.severity, f.layer) for f in report.findings if rank[f.severity] >= rank[at_least]]


def _save(model_or_sd, path):
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else model_or_sd
    safetensors_torch.save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return str(path)


# ------------------------------------------------------------------------------------------- roles
class LayerScaleBlock(nn.Module):
    """The parameters whose correct init is a constant or zeros (issue 9), in one module."""

    def __init__(self, dim=256, heads=4, tokens=16, d_state=16):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))  # CaiT/ConvNeXt layer scale
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(heads, 1, 1)))  # Swin-v2
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))  # XCiT
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        self.relative_position_bias_table = nn.Parameter(torch.zeros(49, heads))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(dim, 1))
        self.D = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        x = x + self.pos_embed
        return x + self.gamma * self.fc2(torch.relu(self.fc1(x)))


def test_constant_and_zero_roles_are_not_errors_in_memory_or_tensor_only(tmp_path):
    torch.manual_seed(0)
    model = LayerScaleBlock()
    in_memory = initcheck.check(model, input_shape=(2, 16, 256))
    assert _findings(in_memory) == []
    tensor_only = initcheck.check(_save(model, tmp_path / "m.safetensors"))
    assert [f for f in _findings(tensor_only) if f[0] in ("IC002", "IC003", "IC004")] == []
    roles = {layer.name: layer.judgement.role.value for layer in tensor_only.layers}
    assert roles["pos_embed"] == "position" and roles["gamma"] == "gain" and roles["A_log"] == "state_space"


# ------------------------------------------------------------------------------- names add, never lower
class PlainCNN(nn.Module):
    """No residual anywhere: conv2 and fc2 are just layers, whatever their names suggest."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.conv2 = nn.Conv2d(32, 32, 3)
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc2(torch.relu(self.fc1(x.mean((2, 3)))))


def test_a_zeroed_conv2_in_a_plain_cnn_is_an_error_in_a_tensor_only_file(tmp_path):
    model = PlainCNN()
    with torch.no_grad():
        model.conv2.weight.zero_()
    report = initcheck.check(_save(model, tmp_path / "cnn.safetensors"))
    ic002 = [f for f in report.findings if f.rule == "IC002"]
    assert [(f.severity, f.layer) for f in ic002] == [("error", "conv2")]
    assert "name" in ic002[0].message  # the message says a name was considered and did not excuse it
    assert report.exit_code() == 1
    # the same layer loaded as a module: also an error
    assert ("IC002", "error", "conv2") in _findings(initcheck.check(model, input_shape=(1, 3, 16, 16)))


class ResStack(nn.Module):
    def __init__(self, blocks=6, dim=256):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
                                    for _ in range(blocks))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        for b in self.blocks:
            x = x + b(x)
        return self.norm(x)


def test_a_lone_zeroed_residual_end_among_siblings_is_a_warning():
    torch.manual_seed(1)
    model = ResStack()
    with torch.no_grad():
        model.blocks[3][2].weight.zero_()
    report = initcheck.check(model, input_shape=(2, 256))
    assert ("IC002", "warning", "blocks.3.2") in _findings(report)
    # every residual end zeroed (zero-init residual): deliberate, info only
    for b in model.blocks:
        with torch.no_grad():
            b[2].weight.zero_()
    assert _findings(initcheck.check(model, input_shape=(2, 256))) == []


# ----------------------------------------------------------------------------------------- conventions
def _gpt_like(layers=4, dim=256, sigma=0.02):
    torch.manual_seed(2)
    blocks = nn.ModuleDict()
    for i in range(layers):
        blocks[f"h{i}"] = nn.ModuleDict({"c_attn": nn.Linear(dim, 3 * dim), "c_proj": nn.Linear(dim, dim),
                                         "c_fc": nn.Linear(dim, 4 * dim), "mlp_proj": nn.Linear(4 * dim, dim)})
    sd = {}
    for i in range(layers):
        for name, mod in blocks[f"h{i}"].items():
            std = sigma / math.sqrt(2 * layers) if name in ("c_proj", "mlp_proj") else sigma
            sd[f"h.{i}.{name}.weight"] = torch.randn_like(mod.weight) * std
            sd[f"h.{i}.{name}.bias"] = torch.zeros_like(mod.bias)
    sd["wte.weight"] = torch.randn(1000, dim) * sigma
    return sd


def test_a_fixed_sigma_model_is_recognised_and_gets_no_findings(tmp_path):
    report = initcheck.check(_save(_gpt_like(), tmp_path / "gpt.safetensors"))
    assert report.findings == []
    assert report.model.verdict.convention.sigma == 0.02
    conv = [layer.judgement.expectation.convention for layer in report.layers
            if layer.judgement.expectation is not None]
    assert all(conv) and any("√(2·4)" in c for c in conv)  # residual-scaled σ/√(2L) recognized too


def test_a_times_ten_layer_in_a_convention_model_is_found_tensor_only(tmp_path):
    sd = _gpt_like()
    sd["h.2.c_fc.weight"] = sd["h.2.c_fc.weight"] * 10
    report = initcheck.check(_save(sd, tmp_path / "gpt.safetensors"))
    assert any(layer == "h.2.c_fc" and sev in ("warning", "error") for _, sev, layer in _findings(report))


def test_config_json_gives_the_convention(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    _save(_gpt_like(layers=2), folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "initializer_range": 0.02,
                                                    "n_layer": 2, "activation_function": "gelu_new"}))
    report = initcheck.check(str(folder))
    assert "config.json (initializer_range)" in report.model.verdict.convention.source
    assert any("initializer_range 0.02" in n for n in report.model.source_notes)


# --------------------------------------------------------------------------------- trained and mixed
def _trained_like_mlp(depth=8, dim=256, seed=3):
    """Weights that look trained: heavy tails plus a few strong directions (as gradient updates leave)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(dim, dim), nn.GELU()]
    model = nn.Sequential(*layers[:-1], nn.Linear(dim, 10))
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                out, inp = m.weight.shape
                w = rng.standard_t(5, size=(out, inp)) * 0.03 + 0.05 * rng.standard_normal((out, 3)) @ \
                    rng.standard_normal((3, inp)) / math.sqrt(3 * inp)
                m.weight.copy_(torch.from_numpy(w.astype(np.float32)))
                m.bias.copy_(torch.from_numpy(rng.standard_normal(out).astype(np.float32) * 0.05))
    return model


def test_a_trained_model_gets_no_init_warnings_and_a_note():
    report = initcheck.check(_trained_like_mlp(), input_shape=(4, 256))
    assert report.model.verdict.verdict == "trained"
    assert _findings(report) == []
    assert [f.rule for f in report.findings] == ["IC301"]


def test_a_reinitialized_middle_block_makes_the_model_mixed_and_is_named():
    model = _trained_like_mlp()
    nn.init.kaiming_uniform_(model[6].weight, a=math.sqrt(5))  # as from_pretrained leaves a missed key
    report = initcheck.check(model, input_shape=(4, 256))
    assert report.model.verdict.verdict == "mixed"
    assert ("IC302", "warning", "6") in _findings(report)


def test_a_reinitialized_head_is_info_only():
    model = _trained_like_mlp()
    model[-1].reset_parameters()  # a resized head: nn.Linear's own U(±1/√fan_in), 2,560 weights
    report = initcheck.check(model, input_shape=(4, 256))
    assert report.model.verdict.verdict == "mixed"
    assert _findings(report) == [] and ("IC302", "info", str(len(model) - 1)) in _findings(report, "info")


def test_integrity_rules_still_apply_to_trained_models():
    model = _trained_like_mlp()
    with torch.no_grad():
        model[4].weight[3, 5] = float("nan")
        model[8].weight.zero_()
        model[10].weight.fill_(0.01)
    got = _findings(initcheck.check(model, input_shape=(4, 256)), "error")
    assert ("IC001", "error", "4") in got and ("IC002", "error", "8") in got and ("IC003", "error", "10") in got


# ---------------------------------------------------------------------------------- failure signatures
def test_empty_uninitialized_and_duplicate_tensors(tmp_path):
    torch.manual_seed(4)
    a, b = nn.Linear(128, 128), nn.Linear(128, 128)
    garbage = torch.zeros(128, 128)
    garbage[::17, ::13] = 3e30
    sd = {"a.weight": a.weight.detach(), "b.weight": a.weight.detach().clone(), "c.weight": garbage,
          "d.weight": torch.empty(0), "e.weight": b.weight.detach()}
    got = _findings(initcheck.check(_save(sd, tmp_path / "sig.safetensors")), "error")
    assert not [f for f in got if f[0] == "IC007"]
    assert ("IC006", "error", "c") in got and ("IC005", "error", "d") in got
    assert not any(layer in ("a", "e") for _, _, layer in got)
    assert ("IC007", "warning", "b") in _findings(initcheck.check(str(tmp_path / "sig.safetensors")))


def test_tied_tensors_are_not_duplicates():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(500, 256)
            nn.init.normal_(self.emb.weight, std=0.02)
            self.head = nn.Linear(256, 500, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, x):
            return self.head(self.emb(x))

    assert not [f for f in initcheck.check(Tied()).findings if f.rule == "IC007"]


def test_lora_adapter_b_must_start_at_zero():
    class LoraLinear(nn.Module):
        def __init__(self):
            super().__init__()
            self.base_layer = nn.Linear(256, 256)
            self.lora_A = nn.ModuleDict({"default": nn.Linear(256, 8, bias=False)})
            self.lora_B = nn.ModuleDict({"default": nn.Linear(8, 256, bias=False)})

        def forward(self, x):
            return self.base_layer(x) + self.lora_B["default"](self.lora_A["default"](x))

    m = LoraLinear()
    nn.init.zeros_(m.lora_B["default"].weight)
    fresh = initcheck.check(m, input_shape=(2, 256))
    assert not [f for f in fresh.findings if f.rule in ("IC002", "IC206")]
    nn.init.normal_(m.lora_B["default"].weight, std=0.02)
    assert ("IC206", "warning", "lora_B.default") in _findings(initcheck.check(m, input_shape=(2, 256)))
    nn.init.zeros_(m.lora_A["default"].weight)  # a dead adapter
    assert ("IC002", "error", "lora_A.default") in _findings(initcheck.check(m, input_shape=(2, 256)))


def test_embedding_padding_row_overwritten_by_a_custom_init():
    emb = nn.Embedding(1000, 256, padding_idx=1)
    assert not [f for f in initcheck.check(emb).findings if f.rule == "IC207"]
    nn.init.normal_(emb.weight, std=0.02)
    assert ("IC207", "warning", "<root>") in _findings(initcheck.check(emb))


# -------------------------------------------------------------------------------------------- fix hints
def test_fix_hints_are_written_for_the_models_framework():
    from initcheck.hints import scheme_hint

    assert scheme_hint("relu", "normal", "keras").startswith("kernel_initializer=keras.initializers.HeNormal()")
    assert scheme_hint("tanh", "uniform", "keras").startswith("kernel_initializer=keras.initializers.Variance")
    assert scheme_hint("relu", "normal", "torch").startswith("torch.nn.init.kaiming_normal_")
    assert "torch" not in scheme_hint("relu", "uniform", "keras")


def test_fix_of_chosen_layers_uses_the_judgements_activation():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    initcheck.fix(model, layers=["2"], seed=0)
    # the graph says ReLU follows layer 2: He, std √2/√512, not Xavier's √(2/1024)
    assert float(model[2].weight.detach().std()) == pytest.approx(math.sqrt(2 / 512), rel=0.02)


def test_infinite_clamp_bounds_and_empty_by_config_tables_are_not_errors():
    class Clipped(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(256, 256)
            self.input_max = nn.Parameter(torch.tensor(float("inf")))  # Gemma's clipped linear
            self.register_tokens = nn.Parameter(torch.zeros(1, 0, 256))  # DINOv3 without registers

        def forward(self, x):
            return self.fc(x).clamp(max=self.input_max)

    m = Clipped()
    assert _findings(initcheck.check(m, input_shape=(2, 256)), "warning") == []
    with torch.no_grad():
        m.fc.weight[0, 0] = float("inf")  # in a weight, Inf stays an error
    assert ("IC001", "error", "fc") in _findings(initcheck.check(m, input_shape=(2, 256)))


def test_zero_init_residual_norms_are_recognized_by_their_pattern_in_tensor_only_files(tmp_path):
    torch.manual_seed(6)
    sd = {}
    for stage in range(2):
        for block in range(3):
            for conv in ("conv1", "conv2"):
                sd[f"layer{stage}.{block}.{conv}.weight"] = nn.init.kaiming_normal_(torch.empty(64, 64, 3, 3))
            for bn in ("bn1", "bn2"):
                sd[f"layer{stage}.{block}.{bn}.weight"] = torch.zeros(64) if bn == "bn2" else torch.ones(64)
                sd[f"layer{stage}.{block}.{bn}.bias"] = torch.zeros(64)
                sd[f"layer{stage}.{block}.{bn}.running_mean"] = torch.zeros(64)
                sd[f"layer{stage}.{block}.{bn}.running_var"] = torch.ones(64)
    report = initcheck.check(_save(sd, tmp_path / "zero_init_last.safetensors"))
    assert not [f for f in _findings(report) if f[0] == "IC203"]  # every block's bn2: the pattern
    for k in list(sd):
        if ".bn2.weight" in k:
            sd[k] = torch.ones(64)
    sd["layer1.1.bn1.weight"] = torch.zeros(64)  # one stray zero: blocks the signal
    report = initcheck.check(_save(sd, tmp_path / "stray.safetensors"))
    assert ("IC203", "warning", "layer1.1.bn1") in _findings(report)


# --------------------------------------------------------------------------------------- cousins
class Pyramid(nn.Module):
    """Four stages of widening blocks, one block each (SegFormer/PVT-like): each role's layers have a
    different shape in every stage, so they have no same-shape siblings, only cousins."""

    def __init__(self, widths=(32, 64, 160, 256), sigma=0.02):
        super().__init__()
        torch.manual_seed(5)
        self.stages = nn.ModuleList()
        for w in widths:
            block = nn.ModuleDict({"fc1": nn.Linear(w, 4 * w), "fc2": nn.Linear(4 * w, w), "norm": nn.LayerNorm(w)})
            for lin in (block["fc1"], block["fc2"]):
                nn.init.normal_(lin.weight, std=sigma)
                nn.init.zeros_(lin.bias)
            self.stages.append(nn.ModuleDict({"blocks": nn.ModuleList([block])}))

    def state(self):
        return {k: v.detach().clone() for k, v in self.state_dict().items()}


def _cousin_findings(report, layer):
    return [(f.rule, f.severity) for f in report.findings if f.layer == layer and f.severity != "info"]


def test_a_times_ten_layer_among_cousins_of_other_widths_is_found(tmp_path):
    sd = Pyramid().state()
    assert _findings(initcheck.check(_save(sd, tmp_path / "clean.safetensors"))) == []
    sd["stages.1.blocks.0.fc2.weight"] *= 10
    report = initcheck.check(_save(sd, tmp_path / "x10.safetensors"))
    assert ("IC104", "warning") in _cousin_findings(report, "stages.1.blocks.0.fc2") or \
        ("IC104", "error") in _cousin_findings(report, "stages.1.blocks.0.fc2")
    assert [f for f in report.findings if f.rule == "IC104" and f.layer != "stages.1.blocks.0.fc2"] == []


def test_cousins_following_a_fan_law_are_not_outliers(tmp_path):
    """He fan_in in every stage: the std differs ×2.8 from stage to stage, by law, and nothing is flagged;
    a layer ×10 off that law is."""
    torch.manual_seed(6)
    sd = {}
    for i, w in enumerate((32, 64, 160, 256)):
        for name, (fi, fo) in {"fc1": (w, 4 * w), "fc2": (4 * w, w)}.items():
            sd[f"stages.{i}.blocks.0.{name}.weight"] = torch.randn(fo, fi) * math.sqrt(2 / fi)
    assert [f for f in initcheck.check(_save(sd, tmp_path / "he.safetensors")).findings if f.rule == "IC104"] == []
    sd["stages.2.blocks.0.fc1.weight"] *= 10
    report = initcheck.check(_save(sd, tmp_path / "he10.safetensors"))
    assert [f.layer for f in report.findings if f.rule == "IC104"] == ["stages.2.blocks.0.fc1"]


def test_a_zeroed_residual_end_with_nonzero_cousins_is_a_warning():
    class Net(Pyramid):
        def forward(self, x):
            for stage in self.stages:
                b = stage["blocks"][0]
                w = b["fc2"].out_features
                x = x[..., :w] if x.shape[-1] >= w else torch.nn.functional.pad(x, (0, w - x.shape[-1]))
                x = x + b["fc2"](torch.relu(b["fc1"](b["norm"](x))))
            return x

    model = Net()
    with torch.no_grad():
        model.stages[2]["blocks"][0]["fc2"].weight.zero_()
    report = initcheck.check(model, input_shape=(2, 32))
    assert ("IC002", "warning") in _cousin_findings(report, "stages.2.blocks.0.fc2")


class TinyMoE(nn.Module):
    """A block with a router over fused experts (AFMoE, ERNIE 4.5 keep them so)."""

    def __init__(self, dim=256, experts=4, hidden=512):
        super().__init__()
        torch.manual_seed(8)
        self.router = nn.ModuleDict({"gate": nn.Linear(dim, experts, bias=False)})
        self.experts = nn.ParameterDict({"gate_up_proj": nn.Parameter(torch.randn(experts, dim, hidden) * 0.02),
                                         "down_proj": nn.Parameter(torch.randn(experts, hidden, dim) * 0.02)})
        self.proj = nn.Linear(dim, dim)


def test_a_zero_router_over_fused_experts_is_info_a_zero_matrix_elsewhere_an_error(tmp_path):
    model = nn.ModuleDict({"mlp": TinyMoE()})
    with torch.no_grad():
        model["mlp"].router["gate"].weight.zero_()
    report = initcheck.check(_save(model, tmp_path / "moe.safetensors"))
    router = [f for f in report.findings if f.layer == "mlp.router.gate"]
    assert [(f.rule, f.severity) for f in router] == [("IC002", "info")] and "router" in router[0].message
    with torch.no_grad():
        model["mlp"].proj.weight.zero_()
    report = initcheck.check(_save(model, tmp_path / "moe2.safetensors"))
    assert ("IC002", "error", "mlp.proj") in _findings(report)


def test_t5_factor_scaling_from_config_json(tmp_path):
    """T5's init: N(0, f/√fan_in) for k, v, o, wi, wo, N(0, f/√(fan_in·d_kv)) for q, N(0, f) embeddings,
    read from config.json's model_type and initializer_factor; q is 8× under LeCun and needs no excuse."""
    torch.manual_seed(9)
    d, d_kv, heads, ff = 256, 64, 4, 1024
    sd = {"shared.weight": torch.randn(1000, d)}
    for i in range(2):
        pre = f"encoder.block.{i}.layer"
        sd[f"{pre}.0.SelfAttention.q.weight"] = torch.randn(heads * d_kv, d) / math.sqrt(d * d_kv)
        for name in ("k", "v"):
            sd[f"{pre}.0.SelfAttention.{name}.weight"] = torch.randn(heads * d_kv, d) / math.sqrt(d)
        sd[f"{pre}.0.SelfAttention.o.weight"] = torch.randn(d, heads * d_kv) / math.sqrt(heads * d_kv)
        sd[f"{pre}.1.DenseReluDense.wi.weight"] = torch.randn(ff, d) / math.sqrt(d)
        sd[f"{pre}.1.DenseReluDense.wo.weight"] = torch.randn(d, ff) / math.sqrt(ff)
    folder = tmp_path / "t5"
    folder.mkdir()
    _save(sd, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"model_type": "t5", "initializer_factor": 1.0, "d_kv": d_kv,
                                                    "num_layers": 2, "d_model": d}))
    report = initcheck.check(str(folder))
    assert report.model.verdict.convention is not None and report.model.verdict.convention.fan_scaled
    q = next(layer for layer in report.layers if layer.name == "encoder.block.0.layer.0.SelfAttention.q")
    assert q.judgement.expectation.convention == "N(0, 1/√(fan_in·64))"
    assert _findings(report) == []
    sd["encoder.block.1.layer.0.SelfAttention.q.weight"] *= 10  # ×10 off the query's own law
    _save(sd, folder / "model.safetensors")
    assert any(layer == "encoder.block.1.layer.0.SelfAttention.q" for _, _, layer in _findings(initcheck.check(str(folder))))
