"""Mutation fuzzer for every input format initcheck reads.

    python tests/fuzz_formats.py --mutants 1500 --seed 1        # what `make fuzz` runs
    python tests/fuzz_formats.py --mutants 100 --seed 7 --json  # the short run of the test suite

Seeds (valid models, built here deterministically): safetensors (float32 and bfloat16), a sharded
safetensors directory with its index, a Hugging Face directory with pytorch_model.bin, torch zip
state_dict and checkpoint, legacy torch, TorchScript, .keras, full-model .h5 and .weights.h5.
Mutations: byte flips (biased to the headers), truncations, zeroed/0xFF ranges, insertions and deletions,
and format-aware header edits (safetensors JSON entries and lengths, zip central-directory sizes, offsets,
names and methods, duplicated members, Keras config edits, index edits).

Each mutant is checked by ``initcheck check MUTANT --format json`` run in-process (click's test runner)
inside a worker process; a worker that dies, hangs past the timeout or grows past the memory limit is
recorded and replaced. Every outcome must be one of: exit 0/1 with a JSON report, or exit 2 with exactly
one stderr line naming the file (not the "unexpected failure" catch-all). Every safetensors mutant that
initcheck accepts is read by the ``safetensors`` library too, which must accept it as well. A sample of
mutants is also run as real subprocesses (``python -m initcheck``), their peak RSS measured.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "hostile"))

TIMEOUT_S = 30
RSS_LIMIT_MIB = 1536  # growth of a worker's peak RSS during one mutant


# ----------------------------------------------------------------------------------------- seeds
def build_seeds(folder: str) -> dict[str, str]:
    """name → path of a valid model of each format (files, or directories for the multi-file formats)."""
    import numpy as np
    import torch
    from safetensors.numpy import save_file

    from build_corpus import _h5_model, keras_archive, keras_config, weights_h5

    rng = np.random.default_rng(0)
    state = {"fc1.weight": (rng.standard_normal((24, 12)) * 0.3).astype(np.float32),
             "fc1.bias": np.zeros(24, np.float32),
             "fc2.weight": (rng.standard_normal((6, 24)) * 0.2).astype(np.float32)}
    seeds: dict[str, str] = {}

    def path(name: str) -> str:
        seeds[name] = os.path.join(folder, name)
        return seeds[name]

    save_file(state, path("model.safetensors"), metadata={"format": "pt"})
    bf16 = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in state.items()}
    from safetensors.torch import save_file as save_torch

    save_torch(bf16, path("bf16.safetensors"))
    shards = path("sharded")
    os.makedirs(shards)
    save_file({"fc1.weight": state["fc1.weight"], "fc1.bias": state["fc1.bias"]},
              os.path.join(shards, "model-00001-of-00002.safetensors"))
    save_file({"fc2.weight": state["fc2.weight"]}, os.path.join(shards, "model-00002-of-00002.safetensors"))
    with open(os.path.join(shards, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": {
            "fc1.weight": "model-00001-of-00002.safetensors", "fc1.bias": "model-00001-of-00002.safetensors",
            "fc2.weight": "model-00002-of-00002.safetensors"}}, f)
    tstate = {k: torch.from_numpy(v) for k, v in state.items()}
    hf = path("hf_bin")
    os.makedirs(hf)
    torch.save(tstate, os.path.join(hf, "pytorch_model.bin"))
    torch.save(tstate, path("state_dict.pt"))
    torch.save({"model": {"state_dict": tstate}, "optimizer": {"lr": 0.1}, "epoch": 3}, path("checkpoint.pt"))
    torch.save(tstate, path("legacy.pt"), _use_new_zipfile_serialization=False)
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 3)), path("script.pt"))
    with open(path("model.keras"), "wb") as f:
        f.write(keras_archive([("config.json", keras_config(None))]))
    with open(path("model.h5"), "wb") as f:
        f.write(_h5_model(keras_config(None)))
    with open(path("model.weights.h5"), "wb") as f:
        f.write(weights_h5({"layers/dense/vars/0": state["fc1.weight"], "layers/dense/vars/1": state["fc1.bias"],
                            "layers/dense_1/vars/0": state["fc2.weight"].T.copy()}))
    return seeds


# ----------------------------------------------------------------------------------------- mutations
def flip(data: bytearray, rng: random.Random) -> str:
    head = rng.random() < 0.6
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(min(len(data), 4096) if head else len(data))
        data[i] ^= rng.randint(1, 255)
    return "flip"


def truncate(data: bytearray, rng: random.Random) -> str:
    del data[rng.randrange(len(data)):]
    return "truncate"


def fill(data: bytearray, rng: random.Random) -> str:
    i = rng.randrange(len(data))
    n = rng.randint(1, 64)
    data[i:i + n] = bytes([rng.choice((0, 0xFF))]) * len(data[i:i + n])
    return "fill"


def insert_delete(data: bytearray, rng: random.Random) -> str:
    i = rng.randrange(len(data))
    if rng.random() < 0.5:
        data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        return "insert"
    del data[i:i + rng.randint(1, 16)]
    return "delete"


GENERIC = (flip, flip, truncate, fill, insert_delete)


def safetensors_edit(data: bytearray, rng: random.Random) -> str:
    """Edit one thing in the JSON header and write it back (with the right length, or the old one)."""
    (n,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(bytes(data[8:8 + n]))
    except ValueError:
        return flip(data, rng)
    body = bytes(data[8 + n:])
    names = [k for k in header if k != "__metadata__"]
    name = rng.choice(names) if names else None
    kind = rng.choice(["offset", "shape", "dtype", "drop", "dup", "metadata", "extra", "swap", "length",
                       "float", "negative", "nested"])
    text = None
    if name is None:
        kind = "metadata"
    if kind == "offset":
        o = header[name]["data_offsets"]
        o[rng.randrange(2)] += rng.choice((-4, -2, -1, 1, 2, 4, 1 << 40))
    elif kind == "shape":
        s = header[name]["shape"]
        if s:
            s[rng.randrange(len(s))] = rng.choice((0, 1, 2, 3, 1 << 33, 1 << 62))
        else:
            s.append(2)
    elif kind == "dtype":
        header[name]["dtype"] = rng.choice(["F16", "BF16", "F64", "I8", "U8", "BOOL", "F8_E4M3", "X9", "f32", 7])
    elif kind == "drop":
        del header[name][rng.choice(["dtype", "shape", "data_offsets"])]
    elif kind == "dup":
        text = json.dumps(header)[:-1] + ", " + json.dumps({name: header[name]})[1:-1] + "}"
    elif kind == "metadata":
        header["__metadata__"] = rng.choice([5, [], ["a"], {"a": 1}, {"a": {"b": "c"}}, None, "x", {"k": "v"}])
    elif kind == "extra":
        header["zz.weight"] = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    elif kind == "swap" and len(names) > 1:
        a, b = rng.sample(names, 2)
        header[a]["data_offsets"], header[b]["data_offsets"] = header[b]["data_offsets"], header[a]["data_offsets"]
    elif kind == "float":
        header[name]["data_offsets"] = [float(x) for x in header[name]["data_offsets"]]
    elif kind == "negative":
        text = json.dumps(header).replace('"data_offsets": [0,', '"data_offsets": [-0,', 1)
    elif kind == "nested":
        text = json.dumps(header)[:-1] + ', "deep": ' + "[" * 5000 + "]" * 5000 + "}"
    raw = (text if text is not None else json.dumps(header)).encode()
    length = len(raw) if kind != "length" else len(raw) + rng.choice((-3, -1, 1, 5, 1 << 30))
    data[:] = struct.pack("<Q", max(length, 0)) + raw + body
    return f"header:{kind}"


def zip_edit(data: bytearray, rng: random.Random) -> str:
    """Edit one central-directory record: declared sizes, offset, method or a name byte."""
    starts = []
    at = data.find(b"PK\x01\x02")
    while at != -1:
        starts.append(at)
        at = data.find(b"PK\x01\x02", at + 4)
    if not starts:
        return flip(data, rng)
    at = rng.choice(starts)
    field, fmt = rng.choice([(24, "<I"), (20, "<I"), (42, "<I"), (10, "<H"), (46, "B"), (8, "<H")])
    value = rng.choice([0, 1, 8, 0xFFFF, 0xFFFFFFFF, 1 << 20, 12]) if fmt != "B" else rng.randrange(256)
    if fmt == "<H":
        value &= 0xFFFF
    if at + field + struct.calcsize(fmt) <= len(data):
        struct.pack_into(fmt, data, at + field, value)
    return f"zip:{field}"


def zip_member_edit(data: bytearray, rng: random.Random) -> str:
    """Rewrite the archive with one member duplicated, dropped, renamed or deflated."""
    try:
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
            members = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    except Exception:  # noqa: BLE001 - a seed that is no zip: fall back to a generic mutation
        return flip(data, rng)
    kind = rng.choice(["dup", "drop", "rename", "deflate", "config"])
    i = rng.randrange(len(members))
    if kind == "dup":
        members.insert(0, members[i])
    elif kind == "drop":
        del members[i]
    elif kind == "rename":
        members[i] = ("x/" + members[i][0], members[i][1])
    elif kind == "config":
        for j, (name, body) in enumerate(members):
            if name == "config.json":
                cfg = json.loads(body)
                edit = rng.choice(["lambda", "units", "drop_layers", "class", "deep"])
                if edit == "lambda":
                    cfg["config"]["layers"].append({"class_name": "Lambda", "config": {"name": "l"}})
                elif edit == "units":
                    cfg["config"]["layers"][-1]["config"]["units"] = rng.choice([0, -1, 1 << 31, "x"])
                elif edit == "drop_layers":
                    del cfg["config"]["layers"]
                elif edit == "class":
                    cfg["class_name"] = rng.choice(["Functional", "Nope", 5])
                body = json.dumps(cfg).encode() if edit != "deep" else b"[" * 100000 + b"]" * 100000
                members[j] = (name, body)
                kind = f"config:{edit}"
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if kind == "deflate" else zipfile.ZIP_STORED
    import warnings

    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", method) as z:
        warnings.simplefilter("ignore")  # duplicated members on purpose
        for name, body in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            with z.open(info, "w") as f:
                f.write(body)
    data[:] = buf.getvalue()
    return f"members:{kind}"


def index_edit(data: bytearray, rng: random.Random) -> str:
    try:
        doc = json.loads(bytes(data))
    except ValueError:
        return flip(data, rng)
    kind = rng.choice(["dotdot", "abs", "number", "missing", "list", "empty", "dup_shard", "deep"])
    wm = doc["weight_map"]
    key = rng.choice(list(wm))
    if kind == "dotdot":
        wm[key] = "../" + wm[key]
    elif kind == "abs":
        wm[key] = "/etc/passwd"
    elif kind == "number":
        wm[key] = 7
    elif kind == "missing":
        wm[key] = "model-00009-of-00009.safetensors"
    elif kind == "list":
        doc["weight_map"] = list(wm.items())
    elif kind == "empty":
        doc["weight_map"] = {}
    elif kind == "dup_shard":
        wm[key] = "./" + wm[key]
    text = json.dumps(doc)
    if kind == "deep":
        text = '{"weight_map": ' + "[" * 100000 + "]" * 100000 + "}"
    data[:] = text.encode()
    return f"index:{kind}"


# format → (file inside the seed to mutate (None: the seed itself), format-aware edits)
SEED_PLANS = {
    "model.safetensors": (None, (safetensors_edit, safetensors_edit, safetensors_edit)),
    "bf16.safetensors": (None, (safetensors_edit,)),
    "sharded": (("model.safetensors.index.json", "model-00001-of-00002.safetensors"), (index_edit,)),
    "hf_bin": ("pytorch_model.bin", (zip_edit, zip_member_edit)),
    "state_dict.pt": (None, (zip_edit, zip_member_edit)),
    "checkpoint.pt": (None, (zip_edit, zip_member_edit)),
    "legacy.pt": (None, ()),
    "script.pt": (None, (zip_edit, zip_member_edit)),
    "model.keras": (None, (zip_edit, zip_member_edit, zip_member_edit)),
    "model.h5": (None, ()),
    "model.weights.h5": (None, ()),
}


def make_mutant(seeds: dict[str, str], out: str, index: int, seed: int) -> dict:
    """Mutant number ``index``: a copy of one seed with one file mutated; returns its description."""
    rng = random.Random(seed * 1_000_003 + index)
    names = sorted(SEED_PLANS)
    name = names[index % len(names)]
    inner, edits = SEED_PLANS[name]
    src = seeds[name]
    dest = os.path.join(out, f"m{index:05d}-{name}")
    if os.path.isdir(src):
        shutil.copytree(src, dest)
        target = os.path.join(dest, rng.choice(inner) if isinstance(inner, tuple) else inner)
    else:
        shutil.copyfile(src, dest)
        target = dest
    with open(target, "rb") as f:
        data = bytearray(f.read())
    ops = GENERIC + tuple(edits) * 2
    if target.endswith(".index.json"):
        ops = (index_edit, index_edit, flip, truncate)
    elif target.endswith(".safetensors") and name == "sharded":
        ops = GENERIC + (safetensors_edit,)
    op = rng.choice(ops)
    what = op(data, rng) if data else "empty"
    with open(target, "wb") as f:
        f.write(data)
    return {"index": index, "seed_format": name, "mutation": what, "path": dest, "target": target,
            "safetensors": target.endswith(".safetensors")}


# ----------------------------------------------------------------------------------------- checking
def check_in_process(path: str) -> dict:
    """``initcheck check PATH --format json`` through click's runner: exit code, stderr lines, exception."""
    from click.testing import CliRunner

    from initcheck.cli import main

    result = CliRunner().invoke(main, [path, "--format", "json", "--no-progress"])
    exc = result.exception
    tb = None
    if exc is not None and not isinstance(exc, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-2000:]
    return {"rc": result.exit_code, "stderr": result.stderr, "traceback": tb}


def library_accepts(path: str) -> tuple[bool, str]:
    """Whether the ``safetensors`` library opens the file and reads every tensor."""
    try:
        from safetensors import safe_open

        with safe_open(path, framework="np") as f:
            for k in f.keys():
                f.get_tensor(k)
        return True, ""
    except Exception as e:  # noqa: BLE001 - the library's own error types vary
        msg = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        if "not understood" in msg or "data type" in msg.lower() or "bfloat16" in msg:
            return _header_only(path)
        return False, msg


def _header_only(path: str) -> tuple[bool, str]:
    """numpy cannot hold bfloat16/float8: then the library's header validation alone (torch framework)."""
    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            for k in f.keys():
                f.get_tensor(k)
        return True, ""
    except Exception as e:  # noqa: BLE001
        return False, str(e).splitlines()[0][:120] if str(e) else type(e).__name__


def classify(mutant: dict, outcome: dict) -> str:
    """ok-accepted, ok-refused, or the defect: traceback, catch-all, lines, rc, library."""
    rc, stderr = outcome["rc"], outcome.get("stderr", "")
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    if outcome.get("traceback"):
        return "traceback"
    if rc == 2:
        if len(lines) != 1:
            return "lines"
        if "unexpected failure" in lines[0]:
            return "catch-all"
        if not lines[0].startswith(f"initcheck: error: {mutant['path']}"):
            return "unnamed"
        return "ok-refused"
    if rc in (0, 1):
        if mutant["safetensors"] and not outcome.get("library_ok", True):
            return "library"
        return "ok-accepted"
    return "rc"


def _reason(stderr: str, path: str) -> str:
    """The refusal's reason with numbers and names blurred, to count kinds of messages."""
    import re

    line = stderr.strip().splitlines()[0]
    line = line.replace(f"initcheck: error: {path}", "")
    line = re.sub(r"'[^']*'|\([^)]*\)|\d+", "_", line)
    return line[:90]


def worker() -> None:
    """Read mutant JSON lines on stdin; answer each with a result line (peak RSS included)."""
    os.environ.setdefault("COLUMNS", "100")
    for line in sys.stdin:
        mutant = json.loads(line)
        before = _hwm_mib()
        outcome = check_in_process(mutant["path"])
        if mutant["safetensors"] and outcome["rc"] in (0, 1):
            outcome["library_ok"], outcome["library_error"] = library_accepts(mutant["target"])
        outcome["rss_growth_mib"] = _hwm_mib() - before
        sys.stdout.write(json.dumps(outcome) + "\n")
        sys.stdout.flush()


class Worker:
    """A worker process; restarted after it dies, hangs or blows up."""

    def __init__(self) -> None:
        self.proc = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                                     bufsize=1)

    def run(self, mutant: dict) -> dict:
        import selectors

        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(json.dumps(mutant) + "\n")
        self.proc.stdin.flush()
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        ready = sel.select(TIMEOUT_S + 60)  # generous: the first mutant of a worker imports the frameworks
        sel.close()
        if not ready:
            self.kill()
            return {"rc": None, "hang": True}
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            return {"rc": None, "crash": code}
        return json.loads(line)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def run_subprocess(mutant: dict) -> dict:
    """One mutant through ``python -m initcheck`` in a child: rc, stderr, peak RSS, time (run_corpus's
    measured runner: the child reports its own VmHWM)."""
    from run_corpus import run_measured

    r = run_measured([mutant["path"], "--format", "json", "--no-progress"], timeout=TIMEOUT_S + 90)
    return {"rc": r["rc"], "stderr": r["stderr"], "rss_mib": r["max_rss_kb"] / 1024, "seconds": r["seconds"],
            "hang": r["timed_out"] or r["cpu_seconds"] > TIMEOUT_S}


def _hwm_mib() -> float:
    """This process's peak RSS (VmHWM: reset at exec, unlike ru_maxrss, which starts at the parent's)."""
    with open("/proc/self/status") as f:
        return next((int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")), 0) / 1024


def fuzz(mutants: int, seed: int, subprocess_sample: int = 10, jobs: int = 2, keep: str | None = None) -> dict:
    """Run the campaign; returns the figures and every defect found."""
    from concurrent.futures import ThreadPoolExecutor

    work = keep or tempfile.mkdtemp(prefix="initcheck-fuzz-")
    os.makedirs(work, exist_ok=True)
    seeds_dir = os.path.join(work, "seeds")
    if os.path.exists(seeds_dir):
        shutil.rmtree(seeds_dir)
    os.makedirs(seeds_dir)
    seeds = build_seeds(seeds_dir)
    mdir = os.path.join(work, "mutants")
    shutil.rmtree(mdir, ignore_errors=True)
    os.makedirs(mdir)
    all_mutants = [make_mutant(seeds, mdir, i, seed) for i in range(mutants)]
    workers = [Worker() for _ in range(jobs)]
    counts: dict[str, int] = {}
    by_format: dict[str, dict[str, int]] = {}
    reasons: dict[str, int] = {}
    defects: list[dict] = []
    start = time.monotonic()

    def run_slice(w: int) -> list[tuple[dict, dict]]:
        out = []
        for m in all_mutants[w::jobs]:
            out.append((m, workers[w].run(m)))
        workers[w].kill()
        return out

    with ThreadPoolExecutor(jobs) as pool:
        pairs = [p for chunk in pool.map(run_slice, range(jobs)) for p in chunk]
    for m, o in pairs:
        if o.get("hang"):
            kind = "hang"
        elif o.get("crash") is not None:
            kind = "crash"
        elif o.get("rss_growth_mib", 0) > RSS_LIMIT_MIB:
            kind = "blow-up"
        else:
            kind = classify(m, o)
        counts[kind] = counts.get(kind, 0) + 1
        per = by_format.setdefault(m["seed_format"], {})
        per[kind] = per.get(kind, 0) + 1
        if kind == "ok-refused":
            reason = _reason(o["stderr"], m["path"])
            reasons[reason] = reasons.get(reason, 0) + 1
        if not kind.startswith("ok-"):
            defects.append({"kind": kind, **{k: m[k] for k in ("index", "seed_format", "mutation", "path")},
                            "stderr": (o.get("stderr") or "")[-600:], "traceback": o.get("traceback"),
                            "library_error": o.get("library_error")})
    rng = random.Random(seed)
    sample = rng.sample(all_mutants, min(subprocess_sample, len(all_mutants)))
    sub = [(m, run_subprocess(m)) for m in sample]
    for m, o in sub:
        kind = "hang" if o["hang"] else ("blow-up" if o["rss_mib"] > 1024 else classify(m, o))
        if not kind.startswith("ok-"):
            defects.append({"kind": f"subprocess-{kind}", "index": m["index"], "seed_format": m["seed_format"],
                            "mutation": m["mutation"], "path": m["path"], "stderr": o["stderr"][-600:]})
    figures = {
        "mutants": len(all_mutants), "seed_formats": len(seeds), "seed": seed,
        "accepted": counts.get("ok-accepted", 0), "refused_one_line": counts.get("ok-refused", 0),
        "tracebacks": counts.get("traceback", 0), "hangs": counts.get("hang", 0),
        "crashes": counts.get("crash", 0), "blow_ups": counts.get("blow-up", 0),
        "catch_alls": counts.get("catch-all", 0), "not_one_line": counts.get("lines", 0),
        "unnamed": counts.get("unnamed", 0), "bad_exit_codes": counts.get("rc", 0),
        "safetensors_accepted_library_rejects": counts.get("library", 0),
        "safetensors_mutants": sum(m["safetensors"] for m in all_mutants),
        "subprocess_sample": len(sub),
        "subprocess_max_rss_mib": round(max((o["rss_mib"] for _, o in sub), default=0), 1),
        "subprocess_max_seconds": round(max((o["seconds"] for _, o in sub), default=0), 1),
        "seconds": round(time.monotonic() - start, 1),
        "by_format": by_format,
        "refusal_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "defects": defects,
    }
    if keep is None and not defects:
        shutil.rmtree(work, ignore_errors=True)
    else:
        figures["work_dir"] = work
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--subprocess-sample", type=int, default=20)
    parser.add_argument("--keep", help="keep the seeds and mutants in this folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    figures = fuzz(args.mutants, args.seed, args.subprocess_sample, args.jobs, args.keep)
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for d in figures["defects"][:40]:
            print(f"{d['kind']:12s} #{d['index']} {d['seed_format']} {d['mutation']}: "
                  f"{(d.get('traceback') or d.get('stderr') or '').strip().splitlines()[-1:] }"[:300])
        print(json.dumps({k: v for k, v in figures.items() if k not in ("defects", "refusal_reasons")}, indent=1))
        print("refusals by reason:")
        for reason, n in figures["refusal_reasons"].items():
            print(f"  {n:5d} {reason}")
    bad = len(figures["defects"])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
