"""The fast statistics pass (float32 power sums per block) against float64 two-pass numpy, on hostile
distributions, every layout (units as rows, as the last axis, flat) and any number of chunks and jobs.

Tolerances (stated in docs/statistics.md): min, max, counts, zero fraction exact; std and rms within
2e-6 relative, the mean within 1e-6 std, skewness and excess kurtosis within 2e-5·max(1, |value|);
per-unit RMS within 2e-6 relative. float64 tensors are summed in float64 (1e-12).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import initcheck.statpass as statpass
from initcheck.model import BIT_DECODERS, TensorRef
from initcheck.statpass import tensor_stats

TOL = {"float32": (2e-6, 1e-6, 2e-5, 2e-6), "float64": (1e-12, 1e-12, 1e-10, 1e-12)}


def reference(x: np.ndarray) -> dict:
    """float64 two-pass numpy of the finite values, rescaled by a power of two so nothing overflows."""
    x = np.asarray(x, dtype=np.float64).ravel()
    fin = x[np.isfinite(x)]
    k = math.frexp(float(np.abs(fin).max()) or 1.0)[1]
    y = np.ldexp(fin, -k)  # exact
    m = y.mean()
    d = y - m
    var = (d * d).mean()
    return {
        "count": x.size, "finite": fin.size, "nan": int(np.isnan(x).sum()), "inf": int(np.isinf(x).sum()),
        "mean": math.ldexp(m, k), "std": math.ldexp(math.sqrt(var), k), "rms": math.ldexp(math.sqrt((y * y).mean()), k),
        "min": fin.min(), "max": fin.max(), "zero_fraction": float((fin == 0).mean()),
        "skewness": (d ** 3).mean() / var ** 1.5 if var > 0 else math.nan,
        "excess_kurtosis": (d ** 4).mean() / var ** 2 - 3.0 if var > 0 else math.nan,
        "min_count": int((fin == fin.min()).sum()), "max_count": int((fin == fin.max()).sum()),
    }


def assert_agrees(st, ref: dict, work: str = "float32") -> None:
    rel, mean_tol, moment_tol, _ = TOL[work]
    for k in ("count", "finite", "nan", "inf", "min", "max", "zero_fraction", "min_count", "max_count"):
        assert getattr(st, k) == ref[k], (k, getattr(st, k), ref[k])
    assert math.isfinite(st.std), "std overflowed"
    assert abs(st.mean - ref["mean"]) <= mean_tol * ref["std"] + 4e-16 * abs(ref["mean"]), ("mean", st.mean, ref["mean"])
    for k in ("std", "rms"):
        assert abs(getattr(st, k) - ref[k]) <= rel * ref[k], (k, getattr(st, k), ref[k])
    for k in ("skewness", "excess_kurtosis"):
        if math.isnan(ref[k]):
            assert math.isnan(getattr(st, k)), k
        else:
            assert abs(getattr(st, k) - ref[k]) <= moment_tol * max(1.0, abs(ref[k])), (k, getattr(st, k), ref[k])


def hostile(name: str, shape=(300, 256), seed=0) -> np.ndarray:
    """The distributions the docs promise agreement on (float32 unless the name says float64)."""
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(shape)
    table = {
        "normal": lambda: n * 0.02,
        "large_mean_tiny_variance": lambda: 1000.0 + n * 1e-3,
        "offset_1e4_std_1e-1": lambda: -1e4 + n * 0.1,
        "cauchy": lambda: rng.standard_cauchy(shape),
        "student_t2": lambda: rng.standard_t(2, shape),
        "lognormal_sigma3": lambda: rng.lognormal(0.0, 3.0, shape),
        "one_outlier": lambda: np.where(np.arange(n.size).reshape(shape) == 777, 1e6, n * 1e-3),
        "near_float32_max": lambda: np.clip(n * 1.5e38, -3.4e38, 3.4e38),
        "tiny_normal": lambda: n * 1e-30,
        "subnormal": lambda: n * 1e-40,
        "uniform_pm_c": lambda: rng.choice([-0.05, 0.05], shape),
        "sparse_90pct_zero": lambda: np.where(rng.random(shape) < 0.9, 0.0, n),
        "float64_1e200": lambda: 5e200 + n * 1e200,
        "float64_1e-300": lambda: n * 1e-300,
        "float64_mixed_1e300": lambda: np.where(rng.random(shape) < 0.5, 1e300, -1e300) * (1 + n * 1e-3),
    }
    x = table[name]()
    return x if name.startswith("float64") else x.astype(np.float32)


HOSTILE = ["normal", "large_mean_tiny_variance", "offset_1e4_std_1e-1", "cauchy", "student_t2", "lognormal_sigma3",
           "one_outlier", "near_float32_max", "tiny_normal", "subnormal", "uniform_pm_c", "sparse_90pct_zero",
           "float64_1e200", "float64_1e-300", "float64_mixed_1e300"]


def ref_of(x: np.ndarray, dtype: str | None = None, unit_axis: int = 0) -> TensorRef:
    dtype = dtype or x.dtype.name
    return TensorRef(x.shape, dtype, lambda: x, unit_axis=unit_axis, decode=BIT_DECODERS.get(dtype))


@pytest.fixture
def small_chunks(monkeypatch):
    """Many chunks and blocks on small tensors: the merge paths run as they do on 7B checkpoints."""
    monkeypatch.setattr(statpass, "CHUNK_ELEMENTS", 5000)
    monkeypatch.setattr(statpass, "BLOCK_ELEMENTS", 1000)
    import initcheck.stats as stats
    monkeypatch.setattr(stats, "BLOCK_ELEMENTS", 1000)


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("unit_axis", [0, 1])
def test_hostile_distributions_agree_with_float64(name, unit_axis, small_chunks):
    x = hostile(name)
    ref = reference(x)
    work = "float64" if x.dtype == np.float64 else "float32"
    t = ref_of(x, unit_axis=unit_axis)
    assert len(statpass.chunks(t, statpass.layout(t, True))) > 1  # the chunk merge runs
    st = tensor_stats(t)
    assert_agrees(st, ref, work)
    units = np.moveaxis(x.astype(np.float64), unit_axis, 0)
    k = math.frexp(float(np.abs(units).max()) or 1.0)[1]
    y = np.ldexp(units, -k)
    expected = np.ldexp(np.sqrt((y * y).mean(axis=1)), k)
    np.testing.assert_allclose(st.unit_rms, expected, rtol=TOL[work][3], atol=0)
    assert st.units == units.shape[0]


@pytest.mark.parametrize("name", ["normal", "cauchy", "large_mean_tiny_variance", "subnormal"])
def test_flat_layout_agrees(name, small_chunks):
    x = hostile(name).reshape(-1)
    assert_agrees(tensor_stats(ref_of(x), per_unit=False), reference(x))


def test_results_do_not_depend_on_blocks_chunks_or_jobs(monkeypatch):
    from initcheck.model import Layer, Model, Param

    rng = np.random.default_rng(1)
    arrays = [(rng.standard_normal((400, 300)) * 0.02).astype(np.float32) for _ in range(3)]
    arrays[1] = arrays[1].T.copy()

    def model():
        layers = []
        for i, a in enumerate(arrays):
            t = ref_of(a, unit_axis=1 if i == 1 else 0)
            layers.append(Layer(f"l{i}", "linear", Param(f"l{i}.weight", "weight", t), fan_in=300, fan_out=400))
        return Model("m", "safetensors", "safetensors", layers)

    monkeypatch.setattr(statpass, "CHUNK_ELEMENTS", 7000)
    monkeypatch.setattr(statpass, "PARALLEL_MIN_VALUES", 0)  # threads even for this small model
    one, many = model(), model()
    statpass.compute_all(one, jobs=1, progress=False)
    statpass.compute_all(many, jobs=4, progress=False)
    for a, b in zip(one.layers, many.layers):
        sa, sb = a.weight.stats, b.weight.stats
        assert (sa.mean, sa.std, sa.excess_kurtosis, sa.min, sa.max) == (sb.mean, sb.std, sb.excess_kurtosis, sb.min, sb.max)
        np.testing.assert_array_equal(sa.unit_rms, sb.unit_rms)
        np.testing.assert_array_equal(sa.sample_gram, sb.sample_gram)
        assert_agrees(sa, reference(arrays[int(a.name[1])]))


def test_constant_and_zero_tensors_are_exact(small_chunks):
    for value in (0.0, 0.37, -1e30, 3.0e38):
        x = np.full((60, 50), value, np.float32)
        for axis in (0, 1):
            st = tensor_stats(ref_of(x, unit_axis=axis))
            assert st.std == 0.0 and st.min == st.max == np.float32(value) and st.mean == np.float32(value)
            assert st.constant_units == st.units and st.duplicate_units == st.units - 1
            assert math.isnan(st.excess_kurtosis) and math.isnan(st.skewness)
            assert st.bound_fraction == 1.0 and st.tail_fraction == 0.0
            assert st.zero_fraction == (1.0 if value == 0 else 0.0)


def test_counts_subnormal_bounds_and_tail(small_chunks):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((200, 100)) * 0.02).astype(np.float32)
    x[0, :5] = 1e-40  # subnormal in float32
    x[1, :3] = 0.0
    x = np.clip(x, -0.03, 0.03)  # clamp: mass on the bounds
    x[2, 0] = 1.0  # one far outlier: > 6 rms
    st = tensor_stats(ref_of(x))
    fin = x.astype(np.float64)
    assert st.subnormal == 5
    assert st.zero_fraction == 3 / x.size
    assert st.max == 1.0 and st.max_count == 1 and st.min_count == int((fin == fin.min()).sum()) > 100
    assert st.tail_fraction == int((np.abs(fin) > 6 * st.rms).sum()) / x.size
    assert math.isclose(st.bound_fraction, (st.min_count + 1) / x.size)


@pytest.mark.parametrize("axis", [0, 1])
def test_nan_and_inf_only_spoil_their_units(axis, small_chunks):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((120, 90)) * 0.02).astype(np.float32)
    x[5, 7] = np.nan
    x[9, 8] = -np.inf
    st = tensor_stats(ref_of(x, unit_axis=axis))
    assert (st.nan, st.inf, st.finite) == (1, 1, x.size - 2)
    assert_agrees(st, reference(x))
    bad = {5, 9} if axis == 0 else {7, 8}
    assert set(np.nonzero(np.isnan(st.unit_rms))[0].tolist()) == bad


@pytest.mark.parametrize("axis", [0, 1])
def test_duplicate_and_constant_units(axis, small_chunks):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((150, 120)) * 0.02).astype(np.float32)
    u = np.moveaxis(x, axis, 0)  # a view: writes go to x
    u[40] = u[3]
    u[41] = u[3]
    u[70] = 0.5
    u[100, :] = u[101, :]
    u[100, -1] += 0.01  # equal on every sampled column but one value: not a duplicate
    st = tensor_stats(ref_of(x, unit_axis=axis))
    assert st.duplicate_units == 2 and st.constant_units == 1


def test_long_units_are_summed_in_pieces(small_chunks):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 5000)) * 0.02 + 0.1).astype(np.float32)
    x[2] = x[0]
    st = tensor_stats(ref_of(x))
    assert_agrees(st, reference(x))
    np.testing.assert_allclose(st.unit_rms, np.sqrt((x.astype(np.float64) ** 2).mean(axis=1)), rtol=2e-6)
    assert st.duplicate_units == 1


def bf16_bits(x: np.ndarray) -> np.ndarray:
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


@pytest.mark.parametrize("axis", [0, 1])
def test_bfloat16_float16_float8_are_decoded_once_per_block(axis, small_chunks):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((64, 48)) * 0.05
    bits = bf16_bits(x)
    decoded = (bits.astype(np.uint32) << 16).view(np.float32)
    assert_agrees(tensor_stats(ref_of(bits, "bfloat16", axis)), reference(decoded))
    h = x.astype(np.float16)
    assert_agrees(tensor_stats(ref_of(h, unit_axis=axis)), reference(h))
    codes = rng.integers(0, 256, (64, 48)).astype(np.uint8)
    for name in ("float8_e4m3fn", "float8_e5m2"):
        with np.errstate(invalid="ignore"):  # e5m2's NaN codes widen to signalling NaNs
            values = np.asarray(BIT_DECODERS[name](codes), dtype=np.float64)
        st = tensor_stats(ref_of(codes, name, axis))
        assert_agrees(st, reference(values))


def test_compute_stats_of_float64_blocks_matches_tensor_stats():
    """The block-iterable API (float64 blocks) and the streaming pass agree."""
    from initcheck.stats import compute_stats

    x = hostile("cauchy").astype(np.float64)
    a = compute_stats(ref_of(x).blocks(max_elements=999))
    b = tensor_stats(ref_of(x))
    for k in ("mean", "std", "excess_kurtosis", "skewness", "min", "max", "tail_fraction", "min_count"):
        assert math.isclose(getattr(a, k), getattr(b, k), rel_tol=1e-10), k
