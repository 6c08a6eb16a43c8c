"""The probe's measurements for PyTorch modules: one forward and one backward pass, nothing changed.

**Pass.** The module runs in eval mode (dropout off) except batch normalizations, which use the batch's
statistics as in training (an untrained model's running statistics are the identity); their running
statistics and counters are copied back afterwards. Forward hooks on each layer's module record the RMS of
its input, output and the output without its bias; tensor hooks record the gradient reaching each output
(and each normalization's input). A TorchFunctionMode sees every torch call in between: ReLU, tanh and
sigmoid calls are measured on their inputs (dead units, saturation) and attributed to the layer whose
output they descend from; softmax calls over the last axis of a ≥3-d tensor and
``F.scaled_dot_product_attention`` calls give attention entropy (SDPA's weights are recomputed from q, k
and its mask). The backward pass starts from a unit-variance random cotangent on the first floating output
(no loss function). Weight gradients give the update-to-weight ratio of one SGD step; parameters that carry
mup's ``infshape`` get MuSGD's per-parameter learning rate.

**Nothing changes.** No optimizer step; every parameter's ``.grad`` and ``requires_grad``, every module's
training flag and the normalizations' buffers are restored, so ``state_dict()`` is bit-identical after.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from ...errors import InitcheckError
from ...model import Layer, Model
from ...probe.inputs import batch_shape, draw_cotangent, draw_input, sound_gain
from ...probe.result import AttentionProbe, LayerProbe, ProbeResult

RELU_OPS = frozenset({"relu", "relu_", "relu6"})
SQUASH_OPS = {"tanh": "tanh", "tanh_": "tanh", "sigmoid": "sigmoid", "sigmoid_": "sigmoid"}


def _rms(t) -> float:
    t = t.detach()
    if t.numel() == 0:
        return math.nan
    import torch

    return float(torch.linalg.vector_norm(t, dtype=torch.float32)) / math.sqrt(t.numel())


def _tensors(obj: Any) -> Iterator[Any]:
    """The tensors inside a module's output (the graph tracer's helper)."""
    from .graph import tensors_in

    return tensors_in(obj)


def _unit_axis(layer: Layer | None, t) -> int:
    """Units sit on axis 1 of a convolution's output, on the last axis otherwise."""
    if layer is not None and layer.kind.startswith(("conv", "depthwise_conv", "batchnorm")) and t.dim() >= 3:
        return 1
    return t.dim() - 1


# ------------------------------------------------------------------------------------------------- inputs
def build_inputs(module, model: Model, input_shape: tuple[int, ...] | None, data: np.ndarray | None,
                 seed: int) -> tuple[tuple, dict, tuple[int, ...], str]:
    """(args, kwargs, shape, description): a user sample, or values drawn with numpy in the shape that
    ``frameworks/torch/graph.example_input`` infers (with a batch large enough for statistics)."""
    import torch

    from .graph import example_input

    p0 = next((p for p in module.parameters() if p.is_floating_point()), None)
    device = p0.device if p0 is not None else torch.device("cpu")
    dtype = p0.dtype if p0 is not None else torch.float32
    if data is not None:
        arr = np.asarray(data)
        x = torch.as_tensor(arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(np.float32))
        x = x.to(device) if x.dtype == torch.long else x.to(device=device, dtype=dtype)
        return (x,), {}, tuple(arr.shape), "data"
    try:
        args, kwargs = example_input(module, model, input_shape)
        if input_shape is None:  # the inferred shape, with a batch (and sequence) large enough to measure
            template = next(_tensors((args, kwargs)))
            shape = batch_shape(tuple(template.shape), template.dtype == torch.long)
            args, kwargs = example_input(module, model, shape)
    except (ValueError, RuntimeError) as e:
        raise InitcheckError(f"cannot infer an input for the probe ({e}); pass --input-shape or --data") from e
    vocab = next((la.shape[0] for la in model.layers if la.kind == "embedding"), 2)

    def redraw(t, k: int):
        if t.dtype == torch.long:
            vals = draw_input(tuple(t.shape), seed + k, vocab=vocab)
            return torch.as_tensor(vals).to(device)
        return torch.as_tensor(draw_input(tuple(t.shape), seed + k)).to(device=device, dtype=dtype)

    args = tuple(redraw(a, i) if isinstance(a, torch.Tensor) else a for i, a in enumerate(args))
    kwargs = {k: redraw(v, 10 + i) if isinstance(v, torch.Tensor) else v for i, (k, v) in enumerate(kwargs.items())}
    first = next(_tensors((args, kwargs)))
    kind = "synthetic token ids" if first.dtype == torch.long else "synthetic N(0, 1)"
    return args, kwargs, tuple(first.shape), kind


# --------------------------------------------------------------------------------------------- the state
@contextmanager
def preserved_state(module) -> Iterator[None]:
    """Eval mode (batch norms on batch statistics), every parameter trainable with no gradient; on exit the
    modes, ``requires_grad`` flags, gradients and normalization buffers are put back exactly."""
    import torch

    modes = [(m, m.training) for m in module.modules()]
    params = list(module.parameters())
    grads = [(p, p.grad, p.requires_grad) for p in params]
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    buffers = [(b, b.detach().clone()) for m in norms for b in m.buffers(recurse=False)]
    try:
        module.eval()
        for m in norms:
            m.train()
        for p in params:
            p.grad = None
            if p.is_floating_point():
                p.requires_grad_(True)
        yield
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for p, g, rg in grads:
            p.grad = g
            p.requires_grad_(rg)
        for m, was in modes:
            m.training = was


def lr_multiplier(p) -> float:
    """MuSGD's per-parameter factor for a parameter with mup's ``infshape`` (1 without): vector-like
    (one infinite dimension) × width_mult, matrix-like ÷ fan_in/fan_out width-multiplier ratio."""
    shape = getattr(p, "infshape", None)
    if shape is None:
        return 1.0
    n = shape.ninf()
    if n == 1:
        return float(shape.width_mult())
    if n == 2:
        return 1.0 / float(shape.fanin_fanout_mult_ratio())
    return 1.0


# ------------------------------------------------------------------------------------------- the recorder
class _Recorder:
    """Hooks and the function mode of one pass; fills LayerProbe/AttentionProbe records."""

    def __init__(self, module, model: Model):
        self.module = module
        self.model = model
        modules = dict(module.named_modules(remove_duplicate=False))
        self.params = dict(module.named_parameters(remove_duplicate=False))
        self.by_module: dict[int, list[Layer]] = {}
        self.mod_of: dict[str, Any] = {}
        for layer in model.layers:
            owner = modules.get(layer.weight.name.rpartition(".")[0])
            if owner is not None:
                self.by_module.setdefault(id(owner), []).append(layer)
                self.mod_of[layer.name] = owner
        self.layers = {layer.name: layer for layer in model.layers}
        self.records: dict[str, LayerProbe] = {}
        self.attention: list[AttentionProbe] = []
        self.outputs: dict[str, Any] = {}  # layer → output tensor (kept only when asked)
        self.keep_outputs = False
        self.producer: dict[int, str] = {}
        self.alive: list[Any] = []  # tensors whose ids are in ``producer``
        self.busy = False
        self.order = 0
        self.handles: list[Any] = []

    # -- module hooks
    def install(self) -> None:
        seen = set()
        for layers in self.by_module.values():
            for layer in layers:
                mod = self.mod_of[layer.name]
                if id(mod) in seen:
                    continue
                seen.add(id(mod))
                self.handles.append(mod.register_forward_hook(self._forward_hook(layers)))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        self.producer.clear()
        self.alive.clear()

    def _forward_hook(self, layers: list[Layer]):
        def hook(mod, args, out):
            self.busy = True
            try:
                x = next((t for t in _tensors(args) if t.is_floating_point()), None)
                y = next((t for t in _tensors(out) if t.is_floating_point()), None)
                if y is None:
                    return None
                for layer in layers:
                    if layer.name in self.records:
                        self.records[layer.name].calls += 1
                        continue
                    self._record(layer, x, y)
                self.producer[id(y)] = layers[0].name
                self.alive.append(y)
            finally:
                self.busy = False
            return None
        return hook

    def _record(self, layer: Layer, x, y) -> None:
        lp = LayerProbe(layer.name, layer.kind, self.order)
        self.order += 1
        lp.out_rms = _rms(y)
        if x is not None:
            lp.in_rms = _rms(x)
            lp.ratio = lp.out_rms / lp.in_rms if lp.in_rms > 0 else math.nan
            weight_part = y
            bias = self.params.get(layer.bias.name) if layer.bias is not None and layer.is_matrix else None
            if bias is not None and bias.dim() == 1 and y.dim() >= 1:
                axis = _unit_axis(layer, y)
                if y.shape[axis] == bias.shape[0]:
                    view = [1] * y.dim()
                    view[axis] = -1
                    weight_part = y.detach() - bias.detach().view(view)
            lp.gain = _rms(weight_part) / lp.in_rms if lp.in_rms > 0 else math.nan
        self.records[layer.name] = lp
        if self.keep_outputs:
            self.outputs[layer.name] = y.detach().clone()
        if y.requires_grad:
            y.register_hook(self._grad_hook(lp, "grad_out_rms"))
        if x is not None and x.requires_grad and layer.kind in ("batchnorm", "layernorm", "groupnorm", "rmsnorm",
                                                                 "instancenorm", "norm"):
            x.register_hook(self._grad_hook(lp, "grad_in_rms"))

    @staticmethod
    def _grad_hook(lp: LayerProbe, attr: str):
        def hook(g):
            if getattr(lp, attr) is None:
                setattr(lp, attr, _rms(g))
            return None
        return hook

    # -- function calls
    def on_call(self, name: str, args: tuple, kwargs: dict) -> None:
        """Before the call: activation statistics of its input (in-place ReLUs overwrite it)."""
        if name in RELU_OPS or name in SQUASH_OPS:
            x = next(_tensors(args), None)
            owner = self.producer.get(id(x)) if x is not None else None
            if owner is None or not x.is_floating_point() or x.dim() == 0:
                return
            lp = self.records.get(owner)
            if lp is None or lp.activation is not None:
                return
            axis = _unit_axis(self.layers.get(owner), x)
            xd = x.detach()
            lp.units = int(xd.shape[axis])
            lp.samples = int(xd.numel() // max(lp.units, 1))
            if name in RELU_OPS:
                lp.activation = "relu"
                alive = (xd > 0).movedim(axis, -1).reshape(-1, lp.units).any(dim=0)
                lp.dead_fraction = float(1.0 - alive.float().mean())
            else:
                from ...probe.thresholds import SATURATION_X

                act = SQUASH_OPS[name]
                lp.activation = act
                lp.saturated_fraction = float((xd.abs() > SATURATION_X[act]).float().mean())

    def after_call(self, name: str, args: tuple, kwargs: dict, out: Any) -> None:
        """After the call: attention entropy; the output inherits its input's layer (for activations later)."""
        import torch

        ins = list(_tensors((args, kwargs)))
        owner = next((self.producer[id(t)] for t in ins if id(t) in self.producer), None)
        if name == "scaled_dot_product_attention":
            self._sdpa(args, kwargs, owner)
        elif name in ("softmax", "_softmax") and isinstance(out, torch.Tensor) and out.dim() >= 3:
            dim = kwargs.get("dim", args[1] if len(args) > 1 and isinstance(args[1], int) else None)
            if dim in (-1, out.dim() - 1):
                self._entropy(out.detach(), owner, "softmax")
        elif name == "multi_head_attention_forward" and isinstance(out, tuple) and len(out) > 1 \
                and out[1] is not None:
            self._entropy(out[1].detach(), owner, "multi_head_attention")
        if owner is not None:
            for t in _tensors(out):
                if id(t) not in self.producer:
                    self.producer[id(t)] = owner
                    self.alive.append(t)

    def _sdpa(self, args: tuple, kwargs: dict, owner: str | None) -> None:
        import torch

        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
        a = dict(zip(names, args))
        a.update(kwargs)
        q, k = a["query"].detach().float(), a["key"].detach().float()
        if q.dim() >= 3 and k.dim() == q.dim() and k.shape[-3] != q.shape[-3] and q.shape[-3] % k.shape[-3] == 0:
            k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
        scale = a.get("scale") or 1.0 / math.sqrt(q.shape[-1])
        logits = (q @ k.transpose(-2, -1)) * scale
        mask = a.get("attn_mask")
        if mask is not None:
            logits = logits.masked_fill(~mask, -math.inf) if mask.dtype == torch.bool else logits + mask.float()
        if a.get("is_causal"):
            causal = torch.ones(logits.shape[-2:], dtype=torch.bool, device=logits.device).tril()
            logits = logits.masked_fill(~causal, -math.inf)
        self._entropy(torch.softmax(logits, dim=-1), owner, "scaled_dot_product_attention")

    def _entropy(self, p, owner: str | None, source: str) -> None:
        import torch

        p = p.float()
        visible = (p > 0).sum(-1)
        h = -torch.special.xlogy(p, p).sum(-1)
        ok = visible >= 2
        if not bool(ok.any()):
            return
        norm = torch.where(ok, h / visible.clamp(min=2).float().log(), torch.zeros_like(h))
        heads = int(p.shape[-3]) if p.dim() >= 4 else 1
        if p.dim() >= 4:
            per_head = (norm * ok).movedim(-2, -1).reshape(-1, heads, norm.shape[-1]).sum(dim=(0, 2)) / \
                ok.movedim(-2, -1).reshape(-1, heads, norm.shape[-1]).sum(dim=(0, 2)).clamp(min=1)
            min_head = float(per_head.min())
        else:
            min_head = float((norm * ok).sum() / ok.sum())
        mean = float((norm * ok).sum() / ok.sum())
        name = owner or f"attention[{len(self.attention)}]"
        self.attention.append(AttentionProbe(name, source, len(self.attention), int(p.shape[-1]), mean, min_head,
                                             heads))


def _mode(recorder: _Recorder):
    from torch.overrides import TorchFunctionMode

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if recorder.busy:
                return func(*args, **kwargs)
            name = getattr(func, "__name__", "")
            recorder.busy = True
            try:
                recorder.on_call(name, args, kwargs)
            finally:
                recorder.busy = False
            out = func(*args, **kwargs)
            recorder.busy = True
            try:
                recorder.after_call(name, args, kwargs, out)
            finally:
                recorder.busy = False
            return out

    return Mode()


# --------------------------------------------------------------------------------------------- the pass
def run_pass(module, model: Model, args: tuple, kwargs: dict, *, seed: int, lr: float,
             keep_outputs: bool = False, grads: dict | None = None) -> tuple[_Recorder, tuple[int, ...] | None]:
    """One recorded forward and backward pass inside :func:`preserved_state`; weight gradients are read
    into the records (and copied into ``grads``, parameter → gradient, when given) before the gradients
    are put back."""
    import torch

    rec = _Recorder(module, model)
    rec.keep_outputs = keep_outputs
    out_shape = None
    with preserved_state(module), torch.random.fork_rng(devices=[]):
        rec.install()
        try:
            with _mode(rec):
                out = module(*args, **kwargs)
            y = next((t for t in _tensors(out) if t.is_floating_point() and t.requires_grad), None)
            if y is None:
                raise InitcheckError("the model's output is not differentiable: no floating tensor with a gradient")
            out_shape = tuple(y.shape)
            rec.producer.clear()
            rec.alive.clear()
            cot = torch.as_tensor(draw_cotangent(out_shape, seed)).to(device=y.device, dtype=y.dtype)
            y.backward(cot)
        except InitcheckError:
            raise
        except Exception as e:
            first = str(e).splitlines()[0][:160] if str(e) else ""
            raise InitcheckError(f"the probe's forward/backward pass failed: {type(e).__name__}: {first}") from e
        finally:
            rec.remove()
        _weight_stats(rec, lr)
        if grads is not None:
            grads.update({p: p.grad.detach().clone() for p in module.parameters() if p.grad is not None})
    return rec, out_shape


def _weight_stats(rec: _Recorder, lr: float) -> None:
    for layer in rec.model.layers:
        lp = rec.records.get(layer.name)
        p = rec.params.get(layer.weight.name)
        if lp is None or p is None:
            continue
        lp.weight_rms = _rms(p)
        if p.grad is not None:
            lp.weight_grad_rms = _rms(p.grad)
            if lp.weight_rms > 0:
                lp.update_ratio = lr * lr_multiplier(p) * lp.weight_grad_rms / lp.weight_rms
        if layer.is_matrix and layer.fan_in and layer.kind != "embedding":
            lp.predicted_gain = math.sqrt(layer.fan_in) * lp.weight_rms
            lp.sound_gain = sound_gain(layer)


def measure(model: Model, *, input_shape: tuple[int, ...] | None = None, data: np.ndarray | None = None,
            data_label: str | None = None, lr: float = 1e-3, seed: int = 0) -> ProbeResult:
    """Probe a loaded PyTorch model (its ``handle`` must be an ``nn.Module``)."""
    import torch

    module = model.handle
    if not isinstance(module, torch.nn.Module):
        raise InitcheckError("the probe needs the model's nn.Module (pass --model package.module:factory for a "
                             "tensor-only file)", model.path)
    args, kwargs, shape, kind = build_inputs(module, model, input_shape, data, seed)
    if data is not None and data_label:
        kind = f"data {data_label}"
    start = time.perf_counter()
    rec, out_shape = run_pass(module, model, args, kwargs, seed=seed, lr=lr)
    seconds = time.perf_counter() - start
    result = ProbeResult(model.path, "torch", shape, kind, lr, seed, output_shape=out_shape, seconds=seconds)
    result.layers = sorted(rec.records.values(), key=lambda lp: lp.order)
    result.attention = rec.attention
    missing = [la.name for la in model.layers if la.name not in rec.records]
    if missing:
        result.notes.append(f"{len(missing)} layer(s) not reached by hooks (called functionally or unused): "
                            + ", ".join(missing[:4]) + ("…" if len(missing) > 4 else ""))
    return result


def coord_measure(module, model: Model, args: tuple, kwargs: dict, *, seed: int, lr: float) -> dict[str, tuple]:
    """Per layer (init_rms, step_rms, delta_rms): sizes at init, after one SGD step of ``lr`` (MuSGD's
    factors where mup's ``infshape`` is set) on the cotangent's gradient, and of the change. The step is
    taken on ``module`` itself: the coord check builds its models for this and discards them."""
    import torch

    grads: dict = {}
    rec, _ = run_pass(module, model, args, kwargs, seed=seed, lr=lr, keep_outputs=True, grads=grads)
    with torch.no_grad():
        for p, g in grads.items():
            p.sub_(lr * lr_multiplier(p) * g)
    after = _Recorder(module, model)
    after.keep_outputs = True
    with preserved_state(module), torch.no_grad():
        after.install()
        try:
            module(*args, **kwargs)
        finally:
            after.remove()
    sizes: dict[str, tuple] = {}
    for name, y0 in rec.outputs.items():
        y1 = after.outputs.get(name)
        if y1 is not None and y1.shape == y0.shape:
            sizes[name] = (_rms(y0), _rms(y1), _rms(y1 - y0))
    return sizes
