"""Generated images and snapshots: pictures a run made and sent back are staged (no snapshot has them), and even
once accepted a snapshot leaves them out unless asked (form box, --include-generated); the manifest records the
choice and the snapshot list says how many were left out."""
from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from core.db import db
from core.models import Batch
from curator.imports.sources import Candidate
from curator.imports.storage import ImageStore
from curator.merge import service as merging
from curator.snapshots.service import create_snapshot
from tests.imagefiles import picture, png_bytes

PICTURES = {"size": 24, "name": "{cls}{i}.png", "imported": "service"}


def send_generated(app, per_class: dict[str, int]) -> int:
    """Stage generated pictures as trainer.generation_service does; returns the batch id."""
    candidates = [Candidate(f"run x/{name}/{i}.png", name, (lambda d=png_bytes(picture(16, 500 + 10 * n + i)): d))
                  for n, (name, count) in enumerate(per_class.items()) for i in range(count)]
    with app.app_context():
        batch = merging.stage(db.session, ImageStore(app.instance_path), candidates, source="run x",
                              kind=merging.GENERATED)
        return batch.id


def accept(app, batch_id: int) -> None:
    with app.app_context():
        merging.commit(db.session, db.session.get(Batch, batch_id))


def manifest_of(app, **kwargs) -> dict:
    with app.app_context():
        snap = create_snapshot(db.session, Path(app.instance_path), **kwargs)
        return json.loads(Path(snap.manifest_path).read_text())


def test_staged_then_accepted_generated_images_stay_out_unless_asked(app, dataset):
    """Tried: 3 cats and 2 dogs, then 2 generated cats and 1 dog staged: a snapshot has 5 images (staged ones are in
    no class). Accepted: a default snapshot still has 5 and records 3 left out; include_generated has 8 and records
    the choice; the diff names the changed setting."""
    dataset({"cat": 3, "dog": 2}, **PICTURES)
    batch_id = send_generated(app, {"cat": 2, "dog": 1})
    staged = manifest_of(app)
    assert staged["counts"] == {"cat": 3, "dog": 2} and staged["generated"] == {"included": False, "left_out": 0}
    accept(app, batch_id)
    default = manifest_of(app)
    assert default["counts"] == {"cat": 3, "dog": 2} and default["generated"] == {"included": False, "left_out": 3}
    included = manifest_of(app, include_generated=True)
    assert included["counts"] == {"cat": 5, "dog": 3} and included["generated"] == {"included": True, "left_out": 0}
    with app.app_context():
        from curator.snapshots.service import diff_with_previous, list_snapshots
        diff = diff_with_previous(db.session, Path(app.instance_path), list_snapshots(db.session)[0])
        assert diff.settings["generated images"] == ("left out", "included") and diff.added == 3


def test_the_form_box_and_the_page_say_what_was_left_out(client, app, dataset):
    """Tried: the Snapshots page with 2 accepted generated images: the form offers the box (unticked) and says how
    many; saving without it lists '2 generated images left out'; ticking it saves a snapshot that includes them."""
    dataset({"cat": 3, "dog": 2}, **PICTURES)
    accept(app, send_generated(app, {"cat": 1, "dog": 1}))
    page = client.get("/train/snapshots").get_data(as_text=True)
    assert 'name="include_generated" type="checkbox" value="1" >' in page and "2 accepted images came from" in page
    saved = client.post("/train/snapshots", data={"image_size": "32", "fit": "crop", "selection": "active"},
                        follow_redirects=True).get_data(as_text=True)
    assert "5 images in 2 classes; 2 generated image(s) left out." in saved and "2 generated images left out" in saved
    client.post("/train/snapshots", data={"image_size": "32", "fit": "crop", "selection": "active",
                                          "include_generated": "1"})
    with app.app_context():
        from curator.snapshots.service import list_snapshots
        assert sum(list_snapshots(db.session)[0].counts.values()) == 7
    assert "generated images included" in client.get("/train/snapshots").get_data(as_text=True)


def test_the_command_line_leaves_them_out_unless_include_generated(app, runner, dataset):
    """Tried: `manage.py snapshot --json` and `--include-generated --json` with one accepted generated cat. The
    first has 5 images and reports 1 left out; the second 6, generated included."""
    from manage import cli
    dataset({"cat": 3, "dog": 2}, **PICTURES)
    accept(app, send_generated(app, {"cat": 1}))
    plain = runner.invoke(cli, ["snapshot", "--json"])
    assert plain.exit_code == 0, plain.output
    result = json.loads(plain.stdout)
    assert result["images"] == 5 and result["generated"] == {"included": False, "left_out": 1}
    text = runner.invoke(cli, ["snapshot"])
    assert "1 generated image(s) left out (--include-generated takes them)" in text.output
    included = json.loads(runner.invoke(cli, ["snapshot", "--include-generated", "--json"]).stdout)
    assert included["images"] == 6 and included["generated"]["included"] is True


def test_generated_batches_are_listed_as_such_and_other_kinds_stay_refused(client, app, dataset):
    """Tried: the Merge page with a staged generated batch (listed, marked generated), staging with an unknown kind
    (refused, nothing stored), and the preview of an id that is an ordinary import (404)."""
    dataset({"cat": 2, "dog": 2}, **PICTURES)
    batch_id = send_generated(app, {"cat": 1})
    page = client.get("/merge/").get_data(as_text=True)
    assert f"Generated pictures #{batch_id}</a> <span class=\"badge warn\">generated</span>" in page
    with app.app_context():
        before = db.session.scalars(select(Batch)).all()
        try:
            merging.stage(db.session, ImageStore(app.instance_path), [], source="x", kind="import")
        except merging.MergeError as exc:
            assert "kind" in str(exc)
        else:
            raise AssertionError("an unknown kind was staged")
        assert len(db.session.scalars(select(Batch)).all()) == len(before)
        import_id = before[0].id
    assert client.get(f"/merge/{import_id}").status_code == 404
