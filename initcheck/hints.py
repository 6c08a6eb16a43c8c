"""Fix hints written for the model's framework, from the one scheme table (no framework imported).

A rule decides *what* to draw (a scheme, its distribution, the activation's gain); this module says how a
user of that framework writes it: ``torch.nn.init.kaiming_normal_(w, nonlinearity='relu')`` for PyTorch,
``keras.initializers.HeNormal()`` for Keras. ``initcheck fix`` is offered in both.
"""

from __future__ import annotations

from .schemes import canonical_activation, gain, recommended_scheme

_TORCH_NONLINEARITIES = ("relu", "leaky_relu", "tanh", "sigmoid", "selu", "linear")
_KERAS_CLASS = {("he", "normal"): "HeNormal", ("he", "uniform"): "HeUniform",
                ("xavier", "normal"): "GlorotNormal", ("xavier", "uniform"): "GlorotUniform",
                ("lecun", "normal"): "LecunNormal", ("lecun", "uniform"): "LecunUniform"}


def scheme_hint(activation: str | None, distribution: str, framework: str, param: float | None = None) -> str:
    """How to reinitialize a layer followed by ``activation`` in ``framework`` (torch, keras, safetensors)."""
    act = canonical_activation(activation)
    scheme = recommended_scheme(act)
    dist = "uniform" if distribution == "uniform" else "normal"
    g = gain(act, param)
    if framework == "keras":
        cls = _KERAS_CLASS[(scheme.family, dist)]
        if scheme.family == "he" and act not in ("relu", None):
            # Keras' He classes carry gain √2; other gains are VarianceScaling(scale=g², 'fan_in')
            call = f"keras.initializers.VarianceScaling(scale={g * g:.3g}, mode='fan_in', distribution=" \
                   f"'{'truncated_normal' if dist == 'normal' else 'uniform'}')"
        elif scheme.family == "xavier" and abs(g - 1.0) > 1e-9:
            call = f"keras.initializers.VarianceScaling(scale={g * g:.3g}, mode='fan_avg', distribution=" \
                   f"'{'truncated_normal' if dist == 'normal' else 'uniform'}')"
        else:
            call = f"keras.initializers.{cls}()"
        return f"kernel_initializer={call}, or `initcheck fix`"
    if scheme.family == "he":
        call = (f"torch.nn.init.kaiming_{dist}_(w, nonlinearity='{act}')" if act in _TORCH_NONLINEARITIES else
                f"torch.nn.init.kaiming_{dist}_(w) then scale by {g / 2 ** 0.5:.3g}")
    elif scheme.family == "lecun":
        call = "torch.nn.init.normal_(w, std=1/√fan_in) (LeCun)"
    else:
        call = f"torch.nn.init.xavier_{dist}_(w, gain={g:.3g})"
    return f"{call}, or `initcheck fix`"


def zeros_hint(framework: str) -> str:
    return "bias_initializer='zeros'" if framework == "keras" else "torch.nn.init.zeros_(b)"


def ones_hint(framework: str) -> str:
    return "gamma_initializer='ones'" if framework == "keras" else "torch.nn.init.ones_(norm.weight)"
