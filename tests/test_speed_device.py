"""Statistics computed on the tensor's device with torch ops (for models on a GPU) agree with the numpy
pass; here on CPU tensors, since the CPU path is the reference. Meta-device models get one clear error."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from initcheck.errors import InitcheckError  # noqa: E402
from initcheck.frameworks.torch.device_stats import device_stats  # noqa: E402
from initcheck.frameworks.torch.tensors import tensor_ref  # noqa: E402
from initcheck.statpass import tensor_stats  # noqa: E402


def close(a: float, b: float, rel: float = 2e-6) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= rel * max(abs(b), 1e-30)


def assert_same(dev, ref, rel=2e-6):
    for k in ("count", "finite", "nan", "inf", "min", "max", "min_count", "max_count", "zero_fraction", "subnormal",
              "units", "constant_units", "duplicate_units"):
        assert getattr(dev, k) == getattr(ref, k), (k, getattr(dev, k), getattr(ref, k))
    assert abs(dev.mean - ref.mean) <= 1e-6 * ref.std + 4e-16 * abs(ref.mean)
    for k in ("std", "rms"):
        assert close(getattr(dev, k), getattr(ref, k), rel), k
    for k in ("skewness", "excess_kurtosis"):
        a, b = getattr(dev, k), getattr(ref, k)
        assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 2e-5 * max(1.0, abs(b)), k
    assert close(dev.tail_fraction, ref.tail_fraction, 1e-12)
    if ref.unit_rms is not None:
        np.testing.assert_allclose(dev.unit_rms, ref.unit_rms, rtol=rel)
        assert close(dev.unit_std_spread, ref.unit_std_spread, 1e-5)
    if ref.sample_gram is not None:
        np.testing.assert_allclose(dev.sample_gram, ref.sample_gram, rtol=1e-5, atol=1e-9)


def planted(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=g) * 0.02
    u = t.view(shape[0], -1)  # writes go to t
    u[3] = u[1]  # a duplicate unit
    u[5] = 0.25  # a constant unit
    u[7, 2] = 1.0  # an outlier beyond 6 rms
    u[9, 4] = 0.0
    return t.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("shape", [(64, 40), (40, 300), (30, 4, 3, 3)])
def test_device_path_matches_numpy_pass(dtype, shape):
    t = planted(shape, dtype)
    assert_same(device_stats(t, per_unit=True), tensor_stats(tensor_ref(t), per_unit=True))
    assert_same(device_stats(t, per_unit=False), tensor_stats(tensor_ref(t), per_unit=False))


def test_device_path_units_on_last_axis_and_non_finite():
    t = planted((50, 70), torch.float32)
    t[11, 13] = float("nan")
    t[12, 1] = float("-inf")
    assert_same(device_stats(t, True, unit_axis=1), tensor_stats(tensor_ref(t, unit_axis=1), True))
    assert_same(device_stats(t, True, unit_axis=0), tensor_stats(tensor_ref(t, unit_axis=0), True))


def test_constant_tensor_exact_on_device():
    st = device_stats(torch.full((20, 10), 0.37), True)
    assert st.std == 0.0 and st.min == st.max == np.float32(0.37) and st.constant_units == 20
    assert st.duplicate_units == 19 and math.isnan(st.excess_kurtosis)


def test_pipeline_uses_device_stats_when_the_tensor_is_on_an_accelerator():
    """Where the adapter marks a tensor as living on a device, the pass calls device_stats, not raw()."""
    from initcheck.load import load
    from initcheck.statpass import compute_all

    model = load(torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)))
    calls = []
    for layer in model.layers:
        for p in layer.params:
            t = p.native

            def on_device(per_unit, t=t, axis=p.tensor.unit_axis):
                calls.append(per_unit)
                return device_stats(t, per_unit, axis)
            p.tensor.device_stats = on_device
            p.tensor._raw = None  # reading the values on the host would fail
    compute_all(model, jobs=2, progress=False)
    assert calls.count(True) == 2 and calls.count(False) == 2
    reference = load(model.handle)
    compute_all(reference, jobs=1, progress=False)
    for a, b in zip(model.layers, reference.layers):
        assert_same(a.weight.stats, b.weight.stats)


def test_meta_device_model_is_one_clear_error():
    import initcheck

    with torch.device("meta"):
        net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
    with pytest.raises(InitcheckError, match="meta device: there are no values to check"):
        initcheck.check(net)
