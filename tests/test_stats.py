"""Streaming statistics against numpy float64 two-pass values, on every float dtype, whole and chunked."""

from __future__ import annotations

import math

import numpy as np
import pytest

from initcheck.model import BIT_DECODERS, TensorRef
from initcheck.stats import compute_stats


def reference(x: np.ndarray) -> dict:
    """Plain numpy float64, two-pass: the values initcheck must reproduce."""
    x = np.asarray(x, dtype=np.float64).ravel()
    fin = x[np.isfinite(x)]
    mean = fin.mean()
    d = fin - mean
    var = (d * d).mean()
    return {
        "count": x.size, "nan": int(np.isnan(x).sum()), "inf": int(np.isinf(x).sum()), "finite": fin.size,
        "mean": mean, "std": math.sqrt(var), "min": fin.min(), "max": fin.max(), "max_abs": np.abs(fin).max(),
        "zero_fraction": float((fin == 0).mean()),
        "excess_kurtosis": (d ** 4).mean() / var ** 2 - 3.0 if var > 0 else math.nan,
        "skewness": (d ** 3).mean() / var ** 1.5 if var > 0 else math.nan,
        "rms": math.sqrt((fin * fin).mean()),
    }


def assert_matches(st, ref, rtol=1e-10):
    for k in ("count", "nan", "inf", "finite"):
        assert getattr(st, k) == ref[k], k
    for k in ("min", "max", "max_abs", "zero_fraction"):
        assert getattr(st, k) == ref[k], (k, getattr(st, k), ref[k])
    scale = ref["std"] or 1.0
    assert abs(st.mean - ref["mean"]) <= rtol * scale + 1e-300, ("mean", st.mean, ref["mean"])
    for k in ("std", "rms", "excess_kurtosis", "skewness"):
        assert math.isclose(getattr(st, k), ref[k], rel_tol=rtol, abs_tol=1e-12), (k, getattr(st, k), ref[k])


def ref_of(arr: np.ndarray, dtype: str) -> TensorRef:
    return TensorRef(arr.shape, dtype, lambda: arr, decode=BIT_DECODERS.get(dtype))


def bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bit patterns (round to nearest even), as numpy has no bfloat16."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def sample(shape, seed=0, dist="normal"):
    rng = np.random.default_rng(seed)
    if dist == "uniform":
        return rng.uniform(-0.3, 0.3, shape)
    return rng.standard_normal(shape) * 0.05 + 0.01


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("block", [None, 7, 64, 1000])
def test_native_dtypes_match_numpy(dtype, block):
    x = sample((37, 29)).astype(dtype)
    x[3, 4] = 0
    ref = reference(x)  # the stored values, widened to float64
    t = ref_of(x, dtype)
    st = compute_stats(t.blocks() if block is None else t.blocks(max_elements=block))
    assert_matches(st, ref)
    assert st.units == 37


@pytest.mark.parametrize("block", [None, 5, 100])
def test_bfloat16_matches_numpy_of_decoded_values(block):
    x = sample((50, 21), seed=1)
    bits = bf16_bits(x)
    decoded = (bits.astype(np.uint32) << 16).view(np.float32)
    assert np.abs(decoded - x).max() < 0.01 * np.abs(x).max()  # the decoding is bfloat16's, not garbage
    t = ref_of(bits, "bfloat16")
    st = compute_stats(t.blocks() if block is None else t.blocks(max_elements=block))
    assert_matches(st, reference(decoded))


def test_bfloat16_through_torch_matches_torch_float():
    torch = pytest.importorskip("torch")
    from initcheck.frameworks.torch.tensors import tensor_ref

    torch.manual_seed(0)
    t = (torch.randn(64, 33) * 0.02).to(torch.bfloat16)
    t[0, 0] = float("nan")
    t[1, 1] = float("-inf")
    st = compute_stats(tensor_ref(t).blocks(max_elements=100))
    assert_matches(st, reference(t.float().numpy()))


def test_float8_through_torch():
    torch = pytest.importorskip("torch")
    from initcheck.frameworks.torch.tensors import tensor_ref

    torch.manual_seed(0)
    for dt in (torch.float8_e4m3fn, torch.float8_e5m2):
        t = (torch.randn(16, 8) * 0.5).to(dt)
        st = compute_stats(tensor_ref(t).blocks())
        assert_matches(st, reference(t.float().numpy()))


def test_float64_precision_on_offset_data():
    """A large common offset defeats naive sum-of-squares; the merged central moments keep it."""
    x = 1000.0 + sample((200, 50), seed=2) * 1e-3
    st = compute_stats(ref_of(x, "float64").blocks(max_elements=333))
    ref = reference(x)
    assert math.isclose(st.std, ref["std"], rel_tol=1e-7)
    assert math.isclose(st.excess_kurtosis, ref["excess_kurtosis"], rel_tol=1e-5, abs_tol=1e-5)


def test_nan_and_inf_are_counted_and_excluded():
    x = sample((20, 10), seed=3).astype(np.float32)
    x[0, 0] = np.nan
    x[5, 5] = np.nan
    x[7, 1] = np.inf
    x[9, 2] = -np.inf
    st = compute_stats(ref_of(x, "float32").blocks(max_elements=30))
    assert (st.nan, st.inf, st.count, st.finite) == (2, 2, 200, 196)
    assert_matches(st, reference(x))


def test_all_nan_tensor():
    x = np.full((4, 4), np.nan, np.float32)
    st = compute_stats(ref_of(x, "float32").blocks())
    assert st.nan == 16 and st.finite == 0 and math.isnan(st.mean) and math.isnan(st.std)
    assert st.to_json()["mean"] is None  # JSON has no NaN


def test_constant_and_zero_tensors():
    z = np.zeros((8, 8), np.float32)
    st = compute_stats(ref_of(z, "float32").blocks())
    assert st.zero_fraction == 1.0 and st.std == 0.0 and math.isnan(st.excess_kurtosis)
    c = np.full((8, 8), 0.01, np.float32)
    st = compute_stats(ref_of(c, "float32").blocks(max_elements=16))
    assert st.min == st.max == np.float32(0.01) and st.std == 0.0
    assert st.constant_units == 8 and st.duplicate_units == 7


def test_per_unit_statistics_chunked_equal_whole():
    x = sample((40, 12), seed=4)
    x[5] = 0.3  # a constant unit
    x[30] = x[2]  # a duplicate of an earlier unit
    t = ref_of(x, "float64")
    whole = compute_stats(t.blocks())
    chunked = compute_stats(t.blocks(max_elements=25))
    for st in (whole, chunked):
        assert st.units == 40 and st.constant_units == 1 and st.duplicate_units == 1
        np.testing.assert_allclose(st.unit_rms, np.sqrt((x * x).mean(axis=1)), rtol=1e-12)
    assert math.isclose(whole.unit_std_spread, chunked.unit_std_spread, rel_tol=1e-12)


def test_units_follow_unit_axis():
    """Keras-style (in, out) storage: units are columns."""
    x = sample((6, 9), seed=5)
    t = TensorRef(x.shape, "float64", lambda: x, unit_axis=-1)
    st = compute_stats(t.blocks(max_elements=12))
    assert st.units == 9
    np.testing.assert_allclose(st.unit_rms, np.sqrt((x * x).mean(axis=0)), rtol=1e-12)


def test_blocks_cover_tensor_exactly_once():
    x = np.arange(5 * 7 * 3, dtype=np.float32).reshape(5, 7, 3)
    t = ref_of(x, "float32")
    for block in (1, 20, 21, 22, 10_000):
        parts = list(t.blocks(max_elements=block))
        assert sum(p.size for p in parts) == x.size
        np.testing.assert_array_equal(np.concatenate(parts).ravel(), x.reshape(5, -1).ravel())


def test_scalar_and_vector_tensors():
    s = np.array(2.5, np.float32)
    st = compute_stats(ref_of(s, "float32").blocks())
    assert st.count == 1 and st.mean == 2.5 and st.std == 0.0
    v = sample((33,), seed=6)
    st = compute_stats(ref_of(v, "float64").blocks(max_elements=4))
    assert_matches(st, reference(v))


@pytest.mark.parametrize("dist,kurt", [("uniform", -1.2), ("normal", 0.0)])
def test_excess_kurtosis_of_known_distributions(dist, kurt):
    x = sample((400, 500), seed=7, dist=dist)
    st = compute_stats(ref_of(x, "float64").blocks(max_elements=10_000))
    se = math.sqrt(24 / x.size)  # standard error of the sample excess kurtosis (normal); smaller for uniform
    assert abs(st.excess_kurtosis - kurt) < 5 * se


def test_safetensors_memmap_dtypes_match_numpy(tmp_path):
    """The numpy-only safetensors reader decodes every float dtype as the file stores it."""
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file

    from initcheck.frameworks.safetensors import open_safetensors

    arrays = {f"m.{dt}": sample((16, 9), seed=i).astype(dt) for i, dt in enumerate(["float16", "float32", "float64"])}
    path = tmp_path / "d.safetensors"
    save_file(arrays, str(path))
    tensors, _ = open_safetensors(str(path))
    for name, arr in arrays.items():
        st = compute_stats(tensors[name].blocks(max_elements=20))
        assert tensors[name].dtype == arr.dtype.name
        assert_matches(st, reference(arr))


def test_safetensors_bf16_file_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    from initcheck.frameworks.safetensors import open_safetensors

    torch.manual_seed(0)
    t = (torch.randn(32, 16) * 0.1).to(torch.bfloat16)
    path = tmp_path / "b.safetensors"
    save_file({"w": t}, str(path))
    tensors, _ = open_safetensors(str(path))
    assert tensors["w"].dtype == "bfloat16"
    st = compute_stats(tensors["w"].blocks(max_elements=50))
    assert_matches(st, reference(t.float().numpy()))
