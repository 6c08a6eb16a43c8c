"""Torch-style initializers for one tensor, drawn from initcheck's table of schemes.

>>> import torch, initcheck.init as ii
>>> lin = torch.nn.Linear(256, 128)
>>> ii.he_normal_(lin.weight, activation="relu")      # std √2/√256
>>> ii.xavier_uniform_(lin.weight, activation="tanh")  # gain 5/3
>>> ii.zca_(conv.weight, images, bias=conv.bias, padding=1)

Like ``torch.nn.init``, these fill the tensor in place (under ``no_grad``) and return it; fans are those
``torch.nn.init`` computes for the stored shape (out, in, k...): fan_in = in·∏k, fan_out = out·∏k.
Gains come from :func:`initcheck.schemes.gain` (``activation`` a name such as ``"relu"``, ``"gelu"``,
``"leaky_relu"`` with ``param`` its slope). Values are drawn with numpy from a generator seeded from
torch's global generator unless ``generator`` (a ``numpy.random.Generator``) or ``seed`` is given, so
``torch.manual_seed`` makes them reproducible.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import schemes as S
from .fix.sampling import orthogonal, sample

__all__ = ["he_normal_", "he_uniform_", "kaiming_normal_", "kaiming_uniform_", "xavier_normal_",
           "xavier_uniform_", "glorot_normal_", "glorot_uniform_", "lecun_normal_", "lecun_uniform_",
           "orthogonal_", "normal_", "truncated_normal_", "scheme_", "zca_"]


def _rng(generator: np.random.Generator | None, seed: int | None) -> np.random.Generator:
    if generator is not None:
        return generator
    if seed is not None:
        return np.random.default_rng(seed)
    import torch

    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"fans need a tensor with at least 2 dimensions (got shape {tuple(shape)})")
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fill(tensor: Any, values: np.ndarray) -> Any:
    import torch

    with torch.no_grad():
        tensor.copy_(torch.as_tensor(values).reshape(tensor.shape).to(dtype=tensor.dtype, device=tensor.device))
    return tensor


def scheme_(tensor: Any, scheme: S.Scheme | str, activation: str | None = None, param: float | None = None,
            mode: str | None = None, distribution: str | None = None, *,
            generator: np.random.Generator | None = None, seed: int | None = None) -> Any:
    """Fill ``tensor`` from any scheme of the table (a :class:`~initcheck.schemes.Scheme` or its name)."""
    sch = S.SCHEMES[scheme] if isinstance(scheme, str) else scheme
    if mode is not None:
        sch = sch.with_mode(mode)
    if distribution is not None:
        sch = sch.with_distribution(distribution)
    shape = tuple(tensor.shape)
    g = S.gain(activation, param)
    rng = _rng(generator, seed)
    if sch.distribution == "orthogonal":
        return _fill(tensor, orthogonal(shape, g if sch.uses_gain else 1.0, rng))
    fan_in, fan_out = _fans(shape)
    return _fill(tensor, sample(sch, shape, fan_in, fan_out, g, rng))


def he_normal_(tensor: Any, activation: str = "relu", mode: str = "fan_in", param: float | None = None,
               **kw: Any) -> Any:
    """N(0, gain²/fan): ``torch.nn.init.kaiming_normal_`` with the table's gain for ``activation``."""
    return scheme_(tensor, S.HE_NORMAL, activation, param, mode, **kw)


def he_uniform_(tensor: Any, activation: str = "relu", mode: str = "fan_in", param: float | None = None,
                **kw: Any) -> Any:
    """U(±√3·gain/√fan): ``torch.nn.init.kaiming_uniform_``."""
    return scheme_(tensor, S.HE_UNIFORM, activation, param, mode, **kw)


def xavier_normal_(tensor: Any, activation: str | None = None, param: float | None = None, **kw: Any) -> Any:
    """N(0, gain²·2/(fan_in+fan_out)); gain 1 unless ``activation`` is given (tanh: 5/3)."""
    return scheme_(tensor, S.XAVIER_NORMAL, activation, param, **kw)


def xavier_uniform_(tensor: Any, activation: str | None = None, param: float | None = None, **kw: Any) -> Any:
    """U(±gain·√(6/(fan_in+fan_out))): ``torch.nn.init.xavier_uniform_``."""
    return scheme_(tensor, S.XAVIER_UNIFORM, activation, param, **kw)


def lecun_normal_(tensor: Any, **kw: Any) -> Any:
    """N(0, 1/fan_in) (self-normalizing SELU networks; Keras ``LecunNormal`` uses a truncated normal:
    pass ``distribution="truncated_normal"``)."""
    return scheme_(tensor, S.LECUN_NORMAL, **kw)


def lecun_uniform_(tensor: Any, **kw: Any) -> Any:
    """U(±√(3/fan_in))."""
    return scheme_(tensor, S.LECUN_UNIFORM, **kw)


def orthogonal_(tensor: Any, gain: float | None = None, activation: str | None = None, **kw: Any) -> Any:
    """A (semi-)orthogonal matrix (rows × the rest flattened) times ``gain`` (default: the activation's
    gain, 1 when none): ``torch.nn.init.orthogonal_``."""
    shape = tuple(tensor.shape)
    g = gain if gain is not None else S.gain(activation)
    return _fill(tensor, orthogonal(shape, g, _rng(kw.get("generator"), kw.get("seed"))))


def normal_(tensor: Any, std: float = 0.02, **kw: Any) -> Any:
    """N(0, std²), independent of fans (BERT/GPT-2 ``initializer_range``)."""
    return scheme_(tensor, S.fixed_normal(std), **kw) if len(tensor.shape) >= 2 else \
        _fill(tensor, _rng(kw.get("generator"), kw.get("seed")).standard_normal(tuple(tensor.shape)) * std)


def truncated_normal_(tensor: Any, std: float = 0.02, **kw: Any) -> Any:
    """Keras-style truncated normal with final std ``std`` (cut at ±2σ of the underlying normal)."""
    from .fix.sampling import truncated_normal

    return _fill(tensor, truncated_normal(std, tuple(tensor.shape), _rng(kw.get("generator"), kw.get("seed"))))


kaiming_normal_ = he_normal_
kaiming_uniform_ = he_uniform_
glorot_normal_ = xavier_normal_
glorot_uniform_ = xavier_uniform_


def zca_(weight: Any, data: Any, bias: Any = None, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
         eps: float = 1e-2, fill: str = "negate", seed: int | None = None) -> Any:
    """ZCA-whiten a first layer on ``data`` (see :mod:`initcheck.fix.zca`).

    ``weight``: a Linear weight (out, in) with ``data`` (N, in) (or anything reshaping to it), or a
    Conv weight (out, C, k...) with ``data`` (N, C, *spatial) and the layer's ``stride``, ``padding``
    (ints or ``"same"``/``"valid"``) and ``dilation``. ``bias``, when given, is set to −W·μ so outputs are
    centred. ``eps`` is relative to the mean eigenvalue of the input covariance. Extra outputs beyond the
    input dimension are filled per ``fill`` (``"negate"``: sign-flipped copies, then He/Xavier rows;
    ``"auto"``: Xavier-normal rows). Returns ``weight``.
    """
    from .fix.zca import extract_patches, whitening

    x = data.detach().cpu().double().numpy() if hasattr(data, "detach") else np.asarray(data, dtype=np.float64)
    shape = tuple(weight.shape)
    n_out = shape[0]
    if len(shape) == 2:
        X = x.reshape(len(x), -1)
        if X.shape[1] != shape[1]:
            raise ValueError(f"data has {X.shape[1]} features per sample; the weight takes {shape[1]}")
    else:
        X = extract_patches(x, shape[2:], stride, dilation, padding)
        if X.shape[1] != math.prod(shape[1:]):
            raise ValueError(f"data of shape {tuple(x.shape)} does not match the weight {shape}: expected "
                             f"(N, {shape[1]}, spatial...)")
    rng = np.random.default_rng(seed)
    fan_in, fan_out = _fans(shape)

    def fill_rows(k: int, d: int) -> np.ndarray:
        return sample(S.XAVIER_NORMAL, (k, d), fan_in, fan_out, 1.0, rng)

    wh = whitening(X, n_out, eps, fill, fill_rows)
    _fill(weight, wh.weight.reshape(shape))
    if bias is not None:
        _fill(bias, wh.bias)
    return weight
