"""Batches: a whole import taken back out of the dataset (its images set aside) and brought back by undoing that."""
from __future__ import annotations

from sqlalchemy import select

from core.db import db
from core.models import Decision, Image


def test_batch_undo_sets_images_aside_and_comes_back(client, app, dataset):
    dataset({"cat": 3}, imported="cli")
    with app.app_context():
        batch_id = db.session.scalar(select(Image.batch_id))
    client.post(f"/batch/{batch_id}/undo")
    with app.app_context():
        assert {i.status for i in db.session.scalars(select(Image))} == {"rejected"}
        undo_id = db.session.scalar(select(Decision.id).where(Decision.kind == "batch-undo"))
    page = client.get(f"/batch/{batch_id}").get_data(as_text=True)
    assert "Bring this batch back" in page
    client.post(f"/decision/{undo_id}/undo")
    with app.app_context():
        assert {i.status for i in db.session.scalars(select(Image))} == {"active"}
