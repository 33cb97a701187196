"""A person resolves duplicate groups with the keyboard only: j to the next group, a digit to keep another image,
Enter to accept; a to accept the suggestion of the remaining group; then undoes one resolution with its button and the other with u. After every htmx swap
the heading's group count and "Recent resolutions" must say what is true (they stayed stale until a reload)."""
from __future__ import annotations

from PIL import Image as PILImage
from PIL import ImageEnhance
from playwright.sync_api import expect
from sqlalchemy import select

from core.db import db
from core.models import Image
from manage import cli


def make_groups(dataset, demo_images):
    """Group 1: a cat face and two copies (resized, brighter); group 2: a dog and a resized copy."""
    src = dataset(["cat/emojione__cat-face.png", "dog/emojione__dog.png"], kind="demo")
    for rel in ("cat/emojione__cat-face.png", "dog/emojione__dog.png"):
        img = PILImage.open(demo_images / rel).convert("RGBA")
        img.resize((100, 100), PILImage.Resampling.LANCZOS).save(src / rel.replace(".png", "-small.png"))
    cat = PILImage.open(demo_images / "cat/emojione__cat-face.png").convert("RGBA")
    bright = ImageEnhance.Brightness(cat.convert("RGB")).enhance(1.08)
    bright.putalpha(cat.getchannel("A"))
    bright.resize((110, 110)).save(src / "cat" / "z-bright.png")
    return src


def test_resolve_groups_with_the_keyboard(page, app, runner, dataset, demo_images):
    src = make_groups(dataset, demo_images)
    assert runner.invoke(cli, ["import", str(src)]).exit_code == 0
    with app.app_context():
        ids = {i.original_filename: i.id for i in db.session.scalars(select(Image))}
    page.goto("/duplicates/")
    page.wait_for_function("() => window.htmx !== undefined")
    groups = page.locator(".dup-group:not(.resolved)")
    expect(groups).to_have_count(2)
    expect(groups.nth(1)).to_contain_text("emojione__dog")

    page.keyboard.press("j")  # to the dog group
    dog = groups.nth(1)
    expect(dog).to_have_class("dup-group current")
    members = [int(m) for m in dog.locator(".dup-member").evaluate_all("els => els.map(e => e.dataset.member)")]
    assert sorted(members) == sorted([ids["dog/emojione__dog.png"], ids["dog/emojione__dog-small.png"]])
    small = members.index(ids["dog/emojione__dog-small.png"])
    expect(dog.locator("input[name=keeper]").nth(1 - small)).to_be_checked()  # suggested: the 128 px original
    page.keyboard.press(str(small + 1))  # keep the small copy instead, by its number
    expect(dog.locator("input[name=keeper]").nth(small)).to_be_checked()
    expect(page.locator("#dup-total")).to_have_text("2 groups among the active images")
    expect(page.locator("#recent")).to_contain_text("None yet")
    expect(dog.locator(".why").nth(1 - small)).to_contain_text("the suggested keeper")
    keeper = members[1 - small]
    expect(dog.locator(".why").nth(small)).to_contain_text(f"looks the same as #{keeper}: similarity")
    page.keyboard.press("Enter")
    expect(page.locator(".dup-group.resolved")).to_have_count(1)
    expect(page.locator(".dup-group.resolved")).to_contain_text(f"Kept #{ids['dog/emojione__dog-small.png']}")
    expect(page.locator("#dup-total")).to_have_text("1 group among the active images")
    expect(page.locator("#recent tr")).to_have_count(2)  # its header and the new resolution
    expect(page.locator("#recent")).to_contain_text(f"#{ids['dog/emojione__dog-small.png']}")

    expect(page.locator(".dup-group:not(.resolved)")).to_have_count(1)
    page.keyboard.press("a")  # the cat group, with its suggested keeper (the 128 px original)
    expect(page.locator(".dup-group.resolved")).to_have_count(2)
    expect(page.locator("#dup-total")).to_have_text("0 groups among the active images")
    expect(page.locator("#recent tr")).to_have_count(3)
    expect(page.locator("h1")).to_have_count(1)
    with app.app_context():
        got = {i.original_filename: (i.status, i.duplicate_of_id) for i in db.session.scalars(select(Image))}
    assert got["dog/emojione__dog.png"] == ("duplicate", ids["dog/emojione__dog-small.png"])
    assert got["dog/emojione__dog-small.png"] == ("active", None)
    assert got["cat/emojione__cat-face.png"] == ("active", None)
    assert got["cat/emojione__cat-face-small.png"] == ("duplicate", ids["cat/emojione__cat-face.png"])
    assert got["cat/z-bright.png"] == ("duplicate", ids["cat/emojione__cat-face.png"])

    dog_done = page.locator(".dup-group.resolved", has_text=f"Kept #{ids['dog/emojione__dog-small.png']}")
    dog_done.get_by_role("button", name="Undo this resolution").click()
    expect(page.locator(".dup-group:not(.resolved)")).to_have_count(1)
    with app.app_context():
        assert db.session.get(Image, ids["dog/emojione__dog.png"]).status == "active"
        assert db.session.get(Image, ids["cat/z-bright.png"]).status == "duplicate"  # the other resolution stays

    # u undoes the latest resolution left (the cat group's): both groups are back, and the page says so
    page.wait_for_function("() => window.htmx !== undefined")
    expect(page.locator("#recent tr")).to_have_count(2)
    page.keyboard.press("u")
    expect(page.locator(".dup-group:not(.resolved)")).to_have_count(2)
    expect(page.locator("#dup-total")).to_have_text("2 groups among the active images")
    expect(page.locator("#recent")).to_contain_text("None yet")
    with app.app_context():
        assert db.session.get(Image, ids["cat/z-bright.png"]).status == "active"

