"""Exceptions that mean "the user gave us something we cannot use" (exit code 2), and
:class:`ResourceError`: something the command needs is unusable (tracking store, disk; exit code 1).

Anything else that escapes a command is an internal failure (exit code 1).
"""


def one_line(exc: BaseException) -> str:
    """An exception's message squeezed onto one line (or its type name when it has none), for
    wrapping a library's multi-line error in one of ours."""
    return " ".join(str(exc).split()) or type(exc).__name__


class ArtShiftError(Exception):
    """Bad input, bad params or missing files: reported as one line, exit code 2."""


class ParamsError(ArtShiftError):
    """``params.yaml`` is invalid; the message names the offending key."""


class DataError(ArtShiftError):
    """A data set cannot be downloaded, verified, extracted or used."""


class ImageError(ArtShiftError):
    """One image cannot be decoded; the message says why."""


class ImageTooLarge(ImageError):
    """An image above the pixel limit: a possible decompression bomb."""


class ResourceError(Exception):
    """A resource outside the input failed (the tracking store, a full disk): one line naming it,
    exit code 1, no traceback."""


class TrackingError(ResourceError):
    """The MLflow tracking store is locked, damaged or unreachable; the message names the store."""


class Terminated(BaseException):
    """SIGTERM arrived: unwinds the command like Ctrl-C, so atomic writers remove their temporary
    files instead of leaving them (Python's default for SIGTERM is to die on the spot)."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated


def run_main(main, *args) -> int:
    """Run ``main(*args)`` and turn failures into one stderr line plus an exit code.

    0 ok, 2 bad input or params (:class:`ArtShiftError`), 1 anything else (a
    :class:`ResourceError` as its own message), 130 for Ctrl-C and 143 for SIGTERM, after the
    command's cleanup ran (SIGTERM is turned into :class:`Terminated`). Set ``ARTSHIFT_DEBUG=1`` to see the traceback of
    a failure.
    """
    import os
    import signal
    import sys
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        main(*args)
    except ArtShiftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("error: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except ResourceError as exc:
        if os.environ.get("ARTSHIFT_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence for a command
        if os.environ.get("ARTSHIFT_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc} (ARTSHIFT_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    return 0
