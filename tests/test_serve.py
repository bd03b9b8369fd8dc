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
    monkeypatch.setattr(OnnxGenerator, "_run", lambda self, inputs: runs.append(inputs.shape)
                        or real_run(self, inputs))
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


def _metric(text: str, line_start: str) -> float:
    """The value of the one sample in Prometheus text ``text`` whose line starts with ``line_start``."""
    (value,) = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(line_start)]
    return float(value)


def test_metrics_count_requests_by_route_and_status(tiny_onnx):
    client = TestClient(create_app(tiny_onnx))
    assert client.post("/v1/stylize", content=_png()).status_code == 200
    assert client.post("/v1/stylize", content=b"not an image").status_code == 415
    assert client.get("/healthz").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"  # Prometheus' default
    text = response.text
    assert _metric(text, 'artshift_http_requests_total{route="/v1/stylize",status="200"}') == 1
    assert _metric(text, 'artshift_http_requests_total{route="/v1/stylize",status="415"}') == 1
    assert _metric(text, 'artshift_http_requests_total{route="/healthz",status="200"}') == 1
    assert _metric(text, 'artshift_http_requests_total{route="unmatched",status="404"}') == 1  # never the raw path
    assert "/no/such/page" not in text
    assert _metric(text, 'artshift_http_request_duration_seconds_count{route="/v1/stylize"}') == 2
    assert _metric(text, 'artshift_http_request_duration_seconds_bucket{le="+Inf",route="/v1/stylize"}') == 2
    assert _metric(text, "artshift_queue_depth ") == 0 and _metric(text, "artshift_stylize_in_progress ") == 0
    assert _metric(text, f'artshift_model_info{{model="{tiny_onnx}",provider="CPUExecutionProvider",'
                         'run_id="",version=""}') == 1


def test_queue_depth_follows_the_requests_waiting():
    from prometheus_client import CollectorRegistry, Gauge

    from artshift.serve import Gate

    registry = CollectorRegistry()
    waiting, busy = Gauge("waiting", "", registry=registry), Gauge("busy", "", registry=registry)
    gate = Gate(concurrency=1, queue=1, waiting=waiting, busy=busy)

    async def scenario():
        release = asyncio.Event()

        async def hold():
            async with gate:
                await release.wait()

        first = asyncio.create_task(hold())
        await asyncio.sleep(0)
        second = asyncio.create_task(hold())
        await asyncio.sleep(0)
        seen = (registry.get_sample_value("waiting"), registry.get_sample_value("busy"))
        second.cancel()  # a request given up while it waits leaves the queue
        await asyncio.sleep(0)
        after_cancel = (registry.get_sample_value("waiting"), gate.admitted)
        release.set()
        await first
        return seen, after_cancel, (registry.get_sample_value("waiting"), registry.get_sample_value("busy"))

    assert asyncio.run(scenario()) == ((1, 1), (0, 1), (0, 0))


@pytest.mark.parametrize(("threads", "workers", "expected"), [(0, 1, 0), (0, 2, 4), (3, 2, 3), (8, 1, 8)])
def test_worker_threads_share_the_cores(threads, workers, expected):
    from artshift.serve import worker_threads

    assert worker_threads(threads, workers, cores=8) == expected


@pytest.mark.parametrize(("args", "message"), [
    (["--threads", "3", "--workers", "3"], "error: --threads 3 x --workers 3 = 9 threads for 8 CPU cores; "
                                           "use --threads 2 or --threads 0"),
    (["--workers", "9"], "error: --workers 9: more than the 8 CPU cores of this machine"),
    (["--workers", "0"], "--workers: must be > 0, got 0"),
])
def test_serve_refuses_more_threads_than_cores(monkeypatch, capsys, tiny_onnx, args, message):
    from artshift import cli

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    try:
        code = cli.main(["serve", "--model", str(tiny_onnx), *args])
    except SystemExit as exc:  # argparse's own check
        code = exc.code
    assert code == 2 and message in capsys.readouterr().err


def test_serve_binds_this_machine_only_unless_told():
    from artshift import cli

    assert cli.build_parser().parse_args(["serve"]).host == "127.0.0.1"
    assert cli.build_parser().parse_args(["serve", "--host", "0.0.0.0"]).host == "0.0.0.0"


@pytest.fixture
def bench(monkeypatch):
    """The service benchmarks' helpers (benchmarks/service_runner.py, benchmarks/serve_faults.py)."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import serve_faults
    import service_runner

    return service_runner, serve_faults


def _parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def test_two_workers_both_answer_and_share_their_metrics(tiny_onnx, tmp_path, bench):
    import glob

    running_service = bench[0].running_service
    metric_folders = set(glob.glob("/dev/shm/artshift-metrics-*"))
    log = tmp_path / "serve.log"
    with running_service(tiny_onnx, ["--workers", "2", "--header-timeout", "0.5"], log) as (url, server):
        workers, asked = set(), 0
        while len(workers) < 2 and asked < 200:  # a new connection each time: the kernel hands it to either worker
            workers.add(httpx.get(f"{url}/healthz", headers={"Connection": "close"}, trust_env=False).json()["worker"])
            asked += 1
        assert len(workers) == 2 and {_parent_pid(pid) for pid in workers} == {server.pid}
        with httpx.Client(base_url=url, trust_env=False) as client:
            answer = client.post("/v1/stylize", content=_png((40, 30)))
            assert answer.status_code == 200 and Image.open(io.BytesIO(answer.content)).size == (40, 30)
            text = client.get("/metrics").text  # answered by one worker, counting both
        assert _metric(text, 'artshift_http_requests_total{route="/healthz",status="200"}') == asked + 1  # + start-up
        assert _metric(text, 'artshift_http_requests_total{route="/v1/stylize",status="200"}') == 1
        for _ in range(4):  # the header deadline holds in every worker
            received, seconds = _raw_exchange(url, b"GET /healthz HTTP/1.1\r\n", wait_s=10)
            assert received == b"" and seconds < 5
    assert server.returncode == 0
    output = log.read_text()
    assert "Uvicorn running on http://127.0.0.1:" in output and "Traceback" not in output  # loopback by default
    assert set(glob.glob("/dev/shm/artshift-metrics-*")) == metric_folders  # the metric files are gone


def test_a_mix_of_good_bad_and_slow_requests_gets_no_5xx(tiny_onnx, tmp_path, bench):
    """issue 17's service case, small: serve_faults.py runs 1,000 requests over 64 connections."""
    service_runner, faults = bench
    setup = faults.Setup(header_s=0.6, body_s=0.9, queue=16)
    requests = faults.draw(len(faults.KINDS) * 4, seed=1)
    assert {request.kind for request in requests} == set(faults.KINDS)
    with service_runner.running_service(tiny_onnx, setup.flags(), tmp_path / "serve.log") as (url, _):
        outcomes = asyncio.run(faults.run_mix(url, requests, 12, faults.references(tiny_onnx), setup, tmp_path))
    assert faults.server_errors(outcomes) == 0
    assert faults.wrong(outcomes) == {kind: 0 for kind in outcomes}, faults.table(outcomes)
    assert sum(counts[200] for kind, counts in outcomes.items() if faults.KINDS[kind][1]) == sum(
        1 for request in requests if faults.KINDS[request.kind][1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serve.log"]  # the ../ file name wrote nothing
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_a_model_no_worker_could_load_is_one_line_before_any_worker_starts(tmp_path, capsys, monkeypatch):
    from artshift import cli

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    assert cli.main(["serve", "--model", str(bad), "--workers", "2", "--threads", "1"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {bad}: not a loadable ONNX model")


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


# AdaIN models: the photo as 'file', the painting as 'style', and alpha; a gallery of style images.

@pytest.fixture(scope="module")
def gallery_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("styles")
    for name, colour, size in (("b_blue.png", (30, 40, 250), (300, 200)), ("a_red.jpg", (250, 40, 40), (40, 40))):
        Image.new("RGB", size, colour).save(folder / name)
    (folder / "notes.txt").write_text("not a style")
    (folder / "sub").mkdir()
    Image.new("RGB", (20, 20)).save(folder / "sub" / "hidden.png")
    return folder


@pytest.fixture(scope="module")
def adain_client(tiny_adain, gallery_dir):
    limits = Limits(max_body_bytes=200_000, size=SizeLimits(max_pixels=1_000_000))
    return TestClient(create_app(tiny_adain, limits, tile=64, styles=gallery_dir))


def _pair(photo=(48, 36), style=(30, 20), alpha=None):
    data = {} if alpha is None else {"alpha": alpha}
    return {"files": {"file": ("p.png", _png(photo), "image/png"), "style": ("s.png", _png(style), "image/png")},
            "data": data}


def test_adain_stylizes_a_photo_in_the_style_sent_with_it(adain_client, tiny_adain):
    from artshift.inference import StyleTransfer

    response = adain_client.post("/v1/stylize", **_pair(alpha="0.6"))
    assert response.status_code == 200
    out = Image.open(io.BytesIO(response.content))
    assert out.size == (48, 36)
    expected = StyleTransfer(tiny_adain).stylize(Image.open(io.BytesIO(_png((48, 36)))),
                                                 Image.open(io.BytesIO(_png((30, 20)))), 0.6)
    assert np.array_equal(np.asarray(out), np.asarray(expected))
    by_query = adain_client.post("/v1/stylize?alpha=0.6&format=png", **_pair())
    assert by_query.content == response.content
    assert adain_client.post("/v1/stylize", **_pair(alpha="0")).content != response.content


@pytest.mark.parametrize(("request_args", "needle"), [
    ({"content": _png()}, "needs a style image: send a multipart upload"),
    ({"files": {"file": ("p.png", _png(), "image/png")}}, "needs a style image"),
    (_pair(alpha="1.5"), "alpha must be a number in [0, 1] (0 the photo, 1 the full style), got '1.5'"),
    (_pair(alpha="strong"), "got 'strong'"),
])
def test_adain_requests_without_a_usable_style_or_alpha_are_400(adain_client, request_args, needle):
    response = adain_client.post("/v1/stylize", **request_args)
    assert response.status_code == 400 and needle in response.json()["error"]


def test_a_style_or_alpha_sent_to_a_one_style_model_is_400(client):
    for response in (client.post("/v1/stylize", **_pair()), client.post("/v1/stylize?alpha=0.5", content=_png())):
        assert response.status_code == 400
        assert response.json() == {"error": "this model repaints in the one style it learned: it takes no 'style' "
                                            "image or 'alpha'"}


def test_the_limits_apply_to_the_style_image_too(adain_client):
    bomb = io.BytesIO()
    Image.new("L", (2000, 1000)).save(bomb, format="PNG")
    files = {"file": ("p.png", _png(), "image/png"), "style": ("s.png", bomb.getvalue(), "image/png")}
    response = adain_client.post("/v1/stylize", files=files)
    assert response.status_code == 413 and response.json()["error"].startswith("style: image too large")
    files["style"] = ("s.txt", b"not an image", "text/plain")
    response = adain_client.post("/v1/stylize", files=files)
    assert response.status_code == 415 and response.json()["error"].startswith("style: ")
    response = adain_client.post("/v1/stylize", **_pair(photo=(80, 40)))  # tile=64: one pass up to 64 px
    assert response.status_code == 413 and response.json()["error"] == (
        "upload: image too large for one AdaIN pass (80x40, sides up to 64 px); AdaIN's statistics are global, "
        "so photos are not tiled: send a smaller image")
    files = {"file": ("p.png", _png(), "image/png"), "style": ("s.png", b"x" * 200_000, "image/png")}
    assert adain_client.post("/v1/stylize", files=files).status_code == 413  # the body holds both


def test_the_gallery_serves_its_listed_styles_by_index_only(adain_client, gallery_dir, client):
    listing = adain_client.get("/v1/styles").json()
    assert listing["takes_style"] is True
    assert [(s["index"], s["name"]) for s in listing["styles"]] == [(0, "a_red"), (1, "b_blue")]
    thumb = adain_client.get(listing["styles"][1]["thumbnail"])
    assert thumb.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(thumb.content)).size == (96, 64)
    image = adain_client.get("/v1/styles/1")
    assert image.headers["content-type"] == "image/png" and Image.open(io.BytesIO(image.content)).size == (300, 200)
    for bad in ("/v1/styles/2", "/v1/styles/-1", "/v1/styles/2/thumbnail"):
        response = adain_client.get(bad)
        assert response.status_code == 404 and "no style" in response.json()["error"]
    for path in ("/v1/styles/..%2Fsub%2Fhidden.png", "/v1/styles/sub/hidden.png", "/v1/styles/a_red.jpg"):
        assert adain_client.get(path).status_code in (404, 422)
    assert client.get("/v1/styles").json() == {"takes_style": False, "styles": []}


def test_gallery_thumbnails_are_cached_in_memory(tmp_path, tiny_adain):
    folder = tmp_path / "styles"
    folder.mkdir()
    Image.new("RGB", (50, 50), (200, 10, 10)).save(folder / "only.png")
    client = TestClient(create_app(tiny_adain, styles=folder))
    first = client.get("/v1/styles/0/thumbnail").content
    (folder / "only.png").unlink()
    assert client.get("/v1/styles/0/thumbnail").content == first
    gone = client.get("/v1/styles/0")
    assert gone.status_code == 404 and gone.json()["error"].startswith("style 0 cannot be read")


def test_serve_styles_flag_must_be_a_folder(tmp_path, tiny_adain, capsys):
    from artshift.cli import main

    code = main(["serve", "--model", str(tiny_adain), "--styles", str(tmp_path / "nope")])
    assert code == 2 and capsys.readouterr().err.strip() == f"error: --styles: {tmp_path / 'nope'}: not a folder"
