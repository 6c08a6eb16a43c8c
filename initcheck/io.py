"""One atomic writer for every file initcheck writes: reports, baselines, plots, HTML, fixed models.

``atomic_output(path, write, verify)`` lets ``write`` fill a temporary file next to ``path`` (same folder,
so the final ``os.replace`` is atomic; same suffix, because Keras and h5py insist on theirs), lets ``verify``
inspect it, fsyncs it and renames it over ``path``. Whatever goes wrong — an exception, Ctrl-C, SIGTERM
(the CLI turns it into ``SystemExit``) — the temporary file is removed and ``path`` is untouched.

The written file gets the mode an ordinary ``open()`` would give it (``0666`` minus the umask), or the mode of
the file it replaces, or — for a fixed model — the mode of the input it was made from (``mode_from``);
never the ``0600`` of ``mkstemp``. A failure to write is an :class:`~initcheck.errors.InitcheckError`
naming the *output* path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Callable

from .errors import InitcheckError

TEMP_PREFIX = ".initcheck-"


def _normal_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def output_mode(path: str, mode_from: str | None = None) -> int:
    """The permission bits ``path`` gets: those of the file it replaces, else ``mode_from``'s, else 0666-umask."""
    for candidate in (path, mode_from):
        if candidate and os.path.isfile(candidate):
            return os.stat(candidate).st_mode & 0o777
    return _normal_mode()


def _suffix(path: str) -> str:
    name = os.path.basename(path)
    return ".weights.h5" if name.endswith(".weights.h5") else os.path.splitext(name)[1]


def _remove(tmp: str) -> None:
    try:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.unlink(tmp)
    except OSError:  # pragma: no cover - best effort on the way out of a failure
        pass


def _cannot_write(e: OSError, path: str) -> InitcheckError:
    return InitcheckError(f"cannot write: {e.strerror or e}", path)


def atomic_output(path: str, write: Callable[[str], None], verify: Callable[[str], None] | None = None, *,
                  mode_from: str | None = None, suffix: str | None = None) -> None:
    """``write(tmp)``, ``verify(tmp)``, fsync, ``os.replace(tmp, path)``; ``tmp`` removed on any failure.

    ``write`` may delete ``tmp`` and create it anew (Keras' savers do); it must leave a file there.
    ``suffix``: the temporary file's (default: ``path``'s own).
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InitcheckError(f"cannot write: the folder {folder} does not exist", path)
    if os.path.isdir(path):
        raise InitcheckError("cannot write: the output is a directory", path)
    mode = output_mode(path, mode_from)
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix or _suffix(path), dir=folder)
        os.close(fd)
    except OSError as e:
        raise _cannot_write(e, path) from None
    try:
        try:
            write(tmp)
            os.chmod(tmp, mode)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        except OSError as e:
            raise _cannot_write(e, path) from None
        if verify is not None:
            verify(tmp)
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise _cannot_write(e, path) from None
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_bytes(path: str, data: bytes, mode_from: str | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_output(path, write, mode_from=mode_from)


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
