"""Real architectures built from small transformers configs (random init, nothing downloaded) load in every
format with the same layer names, kinds and fans."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from torch import nn  # noqa: E402
from transformers import (BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, ResNetConfig,  # noqa: E402
                          ResNetModel, ViTConfig, ViTModel)

from initcheck.load import load  # noqa: E402


class GPT2Logits(GPT2LMHeadModel):
    """GPT-2 whose forward returns plain logits (no cache object), so it can be traced and exported."""

    def forward(self, input_ids):
        return super().forward(input_ids, use_cache=False).logits


def build(name: str):
    torch.manual_seed(0)
    if name == "gpt2":
        cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=16, bos_token_id=0,
                         eos_token_id=0)
        return GPT2Logits(cfg).eval(), (torch.randint(0, 100, (1, 8)),)
    if name == "bert":
        cfg = BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                         vocab_size=100, max_position_embeddings=32, return_dict=False)
        return BertModel(cfg).eval(), (torch.randint(0, 100, (1, 8)),)
    if name == "vit":
        cfg = ViTConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                        image_size=32, patch_size=8, return_dict=False)
        return ViTModel(cfg).eval(), (torch.randn(1, 3, 32, 32),)
    if name == "resnet":
        cfg = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], return_dict=False)
        return ResNetModel(cfg).eval(), (torch.randn(1, 3, 32, 32),)
    raise ValueError(name)


ARCHS = ["gpt2", "bert", "vit", "resnet"]


def signature(model):
    return {layer.name: (layer.kind, tuple(layer.shape), layer.fan_in, layer.fan_out) for layer in model.layers}


def values(model):
    return {p.name: p.tensor.numpy() for layer in model.layers for p in layer.params}


@pytest.fixture(scope="module", params=ARCHS)
def arch(request, tmp_path_factory):
    from safetensors.torch import save_model

    name = request.param
    model, example = build(name)
    d = tmp_path_factory.mktemp(name)
    sd = model.state_dict()
    files = {}
    files["state_dict"] = str(d / "sd.pt")
    torch.save(sd, files["state_dict"])
    files["checkpoint"] = str(d / "ckpt.pt")
    torch.save({"model_state_dict": sd, "optimizer_state_dict": torch.optim.SGD(model.parameters(), lr=0.1).state_dict()},
               files["checkpoint"])
    files["lightning"] = str(d / "last.ckpt")
    torch.save({"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 0}, files["lightning"])
    files["safetensors"] = str(d / "model.safetensors")
    save_model(model, files["safetensors"])  # drops tied duplicates, like save_pretrained
    (d / "bin").mkdir()
    torch.save(sd, str(d / "bin" / "pytorch_model.bin"))
    files["hf_bin_dir"] = str(d / "bin")
    (d / "sharded").mkdir()
    st = {k: v for k, v in sd.items()}
    keys = list(st)
    half = len(keys) // 2
    from safetensors.torch import save_file

    wm = {}
    for i, part in enumerate((keys[:half], keys[half:]), 1):
        fname = f"model-0000{i}-of-00002.safetensors"
        tensors = {k: st[k].contiguous().clone() for k in part if k not in _tied_dupes(sd)}
        save_file(tensors, str(d / "sharded" / fname))
        wm.update({k: fname for k in tensors})
    (d / "sharded" / "model.safetensors.index.json").write_text(json.dumps({"weight_map": wm}))
    files["sharded_dir"] = str(d / "sharded")
    files["whole_module"] = str(d / "whole.pt")
    torch.save(model, files["whole_module"])
    return name, model, example, files, d


def _tied_dupes(sd) -> set[str]:
    """Names that share storage with an earlier name (what safetensors must not store twice)."""
    seen, dupes = {}, set()
    for k, v in sd.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        if key in seen:
            dupes.add(k)
        else:
            seen[key] = k
    return dupes


def test_every_format_same_layers(arch):
    name, model, example, files, _ = arch
    ref = load(model)
    ref_sig, ref_vals = signature(ref), values(ref)
    assert len(ref_sig) >= 10
    for fmt, path in files.items():
        m = load(path, trust=(fmt == "whole_module"))
        assert signature(m) == ref_sig, (name, fmt, sorted(set(signature(m).items()) ^ set(ref_sig.items()))[:4])
        vals = values(m)
        assert set(vals) == set(ref_vals), (name, fmt)
        for k in ref_vals:
            np.testing.assert_array_equal(vals[k], ref_vals[k], err_msg=f"{name} {fmt} {k}")
        if m.framework == "torch":  # torch files and modules keep the forward order
            assert [layer.name for layer in m.layers] == list(ref_sig), (name, fmt)


def test_kinds_and_fans_by_hand(arch):
    name, model, *_ = arch
    sig = signature(load(model))
    if name == "gpt2":  # transformers Conv1D stores (in, out)
        assert sig["transformer.h.0.attn.c_attn"] == ("linear_transposed", (32, 96), 32, 96)
        assert sig["transformer.h.0.mlp.c_proj"] == ("linear_transposed", (128, 32), 128, 32)
        assert sig["transformer.wte"] == ("embedding", (100, 32), 32, 100)
        assert sig["transformer.h.1.ln_2"] == ("layernorm", (32,), None, None)
    elif name == "bert":
        assert sig["encoder.layer.1.attention.self.query"] == ("linear", (32, 32), 32, 32)
        assert sig["encoder.layer.0.intermediate.dense"] == ("linear", (64, 32), 32, 64)
        assert sig["encoder.layer.0.output.dense"] == ("linear", (32, 64), 64, 32)
        assert sig["embeddings.token_type_embeddings"] == ("embedding", (2, 32), 32, 2)
    elif name == "vit":
        conv = [v for k, v in sig.items() if k.endswith("patch_embeddings.projection")][0]
        assert conv == ("conv2d", (32, 3, 8, 8), 3 * 64, 32 * 64)
        pos = [v for k, v in sig.items() if k.endswith("position_embeddings")][0]
        assert pos == ("parameter", (1, 17, 32), 32, 17)  # (1, 17, 32) read as a (17, 32) table
    elif name == "resnet":
        assert sig["embedder.embedder.convolution"] == ("conv2d", (8, 3, 7, 7), 3 * 49, 8 * 49)
        assert sig["embedder.embedder.normalization"] == ("batchnorm", (8,), None, None)


def test_gpt2_tied_embedding_reported_once(tmp_path):
    from safetensors.torch import save_model

    model, _ = build("gpt2")
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    torch.save(model, tmp_path / "whole.pt")
    save_model(model, str(tmp_path / "m.safetensors"))  # stores the shared matrix once, names the other in metadata
    for source in (model, str(tmp_path / "sd.pt"), str(tmp_path / "whole.pt"), str(tmp_path / "m.safetensors")):
        m = load(source, trust=True) if isinstance(source, str) else load(source)
        wte = [layer for layer in m.layers if layer.name == "transformer.wte"][0]
        assert wte.weight.aliases == ["lm_head.weight"]
        assert not [layer for layer in m.layers if layer.name.startswith("lm_head")]
        assert m.parameter_count == sum(p.numel() for p in model.parameters())  # parameters() dedups too


def test_save_pretrained_directory(arch, tmp_path):
    """transformers' own writer; ViT's writer renames keys to its legacy layout, so compare structure there."""
    name, model, *_ = arch
    model.save_pretrained(str(tmp_path / "hf"))
    m = load(str(tmp_path / "hf"))
    ref = signature(load(model))
    if name == "vit":
        assert sorted(signature(m).values(), key=repr) == sorted(ref.values(), key=repr)
    else:
        assert signature(m) == ref


@pytest.mark.slow
def test_torchscript_and_export(arch):
    name, model, example, _, d = arch
    ref = signature(load(model))
    ts = str(d / "traced.pt")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(model, example, strict=False).save(ts)
    assert signature(load(ts, trust=True)) == ref, name
    pt2 = str(d / "program.pt2")
    torch.export.save(torch.export.export(model, example, strict=False), pt2)
    exported = load(pt2, trust=True)
    assert signature(exported) == ref, (name, sorted(set(signature(exported).items()) ^ set(ref.items()))[:4])
