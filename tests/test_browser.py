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
    """The real service under uvicorn on a free local port, in a background thread."""
    with background_server(create_app(tiny_onnx)) as url:
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
    """The page at ``url``, freshly loaded; fails the test on any uncaught script error."""
    page = browser_context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    response = page.goto(url + "/")
    assert response is not None and response.status == 200
    yield page
    page.close()
    assert not script_errors, f"uncaught errors in the page: {script_errors}"


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
    return Image.open(io.BytesIO(bytes(data)))


def _submit_and_wait(page) -> None:
    page.evaluate("document.body.dataset.state = ''")
    page.click("#submit")
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

    page.click("#style-gallery button[title='painting1']")
    page.wait_for_function("document.getElementById('style-shown').naturalWidth === 64")
    assert page.get_attribute("#style-gallery button[title='painting1']", "aria-pressed") == "true"
    page.eval_on_selector("#alpha", "el => { el.value = '0.5'; el.dispatchEvent(new Event('input')); }")
    assert page.text_content("#alpha-value") == "0.50"
    _submit_and_wait(page)
    model = StyleTransfer(tiny_adain)  # the result is exactly the model's on this photo, painting and alpha
    photo_image = Image.open(photo).convert("RGB")
    expected = model.stylize(photo_image, Image.open(gallery / "painting1.png").convert("RGB"), 0.5)
    shown = _result_png(page)
    assert shown.size == (96, 64) and np.array_equal(np.asarray(shown.convert("RGB")), np.asarray(expected))

    uploaded = tmp_path / "mine.png"
    Image.new("RGB", (50, 70), (20, 200, 90)).save(uploaded)
    page.set_input_files("#style-file", str(uploaded))
    page.wait_for_function("document.getElementById('style-shown').naturalHeight === 70")
    assert page.locator("#style-gallery button[aria-pressed='true']").count() == 0
    _submit_and_wait(page)
    expected = model.stylize(photo_image, Image.open(uploaded), 0.5)
    assert np.array_equal(np.asarray(_result_png(page).convert("RGB")), np.asarray(expected))
    assert page.text_content("#status") == "Done."

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "serve_page_adain.png"
    screenshot.unlink(missing_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == PNG_SIGNATURE


def test_a_one_style_model_shows_no_style_picker(page):
    page.wait_for_selector("body[data-style-picker='off']", state="attached")
    assert page.is_hidden("#style-picker") and page.locator("#style-shown").count() == 0
