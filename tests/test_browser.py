"""End to end in a real browser: the upload page served by uvicorn, driven in headless Chromium.

Uses the system Chromium (Debian's ``chromium`` package) through Playwright; Playwright's own
browser downloads are never used. Without Chromium or Playwright the tests skip, unless
``ARTSHIFT_REQUIRE_BROWSER=1`` (set by CI), where a missing browser is a failure instead.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artshift.generator_io import ModelRef
from artshift.serve import background_server, create_app

CHROMIUM = Path(os.environ.get("ARTSHIFT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMEOUT_MS = 60_000
RUN_ID = "0f9c" * 8


def _unavailable(reason: str) -> None:
    if os.environ.get("ARTSHIFT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ARTSHIFT_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def start_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    return sync_playwright


@pytest.fixture(scope="module")
def base_url(tiny_onnx):
    """The real service under uvicorn on a free local port, in a background thread, serving the
    tiny model as if it were registry version 3."""
    model = ModelRef(tiny_onnx, "models:/artshift@champion", "3", RUN_ID)
    with background_server(create_app(tiny_onnx, model_ref=model)) as url:
        yield url


@pytest.fixture(scope="module")
def browser_context(start_playwright, tmp_path_factory):
    """A headless Chromium with a fresh, throw-away profile."""
    with start_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1024, "height": 720},
            timeout=TIMEOUT_MS,
        )
        try:
            yield context
        finally:
            context.close()


def _open_page(browser_context, url: str):
    """The page at ``url``, freshly loaded (with its examples listed); fails the test on any
    uncaught script error or any GET that fails (the favicon included)."""
    page = browser_context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    script_errors: list[str] = []
    failed_gets: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.on("response", lambda r: r.request.method == "GET" and r.status >= 400 and failed_gets.append(r.url))
    response = page.goto(url + "/")
    assert response is not None and response.status == 200
    page.wait_for_selector("#examples button[data-name='cat'] img")
    page.wait_for_function("document.querySelector('link[rel=icon]') !== null")
    yield page
    page.evaluate("fetch('/favicon.ico')")  # what the browser asks for on its own
    page.close()
    assert not script_errors, f"uncaught errors in the page: {script_errors}"
    assert not failed_gets, f"failed requests: {failed_gets}"


@pytest.fixture
def page(browser_context, base_url):
    """The upload page of a one-style model."""
    yield from _open_page(browser_context, base_url)


def _gradient_png(path: Path, width: int = 96, height: int = 64) -> Path:
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    pixels = np.stack([x, y, 255 - x], axis=-1).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _natural_size(page, selector: str) -> tuple[int, int]:
    size = page.eval_on_selector(selector, "img => [img.naturalWidth, img.naturalHeight]")
    return tuple(size)


def test_upload_page_stylizes_a_photo(page, tmp_path):
    photo = _gradient_png(tmp_path / "gradient.png")
    page.set_input_files("#file", str(photo))
    page.click("#submit")
    page.wait_for_selector("body[data-state='done']", state="attached")

    assert _natural_size(page, "#after") == (96, 64)
    page.wait_for_function("document.getElementById('before').complete")
    assert _natural_size(page, "#before") == (96, 64)
    assert page.text_content("#status") == "Done."
    assert page.get_attribute("#status", "class") in (None, "")
    assert page.text_content("#model") == (
        f"Model: models:/artshift@champion (version 3, run {RUN_ID[:8]}, on CPUExecutionProvider)")
    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename == "gradient-artshift.png"
    with Image.open(download.path()) as result:
        assert result.format == "PNG" and result.size == (96, 64)

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "serve_page.png"
    screenshot.unlink(missing_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.is_file()
    assert screenshot.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(screenshot) as shot:
        assert shot.format == "PNG" and shot.width >= 800


def test_upload_page_reports_a_non_image(page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello, this is not a photo\n")
    page.set_input_files("#file", str(notes))
    page.click("#submit")
    page.wait_for_selector("body[data-state='error']", state="attached")

    status = page.locator("#status")
    assert status.get_attribute("class") == "error"
    text = status.text_content()
    assert text.startswith("Error: ") and "not a supported image" in text
    assert status.is_visible()
    assert page.get_attribute("#after", "src") is None


def test_an_example_photo_is_one_click(page):
    page.click("#examples button[data-name='cat']")
    page.wait_for_selector("body[data-state='done']", state="attached")
    assert _natural_size(page, "#after") == (320, 213)
    assert page.is_visible("#download") and page.get_attribute("#download", "download") == "cat-artshift.png"

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve_page_example.png"), full_page=True)


def test_a_dropped_photo_is_stylized(page, tmp_path):
    photo = _gradient_png(tmp_path / "dropped.png", width=50, height=70).read_bytes()
    page.evaluate("""bytes => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(bytes)], "dropped.png", { type: "image/png" }));
        const zone = document.getElementById("drop");
        for (const type of ["dragenter", "dragover", "drop"]) {
            zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }
    }""", list(photo))
    page.wait_for_selector("body[data-state='done']", state="attached")
    assert _natural_size(page, "#after") == (50, 70)
    assert page.get_attribute("#download", "download") == "dropped-artshift.png"
    assert "over" not in (page.get_attribute("#drop", "class") or "")


# The style picker, with an AdaIN model (a tiny random one) and a gallery of three paintings.

@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gallery")
    rng = np.random.default_rng(0)
    for index, colour in enumerate([(230, 60, 40), (40, 90, 220), (240, 210, 60)]):
        pixels = np.clip(np.array(colour) + rng.normal(0, 25, (64, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"painting{index}.png")
    return folder


@pytest.fixture(scope="module")
def adain_url(tiny_adain, gallery):
    with background_server(create_app(tiny_adain, styles=gallery)) as url:
        yield url


@pytest.fixture
def adain_page(browser_context, adain_url):
    """The upload page of an AdaIN model, its style picker set up."""
    for page in _open_page(browser_context, adain_url):
        page.wait_for_selector("body[data-style-picker='ready']", state="attached")
        yield page


def _result_png(page) -> Image.Image:
    """The result the page shows, fetched from its blob URL inside the page."""
    data = page.evaluate("""async () => {
        const response = await fetch(document.getElementById("after").src);
        return Array.from(new Uint8Array(await response.arrayBuffer()));
    }""")
    return Image.open(io.BytesIO(bytes(data))).convert("RGB")


def _wait_done_after(page, action) -> None:
    """Run ``action`` (one that repaints) and wait until the page shows its result."""
    page.evaluate("document.body.dataset.state = ''")
    action()
    page.wait_for_selector("body[data-state='done']", state="attached")


def test_style_picker_paints_the_photo_in_a_gallery_or_uploaded_style(adain_page, tiny_adain, gallery, tmp_path):
    from artshift.inference import StyleTransfer

    page = adain_page
    photo = _gradient_png(tmp_path / "gradient.png")
    assert page.is_visible("#style-picker")
    assert page.locator("#style-gallery img").evaluate_all("imgs => imgs.map(i => i.alt)") == [
        "style painting0", "style painting1", "style painting2"]
    page.set_input_files("#file", str(photo))
    page.click("#submit")  # no style picked yet
    page.wait_for_selector("body[data-state='error']", state="attached")
    assert page.text_content("#status") == "Error: pick a style from the gallery or upload one"

    _wait_done_after(page, lambda: page.click("#style-gallery button[title='painting1']"))  # repaints at once
    assert page.get_attribute("#style-gallery button[title='painting1']", "aria-pressed") == "true"
    assert _natural_size(page, "#style-shown") == (64, 64)
    model = StyleTransfer(tiny_adain)  # each result shown is exactly the model's on this photo, painting and alpha
    photo_image = Image.open(photo).convert("RGB")
    painting = Image.open(gallery / "painting1.png").convert("RGB")
    assert np.array_equal(np.asarray(_result_png(page)), np.asarray(model.stylize(photo_image, painting, 1.0)))

    slide = "el => { el.value = '0.5'; for (const e of ['input', 'change']) el.dispatchEvent(new Event(e)); }"
    _wait_done_after(page, lambda: page.eval_on_selector("#alpha", slide))
    assert page.text_content("#alpha-value") == "0.50"
    shown = _result_png(page)
    expected = model.stylize(photo_image, painting, 0.5)
    assert shown.size == (96, 64) and np.array_equal(np.asarray(shown), np.asarray(expected))

    uploaded = tmp_path / "mine.png"
    Image.new("RGB", (50, 70), (20, 200, 90)).save(uploaded)
    _wait_done_after(page, lambda: page.set_input_files("#style-file", str(uploaded)))
    page.wait_for_function("document.getElementById('style-shown').naturalHeight === 70")
    assert page.locator("#style-gallery button[aria-pressed='true']").count() == 0
    expected = model.stylize(photo_image, Image.open(uploaded), 0.5)
    assert np.array_equal(np.asarray(_result_png(page)), np.asarray(expected))
    assert page.text_content("#status") == "Done."

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "serve_page_adain.png"
    screenshot.unlink(missing_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == PNG_SIGNATURE


def test_a_one_style_model_shows_no_style_picker(page):
    page.wait_for_selector("body[data-style-picker='off']", state="attached")
    assert page.is_hidden("#style-picker") and page.locator("#style-shown").count() == 0
