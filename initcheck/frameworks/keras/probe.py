"""The probe's measurements for Keras models (TensorFlow backend): one forward and one backward pass.

Keras has no forward hooks, so each covered layer's ``activation`` attribute is wrapped for the pass: the
wrapper sees the layer's pre-activation output (what PyTorch's Linear/Conv modules return), records its
RMS and, for ReLU/tanh/sigmoid, dead and saturated units, and hands it on unchanged. A second model over
the same graph returns every covered layer's input (and each normalization's output) beside the model's
output, all from one call under a ``tf.GradientTape``; gradients w.r.t. those tensors and the weights come
from one ``tape.gradient`` seeded with the same unit-variance cotangent as the PyTorch probe draws
(numpy, same seed), so twin models give the same figures.

The call runs with ``training=True`` so that BatchNormalization uses the batch's statistics (as the
PyTorch probe does); dropout and noise layers are silenced for the pass and the normalizations' moving
statistics are written back afterwards, bit for bit. No optimizer step. Only the TensorFlow backend is
supported (``tape.gradient`` w.r.t. intermediate tensors); attention inside Keras layers is not observed.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from ...errors import InitcheckError
from ...model import Model
from ...probe.inputs import batch_shape, draw_cotangent, draw_input, sound_gain
from ...probe.result import LayerProbe, ProbeResult
from ...probe.thresholds import SATURATION_X

NORM_CLASSES = frozenset({"BatchNormalization", "LayerNormalization", "GroupNormalization", "RMSNormalization",
                          "UnitNormalization"})
SILENCED = {"Dropout": "rate", "SpatialDropout1D": "rate", "SpatialDropout2D": "rate", "SpatialDropout3D": "rate",
            "GaussianDropout": "rate", "GaussianNoise": "stddev", "AlphaDropout": "rate"}


def _rms(a: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(np.sqrt(np.mean(a * a))) if a.size else math.nan


def _walk(layer) -> Iterator[Any]:
    for sub in getattr(layer, "layers", []) or []:
        yield sub
        yield from _walk(sub)


def _owners(keras_model) -> dict[int, Any]:
    """id(variable) → the innermost Keras layer holding it: initcheck's layer names are made stable across
    reloads and need not be Keras' own, so layers are found through their weights."""
    owner: dict[int, Any] = {}
    for kl in _walk(keras_model):  # parents before children: the innermost holder wins
        for v in getattr(kl, "weights", []) or []:
            owner[id(v)] = kl
    return owner


def _require_tensorflow():
    import keras

    if keras.backend.backend() != "tensorflow":
        raise InitcheckError(f"the probe runs Keras models on the TensorFlow backend (this is "
                             f"{keras.backend.backend()}); set KERAS_BACKEND=tensorflow")
    import tensorflow as tf

    return keras, tf


@contextmanager
def _probe_mode(keras_model, layers: list) -> Iterator[None]:
    """Dropout and noise off; normalization moving statistics restored exactly afterwards."""
    silenced = [(kl, attr, getattr(kl, attr)) for kl in layers for cls, attr in SILENCED.items()
                if type(kl).__name__ == cls]
    saved = [(v, np.array(v.numpy(), copy=True)) for kl in layers if type(kl).__name__ == "BatchNormalization"
             for v in kl.non_trainable_weights]
    try:
        for kl, attr, _ in silenced:
            setattr(kl, attr, 0.0)
        yield
    finally:
        for kl, attr, value in silenced:
            setattr(kl, attr, value)
        for v, value in saved:
            v.assign(value)


def _inputs(keras_model, model: Model, input_shape, data, seed: int) -> tuple[list[np.ndarray], str]:
    if data is not None:
        arr = np.asarray(data)
        return [arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(np.float32)], "data"
    out = []
    vocab = next((la.shape[0] for la in model.layers if la.kind == "embedding"), None)
    for k, t in enumerate(keras_model.inputs):
        tokens = "int" in str(t.dtype)
        if input_shape is not None and k == 0:
            shape = tuple(input_shape)
        else:
            shape = batch_shape((2,) + tuple(int(s or 8) for s in t.shape[1:]), tokens)
        out.append(draw_input(shape, seed + k, vocab=vocab if tokens else None))
    kind = "synthetic token ids" if out and out[0].dtype == np.int64 else "synthetic N(0, 1)"
    return out, kind


class _Wrapped:
    """The activation wrapper of one layer: records the pre-activation tensor of the first call."""

    def __init__(self, act, name: str):
        self.act = act
        self.name = name
        self.z = None
        self.kind = getattr(act, "__name__", "")

    def __call__(self, z, *args, **kwargs):
        if self.z is None:
            self.z = z
        return self.act(z, *args, **kwargs)


def run_pass(model: Model, inputs: list[np.ndarray], *, seed: int, lr: float,
             keep: bool = False) -> tuple[dict[str, LayerProbe], dict[str, Any], tuple[int, ...]]:
    """One forward and backward pass: (records by layer name, with ``keep`` {"gradients": [(variable,
    gradient)], "outputs": {layer: pre-activation output}}, output shape)."""
    keras, tf = _require_tensorflow()
    obj = model.handle
    owner = _owners(obj)
    covered = [(la, owner[id(la.weight.native)]) for la in model.layers if id(la.weight.native) in owner]
    by_name = {la.name: kl for la, kl in covered}
    norms = [(la, kl) for la, kl in covered if type(kl).__name__ in NORM_CLASSES]
    wrapped: dict[str, _Wrapped] = {}
    for la, kl in covered:
        if getattr(kl, "activation", None) is not None and type(kl).__name__ not in NORM_CLASSES:
            wrapped[la.name] = _Wrapped(kl.activation, la.name)
    try:
        probe = keras.Model(obj.inputs, [obj.outputs[0]] + [kl.input for _, kl in covered] +
                            [kl.output for _, kl in norms])
    except Exception as e:
        raise InitcheckError(f"the probe needs a functional or Sequential Keras model with known inputs "
                             f"({type(e).__name__}: {e})") from e
    variables = {la.name: [v for v in (getattr(kl, "kernel", None), getattr(kl, "gamma", None),
                                        getattr(kl, "embeddings", None)) if v is not None][:1]
                 for la, kl in covered}
    all_vars = list(obj.trainable_variables)
    records: dict[str, LayerProbe] = {}
    with _probe_mode(obj, list(_walk(obj))):
        for name, w in wrapped.items():
            by_name[name].activation = w
        try:
            with tf.GradientTape(persistent=False) as tape:
                outs = probe([tf.constant(x) for x in inputs], training=True)
                y, ins, norm_outs = outs[0], outs[1:1 + len(covered)], outs[1 + len(covered):]
                zs = [wrapped[la.name].z if la.name in wrapped else None for la, _ in covered]
            cot = tf.constant(draw_cotangent(tuple(y.shape), seed), dtype=y.dtype)
            sources = {"z": [z for z in zs if z is not None], "in": [x for (la, kl), x in zip(covered, ins)
                                                                      if type(kl).__name__ in NORM_CLASSES],
                       "norm_out": list(norm_outs), "vars": all_vars}
            flat = sources["z"] + sources["in"] + sources["norm_out"] + sources["vars"]
            grads = tape.gradient(y, flat, output_gradients=cot,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
        except InitcheckError:
            raise
        except Exception as e:
            raise InitcheckError(f"the probe's forward/backward pass failed: {type(e).__name__}: "
                                 f"{str(e).splitlines()[0][:160] if str(e) else ''}") from e
        finally:
            for name, w in wrapped.items():
                by_name[name].activation = w.act
    g = iter(grads)
    z_grads = [next(g) for _ in sources["z"]]
    in_grads = [next(g) for _ in sources["in"]]
    out_grads = [next(g) for _ in sources["norm_out"]]
    var_grads = {id(v): next(g) for v in sources["vars"]}
    zi = iter(zip([z for z in zs if z is not None], z_grads))
    ni = iter(zip(norm_outs, out_grads))
    ii = iter(in_grads)
    for order, ((la, kl), x) in enumerate(zip(covered, ins)):
        lp = LayerProbe(la.name, la.kind, order)
        is_norm = type(kl).__name__ in NORM_CLASSES
        xin = np.asarray(x) if x.dtype.is_floating else None
        if is_norm:
            out, gout = next(ni)
            lp.grad_in_rms = _rms(next(ii))
        elif la.name in wrapped:
            out, gout = next(zi)
        else:
            out, gout = None, None
        if out is not None:
            out = np.asarray(out)
            lp.out_rms, lp.grad_out_rms = _rms(out), _rms(gout)
            if xin is not None:
                lp.in_rms = _rms(xin)
                lp.ratio = lp.out_rms / lp.in_rms if lp.in_rms > 0 else math.nan
                bias = getattr(kl, "bias", None)
                part = out - np.asarray(bias) if bias is not None and not is_norm else out
                lp.gain = _rms(part) / lp.in_rms if lp.in_rms > 0 else math.nan
            if la.name in wrapped:
                _activation_stats(lp, wrapped[la.name].kind, out)
        w = variables.get(la.name)
        if w:
            lp.weight_rms = _rms(w[0].numpy())
            gw = var_grads.get(id(w[0]))
            if gw is not None:
                lp.weight_grad_rms = _rms(gw)
                if lp.weight_rms > 0:
                    lp.update_ratio = lr * lp.weight_grad_rms / lp.weight_rms
            if la.is_matrix and la.fan_in and la.kind != "embedding":
                lp.predicted_gain = math.sqrt(la.fan_in) * lp.weight_rms
                lp.sound_gain = sound_gain(la)
        records[la.name] = lp
    kept: dict[str, Any] = {}
    if keep:  # variables are unhashable: (variable, gradient) pairs, and the pre-activation outputs
        kept["gradients"] = [(v, np.asarray(var_grads[id(v)])) for v in all_vars]
        kept["outputs"] = {la.name: np.asarray(z) for (la, _), z in zip(covered, zs) if z is not None}
    return records, kept, tuple(int(s) for s in y.shape)


def _activation_stats(lp: LayerProbe, act: str, z: np.ndarray) -> None:
    if act not in ("relu", "tanh", "sigmoid") or z.ndim == 0:
        return
    lp.activation = act
    lp.units = int(z.shape[-1])
    lp.samples = int(z.size // max(lp.units, 1))
    if act == "relu":
        lp.dead_fraction = float(1.0 - (z.reshape(-1, lp.units) > 0).any(axis=0).mean())
    else:
        lp.saturated_fraction = float((np.abs(z) > SATURATION_X[act]).mean())


def measure(model: Model, *, input_shape=None, data=None, data_label: str | None = None, lr: float = 1e-3,
            seed: int = 0) -> ProbeResult:
    """Probe a loaded Keras model (its ``handle`` must be the ``keras.Model``)."""
    inputs, kind = _inputs(model.handle, model, input_shape, data, seed)
    if data is not None and data_label:
        kind = f"data {data_label}"
    start = time.perf_counter()
    records, _, out_shape = run_pass(model, inputs, seed=seed, lr=lr)
    result = ProbeResult(model.path, "keras", tuple(inputs[0].shape), kind, lr, seed, output_shape=out_shape,
                         seconds=time.perf_counter() - start)
    result.layers = sorted(records.values(), key=lambda lp: lp.order)
    result.notes.append("Keras: layer outputs are pre-activation (fused activations are measured on their "
                        "input); attention inside Keras layers is not observed")
    return result


def coord_measure(model: Model, *, input_shape=None, data=None, seed: int = 0, lr: float = 0.1) -> dict[str, tuple]:
    """Per layer (init_rms, step_rms, delta_rms) around one SGD step of ``lr`` taken on the (throwaway)
    factory-built model; see ``frameworks/torch/probe.coord_measure``."""
    inputs, _ = _inputs(model.handle, model, input_shape, data, seed)
    _, kept, _ = run_pass(model, inputs, seed=seed, lr=lr, keep=True)
    before = kept["outputs"]
    for v, g in kept["gradients"]:
        value = np.asarray(v.numpy())
        v.assign(value - lr * g.astype(value.dtype))
    _, kept_after, _ = run_pass(model, inputs, seed=seed, lr=lr, keep=True)
    after = kept_after["outputs"]
    return {n: (_rms(before[n]), _rms(after[n]), _rms(after[n] - before[n])) for n in before if n in after}
