"""Every PyTorch/safetensors input format yields the same layers (names, kinds, fans) and the same values."""

from __future__ import annotations

import json
import os
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from conftest import assert_same_model, layer_summary, tensor_values  # noqa: E402
from initcheck.load import load  # noqa: E402


def make_model() -> nn.Module:
    """Only torch classes (so a pickled copy loads in any process); every kind tensor-only inference gets
    exactly right, so file formats and live modules must agree on kinds and fans too."""
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(3, 8, 3)),
        ("bn", nn.BatchNorm2d(8)),
        ("act", nn.ReLU()),
        ("flat", nn.Flatten()),
        ("fc1", nn.Linear(8 * 6 * 6, 16)),
        ("norm", nn.LayerNorm(16)),
        ("head", nn.Linear(16, 4)),
    ]))
    with torch.no_grad():  # non-default values, so a mix-up between tensors would show
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.1, 0.1)
        model.norm.weight.uniform_(0.5, 1.5)
    return model.eval()


EXAMPLE = (torch.randn(2, 3, 8, 8),)
EXPECTED_NAMES = ["conv", "bn", "fc1", "norm", "head"]


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def reference(model):
    return load(model)


@pytest.fixture(scope="module")
def files(tmp_path_factory, model):
    """Every format, written once."""
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("formats")
    sd = model.state_dict()
    out = {}

    def path(name):
        out[name] = str(d / name)
        return out[name]

    torch.save(sd, path("zip.pt"))
    torch.save(sd, path("legacy.pt"), _use_new_zipfile_serialization=False)
    torch.save({"state_dict": sd, "epoch": 3}, path("ckpt_state_dict.pt"))
    opt = torch.optim.Adam(model.parameters())
    opt.state = {p: {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.ones_like(p)} for p in model.parameters()}
    torch.save({"model_state_dict": sd, "optimizer_state_dict": opt.state_dict(), "epoch": 7},
               path("ckpt_model_state_dict.pt"))
    torch.save({"model": sd, "args": {"lr": 0.1}}, path("ckpt_model.pt"))
    torch.save({"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 1, "global_step": 10,
                "pytorch-lightning_version": "2.4.0", "optimizer_states": [opt.state_dict()]},
               path("lightning.ckpt"))
    torch.save(nn.DataParallel(model).state_dict(), path("dataparallel.pt"))
    torch.save({f"_orig_mod.{k}": v for k, v in sd.items()}, path("compiled.pt"))
    tensors = {k: v.contiguous() for k, v in sd.items()}
    save_file(tensors, path("model.safetensors"), metadata={"format": "pt"})

    # sharded safetensors + index, and the same as a model directory
    names = list(tensors)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for sub in ("sharded", "hf_sharded"):
        (d / sub).mkdir()
        weight_map = {}
        for shard, keys in shards.items():
            save_file({k: tensors[k] for k in keys}, str(d / sub / shard), metadata={"format": "pt"})
            weight_map.update({k: shard for k in keys})
        (d / sub / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
        (d / sub / "config.json").write_text("{}")
    out["sharded_index"] = str(d / "sharded" / "model.safetensors.index.json")
    out["hf_dir_sharded_safetensors"] = str(d / "hf_sharded")

    (d / "hf_st").mkdir()
    save_file(tensors, str(d / "hf_st" / "model.safetensors"), metadata={"format": "pt"})
    (d / "hf_st" / "config.json").write_text("{}")
    out["hf_dir_safetensors"] = str(d / "hf_st")

    (d / "hf_bin").mkdir()
    torch.save(sd, str(d / "hf_bin" / "pytorch_model.bin"))
    out["hf_dir_bin"] = str(d / "hf_bin")

    (d / "hf_bin_sharded").mkdir()
    bin_map = {}
    for i, keys in enumerate(shards.values(), 1):
        shard = f"pytorch_model-0000{i}-of-00002.bin"
        torch.save({k: sd[k] for k in keys}, str(d / "hf_bin_sharded" / shard))
        bin_map.update({k: shard for k in keys})
    (d / "hf_bin_sharded" / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": bin_map}))
    out["hf_dir_bin_sharded"] = str(d / "hf_bin_sharded")
    out["bin_index"] = str(d / "hf_bin_sharded" / "pytorch_model.bin.index.json")

    torch.save(model, path("whole_module.pt"))
    torch.jit.save(torch.jit.script(model), path("scripted.pt"))
    torch.jit.save(torch.jit.trace(model, EXAMPLE), path("traced.pt"))
    torch.export.save(torch.export.export(model, EXAMPLE), path("program.pt2"))
    return out


TENSOR_FORMATS = {
    "zip.pt": ("state_dict", None),
    "legacy.pt": ("state_dict", None),
    "ckpt_state_dict.pt": ("checkpoint", "state_dict"),
    "ckpt_model_state_dict.pt": ("checkpoint", "model_state_dict"),
    "ckpt_model.pt": ("checkpoint", "model"),
    "lightning.ckpt": ("checkpoint", "state_dict"),
    "dataparallel.pt": ("state_dict", None),
    "compiled.pt": ("state_dict", None),
    "model.safetensors": ("safetensors", None),
    "sharded_index": ("safetensors_sharded", None),
    "hf_dir_safetensors": ("safetensors", None),
    "hf_dir_sharded_safetensors": ("safetensors_sharded", None),
    "hf_dir_bin": ("state_dict", None),
    "hf_dir_bin_sharded": ("state_dict", None),
    "bin_index": ("state_dict", None),
}
PROGRAM_FORMATS = {
    "whole_module.pt": "module",
    "scripted.pt": "torchscript",
    "traced.pt": "torchscript",
    "program.pt2": "exported_program",
}


@pytest.mark.parametrize("name", list(TENSOR_FORMATS))
def test_tensor_formats_same_layers_and_values(files, reference, name):
    fmt, key = TENSOR_FORMATS[name]
    m = load(files[name])
    assert m.format == fmt
    assert m.checkpoint_key == key
    assert_same_model(reference, m)
    if m.framework == "torch":  # torch files keep the state_dict's order: forward order
        assert [layer.name for layer in m.layers] == EXPECTED_NAMES
    else:
        assert sorted(layer.name for layer in m.layers) == sorted(EXPECTED_NAMES)


def test_reference_layers(reference):
    assert [layer.name for layer in reference.layers] == EXPECTED_NAMES
    assert layer_summary(reference) == {
        "conv": ("conv2d", (8, 3, 3, 3), 27, 72),
        "bn": ("batchnorm", (8,), None, None),
        "fc1": ("linear", (16, 288), 288, 16),
        "norm": ("layernorm", (16,), None, None),
        "head": ("linear", (4, 16), 16, 4),
    }


@pytest.mark.parametrize("name", list(PROGRAM_FORMATS))
def test_program_formats_with_trust(files, reference, name):
    m = load(files[name], trust=True)
    assert m.format == PROGRAM_FORMATS[name]
    assert_same_model(reference, m, order=True)


@pytest.mark.parametrize("name", list(PROGRAM_FORMATS))
def test_program_formats_refused_without_trust(files, name):
    from initcheck.errors import UntrustedFormatError

    with pytest.raises(UntrustedFormatError, match="--trust"):
        load(files[name])


def test_checkpoint_notes_name_the_key(files):
    m = load(files["ckpt_model_state_dict.pt"])
    assert any("model_state_dict" in n for n in m.source_notes)
    # the optimizer's tensors (exp_avg...) are not layers
    assert sum(p.tensor.size for layer in m.layers for p in layer.params) == sum(
        p.numel() for p in make_model().parameters())


def test_wrapper_prefixes_stripped_and_noted(files):
    for name, prefix in (("lightning.ckpt", "model."), ("dataparallel.pt", "module."), ("compiled.pt", "_orig_mod.")):
        m = load(files[name])
        assert any(prefix in n for n in m.source_notes), (name, m.source_notes)


def test_cli_reads_every_format(files):
    """The command line agrees with the API: same layer names and statistics in the JSON document."""
    from conftest import cli_json

    base = cli_json(files["zip.pt"])
    base_stats = {layer["name"]: layer["stats"] for layer in base["layers"]}
    for name in ("legacy.pt", "lightning.ckpt", "model.safetensors", "hf_dir_bin_sharded"):
        doc = cli_json(files[name])
        assert {layer["name"]: layer["stats"] for layer in doc["layers"]} == base_stats, name
    for name in PROGRAM_FORMATS:
        doc = cli_json(files[name], "--trust")
        assert {layer["name"]: layer["stats"] for layer in doc["layers"]} == base_stats, name


def test_in_memory_module_and_state_dict(model, reference):
    import initcheck

    report = initcheck.check(model)
    assert [layer.name for layer in report.layers] == EXPECTED_NAMES
    assert report.exit_code() == 0 or all(f.severity != "error" or f.rule not in ("IC001", "IC002", "IC003")
                                          for f in report.findings)
    assert report.model.format == "module" and report.model.handle is model
    assert_same_model(reference, load(model.state_dict()), order=True)
    st = report.layers[0].weight.stats
    w = model.conv.weight.detach().double().numpy()
    assert st.count == w.size and np.isclose(st.std, w.std(), rtol=1e-12)


def test_tied_weights_reported_once_with_aliases(tmp_path):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(50, 8)
            self.proj = nn.Linear(8, 8)
            self.head = nn.Linear(8, 50, bias=False)
            self.head.weight = self.embed.weight

    torch.manual_seed(0)
    m = Tied()
    torch.save(m.state_dict(), tmp_path / "tied.pt")
    for source in (m, m.state_dict(), str(tmp_path / "tied.pt")):
        model = load(source)
        names = [layer.name for layer in model.layers]
        assert names == ["embed", "proj"], names
        assert model.layers[0].weight.aliases == ["head.weight"]
        assert model.parameter_count == 50 * 8 + 8 * 8 + 8  # the shared matrix counted once


def test_bf16_and_fp16_state_dicts(tmp_path, model):
    from safetensors.torch import save_file

    for dt in (torch.bfloat16, torch.float16):
        sd = {k: v.to(dt) if v.is_floating_point() else v for k, v in model.state_dict().items()}
        torch.save(sd, tmp_path / "h.pt")
        save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "h.safetensors"))
        a, b = load(str(tmp_path / "h.pt")), load(str(tmp_path / "h.safetensors"))
        assert_same_model(a, b)
        va = tensor_values(a)
        for k, v in sd.items():
            if k in va:
                np.testing.assert_array_equal(va[k], v.double().numpy())
        assert a.layers[0].weight.tensor.dtype == str(dt).replace("torch.", "")


def test_misnamed_files_read_by_content(tmp_path, model, reference):
    """Content decides the format: a PyTorch zip named .safetensors and a safetensors file named .pt."""
    from safetensors.torch import save_file

    torch.save(model.state_dict(), tmp_path / "really_torch.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "really_st.pt"))
    a = load(str(tmp_path / "really_torch.safetensors"))
    b = load(str(tmp_path / "really_st.pt"))
    assert (a.format, b.format) == ("state_dict", "safetensors")
    assert_same_model(reference, a)
    assert_same_model(reference, b)
    assert any("name says safetensors" in n for n in a.source_notes)
    assert any("name says PyTorch" in n for n in b.source_notes)


def test_input_file_never_modified(files):
    import hashlib

    from initcheck.pipeline import check

    for name in ("zip.pt", "model.safetensors", "legacy.pt"):
        path = files[name]
        before = (hashlib.sha256(open(path, "rb").read()).hexdigest(), os.path.getmtime(path))
        check(path)
        assert (hashlib.sha256(open(path, "rb").read()).hexdigest(), os.path.getmtime(path)) == before


def test_exported_program_keeps_classes_groups_and_transposition(tmp_path):
    """ep.module() loses module classes; they come back from the graph, with conv groups/transposition."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 3, groups=8),
                                      nn.Conv2d(8, 16, 3, groups=2), nn.ConvTranspose2d(16, 8, 4, groups=2))
            self.ln = nn.LayerNorm(8)
            self.fc = nn.Linear(8, 4)
            self.emb = nn.Embedding(10, 8)

        def forward(self, x, ids):
            return self.fc(self.ln(self.body(x).mean((2, 3)) + self.emb(ids)))

    torch.manual_seed(0)
    net = Net().eval()
    ep = torch.export.export(net, (torch.randn(2, 3, 12, 12), torch.tensor([1, 2])))
    torch.export.save(ep, str(tmp_path / "net.pt2"))
    live, exported = load(net), load(str(tmp_path / "net.pt2"), trust=True)
    assert_same_model(live, exported, order=True)
    kinds = {layer.name: layer.kind for layer in exported.layers}
    assert kinds["body.2"] == "depthwise_conv2d" and kinds["body.4"] == "conv_transpose2d"
    assert kinds["body.1"] == "batchnorm"


def test_model_prefix_kept_in_plain_state_dicts(tmp_path):
    """A Hugging Face style state_dict whose keys all start with 'model.' (a tied head dropped) keeps its
    names, as its safetensors twin does; a Lightning checkpoint strips its holder 'model.' once only."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    inner = nn.Module()
    inner.model = nn.Module()
    inner.model.embed_tokens = nn.Embedding(10, 4)
    inner.model.proj = nn.Linear(4, 4)
    sd = inner.state_dict()
    assert all(k.startswith("model.") for k in sd)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "model.safetensors"))
    names = ["model.embed_tokens", "model.proj"]
    assert [layer.name for layer in load(str(tmp_path / "pytorch_model.bin")).layers] == names
    assert [layer.name for layer in load(str(tmp_path / "model.safetensors")).layers] == names
    assert [layer.name for layer in load(inner).layers] == names
    torch.save({"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 0}, tmp_path / "l.ckpt")
    m = load(str(tmp_path / "l.ckpt"))
    assert [layer.name for layer in m.layers] == names
    torch.save({f"module._orig_mod.{k}": v for k, v in sd.items()}, tmp_path / "ddp_compiled.pt")
    assert [layer.name for layer in load(str(tmp_path / "ddp_compiled.pt")).layers] == names
