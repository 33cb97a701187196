"""The duplicate search as a job and its kept result: a large search runs outside the request, and reopening the
review (in any worker, after a restart) answers from the kept search until new images arrive."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from core.db import db
from core.models import Decision, Image
from curator.dedup import service as ds
from curator.imports.hashing import FINGERPRINT_BYTES, THUMB_BYTES
from curator.imports.storage import ImageStore
from tests.conftest import follow_job
from tests.curator.dedup.test_dedup_web import ORIGINAL, age_fingerprints, transformed_copies


@pytest.fixture
def app_config():
    return {"DEDUP_INLINE_MAX": 0}  # every search not kept yet runs as a job


@pytest.fixture
def copies(app, dataset, tmp_path, demo_images):
    """The demo cat and four transformed copies of it (one group), and a dog, imported."""
    src = dataset([ORIGINAL, "dog/emojione__dog.png"], kind="demo")
    for name, data in transformed_copies(demo_images / ORIGINAL).items():
        (src / "cat" / name).write_bytes(data)
    dataset({}, root=src, imported="service")
    return src


def job_folders(instance_path: Path) -> list[str]:
    root = instance_path / "jobs"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def forget_in_memory() -> None:
    """As another server worker or a restarted server sees it: nothing kept in this process's memory."""
    with ds._MATCHES_LOCK:
        ds._MATCHES.clear()


def test_the_search_runs_as_a_job_and_reopening_the_review_is_instant(client, app, copies, instance_path):
    """Tried: /duplicates/ with no kept search (and the inline limit at 0): the request starts a search job and
    answers with its page; a second visit meanwhile joins that job. When it is done the review shows the group of
    five; reopened in a 'fresh worker' (memory cleared), it answers from the kept search on disk, with no new job,
    quickly, and with the same group."""
    first = client.get("/duplicates/?threshold=16")
    second = client.get("/duplicates/?threshold=16")
    assert first.location == second.location and len(job_folders(instance_path)) == 1
    page = follow_job(client, first).get_data(as_text=True)
    assert page.count('name="member"') == 5
    forget_in_memory()
    started = time.time()
    again = client.get("/duplicates/?threshold=16")
    assert again.status_code == 200 and time.time() - started < 5
    assert again.get_data(as_text=True).count('name="member"') == page.count('name="member"') == 5
    assert len(job_folders(instance_path)) == 1


def test_a_resolution_keeps_the_search_and_a_new_image_needs_a_new_one(client, app, copies, dataset, instance_path):
    """Tried: after the search job, resolving the group (the active images shrink: the kept search still answers,
    no job) and then importing a new picture (the kept search no longer covers the dataset: a new job)."""
    follow_job(client, client.get("/duplicates/"))
    store = ImageStore(instance_path)
    with app.app_context():
        groups = ds.find_groups(db.session, store)
        ds.resolve(db.session, groups[0].ids, groups[0].keeper_id)
        forget_in_memory()
        assert ds.search_is_kept(db.session, store, 16)[0]
    assert client.get("/duplicates/").status_code == 200 and len(job_folders(instance_path)) == 1
    dataset({"fish": 1}, kind="demo", imported="service")
    with app.app_context():
        assert not ds.search_is_kept(db.session, store, 16)[0]
        assert db.session.scalar(select(Image.id).where(Image.original_filename.like("fish%"))) is not None
    assert "/jobs/" in client.get("/duplicates/").location


def test_equal_copies_stay_grouped_from_the_kept_search_when_the_first_leaves(client, app, dataset, instance_path,
                                                                              demo_images):
    """Tried: one picture as three files of equal pixels (the PNG, re-saved PNG, lossless WebP: linked through the
    first) and a resized copy; after the search job, the first is rejected on its page. The review answers from the
    kept search, with no second job, with the other three in one group, as a new search finds them; resolving that
    group and undoing it need no job either (they used to search again, 8-10 s at 2,360 images)."""
    src = dataset({}, kind="demo")
    (src / "cat").mkdir(parents=True, exist_ok=True)
    img = PILImage.open(demo_images / ORIGINAL).convert("RGBA")
    for name, kw in [("a-first.png", {}), ("b-resaved.png", {"compress_level": 1}),
                     ("c-lossless.webp", {"lossless": True})]:
        img.save(src / "cat" / name, **kw)
    img.resize((96, 96), PILImage.Resampling.LANCZOS).save(src / "cat" / "d-resized.png")
    dataset({}, root=src, imported="service")
    follow_job(client, client.get("/duplicates/"))
    with app.app_context():
        first = db.session.scalar(select(Image.id).where(Image.original_filename.like("%a-first.png")))
    answer = client.post(f"/image/{first}/status", data={"status": "rejected"}, follow_redirects=True)
    assert "Rejected." in answer.get_data(as_text=True), answer.get_data(as_text=True)[-3000:]
    forget_in_memory()
    page = client.get("/duplicates/")
    assert page.status_code == 200 and len(job_folders(instance_path)) == 1
    shown = sorted(int(i) for i in re.findall(r'name="member" value="(\d+)"', page.get_data(as_text=True)))
    store = ImageStore(instance_path)
    with app.app_context():
        ds._forget_kept(store)
        fresh = ds.find_groups(db.session, store)
        assert [sorted(g.ids) for g in fresh] == [shown] and len(shown) == 3
    forget_in_memory()
    client.post("/duplicates/resolve", data={"member": shown, "keeper": shown[-1]})
    with app.app_context():
        decision = db.session.scalar(select(Decision.id).where(Decision.kind == "duplicate"))
    assert client.get("/duplicates/").status_code == 200
    client.post(f"/decision/{decision}/undo")
    page = client.get("/duplicates/")
    assert page.status_code == 200 and page.get_data(as_text=True).count('name="member"') == 3
    assert len(job_folders(instance_path)) == 1


def test_after_an_upgrade_old_fingerprints_are_recomputed_in_a_job_not_in_a_request(client, app, copies,
                                                                                    instance_path):
    """Tried: a kept search, then every fingerprint made a version older (as after an upgrade; the inline limit at
    0): the review does not answer from the kept search, which would recompute them all in the request, but starts
    a search job, which updates them and finds the same group of five; the calibration page, asked with old
    fingerprints left, starts a fingerprint update job and returns to its pairs when it is done."""
    follow_job(client, client.get("/duplicates/"))
    age_fingerprints(app)
    store = ImageStore(instance_path)
    with app.app_context():
        assert ds.old_fingerprints(db.session) == 6 and ds.search_is_kept(db.session, store, 16)[0]
        assert ds.search_needs_a_job(db.session, store, 16, 0)
    answer = client.get("/duplicates/")
    assert "/jobs/" in answer.location and len(job_folders(instance_path)) == 2
    assert follow_job(client, answer).get_data(as_text=True).count('name="member"') == 5
    with app.app_context():
        assert ds.old_fingerprints(db.session) == 0
    age_fingerprints(app)
    answer = client.get("/duplicates/calibrate")
    assert "/jobs/" in answer.location and len(job_folders(instance_path)) == 3
    page = follow_job(client, answer)
    assert page.status_code == 200 and "Calibrate" in page.get_data(as_text=True)
    with app.app_context():
        assert ds.old_fingerprints(db.session) == 0
    assert client.get("/duplicates/calibrate").status_code == 200 and len(job_folders(instance_path)) == 3


def test_a_picture_whose_file_is_gone_does_not_send_every_visit_to_a_job(client, app, copies, instance_path):
    """Tried: after an upgrade (every fingerprint a version older), one picture's stored file deleted from disk (the
    inline limit at 0): the search job updates the others and restamps the missing one's old thumbnail as current,
    so the next visits answer from the kept search and the calibration page opens, with no further job each time
    (before, every visit would have started a job, and the calibration page would have looped through one)."""
    follow_job(client, client.get("/duplicates/"))
    age_fingerprints(app)
    with app.app_context():
        image = db.session.scalar(select(Image).where(Image.original_filename.like("%copy-cropped.png")))
        kept_thumb = image.fingerprint[:THUMB_BYTES]
        ImageStore(instance_path).absolute(image.path).unlink()
    follow_job(client, client.get("/duplicates/"))
    jobs_then = len(job_folders(instance_path))
    with app.app_context():
        assert ds.old_fingerprints(db.session) == 0
        image = db.session.scalar(select(Image).where(Image.original_filename.like("%copy-cropped.png")))
        assert image.fingerprint[:THUMB_BYTES] == kept_thumb and len(image.fingerprint) == FINGERPRINT_BYTES
    assert client.get("/duplicates/").status_code == 200
    assert client.get("/duplicates/calibrate").status_code == 200
    assert len(job_folders(instance_path)) == jobs_then


def test_a_search_jobs_page_is_marked_as_part_of_duplicates(client, app, copies):
    """Tried: the page of a duplicate search job, opened as a browser does (not htmx): the navigation marks
    Duplicates as the current section, not Import (where job pages are served from)."""
    answer = client.get("/duplicates/")
    page = client.get(answer.location).get_data(as_text=True)
    assert 'href="/duplicates/" aria-current="page">Duplicates</a>' in page
    assert 'aria-current="page">Import</a>' not in page
    follow_job(client, answer)
