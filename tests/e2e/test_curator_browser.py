"""A person uploads images in the browser, sees them in the gallery, and works an image with the keyboard."""
from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import select

from core.db import db
from core.models import Image


def test_page_loads_htmx_with_matching_integrity(page):
    page.goto("/")
    page.wait_for_function("() => window.htmx !== undefined")
    assert page.served_htmx, "htmx came from the pinned CDN address (served locally)"


def test_upload_then_browse_gallery_and_reject_with_keyboard(page, app, dataset):
    files = sorted(dataset({"": 3}, size=48, name="pic{i}.png").iterdir())
    page.goto("/import")
    page.set_input_files("#files", [str(f) for f in files])
    expect(page.locator(".dropzone .chosen")).to_have_text("3 file(s) chosen")
    page.fill("#upload-form input[name=class_name]", "frog")
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#summary")).to_contain_text("3 added")

    page.goto("/")
    page.click("text=frog")
    expect(page.locator(".tile")).to_have_count(3)
    page.locator(".tile").first.click()
    expect(page.locator("#status")).to_have_text(re.compile("active"))
    page.keyboard.press("r")
    expect(page.locator("#status")).to_contain_text("rejected")
    page.keyboard.press("u")
    expect(page.locator("#status")).to_contain_text("active")
    page.keyboard.press("ArrowRight")
    expect(page).to_have_url(re.compile(r"/image/\d+"))
    with app.app_context():
        assert {i.status for i in db.session.scalars(select(Image))} == {"active"}


def test_gallery_scrolls_in_more_pages(page, app, dataset):
    app.config["PAGE_SIZE"] = 4
    dataset({"fish": 10}, imported="cli")
    page.set_viewport_size({"width": 400, "height": 300})
    page.goto("/gallery/fish")
    expect(page.locator(".tile")).to_have_count(4)
    for _ in range(4):
        page.mouse.wheel(0, 5000)
        page.wait_for_timeout(150)
    expect(page.locator(".tile")).to_have_count(10)


def test_a_boosted_form_with_bad_values_shows_what_was_wrong(page):
    """Tried: the snapshot form sent (boosted by htmx) on an instance with no images. The server answers 400 with
    the page and its message; htmx must show that page, not drop it."""
    page.goto("/train/snapshots")
    page.click("form[action$='/train/snapshots'] button[type=submit]")
    expect(page.locator("main")).to_contain_text("a snapshot needs at least two classes")
    expect(page.locator("nav.top")).to_be_visible()


def test_a_boosted_link_to_a_page_that_has_partials_gets_the_whole_page(page):
    """Tried: following the nav link to Train (its runs table is also an htmx partial) after a full load."""
    page.goto("/")
    page.click("nav.top >> text=Train")
    expect(page).to_have_url(re.compile(r"/train/$"))
    expect(page.locator("nav.top")).to_be_visible()
    expect(page.locator("footer")).to_be_attached()
