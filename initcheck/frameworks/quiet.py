"""Keep framework chatter off initcheck's stderr, whose lines are initcheck's own.

TensorFlow, absl and oneDNN write to file descriptor 2 from C++ ("All log messages before
absl::InitializeLog() ...", "oneDNN custom operations are on ..."), before and regardless of Python
logging settings and of ``TF_CPP_MIN_LOG_LEVEL``; torch and Keras warn through Python. While a model is
loaded, file descriptor 2 and ``sys.stderr`` point at a temporary file; what was written is kept in
:data:`last_captured` (``--debug`` prints it) and never reaches the terminal. Framework log levels are set
before the frameworks are imported, for whatever they print later.
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

last_captured = ""
_depth = 0


def quiet_framework_logs() -> None:
    """Log levels that keep TensorFlow/absl quiet, set before their import (a user's own setting wins)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:
        absl_logging.set_verbosity("error")


def _fd2_usable() -> bool:
    try:
        os.fstat(2)
        return True
    except OSError:
        return False


@contextmanager
def captured_stderr() -> Iterator[None]:
    """Inside: everything written to fd 2 or ``sys.stderr`` goes to a temporary file (nesting is fine)."""
    global last_captured, _depth
    quiet_framework_logs()
    if _depth or not _fd2_usable():
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    _depth += 1
    saved_fd = os.dup(2)
    saved_stream = sys.stderr
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            saved_stream.flush()
        except (OSError, ValueError):
            pass
        os.dup2(sink.fileno(), 2)
        sys.stderr = open(2, "w", closefd=False, errors="replace")
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            sys.stderr = saved_stream
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            _depth -= 1
            sink.seek(0)
            last_captured = sink.read(1 << 20).decode("utf-8", "replace")
