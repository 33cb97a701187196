"""A person reviews a merge preview in the browser: accepting a near duplicate and declining a new image (each an
htmx swap of one row) must change the "accepted" count and the commit button's count at once, and the commit must
then add exactly what the button said (it added one more before)."""
from __future__ import annotations

import shutil

from PIL import Image as PILImage
from playwright.sync_api import expect
from sqlalchemy import select

from core.db import db
from core.models import Batch


def test_accepting_and_declining_keep_the_counts_true(page, app, client, tmp_path, dataset, demo_images):
    dataset(["cat/emojione__cat-face.png", "dog/emojione__dog.png"], kind="demo", imported="cli")
    src = dataset({"kitty": ["cat/noto__cat-face.png", "cat/openmoji__cat.png"]}, kind="demo",
                  root=tmp_path / "roots" / "incoming")
    PILImage.open(demo_images / "cat/emojione__cat-face.png").resize((100, 100)).save(src / "kitty" / "resized.png")
    shutil.copy(demo_images / "dog/emojione__dog.png", src / "kitty" / "exact.png")
    app.config["IMPORT_ROOTS"] = [tmp_path / "roots"]
    response = client.post("/merge/stage", data={"path": str(src)})
    batch_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[-1])

    page.goto(f"/merge/{batch_id}")
    page.wait_for_function("() => window.htmx !== undefined")
    expect(page.locator("#accepted-count")).to_have_text("2")  # the two new cats
    expect(page.locator("#commit")).to_have_text("Commit the merge (2 accepted images)")
    near = page.locator("#section-near tr.merge-row")
    expect(near).to_have_count(1)
    # the near duplicate and the image it resembles: side by side, each at least 128 CSS px, crisp when enlarged
    staged, existing = (near.locator("td.merge-pic img").nth(i) for i in (0, 1))
    a, b = staged.bounding_box(), existing.bounding_box()
    assert a["width"] >= 128 and b["width"] >= 128 and abs(a["y"] - b["y"]) < 2 and b["x"] >= a["x"] + a["width"]
    for img in (staged, existing):
        natural = img.evaluate("i => Math.max(i.naturalWidth, i.naturalHeight)")
        rendering = img.evaluate("i => getComputedStyle(i).imageRendering")
        assert natural >= 128 or rendering == "pixelated", (natural, rendering)
    near.get_by_role("button", name="Accept").click()
    expect(near.first).to_contain_text("accepted")
    expect(page.locator("#accepted-count")).to_have_text("3")
    expect(page.locator("#commit")).to_have_text("Commit the merge (3 accepted images)")
    page.locator("#section-new tr.merge-row").first.get_by_role("button", name="Decline").click()
    expect(page.locator("#accepted-count")).to_have_text("2")
    expect(page.locator("#commit")).to_have_text("Commit the merge (2 accepted images)")
    expect(page.locator("h1")).to_have_count(1)

    page.locator("#commit").click()
    expect(page.locator("body")).to_contain_text(f"Merge #{batch_id} committed: 2 image(s) added")
    with app.app_context():
        batch = db.session.get(Batch, batch_id)
        assert batch.added == 2 and batch.duplicates == 1
        assert sorted(i.image.status for i in batch.items if i.image) == ["active", "active", "rejected"]
        assert db.session.scalar(select(Batch.state).where(Batch.id == batch_id)) == "committed"
