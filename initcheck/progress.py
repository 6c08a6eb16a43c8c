"""A one-line progress display on stderr: shown only on a terminal, only for work that takes a while.

The line is rewritten in place (``\\r``) at most ten times a second, always fits the terminal's width,
and carries the fraction done, a bar, the throughput and the time left (ETA); it is erased when done.
When stderr is not a terminal (piped, redirected, CI) nothing is written at all.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.1f}{unit}"
    return f"{x:.0f}"


def _duration(s: float) -> str:
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """``with Progress(total, "statistics") as p: p.advance(n, item)``; silent unless stderr is a TTY."""

    def __init__(self, total: int, label: str, enabled: bool | None = None, delay: float = 0.5,
                 unit: str = "", stream: TextIO | None = None, width: int | None = None):
        self.total = max(int(total), 1)
        self.label = label
        self.unit = unit
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._width = width
        self._start = time.monotonic()
        self._delay = delay
        self._last = 0.0
        self._shown = 0  # width of the line on screen, 0 when none

    def __enter__(self) -> "Progress":
        return self

    def advance(self, n: int = 1, item: str = "") -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._start < self._delay or now - self._last < 0.1:
            return
        self._last = now
        self._draw(self.line(now - self._start, item))

    def line(self, elapsed: float, item: str = "") -> str:
        """The status line for ``elapsed`` seconds, at most the terminal's width minus one column."""
        width = (self._width or shutil.get_terminal_size((80, 24)).columns) - 1
        frac = min(self.done / self.total, 1.0)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        stats = f" {frac * 100:5.1f}% {_si(rate)} {self.unit}/s ETA {_duration(eta) if eta != float('inf') else '?'}"
        bar_w = max(0, min(30, width - len(self.label) - len(stats) - 2))
        filled = int(frac * bar_w)
        text = f"{self.label} {'█' * filled}{'·' * (bar_w - filled)}{stats}"
        room = width - len(text) - 1
        if item and room > 3:
            text += " " + (item if len(item) <= room else "…" + item[-(room - 1):])
        return text[:width]

    def _draw(self, text: str) -> None:
        pad = max(0, self._shown - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._shown = len(text)

    def __exit__(self, *exc) -> None:
        if self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
