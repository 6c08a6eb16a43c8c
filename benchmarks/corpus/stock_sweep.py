"""Stock sweep: every zoo model checked with its own library's init, in memory and as a tensor-only file,
plus faults planted on one mid-network weight matrix (evidence for issue 9).

For each model of :mod:`benchmarks.zoo`:

1. ``initcheck.check(model)`` in memory, and ``initcheck.check(file)`` on a tensor-only export (torch:
   ``safetensors.torch.save_model``, which drops tied duplicates like ``save_pretrained``; Keras:
   ``model.save_weights(*.weights.h5)``). Every finding at warning or error is kept (rule, layer, message):
   on a stock init each one is a false alarm unless the init is genuinely harmful.
2. One weight matrix in the middle of the network (the middle one, in report order, of the weight matrices
   with at least 1,024 values) gets each planted fault in turn: ×10, zeros, one NaN. Each faulty model is
   checked in memory and exported and checked tensor-only; detected means a finding at warning or above
   names exactly that layer. The weight is restored after each fault.

Resumable: one JSON line per model in ``OUT/results.jsonl``; models already there are skipped (``--fresh``
starts over). Models run in worker subprocesses, each model under a time limit, so one model that hangs or
crashes is recorded as failed and the sweep goes on. ``OUT/summary.json`` and ``OUT/summary.md`` are
rewritten at the end (``--summarize`` only rewrites them).

    python benchmarks/corpus/stock_sweep.py --out bench-out/sweep            # all (make sweep)
    python benchmarks/corpus/stock_sweep.py --sample 10 --seed 0 --framework torch
    python benchmarks/corpus/stock_sweep.py --models timm/resnet18,keras_hub/vit
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LOUD = ("warning", "error")
FAULTS = ("x10", "zeros", "nan")
FORMATS = ("memory", "tensor_only")
MIN_TARGET_SIZE = 1024  # a planted fault goes on a real weight matrix, not a 3x3 stem of 81 values


# ----------------------------------------------------------------------------------------- one model
class ModelTimeout(Exception):
    """The model ran past its time limit."""


def _alarm(signum, frame):
    raise ModelTimeout("time limit")


def loud_findings(report) -> list[dict[str, Any]]:
    return [{"rule": f.rule, "severity": f.severity, "layer": f.layer, "message": f.message}
            for f in report.findings if f.severity in LOUD]


def flagged_layers(report) -> set[str]:
    return {f.layer for f in report.findings if f.severity in LOUD and f.layer}


# layer kinds whose weight is a weight matrix (not a position table, embedding or free parameter, whose
# correct init may be zeros or N(0, 1))
TARGET_KINDS = ("conv", "depthwise_conv", "conv_transpose", "linear", "attention", "bilinear", "lstm", "gru", "rnn")


def choose_target(report):
    """The middle weight matrix (report order) of those with at least MIN_TARGET_SIZE values."""
    import hashlib

    candidates = [layer for layer in report.model.layers
                  if layer.is_matrix and layer.kind.startswith(TARGET_KINDS)
                  and layer.weight.tensor.size >= MIN_TARGET_SIZE and layer.weight.native is not None]
    # a tensor bit-identical to another (keras_hub seeds q, k, v alike) cannot be told apart in the file
    digests = [hashlib.sha1(layer.weight.tensor.numpy().tobytes()).digest() for layer in candidates]
    candidates = [layer for layer, d in zip(candidates, digests) if digests.count(d) == 1]
    return candidates[len(candidates) // 2] if candidates else None


def plant(values, fault: str):
    """The faulty copy of a numpy array: ×10, all zeros, or one NaN in the first element."""
    import numpy as np

    out = np.array(values, dtype=np.float32, order="C", copy=True)  # reshape(-1) must be a view
    if fault == "x10":
        out *= 10.0
    elif fault == "zeros":
        out[...] = 0.0
    elif fault == "nan":
        out.reshape(-1)[0] = np.nan
    else:
        raise ValueError(fault)
    return out


class Framework:
    """Export to a tensor-only file and read/write one weight, per framework."""

    def __init__(self, name: str):
        self.name = name

    def export(self, model, directory: str) -> str:
        if self.name == "torch":
            from safetensors.torch import save_model

            path = os.path.join(directory, "model.safetensors")
            save_model(model, path)
        else:
            path = os.path.join(directory, "model.weights.h5")
            model.save_weights(path)
        return path

    def read(self, native):
        import numpy as np

        if self.name == "torch":
            return native.detach().cpu().float().numpy().copy()
        return np.array(native.numpy(), copy=True)

    def write(self, native, values) -> None:
        if self.name == "torch":
            import torch

            with torch.no_grad():
                native.copy_(torch.from_numpy(values).to(native.dtype))
        else:
            native.assign(values.astype(native.dtype if isinstance(native.dtype, str) else "float32"))


def file_layer_name(file_report, target, values) -> str | None:
    """The target's layer name in the tensor-only file: the layer holding exactly its values (same name first;
    Keras names in a ``.weights.h5`` need not be the in-memory ones). None when no single layer does."""
    import numpy as np

    def holds(layer) -> bool:
        if layer.weight.tensor.size != values.size:
            return False
        got = np.asarray(layer.weight.tensor.numpy(), dtype=np.float32).reshape(values.shape)
        return bool(np.array_equal(got, values))

    layers = file_report.model.layers
    same_name = [layer for layer in layers if layer.name == target.name and holds(layer)]
    if same_name:
        return target.name
    holders = [layer.name for layer in layers if holds(layer)]
    return holders[0] if len(holders) == 1 else None


def run_model(entry, timeout: int) -> dict[str, Any]:
    """Every check of one zoo entry; the record written to results.jsonl."""
    import initcheck

    record: dict[str, Any] = {"name": entry.name, "framework": entry.framework, "library": entry.library}
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    t0 = time.time()
    try:
        if entry.framework == "keras":
            import keras

            keras.backend.clear_session()
        model = entry.build()
        record["build_s"] = round(time.time() - t0, 2)
        fw = Framework(entry.framework)
        kwargs = {"input_shape": entry.input_shape} if entry.input_shape else {}
        with tempfile.TemporaryDirectory(prefix="initcheck-sweep-") as tmp:
            mem = initcheck.check(model, **kwargs)
            record["parameters"] = mem.summary()["parameters"]
            record["layers"] = mem.summary()["layers"]
            record["memory"] = loud_findings(mem)
            clean_path = fw.export(model, tmp)
            tensor_only = initcheck.check(clean_path)
            record["tensor_only"] = loud_findings(tensor_only)
            target = choose_target(mem)
            if target is None:
                record["target"] = None
            else:
                original = fw.read(target.weight.native)
                record["target"] = {"layer": target.name, "shape": list(original.shape),
                                    "file_layer": file_layer_name(tensor_only, target, original)}
                record["faults"] = {}
                for fault in FAULTS:
                    fw.write(target.weight.native, plant(original, fault))
                    try:
                        got = {"memory": target.name in flagged_layers(initcheck.check(model, **kwargs))}
                        fault_dir = os.path.join(tmp, fault)
                        os.mkdir(fault_dir)
                        path = fw.export(model, fault_dir)
                        file_name = record["target"]["file_layer"]
                        got["tensor_only"] = file_name is not None and file_name in flagged_layers(initcheck.check(path))
                    finally:
                        fw.write(target.weight.native, original)
                    record["faults"][fault] = got
        record["ok"] = True
    except ModelTimeout:
        record.update(ok=False, error=f"timeout after {timeout}s")
    except Exception as exc:  # noqa: BLE001 - one model's failure is recorded and the sweep goes on
        record.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:500],
                      traceback=traceback.format_exc()[-2000:])
    finally:
        signal.alarm(0)
    record["seconds"] = round(time.time() - t0, 2)
    return record


def worker(names: list[str], results: Path, timeout: int) -> None:
    """Run ``names`` one after the other, appending one line per model to ``results``."""
    import warnings

    warnings.filterwarnings("ignore")
    from benchmarks import zoo

    for name in names:
        record = run_model(zoo.get(name), timeout)
        with open(results, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        print(f"{name}: {'ok' if record['ok'] else record['error'][:120]} ({record['seconds']}s)", flush=True)


# ------------------------------------------------------------------------------------------- the parent
def done_names(results: Path) -> set[str]:
    if not results.exists():
        return set()
    return {json.loads(line)["name"] for line in results.read_text().splitlines() if line.strip()}


def run_chunk(names: list[str], out: Path, timeout: int, log) -> None:
    """A worker over ``names``; when it dies, the model it was on is recorded failed and the rest go on."""
    results = out / "results.jsonl"
    remaining = list(names)
    while remaining:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--out", str(out),
               "--timeout", str(timeout), "--models", ",".join(remaining)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                  timeout=timeout * len(remaining) + 120)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = "hard timeout"
        finished = done_names(results)
        left = [n for n in remaining if n not in finished]
        if left and left == remaining or (left and code != 0):
            crashed = left[0]
            with open(results, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"name": crashed, "ok": False, "error": f"worker died ({code})"}) + "\n")
            left = left[1:]
        remaining = left


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "sweep"))
    ap.add_argument("--framework", choices=("torch", "keras"))
    ap.add_argument("--library")
    ap.add_argument("--models", help="comma-separated zoo names")
    ap.add_argument("--sample", type=int, help="a seeded sample of this many models")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes at once")
    ap.add_argument("--chunk", type=int, default=12, help="models per worker process")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per model")
    ap.add_argument("--fresh", action="store_true", help="forget earlier results in --out")
    ap.add_argument("--summarize", action="store_true", help="only rewrite the summaries")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    if args.worker:
        worker(args.models.split(","), results, args.timeout)
        return 0
    if not args.summarize:
        from benchmarks import zoo

        if args.models:
            names = args.models.split(",")
        elif args.sample:
            names = [e.name for e in zoo.sample(args.sample, args.seed, args.framework, args.library)]
        else:
            names = [e.name for e in zoo.entries(args.framework, args.library)]
        if args.fresh and results.exists():
            results.unlink()
        todo = interleave([n for n in names if n not in done_names(results)])
        print(f"{len(names)} models, {len(todo)} to run, {args.jobs} workers -> {out}", flush=True)
        chunks = [todo[i:i + args.chunk] for i in range(0, len(todo), args.chunk)]
        run_parallel(chunks, out, args.timeout, args.jobs)
    write_summaries(out)
    print(f"summary: {out / 'summary.md'}")
    return 0


def interleave(names: list[str]) -> list[str]:
    """Round-robin over libraries, so a partial sweep already covers every library."""
    by_library: dict[str, list[str]] = defaultdict(list)
    for name in names:
        by_library[name.split("/")[0]].append(name)
    queues = [by_library[k] for k in sorted(by_library)]
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


def run_parallel(chunks: list[list[str]], out: Path, timeout: int, jobs: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with open(out / "worker.log", "a", encoding="utf-8") as log, ThreadPoolExecutor(max(1, jobs)) as pool:
        list(pool.map(lambda chunk: run_chunk(chunk, out, timeout, log), chunks))


# -------------------------------------------------------------------------------------------- summaries
def load_records(out: Path) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    path = out / "results.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.strip():
            record = json.loads(line)
            latest[record["name"]] = record
    return sorted(latest.values(), key=lambda r: r["name"])


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in records if r.get("ok")]
    per_library = Counter(r.get("library", r["name"].split("/")[0]) for r in ok)
    per_framework = Counter(r.get("framework") for r in ok)
    stock: dict[str, Any] = {}
    for fmt in FORMATS:
        counts = Counter()
        per_rule: dict[str, Counter] = defaultdict(Counter)
        models_with = Counter()
        for r in ok:
            sev = Counter(f["severity"] for f in r[fmt])
            for s in LOUD:
                counts[s] += sev[s]
                models_with[s] += bool(sev[s])
            for f in r[fmt]:
                per_rule[f["rule"]][f["severity"]] += 1
        stock[fmt] = {"errors": counts["error"], "warnings": counts["warning"],
                      "models_with_errors": models_with["error"], "models_with_warnings": models_with["warning"],
                      "per_rule": {k: dict(v) for k, v in sorted(per_rule.items())}}
    detection: dict[str, Any] = {}
    planted = [r for r in ok if r.get("faults")]
    unlocated = [r["name"] for r in planted if r["target"].get("file_layer") is None]
    for fault in FAULTS:
        for fmt in FORMATS:
            # tensor-only: a target no single layer of the file holds (two bit-identical tensors) is left out
            pool = [r for r in planted if fmt == "memory" or r["name"] not in unlocated]
            hits = [r["name"] for r in pool if r["faults"][fault][fmt]]
            misses = [f"{r['name']} ({r['target']['layer']})" for r in pool if not r["faults"][fault][fmt]]
            detection[f"{fault}/{fmt}"] = {"found": len(hits), "of": len(pool),
                                           "rate": round(len(hits) / len(pool), 4) if pool else None,
                                           "missed": misses}
    return {"models_ok": len(ok), "models_failed": [{"name": r["name"], "error": r.get("error")}
                                                    for r in records if not r.get("ok")],
            "per_framework": dict(per_framework), "per_library": dict(per_library),
            "no_target": [r["name"] for r in ok if not r.get("target")],
            "target_not_located_in_file": unlocated,
            "stock": stock, "detection": detection}


def markdown(records: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = ["# Stock sweep", "", f"Models checked: {summary['models_ok']} "
             f"({', '.join(f'{k} {v}' for k, v in sorted(summary['per_library'].items()))}); "
             f"failed to build/check: {len(summary['models_failed'])}", ""]
    lines += ["## Stock init: findings at warning/error", "", "| format | errors | warnings | models with errors | models with warnings |",
              "|---|---|---|---|---|"]
    for fmt in FORMATS:
        s = summary["stock"][fmt]
        lines.append(f"| {fmt} | {s['errors']} | {s['warnings']} | {s['models_with_errors']} | {s['models_with_warnings']} |")
    lines += ["", "Per rule (count of findings):", ""]
    for fmt in FORMATS:
        lines.append(f"- {fmt}: " + (", ".join(f"{rule} {dict(c)}" for rule, c in summary["stock"][fmt]["per_rule"].items()) or "none"))
    lines += ["", "## Planted faults on one mid-network matrix (found at warning+ on that exact layer)", "",
              "| fault | in memory | tensor-only |", "|---|---|---|"]
    for fault in FAULTS:
        cells = []
        for fmt in FORMATS:
            d = summary["detection"][f"{fault}/{fmt}"]
            cells.append(f"{d['found']}/{d['of']} ({100 * (d['rate'] or 0):.1f} %)")
        lines.append(f"| {fault} | {cells[0]} | {cells[1]} |")
    if summary["target_not_located_in_file"]:
        lines += ["", "Left out of tensor-only rates (no single layer of the file holds the target's values): "
                  + ", ".join(summary["target_not_located_in_file"])]
    if summary["no_target"]:
        lines += ["", "No weight matrix of >= 1,024 values (no fault planted): " + ", ".join(summary["no_target"])]
    lines += ["", "Missed (model and target layer):", ""]
    for key, d in summary["detection"].items():
        if d["missed"]:
            lines.append(f"- {key}: {', '.join(d['missed'])}")
    lines += ["", "## Stock-init findings by rule and model (count, first example)", ""]
    grouped: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        for fmt in FORMATS if r.get("ok") else ():
            for f in r[fmt]:
                grouped[f["rule"]][r["name"]].append((fmt, f))
    for rule in sorted(grouped):
        total = sum(len(v) for v in grouped[rule].values())
        lines.append(f"### {rule}: {total} findings in {len(grouped[rule])} models")
        for name, items in sorted(grouped[rule].items()):
            fmts = Counter(fmt for fmt, _ in items)
            fmt0, f0 = items[0]
            lines.append(f"- {name} ({', '.join(f'{k} {v}' for k, v in sorted(fmts.items()))}): {f0['severity']} "
                         f"`{f0['layer']}` [{fmt0}]: {f0['message']}")
        lines.append("")
    lines += ["", "## Every finding at warning/error on stock init", ""]
    for r in records:
        if not r.get("ok"):
            continue
        for fmt in FORMATS:
            for f in r[fmt]:
                lines.append(f"- {r['name']} [{fmt}] {f['severity']} {f['rule']} `{f['layer']}`: {f['message']}")
    if summary["models_failed"]:
        lines += ["", "## Failed models", ""] + [f"- {m['name']}: {m['error']}" for m in summary["models_failed"]]
    return "\n".join(lines) + "\n"


def write_summaries(out: Path) -> dict[str, Any]:
    records = load_records(out)
    summary = summarize(records)
    for name, text in (("summary.json", json.dumps(summary, indent=1)), ("summary.md", markdown(records, summary))):
        tmp = out / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)
    return summary


if __name__ == "__main__":
    sys.exit(main())
