"""HTTP download of one file: streamed, resumed, retried, then checked against its sha256.

Data sets and model weights are large files fetched over networks that drop connections, so
:func:`download_file` resumes a partial file with ``Range`` requests, retries transient failures
(transport errors, 5xx, 408, 425, 429) with exponential backoff, fails at once on errors that a
retry will not fix (404, a bad url), and verifies the sha256 before the file appears under its
final name. The per-read ``timeout_s`` cannot catch a server that trickles a few bytes a second,
so the whole download, retries included, also has a deadline (``deadline_s``). Used by the
``url`` data source (:mod:`artshift.data.sources`) and for pretrained weights (Inception, VGG)
(:mod:`artshift.weights`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from artshift.errors import DataError, one_line
from artshift.files import sha256_file
from artshift.log import get_logger, progress

BACKOFF_S = 1.0  # delay before the first retry; it doubles with every further attempt
DEADLINE_S = 3600.0  # the whole download, every attempt included
RETRY_STATUSES = frozenset({408, 425, 429})  # plus every 5xx
log = get_logger("download")


class _Retry(Exception):
    """An attempt failed in a way a later attempt may fix; the message says how."""


@dataclass(frozen=True)
class _Deadline:
    """When a download must be finished: ``seconds`` after it began, at ``time.monotonic()`` ``at``."""

    seconds: float
    at: float

    @classmethod
    def starting_now(cls, seconds: float) -> _Deadline:
        """The deadline ``seconds`` from now."""
        return cls(seconds, time.monotonic() + seconds)

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.at - time.monotonic()

    def check(self, url: str, part: Path) -> None:
        """Raise :class:`DataError` once the deadline has passed; the partial file stays to resume."""
        if self.left() < 0:
            received = part.stat().st_size if part.exists() else 0
            raise DataError(f"download {url}: not finished within the {self.seconds:g} s deadline "
                            f"({received} bytes received; the server is stalled or very slow)")


def _check_status(response: httpx.Response, url: str, offset: int, part: Path) -> None:
    """Accept 200/206; retry on 5xx, 408, 425, 429 and a refused resume; fail at once otherwise."""
    status = response.status_code
    if status in (200, 206):
        return
    if status == 416 and offset:
        part.unlink()
        raise _Retry("server refused to resume the partial file (HTTP 416); starting over")
    reason = f"HTTP {status} {response.reason_phrase}".strip()
    if status in RETRY_STATUSES or status >= 500:
        raise _Retry(reason)
    raise DataError(f"download {url}: {reason}")


def _body_start(response: httpx.Response, offset: int, part: Path) -> int:
    """Where the body goes in the file: 0 for a 200 (restart), ``offset`` for a matching 206.

    A 206 for some other range would corrupt the file, so the partial file is dropped.
    """
    if response.status_code == 200:
        return 0
    content_range = response.headers.get("content-range", "")
    start = content_range.removeprefix("bytes ").partition("-")[0]
    if not content_range.startswith("bytes ") or not start.isdigit() or int(start) != offset:
        part.unlink()
        raise _Retry(f"asked for bytes from {offset}, got range {content_range!r}; starting over")
    return offset


def _stream_once(client: httpx.Client, url: str, part: Path, deadline: _Deadline) -> None:
    """One GET into ``part``, resuming from its current size with ``Range: bytes=N-``.

    Raw bytes are written (no transfer decoding), so sizes and ranges match the file on the
    server. A body shorter than announced raises :class:`_Retry`; the whole chunks that arrived
    stay in ``part`` for the next attempt to resume from.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
    with client.stream("GET", url, headers=headers) as response:
        _check_status(response, url, offset, part)
        start = _body_start(response, offset, part)
        length = response.headers.get("content-length", "")
        expected = start + int(length) if length.isdigit() else None
        # Chunks as they arrive (iter_raw(n) would wait for n bytes), so a trickle meets the deadline.
        with open(part, "ab" if start else "wb") as handle, \
                progress(desc=f"download {part.name}", total=int(length) if length.isdigit() else None) as bar:
            for chunk in response.iter_raw():
                handle.write(chunk)
                bar.update(len(chunk))
                deadline.check(url, part)
    size = part.stat().st_size
    if expected is not None and size != expected:
        raise _Retry(f"got {size} of {expected} bytes")


def _fetch_with_retries(client: httpx.Client, url: str, part: Path, retries: int, backoff_s: float,
                        deadline: _Deadline) -> None:
    """Call :func:`_stream_once` up to ``retries + 1`` times, with exponential backoff between,
    giving up early when the next attempt would start after ``deadline``."""
    for attempt in range(1, retries + 2):
        try:
            _stream_once(client, url, part, deadline)
            return
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise DataError(f"download {url}: {one_line(exc)}") from None
        except (httpx.TransportError, _Retry) as exc:
            reason = one_line(exc)
        delay = backoff_s * 2 ** (attempt - 1)
        if attempt > retries or delay > deadline.left():
            raise DataError(f"download {url}: {reason} (gave up after {attempt} attempts)")
        log.warning("attempt %d of %d failed (%s); retrying in %.1f s", attempt, retries + 1, reason, delay)
        time.sleep(delay)


def check_sha256(path: Path, expected: str, label: str) -> str:
    """Hash ``path``; raise :class:`DataError` if ``expected`` is given and differs. Returns the hash.

    Without ``expected`` nothing is verified, and a warning says so. Also used for local archives.
    """
    actual = sha256_file(path)
    if expected and actual != expected.lower():
        raise DataError(f"{label}: sha256 mismatch: expected {expected.lower()}, got {actual}")
    if not expected:
        log.warning("%s: no sha256 to check against, so not verified (its sha256 is %s)", label, actual)
    return actual


def download_file(url: str, dest: Path, sha256: str = "", retries: int = 4, timeout_s: float = 30.0,
                  backoff_s: float | None = None, deadline_s: float = DEADLINE_S) -> Path:
    """Download ``url`` to ``dest``: streamed to ``dest.part``, resumed, retried, then verified.

    Resuming and retrying make large downloads survive flaky networks; the sha256 (when given)
    is checked before ``dest`` appears, and on a mismatch the download is deleted and
    :class:`DataError` raised. A ``dest`` already present (and matching ``sha256``) is reused.
    ``backoff_s`` is the first retry delay (default :data:`BACKOFF_S`), doubled each retry;
    ``deadline_s`` bounds the whole download (a :class:`DataError` when it passes).
    """
    dest = Path(dest)
    if dest.is_file() and (not sha256 or sha256_file(dest) == sha256.lower()):
        log.info("using cached %s", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    log.info("downloading %s", url)
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        _fetch_with_retries(client, url, part, retries, BACKOFF_S if backoff_s is None else backoff_s,
                            _Deadline.starting_now(deadline_s))
    try:
        check_sha256(part, sha256, f"download {url}")
    except DataError:
        part.unlink()
        raise
    part.replace(dest)
    log.info("downloaded %s (%d bytes)", dest, dest.stat().st_size)
    return dest
