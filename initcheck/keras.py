"""Keras initializers from initcheck (imports keras; ``import initcheck`` alone never imports this module).

>>> import initcheck.keras
>>> conv = keras.layers.Conv2D(32, 3, padding="same",
...                            kernel_initializer=initcheck.keras.ZCA(images, padding="same"),
...                            bias_initializer=initcheck.keras.ZCABias(images, kernel_shape=(3, 3, 3, 32),
...                                                        padding="same"))

``ZCA(data)`` whitens the first layer on a data sample (channels-last images (N, H, W, C) for a
convolution, (N, features) for ``Dense``): see :mod:`initcheck.fix.zca` for the formula, the choice of
ε (relative to the mean eigenvalue) and what happens with more outputs than input dimensions. An
initializer only sees the kernel's shape, so give it the layer's ``strides``, ``padding`` and
``dilation_rate``. ``ZCABias`` (same arguments) gives the matching bias −W·μ that centres the outputs.

Both are registered serializable (package ``initcheck``) and keep the data in their config (float32,
base64-encoded ``.npy``), so a model saved as ``.keras`` loads again once ``initcheck.keras`` is imported;
keep the sample small (a few hundred images) since it travels inside the model's config.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import keras
import numpy as np

from .fix.zca import DEFAULT_EPS, extract_patches, whitening
from .fix.sampling import sample
from .schemes import XAVIER_NORMAL

__all__ = ["ZCA", "ZCABias"]


def _encode(a: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a, dtype=np.float32), allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _decode(s: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(s)), allow_pickle=False)


class _ZCABase(keras.initializers.Initializer):
    def __init__(self, data: Any, eps: float = DEFAULT_EPS, strides: Any = 1, padding: str = "valid",
                 dilation_rate: Any = 1, fill: str = "negate", seed: int = 0):
        if isinstance(data, str):
            data = _decode(data)
        self.data = np.asarray(keras.ops.convert_to_numpy(data) if not isinstance(data, np.ndarray) else data,
                               dtype=np.float32)
        self.eps = float(eps)
        self.strides = strides if isinstance(strides, int) else tuple(strides)
        self.padding = str(padding).lower()
        self.dilation_rate = dilation_rate if isinstance(dilation_rate, int) else tuple(dilation_rate)
        self.fill = fill
        self.seed = int(seed)

    def whitening(self, kernel_shape: tuple[int, ...]):
        """The whitening for a kernel of this shape ((in, out) or (k..., C, out))."""
        shape = tuple(int(s) for s in kernel_shape)
        x = self.data.astype(np.float64)
        n_out = shape[-1]
        if len(shape) == 2:
            X = x.reshape(len(x), -1)
            if X.shape[1] != shape[0]:
                raise ValueError(f"ZCA: data has {X.shape[1]} features per sample; the kernel takes {shape[0]}")
        else:
            X = extract_patches(x, shape[:-2], self.strides, self.dilation_rate, self.padding,
                                channels_last=True)
        rng = np.random.default_rng(self.seed)
        fan_in = int(np.prod(shape[:-1]))

        def fill_rows(k: int, d: int) -> np.ndarray:
            return sample(XAVIER_NORMAL, (k, d), fan_in, n_out, 1.0, rng)

        return whitening(X, n_out, self.eps, self.fill, fill_rows)

    def get_config(self) -> dict:
        return {"data": _encode(self.data), "eps": self.eps, "strides": self.strides, "padding": self.padding,
                "dilation_rate": self.dilation_rate, "fill": self.fill, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict) -> "_ZCABase":
        return cls(**config)


@keras.saving.register_keras_serializable(package="initcheck")
class ZCA(_ZCABase):
    """Kernel initializer: W = U(Λ+εI)^(-1/2)Uᵀ on the data's input patches (see the module docstring)."""

    def __call__(self, shape, dtype=None):
        shape = tuple(int(s) for s in shape)
        W = self.whitening(shape).weight  # (out, d), d ordered (k..., C) like the kernel's leading axes
        return keras.ops.convert_to_tensor(W.T.reshape(shape), dtype=dtype or "float32")


@keras.saving.register_keras_serializable(package="initcheck")
class ZCABias(_ZCABase):
    """Bias initializer −W·μ matching :class:`ZCA` with the same arguments. A bias initializer is not
    told the kernel's shape, so pass ``kernel_shape``: (k..., C, out) for a convolution, (in, out) for
    ``Dense``."""

    def __init__(self, data: Any, kernel_shape: Any = None, **kw: Any):
        super().__init__(data, **kw)
        self.kernel_shape = tuple(int(s) for s in kernel_shape) if kernel_shape is not None else None

    def __call__(self, shape, dtype=None):
        if self.kernel_shape is None:
            raise ValueError("ZCABias needs kernel_shape=(k..., C, out) or (in, out)")
        b = self.whitening(self.kernel_shape).bias
        return keras.ops.convert_to_tensor(b.reshape(tuple(int(s) for s in shape)), dtype=dtype or "float32")

    def get_config(self) -> dict:
        cfg = super().get_config()
        cfg["kernel_shape"] = list(self.kernel_shape) if self.kernel_shape else None
        return cfg
