"""Every download link downloads, in Chromium: a file (not a page filled with bytes), with its name and type. On a
fake run (tests/trainer/sticker_helpers.py): a generated picture's PNG and GIF, the whole generation's zip, the
favourites' zip, a sticker's PNG and SVG, and a sticker pack's zip."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from playwright.sync_api import expect

from tests.trainer.sticker_helpers import GEN2_ID, RUN_ID, make_run

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "gif": b"GIF8", "zip": b"PK\x03\x04"}


def download(page, locator, suffix: str) -> bytes:
    """Click `locator`, expect a download whose suggested name ends with `suffix`; its bytes. The page stays put."""
    before = page.url
    with page.expect_download(timeout=30_000) as info:
        locator.click()
    dl = info.value
    assert dl.suggested_filename.endswith(suffix), dl.suggested_filename
    assert dl.failure() is None
    data = Path(dl.path()).read_bytes()
    assert page.url == before and page.locator("h1").count() == 1  # htmx did not swap the bytes into the page
    return data


def test_every_download_link_downloads_a_file_of_its_type(page, instance_path):
    make_run(instance_path, checkpoints=True)
    page.goto(f"/train/runs/{RUN_ID}/generate/{GEN2_ID}")
    page.wait_for_function("() => window.htmx !== undefined")
    card = page.locator(".gen-card").first
    assert download(page, card.locator("a.dl-png"), ".png").startswith(MAGIC["png"])
    assert download(page, card.locator("a.dl-gif"), ".gif").startswith(MAGIC["gif"])
    zipped = download(page, page.locator("#generation-zip"), f"{RUN_ID}-{GEN2_ID}.zip")
    assert zipped.startswith(MAGIC["zip"]) and "manifest.json" in zipfile.ZipFile(io.BytesIO(zipped)).namelist()

    # two favourites, starred by clicks, then their zip
    for n in (0, 1):
        page.locator(".gen-card").nth(n).locator(".fav-star").click()
        expect(page.locator(".gen-card").nth(n).locator("form.fav-toggle.on")).to_have_count(1)
    expect(page.locator(".favourites-count .n")).to_have_text("2")
    page.locator(".favourites-count").click()
    expect(page.locator("#favourite-grid .fav-tile")).to_have_count(2)
    favs = zipfile.ZipFile(io.BytesIO(download(page, page.locator("#favourites-zip"), f"favourites-{RUN_ID}.zip")))
    assert len(json.loads(favs.read("manifest.json"))["favourites"]) == 2

    # one sticker, PNG and SVG
    page.goto(f"/train/runs/{RUN_ID}/sticker?file=generated/{GEN2_ID}/cat/0.png")
    assert download(page, page.locator("#download-png"), "-x4.png").startswith(MAGIC["png"])
    svg = download(page, page.locator("#download-svg"), "-x4.svg")
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg

    # a sticker pack of the favourites (a real `manage.py stickers --favourites` process)
    page.goto(f"/stickers/runs/{RUN_ID}/favourites")
    page.locator("#favourites-pack").click()
    expect(page.locator("#pack-download")).to_be_visible(timeout=120_000)
    pack = zipfile.ZipFile(io.BytesIO(download(page, page.locator("#pack-download"), ".zip")))
    assert "manifest.json" in pack.namelist() and "contact-sheet.png" in pack.namelist()
