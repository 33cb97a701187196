"""A person looks at a run's samples in Chromium: the epoch gallery and a class's film strip at a size worth
looking at with a label on every row, the lightbox stepped through with the keys, the epoch in the address bar
following the slider (and surviving a reload), the nearest training images of a sample, a rename, and a finished
run's page losing the message of its start. Fake run folders (tests/trainer/gallery_helpers.py): no training."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.db import db
from core.models import Run
from diffusion import rundir
from tests.trainer.gallery_helpers import CLASSES, RUN_ID, make_gallery_run


@pytest.fixture
def run_dir(app) -> Path:
    nearest = {(3, "dog"): {"threshold": 0.05, "pictures": {
        "1.png": {"memorised": True, "nearest": [{"sha256": "0" * 64, "path": "/gone.png", "distance": 0.01}]}}}}
    return make_gallery_run(Path(app.instance_path), nearest=nearest)


def sizes(page, selector: str) -> list[tuple[float, float]]:
    return page.eval_on_selector_all(selector, "els => els.map(e => { const r = e.getBoundingClientRect(); "
                                               "return [r.width, r.height]; })")


def test_epoch_gallery_samples_are_large_crisp_and_every_row_is_labelled(page, run_dir):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"/train/runs/{RUN_ID}/epochs")
    expect(page.locator("#epoch-label")).to_have_text("Epoch 3")
    boxes = sizes(page, "#epoch-view .sample img")
    assert len(boxes) == 12 and all(w >= 96 and h >= 96 for w, h in boxes), boxes
    assert all(w % 32 == 0 for w, _ in boxes), "a whole multiple of the 32 px sample"
    assert page.eval_on_selector("#epoch-view .sample img", "e => getComputedStyle(e).imageRendering") == "pixelated"
    labels = page.locator("#epoch-view .sample-row .row-label").all_inner_texts()
    assert [t.strip() for t in labels] == list(CLASSES)
    for row in page.locator("#epoch-view .sample-row").all():  # the label sits beside its row's samples
        label, first = row.locator(".row-label").bounding_box(), row.locator(".sample").first.bounding_box()
        assert label["x"] + label["width"] <= first["x"] and abs(label["y"] - first["y"]) < first["height"]
    gap = sizes(page, "#epoch-view .sample-row:first-child .sample")
    xs = page.eval_on_selector_all("#epoch-view .sample-row:first-child .sample",
                                   "els => els.map(e => e.getBoundingClientRect().x)")
    assert all(b - a >= gap[0][0] + 4 for a, b in zip(xs, xs[1:])), "gaps between samples"


def test_the_address_follows_the_epoch_slider_and_a_reload_keeps_the_epoch(page, run_dir):
    page.goto(f"/train/runs/{RUN_ID}/epochs")
    page.locator("#epoch-slider").fill("0")
    expect(page.locator("#epoch-label")).to_have_text("Epoch 1")
    expect(page).to_have_url(re.compile(r"/epochs\?epoch=1$"))
    page.locator("#epoch-slider").fill("1")
    expect(page.locator("#epoch-label")).to_have_text("Epoch 2")
    expect(page).to_have_url(re.compile(r"/epochs\?epoch=2$"))
    assert "epoch_0002" in page.locator("#epoch-view .sample").first.get_attribute("data-rel")
    page.reload()
    expect(page.locator("#epoch-label")).to_have_text("Epoch 2")
    assert page.locator("#epoch-slider").input_value() == "1"
    page.locator("h1").click()  # keys go to the page, not the slider
    page.keyboard.press("ArrowRight")
    expect(page.locator("#epoch-label")).to_have_text("Epoch 3")
    expect(page).to_have_url(re.compile(r"/epochs\?epoch=3$"))


def test_the_lightbox_enlarges_a_sample_and_steps_with_the_keys(page, run_dir):
    page.goto(f"/train/runs/{RUN_ID}/epochs?epoch=2")
    page.locator('.sample[data-rel="samples/epoch_0002/cat/0.png"] img').click()
    box = page.locator("#lightbox")
    expect(box).to_be_visible()
    expect(page).to_have_url(re.compile(r"/epochs\?epoch=2$"))  # the click opened the lightbox, not a page
    expect(box.locator(".lightbox-caption")).to_have_text("cat · epoch 2 · #1")
    assert box.get_attribute("data-run") == RUN_ID and box.get_attribute("data-rel") == "samples/epoch_0002/cat/0.png"
    width = box.locator(".lightbox-img").evaluate("e => e.getBoundingClientRect().width")
    assert width >= 256 and width % 32 == 0, width
    page.keyboard.press("ArrowRight")
    expect(box.locator(".lightbox-caption")).to_have_text("cat · epoch 2 · #2")
    assert box.get_attribute("data-rel") == "samples/epoch_0002/cat/1.png"
    expect(page.locator("#epoch-label")).to_have_text("Epoch 2")  # the page's arrow keys wait while it is open
    page.keyboard.press("ArrowDown")
    expect(box.locator(".lightbox-caption")).to_have_text("dog · epoch 2 · #2")
    page.keyboard.press("ArrowLeft")
    expect(box.locator(".lightbox-caption")).to_have_text("dog · epoch 2 · #1")
    expect(box.locator(".lightbox-count")).to_have_text("5 / 12")
    page.keyboard.press("ArrowUp")
    expect(box.locator(".lightbox-caption")).to_have_text("cat · epoch 2 · #1")
    page.keyboard.press("Escape")
    expect(box).to_be_hidden()
    assert box.get_attribute("data-rel") is None
    focused = page.evaluate("document.activeElement.dataset.rel")
    assert focused == "samples/epoch_0002/cat/0.png", "focus goes back to the sample shown last"
    page.keyboard.press("Enter")  # the focused tile opens again from the keyboard
    expect(box).to_be_visible()


def test_class_film_strip_is_large_labelled_by_epoch_and_steps_across_epochs(page, run_dir):
    page.goto(f"/train/runs/{RUN_ID}/classes/fish")
    rows = page.locator("#class-epochs .sample-row")
    expect(rows).to_have_count(3)
    assert [t.strip() for t in page.locator("#class-epochs .row-label").all_inner_texts()] == \
        ["epoch 1", "epoch 2", "epoch 3"]
    boxes = sizes(page, "#class-epochs .sample img")
    assert len(boxes) == 12 and all(w >= 96 and h >= 96 for w, h in boxes)
    columns = page.eval_on_selector_all('#class-epochs .sample[data-rel$="/2.png"]',
                                        "els => els.map(e => e.getBoundingClientRect().x)")
    assert len(set(columns)) == 1, "sample #3 of every epoch sits in one column"
    page.locator('.sample[data-rel="samples/epoch_0001/fish/2.png"] img').click()
    page.keyboard.press("ArrowDown")
    expect(page.locator(".lightbox-caption")).to_have_text("fish · epoch 2 · #3")


def test_nearest_training_images_load_beside_a_sample_and_in_the_lightbox(page, run_dir):
    page.goto(f"/train/runs/{RUN_ID}/epochs")
    tile = page.locator('.sample[data-rel="samples/epoch_0003/dog/1.png"]')
    tile.hover()
    tile.locator(".nearest-link").click()
    panel = page.locator("#nearest-epoch-2 .nearest-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".memorised-badge")).to_have_text("memorised")
    expect(panel).to_contain_text("not in the dataset now")
    expect(page).to_have_url(re.compile(r"/epochs$"))
    panel.locator(".nearest-close").click()
    expect(panel).to_have_count(0)
    page.locator('.sample[data-rel="samples/epoch_0003/cat/0.png"] img').click()
    page.keyboard.press("n")
    expect(page.locator("#lightbox .nearest-none")).to_contain_text("No nearest training images recorded")


def test_rename_in_place_and_a_stopped_run_loses_the_message_of_a_moment_ago(page, app, run_dir):
    """The run trains (status running, a live pid): it is renamed in place (a hostile name is refused in place);
    cancelling it leaves a message that was true then; once the run has stopped, the next poll removes it."""
    with app.app_context():
        db.session.add(Run(id=RUN_ID, device="cpu"))
        db.session.commit()
    rundir.write_status(run_dir, state="running", pid=os.getpid(), heartbeat=time.time(), epoch=2, step=20)
    page.goto(f"/train/runs/{RUN_ID}")
    expect(page.locator("#run-state")).to_have_text("running")
    page.locator("#run-name summary").click()
    page.locator("#run-name-input").fill("Discs, third try")
    page.locator("#rename-form button").click()
    expect(page.locator("#run-title")).to_have_text("Discs, third try")
    expect(page).to_have_url(re.compile(rf"/train/runs/{RUN_ID}$"))
    page.locator("#run-name summary").click()  # the swapped region is closed again
    page.locator("#run-name-input").fill("bad\u202ename")
    page.locator("#rename-form button").click()
    expect(page.locator("#run-name-error")).to_contain_text("U+202E")
    page.locator("#cancel-run").click()  # a message about this moment: "Cancel requested ..."
    expect(page.locator(".flashes")).to_contain_text("Cancel requested")
    rundir.write_status(run_dir, state="cancelled", epoch=2, step=25)  # what the trainer writes when it stops
    expect(page.locator("#run-state")).to_have_text("cancelled", timeout=10_000)
    expect(page.locator(".flashes")).to_have_count(0)
    expect(page.locator("#run-epoch")).to_have_text("2 epochs · cancelled")
    expect(page.locator("#run-title")).to_have_text("Discs, third try")
