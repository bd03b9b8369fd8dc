"""The one logging and progress helper: one line per step, tqdm bars for long loops."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def get_logger(name: str) -> logging.Logger:
    """A logger writing ``[name] message`` lines to stderr (configured once per process)."""
    root = logging.getLogger("artshift")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("ARTSHIFT_LOG_LEVEL", "INFO").upper())
        root.propagate = False
    short = name.removeprefix("artshift.")
    logger = logging.getLogger(f"artshift.{short}")
    return logger


def progress(items: Iterable[T] | None = None, desc: str = "", total: int | None = None) -> tqdm:
    """A tqdm bar on stderr, quiet when ``ARTSHIFT_NO_PROGRESS`` is set.

    Iterate over it to wrap ``items``, or use it as a context manager and call ``update(n)``.
    """
    disable = bool(os.environ.get("ARTSHIFT_NO_PROGRESS"))
    return tqdm(items, desc=desc, total=total, disable=disable, dynamic_ncols=True, leave=False)
