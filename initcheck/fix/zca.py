"""ZCA whitening of a first layer from a data sample (numpy core, plus the glue for loaded models).

For a dense layer the statistics are those of the inputs; for a convolution, of the input patches its
kernel sees (kernel size, stride, dilation, zero padding; groups must be 1). With Σ = U Λ Uᵀ the patch
covariance and μ the patch mean::

    W = U (Λ + εI)^(-1/2) Uᵀ,     b = −W μ

so the layer's outputs on that data are centred with covariance U Λ(Λ+εI)^(-1) Uᵀ ≈ I.

**ε.** ε = ``eps`` · mean eigenvalue (default ``eps = 1e-2``), i.e. a fraction of the average per-input
variance. Making ε relative keeps the result independent of the data's units (pixels in 0..255 or
0..1). Directions whose variance is below ε — under 1% of the average, for natural or smooth images the
noise and quantization tail of the spectrum — are attenuated (output variance λ/(λ+ε) < 1/2) instead of
being amplified by up to 1/√λ, which would make the layer a noise amplifier; every direction with
λ ≫ ε comes out with unit variance. This is the regularized ZCA of Krizhevsky (2009) and Coates & Ng
(2011), who use ε of 0.01–0.1 on normalized data.

**Output count.** With fewer outputs than the input dimension d, the rows are the top principal
components, PCA-whitened: W = (Λ_k + εI)^(-1/2) U_kᵀ. With more, the first d rows are the ZCA matrix and
the rest are filled by ``fill``: ``"negate"`` (default) appends sign-flipped copies (−W rows; after a
ReLU each ± pair passes the whitened signal on in full, as in CReLU), and once 2d rows are used, rows
drawn from the layer's auto scheme; ``"auto"`` draws every extra row from the auto scheme. The note of the
change says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import InitcheckError

DEFAULT_EPS = 1e-2
MAX_PATCHES = 200_000


@dataclass
class Whitening:
    """The result: weight rows (outputs × inputs), bias, and what was done."""

    weight: np.ndarray  # (n_out, d), inputs ordered as the caller's patch layout
    bias: np.ndarray  # (n_out,)
    eps: float  # absolute ε used
    note: str


def _tuple(v, n: int) -> tuple[int, ...]:
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(x) for x in v)
    return v if len(v) == n else (v[0],) * n


def extract_patches(x: np.ndarray, kernel_size: Sequence[int], stride=1, dilation=1, padding=0,
                    channels_last: bool = False, max_patches: int = MAX_PATCHES,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """Input patches a convolution sees, one row per (image, output position).

    ``x``: (N, C, *spatial) (PyTorch) or (N, *spatial, C) with ``channels_last`` (Keras). Row layout
    matches the kernel: (C, k1, k2, ...) for PyTorch weights (out, C, k...), (k1, k2, ..., C) for Keras
    kernels (k..., C, out). ``padding``: ints per spatial dim, ``"valid"`` or ``"same"``. At most
    ``max_patches`` rows (a uniform random subset beyond that).
    """
    x = np.asarray(x)
    nsp = len(kernel_size)
    if x.ndim != nsp + 2:
        raise InitcheckError(f"data of shape {tuple(x.shape)} does not fit a {nsp}-D convolution "
                             f"(expected (N, C, {', '.join(['S'] * nsp)}) {'channels-last' if channels_last else ''})")
    if channels_last:
        x = np.moveaxis(x, -1, 1)
    k = _tuple(kernel_size, nsp)
    s, d = _tuple(stride, nsp), _tuple(dilation, nsp)
    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * nsp
        elif padding == "same":
            pads = [((d[i] * (k[i] - 1)) // 2, d[i] * (k[i] - 1) - (d[i] * (k[i] - 1)) // 2) for i in range(nsp)]
        else:
            raise InitcheckError(f"unknown padding {padding!r}")
    else:
        p = _tuple(padding, nsp)
        pads = [(pi, pi) for pi in p]
    if any(a or b for a, b in pads):
        x = np.pad(x, [(0, 0), (0, 0), *pads])
    span = [d[i] * (k[i] - 1) + 1 for i in range(nsp)]
    if any(x.shape[2 + i] < span[i] for i in range(nsp)):
        raise InitcheckError(f"data spatial size {tuple(x.shape[2:])} is smaller than the kernel's span {span}")
    axes = tuple(range(2, 2 + nsp))
    win = np.lib.stride_tricks.sliding_window_view(x, span, axis=axes)  # (N, C, *out_full, *span)
    index = (slice(None), slice(None)) + tuple(slice(None, None, s[i]) for i in range(nsp)) \
        + tuple(slice(None, None, d[i]) for i in range(nsp))
    win = win[index]  # (N, C, *out, *k)
    n, c = win.shape[:2]
    out_sp = win.shape[2:2 + nsp]
    positions = math.prod(out_sp)
    total = n * positions
    rng = rng or np.random.default_rng(0)
    order_first = [0] + list(range(2, 2 + nsp))  # N, *out
    if channels_last:
        order = order_first + list(range(2 + nsp, 2 + 2 * nsp)) + [1]  # N, *out, *k, C
    else:
        order = order_first + [1] + list(range(2 + nsp, 2 + 2 * nsp))  # N, *out, C, *k
    win = win.transpose(order)
    dim = c * math.prod(k)
    if total <= max_patches:
        return np.ascontiguousarray(win, dtype=np.float64).reshape(total, dim)
    pick = np.sort(rng.choice(total, size=max_patches, replace=False))
    flat_idx = np.unravel_index(pick, (n, *out_sp))
    return np.asarray(win[flat_idx], dtype=np.float64).reshape(max_patches, dim)


def whitening(X: np.ndarray, n_out: int, eps: float = DEFAULT_EPS, fill: str = "negate",
              fill_rows: Callable[[int, int], np.ndarray] | None = None) -> Whitening:
    """ZCA (or PCA-whitening rows) for samples ``X`` (n, d); see the module docstring for ε and fills.

    ``fill_rows(k, d)`` draws k extra rows from the layer's auto scheme (needed for ``fill="auto"`` and
    for more than 2d outputs).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise InitcheckError("need at least 2 samples to estimate a covariance")
    if fill not in ("negate", "auto"):
        raise InitcheckError(f"unknown fill {fill!r} (negate or auto)")
    n, d = X.shape
    mu = X.mean(axis=0)
    Xc = X - mu
    cov = (Xc.T @ Xc) / n
    lam, U = np.linalg.eigh(cov)
    lam, U = np.clip(lam[::-1], 0.0, None), U[:, ::-1]
    mean_lam = float(lam.mean())
    if not mean_lam > 0:
        raise InitcheckError("the data sample has zero variance: cannot whiten")
    eps_abs = eps * mean_lam
    scale = 1.0 / np.sqrt(lam + eps_abs)
    if n < d:
        note_n = f"; only {n} samples for {d} inputs: the covariance is rank-deficient"
    else:
        note_n = ""
    if n_out <= d:
        W = scale[:n_out, None] * U[:, :n_out].T
        note = (f"ZCA (eps={eps:g}·mean eigenvalue)" if n_out == d else
                f"PCA whitening: top {n_out} of {d} components (eps={eps:g}·mean eigenvalue)")
    else:
        zca = (U * scale) @ U.T
        extra = n_out - d
        parts = [zca]
        if fill == "negate":
            k = min(extra, d)
            parts.append(-zca[:k])
            rest = extra - k
            note = f"ZCA (eps={eps:g}·mean eigenvalue) + {k} sign-flipped rows"
        else:
            rest = extra
            note = f"ZCA (eps={eps:g}·mean eigenvalue)"
        if rest:
            if fill_rows is None:
                raise InitcheckError(f"{n_out} outputs for {d} inputs: need a scheme for {rest} extra rows")
            parts.append(np.asarray(fill_rows(rest, d), dtype=np.float64).reshape(rest, d))
            note += f" + {rest} rows from the auto scheme"
        W = np.concatenate(parts, axis=0)
    b = -W @ mu
    return Whitening(W, b, eps_abs, note + note_n)


def output_covariance(W: np.ndarray, b: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Covariance of W·x + b over the rows of X (for checks and tests)."""
    Y = np.asarray(X, dtype=np.float64) @ W.T + b
    Yc = Y - Y.mean(axis=0)
    return (Yc.T @ Yc) / Y.shape[0]


def whiteness(cov: np.ndarray) -> dict:
    """How far a covariance is from identity: off-diagonal mass ‖C − diag C‖_F / ‖C‖_F, eigenvalue spread
    λmax/λmin, and the largest |λ − 1|."""
    cov = np.asarray(cov, dtype=np.float64)
    off = cov - np.diag(np.diag(cov))
    lam = np.linalg.eigvalsh(cov)
    return {
        "off_diagonal": float(np.linalg.norm(off) / np.linalg.norm(cov)),
        "spread": float(lam.max() / max(lam.min(), 1e-300)),
        "max_dev": float(np.abs(lam - 1.0).max()),
    }


# ------------------------------------------------------------------------------------ loaded models
def first_weight_layer(model):
    """The first layer (in forward order) with a weight matrix."""
    for layer in model.layers:
        if layer.is_matrix and layer.kind != "embedding":
            return layer
    raise InitcheckError("the model has no weight matrix to whiten", model.path)


def zca_model_layer(model, layer_name: str | None, data: np.ndarray, *, eps: float = DEFAULT_EPS,
                    fill: str = "negate", seed: int | None = None, activation: str | None = None,
                    dry_run: bool = False) -> list:
    """Whiten one layer of a loaded :class:`~initcheck.model.Model` (default: the first weight layer) on
    ``data`` shaped like the model's input; assigns in place and returns the changes."""
    from .reinit import Change, finite_std, new_values
    from .sampling import layer_rng

    if layer_name is None:
        layer = first_weight_layer(model)
    else:
        matches = [la for la in model.layers if la.name == layer_name or la.weight.name == layer_name]
        if not matches:
            raise InitcheckError(f"--zca-layer {layer_name!r}: no such layer", model.path)
        layer = matches[0]
    geo = _geometry(model, layer)
    shape = layer.shape
    keras = model.framework == "keras"
    n_out = shape[-1] if keras else shape[0]
    notes = list(geo.get("notes", []))
    if geo["kind"] == "dense":
        X = np.asarray(data, dtype=np.float64).reshape(len(data), -1)
        d_in = shape[0] if keras else math.prod(shape[1:])
        if X.shape[1] != d_in:
            raise InitcheckError(f"data has {X.shape[1]} features per sample; layer {layer.name} takes {d_in}")
    else:
        if int(geo.get("groups", 1)) != 1:
            raise InitcheckError(f"layer {layer.name}: ZCA needs groups=1 (has {geo['groups']})", model.path)
        k = shape[:-2] if keras else shape[2:]
        X = extract_patches(data, k, geo["stride"], geo["dilation"], geo["padding"], channels_last=keras)
        want = math.prod(shape[:-1]) if keras else math.prod(shape[1:])
        if X.shape[1] != want:
            channels = shape[-2] if keras else shape[1]
            layout = "(N, H, W, C)" if keras else "(N, C, H, W)"
            raise InitcheckError(f"data of shape {tuple(np.shape(data))} does not match layer {layer.name}: it "
                                 f"takes {channels} input channels, data laid out as {layout}")
    rng = layer_rng(seed, layer.weight.name)

    def fill_rows(count: int, dim: int) -> np.ndarray:
        vals, _ = new_values(layer, layer.weight, None, activation, rng)
        mat = vals.reshape(-1, n_out).T if keras else vals.reshape(n_out, -1)
        return mat[:count]

    wh = whitening(X, n_out, eps, fill, fill_rows)
    if keras:
        weight = wh.weight.T.reshape(shape)  # rows ordered (k..., C) as the kernel's leading axes
    else:
        weight = wh.weight.reshape(shape)
    note = "; ".join([wh.note, *notes])
    changes = []
    p = layer.weight
    before = finite_std(p.tensor.numpy())
    if not dry_run and p.assign is not None:
        p.assign(weight)
        p.stats = None
    changes.append(Change(layer.name, p.name, before, finite_std(weight), "zca", note, weight))
    if layer.bias is not None:
        bp = layer.bias
        before_b = finite_std(bp.tensor.numpy())
        if not dry_run and bp.assign is not None:
            bp.assign(wh.bias)
            bp.stats = None
        changes.append(Change(layer.name, bp.name, before_b, finite_std(wh.bias), "zca", "bias = -W·mean",
                              wh.bias))
    else:
        changes[0].note += "; no bias: outputs are not centred (mean W·μ)"
    return changes


def _geometry(model, layer) -> dict:
    """kind (dense|conv), stride, dilation, padding, groups of a layer, from the live module when there is
    one, else from the layer's attributes (defaults 1/1/0 said in the notes)."""
    kind = layer.kind
    if kind in ("linear", "dense") or (len(layer.shape) == 2 and not kind.startswith(("conv", "depthwise"))):
        if kind not in ("linear", "dense", "linear_transposed") and not kind.startswith("parameter"):
            raise InitcheckError(f"layer {layer.name} ({kind}) is neither dense nor a convolution", model.path)
        if kind == "linear_transposed":
            raise InitcheckError(f"layer {layer.name}: (in, out) storage is not supported for ZCA", model.path)
        return {"kind": "dense"}
    if not kind.startswith("conv") or kind.startswith("conv_transpose"):
        raise InitcheckError(f"layer {layer.name} ({kind}): ZCA applies to dense and convolution layers",
                             model.path)
    handle = model.handle
    if handle is not None and model.framework == "torch":
        try:
            mod = handle.get_submodule(layer.name)
            return {"kind": "conv", "stride": tuple(mod.stride), "dilation": tuple(mod.dilation),
                    "padding": mod.padding if isinstance(mod.padding, str) else tuple(mod.padding),
                    "groups": int(mod.groups)}
        except (AttributeError, TypeError):
            pass
    if handle is not None and model.framework == "keras":
        try:
            kl = handle.get_layer(layer.name)
            return {"kind": "conv", "stride": tuple(kl.strides), "dilation": tuple(kl.dilation_rate),
                    "padding": kl.padding, "groups": int(getattr(kl, "groups", 1) or 1)}
        except (AttributeError, ValueError):
            pass
    a = layer.attrs
    notes = []
    stride = a.get("stride") or 1
    unknown = [k for k in ("stride", "padding", "dilation") if not a.get(k) and k not in a]
    if unknown:
        notes.append(f"{'/'.join(unknown)} unknown (tensor-only file): patches taken with stride "
                     f"{stride}, padding {a.get('padding', 0)}, dilation {a.get('dilation', 1)}")
    return {"kind": "conv", "stride": stride, "dilation": a.get("dilation", 1), "padding": a.get("padding", 0),
            "groups": int(a.get("groups") or 1), "notes": notes}


def load_data(path: str) -> np.ndarray:
    """A data sample from ``.npy``, ``.npz`` (key x, data, inputs, images or the only/first array) or
    ``.pt`` (a tensor, or a dict/tuple whose first tensor is taken; loaded with ``weights_only=True``)."""
    import os

    if not os.path.isfile(path):
        raise InitcheckError("no such file", path)
    lower = path.lower()
    try:
        if lower.endswith(".npy"):
            arr = np.load(path, allow_pickle=False)
        elif lower.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if not keys:
                    raise InitcheckError("empty .npz archive", path)
                key = next((k for k in ("x", "data", "inputs", "images", "X") if k in keys), keys[0])
                arr = z[key]
        elif lower.endswith((".pt", ".pth")):
            import torch

            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                obj = next((v for v in obj.values() if isinstance(v, torch.Tensor)), None)
            elif isinstance(obj, (list, tuple)):
                obj = next((v for v in obj if isinstance(v, torch.Tensor)), None)
            if not isinstance(obj, torch.Tensor):
                raise InitcheckError("holds no tensor", path)
            arr = obj.detach().float().numpy()
        else:
            raise InitcheckError("data must be a .npy, .npz or .pt file", path)
    except InitcheckError:
        raise
    except Exception as e:
        raise InitcheckError(f"cannot read data: {type(e).__name__}: {e}", path) from e
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiu" or arr.ndim < 2 or len(arr) < 2:
        raise InitcheckError(f"data must be a numeric array of at least 2 samples (got {arr.dtype} "
                             f"{tuple(arr.shape)})", path)
    if not np.isfinite(arr.astype(np.float64)).all():
        raise InitcheckError("data holds NaN or Inf", path)
    return arr.astype(np.float64)
