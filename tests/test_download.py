"""The url/local sources against a real HTTP server on 127.0.0.1."""

import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from artshift.config import DownloadParams
from artshift.data import sources
from artshift.data.sources import download_file, fetch_dataset
from artshift.errors import DataError


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return buffer.getvalue()


GOOD = {"set/photos/a.png": _png(), "set/photos/b.png": _png(), "set/paintings/p.png": _png()}


class Server:
    """Serves ``files`` with Range support; ``drop_first`` cuts the first response in half."""

    def __init__(self, files: dict[str, bytes], drop_first: bool = False):
        self.files, self.drop_first, self.requests = files, drop_first, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.headers.get("Range"))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.drop_first:
                    server.drop_first = False
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
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


def _params(url, data, **extra):
    return DownloadParams(source="url", url=url, sha256=hashlib.sha256(data).hexdigest(), retries=3, **extra)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    real = sources.download_file
    monkeypatch.setattr(sources, "download_file", lambda *a, **k: real(*a, **{**k, "backoff_s": 0.0}))


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_url_archive_with_top_folder(serve, tmp_path, kind):
    data = _zip(GOOD) if kind == "zip" else _tar(GOOD)
    server = serve({f"/set.{kind}": data})
    manifest = fetch_dataset(_params(f"{server.url}/set.{kind}", data), 0, tmp_path / "raw", tmp_path / "dl")
    assert manifest["counts"] == {"photos": 2, "paintings": 1}
    assert manifest["archive_sha256"] == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "raw" / "photos" / "a.png").read_bytes() == _png()


def test_dropped_connection_is_resumed_with_range(serve, tmp_path):
    data = _zip({**GOOD, "set/photos/big.bin": bytes(range(256)) * 2000})  # > several read chunks
    server = serve({"/set.zip": data}, drop_first=True)
    path = download_file(f"{server.url}/set.zip", tmp_path / "set.zip", hashlib.sha256(data).hexdigest(),
                         retries=2, backoff_s=0.0)
    assert path.read_bytes() == data
    assert server.requests[0] is None and len(server.requests) == 2
    resumed_at = int(server.requests[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= len(data) // 2
    assert not (tmp_path / "set.zip.part").exists()


def test_sha256_mismatch_extracts_nothing(serve, tmp_path):
    data = _zip(GOOD)
    server = serve({"/set.zip": data})
    params = DownloadParams(source="url", url=f"{server.url}/set.zip", sha256="0" * 64)
    with pytest.raises(DataError, match="sha256 mismatch: expected 0000"):
        fetch_dataset(params, 0, tmp_path / "raw", tmp_path / "dl")
    assert not (tmp_path / "raw").exists()
    assert list((tmp_path / "dl").iterdir()) == []


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (_zip({**GOOD, "../evil.png": b"x"}), "'..' in path"),
        (_zip({**GOOD, "/etc/evil.png": b"x"}), "absolute path"),
        (_tar(GOOD, links={"set/photos/link.png": "../../../etc/passwd"}), "leaves the target folder"),
    ],
)
def test_unsafe_archives_are_refused(serve, tmp_path, archive, reason):
    server = serve({"/bad.tar.gz": archive})
    with pytest.raises(DataError, match=reason):
        fetch_dataset(_params(f"{server.url}/bad.tar.gz", archive), 0, tmp_path / "raw", tmp_path / "dl")
    assert not (tmp_path / "raw").exists() and not (tmp_path / "etc").exists()


def test_404_is_one_line_error(serve, tmp_path):
    server = serve({})
    with pytest.raises(DataError) as excinfo:
        download_file(f"{server.url}/missing.zip", tmp_path / "m.zip", retries=2, backoff_s=0.0)
    assert str(excinfo.value) == f"download {server.url}/missing.zip: HTTP 404"
    assert len(server.requests) == 1  # a 404 is not retried


def test_unreachable_server_fails_after_retries(tmp_path):
    with pytest.raises(DataError, match="after 2 attempts"):
        download_file("http://127.0.0.1:9/nothing.zip", tmp_path / "n.zip", retries=1, backoff_s=0.0, timeout_s=2)


def test_missing_paintings_folder(serve, tmp_path):
    data = _zip({"photos/a.png": _png()})
    server = serve({"/set.zip": data})
    with pytest.raises(DataError, match="missing paintings"):
        fetch_dataset(_params(f"{server.url}/set.zip", data), 0, tmp_path / "raw", tmp_path / "dl")


def test_local_folder_and_archive(tmp_path):
    folder = tmp_path / "mine"
    for name, data in {"photos/x.png": _png(), "paintings/y.png": _png(), "paintings/z.png": _png()}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    manifest = fetch_dataset(DownloadParams(source="local", path=str(folder)), 0, tmp_path / "raw1")
    assert manifest["counts"] == {"photos": 1, "paintings": 2}
    archive = tmp_path / "set.tar.gz"
    archive.write_bytes(_tar(GOOD))
    manifest = fetch_dataset(DownloadParams(source="local", path=str(archive)), 0, tmp_path / "raw2")
    assert manifest["counts"] == {"photos": 2, "paintings": 1}
    with pytest.raises(DataError, match="does not exist"):
        fetch_dataset(DownloadParams(source="local", path=str(tmp_path / "nope")), 0, tmp_path / "raw3")
