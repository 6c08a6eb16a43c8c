"""The progress line: one line rewritten in place, never wider than the terminal, silent when piped."""

from __future__ import annotations

import io

from initcheck.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def drawn_lines(out: str) -> list[str]:
    return [part for part in out.split("\r") if part.strip()]


def test_line_fits_the_terminal_and_shows_rate_and_eta():
    for width in (30, 60, 120):
        tty = Terminal()
        with Progress(10**9, "statistics", stream=tty, width=width, delay=0, unit="values") as bar:
            for i in range(5):
                bar._last = -1.0  # draw every update
                bar.advance(10**8, f"model.layers.{i}.mlp.down_proj.weight")
        lines = drawn_lines(tty.getvalue())
        assert lines and all(len(line) <= width - 1 for line in lines), [len(x) for x in lines]
        assert all("\n" not in line for line in lines)
        if width >= 60:
            assert "values/s" in lines[-1] and "ETA" in lines[-1] and "%" in lines[-1]
        assert tty.getvalue().endswith("\r")  # erased when done


def test_silent_when_not_a_terminal():
    piped = io.StringIO()
    with Progress(100, "statistics", stream=piped, delay=0) as bar:
        bar.advance(50, "x")
        bar.advance(50, "y")
    assert piped.getvalue() == ""
