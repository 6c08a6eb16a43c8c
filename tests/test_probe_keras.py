"""The probe on Keras models: twin PyTorch and Keras models give the same figures; nothing changes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")
if keras.backend.backend() != "tensorflow":  # pragma: no cover - the dev install runs Keras on TensorFlow
    pytest.skip("the Keras probe needs the TensorFlow backend", allow_module_level=True)

import initcheck  # noqa: E402

FIELDS = ("in_rms", "out_rms", "gain", "ratio", "grad_out_rms", "weight_rms", "weight_grad_rms", "update_ratio",
          "predicted_gain", "dead_fraction")


def twins(widths=(24, 64, 64, 64, 10), scale=1.0, seed=0):
    """The same ReLU MLP in both frameworks (Keras kernels are the transposed PyTorch weights)."""
    torch.manual_seed(seed)
    mods = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        mods.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            mods.append(torch.nn.ReLU())
    tm = torch.nn.Sequential(*mods)
    layers = [keras.Input((widths[0],))]
    for i, b in enumerate(widths[1:]):
        layers.append(keras.layers.Dense(b, activation="relu" if i < len(widths) - 2 else None))
    km = keras.Sequential(layers)
    dense = [la for la in km.layers if isinstance(la, keras.layers.Dense)]
    linear = [m for m in tm if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for lin, d in zip(linear, dense):
            lin.weight *= scale
            d.kernel.assign(lin.weight.detach().numpy().T)
            d.bias.assign(lin.bias.detach().numpy())
    return tm, km


def test_twin_models_give_the_same_figures():
    tm, km = twins()
    t = initcheck.probe(tm).measurements.layers
    k = initcheck.probe(km).measurements.layers
    assert len(t) == len(k) == 4
    for a, b in zip(t, k):
        for field in FIELDS:
            x, y = getattr(a, field), getattr(b, field)
            if x is None:
                assert y is None, (a.name, field)
                continue
            assert y == pytest.approx(x, rel=1e-4, abs=1e-7), (a.name, b.name, field)


def test_twin_models_get_the_same_findings():
    tm, km = twins(widths=(24,) + (64,) * 12 + (10,))
    t = sorted((f.rule, f.severity) for f in initcheck.probe(tm).findings)
    k = sorted((f.rule, f.severity) for f in initcheck.probe(km).findings)
    assert t == k and ("IC401", "error") in t


def test_keras_weights_and_moving_statistics_are_bit_identical_after():
    km = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="tanh"),
                           keras.layers.BatchNormalization(), keras.layers.Dropout(0.5), keras.layers.Dense(4)])
    before = [np.array(w.numpy(), copy=True) for w in km.weights]
    result = initcheck.probe(km)
    assert result.measurements.layers[0].saturated_fraction is not None
    after = [w.numpy() for w in km.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert km.layers[2].rate == 0.5


def keras_sp_mlp(width: int):
    keras.utils.set_random_seed(width)
    return keras.Sequential([keras.Input((32,)), keras.layers.Dense(width, activation="relu"),
                             keras.layers.Dense(width, activation="relu"), keras.layers.Dense(10)])


def test_keras_coord_check_flags_glorot_on_the_input_layer():
    """Keras' Glorot averages fan_in and fan_out: the input layer's 32→width weights get variance
    2/(32 + width), so its activations shrink as width^-1/2 and everything downstream with them."""
    c = initcheck.probe.coord_check(keras_sp_mlp, [64, 128, 256, 512])
    first = c.measurements.layers[0]
    assert first.position == "input" and first.init_slope < -0.3  # names differ per width: matched by order
    assert any(f.layer == first.name for f in c.findings)


def test_probe_command_reads_a_keras_file(tmp_path):
    import json

    from click.testing import CliRunner

    from initcheck.cli import main

    _, km = twins(widths=(24,) + (64,) * 12 + (10,))
    km.save(tmp_path / "m.keras")
    res = CliRunner().invoke(main, ["probe", str(tmp_path / "m.keras"), "--format", "json"])
    assert res.exit_code == 1, res.output
    doc = json.loads(res.output)
    assert doc["probe"]["framework"] == "keras" and len(doc["probe"]["layers"]) == 13
    assert "IC401" in {f["rule"] for f in doc["findings"]}
