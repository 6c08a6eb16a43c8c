"""Write a Keras model back in the format it came from, atomically and never over its source.

Keras insists on file suffixes (``.keras``, ``.h5``, ``.weights.h5``), so the temporary file in the target
folder carries the same suffix; it is renamed over the target only once fully written.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from ...errors import InitcheckError

SUFFIXES = {"keras_zip": ".keras", "keras": ".keras", "hdf5": ".h5", "h5": ".h5",
            "keras_weights": ".weights.h5", "weights_h5": ".weights.h5"}


def save_keras(keras_model: Any, out_path: str, fmt: str, source: str | None = None,
               verify: Callable[[str], None] | None = None, mode_from: str | None = None) -> None:
    """Save ``keras_model`` to ``out_path`` as ``fmt`` (``keras_zip``, ``hdf5`` or ``keras_weights``).

    Writes through :func:`initcheck.io.atomic_output` (a temporary file next to ``out_path`` with the same
    suffix, ``verify(tmp)`` if given, renamed into place with ``mode_from``'s file mode).
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
    from ...io import atomic_output

    def write(tmp: str) -> None:
        os.unlink(tmp)  # Keras' writers want to create the file themselves (h5py refuses some existing files)
        from ..quiet import captured_stderr

        try:
            with captured_stderr():
                if suffix == ".weights.h5":
                    keras_model.save_weights(tmp)
                else:
                    keras_model.save(tmp)
        except (InitcheckError, OSError):
            raise
        except Exception as e:
            raise InitcheckError(f"cannot save the Keras model: {type(e).__name__}: {_one_line(e)}",
                                 out_path) from e

    atomic_output(out_path, write, verify, mode_from=mode_from or source, suffix=suffix)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__
