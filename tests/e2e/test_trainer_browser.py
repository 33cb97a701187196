"""A person snapshots demo data, starts a tiny run from the form in Chromium, watches it train, looks at the
epoch-1 grid and a per-class gallery, and cancels it — the real training subprocess, nothing stubbed."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

TINY = {"eval": False, "sample_steps": 2, "samples_per_class": 2, "warmup_steps": 2, "log_every": 1}

pytestmark = pytest.mark.usefixtures("end_training_processes")  # even when a test fails


@pytest.fixture
def app_config() -> dict:
    return {"TRAINER_DEFAULTS": TINY}


def step_number(page) -> int:
    return int(re.search(r"step (\d+)", page.locator("#run-step").inner_text()).group(1))


def test_start_watch_browse_and_cancel_a_tiny_run(page, dataset):
    dataset({"cat": 6, "fish": 6}, kind="demo", imported="service")  # not all the demo: an epoch would take seconds
    page.goto("/train/snapshots")
    page.fill("#snap-size", "8")
    page.click("#snapshot-form button[type=submit]")
    expect(page.locator("#snapshot-table")).to_contain_text("cat 6, fish 6")

    page.click("nav >> text=Train")
    page.click("text=New run")
    page.select_option("#f-preset", "micro")
    page.fill("#f-size", "8")
    page.fill("#f-epochs", "5000")
    page.fill("#f-batch", "4")
    page.fill("#f-every", "1")
    page.select_option("#f-device", "cpu")
    page.click("#start-run")
    expect(page).to_have_url(re.compile(r"/train/runs/[\w-]+$"))
    run_url = page.url

    # The live region polls: the state turns to running and the step count advances without reloading.
    expect(page.locator("#run-state")).to_have_text("running", timeout=90_000)
    expect(page.locator(".newest .sample").first).to_be_visible(timeout=60_000)
    first = step_number(page)
    page.wait_for_function(f"() => /step (\\d+)/.exec(document.querySelector('#run-step').textContent)[1] > {first}",
                           timeout=30_000)
    expect(page.locator("#run-speed")).to_contain_text("images/s")

    page.click("text=Samples by epoch")
    expect(page.locator("#epoch-label")).to_be_visible()
    deadline = time.time() + 90  # three grids (the preview at step 0 and two epochs), however the trainer spaces them
    while int(page.locator("#epoch-slider").get_attribute("max")) < 2 and time.time() < deadline:
        page.wait_for_timeout(2000)
        page.reload()
    page.locator("#epoch-slider").fill("0")
    expect(page.locator("#epoch-label")).to_have_text("Before training")  # the preview at step 0
    expect(page).to_have_url(re.compile(r"/epochs\?epoch=0$"))
    page.locator("#epoch-slider").fill("1")
    expect(page.locator("#epoch-label")).to_have_text(re.compile(r"^Epoch \d+$"))
    second = page.locator("#epoch-label").inner_text()
    expect(page).to_have_url(re.compile(rf"/epochs\?epoch={second.split()[1]}$"))
    expect(page.locator("#epoch-view .sample img")).to_have_count(4)  # 2 classes x 2 samples
    third = re.search(r"epoch (\d+)", page.locator("#next-epoch").inner_text()).group(1)
    page.locator("h1").click()  # keys go to the page, not the slider
    page.keyboard.press("ArrowRight")
    expect(page.locator("#epoch-label")).to_have_text(f"Epoch {third}")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#epoch-label")).to_have_text(second)

    page.click("#epoch-view .row-label >> text=fish")
    expect(page.locator("h1")).to_contain_text("fish across epochs")
    rows = page.locator("#class-epochs .sample-row")
    assert rows.count() >= 3
    expect(rows.nth(1).locator(".sample img")).to_have_count(2)
    assert "before training" in rows.first.inner_text() and second.lower() in rows.nth(1).inner_text(), \
        "a film strip, oldest first: the preview before training, then the first epoch with samples"

    page.goto(run_url)
    page.click("#cancel-run")
    expect(page.locator("#run-state")).to_have_text("cancelled", timeout=60_000)
    expect(page.locator("#resume-run")).to_be_visible()
