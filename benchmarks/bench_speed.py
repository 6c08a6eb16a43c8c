"""Speed benchmark: whole ``initcheck check`` against the numpy floor, the naive script and WeightWatcher.

One run, one process tree: every command runs in its own child process under a small wrapper that
reports the child's wall time, CPU time (user + system, all threads) and peak RSS (``ru_maxrss``), so
each figure belongs to that command alone. Models (built here, nothing is downloaded):

  gpt2   GPT-2 small (124M parameters) from transformers' GPT2Config defaults, random init, float32
         safetensors (tied lm_head dropped, as save_pretrained does)
  7b     a synthetic Llama-7B: 6.74e9 bfloat16 values in sharded safetensors (benchmarks/synthetic_llama.py),
         ~13.5 GB; built under --data and deleted afterwards unless --keep

Commands:

  floor       memory-map every tensor, ``x.sum()`` and ``np.dot(x, x)`` (bfloat16: widened to float32 per
              block of 2^20 values first, the least work that reads bfloat16 values with numpy)
  naive       safetensors ``load_file``, then per tensor torch ``mean/std/min/max/isfinite`` in float32
              (7b: ``safe_open`` one tensor at a time, the same ops; loading 13.5 GB at once does not fit)
  initcheck   ``initcheck check PATH --format json --no-progress -j N`` for N = 1 and N = all CPUs
  weightwatcher  ``WeightWatcher(model).analyze()`` on the torch GPT-2 (gpt2 only; skipped when the
              package is not installed, with the reason)

Ratios printed: statistics throughput of the whole check (weight bytes / wall s) as a fraction of the
floor's; check time / naive time; check time / WeightWatcher time; for 7b also peak RSS against the
bound "largest tensor + 300 MB per worker". OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (they slow a current
numpy) and PYTHONDONTWRITEBYTECODE (an installed package has its bytecode) are removed from every
child's environment alike. Usage::

    python benchmarks/bench_speed.py [--models gpt2,7b] [--data DIR] [--repeat N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

WRAPPER = r'''
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
wall = time.perf_counter() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "cpu": r.ru_utime + r.ru_stime, "rss_mib": r.ru_maxrss / 1024, "rc": p.returncode,
                  "stdout": p.stdout[-2000:], "stderr": p.stderr[-2000:]}))
'''

FLOOR = r'''
import json, struct, sys
import numpy as np
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    buf = np.empty(1 << 20, np.uint32)
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = mm[8 + n + a:8 + n + b]
        if info["dtype"] == "F32":
            x = raw.view(np.float32)
            x.sum(); np.dot(x, x)
        elif info["dtype"] == "BF16":
            bits = raw.view(np.uint16)
            for i in range(0, bits.size, buf.size):
                part = bits[i:i + buf.size]
                out = buf[:part.size]
                np.left_shift(part, 16, out=out, dtype=np.uint32)
                x = out.view(np.float32)
                x.sum(); np.dot(x, x)
    del mm
'''

NAIVE = r'''
import sys, torch
mode, paths = sys.argv[1], sys.argv[2:]
def stats(t):
    t = t.float()
    return (t.mean().item(), t.std().item(), t.min().item(), t.max().item(), bool(torch.isfinite(t).all()))
out = {}
for path in paths:
    if mode == "load_file":
        from safetensors.torch import load_file
        for k, t in load_file(path).items():
            out[k] = stats(t)
    else:
        from safetensors import safe_open
        with safe_open(path, framework="pt") as f:
            for k in f.keys():
                out[k] = stats(f.get_tensor(k))
print(len(out))
'''

HIDE_BROKEN_TORCHVISION = r'''
import sys
try:  # transformers imports torchvision when it is installed; a build that does not match torch fails
    import torchvision  # noqa: F401
except (ImportError, RuntimeError):
    for m in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
        del sys.modules[m]
    sys.modules["torchvision"] = None  # find_spec() then says "not installed"
'''

WEIGHTWATCHER = HIDE_BROKEN_TORCHVISION + r'''
import sys, time
t0 = time.perf_counter()
import torch, weightwatcher as ww
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel
model = GPT2LMHeadModel(GPT2Config())
model.load_state_dict(load_file(sys.argv[1]), strict=False)  # lm_head is tied to wte
t1 = time.perf_counter()
details = ww.WeightWatcher(model=model).analyze()
print(f"analyze_s={time.perf_counter() - t1:.2f} setup_s={t1 - t0:.2f} layers={len(details)}")
'''


def build_gpt2(folder: str) -> list[str]:
    path = os.path.join(folder, "gpt2-small-float32.safetensors")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        exec(HIDE_BROKEN_TORCHVISION, {})
        import torch
        from safetensors.torch import save_file
        from transformers import GPT2Config, GPT2LMHeadModel

        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config())  # n_layer=12, n_embd=768, vocab 50257: 124M parameters
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
        save_file(state, path + ".tmp", metadata={"format": "pt"})
        os.replace(path + ".tmp", path)
    return [path]


def weight_bytes(paths: list[str]) -> tuple[int, int]:
    """(bytes of all tensors, bytes of the largest tensor) from the headers."""
    from initcheck.frameworks.safetensors import read_header

    total = largest = 0
    for p in paths:
        header, _ = read_header(p)
        for k, v in header.items():
            if k != "__metadata__":
                n = v["data_offsets"][1] - v["data_offsets"][0]
                total += n
                largest = max(largest, n)
    return total, largest


def measure(cmd: list[str], env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def child_env() -> dict:
    """The children's environment: as this one, less two settings of this machine that no user has
    (OpenBLAS core overrides that slow numpy; PYTHONDONTWRITEBYTECODE, which makes every start compile
    initcheck from source, where an installed package has its bytecode)."""
    env = dict(os.environ)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "PYTHONDONTWRITEBYTECODE"):
        env.pop(var, None)
    return env


def run_model(label: str, paths: list[str], target: str, repeat: int, jobs: int, work: str, naive_mode: str,
              with_ww: bool) -> dict:
    env = child_env()
    initcheck = [sys.executable, "-m", "initcheck"]
    scripts = {}
    for name, text in (("floor", FLOOR), ("naive", NAIVE), ("ww", WEIGHTWATCHER)):
        scripts[name] = os.path.join(work, f"{name}.py")
        with open(scripts[name], "w") as f:
            f.write(text)
    commands = {
        "floor": [sys.executable, scripts["floor"], *paths],
        f"initcheck -j {jobs}": [*initcheck, "check", target, "--format", "json", "--no-progress", "-j", str(jobs),
                                  "-o", os.path.join(work, "report.json")],
        "initcheck -j 1": [*initcheck, "check", target, "--format", "json", "--no-progress", "-j", "1",
                           "-o", os.path.join(work, "report1.json")],
        f"naive ({naive_mode})": [sys.executable, scripts["naive"], naive_mode, *paths],
    }
    rows: dict[str, dict] = {}
    notes: list[str] = []
    if with_ww:
        try:
            import weightwatcher  # noqa: F401  (only to know whether it is installed)
        except ImportError as e:
            notes.append(f"weightwatcher skipped: not importable ({e})")
        else:
            commands["weightwatcher analyze()"] = [sys.executable, scripts["ww"], paths[0]]
    for name, cmd in commands.items():
        runs = []
        slow = name.startswith("weightwatcher") or (name.startswith("naive") and label == "7b")
        for _ in range(1 if slow else repeat):  # minutes each: one run
            r = measure(cmd, env)
            ok = r["rc"] == 0 or (name.startswith("initcheck") and r["rc"] == 1)  # 1: findings
            if not ok:
                raise SystemExit(f"{label}: {name} failed (exit {r['rc']}): {r['stderr']}")
            runs.append(r)
            print(f"  {label:5s} {name:28s} wall {r['wall']:8.2f}s  cpu {r['cpu']:8.2f}s  rss {r['rss_mib']:7.0f} MiB",
                  flush=True)
        best = min(runs, key=lambda r: r["wall"])
        best["cpu"] = min(r["cpu"] for r in runs)
        best["rss_mib"] = max(r["rss_mib"] for r in runs)
        rows[name] = best
        if name.startswith("weightwatcher"):
            notes.append(f"weightwatcher: {best['stdout'].strip().splitlines()[-1]}")
    with open(os.path.join(work, "report.json")) as f, open(os.path.join(work, "report1.json")) as g:
        same = json.load(f)["layers"] == json.load(g)["layers"]
    notes.append(f"reports of -j 1 and -j {jobs} identical: {same}")
    return {"rows": rows, "notes": notes}


def summarize(label: str, res: dict, nbytes: int, largest: int, jobs: int) -> dict:
    rows = res["rows"]
    check = rows[f"initcheck -j {jobs}"]
    floor = rows["floor"]
    naive = next(v for k, v in rows.items() if k.startswith("naive"))
    out = {
        "weight_bytes": nbytes,
        "throughput_GBps": {k: nbytes / v["wall"] / 1e9 for k, v in rows.items()},
        "check_throughput_vs_floor": floor["wall"] / check["wall"],
        "check_cpu_vs_floor_cpu": floor["cpu"] / check["cpu"],
        "check_vs_naive_wall": check["wall"] / naive["wall"],
        "check_vs_naive_cpu": check["cpu"] / naive["cpu"],
        "jobs_speedup": rows["initcheck -j 1"]["wall"] / check["wall"],
    }
    if "weightwatcher analyze()" in rows:
        ww = rows["weightwatcher analyze()"]
        out["check_vs_weightwatcher_wall"] = check["wall"] / ww["wall"]
        out["check_vs_weightwatcher_cpu"] = check["cpu"] / ww["cpu"]
    bound = largest / 2**20 + 300 * jobs
    out["peak_rss_mib"] = check["rss_mib"]
    out["rss_bound_mib"] = bound
    out["rss_within_bound"] = check["rss_mib"] <= bound
    print(f"\n{label}: {nbytes / 1e9:.2f} GB of weights, {jobs} CPUs")
    print(f"  {'command':28s} {'wall s':>8s} {'cpu s':>8s} {'peak MiB':>9s} {'GB/s':>7s}")
    for k, v in rows.items():
        print(f"  {k:28s} {v['wall']:8.2f} {v['cpu']:8.2f} {v['rss_mib']:9.0f} {nbytes / v['wall'] / 1e9:7.2f}")
    print(f"  check throughput / floor throughput: {out['check_throughput_vs_floor']:.3f} (cpu: "
          f"{out['check_cpu_vs_floor_cpu']:.3f})")
    print(f"  check / naive: {out['check_vs_naive_wall']:.3f}× wall, {out['check_vs_naive_cpu']:.3f}× cpu")
    if "check_vs_weightwatcher_wall" in out:
        print(f"  check / WeightWatcher analyze(): {out['check_vs_weightwatcher_wall']:.3f}× wall, "
              f"{out['check_vs_weightwatcher_cpu']:.3f}× cpu")
    print(f"  -j 1 → -j {jobs}: {out['jobs_speedup']:.2f}× faster")
    print(f"  peak RSS {check['rss_mib']:.0f} MiB; bound (largest tensor {largest / 2**20:.0f} MiB + 300 MiB × "
          f"{jobs}) {bound:.0f} MiB: {'held' if out['rss_within_bound'] else 'EXCEEDED'}")
    for n in res["notes"]:
        print(f"  {n}")
    return out


def startup(work: str, env: dict) -> dict:
    """``initcheck check tiny.safetensors`` against ``python -c 'import numpy'`` (best of 5 each)."""
    import numpy as np
    from safetensors.numpy import save_file

    tiny = os.path.join(work, "tiny.safetensors")
    save_file({"fc.weight": np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32) * 0.3}, tiny)
    out = {}
    for label, e in (("bytecode cached", env), ("as this environment is", dict(os.environ))):
        numpy = min(measure([sys.executable, "-c", "import numpy"], e)["wall"] for _ in range(5))
        check = min(measure([sys.executable, "-m", "initcheck", "check", tiny, "--no-progress"], e)["wall"]
                    for _ in range(5))
        print(f"start-up ({label}): check tiny.safetensors {check:.3f}s, import numpy {numpy:.3f}s: "
              f"{check / numpy:.2f}×", flush=True)
        out[label] = {"check_s": check, "import_numpy_s": numpy, "ratio": check / numpy}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="gpt2,7b")
    ap.add_argument("--data", default=os.environ.get("INITCHECK_BENCH_DATA", "/tmp/initcheck-bench"))
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs per command (best wall shown; WeightWatcher and the 7b naive script: 1)")
    ap.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--keep", action="store_true", help="keep the 7b checkpoint (it is deleted by default)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    models = args.models.split(",")
    removed = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "PYTHONDONTWRITEBYTECODE") if v in os.environ]
    if removed:
        print(f"note: {', '.join(removed)} removed from the children's environment")
    work = tempfile.mkdtemp(prefix="initcheck-speed-")
    results: dict = {"cpus": len(os.sched_getaffinity(0)), "jobs": args.jobs}
    try:
        results["startup"] = startup(work, child_env())
        if "gpt2" in models:
            paths = build_gpt2(args.data)
            nbytes, largest = weight_bytes(paths)
            res = run_model("gpt2", paths, paths[0], args.repeat, args.jobs, work, "load_file", True)
            results["gpt2"] = summarize("gpt2", res, nbytes, largest, args.jobs)
        if "7b" in models:
            from synthetic_llama import build

            folder = os.path.join(args.data, "llama7b")
            free = shutil.disk_usage(os.path.dirname(folder) or ".").free
            if not os.path.exists(os.path.join(folder, "model.safetensors.index.json")) and free < 16e9:
                raise SystemExit(f"7b needs ~14 GB free under {args.data}; {free / 1e9:.0f} GB free")
            t = time.perf_counter()
            names = build(folder)
            print(f"\n7b checkpoint ready in {time.perf_counter() - t:.0f}s: {folder}", flush=True)
            try:
                paths = [os.path.join(folder, n) for n in names]
                nbytes, largest = weight_bytes(paths)
                res = run_model("7b", paths, folder, args.repeat, args.jobs, work, "safe_open", False)
                results["7b"] = summarize("7b", res, nbytes, largest, args.jobs)
            finally:
                if not args.keep:
                    shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
