"""Merges under faults, with real processes: a `manage.py merge` killed between staging and commit, a re-run while
the web holds a staged merge of the same files, and staging and committing as jobs from the web."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import ROOT
from core.db import db
from core.models import Batch, Decision, Image
from tests.conftest import follow_job

KILLED_AFTER_STAGING = r"""
import os, signal, sys
from curator.merge import service
def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # as if the process was killed the moment staging was done
service.commit = killed
from manage import cli
cli.main(["merge", sys.argv[1], "--instance", sys.argv[2]])
"""


def run(args: list[str], database_url: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    if database_url:
        env["MENAGERIE_DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def merges(app) -> list[tuple[int, str, int]]:
    with app.app_context():
        return [(b.id, b.state, b.added) for b in db.session.scalars(select(Batch).where(Batch.kind == "merge"))]


def active(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Image.id)).where(Image.status == "active"))


def test_a_merge_killed_after_staging_is_resumed_by_the_next_run(app, dataset, instance_path, database_url):
    """Tried: a real `manage.py merge` SIGKILLed right after staging (before its commit), then the same command
    again. The re-run finds the staged merge of a process that is gone and commits it: 'Resuming', 4 image(s)
    added, exit 0 (it used to stage the files again, find them all exact duplicates of the staged images and
    print 'Committed: 0 image(s) added')."""
    dataset({"cat": 1}, kind="demo", imported="service")
    src = dataset({"cat": 2, "dog": 2}, size=24, seed=40)
    killed = run(["-c", KILLED_AFTER_STAGING, str(src), str(instance_path)], database_url)
    assert killed.returncode == -9, killed.stderr
    assert [state for _id, state, _n in merges(app)] == ["staged"] and active(app) == 1
    again = run([str(ROOT / "manage.py"), "--instance", str(instance_path), "merge", str(src)], database_url)
    assert again.returncode == 0, again.stderr
    assert "Resuming: merge #" in again.stderr and "stopped before committing" in again.stderr
    assert "Committed: 4 image(s) added" in again.stdout
    assert [state for _id, state, _n in merges(app)] == ["committed"] and active(app) == 5


def test_a_merge_staged_on_the_web_is_not_taken_by_the_command_line(app, client, dataset, instance_path,
                                                                    database_url):
    """Tried: the same folder merged from the command line while the web holds it staged for review. The command
    refuses with the reason and exit 1, and nothing changes; the web's merge stays staged."""
    src = dataset({"cat": 2}, size=24, seed=50, root=instance_path / "imports" / "more")
    response = client.post("/merge/stage", data={"path": str(src)})
    assert response.status_code == 302
    result = run([str(ROOT / "manage.py"), "--instance", str(instance_path), "merge", str(src)], database_url)
    assert result.returncode == 1
    assert "waits for review on /merge/" in result.stderr and "Nothing was done" in result.stderr
    assert [state for _id, state, _n in merges(app)] == ["staged"] and active(app) == 0


@pytest.fixture
def app_config():
    return {"IMPORT_INLINE_MAX": 2, "MERGE_COMMIT_INLINE_MAX": 0, "DEDUP_INLINE_MAX": 2}


def test_staging_and_committing_a_large_merge_run_as_jobs(app, client, dataset, instance_path):
    """Tried: a web merge of 4 files with the request limits set to 2 files and 0 commit items: staging runs as a
    job that leads to the preview, the commit runs as a job that leads to the batch report; 4 images join, and the
    merge decision (made in the job's own process) is stored under the browser's identity, not as nobody."""
    src = dataset({"cat": 2, "dog": 2}, size=24, seed=60, root=instance_path / "imports" / "big")
    preview = follow_job(client, client.post("/merge/stage", data={"path": str(src)}))
    assert preview.status_code == 200 and "Merge #" in preview.get_data(as_text=True)
    batch_id = merges(app)[0][0]
    report = follow_job(client, client.post(f"/merge/{batch_id}/commit", data={}))
    assert report.status_code == 200 and f"Batch #{batch_id}" in report.get_data(as_text=True)
    assert merges(app) == [(batch_id, "committed", 4)] and active(app) == 4
    with app.app_context():
        actors = db.session.scalars(select(Decision.actor).where(Decision.kind == "merge")).all()
    assert len(actors) == 1 and actors[0].startswith("guest-"), actors


def test_jobs_leave_no_spool_behind(app, client, instance_path):
    """Tried: a merge upload of 3 files as a job: the spool folder it streamed them to is gone when it is done."""
    import io

    from tests.imagefiles import picture, png_bytes
    files = [(io.BytesIO(png_bytes(picture(24, 70 + i))), f"u{i}.png") for i in range(3)]
    follow_job(client, client.post("/merge/upload", data={"files": files}, content_type="multipart/form-data"))
    assert merges(app)[0][1] == "staged"
    assert list(Path(instance_path / "spool").iterdir()) == []


def test_after_an_upgrade_a_small_merge_is_staged_as_a_job_that_updates_old_fingerprints(app, client, dataset,
                                                                                        instance_path):
    """Tried: a dataset of 4 pictures whose fingerprints are a version older (as after an upgrade; request limit 2
    files), then a web merge of one file: not staged in the request, which would recompute the whole dataset's
    fingerprints first, but as a job leading to the preview; the dataset's fingerprints are then current."""
    from curator.dedup import service as dedup_service
    from tests.curator.dedup.test_dedup_web import age_fingerprints
    dataset({"cat": 2, "dog": 2}, size=24, seed=70, imported="service")
    age_fingerprints(app)
    with app.app_context():
        assert dedup_service.old_fingerprints(db.session) == 4
    src = dataset({"cat": 1}, size=24, seed=71, root=instance_path / "imports" / "one")
    response = client.post("/merge/stage", data={"path": str(src)})
    assert "/jobs/" in response.location
    preview = follow_job(client, response)
    assert preview.status_code == 200 and "Merge #" in preview.get_data(as_text=True)
    with app.app_context():
        assert dedup_service.old_fingerprints(db.session) == 0


def test_the_preview_of_a_batch_not_analysed_yet_updates_old_fingerprints_in_a_job(app, client, dataset,
                                                                                  instance_path):
    """Tried: a staged merge whose analysis never ran (as a run's generated pictures are staged, or a merge killed
    before it), opened after an upgrade left 4 old fingerprints (limit 2): the preview does not recompute them in
    its request but goes through a fingerprint update job, then shows the batch, analysed, with none left."""
    import json

    from curator.dedup import service as dedup_service
    from tests.curator.dedup.test_dedup_web import age_fingerprints
    dataset({"cat": 2, "dog": 2}, size=24, seed=72, imported="service")
    src = dataset({"cat": 1}, size=24, seed=73, root=instance_path / "imports" / "later")
    assert client.post("/merge/stage", data={"path": str(src)}).status_code == 302  # staged in the request
    batch_id = merges(app)[0][0]
    with app.app_context():
        batch = db.session.get(Batch, batch_id)
        batch.note = json.dumps({**json.loads(batch.note or "{}"), "analysed": False})
        db.session.commit()
    age_fingerprints(app)
    answer = client.get(f"/merge/{batch_id}")
    assert "/jobs/" in answer.location
    preview = follow_job(client, answer)
    assert preview.status_code == 200 and f"Merge #{batch_id}" in preview.get_data(as_text=True)
    with app.app_context():
        assert dedup_service.old_fingerprints(db.session) == 0
        assert json.loads(db.session.get(Batch, batch_id).note)["analysed"] is True


def test_a_merge_jobs_page_is_marked_as_part_of_merge(app, client, dataset, instance_path):
    """Tried: the page of a merge staging job and of its commit job (whose result is a batch report), opened as a
    browser does: the navigation marks Merge as the current section both times, not Import."""
    src = dataset({"cat": 2, "dog": 2}, size=24, seed=74, root=instance_path / "imports" / "marked")
    staging = client.post("/merge/stage", data={"path": str(src)})
    assert 'href="/merge/" aria-current="page">Merge</a>' in client.get(staging.location).get_data(as_text=True)
    follow_job(client, staging)
    commit = client.post(f"/merge/{merges(app)[0][0]}/commit", data={})
    page = client.get(commit.location).get_data(as_text=True)
    assert 'href="/merge/" aria-current="page">Merge</a>' in page and 'aria-current="page">Import</a>' not in page
    follow_job(client, commit)
