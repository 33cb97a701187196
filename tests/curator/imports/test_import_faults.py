"""Imports under faults and load, with real processes: killed imports and their workers, answers and a second import
while one runs, imports as jobs from the web, streamed uploads, odd paths, and the sweep of what killed ones left."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from itertools import combinations
from pathlib import Path

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from app import ROOT
from core.db import db
from core.models import Batch, Comparison, Image, ImageClass
from tests.conftest import at_once, follow_job
from tests.imagefiles import picture, png_bytes

MANAGE = [sys.executable, str(ROOT / "manage.py")]


def manage(instance: Path, *args: str, database_url: str | None = None, **popen) -> subprocess.Popen:
    """`python manage.py --instance INSTANCE ARGS...` as a real process on this test's index."""
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    if database_url:
        env["MENAGERIE_DATABASE_URL"] = database_url
    return subprocess.Popen([*MANAGE, "--instance", str(instance), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def running(pid: int) -> bool:
    """Alive and not a zombie (a dead child the container's init has not reaped yet counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_until(predicate, timeout: float = 60.0, step: float = 0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out waiting")


def active_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Image.id)).where(Image.status == "active"))


def staged_count(app) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count(Image.id)).where(Image.status == "staged"))
        db.session.rollback()
        return count


def batches(app) -> list[tuple[int, str, int]]:
    with app.app_context():
        return [(b.id, b.state, b.added) for b in db.session.scalars(select(Batch).order_by(Batch.id))]


@pytest.fixture
def many(tmp_path):
    """1,100 distinct 48 px pictures in one class folder (each stamped with its number: the picture generator
    repeats itself after a few hundred): an import of a few seconds on forked workers, in three chunks of rows."""
    folder = tmp_path / "many" / "cat"
    folder.mkdir(parents=True)
    for i in range(1100):
        img = picture(48, i)
        for bit in range(11):
            img.putpixel((bit, 0), (255, 255, 255, 255) if i >> bit & 1 else (0, 0, 0, 255))
        img.save(folder / f"{i:04d}.png")
    return folder.parent


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_import_takes_its_workers_with_it_and_the_next_run_finishes_the_job(app, many, instance_path,
                                                                                      database_url, sig):
    """Tried: SIGKILL (and SIGTERM) to a real `manage.py import` while its two forked workers store files. The
    workers are gone within seconds (they used to live on for good, holding its stdout); the dataset gained
    nothing; the batch reads interrupted (at once after SIGTERM, found dead by the next run after SIGKILL); the
    same import again says so and adds all 1,100 (taking in those the killed one had indexed)."""
    proc = manage(instance_path, "import", str(many), database_url=database_url)
    workers = wait_until(lambda: [c for c in children(proc.pid) if running(c)] if len(children(proc.pid)) >= 2
                         else None)
    wait_until(lambda: staged_count(app) > 0)  # killed after its first chunk of rows was committed
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    wait_until(lambda: not any(running(w) for w in workers), timeout=10)
    assert active_count(app) == 0
    if sig == signal.SIGTERM:
        assert proc.returncode == 143 and batches(app)[0][1] == "interrupted"
    again = manage(instance_path, "import", str(many), "--json", database_url=database_url)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "was interrupted before it finished" in err
    report = json.loads(out.strip().splitlines()[-1])
    assert (report["added"], report["duplicates"], report["state"]) == (1100, 0, "committed")
    assert active_count(app) == 1100
    assert [state for _id, state, _added in batches(app)] == ["interrupted", "committed"]


def test_answers_during_an_import_are_all_stored(app, client, dataset, many, instance_path, database_url):
    """Tried: a thread posting rank answers (plain forms, distinct pairs) the whole time a real 1,100-file
    `manage.py import` runs in another process. Every answer is stored, none gets a 5xx, none waits long (the
    import holds the write lock for one chunk at a time), and the import ends committed."""
    dataset({"dog": 6}, size=16, imported="cli")
    with app.app_context():
        dogs = list(db.session.scalars(select(Image.id).join(ImageClass).where(ImageClass.name == "dog")))
    pairs = list(combinations(dogs, 2))
    statuses, waits = [], []
    proc = manage(instance_path, "import", str(many), database_url=database_url)
    stop = threading.Event()

    def answer():
        n = 0
        while not stop.is_set():
            left, right = pairs[n % len(pairs)]
            started = time.time()
            response = client.post("/rank/dog/answer",
                                   data={"left": left, "right": right, "outcome": ("left", "right")[n % 2]})
            waits.append(time.time() - started)
            statuses.append(response.status_code)
            n += 1

    ended = []

    def import_then_stop():
        try:
            ended.extend(proc.communicate(timeout=300))
        finally:
            stop.set()  # the answers go on until the import has ended

    at_once(lambda step: step(), [(answer,), (import_then_stop,)])
    out, err = ended
    assert proc.returncode == 0, err
    assert len(statuses) >= 10 and set(statuses) == {302}, statuses
    with app.app_context():
        assert db.session.scalar(select(func.count(Comparison.id))) == len(statuses)
    assert max(waits) < 10, max(waits)
    assert batches(app)[-1][1:] == ("committed", 1100)


def test_two_imports_at_once_both_finish(app, dataset, instance_path, database_url):
    """Tried: two real `manage.py import` processes at the same time over folders sharing 100 pictures. Both exit 0
    (no 'database is locked', no traceback); every picture is in the dataset once, added by one of them and an
    exact duplicate in the other."""
    a = dataset({"cat": 300}, size=48, seed=1)
    b = dataset({"cat": 200}, size=48, seed=2)
    for path in sorted((a / "cat").iterdir())[:100]:
        shutil.copy(path, b / "cat" / f"shared-{path.name}")
    procs = [manage(instance_path, "import", str(src), "--json", database_url=database_url) for src in (a, b)]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    unique = active_count(app)
    assert sum(r["added"] for r in reports) == unique
    assert sum(r["added"] + r["duplicates"] for r in reports) == 600


@pytest.fixture
def app_config():
    return {"IMPORT_INLINE_MAX": 10}


def test_a_large_web_folder_import_runs_as_a_job(client, app, dataset, instance_path):
    """Tried: the server-folder form with more files than the request may take (the limit set to 10): the
    request answers at once with the job's page, the job imports all 40 in its own process, and the page then
    shows the batch report."""
    src = dataset({"cat": 30, "dog": 10}, size=16, root=instance_path / "imports" / "drop")
    started = time.time()
    response = client.post("/import/folder", data={"path": str(src)})
    assert time.time() - started < 5
    report = follow_job(client, response)
    assert "<strong>40</strong> added" in report.get_data(as_text=True)
    assert active_count(app) == 40


def test_a_large_upload_is_spooled_to_disk_and_imported_by_a_job(client, app, instance_path):
    """Tried: an upload of 12 pictures (over the limit of 10) and a 13th file over the size limit: the job imports
    the 12, refuses the big one by name, and the spool folder is gone afterwards."""
    app.config["MAX_FILE_BYTES"] = 20_000
    files = [(io.BytesIO(png_bytes(picture(24, seed))), f"p{seed}.png") for seed in range(12)]
    files.append((io.BytesIO(os.urandom(30_000)), "huge.png"))
    response = client.post("/import/upload", data={"class_name": "cat", "files": files},
                           content_type="multipart/form-data")
    page = follow_job(client, response).get_data(as_text=True)
    assert "<strong>12</strong> added" in page and "huge.png" in page and "file too large" in page
    assert list((instance_path / "spool").iterdir()) == []


def test_spooling_an_upload_never_holds_it_in_memory(tmp_path):
    """Tried: spooling a 64 MiB upload (a zip, which has no per-file limit) and a 64 MiB image over the 50 MiB
    file limit: memory allocated meanwhile stays under 4 MiB (the whole upload used to be read into memory); the
    image stops at the limit and is refused later by name."""
    from curator.imports.service import spool_uploads
    from curator.imports.validation import Limits
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    tracemalloc.start()
    try:
        with open(big, "rb") as a, open(big, "rb") as b:
            spooled = spool_uploads([FileStorage(a, "pack.zip"), FileStorage(b, "huge.png")], tmp_path / "spool",
                                    Limits())
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak
    assert Path(spooled[0]["path"]).stat().st_size == 64 << 20 and spooled[0]["zip"]
    assert spooled[1]["too_large"] and Path(spooled[1]["path"]).stat().st_size == Limits().max_file_bytes + 1


@pytest.mark.parametrize("path", ["/tmp/" + "x" * 300, "/tmp/ok/" + "é" * 200 + "/cat", "/tmp/a\0b"])
@pytest.mark.parametrize("form", ["/import/folder", "/merge/stage"])
def test_a_path_no_file_system_can_hold_is_a_400_with_the_reason(client, path, form):
    """Tried: a path component of 300 bytes, one of 400 bytes in 200 characters, and a NUL, in both folder forms:
    400 and the reason on the page (a 500 before)."""
    response = client.post(form, data={"path": path})
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "at most 255" in page or "NUL" in page


def test_sweep_removes_what_killed_imports_left_and_keeps_what_the_index_names(runner, app, dataset, instance_path):
    """Tried: after an import, an unreferenced stored file, thumbnail and temp file (as a killed import leaves
    them), an abandoned spool folder, and a fresh unreferenced file; then `manage.py sweep` (first --dry-run).
    The old orphans and the spool folder go; every referenced file and the fresh one stay."""
    from manage import cli
    dataset({"cat": 3}, size=16, imported="cli")
    referenced = sorted(p for p in (instance_path / "images").rglob("*") if p.is_file())
    old = time.time() - 2 * 3600
    orphans = [instance_path / "images" / "ab" / ("ab" + "0" * 62 + ".png"),
               instance_path / "thumbs" / "ab" / ("ab" + "0" * 62 + ".webp"),
               instance_path / "images" / "ab" / ".x.png.1234.tmp"]
    spool = instance_path / "spool" / "20261201-000000-abcd"
    fresh = instance_path / "images" / "cd" / ("cd" + "1" * 62 + ".png")
    for path in [*orphans, spool / "00000", fresh]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    for path in [*orphans, spool / "00000", spool, *referenced]:
        os.utime(path, (old, old))
    dry = json.loads(runner.invoke(cli, ["sweep", "--dry-run", "--json"]).output.strip().splitlines()[-1])
    assert sorted(dry["files"]) == sorted(map(str, orphans)) and dry["spools"] == [str(spool)]
    assert all(p.exists() for p in orphans)
    result = runner.invoke(cli, ["sweep"])
    assert result.exit_code == 0 and "Removed 3 unreferenced stored file(s) and 1 abandoned spool" in result.output
    assert not any(p.exists() for p in orphans) and not spool.exists()
    assert all(p.exists() for p in referenced) and fresh.exists()


def test_an_import_that_cannot_get_the_write_lock_stops_with_a_clear_message(app, runner, dataset, monkeypatch,
                                                                               database_url):
    """Tried: another process holds SQLite's write lock for the whole import (busy_timeout cut to 0.2 s for the
    test): `manage.py import` ends with exit 1 and a sentence saying the index stayed locked, not a traceback, and
    nothing is in the index."""
    if database_url:
        pytest.skip("SQLite's write lock")
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from curator.imports import service as ingest
    from manage import cli

    def short_wait(dbapi_connection, _record):
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            dbapi_connection.execute("PRAGMA busy_timeout=200")

    src = dataset({"cat": 3}, size=16)
    monkeypatch.setattr(ingest, "WRITE_TRIES", 2)
    event.listen(Engine, "connect", short_wait)
    holder = sqlite3.connect(Path(app.instance_path) / "menagerie.sqlite3", isolation_level=None)
    try:
        with app.app_context():
            db.engine.dispose()  # new connections, with the short wait
        holder.execute("BEGIN IMMEDIATE")
        result = runner.invoke(cli, ["import", str(src)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        event.remove(Engine, "connect", short_wait)
    assert result.exit_code == 1, result.output
    assert "the index stayed locked by other writers" in result.output and "Traceback" not in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(Batch.id))) == 0
