"""initcheck.init and initcheck.fix.sampling against torch.nn.init and keras.initializers statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import initcheck.init as ii  # noqa: E402
from initcheck import schemes as S  # noqa: E402
from initcheck.fix import sampling  # noqa: E402

SHAPES = [(64, 32), (256, 128), (300, 50), (32, 16, 3, 3), (48, 8, 5)]
SEEDS = [0, 1, 2]


def _kurtosis(a: np.ndarray) -> float:
    a = a.ravel().astype(np.float64)
    a = a - a.mean()
    return float((a**4).mean() / (a**2).mean() ** 2 - 3.0)


def _std_tolerance(n: int, kurt: float) -> float:
    """6 standard errors of the ratio of two sample stds (each √((κ+2)/(4n)), independent)."""
    return 6.0 * math.sqrt(2.0) * math.sqrt((kurt + 2.0) / (4.0 * n))


PAIRS = [
    # (ours, torch reference, excess kurtosis of the distribution)
    (lambda t, s: ii.he_normal_(t, activation="relu", seed=s),
     lambda t: torch.nn.init.kaiming_normal_(t, nonlinearity="relu"), 0.0),
    (lambda t, s: ii.he_uniform_(t, activation="relu", seed=s),
     lambda t: torch.nn.init.kaiming_uniform_(t, nonlinearity="relu"), -1.2),
    (lambda t, s: ii.he_normal_(t, activation="relu", mode="fan_out", seed=s),
     lambda t: torch.nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"), 0.0),
    (lambda t, s: ii.he_uniform_(t, activation="leaky_relu", param=0.2, seed=s),
     lambda t: torch.nn.init.kaiming_uniform_(t, a=0.2, nonlinearity="leaky_relu"), -1.2),
    (lambda t, s: ii.xavier_uniform_(t, activation="tanh", seed=s),
     lambda t: torch.nn.init.xavier_uniform_(t, gain=5.0 / 3.0), -1.2),
    (lambda t, s: ii.xavier_normal_(t, seed=s), lambda t: torch.nn.init.xavier_normal_(t), 0.0),
    (lambda t, s: ii.normal_(t, std=0.02, seed=s), lambda t: torch.nn.init.normal_(t, std=0.02), 0.0),
    (lambda t, s: ii.lecun_uniform_(t, seed=s),  # torch's default Linear init is U(±1/√fan_in)·√3 of LeCun
     lambda t: torch.nn.init.kaiming_uniform_(t, nonlinearity="linear"), -1.2),
]


@pytest.mark.parametrize("pair", range(len(PAIRS)))
def test_matches_torch_nn_init_statistics(pair):
    ours, ref, kurt = PAIRS[pair]
    for shape in SHAPES:
        for seed in SEEDS:
            torch.manual_seed(seed)
            a = ours(torch.empty(shape), seed).numpy()
            b = ref(torch.empty(shape)).numpy()
            n = a.size
            assert abs(a.std() / b.std() - 1.0) < _std_tolerance(n, kurt), (shape, seed, a.std(), b.std())
            assert abs(a.mean()) < 6 * a.std() / math.sqrt(n)
            assert abs(_kurtosis(a) - kurt) < 6 * math.sqrt(24.0 / n) + 0.05
            if kurt == -1.2:  # uniform: same bound (max |w| sits just under it in both)
                bound_a, bound_b = np.abs(a).max(), np.abs(b).max()
                assert bound_a <= math.sqrt(3) * a.std() * (1 + _std_tolerance(n, kurt)) + 1e-12
                assert abs(bound_a / bound_b - 1) < 0.05


def test_std_formulas_exact_on_expectation():
    """Large draws hit the table's std to sampling precision (independent of torch)."""
    rng = np.random.default_rng(0)
    for scheme in (S.HE_NORMAL, S.HE_UNIFORM, S.XAVIER_NORMAL, S.XAVIER_UNIFORM, S.LECUN_NORMAL,
                   S.TORCH_DEFAULT_UNIFORM, S.fixed_normal(0.05)):
        for fan_in, fan_out in ((512, 256), (27, 64)):
            want = scheme.std(fan_in, fan_out, math.sqrt(2.0))
            a = sampling.sample(scheme, (400, 1000), fan_in, fan_out, math.sqrt(2.0), rng)
            assert abs(a.std() / want - 1) < 6 / math.sqrt(2 * a.size) * 1.5, scheme.name


def test_truncated_normal_matches_keras():
    keras = pytest.importorskip("keras")
    for shape in ((256, 512), (3, 3, 64, 128)):
        for seed in SEEDS:
            k = np.asarray(keras.initializers.HeNormal(seed=seed)(shape))
            fan_in = math.prod(shape[:-1])
            ours = sampling.truncated_normal(math.sqrt(2.0 / fan_in), shape, np.random.default_rng(seed))
            n = ours.size
            assert abs(ours.std() / k.std() - 1) < _std_tolerance(n, -0.6345)
            assert abs(ours.std() / math.sqrt(2.0 / fan_in) - 1) < _std_tolerance(n, -0.6345)
            # cut at ±2σ of the underlying normal: max|w|/std ≤ 2/0.8796 = 2.2737 (Keras: the same bound)
            bound = 2.0 / S.TRUNCATED_NORMAL_STD_FACTOR
            assert np.abs(ours).max() / ours.std() <= bound * 1.01
            assert abs(np.abs(ours).max() / np.abs(k).max() - 1) < 0.03
            assert abs(_kurtosis(ours) - _kurtosis(k)) < 6 * math.sqrt(24.0 / n)


def test_orthogonal_like_torch():
    for shape in ((64, 32), (32, 64), (16, 8, 3, 3)):
        for seed in SEEDS:
            t = ii.orthogonal_(torch.empty(shape), gain=1.7, seed=seed)
            m = t.reshape(shape[0], -1).double().numpy()
            sv = np.linalg.svd(m, compute_uv=False)
            assert np.allclose(sv, 1.7, atol=1e-5)
            ref = torch.nn.init.orthogonal_(torch.empty(shape), gain=1.7).reshape(shape[0], -1).numpy()
            assert np.allclose(np.linalg.svd(ref, compute_uv=False), sv, atol=1e-4)
            assert abs(m.std() / ref.std() - 1) < 0.02


def test_orthogonal_blocks_and_keras_layout():
    rng = np.random.default_rng(0)
    w = sampling.orthogonal((4 * 16, 16), 1.0, rng, unit_axis=0, blocks=4)  # LSTM weight_hh
    for g in range(4):
        block = w[g * 16:(g + 1) * 16]
        assert np.allclose(block @ block.T, np.eye(16), atol=1e-10)
    k = sampling.orthogonal((16, 64), 1.0, rng, unit_axis=-1, blocks=4)  # Keras recurrent kernel (H, 4H)
    for g in range(4):
        block = k[:, g * 16:(g + 1) * 16]
        assert np.allclose(block.T @ block, np.eye(16), atol=1e-10)


def test_reproducible_from_torch_seed_and_dtype_kept():
    torch.manual_seed(5)
    a = ii.he_normal_(torch.empty(32, 16)).clone()
    torch.manual_seed(5)
    b = ii.he_normal_(torch.empty(32, 16))
    assert torch.equal(a, b)
    h = ii.xavier_uniform_(torch.empty(64, 64, dtype=torch.bfloat16), seed=0)
    assert h.dtype == torch.bfloat16 and float(h.float().std()) > 0
    p = torch.nn.Parameter(torch.empty(8, 4))
    ii.lecun_normal_(p, seed=1)  # works on parameters that require grad
    assert p.requires_grad and torch.isfinite(p).all()
