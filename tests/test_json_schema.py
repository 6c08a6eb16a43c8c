"""The --format json document validates against docs/report.schema.json, and docs/json-schema.md
documents every field it emits."""

from __future__ import annotations

import copy
import json
import os
import re

import pytest

from conftest import DOCS, FIXTURES, cli_json

jsonschema = pytest.importorskip("jsonschema")

SCHEMA_PATH = os.path.join(DOCS, "report.schema.json")
MD_PATH = os.path.join(DOCS, "json-schema.md")


@pytest.fixture(scope="module")
def validator():
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    docs = {
        "broken_cnn": cli_json(os.path.join(FIXTURES, "broken_cnn.safetensors")),
        "healthy_mlp": cli_json(os.path.join(FIXTURES, "healthy_mlp.pt")),
        "tiny_gpt2": cli_json(os.path.join(FIXTURES, "tiny_gpt2.safetensors")),
        "several": cli_json(os.path.join(FIXTURES, "healthy_mlp.pt"), os.path.join(FIXTURES, "broken_cnn.safetensors")),
    }
    torch = pytest.importorskip("torch")
    from torch import nn

    import initcheck

    torch.manual_seed(0)
    m = nn.Sequential(nn.Embedding(20, 8), nn.LSTM(8, 8), nn.LayerNorm(8)).to(torch.bfloat16)
    with torch.no_grad():
        m[2].weight.fill_(float("nan"))  # every value non-finite: statistics are null
    docs["bf16_module"] = json.loads(json.dumps(initcheck.check(m).to_json(), allow_nan=False))
    d = tmp_path_factory.mktemp("ckpt")
    torch.save({"model_state_dict": m.state_dict(), "epoch": 1}, d / "ck.pt")
    docs["checkpoint"] = cli_json(str(d / "ck.pt"))
    return docs


def _reports(doc):
    return doc["models"] if "models" in doc else [doc]


def test_documents_validate(validator, documents):
    for name, doc in documents.items():
        errors = sorted(validator.iter_errors(doc), key=str)
        assert not errors, (name, [e.message for e in errors[:5]])


def test_documents_are_self_consistent(documents):
    for name, doc in documents.items():
        for rep in _reports(doc):
            s = rep["summary"]
            assert s["layers"] == len(rep["layers"]), name
            sev = [f["severity"] for f in rep["findings"]]
            assert (s["errors"], s["warnings"], s["infos"]) == (sev.count("error"), sev.count("warning"),
                                                                 sev.count("info"))
            counted = sum(layer["stats"]["count"] + (layer["bias"]["stats"]["count"] if layer["bias"] else 0)
                          for layer in rep["layers"])
            assert counted == s["parameters"], name
            names = {layer["name"] for layer in rep["layers"]}
            assert all(f["layer"] is None or f["layer"] in names for f in rep["findings"])
            for layer in rep["layers"]:
                assert layer["stats"]["count"] == _prod(layer["shape"])


def _prod(shape):
    out = 1
    for s in shape:
        out *= s
    return out


def test_checkpoint_key_and_nulls(documents):
    assert documents["checkpoint"]["source"]["checkpoint_key"] == "model_state_dict"
    norm = [layer for layer in documents["bf16_module"]["layers"] if layer["kind"] == "layernorm"][0]
    assert norm["stats"]["nan"] == 8 and norm["stats"]["mean"] is None and norm["dtype"] == "bfloat16"


@pytest.mark.parametrize("mutate", [
    lambda d: d.__setitem__("schema", 2),
    lambda d: d["layers"][0].pop("fan_in"),
    lambda d: d["layers"][0]["stats"].__setitem__("nan", -1),
    lambda d: d["findings"].append({"rule": "IC001", "severity": "fatal", "layer": None, "message": "x"}),
    lambda d: d["summary"].pop("errors"),
    lambda d: d["source"].pop("framework"),
    lambda d: d["layers"][0]["stats"].__setitem__("zero_fraction", 1.5),
])
def test_schema_rejects_broken_documents(validator, documents, mutate):
    doc = copy.deepcopy(documents["broken_cnn"])
    mutate(doc)
    assert list(validator.iter_errors(doc)), "the schema accepted a broken document"


def _keys(obj, prefix=""):
    """Every key path the document uses (list items merged)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _keys(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _keys(v, prefix)


def test_markdown_documents_every_emitted_field(documents):
    with open(MD_PATH) as f:
        md = f.read()
    documented = set(re.findall(r"`([a-z_]+)`", md))
    skip_under = ("data", "fingerprint")  # free-form objects, documented as such
    emitted = set()
    for doc in documents.values():
        for rep in _reports(doc):
            emitted |= {k for k in _keys({k: v for k, v in rep.items()})}
            for layer in rep["layers"]:
                for k in skip_under:
                    if isinstance(layer.get(k), dict):
                        emitted -= set(layer[k]) - documented
            for f in rep["findings"]:
                if isinstance(f.get("data"), dict):
                    emitted -= set(f["data"]) - documented
    missing = sorted(k for k in emitted if k not in documented)
    assert not missing, f"docs/json-schema.md does not document: {missing}"


def test_schema_and_markdown_agree_on_required_fields():
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    with open(MD_PATH) as f:
        md = f.read()
    for part in ("report", "source", "stats", "layer", "finding", "summary"):
        for key in schema["$defs"][part].get("required", []):
            assert f"`{key}`" in md, (part, key)
