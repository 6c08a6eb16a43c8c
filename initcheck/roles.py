"""The one table of layer kinds and parameter roles.

Loaders name a layer's kind with a short string (``linear``, ``conv2d``, ``lstm_recurrent``, ``layernorm``,
``parameter``...); this module is the only place that says what such a kind *is*: its family, whether the
variance-propagation analysis applies to its weight, and which role each of its tensors plays. Every rule,
the judgement and the fix code ask here instead of testing kind strings by prefix.

A **role** says what a correct fresh value of a tensor looks like, and so which rules apply to it:

=================  ===============================================  ===========================================
role               fresh init                                       zeros / a constant is
=================  ===============================================  ===========================================
weight             random, scale from fans and the activation       an error (symmetry never breaks)
recurrent          random or orthogonal, spectral radius ≈ 1        an error
embedding          random, scale by convention (0.02, 1, 1/√d)      an error
adapter_a          LoRA A: random (Kaiming)                         an error (a dead adapter)
adapter_b          LoRA B: zeros                                    expected
bias               zeros or small random                            expected
norm_scale         ones                                             a constant is expected; zeros only at a
                                                                    residual end (zero-init residual)
norm_shift         zeros                                            expected
gain               a constant: layer scale 1e-5, ReZero 0, gain 1,  expected
                   temperature 1, logit scale log 10
position           zeros or a small random table                    expected
token              cls / mask / register tokens: zeros or small     expected
state_space        Mamba A_log (log 1..N per row), D (ones)         expected
parameter          a free parameter of unknown purpose              info only
=================  ===============================================  ===========================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Role(str, Enum):
    """What one tensor is for. The value is what JSON and messages show."""

    WEIGHT = "weight"
    RECURRENT = "recurrent"
    EMBEDDING = "embedding"
    ADAPTER_A = "adapter_a"
    ADAPTER_B = "adapter_b"
    BIAS = "bias"
    NORM_SCALE = "norm_scale"
    NORM_SHIFT = "norm_shift"
    GAIN = "gain"
    POSITION = "position"
    TOKEN = "token"
    STATE_SPACE = "state_space"
    PARAMETER = "parameter"


@dataclass(frozen=True)
class RoleInfo:
    """What a correct init looks like for a role, as the rules need it."""

    role: Role
    fresh: str  # one line for messages and docs
    random: bool  # a correct fresh value is a random draw (so zeros/constants break symmetry)
    zeros_ok: bool  # all zeros is a correct fresh value
    constant_ok: bool  # one value everywhere is a correct fresh value
    mixes_inputs: bool  # a matrix whose rows are units (symmetry and scale rules apply)


ROLES: dict[Role, RoleInfo] = {r.role: r for r in [
    RoleInfo(Role.WEIGHT, "random, std from fans and the activation that follows", True, False, False, True),
    RoleInfo(Role.RECURRENT, "random or orthogonal, spectral radius near 1", True, False, False, True),
    RoleInfo(Role.EMBEDDING, "random, std by convention (0.02, 1/√dim or 1)", True, False, False, False),
    RoleInfo(Role.ADAPTER_A, "LoRA A: random (Kaiming uniform)", True, False, False, True),
    RoleInfo(Role.ADAPTER_B, "LoRA B: zeros, so the adapter starts as the identity", False, True, False, False),
    RoleInfo(Role.BIAS, "zeros or small random", False, True, True, False),
    RoleInfo(Role.NORM_SCALE, "ones", False, False, True, False),
    RoleInfo(Role.NORM_SHIFT, "zeros", False, True, True, False),
    RoleInfo(Role.GAIN, "a constant (layer scale 1e-5, ReZero 0, gain 1, temperature 1, logit scale log 10)",
             False, True, True, False),
    RoleInfo(Role.POSITION, "zeros or a small random table (std 0.02)", False, True, True, False),
    RoleInfo(Role.TOKEN, "zeros or small random (cls, mask, register tokens)", False, True, True, False),
    RoleInfo(Role.STATE_SPACE, "structured (Mamba A_log = log 1..N per row, D = 1)", False, True, True, False),
    RoleInfo(Role.PARAMETER, "a free parameter: initcheck does not know its convention", False, True, True, False),
]}


def role_info(role: Role) -> RoleInfo:
    return ROLES[role]


# --------------------------------------------------------------------------------------------- kinds
class Family(str, Enum):
    """What a layer kind is, for the judgement."""

    DENSE = "dense"  # linear, conv, bilinear, attention projections: scale from fans and activation
    RECURRENT_INPUT = "recurrent_input"  # input-to-hidden gates of an RNN cell (judged like dense)
    RECURRENT = "recurrent"  # hidden-to-hidden matrix of an RNN cell
    EMBEDDING = "embedding"
    NORM = "norm"
    FREE = "free"  # a standalone tensor that belongs to no known layer class


@dataclass(frozen=True)
class KindInfo:
    """One row of the kinds table: a kind string's family and the role of its main tensor."""

    kind: str  # the canonical key (dimension suffixes and cell prefixes removed)
    family: Family
    weight_role: Role
    description: str

    @property
    def scale_judged(self) -> bool:
        """Variance propagation (fans × activation gain) decides the weight's scale."""
        return self.family in (Family.DENSE, Family.RECURRENT_INPUT)


KINDS: dict[str, KindInfo] = {k.kind: k for k in [
    KindInfo("linear", Family.DENSE, Role.WEIGHT, "dense layer, stored (out, in) or Keras (in, out)"),
    KindInfo("linear_transposed", Family.DENSE, Role.WEIGHT, "dense layer stored (in, out) (transformers Conv1D)"),
    KindInfo("conv", Family.DENSE, Role.WEIGHT, "convolution"),
    KindInfo("depthwise_conv", Family.DENSE, Role.WEIGHT, "depthwise convolution (one filter group per channel)"),
    KindInfo("conv_transpose", Family.DENSE, Role.WEIGHT, "transposed convolution"),
    KindInfo("bilinear", Family.DENSE, Role.WEIGHT, "bilinear layer (out, in1, in2)"),
    KindInfo("attention_in_proj", Family.DENSE, Role.WEIGHT, "fused q/k/v projection of MultiheadAttention"),
    KindInfo("attention_proj", Family.DENSE, Role.WEIGHT, "separate q, k or v projection of MultiheadAttention"),
    KindInfo("einsum_dense", Family.DENSE, Role.WEIGHT, "Keras EinsumDense"),
    KindInfo("recurrent_input", Family.RECURRENT_INPUT, Role.WEIGHT, "input-to-hidden gates of an RNN cell"),
    KindInfo("recurrent_projection", Family.DENSE, Role.WEIGHT, "LSTM output projection (proj_size)"),
    KindInfo("recurrent", Family.RECURRENT, Role.RECURRENT, "hidden-to-hidden gates of an RNN cell"),
    KindInfo("embedding", Family.EMBEDDING, Role.EMBEDDING, "embedding table (num, dim)"),
    KindInfo("norm", Family.NORM, Role.NORM_SCALE, "normalization (batch, layer, group, RMS, instance)"),
    KindInfo("prelu", Family.FREE, Role.GAIN, "PReLU slopes (0.25 by default)"),
    KindInfo("bias", Family.FREE, Role.BIAS, "a standalone bias vector"),
    KindInfo("vector", Family.FREE, Role.PARAMETER, "a 1-D tensor of unknown purpose"),
    KindInfo("parameter", Family.FREE, Role.PARAMETER, "a standalone parameter of no known layer class"),
]}

NORM_KINDS = frozenset({"batchnorm", "layernorm", "groupnorm", "rmsnorm", "instancenorm", "norm"})
_CELLS = ("lstm", "gru", "rnn", "simple_rnn", "conv_lstm")
_DIM_SUFFIX = re.compile(r"[123]d$")


def canonical_kind(kind: str) -> str:
    """The table key for a loader's kind string: ``conv2d`` → ``conv``, ``lstm_recurrent`` → ``recurrent``."""
    if kind in KINDS:
        return kind
    if kind in NORM_KINDS:
        return "norm"
    for cell in _CELLS:
        if kind.startswith(cell + "_"):
            part = kind[len(cell) + 1:]
            return {"input": "recurrent_input", "recurrent": "recurrent",
                    "projection": "recurrent_projection"}.get(part, kind)
    stripped = _DIM_SUFFIX.sub("", kind)
    if stripped in KINDS:
        return stripped
    if kind.startswith("parameter"):
        return "parameter"
    return kind


def kind_info(kind: str) -> KindInfo:
    """The table row for a kind; unknown kinds are free parameters (judged for integrity only)."""
    return KINDS.get(canonical_kind(kind), KINDS["parameter"])


# --------------------------------------------------------------------------------- roles of free tensors
# Names only *add* context (see docs/judgement.md): they pick the description of a free parameter, they never
# make an integrity finding milder than the structure alone would. Each hit is recorded with source "name".
_FREE_NAME_ROLES: tuple[tuple[re.Pattern, Role], ...] = (
    (re.compile(r"(lora_?a|lora_down)", re.I), Role.ADAPTER_A),
    (re.compile(r"(lora_?b|lora_up)", re.I), Role.ADAPTER_B),
    (re.compile(r"(^|[._/])(gamma|ls\d*|layer_?scale\w*|scale|alpha|gain|gate|temperature|logit_scale|"
                r"res_?scale|skipinit\w*|rezero\w*)($|[._/])", re.I), Role.GAIN),
    (re.compile(r"(pos(ition)?_?(embed|emb|embedding|bias)\w*|relative_position\w*|rel_pos\w*|"
                r"absolute_pos\w*)", re.I), Role.POSITION),
    (re.compile(r"(^|[._/])(cls_token|dist_token|mask_token|reg_token|register_tokens?|query_tokens?|"
                r"latents?)($|[._/])", re.I), Role.TOKEN),
    (re.compile(r"(^|[._/])(A_log|D|dt_bias)($|[._/])"), Role.STATE_SPACE),
)


def free_role_from_name(name: str) -> Role | None:
    """A hint for a standalone tensor's purpose from its name (context only)."""
    for pattern, role in _FREE_NAME_ROLES:
        if pattern.search(name):
            return role
    return None


_LORA_LAYER = re.compile(r"(^|[._/])lora_(A|B|down|up)([._/]|$)", re.I)


def adapter_role(layer_name: str) -> Role | None:
    """PEFT/LoRA adapter matrices are Linear layers named ``lora_A``/``lora_B`` by PEFT itself: the name is
    the library's structure here (PEFT creates exactly these modules), so it decides the role."""
    m = _LORA_LAYER.search(layer_name)
    if not m:
        return None
    return Role.ADAPTER_A if m.group(2).lower() in ("a", "down") else Role.ADAPTER_B
