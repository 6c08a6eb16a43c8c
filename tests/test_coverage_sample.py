"""A seeded sample of the graph-coverage sweep (``make coverage`` runs all of it; benchmarks/coverage_sweep.py).

Stock architectures built in memory with random weights (timm, transformers configs, keras.applications,
keras_hub): every unknown activation has a reason, the report holds every trainable weight, Keras names
survive a save and reload, and torch weight layers with unknown activation stay at or under 1 %.
"""

from __future__ import annotations

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

coverage_sweep = pytest.importorskip("coverage_sweep")

SEED = 13


@pytest.fixture(scope="module")
def torch_results():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return coverage_sweep.sweep("torch", sample=10, seed=SEED, verbose=False)


@pytest.fixture(scope="module")
def keras_results():
    pytest.importorskip("keras")
    return coverage_sweep.sweep("keras", names=["keras_hub/", "MobileNet", "EfficientNetB0", "DenseNet121"],
                                sample=5, seed=SEED, verbose=False)


def _check(results):
    assert results, "the sample is empty"
    failed = [f"{r.name}: {r.error}" for r in results if not r.ok]
    assert not failed
    for r in results:
        assert r.unexplained == 0, (r.name, r.unknown_layers)
        assert r.params_reported == r.params_framework, (r.name, r.params_reported, r.params_framework)
        assert not r.names_mismatch, (r.name, r.names_mismatch)


@pytest.mark.slow
def test_torch_sample(torch_results):
    _check(torch_results)
    totals = coverage_sweep.totals(torch_results)
    assert totals["weight_layers"] > 100
    assert totals["unknown_percent"] <= 1.0, totals["unknown_reasons"]


@pytest.mark.slow
def test_keras_sample(keras_results):
    _check(keras_results)


@pytest.mark.slow
def test_keras_sample_unknown_activations_at_most_one_percent(keras_results):
    totals = coverage_sweep.totals(keras_results)
    assert totals["weight_layers"] > 40
    assert totals["unknown_percent"] <= 1.0, totals["unknown_reasons"]
