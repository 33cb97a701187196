"""The new-run form says what a budget buys on this machine (steps and epochs, from the speed earlier runs
measured here), warns when that is too little for recognisable samples, and offers flips auto/off/on."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.db import db
from curator.snapshots.service import create_snapshot
from diffusion import rundir
from diffusion.config import budget_estimate, recognisable_steps


@pytest.fixture
def snapshot_id(app, dataset) -> str:
    """Six demo emoji of each of two classes, frozen as an 8 px snapshot (12 images)."""
    dataset({"cat": 6, "fish": 6}, kind="demo", imported="service")
    with app.app_context():
        return create_snapshot(db.session, Path(app.instance_path), image_size=8).id


def _past_run(app, name: str, *, preset: str, image_size: int, images_per_sec: float, device: str = "cpu"):
    """A finished run folder whose metrics recorded its training speed (what the form reads)."""
    run = Path(app.instance_path) / "runs" / name
    rundir.write_json_atomic(run / "config.json", {"preset": preset, "image_size": image_size, "batch_size": 64})
    rundir.write_status(run, state="completed", device=device)
    for step, speed in ((10, images_per_sec * 0.5), (20, images_per_sec), (30, images_per_sec)):
        rundir.append_jsonl(run / "metrics.jsonl", {"kind": "train", "step": step, "images_per_sec": speed})
    return run


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'")


def test_budget_estimate_is_plain_arithmetic():
    """64 images/s at batch 64 is one step a second: 10 minutes buy 600 steps, 600 / 4 = 150 epochs of 256
    images; "small" at 32 px needs about 1,000 steps, so 17 minutes are suggested. An epochs target caps steps."""
    est = budget_estimate(10, None, n_images=256, batch_size=64, images_per_sec=64.0, preset="small", image_size=32)
    assert (est["steps"], est["epochs"], est["enough"]) == (600, 150.0, False)
    assert est["needed_steps"] == recognisable_steps("small", 32) == 1000 and est["suggest_minutes"] == 17
    capped = budget_estimate(10, 20, n_images=256, batch_size=64, images_per_sec=64.0, preset="small", image_size=32)
    assert capped["steps"] == 80 and capped["minutes"] == 1.3
    assert recognisable_steps("small", 64) == 2000
    unknown = budget_estimate(10, None, n_images=None, batch_size=64, images_per_sec=None, preset="small",
                              image_size=32)
    assert unknown["steps"] is None and unknown["enough"] is None


def test_measured_speeds_reads_earlier_runs(app):
    _past_run(app, "20260101-000000-aaaa", preset="small", image_size=32, images_per_sec=100.0)
    (Path(app.instance_path) / "runs" / "not-a-run").mkdir()
    speeds = rundir.measured_speeds(Path(app.instance_path) / "runs")
    assert speeds == [{"run": "20260101-000000-aaaa", "preset": "small", "image_size": 32, "batch_size": 64,
                       "device": "cpu", "images_per_sec": 100.0}]


def test_the_form_says_what_ten_minutes_buy_here_and_warns_when_too_little(client, app, snapshot_id):
    """Tried: the form with an earlier micro 8 px run measured at 48 images/s: 20 minutes must read as steps and
    epochs from that run; 1 minute of "small" at 8 px, with no run to measure it, says so plainly;
    1 minute of micro warns and suggests enough minutes."""
    _past_run(app, "20260101-000000-bbbb", preset="micro", image_size=8, images_per_sec=48.0)
    page = _text(client.get(f"/train/new?snapshot={snapshot_id}&preset=micro&image_size=8&minutes=20"
                            "&batch_size=12").get_data(as_text=True))
    # batch 12 of 12 images: 4 steps a second, 4,800 steps, one step per epoch
    assert "20 minutes ≈ 4,800 steps ≈ 4800 epochs of 12 images" in page
    assert "measured by run 20260101-000000-bbbb on cpu" in page and "too little" not in page
    short = _text(client.get(f"/train/new?snapshot={snapshot_id}&preset=micro&image_size=8&minutes=1"
                             "&batch_size=12").get_data(as_text=True))
    assert "likely too little for recognisable samples with the micro preset at 8 px" in short
    assert "about 3,000 steps, about 13 minutes here" in short
    unmeasured = _text(client.get(f"/train/new?snapshot={snapshot_id}&preset=small&image_size=8&minutes=1")
                       .get_data(as_text=True))
    assert "not measured yet for small at 8 px on cpu" in unmeasured


def test_the_estimate_box_alone_and_bad_values_never_fail(client, app, snapshot_id):
    """Tried: the htmx endpoint with good values, then with nonsense (nan minutes, a preset that does not exist,
    a negative batch): a 200 with the box each time, never a 500."""
    _past_run(app, "20260101-000000-cccc", preset="micro", image_size=8, images_per_sec=48.0)
    box = client.get(f"/train/new/estimate?snapshot={snapshot_id}&preset=micro&image_size=8&minutes=10"
                     "&batch_size=12")
    assert box.status_code == 200 and 'id="budget-estimate"' in box.get_data(as_text=True)
    assert "<html" not in box.get_data(as_text=True)
    for query in ("minutes=nan", "preset=huge&minutes=5", "batch_size=-3&minutes=5", "image_size=x&epochs=y"):
        r = client.get(f"/train/new/estimate?snapshot={snapshot_id}&{query}")
        assert r.status_code == 200 and 'id="budget-estimate"' in r.get_data(as_text=True), query
    # settings the run would refuse get no estimate (99999999 px read "about 3,124,999,968 steps"), but the reason
    for query, said in (("image_size=99999999&minutes=5", "Image size must be"), ("image_size=13&minutes=5",
                                                                                 "multiple of 4")):
        text = client.get(f"/train/new/estimate?snapshot={snapshot_id}&{query}").get_data(as_text=True)
        assert "No estimate until this is fixed" in text and said in text and "steps" not in text, query


def test_flips_are_a_choice_on_the_form(client, snapshot_id):
    """Tried: the form offers auto (selected), off and on; a made-up value is refused with a clear 400."""
    page = client.get("/train/new").get_data(as_text=True)
    assert re.search(r'<option value="auto" selected>auto: on only if mirrored pictures keep their class', page)
    assert '<option value="off"' in page and '<option value="on"' in page
    bad = client.post("/train/runs", data={"snapshot": snapshot_id, "preset": "micro", "minutes": "1",
                                           "batch_size": "4", "lr": "0.002", "guidance": "2", "seed": "0",
                                           "flip": "sideways"})
    assert bad.status_code == 400 and "Flips must be one of auto, off, on" in bad.get_data(as_text=True)


def test_parse_run_form_passes_the_flip_choice():
    from trainer.launch_views import parse_run_form
    values, errors = parse_run_form({"snapshot": "x", "preset": "micro", "minutes": "1", "batch_size": "4",
                                     "lr": "0.002", "guidance": "2", "seed": "0", "flip": "off"})
    assert not errors and values["flip"] == "off"
