"""How every ``pipeline/<stage>.py`` runs: one exit code and one closing line with the time."""

from __future__ import annotations

import time
from collections.abc import Callable

from artshift.errors import run_main
from artshift.log import get_logger


def run_stage(name: str, main: Callable[[], None]) -> int:
    """Run a stage's ``main``; errors become one line + exit code, success logs the duration."""
    began = time.perf_counter()
    code = run_main(main)
    if code == 0:
        get_logger(name).info("stage %s done in %.1f s", name, time.perf_counter() - began)
    return code
