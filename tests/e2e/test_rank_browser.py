"""A person ranks a class with the keyboard in Chromium: answers swap in by htmx (no page load), Backspace undoes."""
from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from core.db import db
from core.models import Comparison

IDLE = "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"


def test_rank_with_the_keyboard(page, app, dataset):
    dataset({"owl": 8}, imported="cli")

    page.goto("/rank/owl/")
    page.wait_for_function("() => window.htmx !== undefined")
    page.evaluate("() => { window.rankMarker = 'same page'; }")  # lost if the page reloads
    counter = page.locator("#answer-count")
    expect(counter).to_have_text("0")

    seen = []
    for n in range(1, 4):
        pair = page.locator("#answer-form").get_attribute("data-pair")
        upcoming = [page.locator("#answer-form input[name=next_left]").get_attribute("value"),
                    page.locator("#answer-form input[name=next_right]").get_attribute("value")]
        # the next pair's images are already loaded (prefetched) before the key is pressed
        page.wait_for_function("""ids => ids.every(id => {
            const img = document.querySelector(`img[data-prefetch="${id}"]`);
            return img && img.complete && img.naturalWidth > 0; })""", arg=upcoming)
        page.wait_for_function(IDLE)
        page.keyboard.press("ArrowRight")
        expect(counter).to_have_text(str(n))
        expect(page.locator("#answer-form")).not_to_have_attribute("data-pair", pair)
        assert page.locator("#answer-form").get_attribute("data-pair") == "-".join(upcoming)
        seen.append(pair)
    assert page.evaluate("() => window.rankMarker") == "same page", "answers must not reload the page"

    page.wait_for_function(IDLE)  # a key pressed while an answer is in flight is dropped by design
    page.keyboard.press("ArrowDown")  # a tie
    expect(counter).to_have_text("4")
    page.wait_for_function(IDLE)
    page.keyboard.press("Backspace")  # undo the tie: that pair is shown again
    expect(counter).to_have_text("3")
    expect(page.locator("#rank-message")).to_contain_text("Undid your answer")
    assert page.evaluate("() => window.rankMarker") == "same page"

    with app.app_context():
        stored = [(c.left_id, c.right_id, c.outcome, c.undone)
                  for c in db.session.scalars(select(Comparison).order_by(Comparison.id))]
    assert [f"{a}-{b}" for a, b, _o, _u in stored[:3]] == seen
    assert [(o, u) for _a, _b, o, u in stored] == [("right", False)] * 3 + [("tie", True)]
