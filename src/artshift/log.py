"""The one logging and progress helper: one line per step, tqdm bars for long loops.

Bars and lines never interleave: log records and :func:`say` lines are written through tqdm,
which clears the bars on the same terminal, writes the line and redraws them. A bar is drawn
only on a terminal: under ``dvc repro`` in CI, a queued ``dvc exp run`` or with stderr sent to a
file, there are only the log lines (no ``\\r`` redraws glued onto them).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


class _BarSafeHandler(logging.StreamHandler):
    """A stream handler that clears tqdm's bars on its stream while it writes a record."""

    def emit(self, record: logging.LogRecord) -> None:
        with tqdm.external_write_mode(file=self.stream):
            super().emit(record)


def get_logger(name: str) -> logging.Logger:
    """A logger writing ``[name] message`` lines to stderr (configured once per process)."""
    root = logging.getLogger("artshift")
    if not root.handlers:
        handler = _BarSafeHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("ARTSHIFT_LOG_LEVEL", "INFO").upper())
        root.propagate = False
    short = name.removeprefix("artshift.")
    logger = logging.getLogger(f"artshift.{short}")
    return logger


def say(line: str) -> None:
    """Print one line on stderr (a command's own messages, e.g. ``skip: ...``) without breaking a bar."""
    tqdm.write(line, file=sys.stderr)


def progress(items: Iterable[T] | None = None, desc: str = "", total: int | None = None) -> tqdm:
    """A tqdm bar on stderr, drawn only when stderr is a terminal and ``ARTSHIFT_NO_PROGRESS``
    is not set.

    Iterate over it to wrap ``items``, or use it as a context manager and call ``update(n)``.
    """
    terminal = getattr(sys.stderr, "isatty", lambda: False)()
    disable = bool(os.environ.get("ARTSHIFT_NO_PROGRESS")) or not terminal
    return tqdm(items, desc=desc, total=total, disable=disable, dynamic_ncols=True, leave=False, file=sys.stderr)
