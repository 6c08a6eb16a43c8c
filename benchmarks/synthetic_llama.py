"""A synthetic Llama-7B checkpoint: sharded bfloat16 safetensors with Llama-7B's shapes (6.74e9 values).

Nothing is downloaded. Matrices hold N(0, 0.02) values (the Hugging Face Llama init), norm weights are 1.
Drawing 6.7e9 normals would take minutes, so one pool of 2^27 bfloat16 normals is drawn once and every
matrix is a window of it at its own offset (a window never repeats within a tensor, so no two units of
a tensor are equal). Written with numpy alone, in the safetensors layout (8-byte header length, JSON
header, raw little-endian data), shard by shard, atomically (``.tmp`` then rename), with a
``model.safetensors.index.json``::

    python benchmarks/synthetic_llama.py DIR [--layers 32] [--shard-gb 5]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import time

import numpy as np

VOCAB, HIDDEN, INTERMEDIATE, LAYERS = 32000, 4096, 11008, 32
POOL = 1 << 27  # > the largest tensor (32000 × 4096 = 131e6 values)


def tensors(layers: int = LAYERS) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes in the order Hugging Face's Llama writes them."""
    out = [("model.embed_tokens.weight", (VOCAB, HIDDEN))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [(p + "self_attn.q_proj.weight", (HIDDEN, HIDDEN)), (p + "self_attn.k_proj.weight", (HIDDEN, HIDDEN)),
                (p + "self_attn.v_proj.weight", (HIDDEN, HIDDEN)), (p + "self_attn.o_proj.weight", (HIDDEN, HIDDEN)),
                (p + "mlp.gate_proj.weight", (INTERMEDIATE, HIDDEN)), (p + "mlp.up_proj.weight", (INTERMEDIATE, HIDDEN)),
                (p + "mlp.down_proj.weight", (HIDDEN, INTERMEDIATE)),
                (p + "input_layernorm.weight", (HIDDEN,)), (p + "post_attention_layernorm.weight", (HIDDEN,))]
    out += [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (VOCAB, HIDDEN))]
    return out


def _pool(seed: int = 0) -> np.ndarray:
    """2^27 N(0, 0.02) values as bfloat16 bits (round to nearest even), drawn in float32."""
    rng = np.random.default_rng(seed)
    out = np.empty(POOL, np.uint16)
    step = 1 << 24
    for i in range(0, POOL, step):
        x = rng.standard_normal(step, dtype=np.float32) * np.float32(0.02)
        u = x.view(np.uint32)
        out[i:i + step] = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return out


ONE_BF16 = np.uint16(0x3F80)


def build(folder: str, layers: int = LAYERS, shard_bytes: int = 5 << 30) -> list[str]:
    """Write the shards and the index into ``folder`` (skipped when the index is already there)."""
    index_path = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            return sorted(set(json.load(f)["weight_map"].values()))
    os.makedirs(folder, exist_ok=True)
    entries = tensors(layers)
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in entries:
        nbytes = int(np.prod(shape)) * 2
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += nbytes
    pool = _pool()
    rng = np.random.default_rng(1)
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for fname, shard in zip(names, shards):
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for name, shape in shard:
            n = int(np.prod(shape)) * 2
            header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
            offset += n
            weight_map[name] = fname
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        path = os.path.join(folder, fname)
        with open(path + ".tmp", "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for name, shape in shard:
                n = int(np.prod(shape))
                if len(shape) == 1:
                    f.write(np.full(n, ONE_BF16, np.uint16).tobytes())
                    continue
                start = int(rng.integers(0, POOL))
                first = min(n, POOL - start)  # a window of the pool, wrapping once
                f.write(memoryview(pool[start:start + first]))
                if first < n:
                    f.write(memoryview(pool[:n - first]))
        os.replace(path + ".tmp", path)
    tmp = index_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"metadata": {"total_size": sum(int(np.prod(s)) * 2 for _, s in entries)},
                   "weight_map": weight_map}, f)
    os.replace(tmp, index_path)
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--layers", type=int, default=LAYERS)
    ap.add_argument("--shard-gb", type=float, default=5.0)
    args = ap.parse_args()
    t = time.perf_counter()
    names = build(args.folder, args.layers, int(args.shard_gb * (1 << 30)))
    total = sum(os.path.getsize(os.path.join(args.folder, n)) for n in names)
    print(f"{len(names)} shards, {total / 1e9:.1f} GB in {time.perf_counter() - t:.0f}s: {args.folder}")


if __name__ == "__main__":
    main()
