"""Progress bars and log lines: never interleaved, and no bar off a terminal."""

import io
import logging
import sys

from artshift.log import _BarSafeHandler, progress, say


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(text: str) -> list[str]:
    """What a log file shows: carriage returns start a line over, like newlines."""
    return text.replace("\r", "\n").split("\n")


def test_log_lines_and_messages_never_glue_onto_a_bar(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("ARTSHIFT_NO_PROGRESS", raising=False)
    logger = logging.getLogger("artshift.test_log")
    handler = _BarSafeHandler(terminal)
    handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
    logger.addHandler(handler)
    try:
        with progress(total=3, desc="work") as bar:
            bar.update(1)
            logger.warning("a log line")
            say("skip: a.png: unreadable")
            bar.update(2)
    finally:
        logger.removeHandler(handler)
    lines = _lines(terminal.getvalue())
    assert any(line.startswith("work:") for line in lines)  # a bar was drawn
    assert "[artshift.test_log] a log line" in lines and "skip: a.png: unreadable" in lines


def test_no_bar_off_a_terminal(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.delenv("ARTSHIFT_NO_PROGRESS", raising=False)
    assert list(progress(range(3), desc="work")) == [0, 1, 2]
    assert stream.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", _Terminal())
    monkeypatch.setenv("ARTSHIFT_NO_PROGRESS", "1")
    assert progress(range(3)).disable
