"""Build the hostile corpus: payloads, bombs, path escapes, special files and malformed headers.

    python tests/hostile/build_corpus.py OUT_DIR      # writes OUT_DIR/corpus/..., OUT_DIR/manifest.json

Layout: ``OUT/corpus/<case>`` (a file or a model directory) for every case, ``OUT/outside/`` with files
that no case may read (``secret.safetensors``, ``secret.bin``), and ``OUT/SENTINEL``, the file every
payload creates if it is ever executed (it must never exist). ``manifest.json`` lists each case: its path
(relative to OUT), what it is, and words one of which the one-line refusal must contain.

Every payload is real — executed by the loader that would run it (``torch.load(weights_only=False)``,
Keras with ``safe_mode=False``) it creates the sentinel — and every file is under 20 MB; the bombs
declare gigabytes. Built with numpy, h5py, safetensors and torch only (no Keras or TensorFlow import:
the Keras archives are written from their documented layout), deterministically.
"""

from __future__ import annotations

import base64
import io
import json
import marshal
import os
import pickle
import struct
import sys
import zipfile
import zlib

import numpy as np

GIB = 1 << 30


# ----------------------------------------------------------------------------------------- helpers
class Payload:
    """Unpickling this calls ``exec`` with code that creates the sentinel file."""

    def __init__(self, sentinel: str):
        self.sentinel = sentinel

    def __reduce__(self):
        return (exec, (f"open({self.sentinel!r}, 'w').close()",))


def st_bytes(tensors: dict[str, np.ndarray], header_edit=None) -> bytes:
    """A safetensors file; ``header_edit(header_dict) -> bytes`` may replace the header JSON."""
    from safetensors.numpy import save

    good = save(tensors)
    (n,) = struct.unpack("<Q", good[:8])
    if header_edit is None:
        return good
    raw = header_edit(json.loads(good[8:8 + n]), good[8 + n:])
    if isinstance(raw, tuple):
        raw, data = raw
    else:
        data = good[8 + n:]
    return struct.pack("<Q", len(raw)) + raw + data


def small_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"fc1.weight": (rng.standard_normal((32, 16)) * 0.25).astype(np.float32),
            "fc1.bias": np.zeros(32, np.float32),
            "fc2.weight": (rng.standard_normal((8, 32)) * 0.18).astype(np.float32)}


def zeros_deflate(total: int, block: int = 64 << 20) -> tuple[bytes, int]:
    """A raw deflate stream of ``total`` zero bytes (a multiple of ``block``) and its CRC-32, built from one
    fully flushed compressed block repeated (no back-references cross a full flush), so that gigabytes
    cost a second."""
    assert total % block == 0
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = c.compress(bytes(block)) + c.flush(zlib.Z_FULL_FLUSH)
    stream = chunk * (total // block) + b"\x03\x00"  # then an empty final block
    crc = 0
    zeros = bytes(block)
    for _ in range(total // block):
        crc = zlib.crc32(zeros, crc)
    return stream, crc


def raw_zip(members: list[tuple[str, bytes, int, int, int]], flags: int = 0) -> bytes:
    """A zip written by hand: (name, stored bytes, method, declared inflated size, crc) per member, so
    that sizes and names can be anything (zipfile would not write a lie). No zip64: sizes < 4 GiB."""
    out = io.BytesIO()
    central = []
    for name, data, method, size, crc in members:
        nb = name.encode("utf-8") if isinstance(name, str) else name
        offset = out.tell()
        out.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, len(data),
                              size, len(nb), 0) + nb + data)
        central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, flags, method, 0, 0x21, crc,
                                   len(data), size, len(nb), 0, 0, 0, 0, 0, offset) + nb)
    cd_start = out.tell()
    for c in central:
        out.write(c)
    cd_size = out.tell() - cd_start
    out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(central), len(central), cd_size, cd_start, 0))
    return out.getvalue()


def stored(name: str, data: bytes) -> tuple[str, bytes, int, int, int]:
    return (name, data, 0, len(data), zlib.crc32(data))


# ----------------------------------------------------------------------------------------- Keras layout
def keras_config(with_lambda_code: str | None) -> dict:
    """A Keras 3 Sequential config: Input(4) → [Lambda] → Dense(3), as ``model.save`` writes it."""
    dtype = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
    layers = [{"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
               "config": {"batch_shape": [None, 4], "dtype": "float32", "sparse": False, "ragged": False,
                          "name": "input_layer", "optional": False}}]
    if with_lambda_code is not None:
        layers.append({"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                       "build_config": {"input_shape": [None, 4]},
                       "config": {"name": "lambda", "trainable": True, "dtype": dtype, "arguments": {},
                                  "function": {"class_name": "__lambda__",
                                               "config": {"code": with_lambda_code, "defaults": None,
                                                          "closure": None}}}})
    layers.append({"module": "keras.layers", "class_name": "Dense", "registered_name": None,
                   "build_config": {"input_shape": [None, 4]},
                   "config": {"name": "dense", "trainable": True, "dtype": dtype, "units": 3,
                              "activation": "linear", "use_bias": True,
                              "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                                     "config": {"seed": None}, "registered_name": None},
                              "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros",
                                                   "config": {}, "registered_name": None},
                              "kernel_regularizer": None, "bias_regularizer": None, "kernel_constraint": None,
                              "bias_constraint": None}})
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": "sequential", "trainable": True, "dtype": dtype, "layers": layers,
                       "build_input_shape": [None, 4]},
            "build_config": {"input_shape": [None, 4]}, "compile_config": {}}


def lambda_code(sentinel: str) -> str:
    """Keras' serialization of a Python lambda (marshal of its code object, base64): this one creates
    the sentinel and passes its input through."""
    fn = eval(f"lambda x: (open({sentinel!r}, 'w').close(), x)[1]")
    return base64.encodebytes(marshal.dumps(fn.__code__)).decode("ascii")


def weights_h5(datasets: dict[str, np.ndarray] | None = None, forge=None) -> bytes:
    """A Keras 3 ``model.weights.h5`` (``layers/<name>/vars/<i>``); ``forge(h5file)`` may add datasets."""
    import h5py

    buf = io.BytesIO()
    rng = np.random.default_rng(1)
    datasets = datasets if datasets is not None else {
        "layers/dense/vars/0": (rng.standard_normal((4, 3)) * 0.6).astype(np.float32),
        "layers/dense/vars/1": np.zeros(3, np.float32)}
    with h5py.File(buf, "w") as f:
        for name, value in datasets.items():
            f.create_dataset(name, data=value)
        if forge is not None:
            forge(f)
    return buf.getvalue()


def keras_archive(configs: list[tuple[str, dict]], weights: bytes | None = None) -> bytes:
    members = [stored("metadata.json", json.dumps({"keras_version": "3.15.1", "date_saved": "2026-01-01@00:00:00"})
                      .encode())]
    members += [stored(name, json.dumps(cfg).encode()) for name, cfg in configs]
    members.append(stored("model.weights.h5", weights if weights is not None else weights_h5()))
    return raw_zip(members)


# ----------------------------------------------------------------------------------------- torch files
def torch_file(obj, legacy: bool = False) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def torch_state(seed: int = 0) -> dict:
    import torch

    return {k: torch.from_numpy(v) for k, v in small_tensors(seed).items()}


def torch_zip_with_datapkl(data_pkl: tuple[str, bytes, int, int, int]) -> bytes:
    """A torch zip whose data.pkl member is replaced; the other members are torch's own."""
    good = torch_file(torch_state())
    members = []
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        for info in z.infolist():
            if info.filename.endswith("/data.pkl"):
                members.append((info.filename,) + data_pkl[1:])
            else:
                members.append(stored(info.filename, z.read(info.filename)))
    return raw_zip(members)


def patch_central_size(data: bytes, member_suffix: bytes, new_size: int) -> bytes:
    """Rewrite the inflated size a zip's central directory declares for one member."""
    buf = bytearray(data)
    at = buf.find(b"PK\x01\x02")
    while at != -1:
        name_len = struct.unpack_from("<H", buf, at + 28)[0]
        name = bytes(buf[at + 46: at + 46 + name_len])
        if name.endswith(member_suffix):
            struct.pack_into("<I", buf, at + 24, new_size)
            return bytes(buf)
        at = buf.find(b"PK\x01\x02", at + 4)
    raise ValueError("member not found")


# ----------------------------------------------------------------------------------------- the cases
def build(out: str) -> list[dict]:
    corpus = os.path.join(out, "corpus")
    outside = os.path.join(out, "outside")
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(outside, exist_ok=True)
    sentinel = os.path.join(out, "SENTINEL")
    secret_st = os.path.join(outside, "secret.safetensors")
    secret_bin = os.path.join(outside, "secret.bin")
    with open(secret_st, "wb") as f:
        f.write(st_bytes(small_tensors(7)))
    with open(secret_bin, "wb") as f:
        f.write(torch_file(torch_state(7)))
    cases: list[dict] = []

    def add(name: str, what: str, words: list[str], data: bytes | None = None, files: dict | None = None,
            links: dict | None = None, fifos: list[str] | None = None) -> None:
        """A file case (``data``) or a directory case (``files``: name → bytes, ``links``: name → target,
        ``fifos``: names)."""
        path = os.path.join(corpus, name)
        if data is not None:
            with open(path, "wb") as f:
                f.write(data)
        else:
            os.makedirs(path, exist_ok=True)
            for fname, content in (files or {}).items():
                with open(os.path.join(path, fname), "wb") as f:
                    f.write(content)
            for fname, target in (links or {}).items():
                os.symlink(target, os.path.join(path, fname))
            for fname in fifos or []:
                os.mkfifo(os.path.join(path, fname))
        cases.append({"name": name, "path": os.path.relpath(path, out), "what": what, "words": words})

    # --- payloads: each would create the sentinel if executed
    add("payload_zip.pt", "torch zip checkpoint with a pickled exec payload next to its tensors",
        ["--trust"], torch_file({**torch_state(), "extra": Payload(sentinel)}))
    add("payload_legacy.pt", "legacy torch checkpoint with a pickled exec payload", ["--trust"],
        torch_file({**torch_state(), "extra": Payload(sentinel)}, legacy=True))
    add("payload_pickle.pt", "plain pickle whose only object is an exec payload", ["--trust"],
        pickle.dumps(Payload(sentinel), protocol=2))
    add("payload_bin_dir", "HF directory whose pytorch_model.bin holds an exec payload", ["--trust"],
        files={"pytorch_model.bin": torch_file({**torch_state(), "extra": Payload(sentinel)}),
               "config.json": b"{}"})
    add("payload_lambda.keras", ".keras whose Lambda layer creates the sentinel when built", ["Lambda"],
        keras_archive([("config.json", keras_config(lambda_code(sentinel)))]))
    add("payload_decoy.keras", ".keras with a clean decoy config.json ahead of the real one holding a Lambda",
        ["two members", "decoy"],
        keras_archive([("config.json", keras_config(None)), ("config.json", keras_config(lambda_code(sentinel)))]))
    add("payload_decoy_subdir.keras", ".keras with a clean assets/config.json ahead of the real top-level one",
        ["Lambda"], keras_archive([("assets/config.json", keras_config(None)),
                                   ("config.json", keras_config(lambda_code(sentinel)))]))
    add("payload_lambda.h5", "legacy full-model .h5 whose model_config holds a Lambda", ["Lambda"],
        _h5_model(keras_config(lambda_code(sentinel))))
    add("payload_torchscript.pt", "TorchScript archive (code runs when loaded)", ["--trust"], _torchscript())
    add("payload_savedmodel", "SavedModel directory (its graph runs when restored)", ["--trust"],
        files={"saved_model.pb": b"\x08\x01" + b"\x00" * 64})

    # --- bombs: a few MB declaring gigabytes
    stream, crc = zeros_deflate(3 * GIB)
    add("bomb_datapkl.pt", "torch zip whose data.pkl inflates 3 MB to 3 GiB", ["bomb", "inflates"],
        torch_zip_with_datapkl(("data.pkl", stream, 8, 3 * GIB, crc)))
    add("bomb_cd_claim.pt", "torch zip whose central directory claims data.pkl is 4 GiB", ["declares", "forged"],
        patch_central_size(torch_file(torch_state()), b"data.pkl", 4 * GIB - 2))
    add("bomb_config.keras", ".keras whose config.json inflates to 3 GiB", ["bomb", "inflates"],
        raw_zip([stored("metadata.json", b"{}"), ("config.json", stream, 8, 3 * GIB, crc),
                 stored("model.weights.h5", weights_h5())]))
    add("bomb_config_understated.keras", ".keras whose config.json declares 1 KB and inflates to 3 GiB",
        ["damaged", "inflates", "bomb"],
        raw_zip([stored("metadata.json", b"{}"), ("config.json", stream, 8, 1024, crc),
                 stored("model.weights.h5", weights_h5())]))
    add("bomb_legacy_storage.pt", "legacy torch file whose pickle declares a 2^30-element storage (4 GiB)",
        ["shorter", "damaged"], _legacy_storage_bomb())
    add("bomb_dataset.weights.h5", ".weights.h5 declaring a never-written 60000x60000 float32 dataset",
        ["never written", "no floating-point"],
        weights_h5({}, forge=lambda f: f.create_dataset("layers/dense/vars/0", shape=(60000, 60000), dtype="f4")))
    add("bomb_chunked.weights.h5", ".weights.h5 with a chunked, compressed, never-written 20000x20000 dataset",
        ["never written", "no floating-point"],
        weights_h5({}, forge=lambda f: f.create_dataset("layers/dense/vars/0", shape=(20000, 20000), dtype="f4",
                                                          chunks=(500, 500), compression="gzip")))
    add("bomb_partial.weights.h5", ".weights.h5: 20000x20000 gzip dataset with one zero chunk written",
        ["refused", "stored bytes"], weights_h5({}, forge=lambda f: _partial_chunk(f, "layers/dense/vars/0")))
    add("bomb_inner_weights.keras", ".keras whose model.weights.h5 declares a 20000x20000 dataset in one chunk",
        ["refused", "stored bytes"],
        keras_archive([("config.json", keras_config(None))], weights_h5(forge=_partial_chunk)))

    # --- escapes: nothing outside the model's folder may be read
    index = lambda target: json.dumps({"metadata": {}, "weight_map": {"fc1.weight": target}}).encode()  # noqa: E731
    add("index_dotdot", "index naming ../../outside/secret.safetensors", ["leaves"],
        files={"model.safetensors.index.json": index("../../outside/secret.safetensors")})
    add("index_absolute", "index naming the secret by absolute path", ["absolute"],
        files={"model.safetensors.index.json": index(secret_st)})
    add("index_etc_passwd", "index naming /etc/passwd", ["absolute"],
        files={"model.safetensors.index.json": index("/etc/passwd")})
    add("index_symlink_shard", "index naming a shard that is a symlink to the secret", ["symlink", "outside"],
        files={"model.safetensors.index.json": index("model-00001-of-00001.safetensors")},
        links={"model-00001-of-00001.safetensors": secret_st})
    add("dir_symlink", "model.safetensors in a model directory is a symlink to the secret", ["symlink", "outside"],
        links={"model.safetensors": secret_st})
    add("bin_index_dotdot", "pytorch_model.bin.index.json naming ../../outside/secret.bin", ["leaves"],
        files={"pytorch_model.bin.index.json": index("../../outside/secret.bin")})
    add("index_not_strings", "index whose weight_map values are numbers", ["not a shard file name"],
        files={"model.safetensors.index.json": json.dumps({"weight_map": {"a": 5, "b": ["x"]}}).encode()})
    add("dir_devzero", "model.safetensors in a model directory links to /dev/zero", ["outside", "device"],
        links={"model.safetensors": "/dev/zero"})
    os.symlink("/dev/zero", os.path.join(corpus, "devzero.safetensors"))
    cases.append({"name": "devzero.safetensors", "path": "corpus/devzero.safetensors",
                  "what": "a symlink named on the command line that points at /dev/zero", "words": ["device"]})
    add("index_fifo_shard", "index naming a shard that is a FIFO", ["FIFO"],
        files={"model.safetensors.index.json": index("model-00001-of-00001.safetensors")},
        fifos=["model-00001-of-00001.safetensors"])
    add("dir_fifo", "model.safetensors in a model directory is a FIFO", ["FIFO"], fifos=["model.safetensors"])
    os.mkfifo(os.path.join(corpus, "fifo.safetensors"))
    cases.append({"name": "fifo.safetensors", "path": "corpus/fifo.safetensors", "what": "a FIFO named directly",
                  "words": ["FIFO"]})
    add("shards_same_names", "shard-named files holding the same tensor names (two models, not shards)",
        ["two shards"], files={"model-00001-of-00002.safetensors": st_bytes(small_tensors(1)),
                               "model-00002-of-00002.safetensors": st_bytes(small_tensors(2))})
    add("shards_missing", "shard 2 of 3 missing", ["missing"],
        files={"model-00001-of-00003.safetensors": st_bytes(small_tensors(1)),
               "model-00003-of-00003.safetensors": st_bytes({"x.weight": np.ones((4, 4), np.float32)})})

    # --- malformed safetensors headers (the safetensors library rejects each)
    def edit(fn):
        """A header edit: ``fn(header dict) -> header dict``, written back as JSON."""
        return lambda h, data: json.dumps(fn(h)).encode()

    def offsets(h, name, value):
        h[name]["data_offsets"] = value
        return h

    t = small_tensors()
    good = st_bytes(t)
    header = json.loads(good[8:8 + struct.unpack("<Q", good[:8])[0]])
    ends = {k: v["data_offsets"] for k, v in header.items() if k != "__metadata__"}
    first = min(ends, key=lambda k: ends[k][0])
    second = sorted(ends, key=lambda k: ends[k][0])[1]
    s0, e0 = ends[first]
    s1, e1 = ends[second]
    add("st_overlap.safetensors", "two tensors sharing bytes", ["overlaps"],
        st_bytes(t, edit(lambda h: offsets(h, second, [s1 - 8, e1 - 8]))))
    add("st_hole.safetensors", "bytes between tensors belong to none", ["hole", "data_offsets"],
        st_bytes(t, edit(lambda h: _with_hole(h, first))))
    add("st_trailing.safetensors", "bytes after the last tensor", ["after the last tensor"],
        st_bytes(t) + b"\x00" * 64)
    add("st_duplicate_key.safetensors", "a tensor named twice in the header", ["duplicate"],
        st_bytes(t, lambda h, data: _duplicate_key(h, first)))
    add("st_metadata_number.safetensors", "__metadata__ is a number", ["__metadata__"],
        st_bytes(t, edit(lambda h: {**h, "__metadata__": 5})))
    add("st_metadata_list.safetensors", "__metadata__ is a list", ["__metadata__"],
        st_bytes(t, edit(lambda h: {**h, "__metadata__": ["a", "b"]})))
    add("st_metadata_value.safetensors", "__metadata__ maps a key to a number", ["__metadata__"],
        st_bytes(t, edit(lambda h: {**h, "__metadata__": {"format": "pt", "step": 3}})))
    add("st_deep_json.safetensors", "a 100000-deep JSON header", ["nested too deeply", "not JSON"],
        st_bytes(t, lambda h, data: (b'{"__metadata__":' + b"[" * 100000 + b"]" * 100000 + b"}", data)))
    add("st_nan.safetensors", "NaN in the header", ["not JSON"],
        st_bytes(t, lambda h, data: json.dumps({**h, "__metadata__": {"x": float("nan")}}).encode()))
    add("st_header_length.safetensors", "header length of 2^60", ["header length", "not a model file"],
        struct.pack("<Q", 1 << 60) + b'{"a": 1}' + b"\x00" * 100)
    add("st_float_offsets.safetensors", "offsets written as floats", ["integers", "number"],
        st_bytes(t, lambda h, data: json.dumps(offsets(h, first, [float(s0), float(e0)])).encode()))

    # --- damaged containers
    add("zip_bad_names.pt", "zip whose member names claim UTF-8 but are not", ["damaged"],
        raw_zip([stored(b"archive/data\xff\xfe.pkl", b"x"), stored(b"archive/\xc3(", b"y")], flags=0x800))
    add("h5_corrupt.weights.h5", ".weights.h5 with its object headers overwritten", ["HDF5", "damaged", "truncated"],
        _corrupt_h5())
    for c in cases:
        size = _size(os.path.join(out, c["path"]))
        assert size < 20 * 1024 * 1024, (c["name"], size)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"sentinel": "SENTINEL", "outside": ["outside/secret.safetensors", "outside/secret.bin"],
                   "cases": cases}, f, indent=1)
    return cases


def _size(path: str) -> int:
    if os.path.islink(path) or not os.path.exists(path):
        return 0
    if os.path.isdir(path):
        return sum(_size(os.path.join(path, n)) for n in os.listdir(path))
    return os.path.getsize(path) if os.path.isfile(path) else 0


def _with_hole(h: dict, name: str) -> dict:
    """Shift every tensor after the first by 4 bytes: a hole after the first one."""
    start = h[name]["data_offsets"][1]
    for k, v in h.items():
        if k != "__metadata__" and v["data_offsets"][0] >= start:
            v["data_offsets"] = [v["data_offsets"][0] + 4, v["data_offsets"][1] + 4]
    return h


def _duplicate_key(h: dict, name: str) -> bytes:
    text = json.dumps(h)
    entry = json.dumps({name: h[name]})[1:-1]
    return (text[:-1] + ", " + entry + "}").encode()


def _partial_chunk(f, name: str = "layers/dense_1/vars/0") -> None:
    ds = f.create_dataset(name, shape=(20000, 20000), dtype="f4", chunks=(500, 500),
                          compression="gzip")
    ds[0:500, 0:500] = np.zeros((500, 500), np.float32)


def _h5_model(config: dict) -> bytes:
    import h5py

    buf = io.BytesIO()
    rng = np.random.default_rng(2)
    with h5py.File(buf, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "3.15.1"
        f.attrs["backend"] = "tensorflow"
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"dense"]
        g.attrs["keras_version"] = "3.15.1"
        g.attrs["backend"] = "tensorflow"
        layer = g.create_group("dense")
        layer.attrs["weight_names"] = [b"dense/kernel:0", b"dense/bias:0"]
        layer.create_dataset("dense/kernel:0", data=(rng.standard_normal((4, 3)) * 0.6).astype(np.float32))
        layer.create_dataset("dense/bias:0", data=np.zeros(3, np.float32))
    return buf.getvalue()


def _legacy_storage_bomb() -> bytes:
    """A legacy torch.save of 1000 zeros whose pickled storage size (BININT2 1000) says 2^30 elements."""
    import torch

    data = torch_file({"w": torch.zeros(1000)}, legacy=True)
    at = data.find(b"M\xe8\x03")
    return data[:at] + b"J" + (1 << 30).to_bytes(4, "little") + data[at + 3:]


def _torchscript() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 3)), buf)
    return buf.getvalue()


def _corrupt_h5() -> bytes:
    data = bytearray(weights_h5())
    # keep the superblock (first 96 bytes) so that it is recognised as HDF5; wipe the root group's headers
    for i in range(96, min(len(data), 96 + 1024)):
        data[i] = 0xA5
    return bytes(data)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    built = build(sys.argv[1])
    print(f"{len(built)} cases in {sys.argv[1]}")
