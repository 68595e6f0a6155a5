"""The search page in headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
a text query, a dropped file with a negative weight, a modality filter, query-by-result,
media elements and a screenshot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from serverkit import API_KEY, shared_index, start_server

from bindsearch.server import ServerConfig

CHROMIUM = Path("/usr/bin/chromium")
#: The launch flags this environment's Chromium needs (no sandbox as root, no network chatter).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
#: Also copy the screenshots here when set (CI artifacts).
SCREENSHOT_ENV = "BINDSEARCH_SCREENSHOT_DIR"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)",
)


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return shared_index(tmp_path_factory)


@pytest.fixture(scope="module")
def server(collection):
    _, index_dir = collection
    running = start_server(ServerConfig(index_dir, api_key=API_KEY, device="cpu"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        # launch() gives every browser a new empty profile directory of its own.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url + "/")
        yield page
        browser.close()
        assert not errors, errors


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def _save(page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    target = os.environ.get(SCREENSHOT_ENV)
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def test_text_query_through_the_page(page, tmp_path):
    page.fill("#api-key", API_KEY)
    page.dispatch_event("#api-key", "change")
    expect(page.locator("#stats")).to_contain_text("items")
    page.fill("#text", "rain on a window")
    page.press("#text", "Enter")
    page.wait_for_selector("#results .card")
    cards = page.locator("#results .card")
    assert cards.count() == 12
    assert "results for +1 x text:rain on a window" in page.text_content("#status")
    scores = [float(t.split()[1]) for t in page.locator(".card .score").all_text_contents()]
    assert scores == sorted(scores, reverse=True)
    assert page.locator(".card img").count() >= 1  # image thumbnails
    assert page.locator(".card video").count() >= 1
    assert page.locator(".card audio").count() >= 1
    # thumbnails load through their signed links (no key header on <img>)
    first_image = page.locator(".card img").first
    expect(first_image).not_to_have_js_property("naturalWidth", 0)
    assert first_image.evaluate("img => img.complete && img.naturalWidth") > 0
    _save(page, tmp_path / "search-text.png")


def test_dropped_file_weight_filter_and_query_by_result(page, collection, tmp_path):
    media, _ = collection
    page.click("#parts li button[aria-label='remove part']")  # the text part from before
    page.set_input_files("#file-input", str(media / "sounds/rain.wav"))
    page.fill("#text", "engine")
    page.click("#add-text")
    sliders = page.locator("#parts input.weight")
    assert sliders.count() == 2
    sliders.nth(1).fill("-0.5")  # the text part: subtract it
    page.click(".chip[data-modality=audio]")
    page.click("#search")
    expect(page.locator("#status")).to_contain_text("results for")
    status = page.text_content("#status")
    assert "+1 x file:rain.wav" in status and "-0.5 x text:engine" in status
    modalities = page.locator(".card .badge").all_text_contents()
    assert modalities and set(modalities) == {"audio"}
    assert page.locator(".card .path").first.text_content().endswith("rain.wav")
    # audio players start at the hit's start_s (segment rows carry a media fragment)
    assert "#t=" in page.locator(".card audio").first.get_attribute("src")
    _save(page, tmp_path / "search-audio.png")
    page.check("#segments")  # moments: audio players start where the segment starts
    page.click("#search")
    expect(page.locator(".card audio[src$='#t=2']").first).to_be_attached()
    assert any(
        t.strip().endswith("s") for t in page.locator(".card .meta .muted").all_text_contents()
    )
    page.locator(".card .meta").nth(1).click()  # query by that result
    expect(page.locator("#status")).to_contain_text("x id:")
    assert page.locator("#parts li").count() == 1
    assert page.locator("#results .card").count() >= 1
