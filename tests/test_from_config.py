"""``--from-config``: a tensor-only Hugging Face directory rebuilt as the transformers class its config.json
names (frameworks/torch/hfbuild.py). The layers then carry exactly the graph context and findings of the
same model checked in memory; refusals are one line and exit 2; without the option nothing changes."""

from __future__ import annotations

import dataclasses
import json
import os
import socket

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from click.testing import CliRunner  # noqa: E402

from conftest import run_python  # noqa: E402
from initcheck.cli import main  # noqa: E402
from initcheck.pipeline import check  # noqa: E402

SMALL = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=128)
CONFIGS = {
    "bert": lambda: transformers.BertConfig(**SMALL, vocab_size=300, max_position_embeddings=64),
    "gpt2": lambda: transformers.GPT2Config(n_layer=3, n_embd=64, n_head=4, vocab_size=300, n_positions=64,
                                            bos_token_id=0, eos_token_id=0),
    "llama": lambda: transformers.LlamaConfig(**SMALL, num_key_value_heads=2, vocab_size=300,
                                              max_position_embeddings=64),
    "vit": lambda: transformers.ViTConfig(**SMALL, image_size=32, patch_size=8),
}
# One mid-network matrix ×10 in each model, so that the findings compared are not empty.
PLANTED = {"bert": "encoder.layer.1.intermediate.dense", "gpt2": "h.1.mlp.c_fc", "llama": "layers.1.mlp.up_proj",
           "vit": "layers.1.mlp.fc1"}


def built(kind: str, head: type | None = None, seed: int = 0):
    """A small stock-initialized transformers model (AutoModel, or ``head``) with one planted ×10 layer."""
    torch.manual_seed(seed)
    config = CONFIGS[kind]()
    model = head(config) if head is not None else transformers.AutoModel.from_config(config)
    target = dict(model.named_modules()).get(PLANTED[kind]) if head is None else None
    if target is not None:
        with torch.no_grad():
            target.weight.mul_(10)
    return model.eval()


def view(report) -> tuple[list, list]:
    """Everything a report says per layer (kind, fans, context, judgement) and its findings."""
    layers = [(la.name, la.kind, la.fan_in, la.fan_out, dataclasses.asdict(la.context), la.analysis)
              for la in report.model.layers]
    findings = [(f.rule, f.layer, f.severity, f.message) for f in report.findings]
    return layers, findings


def invoke(*args: str):
    return CliRunner().invoke(main, [*args, "--no-progress", "--isolated"])


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_same_context_and_findings_as_the_module_in_memory(kind, tmp_path):
    module = built(kind)
    module.save_pretrained(tmp_path)
    in_memory = check(module)
    rebuilt = check(str(tmp_path), from_config=True)
    assert view(rebuilt) == view(in_memory)
    assert any(f.layer == PLANTED[kind] for f in rebuilt.findings), view(rebuilt)[1]
    assert f"architecture from config.json ({type(module).__name__})" in rebuilt.model.source_notes
    matrices = [la for la in rebuilt.model.layers if la.is_matrix and la.kind != "embedding"]
    assert matrices and all(la.context.activation_source in ("graph", "trace") for la in matrices)
    # the tensor-only check of the same directory has no graph: the option is what brought the context
    plain = check(str(tmp_path))
    assert plain.model.handle is None
    assert view(plain)[0] != view(rebuilt)[0]


def test_tied_head_stays_tied_and_shares_the_file_tensor(tmp_path):
    module = built("gpt2", head=transformers.GPT2LMHeadModel)
    module.save_pretrained(tmp_path)  # stores the tied wte/lm_head once
    report = check(str(tmp_path), from_config=True)
    live = report.model.handle
    assert type(live).__name__ == "GPT2LMHeadModel"
    assert live.lm_head.weight is live.transformer.wte.weight
    wte = next(la for la in report.model.layers if la.name == "transformer.wte")
    assert wte.weight.aliases == ["lm_head.weight"]
    assert view(report) == view(check(module))


def _file_mappings(path: str) -> list[tuple[int, int]]:
    """Address ranges of /proc/self/maps entries that map ``path``."""
    real = os.path.realpath(path)
    ranges = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5] == real:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                ranges.append((lo, hi))
    return ranges


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="reads Linux's /proc/self/maps")
@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_parameters_are_the_file_pages_not_a_copy(fmt, tmp_path):
    module = built("bert")
    if fmt == "safetensors":
        module.save_pretrained(tmp_path)
        weights = tmp_path / "model.safetensors"
    else:
        module.config.save_pretrained(tmp_path)
        weights = tmp_path / "pytorch_model.bin"
        torch.save(module.state_dict(), weights)
    report = check(str(tmp_path), from_config=True)
    ranges = _file_mappings(str(weights))
    params = list(report.model.handle.named_parameters())
    assert ranges and params
    outside = [n for n, p in params if not any(lo <= p.data_ptr() < hi for lo, hi in ranges)]
    assert outside == []


def test_bin_shards_with_an_index(tmp_path):
    module = built("llama")
    module.config.save_pretrained(tmp_path)
    state = module.state_dict()
    names = list(state)
    halves = {"pytorch_model-00001-of-00002.bin": names[: len(names) // 2],
              "pytorch_model-00002-of-00002.bin": names[len(names) // 2:]}
    weight_map = {}
    for shard, keys in halves.items():
        torch.save({k: state[k].clone() for k in keys}, tmp_path / shard)
        weight_map.update({k: shard for k in keys})
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    report = check(str(tmp_path), from_config=True)
    assert "architecture from config.json (LlamaModel)" in report.model.source_notes
    assert view(report) == view(check(module))


def test_base_model_prefix_is_removed_as_from_pretrained_does(tmp_path):
    """A file whose keys carry the head model's ``bert.`` prefix loads into BertModel (prefix removed)."""
    from safetensors.torch import save_file

    module = built("bert")
    module.config.save_pretrained(tmp_path)
    save_file({f"bert.{k}": v.contiguous() for k, v in module.state_dict().items()}, tmp_path / "model.safetensors")
    report = check(str(tmp_path), from_config=True)
    assert any("mapped as from_pretrained maps them" in n and "bert." in n for n in report.model.source_notes)
    assert view(report) == view(check(module))


def test_hub_style_gpt2_layout_prefix_added_head_tied_old_buffers_ignored(tmp_path):
    """The layout of the GPT-2 checkpoints on the Hub: body names without ``transformer.``, no ``lm_head``
    (tied), old per-layer ``attn.bias`` mask buffers, architectures GPT2LMHeadModel."""
    from safetensors.torch import save_file

    module = built("gpt2", head=transformers.GPT2LMHeadModel)
    module.config.architectures = ["GPT2LMHeadModel"]
    module.config.save_pretrained(tmp_path)
    state = {k[len("transformer."):]: v.contiguous() for k, v in module.state_dict().items()
             if k.startswith("transformer.")}
    for i in range(module.config.n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64)
    save_file(state, tmp_path / "model.safetensors")
    for path in (tmp_path, tmp_path / "model.safetensors"):  # the directory, or its file with config.json beside
        report = check(str(path), from_config=True)
        notes = report.model.source_notes
        assert "architecture from config.json (GPT2LMHeadModel)" in notes
        assert any("h.0.attn.c_attn.bias -> transformer.h.0.attn.c_attn.bias" in n for n in notes), notes
        assert any(n.startswith("tensors transformers ignores on load, left out: h.0.attn.bias") for n in notes)
        live = report.model.handle
        assert live.lm_head.weight is live.transformer.wte.weight
        assert view(report) == view(check(module))


def test_architecture_unknown_to_transformers_builds_the_base_model(tmp_path):
    module = built("bert")
    module.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["architectures"] = ["MyOwnBertThing"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    report = check(str(tmp_path), from_config=True)
    assert "architecture from config.json (BertModel)" in report.model.source_notes
    assert any("MyOwnBertThing is not a class transformers maps" in n for n in report.model.source_notes)


def _one_line_exit_2(result, *expected: str) -> str:
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    for text in expected:
        assert text in line, line
    return line


@pytest.mark.parametrize("where", ["top", "nested"])
def test_auto_map_is_refused(where, tmp_path):
    module = built("bert")
    module.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    remote = {"AutoModel": "modeling_evil.EvilModel"}
    if where == "top":
        config["auto_map"] = remote
    else:
        config["text_config"] = {"model_type": "bert", "auto_map": remote}
    (tmp_path / "config.json").write_text(json.dumps(config))
    line = _one_line_exit_2(invoke(str(tmp_path), "--from-config"), "config.json", "auto_map", "trust_remote_code")
    assert str(tmp_path / "config.json") in line


def test_directory_without_config_json(tmp_path):
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.randn(8, 8)}, tmp_path / "model.safetensors")
    _one_line_exit_2(invoke(str(tmp_path), "--from-config"), "--from-config needs a config.json", str(tmp_path))
    assert invoke(str(tmp_path)).exit_code in (0, 1)  # without the option: the tensor-only check


def test_unknown_model_type_is_refused(tmp_path):
    module = built("bert")
    module.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "evil-net", "architectures": ["EvilModel"]}))
    _one_line_exit_2(invoke(str(tmp_path), "--from-config"), "model_type 'evil-net'", "use --model")


def test_missing_and_unexpected_tensors_are_one_line_errors(tmp_path):
    from safetensors.torch import save_file

    module = built("bert")
    module.config.save_pretrained(tmp_path)
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    dropped = "encoder.layer.2.output.dense.weight"
    save_file({k: v for k, v in state.items() if k != dropped}, tmp_path / "model.safetensors")
    _one_line_exit_2(invoke(str(tmp_path), "--from-config"), "1 parameter of BertModel", dropped)
    save_file({**state, "extra.weight": torch.zeros(3, 3)}, tmp_path / "model.safetensors")
    _one_line_exit_2(invoke(str(tmp_path), "--from-config"), "1 tensor of the file has no place in BertModel",
                     "extra.weight")
    save_file({**state, dropped: torch.zeros(5, 5)}, tmp_path / "model.safetensors")
    _one_line_exit_2(invoke(str(tmp_path), "--from-config"), f"tensor {dropped} has shape (5, 5)")


def test_model_and_from_config_exclude_each_other(tmp_path):
    built("bert").save_pretrained(tmp_path)
    _one_line_exit_2(invoke(str(tmp_path), "--from-config", "--model", "x:y"), "give one")


def test_config_key_and_its_negation(tmp_path):
    built("bert").save_pretrained(tmp_path / "m")
    (tmp_path / "pyproject.toml").write_text("[tool.initcheck]\nfrom-config = true\n")
    r = CliRunner().invoke(main, [str(tmp_path / "m"), "--format", "json", "--no-progress"])
    assert r.exit_code in (0, 1), r.output
    assert "architecture from config.json (BertModel)" in json.loads(r.stdout)["source"]["notes"]
    r = CliRunner().invoke(main, [str(tmp_path / "m"), "--format", "json", "--no-progress", "--no-from-config"])
    assert "architecture from config.json (BertModel)" not in json.loads(r.stdout)["source"]["notes"]
    (tmp_path / "pyproject.toml").write_text("[tool.initcheck]\nfrom-config = \"yes\"\n")
    r = CliRunner().invoke(main, [str(tmp_path / "m"), "--no-progress"])
    _one_line_exit_2(r, "'from-config' must be true or false")


def test_config_key_is_for_check_only_fix_still_writes_and_rechecks(tmp_path):
    built("bert").save_pretrained(tmp_path / "m")
    (tmp_path / "pyproject.toml").write_text("[tool.initcheck]\nfrom-config = true\n")
    out = tmp_path / "fixed.safetensors"
    r = CliRunner().invoke(main, ["fix", str(tmp_path / "m" / "model.safetensors"), "-o", str(out),
                                  "--layers", "encoder.layer.1.intermediate.dense"])
    assert r.exit_code == 0, r.output
    assert out.is_file() and "re-check passed" in r.output


def test_nothing_is_fetched_from_the_network(tmp_path, monkeypatch):
    built("llama").save_pretrained(tmp_path)
    before = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}

    def refuse(*args, **kwargs):
        raise AssertionError("--from-config opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    report = check(str(tmp_path), from_config=True)
    assert "architecture from config.json (LlamaModel)" in report.model.source_notes
    assert {k: os.environ.get(k) for k in before} == before  # the offline switches are set only meanwhile


def test_without_the_option_a_hf_directory_stays_torch_free(tmp_path):
    built("bert").save_pretrained(tmp_path)
    code = ("import sys, initcheck; r = initcheck.check(%r); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules), r.model.handle is None)"
            % str(tmp_path))
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "[] True"


def test_safetensors_views_decode_every_dtype(tmp_path):
    """bf16/fp16/int tensors come out of the memory map with their own dtype and values."""
    from safetensors.torch import save_file

    from initcheck.frameworks.torch.hfbuild import safetensors_tensors

    gen = torch.Generator().manual_seed(0)
    tensors = {"a": torch.randn(4, 6, generator=gen).to(torch.bfloat16), "b": torch.randn(3, generator=gen).half(),
               "c": torch.arange(5), "d": torch.zeros(0, 4), "e": torch.tensor([True, False])}
    save_file(tensors, tmp_path / "x.safetensors")
    got = safetensors_tensors(str(tmp_path / "x.safetensors"))
    assert set(got) == set(tensors)
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k
