"""Jobs (core.jobs): real processes with a folder; their state read back from the files, whatever became of them."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from core import jobs
from tests.conftest import HX


def counting(job) -> dict:
    """A job function: counts to args['n'] with progress, waiting args['pause'] seconds per step."""
    n = int(job.args["n"])
    job.progress(0, n, "counting")
    for _ in range(n):
        time.sleep(float(job.args.get("pause", 0)))
        job.progress(add=1)
    if job.args.get("refuse"):
        raise jobs.JobError(job.args["refuse"])
    if job.args.get("crash"):
        raise RuntimeError("boom")
    return {"counted": n}


TARGET = "tests.core.test_jobs:counting"


def wait_for(instance: Path, job_id: str, states=jobs.TERMINAL, timeout: float = 60) -> jobs.JobView:
    deadline = time.time() + timeout
    while time.time() < deadline:
        view = jobs.read(instance, job_id)
        if view is not None and view.state in states:
            return view
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {states}: {jobs.read(instance, job_id)}")


def test_a_job_runs_in_its_own_process_and_reports_progress_and_result(tmp_path):
    """Tried: a job counting to 5; its status file says done, 5 of 5, with the function's result, and the pid was
    another process's."""
    job_id = jobs.start(tmp_path, "count", TARGET, {"n": 5})
    view = wait_for(tmp_path, job_id)
    assert (view.state, view.done, view.total, view.percent, view.result) == ("done", 5, 5, 100, {"counted": 5})
    assert view.status["pid"] != os.getpid() and view.kind == "count"


def test_refusals_and_crashes_end_as_failed_with_the_reason(tmp_path):
    """Tried: a job that refuses (JobError) and one that crashes (RuntimeError): both end failed, the refusal with
    its own message, the crash with its type and message (the traceback is in job.log)."""
    refused = jobs.start(tmp_path, "count", TARGET, {"n": 1, "refuse": "nothing to do here"})
    crashed = jobs.start(tmp_path, "count", TARGET, {"n": 1, "crash": True})
    assert wait_for(tmp_path, refused).error == "nothing to do here"
    view = wait_for(tmp_path, crashed)
    assert view.state == "failed" and view.error == "RuntimeError: boom"
    assert "Traceback" in (view.path / "job.log").read_text()


@pytest.mark.parametrize("sig, said", [(signal.SIGKILL, "stopped without reporting an end"),
                                       (signal.SIGTERM, "stopped (SIGTERM)")])
def test_a_killed_job_reads_as_failed(tmp_path, sig, said):
    """Tried: SIGKILL and SIGTERM to a running job's process. SIGTERM lets it record that it was stopped; after
    SIGKILL nothing is written, and reading the job notices its process is gone and records it as failed."""
    job_id = jobs.start(tmp_path, "count", TARGET, {"n": 100, "pause": 0.1})
    view = wait_for(tmp_path, job_id, states=("running",))
    os.kill(view.status["pid"], sig)
    view = wait_for(tmp_path, job_id)
    assert view.state == "failed" and said in view.error


def test_a_second_request_joins_the_running_job(tmp_path):
    """Tried: looking for an unfinished job of the same kind and arguments while one runs, and after it ended."""
    job_id = jobs.start(tmp_path, "count", TARGET, {"n": 30, "pause": 0.05})
    assert jobs.find_unfinished(tmp_path, "count", {"n": 30, "pause": 0.05}).id == job_id
    assert jobs.find_unfinished(tmp_path, "count", {"n": 31, "pause": 0.05}) is None
    wait_for(tmp_path, job_id)
    assert jobs.find_unfinished(tmp_path, "count", {"n": 30, "pause": 0.05}) is None


@pytest.mark.parametrize("bad", ["..", "../../etc", "20261202-002046-509a/../x", "x" * 300, "a\0b", ""])
def test_odd_job_ids_name_no_job(tmp_path, bad):
    """Tried: ids that are not job ids (a path out of jobs/, an overlong one, a NUL): no job, nothing read."""
    assert jobs.read(tmp_path, bad) is None and jobs.job_dir(tmp_path, bad) is None


def test_the_job_page_follows_the_job_and_then_goes_on(client, app):
    """Tried: the job page of a running job (full page with the progress region; htmx poll answers the region
    alone, polling every second), then of the finished job (a redirect to where its starter said, HX-Redirect for
    htmx); an unknown or malformed id is a 404."""
    job_id = jobs.start(app.instance_path, "count", TARGET, {"n": 20, "pause": 0.05},
                        next_page={"endpoint": "imports.batch_list"})
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f'id="job-{job_id}"' in page and 'hx-trigger="every 1s"' in page and "<html" in page
    region = client.get(f"/jobs/{job_id}", headers=HX).get_data(as_text=True)
    assert region.lstrip().startswith("<section") and "<html" not in region
    wait_for(Path(app.instance_path), job_id)
    done = client.get(f"/jobs/{job_id}")
    assert done.status_code == 302 and done.location.endswith("/batches")
    assert client.get(f"/jobs/{job_id}", headers=HX).headers["HX-Redirect"].endswith("/batches")
    assert client.get("/jobs/nope").status_code == 404
    assert client.get("/jobs/20990101-000000-abcd").status_code == 404


def test_a_failed_job_page_says_why(client, app):
    """Tried: the page of a job that failed: its reason, and no more polling."""
    job_id = jobs.start(app.instance_path, "count", TARGET, {"n": 1, "refuse": "the folder is empty"})
    wait_for(Path(app.instance_path), job_id)
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "the folder is empty" in page and "every 1s" not in page


@pytest.mark.parametrize("ending", ["returns", "refuses", "crashes"])
def test_a_jobs_session_is_closed_and_its_spool_removed_however_the_job_ends(tmp_path, ending):
    """Tried: a job function that uses `job.session(spool=...)` on the job's own SQLite index and returns, refuses
    (JobError) or crashes. Inside, the session answers queries; after, whatever happened, its connection is closed,
    the engine's pool holds none (disposed, not merely checked in) and the spool folder of uploads is gone."""
    from sqlalchemy import text

    folder = jobs.jobs_root(tmp_path) / "20260101-000000-ab12"
    folder.mkdir(parents=True)
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "upload.png").write_bytes(b"held for the job")
    job = jobs.Job(folder)
    errors = {"returns": None, "refuses": jobs.JobError("nothing to do"), "crashes": RuntimeError("boom")}
    try:
        with job.session(spool=spool) as session:
            assert session.execute(text("select 1")).scalar() == 1
            connection = session.connection()
            if errors[ending] is not None:
                raise errors[ending]
    except (jobs.JobError, RuntimeError) as exc:
        assert exc is errors[ending]
    assert connection.closed and session.get_bind().pool.checkedin() == 0
    assert not spool.exists()
