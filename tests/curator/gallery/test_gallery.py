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


def test_overview_lists_classes_with_counts(client, dataset):
    dataset({"cat": 3}, imported="cli")
    page = client.get("/").get_data(as_text=True)
    assert "cat" in page and re.search(r"active</a></td>\s*<td class=\"num\">3<", page)


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


def test_bad_filter_value_is_a_clear_400(client):
    response = client.get("/gallery/cat?status=bogus")
    assert response.status_code == 400


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
