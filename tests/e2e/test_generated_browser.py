"""Generated pictures in Chromium: sent to the curator they wait in the merge preview, marked generated, and no
snapshot takes them until someone accepts them, nor afterwards unless "include generated images" is ticked. And the
F key stars the focused picture (or the one an open lightbox shows), keeping the counter true."""
from __future__ import annotations

from playwright.sync_api import expect

from tests.trainer.sticker_helpers import GEN2_ID, RUN_ID, make_run


def newest_snapshot_total(page) -> str:
    return page.locator("#snapshot-table tr[id^=snapshot-]").first.locator("td.num").inner_text()


def save_snapshot(page, include_generated: bool = False) -> None:
    page.goto("/train/snapshots")
    if include_generated:
        page.locator("#snap-generated").check()
    page.locator("#snapshot-form button[type=submit]").click()
    expect(page.locator(".flash.ok")).to_contain_text("Snapshot")


def test_sent_images_do_not_enter_a_snapshot_until_accepted(page, instance_path, dataset):
    dataset({"cat": 3, "dog": 3}, size=24, name="{cls}{i}.png", imported="service")
    make_run(instance_path, checkpoints=True)
    page.goto(f"/train/runs/{RUN_ID}/generate/{GEN2_ID}")
    page.wait_for_function("() => window.htmx !== undefined")
    page.locator(f'input[name=pick][value="generated/{GEN2_ID}/cat/0.png"]').check()
    page.locator(f'input[name=pick][value="generated/{GEN2_ID}/dog/1.png"]').check()
    page.locator("#send-to-curator").click()

    expect(page.locator("#generated-badge")).to_be_visible()
    expect(page.locator("#generated-notice")).to_contain_text("not training data")
    expect(page.locator("tr.merge-row")).to_have_count(2)
    preview = page.url
    for img in page.locator("tr.merge-row td.merge-pic img").all():  # the staged pictures, large enough to judge
        assert img.bounding_box()["width"] >= 128

    save_snapshot(page)  # before acceptance: none of them
    assert newest_snapshot_total(page) == "6"

    page.goto(preview)
    page.locator("#commit").click()
    expect(page.locator("body")).to_contain_text("2 image(s) added")

    save_snapshot(page)  # accepted, but the box is not ticked: still left out, and the page says so
    assert newest_snapshot_total(page) == "6"
    expect(page.locator("#snapshot-table tr[id^=snapshot-]").first).to_contain_text("2 generated images left out")

    save_snapshot(page, include_generated=True)
    assert newest_snapshot_total(page) == "8"
    expect(page.locator("#snapshot-table tr[id^=snapshot-]").first).to_contain_text("generated images included")


def test_the_f_key_toggles_the_focused_or_enlarged_picture(page, instance_path):
    make_run(instance_path, checkpoints=True)
    page.goto(f"/train/runs/{RUN_ID}/generate/{GEN2_ID}")
    page.wait_for_function("() => window.htmx !== undefined")
    cards = page.locator(".gen-card")
    cards.nth(1).focus()
    page.keyboard.press("f")
    expect(cards.nth(1).locator("form.fav-toggle.on")).to_have_count(1)
    expect(page.locator(".favourites-count .n")).to_have_text("1")
    cards.nth(1).focus()
    page.keyboard.press("f")
    expect(cards.nth(1).locator("form.fav-toggle.on")).to_have_count(0)
    expect(page.locator(".favourites-count .n")).to_have_text("0")

    page.goto(f"/train/runs/{RUN_ID}/generate")
    page.locator("#g-guidance").focus()
    page.keyboard.press("f")
    expect(page.locator(".favourites-count .n")).to_have_text("0")

    # a lightbox (the gallery's; here a stand-in root carrying data-run and data-rel) takes F for its picture,
    # and the star of that picture on the page follows
    page.goto(f"/train/runs/{RUN_ID}/generate/{GEN2_ID}")
    page.wait_for_function("() => window.htmx !== undefined")
    page.evaluate("""([run, rel]) => { const box = document.createElement('div'); box.className = 'lightbox';
        box.dataset.run = run; box.dataset.rel = rel; box.textContent = 'enlarged'; document.body.append(box); }""",
                  [RUN_ID, f"generated/{GEN2_ID}/dog/0.png"])
    page.keyboard.press("f")
    star = page.locator(f'form.fav-toggle[data-rel="generated/{GEN2_ID}/dog/0.png"]')
    expect(star).to_have_class("fav-toggle on")
    expect(page.locator(".favourites-count .n")).to_have_text("1")
