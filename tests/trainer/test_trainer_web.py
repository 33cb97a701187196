"""Training from the web pages with a tiny real model: the real `python -m diffusion.train` subprocess on a
dozen demo images at 8 px ("micro" preset), driven and watched only through the test client.

Each test says what is tried. Waits poll the run page's live region (which also lets the queue move) with a
generous timeout, because other work shares the two cores.
"""
from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import db
from core.models import Batch, Run, Snapshot
from curator.snapshots.service import create_snapshot
from diffusion import rundir

TINY = {"eval": False, "sample_steps": 2, "samples_per_class": 2, "warmup_steps": 2, "log_every": 1,
        "checkpoint_minutes": 5.0}
FORM = {"preset": "micro", "image_size": "8", "batch_size": "4", "lr": "0.002", "guidance": "2",
        "sample_every": "1", "seed": "0", "device": "cpu"}
WAIT_S = 120

pytestmark = pytest.mark.usefixtures("end_training_processes")  # even when a test fails


@pytest.fixture
def app_config() -> dict:
    return {"TRAINER_DEFAULTS": TINY}


@pytest.fixture
def snapshot_id(app, dataset) -> str:
    """Six demo emoji of each of two classes, imported and frozen as an 8 px snapshot."""
    dataset({"cat": 6, "fish": 6}, kind="demo", imported="service")
    with app.app_context():
        return create_snapshot(db.session, Path(app.instance_path), image_size=8).id


def start(client, snapshot_id: str, **fields) -> str:
    response = client.post("/train/runs", data={**FORM, "snapshot": snapshot_id, **fields})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[-1]


def live(client, run_id: str) -> tuple[str, str]:
    html = client.get(f"/train/runs/{run_id}/live").get_data(as_text=True)
    return re.search(r'data-state="(\w+)"', html).group(1), html


def wait_until(client, run_id: str, ok, what: str, timeout: float = WAIT_S) -> str:
    deadline = time.time() + timeout
    state, html = live(client, run_id)
    while not ok(state, html):
        if state == "failed" and "failed" not in what:
            pytest.fail(f"run {run_id} failed while waiting for {what}:\n{html}")
        if time.time() > deadline:
            pytest.fail(f"timed out waiting for {what}; state {state}:\n{html}")
        time.sleep(0.5)
        state, html = live(client, run_id)
    return html


def status(app, run_id: str) -> dict:
    return rundir.read_status(Path(app.instance_path) / "runs" / run_id)


def test_bad_form_values_each_get_a_clear_message_and_start_nothing(client, app, snapshot_id):
    """Tried: each bad value of the new-run form on its own. A 400 page naming the field's problem, and no run
    folder or row."""
    cases = {
        "epochs": ("abc", "Epochs must be a whole number"),
        "batch_size": ("0", "Batch size must be between 1 and 4096"),
        "lr": ("-1", "Learning rate must be between"),
        "image_size": ("10", "multiple of 4"),
        "guidance": ("lots", "Guidance must be a number"),
        "seed": ("1.5", "Seed must be a whole number"),
        "preset": ("huge", "Preset must be one of"),
        "snapshot": ("20000101-000000-dead", "There is no snapshot"),
        "sample_every": ("0", "Sample every N epochs must be between 1"),
        "minutes": ("nan", "Minutes must be a finite number"),
    }
    for field, (value, message) in cases.items():
        response = client.post("/train/runs", data={**FORM, "snapshot": snapshot_id, "epochs": "2", field: value})
        page = response.get_data(as_text=True)
        assert response.status_code == 400, field
        assert message in page.replace("&#39;", "'"), (field, page)
    neither = client.post("/train/runs", data={**FORM, "snapshot": snapshot_id, "epochs": "", "minutes": ""})
    assert neither.status_code == 400 and "Give a number of epochs or a time budget" in neither.get_data(as_text=True)
    refused = client.post("/train/runs", data={**FORM, "snapshot": "new", "epochs": "2", "preset": "huge"})
    assert refused.status_code == 400, "a refused run with 'snapshot the current data now' makes no snapshot"
    with app.app_context():
        assert db.session.scalar(select(func.count(Run.id))) == 0
        assert db.session.scalar(select(func.count(Snapshot.id))) == 1
    assert not list((Path(app.instance_path) / "runs").glob("*/config.json"))


def test_run_lifecycle_start_progress_grid_cancel_resume_complete_extend_generate(client, app, snapshot_id):
    """Tried: a 0.1-minute run started from the form; watch it train and write the epoch-1 grid; cancel it; resume
    it; let it complete; extend it by a few seconds; generate from it and send a result to the curator. It
    continues from its checkpoint each time (steps never go back), the grid and loss chart appear, and the
    galleries and generation work on the result."""
    run_id = start(client, snapshot_id, epochs="", minutes="0.1")
    html = wait_until(client, run_id, lambda s, h: s == "running" and 'id="newest-' in h and "images/s" in h,
                      "the first grid and a speed")
    assert "images/s" in html and 'id="run-progress"' in html
    first = rundir.list_epochs(Path(app.instance_path) / "runs" / run_id)[0]  # 0: the preview before training
    grid = client.get(f"/train/runs/{run_id}/files/samples/epoch_{first:04d}.png")
    assert grid.status_code == 200 and grid.data[:4] == b"\x89PNG"

    assert client.post(f"/train/runs/{run_id}/cancel").status_code == 302
    html = wait_until(client, run_id, lambda s, h: s in ("cancelled", "completed"), "the cancel")
    assert 'data-state="cancelled"' in html, "0.1 minutes of training should not be over yet"
    cancelled_step = status(app, run_id)["step"]
    assert cancelled_step > 0 and (Path(app.instance_path) / "runs" / run_id / "checkpoints" / "last.pt").exists()
    assert 'id="resume-run"' in html and 'id="cancel-run"' not in html

    assert client.post(f"/train/runs/{run_id}/resume").status_code == 302
    html = wait_until(client, run_id, lambda s, h: s == "completed", "completion after resume")
    done = status(app, run_id)
    assert done["step"] > cancelled_step and 'id="loss-chart"' in html and 'id="extend-run"' in html
    steps = [m["step"] for m in rundir.read_metrics(Path(app.instance_path) / "runs" / run_id)
             if m["kind"] == "train"]
    assert steps == sorted(steps) and len(set(steps)) == len(steps), "resumed from the checkpoint, not from 0"

    refused = client.post(f"/train/runs/{run_id}/extend", data={"epochs": "2"}, follow_redirects=True)
    assert "trains for a time budget" in refused.get_data(as_text=True)
    assert client.post(f"/train/runs/{run_id}/extend", data={"minutes": "0.03"}).status_code == 302
    wait_until(client, run_id, lambda s, h: s == "completed" and status(app, run_id)["step"] > done["step"],
               "the extension to complete")
    config = json.loads((Path(app.instance_path) / "runs" / run_id / "config.json").read_text())
    assert config["minutes"] == pytest.approx(0.13)

    with_grids = rundir.list_epochs(Path(app.instance_path) / "runs" / run_id)
    assert with_grids[0] == 0 and len(with_grids) >= 2, with_grids  # the preview before training, then more
    epochs = client.get(f"/train/runs/{run_id}/epochs?epoch=0").get_data(as_text=True)
    assert 'id="epoch-label">Before training<' in epochs and 'data-key="ArrowRight"' in epochs
    cat = client.get(f"/train/runs/{run_id}/classes/cat").get_data(as_text=True)
    assert cat.count('<div class="sample-row" data-row=') == min(12, len(with_grids))  # a film strip, one row each
    listing = client.get("/train/").get_data(as_text=True)
    assert run_id in listing and "completed" in listing
    generate_and_send_to_curator(client, app, run_id)


def generate_and_send_to_curator(client, app, run_id: str) -> None:
    """The Generate form (2 cats, 3 steps) then one result sent to the curator: images and denoising animations
    appear, and the chosen one arrives as a 'generated' batch whose source is the run."""
    bad = client.post(f"/train/runs/{run_id}/generate", data={"class": "zebra", "n": "2", "steps": "3",
                                                              "sampler": "ddim", "guidance": "2", "seed": "0"})
    assert bad.status_code == 400 and "Unknown class(es) zebra" in bad.get_data(as_text=True)
    response = client.post(f"/train/runs/{run_id}/generate", data={"class": "cat", "n": "2", "steps": "3",
                                                                   "sampler": "ddim", "guidance": "2", "seed": "0"})
    assert response.status_code == 302
    page_url = response.headers["Location"]
    deadline = time.time() + WAIT_S
    while 'data-state="running"' in (html := client.get(page_url).get_data(as_text=True)):
        assert time.time() < deadline, html
        time.sleep(0.5)
    assert 'data-state="done"' in html, html
    picks = re.findall(r'name="pick" value="([^"]+)"', html)
    assert len(picks) == 2 and all("/cat/" in p for p in picks) and html.count(".gif") >= 2
    png = client.get(f"/train/runs/{run_id}/files/{picks[0]}?download=1")
    assert png.status_code == 200 and "attachment" in png.headers["Content-Disposition"]
    sent = client.post(page_url + "/send", data={"pick": picks[:1]})
    assert sent.status_code in (302, 303), sent.get_data(as_text=True)[:500]
    with app.app_context():  # staged for someone to accept (the favourites work owns what happens next)
        batch = db.session.scalars(select(Batch).order_by(Batch.id.desc())).first()
        assert (batch.kind, batch.source) == ("generated", f"run {run_id}")
        assert str(batch.id) in sent.headers["Location"]


def test_one_run_at_a_time_a_killed_run_shows_failed_and_the_queue_moves_on(client, app, snapshot_id):
    """Tried: start a long run, then a second one (it must wait, queued); kill the first with SIGKILL. The first is
    shown failed with an error; the second starts on its own; a restarted server sees it and does not start it
    twice; cancelling it (even while it is still starting up) ends it as cancelled."""
    first = start(client, snapshot_id, epochs="5000")
    wait_until(client, first, lambda s, h: s == "running" and status(app, first).get("step", 0) > 0, "training")
    second = start(client, snapshot_id, epochs="5000", seed="1")
    state, html = live(client, second)
    assert state == "queued" and "Waiting for the device" in html
    time.sleep(1)
    assert live(client, second)[0] == "queued", "only one run trains at a time on the cpu"

    os.kill(status(app, first)["pid"], signal.SIGKILL)
    html = wait_until(client, first, lambda s, h: s == "failed", "the killed run to show as failed")
    assert "killed or crashed" in html and 'id="resume-run"' in html
    wait_until(client, second, lambda s, h: s in ("starting", "running"), "the queued run to start")

    from app import create_app
    restarted = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "AUTH_REQUIRED": False,
                            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]},
                           instance_path=app.instance_path)
    with app.app_context():
        pid = db.session.get(Run, second).pid
    state, _ = live(restarted.test_client(), second)
    assert state in ("starting", "running")
    with restarted.app_context():
        assert db.session.get(Run, second).pid == pid, "not launched a second time"
        db.engine.dispose()

    assert client.post(f"/train/runs/{second}/cancel").status_code == 302
    wait_until(client, second, lambda s, h: s == "cancelled", "the second run to be cancelled")
