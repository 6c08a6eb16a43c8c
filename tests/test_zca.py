"""ZCA whitening: patches as the kernel sees them, output covariance before/after, fills, frameworks."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import initcheck.init as ii  # noqa: E402
from initcheck.fix.zca import (extract_patches, output_covariance, whitening,  # noqa: E402
                               whiteness)


def smooth_images(n: int, c: int = 3, h: int = 16, w: int = 16, sigma: float = 2.0, noise: float = 0.1,
                  seed: int = 0) -> np.ndarray:
    """Gaussian-blurred noise shared across channels (+ a little per channel and per pixel): strongly
    correlated neighbouring pixels and channels, like natural images."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, h, w)) + 0.3 * rng.standard_normal((n, c, h, w))
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    x = np.real(np.fft.ifft2(np.fft.fft2(x) * np.exp(-2 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))))
    x = 3.0 * x / x.std() + 0.5  # arbitrary units and offset
    return x + noise * rng.standard_normal(x.shape)


def conv_out_cov(weight: torch.Tensor, bias, x: np.ndarray, **kw) -> np.ndarray:
    y = F.conv2d(torch.tensor(x), weight.double(), None if bias is None else bias.double(), **kw)
    y = y.permute(1, 0, 2, 3).reshape(weight.shape[0], -1).numpy()
    return np.cov(y, bias=True), y.mean(axis=1)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2), dict(padding=1), dict(dilation=2, stride=2, padding=2)])
def test_patches_match_unfold(kw):
    x = smooth_images(4, h=12, w=11)
    ours = extract_patches(x, (3, 3), kw.get("stride", 1), kw.get("dilation", 1), kw.get("padding", 0))
    ref = F.unfold(torch.tensor(x), (3, 3), **kw).permute(0, 2, 1).reshape(-1, 27).numpy()
    assert np.array_equal(ours, ref)
    # channels-last (Keras kernel order (kh, kw, C)) is the same set of patches, columns permuted
    cl = extract_patches(np.moveaxis(x, 1, -1), (3, 3), kw.get("stride", 1), kw.get("dilation", 1),
                         kw.get("padding", 0), channels_last=True)
    perm = np.arange(27).reshape(3, 3, 3).transpose(1, 2, 0).ravel()  # (C,kh,kw) index at (kh,kw,C)
    assert np.array_equal(cl, ref[:, perm])


def test_conv_first_layer_output_covariance_becomes_identity():
    x = smooth_images(256)
    conv = torch.nn.Conv2d(3, 27, 3, padding=1).double()
    cov0, _ = conv_out_cov(conv.weight.detach(), conv.bias.detach(), x, padding=1)
    before = whiteness(cov0)
    ii.zca_(conv.weight, x, bias=conv.bias, padding=1, eps=1e-4)
    cov1, mean1 = conv_out_cov(conv.weight.detach(), conv.bias.detach(), x, padding=1)
    after = whiteness(cov1)
    print(f"\nZCA conv 3→27, 3×3, eps=1e-4·mean λ: before {before}\n  after {after}")
    assert before["off_diagonal"] > 0.5 and before["spread"] > 1e3  # strongly correlated inputs
    assert after["off_diagonal"] < 0.02 and after["spread"] < 1.2 and after["max_dev"] < 0.15
    assert np.abs(mean1).max() < 1e-6  # bias = −W·μ centres the outputs


def test_default_eps_whitens_every_direction_above_eps():
    """With the default ε = 1e-2·mean eigenvalue, directions well above ε come out at unit variance, the
    noise tail below ε is attenuated rather than amplified (documented trade-off)."""
    x = smooth_images(256)
    X = extract_patches(x, (3, 3))
    wh = whitening(X, 27)
    cov = output_covariance(wh.weight, wh.bias, X)
    m = whiteness(cov)
    lam = np.linalg.eigvalsh(np.cov(X.T, bias=True))[::-1]
    out_lam = lam / (lam + wh.eps)
    assert m["off_diagonal"] < 1e-6
    assert np.all(np.linalg.eigvalsh(cov) <= 1 + 1e-9)
    assert np.all(out_lam[lam > 10 * wh.eps] > 0.9)
    before = whiteness(np.cov(X.T, bias=True))
    print(f"\nZCA default eps: before {before}\n  after {m}")
    assert m["spread"] < before["spread"] / 100


def test_dense_fewer_outputs_pca_rows_and_more_outputs_fill():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((2000, 4))
    X = z @ rng.standard_normal((4, 12)) + 0.05 * rng.standard_normal((2000, 12))  # rank ~4 in 12-D
    lin = torch.nn.Linear(12, 4).double()
    ii.zca_(lin.weight, X, bias=lin.bias)
    y = lin(torch.tensor(X)).detach().numpy()
    m = whiteness(np.cov(y.T, bias=True))
    assert m["off_diagonal"] < 1e-6 and m["max_dev"] < 0.05  # top-4 components, whitened
    wide = torch.nn.Linear(12, 30).double()
    ii.zca_(wide.weight, X, bias=wide.bias, seed=0)
    w = wide.weight.detach().numpy()
    assert np.allclose(w[12:24], -w[:12])  # sign-flipped copies first
    assert np.all(np.abs(w[24:]).sum(axis=1) > 0)  # then rows from the scheme
    wh = whitening(X, 30, fill="auto", fill_rows=lambda k, d: np.ones((k, d)))
    assert "18 rows from the auto scheme" in wh.note and np.all(wh.weight[12:] == 1)


def test_zca_from_cli_and_in_model(tmp_path):
    from click.testing import CliRunner

    from initcheck.cli import main
    from initcheck.fix.zca import load_data

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, stride=2), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(16 * 7 * 7, 10))
    src, out, data = str(tmp_path / "m.pt"), str(tmp_path / "o.pt"), str(tmp_path / "x.npz")
    torch.save(net.state_dict(), src)
    x = smooth_images(64)
    np.savez(data, x=x)
    assert np.array_equal(load_data(data), x)
    res = CliRunner().invoke(main, ["fix", src, "-o", out, "--zca", data], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "PCA whitening: top 16 of 27" in res.output
    sd = torch.load(out, weights_only=True)
    cov, mean = conv_out_cov(sd["0.weight"], sd["0.bias"], x, stride=2)
    # a state_dict does not know the stride: patches are taken at stride 1 (said in the note); same statistics
    assert "stride/padding/dilation unknown" in res.output
    assert whiteness(cov)["off_diagonal"] < 0.05 and np.abs(mean).max() < 0.02
    assert torch.equal(sd["2.weight"] if "2.weight" in sd else sd["3.weight"], net.state_dict()["3.weight"])
    res = CliRunner().invoke(main, ["fix", src, "-o", out, "--force", "--zca", data, "--zca-layer", "3"],
                             catch_exceptions=False)
    assert res.exit_code == 2 and "features" in res.output  # 3×16×16 images do not feed the Linear


def test_keras_zca_initializer_survives_save_load(tmp_path):
    keras = pytest.importorskip("keras")
    import initcheck.keras as ik

    x = np.moveaxis(smooth_images(64, h=12, w=12), 1, -1).astype("float32")
    inp = keras.Input((12, 12, 3))
    conv = keras.layers.Conv2D(27, 3, padding="same", name="c", kernel_initializer=ik.ZCA(x, padding="same", eps=1e-4),
                               bias_initializer=ik.ZCABias(x, kernel_shape=(3, 3, 3, 27), padding="same", eps=1e-4))
    y = conv(inp)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(y))
    feats = keras.Model(inp, y)(x).numpy().reshape(-1, 27)
    m = whiteness(np.cov(feats.T, bias=True))
    assert m["off_diagonal"] < 0.02 and m["spread"] < 1.6 and np.abs(feats.mean(0)).max() < 1e-3
    path = str(tmp_path / "zca.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    init = loaded.get_layer("c").kernel_initializer
    assert isinstance(init, ik.ZCA) and init.padding == "same" and np.array_equal(init.data, x)
    assert np.array_equal(loaded.get_layer("c").kernel.numpy(), model.get_layer("c").kernel.numpy())
    # the restored initializer computes the same kernel again
    assert np.allclose(np.asarray(init((3, 3, 3, 27))), model.get_layer("c").kernel.numpy(), atol=1e-5)


def test_zca_rejects_mismatched_data(tmp_path):
    from click.testing import CliRunner

    from initcheck.cli import main

    conv = torch.nn.Conv2d(3, 8, 3)
    x_nhwc = np.moveaxis(smooth_images(8), 1, -1)  # channels last: wrong layout for PyTorch
    with pytest.raises(ValueError, match="does not match"):
        ii.zca_(conv.weight, x_nhwc)
    src, data = str(tmp_path / "m.pt"), str(tmp_path / "x.npy")
    torch.save(torch.nn.Sequential(conv).state_dict(), src)
    np.save(data, x_nhwc)
    res = CliRunner().invoke(main, ["fix", src, "-o", str(tmp_path / "o.pt"), "--zca", data],
                             catch_exceptions=False)
    assert res.exit_code == 2 and "input channels" in res.output
    assert not (tmp_path / "o.pt").exists()
