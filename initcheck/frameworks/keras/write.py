"""Write a Keras model back in the format it came from, atomically and never over its source.

Keras insists on file suffixes (``.keras``, ``.h5``, ``.weights.h5``), so the temporary file in the target
folder carries the same suffix; it is renamed over the target only once fully written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from ...errors import InitcheckError

SUFFIXES = {"keras_zip": ".keras", "keras": ".keras", "hdf5": ".h5", "h5": ".h5",
            "keras_weights": ".weights.h5", "weights_h5": ".weights.h5"}


def save_keras(keras_model: Any, out_path: str, fmt: str, source: str | None = None) -> None:
    """Save ``keras_model`` to ``out_path`` as ``fmt`` (``keras_zip``, ``hdf5`` or ``keras_weights``).

    Writes a temporary file next to ``out_path`` and renames it into place (atomic on one filesystem).
    ``source``: the file the model was loaded from; writing over it is refused (exit 2), so a failed or
    unwanted fix never destroys the original.
    """
    suffix = SUFFIXES.get(fmt)
    if suffix is None:
        raise InitcheckError(f"cannot write Keras format {fmt!r} (choose keras_zip, hdf5 or keras_weights)",
                             out_path)
    if source and os.path.exists(out_path) and os.path.exists(source) and os.path.samefile(out_path, source):
        raise InitcheckError("refusing to overwrite the input model; choose another output path", out_path)
    if os.path.isdir(out_path):
        raise InitcheckError("output path is a directory", out_path)
    folder = os.path.dirname(os.path.abspath(out_path)) or "."
    fd, tmp = tempfile.mkstemp(prefix=".initcheck-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        os.unlink(tmp)  # Keras' writers want to create the file themselves (h5py refuses some existing files)
        if suffix == ".weights.h5":
            keras_model.save_weights(tmp)
        else:
            keras_model.save(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out_path)
    except InitcheckError:
        raise
    except Exception as e:
        raise InitcheckError(f"cannot save the Keras model: {type(e).__name__}: {e}", out_path) from e
    finally:
        if os.path.exists(tmp):
            if os.path.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.unlink(tmp)
