"""The fault cases of issue 17 and the counts behind ``make faults``'s table.

Every test in ``tests/faults`` is a case of the table, and so are the regression tests elsewhere
listed in :data:`REUSED` (``make faults`` runs them too instead of copying them). A case's name is
its ``fault_case`` marker's argument, else the first line of the test's docstring. A test that
repeats a fault counts each repetition through the ``fault`` fixture (``fault.trial(...)``);
any other test is one trial per run (per parameter set), survived when it passed. A failed test
that recorded no lost data counts one more trial with data lost: not proven safe is not safe.

With ``FAULTS_REPORT=path`` the counts are written there as JSON at the end of the session;
``tests/faults/report.py`` prints them as a table. ``FAULT_TRIALS`` scales the repeated cases.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

FAULTS_DIR = Path(__file__).resolve().parent
REPORT_ENV = "FAULTS_REPORT"

# Regression tests elsewhere that prove a case of the table (node id without parameters → case).
REUSED = {
    "tests/test_cli.py::test_two_inputs_with_one_output_name_are_refused":
        "stylize: two inputs with one file name in different folders",
    "tests/test_cli.py::test_an_output_that_is_an_input_is_refused_even_with_force":
        "stylize: output path equal to an input (even with --force)",
    "tests/test_cli.py::test_unreadable_folders_and_broken_links_are_reported":
        "stylize: unreadable subfolder, broken link, link to a folder",
    "tests/test_download.py::test_sha256_mismatch_extracts_nothing_and_keeps_old_data": "archive: wrong sha256",
    "tests/test_download.py::test_unsafe_or_bad_archives_are_refused":
        "archive: zip-slip, absolute path, link outside, device, not an archive",
    "tests/test_download.py::test_missing_paintings_folder": "archive: no photos/ or paintings/ folder",
    "tests/test_download.py::test_bomb_member_is_refused_before_it_is_written": "archive: zip bomb",
    "tests/test_train.py::test_resume_continues_from_newest_valid_checkpoint":
        "training: a damaged newest checkpoint is skipped",
    "tests/test_train.py::test_a_failed_run_leaves_the_previous_outputs":
        "training: a run failing mid-way keeps the previous outputs",
    "tests/test_files.py::test_full_disk_during_a_checkpoint_save": "disk full: checkpoint save",
    "tests/test_serve.py::test_bad_uploads_get_4xx_with_message": "serve: non-images, empty and broken uploads",
    "tests/test_serve.py::test_body_limit_and_decompression_bomb": "serve: oversized body, decompression bomb",
}


@dataclass
class Counts:
    """One case's row of the table."""

    case: str
    trials: int = 0
    survived: int = 0
    lost: int = 0
    skipped: int = 0
    seconds: float = 0.0

    def add(self, other: Counts) -> None:
        """Fold another test's counts for the same case into this row."""
        self.trials += other.trials
        self.survived += other.survived
        self.lost += other.lost
        self.skipped += other.skipped
        self.seconds += other.seconds


class FaultRecorder:
    """What one test saw: ``trial(survived, lost)`` once per repetition of its fault."""

    def __init__(self) -> None:
        self.trials = self.survived = self.lost = 0

    def trial(self, survived: bool, lost: bool = False) -> None:
        """Count one repetition: whether the program recovered, whether any data was lost."""
        self.trials += 1
        self.survived += bool(survived)
        self.lost += bool(lost)


def random_photos(folder: Path, count: int, height: int, width: int, seed: int, prefix: str = "") -> Path:
    """``count`` seeded random-noise RGB PNGs of ``height`` × ``width`` in a new ``folder`` (returned)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / f"{prefix}{i}.png")
    return folder


def trials(default: int) -> int:
    """How many times a repeated case runs: ``FAULT_TRIALS`` when set (to shorten a run), else ``default``."""
    return int(os.environ.get("FAULT_TRIALS", default))


@pytest.fixture
def fault(request) -> FaultRecorder:
    """The test's :class:`FaultRecorder`."""
    request.node.fault_recorder = FaultRecorder()
    return request.node.fault_recorder


def _base_id(nodeid: str) -> str:
    return nodeid.split("[", 1)[0]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    """Mark every test here, and the reused ones, as a case of the table; start counting."""
    if not config.pluginmanager.has_plugin("fault-table"):
        config.pluginmanager.register(FaultTable(), "fault-table")
    for item in items:
        reused = REUSED.get(_base_id(item.nodeid))
        if reused:
            item.add_marker(pytest.mark.fault_case(reused))
        elif FAULTS_DIR in Path(item.path).parents and not item.get_closest_marker("fault_case"):
            doc = (getattr(item, "function", None).__doc__ or "").strip().splitlines()
            item.add_marker(pytest.mark.fault_case(doc[0].rstrip(".") if doc else item.name))


class FaultTable:
    """Collects each case's counts and writes them at the end. Registered as a plugin of its own:
    a conftest's report hooks would only see the tests under this folder, not the reused ones."""

    def __init__(self) -> None:
        self.results: dict[str, Counts] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        """Count the test's trials once it has run (or was skipped)."""
        outcome = yield
        report = outcome.get_result()
        marker = item.get_closest_marker("fault_case")
        if marker is None or not (report.when == "call" or (report.when == "setup" and report.skipped)):
            return
        counts = Counts(marker.args[0], seconds=report.duration)
        recorder = getattr(item, "fault_recorder", None)
        if report.skipped:
            counts.skipped = 1
        elif recorder is not None and recorder.trials:
            counts.trials, counts.survived, counts.lost = recorder.trials, recorder.survived, recorder.lost
            if report.failed and recorder.lost == 0:
                counts.trials, counts.lost = counts.trials + 1, 1
        else:
            counts.trials, counts.survived, counts.lost = 1, int(report.passed), int(report.failed)
        self.results.setdefault(counts.case, Counts(counts.case)).add(counts)

    def pytest_sessionfinish(self, session):
        """Write the counts to ``$FAULTS_REPORT`` (when set)."""
        target = os.environ.get(REPORT_ENV)
        if target and self.results:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            rows = [asdict(counts) for counts in self.results.values()]
            Path(target).write_text(json.dumps({"written": time.strftime("%Y-%m-%d %H:%M:%S"), "cases": rows},
                                               indent=2))
