"""Benchmark: initcheck on a ~124M-parameter safetensors file vs a plain numpy script.

Builds GPT-2 small (124M parameters, random init from a config; nothing is downloaded) once into a cache
directory (not committed; ``--cache DIR`` or $INITCHECK_BENCH_CACHE, default ~/.cache/initcheck-bench), then
measures, each in a fresh child process, wall time and peak RSS of:

  initcheck      ``initcheck FILE --format json --no-progress``
  baseline-all   ``safetensors.numpy.load_file`` (every tensor in memory) + per-tensor float64 statistics
  baseline-each  ``safe_open`` one tensor at a time + the same statistics
  (for ``--dtype bfloat16``, which numpy cannot hold, the baselines read through safetensors.torch and
  widen each tensor to float32 first)

The statistics are those of initcheck's report: count, mean, std, min, max, max|w|, zero fraction, NaN and
Inf counts, excess kurtosis, in float64. Peak RSS is the child's ``ru_maxrss`` (a wrapper process runs
each command, so each number belongs to that command alone). Usage::

    python benchmarks/bench_safetensors.py [--repeat N] [--cache DIR] [--dtype float32|bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

BASELINE = r'''
import sys, numpy as np
mode, path, out_path = sys.argv[1], sys.argv[2], sys.argv[3]

def stats(a):
    x = np.asarray(a, dtype=np.float64).ravel()
    fin = np.isfinite(x)
    nan = int(np.isnan(x).sum()); inf = int(np.isinf(x).sum())
    v = x if fin.all() else x[fin]
    mean = v.mean(); d = v - mean; var = (d * d).mean()
    kurt = ((d ** 4).mean() / var ** 2 - 3.0) if var > 0 else float("nan")
    return dict(count=x.size, mean=float(mean), std=float(np.sqrt(var)), min=float(v.min()),
                max=float(v.max()), max_abs=float(np.abs(v).max()), zero_fraction=float((v == 0).mean()),
                nan=nan, inf=inf, excess_kurtosis=float(kurt))

out = {}
bf16 = "bf16" in mode  # numpy has no bfloat16: read through torch, widen each tensor to float32
if mode.startswith("all"):
    if bf16:
        from safetensors.torch import load_file
        tensors = {k: v.float().numpy() for k, v in load_file(path).items()}
    else:
        from safetensors.numpy import load_file
        tensors = load_file(path)
    for name, a in tensors.items():
        out[name] = stats(a)
else:
    from safetensors import safe_open
    with safe_open(path, framework="pt" if bf16 else "numpy") as f:
        for name in f.keys():
            t = f.get_tensor(name)
            out[name] = stats(t.float().numpy() if bf16 else t)
import json
with open(out_path, "w") as f:
    json.dump(out, f)
'''

WRAPPER = r'''
import resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - t
rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
if p.returncode != 0:
    sys.stderr.write(p.stderr)
print(f"{wall} {rss_kb} {p.returncode}")
'''


def build(cache: str, dtype: str) -> str:
    """GPT-2 small (124M) from its default config with random init, saved once as safetensors."""
    path = os.path.join(cache, f"gpt2-small-{dtype}.safetensors")
    if os.path.exists(path):
        return path
    os.makedirs(cache, exist_ok=True)
    import torch
    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config())  # n_layer=12, n_embd=768, vocab 50257: 124M parameters
    state = {k: v.detach().to(getattr(torch, dtype)).contiguous() for k, v in model.state_dict().items()
             if k != "lm_head.weight"}  # tied to transformer.wte.weight, as save_pretrained drops it
    tmp = path + ".tmp"
    save_file(state, tmp, metadata={"format": "pt"})
    os.replace(tmp, path)
    return path


def measure(cmd: list[str]) -> tuple[float, float, int]:
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, check=True)
    if out.stderr.strip():
        sys.stderr.write(out.stderr)
    wall, rss_kb, rc = out.stdout.split()
    return float(wall), int(rss_kb) / 1024.0, int(rc)


def compare(initcheck_json: str, baseline_json: str) -> dict:
    """Largest relative difference between initcheck's per-tensor statistics and the baseline's."""
    with open(initcheck_json) as f:
        report = json.load(f)
    with open(baseline_json) as f:
        base = json.load(f)
    ours = {}
    for layer in report["layers"]:
        ours[layer["tensor"]] = layer["stats"]
        if layer.get("bias"):
            ours[layer["bias"]["tensor"]] = layer["bias"]["stats"]
    keys = ("count", "mean", "std", "min", "max", "max_abs", "zero_fraction", "nan", "inf", "excess_kurtosis")
    worst, where, n = 0.0, "", 0
    missing = sorted(set(base) - set(ours))
    if missing:
        raise SystemExit(f"initcheck reported no statistics for {missing[:5]}")
    for name, b in base.items():
        n += 1
        for k in keys:
            x, y = ours[name].get(k), b[k]
            if x is None or y is None or (isinstance(y, float) and y != y):
                if not ((x is None) and (y is None or y != y)):
                    raise SystemExit(f"{name}.{k}: initcheck {x}, baseline {y}")
                continue
            scale = max(abs(y), 1e-12 if k != "mean" else max(abs(b["std"]), 1e-12))
            rel = abs(x - y) / scale
            if rel > worst:
                worst, where = rel, f"{name} {k}"
    return {"tensors": n, "max_rel": worst, "where": where}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=os.environ.get("INITCHECK_BENCH_CACHE",
                                                      os.path.join(os.path.expanduser("~"), ".cache",
                                                                   "initcheck-bench")))
    ap.add_argument("--repeat", type=int, default=2, help="runs per command; the best wall time is shown")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    t = time.perf_counter()
    path = build(args.cache, args.dtype)
    print(f"file: {path} ({os.path.getsize(path) / 2**20:.0f} MiB, built/found in {time.perf_counter() - t:.1f}s)")
    initcheck = os.path.join(os.path.dirname(sys.executable), "initcheck")
    if not os.path.exists(initcheck):
        initcheck_cmd = [sys.executable, "-m", "initcheck"]
    else:
        initcheck_cmd = [initcheck]
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(BASELINE)
        baseline = f.name
    work = tempfile.mkdtemp(prefix="initcheck-bench-")
    outs = {k: os.path.join(work, f"{k}.json") for k in ("initcheck", "all", "each")}
    suffix = "_bf16" if args.dtype == "bfloat16" else ""
    commands = {
        "initcheck --format json": [*initcheck_cmd, path, "--format", "json", "--no-progress",
                                    "-o", outs["initcheck"]],
        "baseline load_file + numpy": [sys.executable, baseline, "all" + suffix, path, outs["all"]],
        "baseline safe_open per tensor + numpy": [sys.executable, baseline, "each" + suffix, path, outs["each"]],
    }
    rows = []
    try:
        for label, cmd in commands.items():
            runs = [measure(cmd) for _ in range(args.repeat)]
            wall = min(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            rcs = sorted({r[2] for r in runs})
            if rcs != [0] and not (label.startswith("initcheck") and rcs == [1]):  # 1: findings
                raise SystemExit(f"{label} failed (exit {rcs})")
            rows.append({"command": label, "wall_s": round(wall, 2), "peak_rss_mib": round(rss, 1),
                         "exit": rcs})
        agreement = compare(outs["initcheck"], outs["all"])
    finally:
        os.unlink(baseline)
        for p in outs.values():
            if os.path.exists(p):
                os.unlink(p)
        os.rmdir(work)
    file_mib = os.path.getsize(path) / 2**20
    print(f"\n{'command':40} {'wall s (best)':>14} {'peak RSS MiB':>13} {'exit':>6}")
    for r in rows:
        print(f"{r['command']:40} {r['wall_s']:>14.2f} {r['peak_rss_mib']:>13.0f} {str(r['exit']):>6}")
    print(f"(file size {file_mib:.0f} MiB; {os.cpu_count()} CPUs; {args.repeat} runs each)")
    print(f"statistics agree with the baseline: {agreement['tensors']} tensors, largest relative difference "
          f"{agreement['max_rel']:.2e} ({agreement['where']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"file": path, "file_mib": file_mib, "rows": rows, "agreement": agreement}, f, indent=2)


if __name__ == "__main__":
    main()
