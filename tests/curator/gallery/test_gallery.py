"""Browsing and changing images: gallery paging, the image page, relabel, reject/restore, undo, cached files
(undoing a whole batch: tests/curator/imports/test_batches.py)."""
from __future__ import annotations

import re

from sqlalchemy import select

from core.db import db
from core.models import Decision, Image


def ids(app):
    with app.app_context():
        return [i.id for i in db.session.scalars(select(Image).order_by(Image.id))]


def card(page: str, name: str) -> str:
    """The dataset page's card for one class ('' when there is none)."""
    match = re.search(rf'<article class="card class-card" data-class="{name}">(.*?)</article>', page, re.S)
    return match.group(1) if match else ""


def test_overview_lists_classes_with_counts(client, dataset):
    dataset({"cat": 3}, imported="cli")
    page = client.get("/").get_data(as_text=True)
    assert re.search(r'data-status="active">3 active</a>', card(page, "cat"))


def test_dataset_cards_show_thumbnails_and_true_counts_and_hide_empty_classes(client, app, dataset):
    """Tried: two classes, one image of the dog class rejected, then every dog moved to cat, leaving dog empty.
    Each card shows up to four thumbnails of its active images and counts that follow the changes; an empty class
    has no card, only a quiet line that says how many there are."""
    dataset({"cat": 5, "dog": 2}, imported="cli")
    dog_ids = ids(app)[5:]
    client.post(f"/image/{dog_ids[0]}/status", data={"status": "rejected"})
    page = client.get("/").get_data(as_text=True)
    cat, dog = card(page, "cat"), card(page, "dog")
    assert len(re.findall(r'<img class="checker pixel" src="/image/\d+/thumb"', cat)) == 4  # 32 px pictures: pixelated
    assert len(re.findall(r'src="/image/\d+/thumb"', dog)) == 1  # the rejected dog is counted, not shown
    assert "5 images" in cat and "2 images" in dog and "1 rejected" in dog and "1 active" in dog
    assert 'id="empty-classes"' not in page
    for image_id in dog_ids:
        client.post(f"/image/{image_id}/relabel", data={"class_name": "cat"})
    page = client.get("/").get_data(as_text=True)
    assert card(page, "dog") == "" and "7 images" in card(page, "cat") and "6 active" in card(page, "cat")
    assert re.search(r'id="empty-classes">1 empty class \(no images\) not shown', page)
    assert '<span class="figures" id="dataset-figures">7 images in 1 class</span>' in page


def test_tiles_keep_the_whole_file_name_in_a_title(client, app, dataset):
    """Tried: a file name far longer than a tile. The tile shows it on one line (CSS cuts it with an ellipsis, see
    tests/e2e/test_look_browser.py) and keeps the whole name in its title and alt text."""
    long_name = "a-very-long-file-name-that-would-never-fit-in-one-tile-{i}.png"
    dataset({"cat": 1}, name=long_name, imported="cli")
    page = client.get("/gallery/cat").get_data(as_text=True)
    full = long_name.format(i=0)
    assert f'title="{full}"' in page and f'<span class="name">{full}</span>' in page


def test_image_page_enlarges_small_pictures_by_whole_multiples_and_fits_large_ones(client, app, dataset):
    """A 32 px picture is shown at 12x (384 px) pixelated; a 128 px one at 3x; a 400 px one at its own size."""
    for size, seed in ((32, 0), (128, 1), (400, 2)):
        dataset({f"s{size}": 1}, size=size, seed=seed, imported="cli")
    shown = []
    for image_id in ids(app):
        page = client.get(f"/image/{image_id}").get_data(as_text=True)
        tag = re.search(r'<img class="large[^>]*>', page, re.S).group(0)
        shown.append((re.search(r'data-scale="(\d+)"', tag).group(1), re.search(r'width="(\d+)"', tag).group(1),
                      "pixel" in tag))
    assert shown == [("12", "384", True), ("3", "384", True), ("1", "400", False)]


def test_gallery_pages_and_htmx_partial(client, app, dataset):
    app.config["PAGE_SIZE"] = 2
    dataset({"cat": 5}, imported="cli")
    first = client.get("/gallery/cat").get_data(as_text=True)
    assert first.count('class="tile active"') == 2 and "<html" in first
    assert 'hx-trigger="revealed"' in first  # infinite scroll; the same link works without JavaScript
    partial = client.get("/gallery/cat?page=2", headers={"HX-Request": "true"})
    body = partial.get_data(as_text=True)
    assert "<html" not in body and body.count('class="tile active"') == 2
    assert "HX-Request" in partial.headers["Vary"]
    last = client.get("/gallery/cat?page=3").get_data(as_text=True)
    assert last.count('class="tile active"') == 1 and 'hx-trigger="revealed"' not in last


def test_bad_filter_values_and_unknown_classes_are_clear_errors(client, dataset):
    """Tried: an unknown status, a batch that is not a number (it was silently ignored), a class that does not exist
    (it showed an empty class with its filter form) and one named like a path: 400s and 404s that say which."""
    dataset({"cat": 1}, imported="cli")
    assert client.get("/gallery/cat?status=bogus").status_code == 400
    for batch in ("abc", "%C2%B2"):  # a superscript two passed isdigit() and int() raised: a 500
        response = client.get(f"/gallery/cat?batch={batch}")
        assert response.status_code == 400 and "batch must be a batch number" in response.get_data(as_text=True)
    for name in ("nonexistent", "..", "x" * 300):
        response = client.get(f"/gallery/{name}")
        assert response.status_code == 404 and "There is no class named" in response.get_data(as_text=True)
    assert client.get("/gallery/..%2F..%2Fetc").status_code == 404  # no such page at all
    assert client.get("/gallery/cat?batch=1").status_code == 200 and client.get("/gallery/_unlabelled").status_code == 200


def test_relabel_reject_restore_and_undo(client, app, dataset):
    dataset({"cat": 2}, imported="cli")
    image_id = ids(app)[0]
    client.post(f"/image/{image_id}/relabel", data={"class_name": "Dog"})
    client.post(f"/image/{image_id}/status", data={"status": "rejected", "reason": "blurry"})
    with app.app_context():
        img = db.session.get(Image, image_id)
        assert (img.class_name, img.status, img.status_reason) == ("dog", "rejected", "blurry")
        decisions = list(db.session.scalars(select(Decision).order_by(Decision.id)))
        assert [d.kind for d in decisions] == ["relabel", "reject"]
    page = client.get(f"/image/{image_id}").get_data(as_text=True)
    assert "rejected — blurry" in page
    # The relabel can be undone after the reject: the two changes touched different fields
    response = client.post(f"/decision/{decisions[0].id}/undo", follow_redirects=True)
    assert "changed since" not in response.get_data(as_text=True)  # relabel touched only class_id: still undoable
    client.post(f"/decision/{decisions[1].id}/undo")
    with app.app_context():
        img = db.session.get(Image, image_id)
        assert (img.class_name, img.status) == ("cat", "active")


def test_undo_refuses_when_a_later_change_would_be_lost(client, app, dataset):
    dataset({"cat": 1}, imported="cli")
    image_id = ids(app)[0]
    client.post(f"/image/{image_id}/relabel", data={"class_name": "dog"})
    client.post(f"/image/{image_id}/relabel", data={"class_name": "frog"})
    with app.app_context():
        first = db.session.scalar(select(Decision).order_by(Decision.id))
    page = client.post(f"/decision/{first.id}/undo", follow_redirects=True).get_data(as_text=True)
    assert "changed since" in page
    with app.app_context():
        assert db.session.get(Image, image_id).class_name == "frog"


def test_invalid_relabel_and_status_values(client, app, dataset):
    """Tried: a class name with a path in it, and a status that does not exist."""
    dataset({"cat": 1}, imported="cli")
    image_id = ids(app)[0]
    page = client.post(f"/image/{image_id}/relabel", data={"class_name": "../../x"},
                       follow_redirects=True).get_data(as_text=True)
    assert "invalid class name" in page
    page = client.post(f"/image/{image_id}/status", data={"status": "deleted"}, follow_redirects=True).get_data(as_text=True)
    assert "Unknown status" in page
    with app.app_context():
        img = db.session.get(Image, image_id)
        assert (img.class_name, img.status) == ("cat", "active")


def test_image_files_carry_etags_and_thumbnails_are_cached(client, app, instance_path, dataset):
    dataset({"cat": 1}, size=400, imported="cli")
    image_id = ids(app)[0]
    response = client.get(f"/image/{image_id}/file")
    assert response.status_code == 200 and response.headers["ETag"]
    again = client.get(f"/image/{image_id}/file", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    thumb = client.get(f"/image/{image_id}/thumb")
    assert thumb.mimetype == "image/webp" and thumb.headers["ETag"]
    assert len(list((instance_path / "thumbs").rglob("*.webp"))) == 1


def test_keyboard_shortcuts_are_on_the_image_page(client, app, dataset):
    dataset({"cat": 3}, imported="cli")
    middle = ids(app)[1]
    page = client.get(f"/image/{middle}").get_data(as_text=True)
    assert 'data-key="ArrowLeft"' in page and 'data-key="ArrowRight"' in page and 'data-key="r"' in page


def test_unknown_image_is_404(client):
    assert client.get("/image/999").status_code == 404


def history_entries(page: str) -> list[str]:
    """The History page's entries as text, newest first (tags dropped, spaces squeezed)."""
    items = re.findall(r'<li class="[^"]*" id="decision-\d+".*?</li>', page, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", item).split()) for item in items]


def test_history_says_who_when_what_before_and_after_with_a_thumbnail(client, app, dataset):
    """Tried: a browser (no logins) relabels a cat to dog and rejects it, then undoes the relabel; a command-line
    change comes in between. Each entry names who (this browser's guest name, marked "you"; the command line),
    when (relative, the exact time in the title), the image's thumbnail, and what changed in words."""
    dataset({"cat": 2}, imported="cli")
    first = ids(app)[0]
    client.post(f"/image/{first}/relabel", data={"class_name": "dog"})
    client.post(f"/image/{first}/status", data={"status": "rejected", "reason": "blurry"})
    with app.app_context():
        from curator.gallery import service
        relabel = db.session.scalar(select(Decision).where(Decision.kind == "relabel"))
        relabel_id, guest = relabel.id, relabel.actor
        service.set_status(db.session, db.session.get(Image, ids(app)[1]), "rejected")  # outside a request
    client.post(f"/decision/{relabel_id}/undo")
    page = client.get("/decisions").get_data(as_text=True)
    entries = history_entries(page)
    assert guest.startswith("guest-") and len(entries) == 4
    undo, cli_reject, reject, relabelled = entries
    assert "undo of #1" in undo and "class dog → cat" in undo and guest in undo and "you" in undo
    assert "status active → rejected" in cli_reject and "command line" in cli_reject
    assert "status active → rejected" in reject and "reason “blurry”" in reject
    assert "class cat → dog" in relabelled and "undone by #4" in relabelled and "just now" in relabelled
    assert page.count(f'src="/image/{first}/thumb"') == 3
    assert re.search(r'<time datetime="[0-9T:.-]+Z" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">just now</time>', page)
    image_page = client.get(f"/image/{first}").get_data(as_text=True)
    assert "class cat → dog" in " ".join(re.sub(r"<[^>]+>", " ", image_page).split())
