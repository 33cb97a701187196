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


def test_best_of_four_with_the_keys(page, app, dataset):
    """Keys 1-4 pick the best of four; each next screen swaps in by htmx with its images already loaded; o switches
    to putting all four in order (keys from best to worst, Backspace takes back a place, the last place fills itself
    and the order is sent); Backspace then undoes that whole answer."""
    dataset({"owl": 8}, imported="cli")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto("/rank/owl/best")
    page.wait_for_function("() => window.htmx !== undefined")
    page.evaluate("() => { window.rankMarker = 'same page'; }")
    counter = page.locator("#answer-count")
    expect(counter).to_have_text("0")

    picked = []
    for n, key in enumerate("314", start=1):
        form = page.locator("#pick-form")
        screen = form.get_attribute("data-screen").split("-")
        upcoming = form.locator("input[name=next]").get_attribute("value").split(",")
        page.wait_for_function("""ids => ids.every(id => {
            const img = document.querySelector(`img[data-prefetch="${id}"]`);
            return img && img.complete && img.naturalWidth > 0; })""", arg=upcoming)
        page.wait_for_function(IDLE)
        page.keyboard.press(key)
        expect(counter).to_have_text(str(n))
        expect(page.locator("#pick-form")).to_have_attribute("data-screen", "-".join(upcoming))
        picked.append((screen, screen[int(key) - 1]))
    assert page.evaluate("() => window.rankMarker") == "same page", "answers must not reload the page"

    page.wait_for_function(IDLE)  # the swapped screen's links are boosted once htmx has processed them
    page.keyboard.press("o")  # order mode: a boosted link, so still the same page
    expect(page.locator("#pick-form.ordering")).to_be_visible()
    expect(page.locator("nav.top")).to_have_count(1)  # the whole page came, not a page inside the region
    page.wait_for_function(IDLE)
    screen = page.locator("#pick-form").get_attribute("data-screen").split("-")
    page.keyboard.press("2")
    page.keyboard.press("4")
    expect(page.locator("#pick-4 .rank-place")).to_have_text("2")
    page.keyboard.press("Backspace")  # takes back the place of #4, not an answer
    expect(page.locator("#pick-4 .rank-place")).to_be_hidden()
    expect(counter).to_have_text("3")
    page.keyboard.press("1")
    page.keyboard.press("3")  # the third place: the fourth fills itself and the order is sent
    expect(counter).to_have_text("4")
    assert page.evaluate("() => window.rankMarker") == "same page"

    page.wait_for_function(IDLE)
    page.keyboard.press("Backspace")  # nothing half-ordered now: undoes the whole order answer
    expect(counter).to_have_text("3")
    expect(page.locator("#rank-message")).to_contain_text("Undid your answer")

    with app.app_context():
        rows = [(c.outcome, [c.left_id, c.right_id, *c.others], c.picks, c.undone)
                for c in db.session.scalars(select(Comparison).order_by(Comparison.id))]
    assert [(o, [str(i) for i in s], [str(i) for i in p], u) for o, s, p, u in rows[:3]] == [
        ("best", s, [p], False) for s, p in picked]
    order = [screen[1], screen[0], screen[2], screen[3]]
    assert [(o, [str(i) for i in p], u) for o, _s, p, u in rows[3:]] == [("order", order, True)]
