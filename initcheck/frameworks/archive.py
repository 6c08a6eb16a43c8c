"""Zip archives (``.pt`` zip checkpoints, ``.keras``) checked before any member is inflated.

A zip's central directory declares each member's stored and inflated size; readers (Python's zipfile,
torch's miniz, Keras) allocate by those declarations. A few KB can therefore claim gigabytes. Before
anything reads a member, every declaration is held against the archive's real size:

* a member's stored bytes lie inside the file (``header_offset + compress_size <= file size``);
* a stored (uncompressed) member inflates to exactly its stored size;
* a compressed member inflates to at most ``MAX_RATIO`` times its stored size (deflate of real weights
  and configs stays far below; a bomb is ~1000x), and the whole archive to at most ``MAX_RATIO`` times
  the file's size;
* no two members share a name (readers disagree on which one they read: a decoy ahead of the real one).

Small members initcheck reads itself are read by exact name, once, with the inflated bytes capped
while streaming (a member may declare less than it inflates to).
"""

from __future__ import annotations

import os
import zipfile
import zlib

from ..errors import InitcheckError

MAX_RATIO = 100
# exceptions zipfile raises for damaged central directories, names and streams
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, UnicodeDecodeError,
              NotImplementedError, RuntimeError, OverflowError, zlib.error, KeyError, IndexError)


def open_checked(path: str) -> zipfile.ZipFile:
    """The open archive, after every member's declared sizes were checked (see the module docstring)."""
    size = os.path.getsize(path)
    try:
        z = zipfile.ZipFile(path)
        infos = z.infolist()
    except ZIP_ERRORS as e:
        raise InitcheckError(f"damaged zip archive ({_why(e)}); the file may be truncated", path) from None
    try:
        check_declarations(infos, size, path)
    except BaseException:
        z.close()
        raise
    return z


def check_declarations(infos: list[zipfile.ZipInfo], size: int, path: str) -> None:
    names: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        if name in names:
            raise InitcheckError(f"zip archive holds two members named {name!r} (a decoy ahead of the real "
                                 "one?): refused", path)
        names.add(name)
        if info.header_offset + info.compress_size > size:
            raise InitcheckError(f"zip member {name!r} claims {info.compress_size} stored bytes beyond the end "
                                 f"of the {size}-byte file (damaged or forged)", path)
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise InitcheckError(f"zip member {name!r} is stored uncompressed but declares {info.file_size} "
                                 f"bytes for {info.compress_size} stored (damaged or forged)", path)
        if info.file_size > MAX_RATIO * max(info.compress_size, 1024):
            raise InitcheckError(f"zip member {name!r} inflates {info.compress_size} bytes to {info.file_size} "
                                 f"(more than {MAX_RATIO}x): a zip bomb? refused", path)
        total += info.file_size
    if total > MAX_RATIO * max(size, 1024):
        raise InitcheckError(f"zip archive declares {total} inflated bytes for a {size}-byte file "
                             f"(more than {MAX_RATIO}x): a zip bomb? refused", path)


def read_member(z: zipfile.ZipFile, name: str, limit: int, path: str) -> bytes | None:
    """Member ``name`` (exact name), at most ``limit`` inflated bytes; None when there is no such member."""
    try:
        info = z.getinfo(name)
    except KeyError:
        return None
    if info.file_size > limit:
        raise InitcheckError(f"zip member {name!r} is {info.file_size} bytes, more than initcheck reads "
                             f"({limit // 2**20} MiB): refused", path)
    try:
        with z.open(info) as f:
            data = f.read(limit + 1)
    except ZIP_ERRORS as e:
        raise InitcheckError(f"damaged zip member {name!r} ({_why(e)})", path) from None
    if len(data) > limit:
        raise InitcheckError(f"zip member {name!r} inflates past {limit // 2**20} MiB: refused", path)
    return data


def _why(e: BaseException) -> str:
    text = " ".join(str(e).split())[:200]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
