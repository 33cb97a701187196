"""Snapshots: frozen selections with per-class counts, a manifest training can read, and the change since the last.

Each test says what is tried; all use the real app on a temporary instance with small generated pictures.
"""
from __future__ import annotations

import hashlib
import json
import re
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import db
from core.models import Comparison, Image, ImageClass, Snapshot
from curator.snapshots.service import SnapshotError, create_snapshot, diff_with_previous

PICTURES = {"size": 24, "name": "{cls}{i}.png", "imported": "service"}  # the `dataset` fixture's settings here


def snapshot(app, **kwargs) -> Snapshot:
    with app.app_context():
        snap = create_snapshot(db.session, Path(app.instance_path), **kwargs)
        db.session.refresh(snap)
        db.session.expunge(snap)
        return snap


def test_manifest_lists_every_active_image_with_counts_and_preprocessing(app, dataset):
    """Tried: a snapshot of two classes. The manifest follows the contract: relative paths that resolve to the
    stored files (with matching hashes), labels, classes, preprocessing; the row holds per-class counts."""
    dataset({"cat": 3, "dog": 2}, **PICTURES)
    snap = snapshot(app, image_size=16, fit="pad", background="alpha", name="first try")
    manifest_file = Path(snap.manifest_path)
    assert manifest_file == Path(app.instance_path) / "snapshots" / snap.id / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    assert manifest["id"] == snap.id and manifest["name"] == "first try" and manifest["created"]
    assert manifest["classes"] == ["cat", "dog"]
    assert manifest["preprocess"] == {"image_size": 16, "fit": "pad", "background": "alpha"}
    assert snap.counts == {"cat": 3, "dog": 2} == manifest["counts"]
    assert sorted(i["label"] for i in manifest["items"]) == ["cat"] * 3 + ["dog"] * 2
    for item in manifest["items"]:
        assert item["path"].startswith("../../images/")
        data = (manifest_file.parent / item["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == item["sha256"]


def test_snapshot_is_immutable_and_the_next_one_shows_what_changed(app, dataset):
    """Tried: snapshot, then reject one cat, relabel one dog to cat and import a new class; snapshot again.
    The first manifest is byte-for-byte unchanged and read-only; the diff counts per class what moved."""
    dataset({"cat": 3, "dog": 3}, **PICTURES)
    first = snapshot(app)
    before = Path(first.manifest_path).read_bytes()
    assert not Path(first.manifest_path).stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    with app.app_context():
        cats = list(db.session.scalars(select(Image).join(ImageClass).where(ImageClass.name == "cat")))
        dog = db.session.scalars(select(Image).join(ImageClass).where(ImageClass.name == "dog")).first()
        cats[0].status = "rejected"
        dog.class_id = cats[1].class_id
        db.session.commit()
    dataset({"fish": 2}, **PICTURES, seed=50)
    second = snapshot(app, image_size=24)
    assert Path(first.manifest_path).read_bytes() == before
    assert second.counts == {"cat": 3, "dog": 2, "fish": 2}
    with app.app_context():
        diff = diff_with_previous(db.session, Path(app.instance_path), db.session.get(Snapshot, second.id))
        first_diff = diff_with_previous(db.session, Path(app.instance_path), db.session.get(Snapshot, first.id))
    by_class = {c.name: c for c in diff.classes}
    assert (by_class["cat"].added, by_class["cat"].removed) == (1, 1)  # the relabelled dog in, the rejected cat out
    assert (by_class["dog"].added, by_class["dog"].removed) == (0, 1)
    assert (by_class["fish"].before, by_class["fish"].after, by_class["fish"].added) == (0, 2, 2)
    assert diff.settings == {"image_size": (32, 24)} and diff.previous_id == first.id
    assert first_diff.previous_id is None


def test_top_k_takes_each_class_best_by_ranking(app, dataset):
    """Tried: a top-2 snapshot after comparisons where one image wins every time and another is hand-selected.
    Each class keeps 2 images: the selected one first, then the highest rated."""
    dataset({"cat": 4, "dog": 4}, **PICTURES)
    with app.app_context():
        cats = list(db.session.scalars(select(Image).join(ImageClass).where(ImageClass.name == "cat")
                                       .order_by(Image.id)))
        winner, chosen = cats[2], cats[3]
        chosen.selected = True
        for loser in (cats[0], cats[1], cats[3]):
            for _ in range(3):
                db.session.add(Comparison(class_id=winner.class_id, left_id=winner.id, right_id=loser.id,
                                          outcome="left"))
        db.session.commit()
        expected = {winner.sha256, chosen.sha256}
    snap = snapshot(app, selection="top-k", top_k=2)
    manifest = json.loads(Path(snap.manifest_path).read_text())
    assert snap.counts == {"cat": 2, "dog": 2} and manifest["selection"] == "top-k"
    assert {i["sha256"] for i in manifest["items"] if i["label"] == "cat"} == expected


@pytest.mark.parametrize("kwargs, message", [
    ({"image_size": 10}, "multiple of 4"),
    ({"image_size": 4}, "from 8 to 512"),
    ({"fit": "stretch"}, "'crop' or 'pad'"),
    ({"background": "not-a-colour"}, "'alpha'"),
    ({"selection": "best"}, "'active' or 'top-k'"),
])
def test_bad_settings_are_refused_and_nothing_is_written(app, dataset, kwargs, message):
    """Tried: each bad setting. A clear SnapshotError, no folder and no row."""
    dataset({"cat": 2, "dog": 2}, **PICTURES)
    with pytest.raises(SnapshotError, match=message):
        snapshot(app, **kwargs)
    assert not list((Path(app.instance_path) / "snapshots").glob("*/manifest.json"))
    with app.app_context():
        assert db.session.scalar(select(func.count(Snapshot.id))) == 0


def test_top_k_without_a_number_takes_each_classs_own_k(app, dataset):
    """Tried: the ranked top-k with no number (it was refused: "no top-k set", though Rank shows every class a k):
    a class whose k was set on Rank keeps that many, the others the default Rank shows (half of the images
    competing); two dogs flagged "neither belongs" compete with nothing and are in no top-k (they were)."""
    dataset({"cat": 4, "dog": 6}, **PICTURES)
    with app.app_context():
        db.session.scalar(select(ImageClass).where(ImageClass.name == "cat")).top_k = 1
        dogs = list(db.session.scalars(select(Image).join(ImageClass).where(ImageClass.name == "dog")))
        for dog in dogs[:2]:
            dog.flagged = True
        flagged = {dog.sha256 for dog in dogs[:2]}
        db.session.commit()
    snap = snapshot(app, selection="top-k")
    assert snap.counts == {"cat": 1, "dog": 2}
    assert not flagged & {i["sha256"] for i in json.loads(Path(snap.manifest_path).read_text())["items"]}
    assert snapshot(app, selection="top-k", top_k=6).counts == {"cat": 4, "dog": 4}


def test_one_class_is_not_enough_to_train(app, dataset):
    """Tried: a dataset with a single class. Refused: class-conditional training needs two."""
    dataset({"cat": 3}, **PICTURES)
    with pytest.raises(SnapshotError, match="at least two classes"):
        snapshot(app)


def test_snapshot_command_prints_json_and_refuses_bad_input(app, runner, dataset):
    """Tried: `manage.py snapshot --json`, then twice with a bad size. JSON with counts and changes; then an
    error message and a non-zero exit status."""
    from manage import cli
    dataset({"cat": 2, "dog": 3}, **PICTURES)
    result = runner.invoke(cli, ["snapshot", "--image-size", "16", "--name", "cli", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["counts"] == {"cat": 2, "dog": 3} and out["image_size"] == 16 and out["name"] == "cli"
    assert Path(out["manifest"]).is_file() and out["changes"]["previous"] is None
    again = runner.invoke(cli, ["snapshot", "--image-size", "16", "--top-k", "1", "--json"])
    assert json.loads(again.output)["changes"]["removed"] == 3
    bad = runner.invoke(cli, ["snapshot", "--image-size", "30"])
    assert bad.exit_code != 0 and "multiple of 4" in bad.output


def test_snapshots_page_lists_counts_and_changes_and_validates_the_form(client, app, dataset):
    """Tried: create two snapshots through the page's form, then post a bad size. The list shows per-class counts
    and the change from the previous snapshot; the bad form gets its message and a 400."""
    dataset({"cat": 2, "dog": 3}, **PICTURES)
    assert client.post("/train/snapshots", data={"image_size": "16", "fit": "crop", "background": "white",
                                                 "selection": "active", "name": "one"}).status_code == 302
    dataset({"dog": 1}, **PICTURES, seed=40)
    assert client.post("/train/snapshots", data={"image_size": "16", "fit": "crop", "background": "white",
                                                 "selection": "active", "name": "two"}).status_code == 302
    page = client.get("/train/snapshots").get_data(as_text=True)
    assert "cat 2, dog 3" in page and "cat 2, dog 4" in page
    assert "+1" in page and "dog: 3 → 4" in page and "first snapshot" in page
    bad = client.post("/train/snapshots", data={"image_size": "abc", "fit": "crop", "selection": "active"})
    assert bad.status_code == 400 and "Image size must be a whole number" in bad.get_data(as_text=True)
    # a bad background is said beside its field (it was a banner above the form)
    bad = client.post("/train/snapshots", data={"image_size": "16", "fit": "crop", "selection": "active",
                                                "background": "chartreusey"}).get_data(as_text=True)
    assert re.search(r'<span class="field-error" id="error-background"[^>]*>Background \S*chartreusey\S* must be', bad)
    with app.app_context():
        assert db.session.scalar(select(func.count(Snapshot.id))) == 2
