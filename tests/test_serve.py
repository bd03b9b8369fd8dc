import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from artshift.images import SizeLimits
from artshift.limits import Limits
from artshift.serve import create_app


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
