import asyncio
import io
import logging
import os
import socket
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from artshift.images import SizeLimits
from artshift.limits import Limits
from artshift.serve import background_server, create_app


def _png(size=(48, 36), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(tiny_onnx):
    return TestClient(create_app(tiny_onnx, Limits(max_body_bytes=200_000, size=SizeLimits(max_pixels=1_000_000))))


def test_healthz_and_page(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["provider"] == "CPUExecutionProvider"
    page = client.get("/")
    assert page.status_code == 200 and 'type="file"' in page.text and "/v1/stylize" in page.text


@pytest.mark.parametrize(("fmt", "expected"), [("png", "PNG"), ("jpeg", "JPEG")])
def test_stylize_raw_body_keeps_size(client, fmt, expected):
    response = client.post(f"/v1/stylize?format={fmt}", content=_png((48, 36)))
    assert response.status_code == 200
    assert response.headers["content-type"] == f"image/{fmt}"
    out = Image.open(io.BytesIO(response.content))
    assert out.format == expected and out.size == (48, 36)


def test_stylize_multipart_and_any_mode(client):
    response = client.post("/v1/stylize", files={"file": ("../../etc/evil.png", _png(mode="P"), "image/png")})
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == (48, 36)


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"hello, not an image", 415, "not a supported image"),
        (b"", 400, "empty request body"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 50, 415, "upload"),
    ],
)
def test_bad_uploads_get_4xx_with_message(client, body, status, needle):
    response = client.post("/v1/stylize", content=body)
    assert response.status_code == status
    assert needle in response.json()["error"]


def test_body_limit_and_decompression_bomb(client):
    assert client.post("/v1/stylize", content=b"x" * 200_001).status_code == 413
    bomb = io.BytesIO()
    Image.new("L", (2000, 1000)).save(bomb, format="PNG")  # 2 MP > max_pixels, tiny file
    response = client.post("/v1/stylize", content=bomb.getvalue())
    assert response.status_code == 413 and "too large" in response.json()["error"]


def test_bad_format_is_400(client):
    response = client.post("/v1/stylize?format=gif", content=_png())
    assert response.status_code == 400 and "format" in response.json()["error"]


def _png_of(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def model_runs(monkeypatch):
    """Counts the ONNX Runtime runs of every stylizer (the work a request costs)."""
    from artshift.inference import OnnxGenerator

    runs = []
    real_run = OnnxGenerator._run
    monkeypatch.setattr(OnnxGenerator, "_run", lambda self, inputs, release=False: runs.append(inputs.shape)
                        or real_run(self, inputs, release))
    return runs


@pytest.fixture(scope="module")
def default_client(tiny_onnx):
    return TestClient(create_app(tiny_onnx))


@pytest.mark.parametrize(("image", "needle"), [
    # 2 KB, 49.5 s of service time before
    (Image.new("1", (4000, 4000)), "too large to stylise (4000x4000 takes 25 tiles of 1024 px, limit 20)"),
    (Image.new("1", (100_000, 1)), "side too long (100000x1, limit 8192 px)"),  # 178 bytes: 9.2 s before
    (Image.new("1", (300_000, 1)), "side too long (300000x1, limit 8192 px)"),  # 372 bytes: 43.5 s before
    (Image.new("1", (8000, 900)), "too elongated (8000x900, aspect ratio 8.9, limit 8)"),
])
def test_tiny_uploads_of_huge_images_are_refused_before_any_work(default_client, model_runs, image, needle):
    body = _png_of(image)
    assert len(body) < 3000
    response = default_client.post("/v1/stylize", content=body)
    assert response.status_code == 413 and response.json()["error"] == f"upload: image {needle}"
    assert model_runs == []


def test_stylising_stops_at_the_time_budget(tiny_onnx, model_runs, monkeypatch):
    client = TestClient(create_app(tiny_onnx, Limits(time_budget_s=2.5), tile=160))
    clock = iter(range(100))
    monkeypatch.setattr("artshift.serve.monotonic", lambda: next(clock))  # each look at the clock: 1 s later
    response = client.post("/v1/stylize", content=_png((400, 200)))
    assert response.status_code == 413
    assert response.json()["error"] == ("upload: stylising took over the 2.5 s time budget (2 of 8 tiles done); "
                                        "send a smaller image")
    assert len(model_runs) == 2


def test_multipart_over_1mb_is_parsed_in_memory(tiny_onnx, monkeypatch):
    client = TestClient(create_app(tiny_onnx, Limits(max_body_bytes=4 * 2**20)))
    big = _png((720, 720))
    assert len(big) > 2**20  # starlette's form parser spools parts above 1 MB to a temporary file
    created = []
    real_open = os.open

    def spy(path, flags, *args, **kwargs):
        if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            created.append(path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    response = client.post("/v1/stylize", files={"note": (None, "hello"), "file": ("big.png", big, "image/png")})
    assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).size == (720, 720)
    assert created == []
    assert client.post("/v1/stylize", files={"other": ("a.png", big, "image/png")}).json()["error"] == (
        "multipart upload needs a 'file' field")
    bad = client.post("/v1/stylize", content=b"--x\r\nnot a part", headers={"content-type": "multipart/form-data"})
    assert bad.status_code == 400 and "boundary" in bad.json()["error"]


def test_a_client_that_disconnects_mid_upload_is_one_log_line(tiny_onnx):
    app = create_app(tiny_onnx)
    messages = [{"type": "http.request", "body": _png()[:100], "more_body": True}, {"type": "http.disconnect"}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/stylize", "raw_path": b"/v1/stylize", "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"image/png")], "client": ("10.0.0.7", 5555), "server": ("test", 80)}
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("artshift.serve")
    logger.addHandler(handler)
    try:
        asyncio.run(app(scope, receive, send))  # raised ClientDisconnect (a traceback per client) before
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == [
        "upload from 10.0.0.7:5555 abandoned: client disconnected after 100 bytes"]


def _raw_exchange(url: str, data: bytes, wait_s: float) -> tuple[bytes, float]:
    """Send ``data`` on a fresh connection and read until the server closes it (or ``wait_s``)."""
    host, port = url.removeprefix("http://").split(":")
    began = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait_s) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except TimeoutError:
            return received + b"<still open>", time.monotonic() - began
    return received, time.monotonic() - began


def test_slow_headers_and_bodies_are_cut_off(tiny_onnx):
    limits = Limits(header_timeout_s=0.5, body_timeout_s=0.5)
    with background_server(create_app(tiny_onnx, limits), limits) as url:
        received, seconds = _raw_exchange(url, b"POST /v1/stylize HTTP/1.1\r\nHost: x\r\n", wait_s=10)
        assert received == b"" and seconds < 5  # closed: the headers never completed
        received, seconds = _raw_exchange(url, b"", wait_s=10)
        assert received == b"" and seconds < 5  # connected, sent nothing
        head = b"POST /v1/stylize HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n"
        received, seconds = _raw_exchange(url, head + _png()[:100], wait_s=10)
        assert received.startswith(b"HTTP/1.1 408 ") and b"not complete within 0.5 s" in received and seconds < 5
        with httpx.Client(base_url=url, trust_env=False) as client:  # a normal client is unaffected
            assert client.post("/v1/stylize", content=_png()).status_code == 200


def test_favicon_and_examples_are_served_and_nothing_else(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(icon.content)).size == (32, 32)
    listed = client.get("/examples").json()
    assert [example["name"] for example in listed] == ["coffee", "cat", "rocket"]
    for example in listed:
        photo = client.get(example["url"])
        assert photo.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(photo.content)).width == 320
    for probe in ("/examples/nope.jpg", "/examples/..%2Fpage.jpg", "/examples/../serve.jpg", "/examples/%2e%2e.jpg"):
        response = client.get(probe)
        assert response.status_code == 404 and response.headers["content-type"] == "application/json", probe


def test_docs_describe_an_image_in_and_an_image_out(client):
    operation = client.get("/openapi.json").json()["paths"]["/v1/stylize"]["post"]
    body = operation["requestBody"]["content"]
    assert body["image/*"]["schema"] == {"type": "string", "format": "binary"}
    assert body["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    assert set(operation["responses"]["200"]["content"]) == {"image/png", "image/jpeg"}
    assert {"413", "415", "503"} <= set(operation["responses"])
    query = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert query["format"]["schema"]["enum"] == ["png", "jpeg"]
    assert client.get("/docs").status_code == 200
    # What Swagger UI's "Try it out" sends for image/*: the file as the body with that content type.
    response = client.post("/v1/stylize", content=_png((40, 30)), headers={"content-type": "image/*"})
    assert response.status_code == 200 and Image.open(io.BytesIO(response.content)).size == (40, 30)
