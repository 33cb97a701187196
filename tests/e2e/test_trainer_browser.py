"""A person snapshots demo data, starts a tiny run from the form in Chromium, watches it train, looks at the
epoch-1 grid and a per-class gallery, and cancels it — the real training subprocess, nothing stubbed."""
from __future__ import annotations

import re

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
    page.locator("#epoch-slider").fill("0")
    expect(page.locator("#epoch-label")).to_have_text("Epoch 1")
    expect(page.locator("#epoch-view .sample img")).to_have_count(4)  # 2 classes x 2 samples
    page.locator("h1").click()  # keys go to the page, not the slider
    page.keyboard.press("ArrowRight")
    expect(page.locator("#epoch-label")).to_have_text("Epoch 2")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#epoch-label")).to_have_text("Epoch 1")

    page.click("#epoch-view .row-label >> text=fish")
    expect(page.locator("h1")).to_contain_text("fish across epochs")
    expect(page.locator('#class-epochs [data-row="1"] .sample img')).to_have_count(2)
    rows = page.locator("#class-epochs .sample-row")
    assert rows.count() >= 2
    assert "epoch 1" in rows.first.inner_text(), "a film strip, oldest first: epoch 1 is the first row"

    page.goto(run_url)
    page.click("#cancel-run")
    expect(page.locator("#run-state")).to_have_text("cancelled", timeout=60_000)
    expect(page.locator("#resume-run")).to_be_visible()
