"""The url and local sources, against a real HTTP server on 127.0.0.1."""

import hashlib
import io
import json
import stat
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from artshift.config import DownloadParams
from artshift.data import archives, download
from artshift.data.download import download_file
from artshift.data.sources import fetch_dataset
from artshift.errors import DataError


def _png(shade: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, shade, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(members: dict[str, bytes], symlinks: dict[str, str] | None = None, deflate: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()


def _tar(members: dict[str, bytes], links: dict[str, tuple[bytes, str]] | None = None) -> bytes:
    """A tar.gz of ``members`` plus ``links``: name -> (tar type, link target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tf.addfile(info)
    return buffer.getvalue()


GOOD = {"set/photos/a.png": _png(1), "set/photos/b.png": _png(2), "set/paintings/p.png": _png(3)}


class Server:
    """Serves ``files`` over HTTP/1.0 and records each request's (path, Range header).

    ``ranges``: honour ``Range: bytes=N-`` with a 206; ``drop_first``: announce the full length
    but send half the body on the first request, then close; ``fail_first``: answer the first
    request with this status; ``trickle_s``: send the body one byte at a time, this long apart.
    """

    def __init__(self, files: dict[str, bytes], ranges: bool = True, drop_first: bool = False,
                 fail_first: int | None = None, trickle_s: float = 0.0):
        self.files, self.ranges, self.drop_first, self.fail_first = files, ranges, drop_first, fail_first
        self.trickle_s = trickle_s
        self.requests: list[tuple[str, str | None]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if server.fail_first or data is None:
                    self.send_error(server.fail_first or 404)
                    server.fail_first = None
                    return
                start = self._send_headers(data)
                body = data[start:]
                if server.drop_first:
                    server.drop_first = False
                    body = body[: len(body) // 2]
                self._send_body(body)

            def _send_body(self, body: bytes) -> None:
                if not server.trickle_s:
                    self.wfile.write(body)
                    return
                for byte in body:
                    time.sleep(server.trickle_s)
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:  # the client gave up
                        return

            def _send_headers(self, data: bytes) -> int:
                header = self.headers.get("Range")
                start = int(header.removeprefix("bytes=").split("-")[0]) if header and server.ranges else 0
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                return start

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(files, **kwargs):
        servers.append(Server(files, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(download, "BACKOFF_S", 0.0)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _url_params(url: str, data: bytes, **extra) -> DownloadParams:
    return DownloadParams(source="url", url=url, sha256=_sha(data), retries=2, **extra)


def _tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_url_archive_with_top_folder(serve, tmp_path, kind):
    junk = {"set/photos/readme.txt": b"hi", "set/photos/.DS_Store": b"x", "__MACOSX/set/._a.png": b"x"}
    data = _packed(kind, {**GOOD, **junk})
    server = serve({f"/set.{kind}": data})
    summary = fetch_dataset(_url_params(f"{server.url}/set.{kind}", data), 0, tmp_path / "raw", tmp_path / "dl")
    assert summary == {"source": "url", "counts": {"photos": 2, "paintings": 1}, "paintings_synthetic": False,
                       "archive_sha256": _sha(data), "dataset_sha256": summary["dataset_sha256"]}
    assert _tree(tmp_path / "raw") == ["manifest.json", "paintings/p.png", "photos/a.png", "photos/b.png"]
    assert (tmp_path / "raw" / "photos" / "a.png").read_bytes() == GOOD["set/photos/a.png"]
    manifest = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert manifest["skipped_files"] == 2 and manifest["photo_sources"] == [f"{server.url}/set.{kind}"]
    (cached,) = (tmp_path / "dl").iterdir()
    assert cached.name.endswith(f"-set.{kind}") and cached.read_bytes() == data


def test_cached_archive_is_reused(serve, tmp_path):
    data = _zip(GOOD)
    server = serve({"/set.zip": data})
    params = _url_params(f"{server.url}/set.zip", data)
    first = fetch_dataset(params, 0, tmp_path / "raw", tmp_path / "dl")
    second = fetch_dataset(params, 0, tmp_path / "raw", tmp_path / "dl")
    assert len(server.requests) == 1 and first == second


@pytest.mark.parametrize("broken", [b"<html>502 Bad Gateway</html>", _zip({"set/photos/a.png": _png()})])
def test_rejected_download_is_not_reused(serve, tmp_path, broken):
    server = serve({"/set.zip": broken})
    params = DownloadParams(source="url", url=f"{server.url}/set.zip", retries=0)  # no sha256 pinned
    with pytest.raises(DataError):
        fetch_dataset(params, 0, tmp_path / "raw", tmp_path / "dl")
    assert list((tmp_path / "dl").iterdir()) == []
    server.files["/set.zip"] = _zip(GOOD)  # the server is fixed
    assert fetch_dataset(params, 0, tmp_path / "raw", tmp_path / "dl")["counts"] == {"photos": 2, "paintings": 1}
    assert len(server.requests) == 2


def test_pinned_archive_is_kept_when_extraction_fails(serve, tmp_path):
    data = _zip({"set/photos/a.png": _png()})
    server = serve({"/set.zip": data})
    with pytest.raises(DataError, match="missing paintings/"):
        fetch_dataset(_url_params(f"{server.url}/set.zip", data), 0, tmp_path / "raw", tmp_path / "dl")
    (cached,) = (tmp_path / "dl").iterdir()
    assert cached.read_bytes() == data  # exactly the pinned bytes: downloading again cannot help


def test_dropped_connection_is_resumed_with_range(serve, tmp_path):
    data = _zip({**GOOD, "set/photos/big.bin": bytes(range(256)) * 2000})  # several read chunks
    server = serve({"/set.zip": data}, drop_first=True)
    path = download_file(f"{server.url}/set.zip", tmp_path / "set.zip", _sha(data), retries=2, backoff_s=0.0)
    assert _sha(path.read_bytes()) == _sha(data)
    (first, no_range), (second, resume) = server.requests
    assert no_range is None and resume.startswith("bytes=")
    assert 0 < int(resume.removeprefix("bytes=").rstrip("-")) <= len(data) // 2  # resumed, not restarted
    assert not (tmp_path / "set.zip.part").exists()


def test_server_ignoring_range_restarts_from_zero(serve, tmp_path):
    data = _zip(GOOD)
    (tmp_path / "set.zip.part").write_bytes(b"stale partial bytes")
    server = serve({"/set.zip": data}, ranges=False)
    path = download_file(f"{server.url}/set.zip", tmp_path / "set.zip", _sha(data), retries=0)
    assert path.read_bytes() == data and server.requests[0][1] == "bytes=19-"


def test_trickling_download_fails_at_its_deadline(serve, tmp_path):
    data = _zip(GOOD)
    server = serve({"/set.zip": data}, trickle_s=0.01)  # ~100 B/s: each read arrives well within timeout_s
    began = time.monotonic()
    with pytest.raises(DataError) as excinfo:
        download_file(f"{server.url}/set.zip", tmp_path / "set.zip", retries=3, timeout_s=5, deadline_s=0.5)
    assert time.monotonic() - began < 3
    assert str(excinfo.value).startswith(f"download {server.url}/set.zip: not finished within the 0.5 s deadline (")
    assert len(server.requests) == 1 and not (tmp_path / "set.zip").exists()
    assert 0 < (tmp_path / "set.zip.part").stat().st_size < len(data)  # kept: a later run resumes it


def test_no_retry_starts_after_the_deadline(serve, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "BACKOFF_S", 30.0)
    server = serve({"/set.zip": _zip(GOOD)}, fail_first=503)
    with pytest.raises(DataError, match=r"HTTP 503 .*\(gave up after 1 attempts\)$"):
        download_file(f"{server.url}/set.zip", tmp_path / "set.zip", retries=3, deadline_s=5)
    assert len(server.requests) == 1


def test_server_error_is_retried(serve, tmp_path):
    data = _zip(GOOD)
    server = serve({"/set.zip": data}, fail_first=503)
    download_file(f"{server.url}/set.zip", tmp_path / "set.zip", _sha(data), retries=1)
    assert len(server.requests) == 2


def test_sha256_mismatch_extracts_nothing_and_keeps_old_data(serve, tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "old.txt").write_text("previous data set")
    server = serve({"/set.zip": _zip(GOOD)})
    params = DownloadParams(source="url", url=f"{server.url}/set.zip", sha256="0" * 64)
    with pytest.raises(DataError, match="sha256 mismatch: expected 0{64}, got [0-9a-f]{64}$"):
        fetch_dataset(params, 0, tmp_path / "raw", tmp_path / "dl")
    assert _tree(tmp_path / "raw") == ["old.txt"]
    assert list((tmp_path / "dl").iterdir()) == []  # the bad download is gone


SYM, HARD = tarfile.SYMTYPE, tarfile.LNKTYPE


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (_zip({**GOOD, "../evil.png": b"x"}), "'../evil.png': '..' in path"),
        (_zip({**GOOD, "set/photos/../../../evil.png": b"x"}), "'..' in path"),
        (_zip({**GOOD, "/tmp/evil.png": b"x"}), "'/tmp/evil.png': absolute path"),
        (_tar({**GOOD, "/tmp/evil.png": b"x"}), "absolute path"),
        (_tar(GOOD, {"set/photos/link.png": (SYM, "../../../etc/passwd")}), "'set/photos/link.png': link to"),
        (_tar(GOOD, {"set/photos/link.png": (SYM, "/etc/passwd")}), "leaves the target folder"),
        (_tar(GOOD, {"set/photos/hard.png": (HARD, "../outside.png")}), "leaves the target folder"),
        (_zip(GOOD, symlinks={"set/photos/link.png": "../../.."}), "leaves the target folder"),
        (_tar(GOOD, {"set/photos/tty": (tarfile.CHRTYPE, "")}), "'set/photos/tty': device or special file"),
        (b"not an archive at all", "not a zip or tar archive"),
    ],
)
def test_unsafe_or_bad_archives_are_refused(serve, tmp_path, archive, reason):
    server = serve({"/bad": archive})
    with pytest.raises(DataError, match=reason):
        fetch_dataset(_url_params(f"{server.url}/bad", archive), 0, tmp_path / "out" / "raw", tmp_path / "dl")
    assert list((tmp_path / "out").iterdir()) == []
    assert not any(p.name.startswith(("evil", "outside")) for p in tmp_path.rglob("*"))


MB = 1 << 20
ZEROS = bytes(int(1.5 * MB))  # compresses to about 1.5 KB


def _packed(kind: str, members: dict[str, bytes]) -> bytes:
    """A compressed zip or tar.gz of ``members``."""
    return _zip(members, deflate=True) if kind == "zip" else _tar(members)


def _fetch_local(tmp_path, data: bytes, kind: str, **limits):
    archive = tmp_path / f"set.{kind}"
    archive.write_bytes(data)
    params = DownloadParams(source="local", path=str(archive), **limits)
    return fetch_dataset(params, 0, tmp_path / "out" / "raw", tmp_path / "dl")


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_bomb_member_is_refused_before_it_is_written(tmp_path, kind, monkeypatch):
    written = []
    monkeypatch.setattr(archives, "_write_member", lambda *args: written.append(args[2]))
    data = _packed(kind, {**GOOD, "set/photos/bomb.png": ZEROS})
    assert len(data) < 10_000
    with pytest.raises(DataError) as excinfo:
        _fetch_local(tmp_path, data, kind, max_member_mb=1)
    assert str(excinfo.value) == (f"set.{kind}: refusing to extract, member 'set/photos/bomb.png' extracts to more "
                                  "than 1.0 MiB (download.max_member_mb); a zip bomb? Raise the limit if the archive "
                                  "is trusted")
    assert "set/photos/bomb.png" not in written
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_total_extracted_size_is_bounded(tmp_path, kind):
    members = {**GOOD, **{f"set/paintings/{i}.png": ZEROS for i in range(3)}}
    with pytest.raises(DataError, match=r"more than 4\.0 MiB in all \(download\.max_extract_mb\)"):
        _fetch_local(tmp_path, _packed(kind, members), kind, max_member_mb=2, max_extract_mb=4)
    assert list((tmp_path / "out").iterdir()) == []


def test_links_are_counted_as_the_bytes_they_copy(tmp_path):
    links = {f"set/paintings/copy{i}.png": (SYM, "big.png") for i in range(3)}
    data = _tar({**GOOD, "set/paintings/big.png": ZEROS}, links)
    with pytest.raises(DataError, match=r"in all \(download\.max_extract_mb\)"):
        _fetch_local(tmp_path, data, "tar.gz", max_member_mb=2, max_extract_mb=5)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_compression_ratio_is_bounded(tmp_path, kind, monkeypatch):
    monkeypatch.setattr(archives, "RATIO_FLOOR", 0)  # as for an archive past 64 MiB extracted
    data = _packed(kind, {**GOOD, "set/photos/bomb.png": ZEROS})
    with pytest.raises(DataError, match=r"more than 100 times its own size of 0\.0 MiB \(download\.max_ratio\)"):
        _fetch_local(tmp_path, data, kind)
    assert _fetch_local(tmp_path, _packed(kind, GOOD), kind)["counts"]["photos"] == 2


def test_full_disk_while_extracting_is_one_line(tmp_path, monkeypatch):
    from artshift.errors import ResourceError

    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    monkeypatch.setattr(archives, "open", lambda path, mode: open("/dev/full", mode), raising=False)  # noqa: SIM115
    with pytest.raises(ResourceError, match=r"^extracting set\.zip: no space left on device; free some space"):
        _fetch_local(tmp_path, _zip(GOOD), "zip")
    assert list((tmp_path / "out").iterdir()) == []


def test_links_inside_the_archive_become_copies(tmp_path):
    links = {"set/photos/sym.png": (SYM, "a.png"), "set/paintings/hard.png": (HARD, "set/photos/b.png")}
    archive = tmp_path / "set.tar.gz"
    archive.write_bytes(_tar(GOOD, links))
    fetch_dataset(DownloadParams(source="local", path=str(archive)), 0, tmp_path / "raw", tmp_path / "dl")
    raw = tmp_path / "raw"
    assert (raw / "photos" / "sym.png").read_bytes() == GOOD["set/photos/a.png"]
    assert (raw / "paintings" / "hard.png").read_bytes() == GOOD["set/photos/b.png"]
    assert not any(p.is_symlink() for p in raw.rglob("*"))


def test_404_is_one_line_error_without_retries(serve, tmp_path):
    server = serve({})
    with pytest.raises(DataError) as excinfo:
        download_file(f"{server.url}/missing.zip", tmp_path / "m.zip", retries=3)
    assert str(excinfo.value) == f"download {server.url}/missing.zip: HTTP 404 Not Found"
    assert len(server.requests) == 1  # a 404 will not change: no retries


def test_unreachable_server_fails_after_retries(tmp_path):
    with pytest.raises(DataError, match=r"^download http://127.0.0.1:9/x.zip: .*gave up after 2 attempts\)$"):
        download_file("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", retries=1, timeout_s=2)


@pytest.mark.parametrize("prefix", ["", "top/"])
def test_missing_paintings_folder(serve, tmp_path, prefix):
    data = _zip({f"{prefix}photos/a.png": _png()})
    server = serve({"/set.zip": data})
    with pytest.raises(DataError, match=r"missing paintings/ \("):
        fetch_dataset(_url_params(f"{server.url}/set.zip", data), 0, tmp_path / "raw", tmp_path / "dl")


def test_local_folder(tmp_path):
    folder = tmp_path / "mine"
    for name, data in {"photos/x.png": _png(1), "paintings/y.jpg": _png(2), "paintings/sub/z.png": _png(3)}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    summary = fetch_dataset(DownloadParams(source="local", path=str(folder)), 0, tmp_path / "raw",
                            tmp_path / "downloads")
    assert summary["counts"] == {"photos": 1, "paintings": 2} and "archive_sha256" not in summary
    assert (tmp_path / "raw" / "paintings" / "sub" / "z.png").read_bytes() == _png(3)
    assert not (tmp_path / "downloads").exists()


def test_local_archive_is_verified_and_never_deleted(tmp_path):
    data = _tar(GOOD)
    archive = tmp_path / "set.tar.gz"
    archive.write_bytes(data)
    summary = fetch_dataset(DownloadParams(source="local", path=str(archive), sha256=_sha(data)), 0, tmp_path / "raw",
                            tmp_path / "dl")
    assert summary["counts"] == {"photos": 2, "paintings": 1} and summary["archive_sha256"] == _sha(data)
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch_dataset(DownloadParams(source="local", path=str(archive), sha256="1" * 64), 0, tmp_path / "raw2",
                      tmp_path / "dl")
    assert archive.read_bytes() == data and not (tmp_path / "raw2").exists()


def test_local_path_must_exist(tmp_path):
    with pytest.raises(DataError, match="download.path: .*nope does not exist"):
        fetch_dataset(DownloadParams(source="local", path=str(tmp_path / "nope")), 0, tmp_path / "raw", tmp_path / "dl")


def test_empty_domain_is_refused(tmp_path):
    folder = tmp_path / "mine"
    (folder / "photos").mkdir(parents=True)
    (folder / "paintings").mkdir()
    (folder / "photos" / "x.png").write_bytes(_png())
    (folder / "paintings" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no image files in paintings/"):
        fetch_dataset(DownloadParams(source="local", path=str(folder)), 0, tmp_path / "raw", tmp_path / "dl")
