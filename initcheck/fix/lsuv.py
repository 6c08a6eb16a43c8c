"""LSUV — layer-sequential unit-variance initialization (Mishkin & Matas, "All you need is a good init",
ICLR 2016), for PyTorch modules.

1. Orthogonal pre-initialization of every covered weight (biases to 0).
2. In forward order, scale each layer's weight (and bias) so that its output variance on the batch is 1,
   until ``|var − 1| < tol`` or ``max_iter`` passes.

**One forward per step.** The paper runs one forward pass per layer and iteration, a number of passes
quadratic in depth. Here every covered module gets a forward hook that, *during the same pass*, measures
the module's output variance, divides its weight and bias by √var and returns the output divided by √var:
the layers downstream see exactly the input they would see with the rescaled weights (the output of a
dense/conv layer is linear in (weight, bias) jointly), so one pass processes every layer in forward order.
Further passes only verify (and correct what a nonlinearity between calls, a module called twice or
normalization statistics moved); usually 2 passes in all.

**Covered modules:** ``nn.Linear``, ``nn.Conv{1,2,3}d``, ``nn.ConvTranspose{1,2,3}d`` (their output), and
``nn.MultiheadAttention``, whose fused projections are not modules and are never called through hooks:
a forward pre-hook computes the q, k and v projections from the module's inputs with the current
``in_proj_weight`` blocks (or ``q/k/v_proj_weight``) and rescales each block to unit output variance before
the attention runs; ``out_proj`` is rescaled from the module's output by a forward hook (``out_proj`` is
called functionally inside the module, so a hook on it would never fire). Other parametrized modules
(embeddings, recurrent layers, normalizations) are left as they are and listed as not covered. A module
called several times in one pass is measured on its first call. The model runs in eval mode (no dropout)
and its mode is restored afterwards. Keras models: :func:`lsuv_keras` (Dense and Conv layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..errors import InitcheckError

DEFAULT_TOL = 0.1
DEFAULT_MAX_ITER = 10


@dataclass
class LSUVResult:
    """What LSUV did: the changes, final output variance per covered layer, passes run, layers skipped."""

    changes: list
    variances: dict[str, float]
    passes: int
    skipped: list[str] = field(default_factory=list)


def _covered(module) -> list[tuple[str, Any, str]]:
    import torch.nn as nn

    out = []
    for name, mod in module.named_modules():
        if isinstance(mod, nn.MultiheadAttention):
            out.append((name, mod, "mha"))
        elif isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
                              nn.ConvTranspose2d, nn.ConvTranspose3d)):
            out.append((name, mod, "affine"))
    # Linear modules inside an MHA (out_proj) are handled by the MHA's own hook.
    mha = [n for n, _, k in out if k == "mha"]
    return [(n, m, k) for n, m, k in out if not any(n.startswith(p + ".") for p in mha if p != n)]


def _orthogonal_(t, rng: np.random.Generator, blocks: int = 1) -> None:
    import torch

    from .sampling import orthogonal

    vals = orthogonal(tuple(t.shape), 1.0, rng, 0, blocks)
    with torch.no_grad():
        t.copy_(torch.as_tensor(vals).to(dtype=t.dtype, device=t.device))


def _var(y) -> float:
    return float(y.detach().double().var(unbiased=False))


def lsuv(module, data, *, tol: float = DEFAULT_TOL, max_iter: int = DEFAULT_MAX_ITER, seed: int | None = None,
         skip: Iterable[str] = (), pre_init: bool = True) -> LSUVResult:
    """Run LSUV in place on ``module`` with the batch ``data`` (a tensor, array, or tuple of positional
    inputs). ``skip``: module names left alone (e.g. a ZCA-initialized first layer). Returns per-layer
    output variances after the last pass; raises :class:`InitcheckError` if the forward pass fails."""
    import torch

    from .reinit import Change, finite_std

    skip = set(skip)
    inputs = data if isinstance(data, (tuple, list)) else (data,)
    inputs = tuple(torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x for x in inputs)
    p0 = next(module.parameters(), None)
    if p0 is not None:
        inputs = tuple(x.to(device=p0.device, dtype=p0.dtype) if x.is_floating_point() else x.to(p0.device)
                       for x in inputs)
    covered = [(n, m, k) for n, m, k in _covered(module) if n not in skip]
    if not covered:
        raise InitcheckError("LSUV: the model has no Linear, Conv or MultiheadAttention module")
    before: dict[str, tuple[Any, float]] = {}
    for n, m, k in covered:
        for pname, p in m.named_parameters(recurse=k == "mha"):
            full = f"{n}.{pname}" if n else pname
            before[full] = (p, finite_std(p.detach().double().cpu().numpy()))
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        if pre_init:
            for n, m, k in covered:
                if k == "mha":
                    if m._qkv_same_embed_dim:
                        _orthogonal_(m.in_proj_weight, rng, blocks=3)
                    else:
                        for w in (m.q_proj_weight, m.k_proj_weight, m.v_proj_weight):
                            _orthogonal_(w, rng)
                    if m.in_proj_bias is not None:
                        m.in_proj_bias.zero_()
                    _orthogonal_(m.out_proj.weight, rng)
                    if m.out_proj.bias is not None:
                        m.out_proj.bias.zero_()
                else:
                    _orthogonal_(m.weight, rng)
                    if m.bias is not None:
                        m.bias.zero_()

    state: dict[str, Any] = {"adjust": True, "seen": set(), "vars": {}, "rescaled": 0}

    def rescale(key: str, y, params) -> float:
        v = _var(y)
        state["vars"].setdefault(key, v)
        if state["adjust"] and v > 0 and math.isfinite(v) and abs(v - 1.0) >= tol:
            s = 1.0 / math.sqrt(v)
            for p in params:
                if p is not None:
                    p.mul_(s)
            state["rescaled"] += 1
            return s
        return 1.0

    def affine_hook(name):
        def hook(mod, args, out):
            if name in state["seen"] or not isinstance(out, torch.Tensor):
                return None
            state["seen"].add(name)
            s = rescale(name, out, (mod.weight, mod.bias))
            return out * s if s != 1.0 else None
        return hook

    def mha_pre_hook(name):
        def hook(mod, args, kwargs):
            if name in state["seen"]:
                return None
            q, k, v = (list(args) + [kwargs.get(a) for a in ("query", "key", "value")][len(args):])[:3]
            if q is None:
                return None
            e = mod.embed_dim
            if mod._qkv_same_embed_dim:
                ws = [mod.in_proj_weight[i * e:(i + 1) * e] for i in range(3)]
            else:
                ws = [mod.q_proj_weight, mod.k_proj_weight, mod.v_proj_weight]
            bs = [mod.in_proj_bias[i * e:(i + 1) * e] if mod.in_proj_bias is not None else None
                  for i in range(3)]
            for tag, x, w, b in zip("qkv", (q, k, v), ws, bs):
                y = torch.nn.functional.linear(x, w, b)
                rescale(f"{name}.{tag}", y, (w, b))  # row blocks are views: scales the fused tensor in place
            return None
        return hook

    def mha_hook(name):
        def hook(mod, args, kwargs, out):
            if name in state["seen"]:
                return None
            state["seen"].add(name)
            y = out[0] if isinstance(out, tuple) else out
            s = rescale(f"{name}.out", y, (mod.out_proj.weight, mod.out_proj.bias))
            if s == 1.0:
                return None
            return (y * s,) + tuple(out[1:]) if isinstance(out, tuple) else y * s
        return hook

    handles = []
    for n, m, k in covered:
        if k == "mha":
            handles.append(m.register_forward_pre_hook(mha_pre_hook(n), with_kwargs=True))
            handles.append(m.register_forward_hook(mha_hook(n), with_kwargs=True))
        else:
            handles.append(m.register_forward_hook(affine_hook(n)))
    was_training = module.training
    module.eval()
    passes = 0
    try:
        with torch.no_grad():
            while True:
                passes += 1
                # passes up to max_iter adjust; one more pass measures only, if the last one adjusted
                state.update(seen=set(), vars={}, rescaled=0, adjust=passes <= max_iter)
                try:
                    module(*inputs)
                except Exception as e:
                    raise InitcheckError(f"LSUV: forward pass on the data failed: {type(e).__name__}: {e}") from e
                if state["rescaled"] == 0:
                    break  # nothing moved: the variances just measured are the final ones
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    variances = dict(state["vars"])
    changes = []
    for full, (p, b_std) in before.items():
        vals = p.detach().double().cpu().numpy()
        layer_key, _, leaf = full.rpartition(".")
        note = ""
        if layer_key in variances:
            note = f"output var {variances[layer_key]:.3f}"
        elif leaf.startswith("in_proj") and f"{layer_key}.q" in variances:
            note = "q/k/v output var " + "/".join(f"{variances[f'{layer_key}.{t}']:.3f}" for t in "qkv")
        elif leaf[:1] in "qkv" and leaf.endswith("_proj_weight") and f"{layer_key}.{leaf[0]}" in variances:
            note = f"output var {variances[f'{layer_key}.{leaf[0]}']:.3f}"
        elif layer_key.endswith(".out_proj") and f"{layer_key[:-9]}.out" in variances:
            note = f"output var {variances[f'{layer_key[:-9]}.out']:.3f}"
        changes.append(Change(layer_key or full, full, b_std, finite_std(vals), "lsuv", note, vals))
    skipped = []
    names = {n for n, _, _ in covered}
    for n, m in module.named_modules():
        if n in names or any(n.startswith(c + ".") for c in names) or n in skip:
            continue
        if any(True for _ in m.parameters(recurse=False)):
            skipped.append(n or "<root>")
    return LSUVResult(changes, variances, passes, skipped)


# ------------------------------------------------------------------------------------------------- Keras
KERAS_COVERED = frozenset({"Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
                           "Conv3DTranspose"})


def _keras_frontier(tensor, covered: set, seen: set | None = None) -> set:
    """Covered layers nearest upstream of a symbolic Keras tensor (through any uncovered operations)."""
    seen = set() if seen is None else seen
    hist = getattr(tensor, "_keras_history", None)
    if hist is None:
        return set()
    op = hist[0]
    if id(op) in seen:
        return set()
    seen.add(id(op))
    if op.name in covered:
        return {op.name}
    out: set = set()
    try:
        node = op._inbound_nodes[hist[1]]
        parents = node.input_tensors
    except (AttributeError, IndexError):
        return out
    for t in parents:
        out |= _keras_frontier(t, covered, seen)
    return out


def lsuv_keras(model, data, *, tol: float = DEFAULT_TOL, max_iter: int = DEFAULT_MAX_ITER,
               seed: int | None = None, skip: Iterable[str] = ()) -> LSUVResult:
    """LSUV for a functional or Sequential ``keras.Model``: ``Dense`` and ``Conv*`` layers (kernel and bias).

    Keras has no forward hooks, so each step is one forward pass of a probe model returning the inputs of
    every covered layer; each layer's *pre-activation* output (its activation switched to linear for the
    measurement only) is then computed from its input. Rescales made earlier in the same pass are carried
    downstream by positive homogeneity (scaling a layer's weight and bias by s scales what a ReLU/linear
    path hands on by s), using the nearest covered layer(s) upstream in the graph; what that prediction
    misses (tanh, normalization, branches with different scales) the next pass corrects. Layers inside
    other layers (MultiHeadAttention's EinsumDense projections) are not covered.
    """
    import keras

    from .reinit import Change, finite_std
    from .sampling import orthogonal

    skip = set(skip)
    covered = [la for la in model.layers if type(la).__name__ in KERAS_COVERED and la.name not in skip
               and getattr(la, "kernel", None) is not None]
    if not covered:
        raise InitcheckError("LSUV: the model has no Dense or Conv layer")
    names = {la.name for la in covered}
    try:
        probe = keras.Model(model.inputs, [la.input for la in covered])
    except Exception as e:
        raise InitcheckError(f"LSUV for Keras needs a functional or Sequential model with known inputs "
                             f"({type(e).__name__}: {e})") from e
    frontier = {la.name: _keras_frontier(la.input, names) for la in covered}
    before = {}
    for la in covered:
        for w in (la.kernel, getattr(la, "bias", None)):
            if w is not None:
                before[w.path] = (la.name, w, finite_std(np.asarray(w.numpy(), dtype=np.float64)))
    rng = np.random.default_rng(seed)
    for la in covered:
        la.kernel.assign(orthogonal(tuple(la.kernel.shape), 1.0, rng, unit_axis=-1).astype(la.kernel.dtype))
        if getattr(la, "bias", None) is not None:
            la.bias.assign(np.zeros(tuple(la.bias.shape), dtype=la.bias.dtype))
    linear = keras.activations.get("linear")

    def pre_activation_var(la, x) -> float:
        act = la.activation
        la.activation = linear
        try:
            y = np.asarray(la(x), dtype=np.float64)
        finally:
            la.activation = act
        return float(y.var())

    data = np.asarray(data, dtype=np.float32)
    passes = 0
    variances: dict[str, float] = {}
    while True:
        passes += 1
        adjust = passes <= max_iter
        try:
            ins = probe([data] if len(model.inputs) == 1 else data, training=False)
        except Exception as e:
            raise InitcheckError(f"LSUV: forward pass on the data failed: {type(e).__name__}: {e}") from e
        ins = ins if isinstance(ins, (list, tuple)) else [ins]
        scale_out: dict[str, float] = {}  # factor this pass applied to each layer's output, cumulated
        rescaled = 0
        variances = {}
        for la, x in zip(covered, ins):
            ups = {scale_out.get(f, 1.0) for f in frontier[la.name]}
            carried = ups.pop() if len(ups) == 1 else 1.0
            v = pre_activation_var(la, x) * carried**2
            variances[la.name] = v
            s = 1.0
            if adjust and v > 0 and np.isfinite(v) and abs(v - 1.0) >= tol:
                s = 1.0 / math.sqrt(v)
                la.kernel.assign(la.kernel.numpy() * s)
                if getattr(la, "bias", None) is not None:
                    la.bias.assign(la.bias.numpy() * s)
                rescaled += 1
            scale_out[la.name] = carried * s
        if rescaled == 0:
            break
    changes = []
    for path, (lname, w, b_std) in before.items():
        vals = np.asarray(w.numpy(), dtype=np.float64)
        changes.append(Change(lname, path, b_std, finite_std(vals), "lsuv", f"output var {variances[lname]:.3f}",
                              vals))
    skipped = [la.name for la in model.layers if la.name not in names and la.name not in skip and la.weights]
    return LSUVResult(changes, variances, passes, skipped)
