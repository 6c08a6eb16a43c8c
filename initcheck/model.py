"""Framework-neutral description of a model: layers, their tensors, fans and graph context.

Loaders build these objects; everything downstream (statistics, rules, report, renderers) reads only them.
A layer's fans are computed once, by its loader, from what the layer is (see ``docs/conventions.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from .roles import NORM_KINDS

# Elements per block handed to the statistics pass: bounds the float64 working copy to ~32 MB.
DEFAULT_BLOCK_ELEMENTS = 1 << 22


class TensorRef:
    """Lazy access to one tensor, in the framework's own storage, one block at a time.

    ``raw()`` returns a numpy array over the stored values (a memory map or a zero-copy view where possible);
    ``decode`` turns a slice of it into floats (identity for float16/32/64; bit tricks for bfloat16 and
    float8, which numpy lacks). ``unit_axis`` is the axis that indexes output units: 0 for PyTorch's
    (out, in, ...) layouts, -1 for Keras kernels (..., in, out). Blocks are float64 arrays of shape
    (units_in_block, elements_per_unit), so per-unit statistics come out of the same single pass.
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        dtype: str,
        raw: Callable[[], np.ndarray],
        unit_axis: int = 0,
        decode: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype
        self._raw = raw
        self._decode = decode
        self.unit_axis = unit_axis if len(self.shape) else 0
        # Statistics computed where the tensor lives (a GPU), ``device_stats(per_unit) -> TensorStats``;
        # set by the torch adapter for accelerator tensors. None: the numpy pass reads ``raw()``.
        self.device_stats: Callable[[bool], Any] | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def raw(self) -> np.ndarray:
        return self._raw()

    def decode(self, a: np.ndarray) -> np.ndarray:
        return self._decode(a) if self._decode is not None else a

    def numpy(self) -> np.ndarray:
        """The whole tensor as floats. Use for bounded work only; statistics use :meth:`blocks`."""
        return self.decode(self.raw()).reshape(self.shape)

    def units(self) -> int:
        return self.shape[self.unit_axis] if len(self.shape) >= 2 else (self.shape[0] if self.shape else 1)

    def unit_matrix(self) -> np.ndarray:
        """The whole tensor as a float64 (units, elements_per_unit) matrix (bounded work only)."""
        return self._unit_block(slice(None))

    def _unit_block(self, sl: slice) -> np.ndarray:
        a = self.raw().reshape(self.shape) if self.shape else self.raw().reshape(1)
        if a.ndim <= 1:
            return np.asarray(self.decode(a.reshape(-1)[sl]), dtype=np.float64).reshape(-1, 1)
        axis = self.unit_axis % a.ndim
        index = [slice(None)] * a.ndim
        index[axis] = sl
        block = np.moveaxis(a[tuple(index)], axis, 0)
        if self._decode is not None:  # the bit decoders work on strided views; one copy below
            block = self.decode(block)
        # one pass: gather (for unit_axis != 0), widen to float64 and make C-contiguous together
        return np.asarray(block, dtype=np.float64, order="C").reshape(block.shape[0], -1)

    def blocks(self, max_elements: int = DEFAULT_BLOCK_ELEMENTS) -> Iterator[np.ndarray]:
        """Yield float64 blocks of whole units covering the tensor exactly once."""
        units = self.units()
        per_unit = max(self.size // max(units, 1), 1)
        step = max(1, max_elements // per_unit)
        for start in range(0, units, step):
            yield self._unit_block(slice(start, start + step))


def _bf16_to_f32(a: np.ndarray) -> np.ndarray:
    return (a.astype(np.uint32) << 16).view(np.float32)


def _f8e5m2_to_f16(a: np.ndarray) -> np.ndarray:
    return (a.astype(np.uint16) << 8).view(np.float16)


def _e4m3fn_table() -> np.ndarray:
    codes = np.arange(256)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exp = (codes >> 3) & 0xF
    man = codes & 0x7
    val = np.where(exp == 0, man / 8.0 * 2.0**-6, (1 + man / 8.0) * 2.0 ** (exp - 7.0))
    val = sign * val
    val[(codes & 0x7F) == 0x7F] = np.nan
    return val.astype(np.float32)


_E4M3FN = None


def _f8e4m3fn_to_f32(a: np.ndarray) -> np.ndarray:
    global _E4M3FN
    if _E4M3FN is None:
        _E4M3FN = _e4m3fn_table()
    return _E4M3FN[a.astype(np.uint8)]


# Decoders for dtypes numpy cannot hold natively; the raw array holds their bits as unsigned integers.
BIT_DECODERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "bfloat16": _bf16_to_f32,
    "float8_e5m2": _f8e5m2_to_f16,
    "float8_e4m3fn": _f8e4m3fn_to_f32,
}
FLOAT_DTYPES = frozenset({"float16", "float32", "float64", *BIT_DECODERS})


@dataclass
class Param:
    """One tensor of a layer: its role in the layer, its storage and, after analysis, its statistics."""

    name: str
    role: str  # weight, bias, scale, shift, weight_ih, weight_hh, in_proj_weight, ...
    tensor: TensorRef
    aliases: list[str] = field(default_factory=list)  # other names of the same (tied) storage
    stats: Any = None  # initcheck.stats.TensorStats once computed
    # Writes new values (a numpy array of this shape) into the framework's own tensor, in place;
    # set by loaders of live objects (nn.Module, keras.Model, loaded state_dicts), None for read-only files.
    assign: Callable[[np.ndarray], None] | None = field(default=None, repr=False)
    native: Any = field(default=None, repr=False)  # the framework's tensor/variable, for writers

    @property
    def shape(self) -> tuple[int, ...]:
        return self.tensor.shape


@dataclass
class Context:
    """What surrounds a layer in the model's graph (filled by the graph analysis, issue 3)."""

    activation: str | None = None  # name from initcheck.schemes.ACTIVATIONS, or None when unknown
    activation_param: float | None = None  # e.g. leaky_relu slope
    activation_source: str = "unknown"  # graph, trace, order, user, unknown
    norm_after: bool = False  # a normalization consumes the output before any other weight layer
    residual: bool = False  # the output is added to a residual path
    attention_logits: bool = False  # the output only scales attention logits (query/key projections)
    output_split: bool = False  # the output is split before its activation (fused qkv, gate and up)
    residual_branch: bool = False  # its scale only scales a residual branch (value projections, damped branches)
    scaled_by: list[str] = field(default_factory=list)  # per-channel layer scales applied to the output
    position: str = "hidden"  # input, hidden, output
    consumers: list[str] = field(default_factory=list)  # names of weight layers fed next
    # Where a field's value came from when it was not the graph: "name" (a tensor-only hint), "order",
    # "config", "user". Rules read it so that a name never makes an integrity finding milder.
    evidence: dict[str, str] = field(default_factory=dict)

    def from_name(self, attribute: str) -> bool:
        """True when ``attribute`` (residual, position...) was set from a layer name only."""
        return self.evidence.get(attribute) == "name"
    # why ``activation`` is None (an op initcheck does not know, no graph, not on the inference path...)
    activation_unknown_reason: str | None = None
    on_inference_path: bool = True  # False: only a training-mode forward reaches the layer (aux heads)
    activation_literal: str | None = None  # the op as written when the table maps it (softmax → linear)
    softcap: bool = False  # the output passes c·tanh(x/c) before its consumer (Gemma 2 logit softcaps)


@dataclass
class Layer:
    """One weight-bearing unit of the model, as the report shows it.

    ``fan_in``/``fan_out`` follow data flow (inputs feeding one output unit; outputs one input feeds).
    ``framework_fans`` are the fans the framework's own initializers compute for the stored shape; they
    differ for depthwise/grouped and transposed convolutions, fused projections and recurrent gates, and
    are what a scheme drawn by that framework used.
    """

    name: str
    kind: str
    weight: Param
    bias: Param | None = None
    fan_in: int | None = None
    fan_out: int | None = None
    framework_fans: tuple[int, int] | None = None
    kind_source: str = "module"  # module: from the layer's class; inferred: from names and shapes
    notes: list[str] = field(default_factory=list)  # e.g. ambiguities of a tensor-only file
    attrs: dict[str, Any] = field(default_factory=dict)  # groups, kernel_size, gates, hidden_size, ...
    context: Context = field(default_factory=Context)
    # The typed judgement (initcheck.judgement.Judgement), set once by initcheck.judge.
    judgement: Any = None
    analysis: dict[str, Any] = field(default_factory=dict)  # flat JSON view of the judgement, for renderers

    @property
    def shape(self) -> tuple[int, ...]:
        return self.weight.shape

    @property
    def params(self) -> list[Param]:
        return [p for p in (self.weight, self.bias) if p is not None]

    @property
    def parameter_count(self) -> int:
        return sum(p.tensor.size for p in self.params)

    @property
    def is_matrix(self) -> bool:
        """True for layers whose weight mixes inputs (dense, conv, recurrent, embedding, attention)."""
        return self.kind not in NORM_KINDS and len(self.shape) >= 2 and self.fan_in is not None


@dataclass
class Model:
    """A loaded model: where it came from and its layers in definition (forward) order."""

    path: str
    format: str  # state_dict, checkpoint, safetensors, module, torchscript, exported_program, keras, ...
    framework: str  # torch, keras, safetensors
    layers: list[Layer]
    source_notes: list[str] = field(default_factory=list)  # e.g. "model tensors under key 'state_dict'"
    checkpoint_key: str | None = None
    handle: Any = None  # the live framework object (nn.Module, keras.Model) when there is one
    graph_notes: list[str] = field(default_factory=list)
    trained: str | None = None  # why the checkpoint looks trained or mixed (set by the judgement), None if fresh
    verdict: Any = None  # initcheck.judgement.ModelVerdict, set by the judgement

    @property
    def parameter_count(self) -> int:
        return sum(layer.parameter_count for layer in self.layers)
