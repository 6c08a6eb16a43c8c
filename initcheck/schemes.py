"""The one table of initialization schemes, shared by expectations, fingerprints and reinitialization.

Every variance-scaling scheme is Keras' ``VarianceScaling(scale, mode, distribution)`` with an optional
activation gain, as in ``torch.nn.init``::

    std = gain · √(scale / n),   n = fan_in | fan_out | (fan_in + fan_out) / 2

so Xavier/Glorot is (1, fan_avg), He/Kaiming is (1, fan_in) with gain √2 for ReLU, LeCun is (1, fan_in)
with gain 1, and PyTorch's default ``kaiming_uniform_(a=√5)`` for Linear/Conv is (1/3, fan_in) without gain,
i.e. U(±1/√fan_in). Fixed-σ normals and orthogonal matrices complete the table.

No framework is imported here: the reinit code in ``initcheck.fix`` draws from these same definitions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

SQRT3 = math.sqrt(3.0)
# Keras' truncated_normal divides the requested stddev by this, so the cut (±2σ) result has the requested std.
TRUNCATED_NORMAL_STD_FACTOR = 0.87962566103423978

FAN_MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("normal", "uniform", "truncated_normal", "orthogonal")


# --------------------------------------------------------------------------------------------- activations
@dataclass(frozen=True)
class Activation:
    """An activation function and the gains schemes use for it.

    ``torch_gain``: ``torch.nn.init.calculate_gain`` where PyTorch defines one (None elsewhere).
    ``family``: relu (piecewise linear, He's analysis is exact), saturating (tanh, sigmoid: Glorot's
    analysis, gain 1 is the classic choice), smooth (GELU, SiLU...: gain depends on the pre-activation
    variance, so bands are looser), linear, selu.
    """

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    family: str
    torch_gain: float | None = None

    @property
    def vp_gain(self) -> float:
        """Variance-preserving gain 1/√E[f(z)²], z ~ N(0, 1) (He et al. 2015 generalized)."""
        return variance_preserving_gain(self.name)

    @property
    def gain(self) -> float:
        """The gain initcheck recommends: PyTorch's where it has one, else the variance-preserving one."""
        return self.torch_gain if self.torch_gain is not None else self.vp_gain

    @property
    def plausible_gains(self) -> tuple[float, ...]:
        """Gains a careful author might have used for this activation; the band spans them."""
        gains = {round(self.gain, 12)}
        if self.family in ("saturating", "smooth", "linear"):
            gains.add(1.0)  # Glorot's original tanh/sigmoid analysis; 'linear' gain for GELU-style nets
        if self.family == "smooth":
            gains.add(round(self.vp_gain, 12))
        if self.family == "selu":
            gains.update({1.0, 0.75})  # LeCun (self-normalizing) and torch's empirical 3/4
        if self.name == "tanh":
            gains.add(round(self.vp_gain, 12))
        return tuple(sorted(gains))


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz–Stegun 7.1.26 is too coarse for gains; use math.erf vectorized (called once, cached).
    return np.vectorize(math.erf, otypes=[float])(x)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805

ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in [
        Activation("linear", lambda z: z, "linear", 1.0),
        # softmax normalizes over units rather than acting elementwise: what precedes it is a linear map into
        # logits (gain 1, Xavier), but the report says softmax, so rules can tell a classifier head
        Activation("softmax", lambda z: z, "linear", 1.0),
        Activation("relu", lambda z: np.maximum(z, 0.0), "relu", math.sqrt(2.0)),
        Activation("leaky_relu", lambda z: np.where(z > 0, z, 0.01 * z), "relu", math.sqrt(2.0 / (1 + 0.01**2))),
        Activation("tanh", np.tanh, "saturating", 5.0 / 3.0),
        Activation("sigmoid", _sigmoid, "saturating", 1.0),
        Activation("selu", lambda z: _SELU_SCALE * np.where(z > 0, z, _SELU_ALPHA * np.expm1(np.minimum(z, 0))),
                   "selu", 1.0),  # torch says 3/4 (empirical); true SELU nets use LeCun, gain 1
        Activation("elu", lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))), "smooth"),
        Activation("gelu", lambda z: 0.5 * z * (1 + _erf(z / math.sqrt(2.0))), "smooth"),
        Activation("gelu_tanh", lambda z: 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3))),
                   "smooth"),
        Activation("silu", lambda z: z * _sigmoid(z), "smooth"),
        Activation("mish", lambda z: z * np.tanh(_softplus(z)), "smooth"),
        Activation("softplus", _softplus, "smooth"),
        Activation("hardswish", lambda z: z * np.clip(z + 3, 0, 6) / 6, "smooth"),
    ]
}
# Names users and frameworks use for the same functions.
ACTIVATION_ALIASES = {
    "identity": "linear", "none": "linear", "log_softmax": "softmax",
    "swish": "silu", "relu6": "relu", "prelu": "leaky_relu", "rrelu": "leaky_relu", "celu": "elu",
    "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh", "quick_gelu": "gelu",
    "hard_swish": "hardswish", "hardsigmoid": "sigmoid", "hard_sigmoid": "sigmoid", "logsigmoid": "sigmoid",
    "softsign": "tanh", "hardtanh": "tanh", "exponential": "linear", "hard_silu": "hardswish",
    "leakyrelu": "leaky_relu",
}


def canonical_activation(name: str | None) -> str | None:
    """The table's name for an activation (``'Swish'`` → ``'silu'``), or None if initcheck does not know it."""
    if name is None:
        return None
    key = name.strip().lower().replace("-", "_")
    key = ACTIVATION_ALIASES.get(key, key)
    return key if key in ACTIVATIONS else None


def leaky_relu_gain(slope: float) -> float:
    """√(2 / (1 + slope²)), as ``torch.nn.init.calculate_gain('leaky_relu', slope)``."""
    return math.sqrt(2.0 / (1.0 + slope * slope))


@lru_cache(maxsize=None)
def variance_preserving_gain(name: str) -> float:
    """1/√E[f(z)²] for z ~ N(0, 1), by the trapezoid rule on [-12, 12] with step 5e-4 (agrees with a
    ten-times finer grid to 1e-9 for these f; the kink of hardswish is the worst case)."""
    z = np.linspace(-12.0, 12.0, 48_001)
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    second_moment = float(np.trapezoid(ACTIVATIONS[name].fn(z) ** 2 * pdf, z)) if hasattr(np, "trapezoid") \
        else float(np.trapz(ACTIVATIONS[name].fn(z) ** 2 * pdf, z))
    return 1.0 / math.sqrt(second_moment)


def gain(activation: str | None, param: float | None = None) -> float:
    """Recommended gain for an activation (1 for None/linear); ``param`` is the leaky-ReLU slope."""
    act = canonical_activation(activation)
    if act is None:
        return 1.0
    if act == "leaky_relu" and param is not None:
        return leaky_relu_gain(param)
    return ACTIVATIONS[act].gain


# ------------------------------------------------------------------------------------------------- schemes
@dataclass(frozen=True)
class Scheme:
    """One initialization scheme: variance scale, fan mode, distribution, and whether a gain applies.

    ``family`` is the name the report uses (xavier, he, lecun, uniform, normal, orthogonal).
    For ``normal`` the std is ``fixed_std``, independent of fans.
    """

    name: str
    family: str
    scale: float = 1.0
    mode: str | None = "fan_in"
    distribution: str = "normal"
    uses_gain: bool = True
    fixed_std: float | None = None

    def std(self, fan_in: int, fan_out: int, gain_value: float = 1.0, shape: tuple[int, ...] | None = None) -> float:
        """The std this scheme gives a tensor with these fans (and, for orthogonal, this shape)."""
        if self.fixed_std is not None:
            return self.fixed_std
        g = gain_value if self.uses_gain else 1.0
        if self.distribution == "orthogonal":
            rows = shape[0] if shape else fan_out
            cols = int(np.prod(shape[1:])) if shape and len(shape) > 1 else fan_in
            return g / math.sqrt(max(rows, cols))
        n = fan_count(fan_in, fan_out, self.mode or "fan_in")
        return g * math.sqrt(self.scale / n)

    def with_mode(self, mode: str) -> "Scheme":
        return Scheme(self.name, self.family, self.scale, mode, self.distribution, self.uses_gain, self.fixed_std)

    def with_distribution(self, distribution: str) -> "Scheme":
        return Scheme(self.name, self.family, self.scale, self.mode, distribution, self.uses_gain, self.fixed_std)


def fan_count(fan_in: int, fan_out: int, mode: str) -> float:
    """n of VarianceScaling: fan_in, fan_out or their mean, at least 1."""
    if mode == "fan_in":
        n = fan_in
    elif mode == "fan_out":
        n = fan_out
    elif mode == "fan_avg":
        n = (fan_in + fan_out) / 2.0
    else:
        raise ValueError(f"unknown fan mode {mode!r}")
    return max(float(n), 1.0)


# The named schemes: thin instances of the one parameterization (cf. keras.initializers).
XAVIER_UNIFORM = Scheme("xavier_uniform", "xavier", 1.0, "fan_avg", "uniform")
XAVIER_NORMAL = Scheme("xavier_normal", "xavier", 1.0, "fan_avg", "normal")
HE_UNIFORM = Scheme("he_uniform", "he", 1.0, "fan_in", "uniform")
HE_NORMAL = Scheme("he_normal", "he", 1.0, "fan_in", "normal")
LECUN_UNIFORM = Scheme("lecun_uniform", "lecun", 1.0, "fan_in", "uniform", uses_gain=False)
LECUN_NORMAL = Scheme("lecun_normal", "lecun", 1.0, "fan_in", "normal", uses_gain=False)
TORCH_DEFAULT_UNIFORM = Scheme("uniform", "uniform", 1.0 / 3.0, "fan_in", "uniform", uses_gain=False)
ORTHOGONAL = Scheme("orthogonal", "orthogonal", 1.0, None, "orthogonal")

SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in [XAVIER_UNIFORM, XAVIER_NORMAL, HE_UNIFORM, HE_NORMAL, LECUN_UNIFORM, LECUN_NORMAL,
              TORCH_DEFAULT_UNIFORM, ORTHOGONAL]
}


def fixed_normal(std: float) -> Scheme:
    """N(0, std²) regardless of fans (BERT/GPT-2's ``initializer_range`` 0.02, Keras RandomNormal 0.05)."""
    return Scheme(f"normal:{std:g}", "normal", mode=None, distribution="normal", uses_gain=False, fixed_std=std)


def recommended_scheme(activation: str | None) -> Scheme:
    """The scheme initcheck recommends for a layer followed by ``activation`` (normal-distributed form).

    ReLU family → He (fan_in); tanh, sigmoid, linear/unknown → Xavier with the activation's gain;
    SELU → LeCun; other smooth activations → He-style fan_in with the variance-preserving gain.
    """
    act = canonical_activation(activation)
    if act is None or ACTIVATIONS[act].family in ("saturating", "linear"):
        return XAVIER_NORMAL
    if ACTIVATIONS[act].family == "selu":
        return LECUN_NORMAL
    return HE_NORMAL


def expected_std(activation: str | None, fan_in: int, fan_out: int, param: float | None = None) -> float:
    """Std of the recommended scheme for this activation and these (data-flow) fans."""
    return recommended_scheme(activation).std(fan_in, fan_out, gain(activation, param))


def plausible_std_range(activation: str | None, fan_in: int, fan_out: int,
                        param: float | None = None) -> tuple[float, float]:
    """Smallest and largest std a sound scheme gives for this activation, before statistical tolerance.

    Spans every fan mode (forward-preserving fan_in, backward-preserving fan_out, Xavier's average lies
    between) and the plausible gains of the activation. With the activation unknown, the gains of every
    activation in the table are plausible.
    """
    act = canonical_activation(activation)
    if act is None:
        gains = sorted({g for a in ACTIVATIONS.values() for g in a.plausible_gains})
    elif act == "leaky_relu" and param is not None:
        gains = [leaky_relu_gain(param)]
    else:
        gains = list(ACTIVATIONS[act].plausible_gains)
    n_small, n_large = min(fan_in, fan_out), max(fan_in, fan_out)
    lo = min(gains) / math.sqrt(max(n_large, 1))
    hi = max(gains) / math.sqrt(max(n_small, 1))
    return lo, hi
