"""Merging a batch into the dataset: stage, preview (new / exact / near duplicates / invalid), class mapping to an
existing and a new class, accept per item, commit in one transaction, galleries, undo of the whole merge, merging
from another Menagerie instance, `merge --dry-run`, an interrupted commit, discard, and bad form values."""
from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from app import create_app
from core.db import db
from core.models import Batch, BatchItem, Decision, Image, ImageClass
from curator.merge import service as merging
from manage import cli
from tests.conftest import HX

EXISTING = ["cat/emojione__cat-face.png", "cat/twemoji__cat.png", "dog/emojione__dog.png"]
NEW_CATS = ["noto__cat-face.png", "openmoji__cat.png"]
NEW_DOGS = ["twemoji__dog.png"]


@pytest.fixture
def app_config(tmp_path) -> dict:
    return {"IMPORT_ROOTS": [tmp_path / "roots"]}


def make_source(dataset, root: Path, demo_images: Path) -> Path:
    """kitty/: two new cats, a resized copy of an existing cat (near), a byte copy of one (exact);
    pups/: a new dog and a broken file."""
    src = dataset({"kitty": [f"cat/{name}" for name in NEW_CATS], "pups": [f"dog/{name}" for name in NEW_DOGS]},
                  kind="demo", root=root / "incoming")
    img = PILImage.open(demo_images / EXISTING[0])
    img.resize((100, 100), PILImage.Resampling.LANCZOS).save(src / "kitty" / "resized.png")
    shutil.copy(demo_images / EXISTING[1], src / "kitty" / "exact.png")
    (src / "pups" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return src


def snapshot_index(app) -> dict:
    """Everything a merge could change, to compare before and after."""
    with app.app_context():
        s = db.session
        return {"images": sorted((i.id, i.status, i.class_id, i.status_reason) for i in s.scalars(select(Image))),
                "classes": sorted(s.scalars(select(ImageClass.name))),
                "batches": sorted((b.id, b.state, b.added) for b in s.scalars(select(Batch))),
                "items": sorted((i.id, i.accepted, i.outcome) for i in s.scalars(select(BatchItem))),
                "decisions": s.scalar(select(func.count()).select_from(Decision))}


def items_by_name(app, batch_id: int) -> dict[str, BatchItem]:
    with app.app_context():
        batch = db.session.get(Batch, batch_id)
        return {i.filename: (i.id, i.outcome, i.image_id, i.existing_id, i.accepted, i.source_class, i.reason)
                for i in batch.items}


@pytest.fixture
def staged(client, app, tmp_path, dataset, demo_images):
    dataset(EXISTING, kind="demo", imported="cli")
    src = make_source(dataset, tmp_path / "roots", demo_images)
    response = client.post("/merge/stage", data={"path": str(src)})
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[-1])


def test_staged_merge_preview_sorts_every_file(client, app, staged):
    items = items_by_name(app, staged)
    assert {k: v[1] for k, v in items.items()} == {
        "kitty/noto__cat-face.png": "new", "kitty/openmoji__cat.png": "new", "pups/twemoji__dog.png": "new",
        "kitty/resized.png": "near-duplicate", "kitty/exact.png": "duplicate", "pups/broken.png": "rejected"}
    with app.app_context():
        existing = {i.original_filename: i.id for i in db.session.scalars(select(Image).where(Image.batch_id != staged))}
    assert items["kitty/resized.png"][3] == existing[EXISTING[0]]  # beside its nearest existing image
    assert items["kitty/exact.png"][3] == existing[EXISTING[1]]
    assert items["kitty/noto__cat-face.png"][4] is True and items["kitty/resized.png"][4] is False
    assert items["kitty/noto__cat-face.png"][5] == "kitty"  # the folder name is kept for the mapping
    page = client.get(f"/merge/{staged}").get_data(as_text=True)
    for section in ("section-new", "section-near", "section-duplicates", "section-invalid"):
        assert f'id="{section}"' in page
    assert items["pups/broken.png"][6] and items["pups/broken.png"][6] in page  # the reason is shown
    assert f'alt="existing #{existing[EXISTING[0]]}"' in page


def test_staged_images_stay_out_of_the_dataset(client, app, staged):
    """Before commit: no class created for the source folders, nothing in galleries or ranking pages."""
    with app.app_context():
        assert sorted(db.session.scalars(select(ImageClass.name))) == ["cat", "dog"]
        assert db.session.scalar(select(func.count()).select_from(Image).where(Image.status == "staged")) == 4
    assert client.get("/gallery/").get_data(as_text=True).count('class="tile active"') == 3
    assert client.get("/gallery/_unlabelled").get_data(as_text=True).count('class="tile') == 0
    assert "kitty" not in client.get("/rank/").get_data(as_text=True)


def test_merge_flow_mapping_accept_commit_gallery_and_undo(client, app, staged):
    items = items_by_name(app, staged)
    # decline one new cat, accept the near duplicate, one item at a time (htmx swaps the row)
    row = client.post(f"/merge/{staged}/accept", data={"item": items["kitty/openmoji__cat.png"][0], "accepted": "0"},
                      headers=HX).get_data(as_text=True)
    assert "<tr" in row and "not accepted" in row and "<html" not in row
    # the count and the commit button change with it (out of band): they went stale before
    assert '<strong id="accepted-count" hx-swap-oob="true">2</strong>' in row
    assert '<button type="submit" class="primary" id="commit" hx-swap-oob="true">Commit the merge (2 accepted images)</button>' in row
    client.post(f"/merge/{staged}/accept", data={"item": items["kitty/resized.png"][0], "accepted": "1"})
    page = client.get(f"/merge/{staged}").get_data(as_text=True)
    assert '<strong id="accepted-count">3</strong>' in page
    # kitty -> the existing class cat, pups -> a new class puppies (the names the preview's mapping form posts)
    fields = re.findall(r'name="source_(\d+)" value="([^"]*)"', page)
    assert sorted(v for _, v in fields) == ["kitty", "pups"]
    targets = {"kitty": "cat", "pups": "Puppies"}
    form = {**{f"source_{n}": v for n, v in fields}, **{f"target_{n}": targets[v] for n, v in fields}}
    response = client.post(f"/merge/{staged}/commit", data=form, follow_redirects=True)
    text = response.get_data(as_text=True)
    assert f"Merge #{staged} committed: 3 image(s) added" in text
    with app.app_context():
        batch = db.session.get(Batch, staged)
        assert batch.state == "committed" and batch.added == 3
        got = {i.filename: (i.image.status, i.image.class_name) for i in batch.items if i.image}
        decisions = list(db.session.scalars(select(Decision)))
    # the declined file is set aside in its class (never an "(unlabelled)" rejected image)
    assert got == {"kitty/noto__cat-face.png": ("active", "cat"), "kitty/openmoji__cat.png": ("rejected", "cat"),
                   "kitty/resized.png": ("active", "cat"), "pups/twemoji__dog.png": ("active", "puppies")}
    assert (batch.added, batch.duplicates, batch.rejected) == (3, 1, 2)  # the byte copy; the declined cat, broken
    assert [d.kind for d in decisions] == ["merge"]  # one decision for the whole merge
    assert client.get("/gallery/cat").get_data(as_text=True).count('class="tile active"') == 4
    assert client.get("/gallery/puppies").get_data(as_text=True).count('class="tile active"') == 1
    # undo the whole merge from its batch page
    assert "Undo this batch" in client.get(f"/batch/{staged}").get_data(as_text=True)
    client.post(f"/batch/{staged}/undo")
    with app.app_context():
        batch = db.session.get(Batch, staged)
        assert batch.state == "undone"
        assert {i.image.status for i in batch.items if i.image} == {"rejected"}
    assert client.get("/gallery/cat").get_data(as_text=True).count('class="tile active"') == 2
    assert client.get("/gallery/puppies").get_data(as_text=True).count('class="tile active"') == 0


def test_accept_all_new_and_decline_all(client, app, staged):
    client.post(f"/merge/{staged}/accept", data={"outcome": "new", "accepted": "0"})
    assert all(not v[4] for v in items_by_name(app, staged).values() if v[1] == "new")
    client.post(f"/merge/{staged}/accept", data={"outcome": "near-duplicate", "accepted": "1"})
    client.post(f"/merge/{staged}/accept", data={"outcome": "new", "accepted": "1"})
    accepted = {k for k, v in items_by_name(app, staged).items() if v[4]}
    assert accepted == {"kitty/noto__cat-face.png", "kitty/openmoji__cat.png", "pups/twemoji__dog.png",
                        "kitty/resized.png"}
    # nothing accepted: the commit is not the page's main action, and says what it would still do
    for outcome in ("new", "near-duplicate"):
        client.post(f"/merge/{staged}/accept", data={"outcome": outcome, "accepted": "0"})
    page = client.get(f"/merge/{staged}").get_data(as_text=True)
    assert '<button type="submit" id="commit" title="Adds no image: closes the merge' in page


def test_interrupted_commit_leaves_the_index_unchanged(app, staged, monkeypatch):
    """Tried: the commit fails after the changes are applied in the session (after the new class was made)."""
    before = snapshot_index(app)
    real_record = merging.record

    def record_then_fail(*args, **kwargs):
        real_record(*args, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(merging, "record", record_then_fail)
    with app.app_context():
        batch = db.session.get(Batch, staged)
        with pytest.raises(RuntimeError, match="disk full"):
            merging.commit(db.session, batch, {"kitty": "cat", "pups": "brand-new"})
    assert snapshot_index(app) == before
    with app.app_context():
        assert db.session.scalar(select(ImageClass).where(ImageClass.name == "brand-new")) is None


def test_discard_sets_aside_and_can_be_brought_back(client, app, staged):
    response = client.post(f"/merge/{staged}/discard", follow_redirects=True)
    assert "discarded" in response.get_data(as_text=True)
    with app.app_context():
        batch = db.session.get(Batch, staged)
        assert batch.state == "discarded" and {i.image.status for i in batch.items if i.image} == {"rejected"}
        discard = db.session.scalar(select(Decision).where(Decision.kind == "merge-discard"))
    page = client.get(f"/merge/{staged}").get_data(as_text=True)
    assert "Bring the staged merge back" in page and "discarded before anything joined the dataset" in page
    # the batch list says it added nothing (it used to read "undone", with the staged count under "added")
    row = re.search(rf'<tr><td><a href="/batch/{staged}">#{staged}</a>.*?</tr>', client.get("/batches").get_data(
        as_text=True), re.S).group(0)
    assert "<td>discarded</td>" in row and "none has joined the dataset" in row
    client.post(f"/decision/{discard.id}/undo")
    with app.app_context():
        batch = db.session.get(Batch, staged)
        assert batch.state == "staged" and {i.image.status for i in batch.items if i.image} == {"staged"}


@pytest.mark.parametrize("action, form, message", [
    ("accept", {"item": "999999"}, "999999 is not an item of merge"),
    ("accept", {"item": "EXACT"}, "has no image to take in"),
    ("accept", {"outcome": "bogus"}, "unknown outcome"),
    ("accept", {}, "choose at least one item"),
    ("mapping", {"source_0": "kitty", "target_0": "../etc"}, "invalid class name"),
    ("commit", {"source_0": "kitty", "target_0": "_hidden"}, "class mapping refused"),
])
def test_bad_merge_form_values_change_nothing(client, app, staged, action, form, message):
    items = items_by_name(app, staged)
    form = {k: (str(items["kitty/exact.png"][0]) if v == "EXACT" else v) for k, v in form.items()}
    before = snapshot_index(app)
    page = client.post(f"/merge/{staged}/{action}", data=form, follow_redirects=True).get_data(as_text=True)
    assert message in page
    assert snapshot_index(app) == before


def test_bad_sources_and_unknown_merges(client, app, tmp_path, staged):
    before = snapshot_index(app)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    page = client.post("/merge/stage", data={"path": str(outside)}, follow_redirects=True).get_data(as_text=True)
    assert "outside the allowed import folders" in page and "Nothing was staged" in page
    page = client.post("/merge/stage", data={"path": str(tmp_path / "roots" / "missing")},
                       follow_redirects=True).get_data(as_text=True)
    assert "no such file or folder" in page
    assert "Enter a folder" in client.post("/merge/stage", data={"path": ""}, follow_redirects=True).get_data(as_text=True)
    assert client.get("/merge/999999").status_code == 404
    assert client.post("/merge/999999/commit").status_code == 404
    assert snapshot_index(app) == before
    # a committed merge cannot be committed or changed again
    client.post(f"/merge/{staged}/commit", data={"source_0": "kitty", "target_0": "cat", "source_1": "pups",
                                                 "target_1": "dog"})
    after_commit = snapshot_index(app)
    page = client.post(f"/merge/{staged}/commit", follow_redirects=True).get_data(as_text=True)
    assert "is committed: only a staged merge can be changed" in page
    assert snapshot_index(app) == after_commit


def test_upload_a_zip_stages_a_merge(client, app, dataset, demo_images):
    dataset(EXISTING, kind="demo", imported="cli")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(demo_images / "cat" / NEW_CATS[0], f"kitty/{NEW_CATS[0]}")
        zf.write(demo_images / EXISTING[2], "pups/same.png")
    buf.seek(0)
    response = client.post("/merge/upload", data={"files": [(buf, "more.zip")]}, content_type="multipart/form-data")
    batch_id = int(response.headers["Location"].rsplit("/", 1)[-1])
    items = items_by_name(app, batch_id)
    assert {k: (v[1], v[5]) for k, v in items.items()} == {f"more.zip/kitty/{NEW_CATS[0]}": ("new", "kitty"),
                                                          "more.zip/pups/same.png": ("duplicate", "pups")}


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_merge_from_another_instance(client, app, tmp_path, dataset):
    """Tried: a second instance with a cat, a frog and a rejected image; its index is only read."""
    dataset(EXISTING, kind="demo", imported="cli")
    other_path = tmp_path / "roots" / "other"
    other = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{other_path / 'menagerie.sqlite3'}"},
                       instance_path=other_path)  # another instance is its own SQLite file, whatever this test's index
    src = dataset([EXISTING[0], "cat/noto__cat.png", "frog/emojione__frog.png", "frog/fluent-emoji-flat__frog.png",
                   "frog/noto__frog.png"], kind="demo")
    assert other.test_cli_runner().invoke(cli, ["import", str(src)]).exit_code == 0
    with other.app_context():
        gone = db.session.scalar(select(Image).where(Image.original_filename == "frog/fluent-emoji-flat__frog.png"))
        gone.status = "rejected"
        lost = db.session.scalar(select(Image).where(Image.original_filename == "frog/noto__frog.png"))
        (other_path / lost.path).unlink()  # a file missing from the other instance: an invalid item with a reason
        db.session.commit()
        db.engine.dispose()
    with sqlite3.connect(other_path / "menagerie.sqlite3") as con:  # not WAL: read-only must still open it
        con.execute("PRAGMA journal_mode=DELETE")
    digest = _file_digest(other_path / "menagerie.sqlite3")
    response = client.post("/merge/stage", data={"path": str(other_path)})
    batch_id = int(response.headers["Location"].rsplit("/", 1)[-1])
    items = items_by_name(app, batch_id)
    got = sorted((v[1], v[5], k.split(" ", 1)[1]) for k, v in items.items())
    assert got == [("duplicate", "cat", EXISTING[0]), ("new", "cat", "cat/noto__cat.png"),
                   ("new", "frog", "frog/emojione__frog.png"),
                   ("rejected", "frog", "frog/noto__frog.png")]  # the rejected frog is not taken
    assert "file missing from the other instance" in items[next(k for k in items if "noto__frog" in k)][6]
    client.post(f"/merge/{batch_id}/commit", data={"source_0": "cat", "target_0": "cat",
                                                   "source_1": "frog", "target_1": "frog"})
    with app.app_context():
        frog = db.session.scalar(select(Image).where(Image.original_filename.like("%emojione__frog.png")))
        assert (frog.status, frog.class_name) == ("active", "frog")
    assert _file_digest(other_path / "menagerie.sqlite3") == digest


def test_merge_dry_run_changes_nothing(runner, app, tmp_path, dataset, demo_images, instance_path):
    dataset(EXISTING, kind="demo", imported="cli")
    src = make_source(dataset, tmp_path / "roots", demo_images)
    before = snapshot_index(app)
    files_before = sorted(p.name for p in (instance_path / "images").rglob("*") if p.is_file())
    result = runner.invoke(cli, ["merge", str(src), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["dry_run"] and data["batch"] is None
    assert data["counts"] == {"new": 3, "duplicate": 1, "near-duplicate": 1, "rejected": 1}
    near = next(i for i in data["items"] if i["outcome"] == "near-duplicate")
    assert near["file"] == "kitty/resized.png" and near["existing"] is not None
    assert snapshot_index(app) == before
    assert sorted(p.name for p in (instance_path / "images").rglob("*") if p.is_file()) == files_before


def test_merge_command_commits_the_new_images_only(runner, app, tmp_path, dataset, demo_images):
    dataset(EXISTING, kind="demo", imported="cli")
    src = make_source(dataset, tmp_path / "roots", demo_images)
    result = runner.invoke(cli, ["merge", str(src), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["committed"] and data["added"] == 3
    with app.app_context():
        batch = db.session.get(Batch, data["batch"])
        got = {i.filename: (i.image.status, i.image.class_name) for i in batch.items if i.image}
        classes = sorted(db.session.scalars(select(ImageClass.name)))
    # the near duplicate it did not take in is marked a duplicate of the cat it copies, in that cat's class
    assert got == {"kitty/noto__cat-face.png": ("active", "kitty"), "kitty/openmoji__cat.png": ("active", "kitty"),
                   "pups/twemoji__dog.png": ("active", "pups"), "kitty/resized.png": ("duplicate", "cat")}
    with app.app_context():
        resized = next(i.image for i in db.session.get(Batch, data["batch"]).items if i.filename == "kitty/resized.png")
        original = db.session.scalar(select(Image).where(Image.original_filename == EXISTING[0]))
        assert resized.duplicate_of_id == original.id
        report = db.session.get(Batch, data["batch"])
        assert (report.added, report.duplicates) == (3, 1)  # one exact copy; the near duplicate is not "exact"
    assert classes == ["cat", "dog", "kitty", "pups"]
    human = runner.invoke(cli, ["merge", str(src)])
    assert human.exit_code == 0 and "Committed: 0 image(s) added" in human.output


def test_merge_command_refuses_bad_folder_names_before_storing(runner, app, tmp_path, demo_images):
    src = tmp_path / "bad"
    (src / "_weird").mkdir(parents=True)
    shutil.copy(demo_images / EXISTING[0], src / "_weird" / "a.png")
    before = snapshot_index(app)
    result = runner.invoke(cli, ["merge", str(src)])
    assert result.exit_code == 1 and "cannot be class names" in result.output and "Nothing was stored" in result.output
    assert snapshot_index(app) == before
