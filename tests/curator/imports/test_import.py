"""Importing: folders of class subfolders, zips, uploads; every kind of bad input is refused with a reason and
leaves nothing behind."""
from __future__ import annotations

import io
import json
import os
import re
import zipfile
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from core.db import db
from core.models import Batch, BatchItem, Decision, Image, ImageClass
from manage import cli
from tests.imagefiles import (
    HTML_AS_JPG,
    SVG,
    photo,
    picture,
    png_bomb,
    png_bytes,
    truncated_jpeg,
    truncated_png,
    write_picture,
)


def stored_files(instance: Path) -> list[Path]:
    return sorted(p for p in (instance / "images").rglob("*") if p.is_file()) if (instance / "images").exists() else []


def run_import(runner, *args):
    result = runner.invoke(cli, args=["import", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_folder_of_class_subfolders(runner, app, dataset, instance_path):
    src = dataset({"cat": 3}, name="c{i}.png")
    dataset({"dog": 1}, name="d{i}.jpg", seed=10, root=src)
    report = run_import(runner, src)
    assert (report["added"], report["duplicates"], report["rejected"]) == (4, 0, 0)
    with app.app_context():
        counts = dict(db.session.execute(select(ImageClass.name, func.count(Image.id)).join(Image)
                                         .group_by(ImageClass.name)).all())
        assert counts == {"cat": 3, "dog": 1}
        img = db.session.scalar(select(Image).where(Image.original_filename == "dog/d0.jpg"))
        assert img.format == "JPEG" and not img.has_alpha and (img.width, img.height) == (32, 32)
        assert (instance_path / img.path).read_bytes() == (src / "dog" / "d0.jpg").read_bytes()
    assert len(stored_files(instance_path)) == 4


def test_same_bytes_twice_are_stored_once(runner, app, tmp_path, instance_path):
    """Tried: the same file imported again, and two copies of one file inside one import."""
    write_picture(tmp_path / "a" / "x.png", seed=3)
    (tmp_path / "a" / "copy.png").write_bytes((tmp_path / "a" / "x.png").read_bytes())
    first = run_import(runner, "--class", "bird", tmp_path / "a")
    assert (first["added"], first["duplicates"]) == (1, 1)
    second = run_import(runner, "--class", "bird", tmp_path / "a" / "x.png")
    assert (second["added"], second["duplicates"]) == (0, 1)
    assert second["items"][0]["existing"] is not None
    assert len(stored_files(instance_path)) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count(Image.id))) == 1


@pytest.mark.parametrize("chunk", [128, 1])
def test_copies_inside_one_import_point_at_the_image_it_added(runner, app, tmp_path, monkeypatch, chunk):
    """Tried: a file, two copies of it and another file in one import, with its rows written in one chunk and one
    row per chunk (the copies' rows then come after the original's insert)."""
    from curator.imports import service as ingest
    monkeypatch.setattr(ingest, "CHUNK", chunk)
    write_picture(tmp_path / "a" / "1.png", seed=3)
    for name in ("2-copy.png", "3-copy.png"):
        (tmp_path / "a" / name).write_bytes((tmp_path / "a" / "1.png").read_bytes())
    write_picture(tmp_path / "a" / "4.png", seed=4)
    report = run_import(runner, "--class", "bird", tmp_path / "a")
    items = {i["file"]: i for i in report["items"]}
    assert [items[f]["outcome"] for f in sorted(items)] == ["added", "duplicate", "duplicate", "added"]
    assert items["2-copy.png"]["existing"] == items["3-copy.png"]["existing"] == items["1.png"]["image"]
    assert items["4.png"]["image"] not in (None, items["1.png"]["image"])


def test_zip_import_takes_classes_from_folders(runner, app, tmp_path):
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("frog/f1.png", png_bytes(picture(24, 1)))
        zf.writestr("frog/f2.png", png_bytes(picture(24, 2)))
        zf.writestr("loose.png", png_bytes(picture(24, 4)))
    report = run_import(runner, "--class", "turtle", archive)
    assert report["added"] == 3
    with app.app_context():
        names = {i.original_filename: i.class_name for i in db.session.scalars(select(Image))}
    assert names == {"set.zip/frog/f1.png": "frog", "set.zip/frog/f2.png": "frog", "set.zip/loose.png": "turtle"}


BAD_FILES = {
    "empty.png": (b"", "empty file"),
    "truncated.png": (truncated_png(), "truncated or corrupt"),
    "truncated-photo.jpg": (truncated_jpeg(), "truncated or corrupt"),  # decoded at reduced size: still caught
    "page.jpg": (HTML_AS_JPG, "HTML page"),
    "notes.jpg": (b"just some words\n", "text file"),
    "drawing.svg": (SVG, "SVG is a vector format"),
    "bomb.png": (png_bomb(30000, 30000), "30000×30000"),
    "garbage.png": (b"\x89PNG\r\n\x1a\n" + os.urandom(200), "corrupt"),
}


def test_bad_files_are_rejected_with_reasons_and_nothing_stored(runner, app, tmp_path, instance_path):
    """Tried: zero bytes, half a PNG, 60 % of a large JPEG, an HTML page and a text file named .jpg, an SVG, a 30000×30000 PNG
    decompression bomb, random bytes behind a PNG signature — beside one good file."""
    folder = tmp_path / "bad"
    folder.mkdir()
    for name, (data, _reason) in BAD_FILES.items():
        (folder / name).write_bytes(data)
    write_picture(folder / "good.png", seed=5)
    report = run_import(runner, "--class", "cat", folder)
    reasons = {i["file"]: i["reason"] for i in report["items"] if i["outcome"] == "rejected"}
    for name, (_data, expected) in BAD_FILES.items():
        assert expected in reasons[name], (name, reasons[name])
    assert report["added"] == 1 and report["rejected"] == len(BAD_FILES)
    assert len(stored_files(instance_path)) == 1


def test_large_jpeg_is_stored_whole_with_its_full_size_and_a_thumbnail(runner, app, tmp_path, instance_path):
    """Tried: a 1024x768 JPEG, which the import decodes at 1/4 scale: the stored file is the original bytes, the
    index has the full size and no pixel hash yet (it is computed if a duplicate search needs it), and the gallery
    thumbnail is made."""
    data = png_bytes(photo(), "JPEG")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "photo.jpg").write_bytes(data)
    assert run_import(runner, "--class", "cat", tmp_path / "in")["added"] == 1
    with app.app_context():
        image = db.session.scalars(select(Image)).one()
        assert (image.width, image.height, image.format, image.pixel_hash) == (1024, 768, "JPEG", None)
        assert (instance_path / image.path).read_bytes() == data
    (thumb,) = (instance_path / "thumbs").rglob(f"{image.sha256}.*")
    assert thumb.suffix == ".jpg" and PILImage.open(thumb).size == (192, 144)  # opaque: JPEG, fast to encode


def test_thumbnail_of_a_photo_turned_by_exif_is_upright(client, runner, app, tmp_path):
    """Tried: a 1024x512 JPEG whose EXIF orientation says "rotate 90°": the gallery thumbnail is portrait, like the
    photo the browser shows, and is served as a JPEG."""
    exif = PILImage.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    photo(1024, 512).save(buf, "JPEG", exif=exif.tobytes())
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "turned.jpg").write_bytes(buf.getvalue())
    assert run_import(runner, "--class", "cat", tmp_path / "in")["added"] == 1
    with app.app_context():
        image_id = db.session.scalar(select(Image.id))
    response = client.get(f"/image/{image_id}/thumb")
    assert response.mimetype == "image/jpeg"
    assert PILImage.open(io.BytesIO(response.data)).size == (96, 192)


def test_oversized_file_is_rejected_before_reading(app, tmp_path, instance_path):
    """Tried: a file over the per-file size limit (limit lowered for the test)."""
    from curator.imports.service import import_paths
    from curator.imports.storage import ImageStore
    from curator.imports.validation import Limits
    write_picture(tmp_path / "big.png", size=64, seed=1)
    with app.app_context():
        batch = import_paths(db.session, ImageStore(instance_path), [tmp_path / "big.png"], class_name="cat",
                             limits=Limits(max_file_bytes=100))
        assert batch.rejected == 1 and "file too large" in batch.items[0].reason
    assert stored_files(instance_path) == []


def test_unsafe_zip_entries_are_refused(runner, app, tmp_path, instance_path):
    """Tried: a zip with '../' paths, an absolute path and a symbolic link entry, beside a good entry."""
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.png", png_bytes(picture(16, 1)))
        zf.writestr("/etc/abs.png", png_bytes(picture(16, 2)))
        link = zipfile.ZipInfo("cat/link.png")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
        zf.writestr("cat/ok.png", png_bytes(picture(16, 3)))
    report = run_import(runner, archive)
    reasons = {i["file"]: i["reason"] for i in report["items"]}
    assert "escapes the archive" in reasons["evil.zip/../escape.png"]
    assert "absolute path" in reasons["evil.zip//etc/abs.png"]
    assert "symbolic link" in reasons["evil.zip/cat/link.png"]
    assert report["added"] == 1
    assert not (tmp_path / "escape.png").exists()


def test_missing_path_and_bad_class_name_are_clear_errors(runner, tmp_path):
    result = runner.invoke(cli, args=["import", str(tmp_path / "nope")])
    assert result.exit_code != 0 and "no such file or folder" in result.output
    write_picture(tmp_path / "x.png")
    result = runner.invoke(cli, args=["import", "--class", "../etc", str(tmp_path / "x.png")])
    assert result.exit_code != 0 and "invalid class name" in result.output


def test_interrupted_import_leaves_the_dataset_unchanged_and_a_rerun_takes_its_images_in(app, dataset,
                                                                                          instance_path, monkeypatch):
    """Tried: the process fails half way through a batch (an error while indexing the fifth file, after two chunks
    of rows were already committed), then the same folder is imported again. The dataset gains nothing from the
    failed run (its rows are held back as staged, the batch says interrupted); the re-run adds all five, not
    "exact duplicates" of images nobody can see."""
    from curator.imports import service as ingest
    from curator.imports.service import import_paths
    from curator.imports.storage import ImageStore
    src = dataset({"cat": 5})
    real = ingest._Indexer.item_for
    calls = {"n": 0}

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("power cut")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ingest._Indexer, "item_for", failing)
    monkeypatch.setattr(ingest, "CHUNK", 2)
    monkeypatch.setattr(ingest, "COMMIT_EVERY", 2)
    with app.app_context():
        with pytest.raises(RuntimeError):
            import_paths(db.session, ImageStore(instance_path), [src])
        assert db.session.scalar(select(func.count(Image.id)).where(Image.status == "active")) == 0
        assert db.session.scalar(select(func.count(Image.id)).where(Image.status == "staged")) == 4
        failed = db.session.scalars(select(Batch)).one()
        assert failed.state == "interrupted"
        monkeypatch.setattr(ingest._Indexer, "item_for", real)
        batch = import_paths(db.session, ImageStore(instance_path), [src])
        assert (batch.state, batch.added, batch.duplicates) == ("committed", 5, 0)
        assert db.session.scalar(select(func.count(Image.id)).where(Image.status == "active")) == 5
        assert db.session.scalar(select(func.count(Image.id)).where(Image.batch_id == batch.id)) == 5
        assert sum("interrupted batch" in i.reason for i in batch.items) == 4
    assert calls["n"] == 5


def upload(client, files: dict[str, bytes], class_name: str = "cat"):
    data = {"class_name": class_name, "files": [(io.BytesIO(b), name) for name, b in files.items()]}
    return client.post("/import/upload", data=data, content_type="multipart/form-data", follow_redirects=True)


def test_upload_shows_batch_report(client, app):
    response = upload(client, {"a.png": png_bytes(picture(32, 1)), "b.png": png_bytes(picture(32, 2)),
                               "page.jpg": HTML_AS_JPG, "a-again.png": png_bytes(picture(32, 1))})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>2</strong> added" in page and "<strong>1</strong> exact duplicates" in page
    assert "HTML page, not an image" in page


def test_upload_zip(client, app):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("horse/h.png", png_bytes(picture(20, 7)))
    response = upload(client, {"pack.zip": buf.getvalue()}, class_name="")
    assert "<strong>1</strong> added" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Image)).class_name == "horse"


def test_upload_with_a_blank_class_asks_and_holds_the_files(client, app, instance_path):
    """Tried: two pictures uploaded with the class left blank. The answer is a 400 form that names the choice (type
    a class, or "no class (unlabelled)"), nothing is imported, and the files are held: the second try sends only
    the answer (no files) and imports them. A forged held token is refused, a held upload is used once."""
    data = {"class_name": "", "files": [(io.BytesIO(png_bytes(picture(32, s))), f"{s}.png") for s in (1, 2)]}
    response = client.post("/import/upload", data=data, content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Which class are 2 of these files in (1.png, 2.png)?" in page and "no class (unlabelled)" in page
    assert 'id="error-class" role="alert"' in page and "2 files held, waiting for a class" in page
    with app.app_context():
        assert db.session.scalar(select(func.count(Image.id))) == 0
    held = dict(re.findall(r'name="(held|held_token)" value="([^"]+)"', page))
    forged = client.post("/import/upload", data={**held, "held_token": "x" * 24, "class_name": "cat"})
    assert forged.status_code == 400 and "no longer held" in forged.get_data(as_text=True)
    done = client.post("/import/upload", data={**held, "class_name": "Cat"}, follow_redirects=True)
    assert "<strong>2</strong> added" in done.get_data(as_text=True)
    with app.app_context():
        assert [i.class_name for i in db.session.scalars(select(Image))] == ["cat", "cat"]
    again = client.post("/import/upload", data={**held, "class_name": "cat"})
    assert again.status_code == 400 and "no longer held" in again.get_data(as_text=True)
    assert not any((instance_path / "spool").iterdir())


@pytest.mark.parametrize("bad", ["../etc", "q" * 400])
def test_upload_with_an_invalid_class_asks_again_and_holds_the_files(client, app, bad):
    """Tried: a picture uploaded with a class name the rules refuse (a path, 400 characters pasted): a 400 that
    says why (a long name shortened, so the page does not grow sideways), nothing imported, and the file held, so
    the second try sends only a valid class (it used to drop the file: choose it again)."""
    data = {"class_name": bad, "files": [(io.BytesIO(png_bytes(picture(32, 5))), "five.png")]}
    response = client.post("/import/upload", data=data, content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "Invalid class name" in page and "1 file held" in page
    if len(bad) > 70:
        assert bad not in page and f"{bad[:60]}…" in page
    held = dict(re.findall(r'name="(held|held_token)" value="([^"]+)"', page))
    done = client.post("/import/upload", data={**held, "class_name": "fox"}, follow_redirects=True)
    assert "<strong>1</strong> added" in done.get_data(as_text=True)
    with app.app_context():
        assert [i.class_name for i in db.session.scalars(select(Image))] == ["fox"]


def test_upload_with_no_class_chosen_explicitly_goes_unlabelled(client, app):
    """Tried: the explicit "no class (unlabelled)" choice: imported without asking, without a class."""
    data = {"class_name": "", "no_class": "1", "files": [(io.BytesIO(png_bytes(picture(32, 3))), "x.png")]}
    response = client.post("/import/upload", data=data, content_type="multipart/form-data", follow_redirects=True)
    assert response.status_code == 200 and "<strong>1</strong> added" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Image)).class_id is None


def test_uploading_an_unlabelled_image_again_with_a_class_offers_to_set_it(client, app):
    """Tried: a picture imported without a class, then uploaded again with the class "dog". The report says it is
    already there as image #N (unlabelled) and offers to put it in dog; that click sets the class as one undoable
    decision (undo puts it back unlabelled), and the offer is gone afterwards."""
    bytes_ = png_bytes(picture(32, 4))
    client.post("/import/upload", data={"no_class": "1", "files": [(io.BytesIO(bytes_), "x.png")]},
                content_type="multipart/form-data")
    with app.app_context():
        image_id = db.session.scalar(select(Image.id))
    response = upload(client, {"x-again.png": bytes_}, class_name="dog")
    page = " ".join(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)).split())
    assert f"already in the dataset as image #{image_id} (unlabelled)" in page and "Put it in dog" in page
    batch_id = int(re.search(r"/batch/(\d+)/set-classes", response.get_data(as_text=True)).group(1))
    page = client.post(f"/batch/{batch_id}/set-classes", follow_redirects=True).get_data(as_text=True)
    assert "Class set on 1 image already in the dataset" in page and "Put it in dog" not in page
    with app.app_context():
        assert db.session.get(Image, image_id).class_name == "dog"
        decision = db.session.scalar(select(Decision).where(Decision.kind == "relabel"))
        assert decision.batch_id == batch_id and decision.image_id == image_id
    again = client.post(f"/batch/{batch_id}/set-classes", follow_redirects=True).get_data(as_text=True)
    assert "Nothing to set" in again
    client.post(f"/decision/{decision.id}/undo")
    with app.app_context():
        assert db.session.get(Image, image_id).class_id is None


@pytest.mark.parametrize("app_config", [{"MAX_CONTENT_LENGTH": 4096}])
def test_request_over_size_limit_is_refused_and_server_keeps_serving(client, app, instance_path):
    """Tried: an upload request larger than MAX_CONTENT_LENGTH."""
    response = upload(client, {"big.png": os.urandom(10_000)})
    assert response.status_code == 413
    assert "larger than the" in response.get_data(as_text=True)
    assert client.get("/").status_code == 200
    assert stored_files(instance_path) == []


def test_links_and_hidden_files_inside_a_folder(runner, app, tmp_path):
    """Tried: a folder holding a picture, a symbolic link to it, a linked folder of pictures outside, a hidden file,
    a hidden folder, a .DS_Store and a nested class folder: the links are refused with a reason and not followed,
    hidden things are skipped silently, the rest is imported in sorted order."""
    src = tmp_path / "src"
    write_picture(src / "cat" / "a.png", seed=1)
    write_picture(src / "cat" / "kitten" / "b.png", seed=2)
    (src / "cat" / "link.png").symlink_to(src / "cat" / "a.png")
    write_picture(tmp_path / "elsewhere" / "c.png", seed=3)
    (src / "dog").symlink_to(tmp_path / "elsewhere")
    write_picture(src / "cat" / ".hidden.png", seed=4)
    write_picture(src / ".git" / "d.png", seed=5)
    (src / "cat" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    os.mkfifo(src / "cat" / "pipe.png")  # reading it would wait forever for a writer
    report = run_import(runner, src)
    reasons = {i["file"]: i["reason"] for i in report["items"]}
    assert list(reasons) == ["dog", "cat/a.png", "cat/link.png", "cat/pipe.png", "cat/kitten/b.png"]
    assert "symbolic link" in reasons["cat/link.png"] and "symbolic link" in reasons["dog"]
    assert reasons["cat/pipe.png"] == "not a regular file (a pipe, socket or device)"
    assert (report["added"], report["rejected"]) == (2, 3)


def test_a_file_named_on_the_command_line_may_be_a_link(runner, app, tmp_path):
    """Tried: `import link.png` where link.png points at a picture: the user named it, so it is followed."""
    write_picture(tmp_path / "pictures" / "a.png", seed=6)
    (tmp_path / "link.png").symlink_to(tmp_path / "pictures" / "a.png")
    report = run_import(runner, tmp_path / "link.png", "--class", "cat")
    assert report["added"] == 1 and report["items"][0]["file"] == "link.png"


def test_a_stored_file_left_empty_by_a_crash_is_written_again(runner, app, tmp_path, instance_path):
    """Tried: a stored image truncated to 0 bytes (what an OS crash can leave of a file renamed without fsync), then
    the same picture imported again: the import reports an exact duplicate and the stored file is whole again."""
    write_picture(tmp_path / "src" / "cat" / "a.png", seed=8)
    assert run_import(runner, tmp_path / "src")["added"] == 1
    (stored,) = stored_files(instance_path)
    stored.write_bytes(b"")
    assert run_import(runner, tmp_path / "src")["duplicates"] == 1
    assert stored.read_bytes() == (tmp_path / "src" / "cat" / "a.png").read_bytes()


def test_folder_form_refuses_paths_outside_import_roots(client, app, tmp_path, instance_path):
    """Tried: a server folder outside the allowed roots, and a symlink inside a root pointing outside it."""
    write_picture(tmp_path / "outside" / "cat" / "x.png")
    response = client.post("/import/folder", data={"path": str(tmp_path / "outside")}, follow_redirects=True)
    assert "outside the allowed import folders" in response.get_data(as_text=True)
    root = instance_path / "imports"
    root.mkdir(parents=True, exist_ok=True)
    (root / "sneaky").symlink_to(tmp_path / "outside")
    response = client.post("/import/folder", data={"path": str(root / "sneaky")}, follow_redirects=True)
    assert "outside the allowed import folders" in response.get_data(as_text=True)
    assert stored_files(instance_path) == []


def test_folder_form_imports_inside_roots(client, app, instance_path):
    write_picture(instance_path / "imports" / "drop" / "rabbit" / "r.png", seed=9)
    response = client.post("/import/folder", data={"path": str(instance_path / "imports" / "drop")},
                           follow_redirects=True)
    assert "<strong>1</strong> added" in response.get_data(as_text=True)


def test_demo_import_is_idempotent(runner, app, demo_images):
    first = json.loads(runner.invoke(cli, args=["demo", "--json"]).stdout.strip().splitlines()[-1])
    assert first["added"] == 298 and first["rejected"] == 0
    with app.app_context():  # 298 files span two indexing chunks and both worker processes: classes stay right
        counts = dict(db.session.execute(select(ImageClass.name, func.count(Image.id)).join(Image)
                                         .group_by(ImageClass.name)).all())
        stored = {i.original_filename: i.sha256 for i in db.session.scalars(select(Image))}
    assert counts == {"bird": 133, "cat": 23, "dog": 37, "fish": 33, "frog": 9, "horse": 36, "rabbit": 18,
                      "turtle": 9}
    import hashlib
    for name, sha in list(stored.items())[::37]:
        assert hashlib.sha256((demo_images / name).read_bytes()).hexdigest() == sha, name
    second = json.loads(runner.invoke(cli, args=["demo", "--json"]).stdout.strip().splitlines()[-1])
    assert second["already_imported"] is True


def test_import_into_a_recreated_instance_folder(runner, app, dataset, instance_path):
    """Tried: the store's folders are deleted while the process runs (it remembers which folders it made), then
    the same files are imported again into a fresh index: the folders are made again, nothing fails."""
    import shutil
    src = dataset({"cat": 3})
    assert run_import(runner, src)["added"] == 3
    with app.app_context():
        paths = [instance_path / i.path for i in db.session.scalars(select(Image))]
        db.session.execute(BatchItem.__table__.delete())
        db.session.execute(Image.__table__.delete())
        db.session.commit()
    shutil.rmtree(instance_path / "images")
    assert run_import(runner, src)["added"] == 3
    assert all(p.exists() for p in paths)


FORKED_VS_SERIAL = r"""
import sys
from pathlib import Path
from curator.imports import storing as ingest
from curator.imports.sources import iter_paths
from curator.imports.validation import Limits
src, out = Path(sys.argv[1]), Path(sys.argv[2])
candidates = list(iter_paths([src], None, Limits()))
assert len(candidates) >= ingest.FORK_FROM and ingest.forking_is_safe()
(src / "43-gone.png").unlink()  # listed, then deleted before it is read
(src / "44-swapped.png").unlink()  # listed, then replaced by a link to a picture outside the folder
(src / "44-swapped.png").symlink_to(src.parent / "outside.png")
forked = list(ingest.stored_files(candidates, Limits(), out / "forked", workers=2))
serial = list(ingest.stored_files(candidates, Limits(), out / "serial", workers=1))
assert [type(r) for r in forked] == [type(r) for r in serial]
assert [vars(r) if isinstance(r, ingest.Stored) else r.reason for r in forked] == \
       [vars(r) if isinstance(r, ingest.Stored) else r.reason for r in serial]
assert forked[-2].reason == "cannot read the file: No such file or directory"
assert forked[-1].reason == "symbolic link: links are not followed"
stored = sorted(p.relative_to(out / "forked") for p in (out / "forked").rglob("*") if p.is_file())
assert stored == sorted(p.relative_to(out / "serial") for p in (out / "serial").rglob("*") if p.is_file())
print(len(forked), sum(isinstance(r, ingest.Stored) for r in forked))
"""


def test_files_stored_by_forked_workers_match_storing_them_here(dataset, tmp_path):
    """Tried: 40 pictures, a copy, a truncated PNG, an HTML page named .jpg, a file deleted after it was listed and one
    replaced by a symbolic link after it was listed, stored by two forked worker processes (the command line's path, run in a clean single-threaded interpreter; the
    workers read the files themselves) and one by one: the same results in the same order, the same files, and the
    deleted file and the link rejected with a reason instead of failing the import or following the link."""
    import subprocess
    import sys

    from app import ROOT
    src = dataset({"": 40}, size=48, name="{i:02d}.png", root=tmp_path / "src")  # beside outside.png
    (src / "40-copy.png").write_bytes((src / "07.png").read_bytes())
    (src / "41-truncated.png").write_bytes(truncated_png())
    (src / "42-page.jpg").write_bytes(HTML_AS_JPG)
    write_picture(src / "43-gone.png", size=48, seed=99)
    write_picture(src / "44-swapped.png", size=48, seed=98)
    write_picture(tmp_path / "outside.png", size=48, seed=97)
    result = subprocess.run([sys.executable, "-c", FORKED_VS_SERIAL, str(src), str(tmp_path / "out")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["45", "41"]


KILLED_WORKER = r"""
import os, sys
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from curator.imports import storing as ingest
from curator.imports.sources import iter_paths
from curator.imports.validation import Limits
src, out = Path(sys.argv[1]), Path(sys.argv[2])
real = ingest.store_one
def dies_on_the_20th_file(data, limits, instance):
    if data == (src / "19.png").read_bytes():
        os._exit(9)  # as if the kernel killed the worker
    return real(data, limits, instance)
ingest.store_one = dies_on_the_20th_file  # the forked workers inherit it
try:
    list(ingest.stored_files(list(iter_paths([src], None, Limits())), Limits(), out / "store", workers=2))
except BrokenProcessPool:
    print("broken")
import sqlite3, click
from manage import cli
try:
    cli.main(["import", str(src), "--instance", str(out / "instance")], standalone_mode=False)
except click.ClickException as exc:
    print(exc.message.split(";")[0])
db = sqlite3.connect(out / "instance" / "menagerie.sqlite3")
print(db.execute("select count(*) from image where status = 'active'").fetchone()[0],
      *db.execute("select state from batch").fetchone())
"""


def test_a_killed_worker_fails_the_import_instead_of_hanging(dataset, tmp_path):
    """Tried: a worker process dies while storing the 20th of 40 files, in the storing stage alone and in
    `manage.py import`: an error instead of waiting forever for the lost task; the command says what happened, the
    dataset gained no image and the batch says it was interrupted."""
    import subprocess
    import sys

    from app import ROOT
    src = dataset({"": 40}, size=24, name="{i:02d}.png")
    result = subprocess.run([sys.executable, "-c", KILLED_WORKER, str(src), str(tmp_path / "out")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["broken", "a worker process storing the files died (killed, or out of "
                                          "memory)", "0 interrupted"]
