"""Where loaders may read: regular files, resolved, inside the model's own folder.

A model named on the command line may be a symlink (the user chose it). Every file a loader finds *by
itself* — a shard named by an ``*.index.json``, a file listed in a model directory — is resolved
(symlinks followed) and must stay inside the folder of the index or directory. The one exception is the
Hugging Face cache layout (``models--org--name/snapshots/<rev>/model.safetensors`` → ``../../blobs/<hash>``),
whose snapshot files are symlinks into the cache entry's own ``blobs/`` folder: there the allowed root is
the cache entry ``models--org--name``.

FIFOs, devices and sockets are refused before they are opened: opening a FIFO blocks until a writer comes,
and a device can stream forever.
"""

from __future__ import annotations

import os
import stat

from .errors import InitcheckError


def require_regular_file(path: str, shown: str | None = None) -> os.stat_result:
    """``os.stat`` of ``path`` (following links); an InitcheckError unless it is a regular file.

    ``stat`` never opens the file, so a FIFO cannot block here.
    """
    shown = shown or path
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InitcheckError("no such file or directory" + (" (a dangling symlink)" if os.path.islink(path)
                                                             else ""), shown) from None
    except OSError as e:
        raise InitcheckError(f"cannot read: {e.strerror or e}", shown) from None
    if not stat.S_ISREG(st.st_mode):
        raise InitcheckError(f"not a regular file ({_kind(st.st_mode)}): refused before opening", shown)
    return st


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a plain file"


def allowed_root(folder: str) -> str:
    """The resolved folder files found in ``folder`` may resolve into (the HF cache entry for a snapshot)."""
    real = os.path.realpath(folder)
    parent = os.path.dirname(real)
    if os.path.basename(parent) == "snapshots":
        entry = os.path.dirname(parent)
        if os.path.basename(entry).startswith(("models--", "datasets--")) and os.path.isdir(os.path.join(entry, "blobs")):
            return entry
    return real


def inside(folder: str, name: str, what: str, shown: str) -> str:
    """``name`` (relative to ``folder``) resolved; an InitcheckError naming ``shown`` when it is absolute,
    climbs out with ``..`` or resolves (through symlinks) outside ``folder``, or is not a regular file."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise InitcheckError(f"{what} {name!r} is not a file name", shown)
    if os.path.isabs(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise InitcheckError(f"{what} {name!r} is an absolute path: refused (files must stay inside the "
                             "model's folder)", shown)
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise InitcheckError(f"{what} {name!r} leaves the model's folder: refused", shown)
    full = os.path.join(folder, name)
    root = allowed_root(folder)
    real = os.path.realpath(full)
    if os.path.commonpath([root, real]) != root:
        raise InitcheckError(f"{what} {name!r} is a symlink to {real}, outside the model's folder: refused", shown)
    require_regular_file(full)
    return full
