"""The model zoo (benchmarks/zoo): enough stock architectures per framework, a reproducible sample, and
builders that return models freshly initialized by their own libraries."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import zoo  # noqa: E402


def test_zoo_has_enough_models_per_framework():
    assert len(zoo.entries("torch")) >= 150
    assert len(zoo.entries("keras")) >= 80
    assert set(zoo.libraries()) == {"timm", "torchvision", "transformers", "keras.applications", "keras_hub"}


def test_names_unique_and_framework_matches_library():
    names = [e.name for e in zoo.entries()]
    assert len(names) == len(set(names))
    for e in zoo.entries():
        assert e.name.startswith(e.library + "/")
        assert e.framework == ("keras" if e.library.startswith("keras") else "torch")


def test_sample_is_seeded_and_filtered():
    a = [e.name for e in zoo.sample(10, seed=3)]
    assert a == [e.name for e in zoo.sample(10, seed=3)]
    assert a != [e.name for e in zoo.sample(10, seed=4)]
    assert all(e.framework == "keras" for e in zoo.sample(5, seed=0, framework="keras"))
    assert len(zoo.sample(10_000, seed=0, library="torchvision")) == len(zoo.entries(library="torchvision"))


@pytest.mark.parametrize("name", ["timm/resnet18", "torchvision/mobilenet_v3_small", "transformers/llama"])
def test_torch_builders_return_fresh_modules(name):
    torch = pytest.importorskip("torch")
    model = zoo.get(name).build()
    assert isinstance(model, torch.nn.Module) and not model.training
    assert sum(p.numel() for p in model.parameters()) > 100_000
    # fresh: a second build with the same seed is identical, so nothing was loaded from anywhere
    again = zoo.get(name).build()
    first = next(iter(model.state_dict().values()))
    assert torch.equal(first, next(iter(again.state_dict().values())))


@pytest.mark.parametrize("name", ["keras.applications/MobileNetV3Small", "keras_hub/BertBackbone"])
def test_keras_builders_return_models(name):
    keras = pytest.importorskip("keras")
    model = zoo.get(name).build()
    assert isinstance(model, keras.Model) and model.count_params() > 100_000


def test_unknown_name_is_a_key_error():
    with pytest.raises(KeyError, match="no zoo entry"):
        zoo.get("timm/not_a_model")
