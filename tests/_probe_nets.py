"""Small PyTorch models with and without signal-propagation problems, for the probe's tests."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def relu_mlp(depth: int = 32, width: int = 256, init: str = "default", norm: bool = False, bias: bool = True,
             seed: int = 0) -> nn.Sequential:
    """``depth`` × (Linear → [BatchNorm1d] → ReLU). init: default (PyTorch's U(±1/√fan_in)), he."""
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    for _ in range(depth):
        lin = nn.Linear(width, width, bias=bias)
        if init == "he":
            nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
            if bias:
                nn.init.zeros_(lin.bias)
        mods.append(lin)
        if norm:
            mods.append(nn.BatchNorm1d(width))
        mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def tanh_mlp(depth: int = 6, width: int = 128, gain: float = 1.0, seed: int = 0) -> nn.Sequential:
    """Linear → tanh stack, weights Xavier-normal × gain (gain 1 is sound; 5 saturates)."""
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    for _ in range(depth):
        lin = nn.Linear(width, width)
        nn.init.xavier_normal_(lin.weight, gain=gain)
        nn.init.zeros_(lin.bias)
        mods += [lin, nn.Tanh()]
    return nn.Sequential(*mods)


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln1(x)); x + mlp(ln2(x)); causal SDPA attention."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.attn_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class PreLNTransformer(nn.Module):
    """Token embedding (N(0, 1), PyTorch's default) → blocks → LayerNorm → head.

    ``residual_scaling``: GPT-2's σ/√(2L) on the last projection of every residual branch (σ: that
    layer's std under PyTorch's default init); without it every branch adds the same variance.
    ``qk_gain`` multiplies the attention input projection (large values collapse the attention).
    """

    def __init__(self, vocab: int = 64, d: int = 64, blocks: int = 24, heads: int = 4,
                 residual_scaling: bool = False, qk_gain: float = 1.0, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.wte = nn.Embedding(vocab, d)
        self.h = nn.ModuleList(Block(d, heads) for _ in range(blocks))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        with torch.no_grad():
            for blk in self.h:
                blk.c_attn.weight[: 2 * d] *= qk_gain
                if residual_scaling:
                    for proj in (blk.attn_proj, blk.mlp_proj):
                        proj.weight /= math.sqrt(2 * blocks)

    def forward(self, idx):
        x = self.wte(idx)
        for blk in self.h:
            x = blk(x)
        return self.head(self.ln_f(x))


class WidthMLP(nn.Module):
    """d_in → width → width → width → d_out, ReLU; ``mup``: the readout is mup's MuReadout."""

    def __init__(self, width: int, d_in: int = 32, d_out: int = 10, mup: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(d_in, width)
        self.fc2 = nn.Linear(width, width)
        self.fc3 = nn.Linear(width, width)
        if mup:
            from mup import MuReadout

            self.readout = MuReadout(width, d_out)
        else:
            self.readout = nn.Linear(width, d_out)

    def forward(self, x):
        return self.readout(F.relu(self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))))


def mup_mlp(width: int) -> WidthMLP:
    """The μP MLP: mup.set_base_shapes against widths 64 (base) and 128 (delta)."""
    from mup import set_base_shapes

    torch.manual_seed(width)
    model = WidthMLP(width, mup=True)
    set_base_shapes(model, WidthMLP(64, mup=True), delta=WidthMLP(128, mup=True))
    return model


def sp_mlp(width: int) -> WidthMLP:
    """The same MLP in the standard parametrization (PyTorch's default init, one learning rate)."""
    torch.manual_seed(width)
    return WidthMLP(width)
