"""A small progress bar on stderr, shown only on a terminal and only for work that takes a while."""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress(total, "statistics") as p: p.advance(n)``; silent unless stderr is a TTY."""

    def __init__(self, total: int, label: str, enabled: bool | None = None, delay: float = 0.5):
        self.total = max(int(total), 1)
        self.label = label
        self.done = 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._start = time.monotonic()
        self._delay = delay
        self._last = 0.0
        self._shown = False

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
        self._shown = True
        frac = min(self.done / self.total, 1.0)
        width = 30
        bar = "█" * int(frac * width) + "·" * (width - int(frac * width))
        text = f"\r{self.label} {bar} {frac * 100:5.1f}% {item[:40]:<40}"
        sys.stderr.write(text)
        sys.stderr.flush()

    def __exit__(self, *exc) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()
