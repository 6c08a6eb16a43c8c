"""Run the CLI on every case of the hostile corpus, each in its own process, and measure what it did.

    python tests/hostile/run_corpus.py [OUT_DIR]     # builds the corpus (in a temp dir by default), prints figures

Per case: exit code, stderr lines, wall and CPU time, peak RSS of the child (its own VmHWM), whether
the sentinel was created, whether any file of the corpus or of ``outside/`` changed (content hash, size,
mode, mtime), and whether a file outside was read: every file in ``outside/`` has its access time set a
day before its modification time, so that any read updates it (relatime does so for atime < mtime); the
runner checks first that this filesystem really updates atime, and says so when it does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TIME_LIMIT_S = 30  # CPU seconds (user + system) per case: what the file makes initcheck do
HANG_LIMIT_S = 120  # wall clock: a child still running then is killed and counted as a hang
RSS_LIMIT_KB = 1024 * 1024


def snapshot(folder: str) -> dict[str, tuple]:
    """relative path → (kind, size, mode, mtime_ns, sha256) without following links or opening special files."""
    out: dict[str, tuple] = {}
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            full = os.path.join(base, name)
            st = os.lstat(full)
            digest = None
            if os.path.isfile(full) and not os.path.islink(full):
                with open(full, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(full, folder)] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


def arm_atime(paths: list[str]) -> bool:
    """Set each file's atime a day before its mtime; True if a read then visibly updates it here."""
    for p in paths:
        st = os.stat(p)
        os.utime(p, ns=(st.st_mtime_ns - 86400 * 10**9, st.st_mtime_ns))
    probe = paths[0] + ".atime-probe"
    with open(probe, "wb") as f:
        f.write(b"x")
    st = os.stat(probe)
    os.utime(probe, ns=(st.st_mtime_ns - 86400 * 10**9, st.st_mtime_ns))
    before = os.stat(probe).st_atime_ns
    with open(probe, "rb") as f:
        f.read()
    works = os.stat(probe).st_atime_ns != before
    os.unlink(probe)
    return works


def atimes(paths: list[str]) -> dict[str, int]:
    return {p: os.stat(p).st_atime_ns for p in paths}


# The child reports its own peak RSS: VmHWM of /proc/self/status, written at exit. ru_maxrss (from
# os.wait4 or getrusage) cannot be used: Linux starts a child's maxrss at its parent's RSS at fork/vfork
# time, so under a large parent (pytest) every child would "use" the parent's memory.
_MEASURED_MAIN = """
import atexit, os, runpy, sys

def _report():
    with open('/proc/self/status') as s, open(os.environ['INITCHECK_HWM_FILE'], 'w') as out:
        out.write(next((ln.split()[1] for ln in s if ln.startswith('VmHWM:')), '0'))

atexit.register(_report)
sys.argv = ['initcheck', *sys.argv[1:]]
runpy.run_module('initcheck', run_name='__main__', alter_sys=True)
"""


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")), 0)
    except (OSError, ValueError):
        return 0


def run_measured(args: list[str], cwd: str | None = None, timeout: float = HANG_LIMIT_S) -> dict:
    """``python -m initcheck ARGS`` in a child: exit code, stderr, wall time, peak RSS (KiB), timed out."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), COLUMNS="100")
    env.pop("INITCHECK_DEBUG", None)
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r", suffix=".hwm") as hwm:
        env["INITCHECK_HWM_FILE"] = hwm.name
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", _MEASURED_MAIN, *args], stdout=subprocess.DEVNULL,
                                stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        timed_out = False
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _hwm_kb(proc.pid))  # a fallback for a child killed before it reports
            if time.monotonic() - start > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - start
        hwm.seek(0)
        reported = hwm.read().strip()
        peak = max(peak, int(reported) if reported.isdigit() else 0)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    return {"rc": proc.returncode, "stderr": stderr, "lines": stderr.strip().splitlines(), "seconds": elapsed,
            "cpu_seconds": usage.ru_utime + usage.ru_stime, "max_rss_kb": peak, "timed_out": timed_out}


def run_one(out: str, case: dict, extra: list[str] | None = None) -> dict:
    """Run ``python -m initcheck CASE --no-progress`` in a child; measure it (see the module docstring)."""
    path = os.path.join(out, case["path"])
    result = run_measured([path, "--no-progress", *(extra or [])], cwd=out)
    return {"name": case["name"], "path": path, **result}


def judge(result: dict, case: dict, out: str) -> list[str]:
    """What is wrong with one run (empty: it passed)."""
    problems = []
    if result["timed_out"]:
        problems.append(f"still running after {HANG_LIMIT_S} s: a hang")
    if result["cpu_seconds"] > TIME_LIMIT_S:
        problems.append(f"{result['cpu_seconds']:.1f} CPU seconds")
    if result["rc"] != 2:
        problems.append(f"exit {result['rc']}, expected 2")
    if len(result["lines"]) != 1:
        problems.append(f"{len(result['lines'])} stderr lines, expected 1: {result['stderr'][:500]!r}")
    else:
        line = result["lines"][0]
        if not line.startswith(f"initcheck: error: {result['path']}"):
            problems.append(f"the line does not name the file first: {line!r}")
        if "unexpected failure" in line or "Traceback" in line:
            problems.append(f"a catch-all, not a diagnosis: {line!r}")
        if not any(w.lower() in line.lower() for w in case["words"]):
            problems.append(f"none of {case['words']} in {line!r}")
    if result["max_rss_kb"] > RSS_LIMIT_KB:
        problems.append(f"peak RSS {result['max_rss_kb'] // 1024} MiB")
    if os.path.exists(os.path.join(out, "SENTINEL")):
        problems.append("THE PAYLOAD RAN: the sentinel exists")
    return problems


def run_all(out: str, jobs: int = 2) -> dict:
    """Every case; returns the figures and the per-case problems."""
    from concurrent.futures import ThreadPoolExecutor

    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    outside = [os.path.join(out, p) for p in manifest["outside"]]
    atime_works = arm_atime(outside)
    before_corpus = snapshot(os.path.join(out, "corpus"))
    before_outside = snapshot(os.path.join(out, "outside"))
    before_atime = atimes(outside)
    cases = manifest["cases"]
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda c: run_one(out, c), cases))
    problems = {r["name"]: judge(r, c, out) for r, c in zip(results, cases)}
    changed = sorted(k for k, v in snapshot(os.path.join(out, "corpus")).items() if before_corpus.get(k) != v)
    changed += sorted(k for k in set(before_corpus) - set(snapshot(os.path.join(out, "corpus"))))
    outside_changed = snapshot(os.path.join(out, "outside")) != before_outside
    read_outside = [p for p, t in atimes(outside).items() if t != before_atime[p]]
    return {
        "cases": len(cases),
        "payload_cases": sum(1 for c in cases if c["name"].startswith("payload")),
        "payloads_run": int(os.path.exists(os.path.join(out, "SENTINEL"))),  # every payload writes the one sentinel
        "sentinel_touched": os.path.exists(os.path.join(out, "SENTINEL")),
        "inputs_changed": changed + (["outside/"] if outside_changed else []),
        "outside_read": read_outside,
        "atime_observable": atime_works,
        "max_rss_mib": max(r["max_rss_kb"] for r in results) / 1024,
        "max_seconds": max(r["seconds"] for r in results),
        "max_cpu_seconds": max(r["cpu_seconds"] for r in results),
        "one_line_refusals": sum(1 for r in results if r["rc"] == 2 and len(r["lines"]) == 1),
        "problems": {k: v for k, v in problems.items() if v},
        "results": results,
    }


def main() -> None:
    sys.path.insert(0, HERE)
    from build_corpus import build

    out = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="initcheck-hostile-")
    if not os.path.exists(os.path.join(out, "manifest.json")):
        build(out)
    figures = run_all(out)
    for r in figures["results"]:
        print(f"{r['name']:34s} rc={r['rc']} {r['seconds']:5.1f}s ({r['cpu_seconds']:4.1f} cpu) "
              f"{r['max_rss_kb'] // 1024:5d} MiB  "
              f"{r['lines'][0] if r['lines'] else '(no stderr)'}"[:220])
    print(json.dumps({k: v for k, v in figures.items() if k != "results"}, indent=1))
    sys.exit(1 if figures["problems"] or figures["sentinel_touched"] or figures["inputs_changed"]
             or figures["outside_read"] else 0)


if __name__ == "__main__":
    main()
