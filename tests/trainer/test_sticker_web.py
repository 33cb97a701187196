"""The sticker pages of a run: favourites, Lanczos vs learned, the upscaler's process, and pack downloads."""
from __future__ import annotations

import io
import json
import os
import signal
import time
import zipfile

import pytest
from PIL import Image

from tests.conftest import HX
from tests.trainer.sticker_helpers import RUN_ID, make_run
from trainer import upscaling


@pytest.fixture
def app(app):
    """The app with the stickers blueprint (registered here until app.py lists it)."""
    from trainer import sticker_views
    if "stickers" not in app.blueprints:
        app.register_blueprint(sticker_views.bp)
    return app


def test_page_lists_pictures_and_favourites_toggle(client, instance_path):
    """Tried: the run's sticker page, then marking a sample as favourite and removing it through the forms. The
    page shows the samples and the generated picture, the upscaler as not trained, then the favourite, then none."""
    make_run(instance_path)
    page = client.get(f"/stickers/runs/{RUN_ID}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "not trained" in text and "Train the upscaler" in text
    assert "samples/epoch_0001/dog/1.png" in text and "generated/20260101-000100-ab12/cat/0.png" in text
    added = client.post(f"/stickers/runs/{RUN_ID}/favourites", data={"file": "samples/epoch_0001/dog/1.png"})
    assert added.status_code == 303
    text = client.get(f"/stickers/runs/{RUN_ID}").get_data(as_text=True)
    assert "Favourites (1)" in text and "Lanczos vs learned" in text
    client.post(f"/stickers/runs/{RUN_ID}/favourites", data={"file": "samples/epoch_0001/dog/1.png",
                                                             "action": "remove"})
    assert "Favourites (0)" in client.get(f"/stickers/runs/{RUN_ID}").get_data(as_text=True)


@pytest.mark.parametrize("url,status", [
    ("/stickers/runs/..%2F..%2Fetc", 404), ("/stickers/runs/abc%00def", 400), ("/stickers/runs/nope", 404),
    (f"/stickers/runs/{RUN_ID}/compare?file=../../secret_key", 404),
    (f"/stickers/runs/{RUN_ID}/sticker.png?file=samples/epoch_0001/cat/0.png%00", 400),
    (f"/stickers/runs/{RUN_ID}/sticker.png?file=samples/epoch_0001/cat/0.png&scale=3", 400),
    (f"/stickers/runs/{RUN_ID}/sticker.png?file=samples/epoch_0001/cat/0.png&outline=-2", 400),
    (f"/stickers/runs/{RUN_ID}/sticker.png?file=samples/epoch_0001/cat/0.png&outline=2&outline_colour=nope", 400),
    (f"/stickers/runs/{RUN_ID}/sticker.png?file=samples/epoch_0001/cat/0.png&upscaler=magic", 400),
    (f"/stickers/runs/{RUN_ID}/sticker.png?file=samples/epoch_0001/cat/0.png&upscaler=learned", 409),
    (f"/stickers/runs/{RUN_ID}/sticker.gif?file=samples/epoch_0001/cat/0.png", 404),
    (f"/stickers/runs/{RUN_ID}/packs/..%2Fx", 404), (f"/stickers/runs/{RUN_ID}/packs/nope/pack.zip", 404),
])
def test_bad_requests_get_clear_answers_never_a_500(client, instance_path, url, status):
    """Tried: odd run ids (separators, NUL: the app's own 400, unknown), paths outside the run, bad scale/outline/colour/upscaler
    values, a learned sticker before its upscale exists, unknown pack jobs. Each gets its 4xx, never a 500."""
    make_run(instance_path)
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    if status == 400 and "%00" not in url:  # NUL is refused by the app for every page, before any view
        assert "must be" in response.get_data(as_text=True) or "not a colour" in response.get_data(as_text=True)


def test_favourite_of_something_else_is_a_400_with_the_reason(client, instance_path):
    """Tried: marking the run's config.json and a path with NUL as favourites. 400 pages that say why; nothing
    is written."""
    run_dir = make_run(instance_path)
    for bad in ("config.json", "samples/epoch_0001/cat/0.png\x00"):
        response = client.post(f"/stickers/runs/{RUN_ID}/favourites", data={"file": bad})
        assert response.status_code == 400
    assert "not a training sample" in client.post(f"/stickers/runs/{RUN_ID}/favourites",
                                                  data={"file": "config.json"}).get_data(as_text=True)
    assert not (run_dir / "favourites.json").exists()


def test_lanczos_sticker_and_compare_without_a_learned_upscaler(client, instance_path):
    """Tried: the compare page of a sample before any upscaler is trained, and its Lanczos sticker x4 with a 4 px
    outline as PNG and SVG downloads. The page offers training; the PNG is RGBA of 16x4 + 2x4 px with a clear
    corner; the SVG is an attachment."""
    make_run(instance_path)
    rel = "samples/epoch_0001/cat/0.png"
    page = client.get(f"/stickers/runs/{RUN_ID}/compare", query_string={"file": rel})
    assert page.status_code == 200 and "No learned upscaler yet" in page.get_data(as_text=True)
    png = client.get(f"/stickers/runs/{RUN_ID}/sticker.png", query_string={"file": rel, "outline": 4,
                                                                            "outline_colour": "#000"})
    img = Image.open(io.BytesIO(png.data))
    assert png.status_code == 200 and img.mode == "RGBA" and img.size == (72, 72) and img.getpixel((0, 0))[3] == 0
    svg = client.get(f"/stickers/runs/{RUN_ID}/sticker.svg", query_string={"file": rel, "download": 1})
    assert svg.status_code == 200 and "attachment" in svg.headers["Content-Disposition"]
    assert svg.get_data(as_text=True).lstrip().startswith("<?xml")


def test_pack_export_of_favourites_downloads_a_zip(client, instance_path):
    """Tried: exporting with no favourites (400, says to mark some), then with two favourites through the form: a
    real `manage.py stickers --favourites` process makes the pack; the job page offers a download (not boosted)
    and the zip holds both stickers as PNG and SVG, a contact sheet and the manifest with class, index and
    settings."""
    make_run(instance_path)
    empty = client.post(f"/stickers/runs/{RUN_ID}/packs", data={"scale": "4"})
    assert empty.status_code == 400 and "Mark some favourites first" in empty.get_data(as_text=True)
    for rel in ("samples/epoch_0001/cat/0.png", "generated/20260101-000100-ab12/cat/0.png"):
        client.post(f"/stickers/runs/{RUN_ID}/favourites", data={"file": rel})
    started = client.post(f"/stickers/runs/{RUN_ID}/packs", data={"scale": "8", "upscaler": "lanczos",
                                                                 "outline": "3", "outline_colour": "black",
                                                                 "colours": "6"})
    assert started.status_code == 303
    job_url = started.headers["Location"]
    deadline = time.time() + 120
    while time.time() < deadline and 'data-state="running"' in (text := client.get(job_url).get_data(as_text=True)):
        time.sleep(0.5)
    assert 'data-state="done"' in text, text
    assert 'hx-boost="false"' in text and "download" in text
    region = client.get(job_url, headers=HX).get_data(as_text=True)  # the poll: only the region it swaps
    assert region.startswith('<section id="pack"') and "<html" not in region and 'data-state="done"' in region
    boosted = client.get(job_url, headers={**HX, "HX-Boosted": "true"}).get_data(as_text=True)  # hx-boost: the page
    assert "<html" in boosted and 'id="pack"' in boosted
    zipped = client.get(job_url + "/pack.zip")
    assert zipped.status_code == 200 and zipped.mimetype == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(zipped.data))
    names = set(z.namelist())
    assert {"manifest.json", "contact-sheet.png"} <= names
    manifest = json.loads(z.read("manifest.json"))
    assert manifest["run"] == RUN_ID and manifest["settings"]["scale"] == 8
    assert manifest["settings"]["outline"] == 3 and manifest["settings"]["colours"] == 6
    for record in manifest["stickers"]:
        assert record["png"] in names and record["svg"] in names and record["class"] == "cat"
        assert Image.open(io.BytesIO(z.read(record["png"]))).size == (16 * 8 + 6, 16 * 8 + 6)
    assert {r["index"] for r in manifest["stickers"]} == {0}
    assert [r.get("seed") for r in manifest["stickers"]] == [None, 7]


def test_a_killed_upscaler_shows_failed_and_bad_minutes_are_refused(client, instance_path, dataset):
    """Tried: training with 0 and 'lots' minutes (400, range given), then a real upscaler process killed with
    SIGKILL right after it starts. The page shows it failed, saying it was killed or crashed; training again is
    offered."""
    data = dataset({"cat": 3, "dog": 3}, size=64)
    run_dir = make_run(instance_path, data=data)
    for minutes in ("0", "lots"):
        bad = client.post(f"/stickers/runs/{RUN_ID}/upscaler/train", data={"minutes": minutes})
        assert bad.status_code == 400 and "minutes" in bad.get_data(as_text=True)
    assert client.post(f"/stickers/runs/{RUN_ID}/upscaler/train", data={"minutes": "1"}).status_code == 303
    status = json.loads((run_dir / "upscaler" / "status.json").read_text())
    assert status["state"] == "queued"
    os.kill(int(status["pid"]), signal.SIGKILL)
    deadline = time.time() + 20
    while time.time() < deadline and upscaling.read(run_dir).state != "failed":
        time.sleep(0.2)
    text = client.get(f"/stickers/runs/{RUN_ID}/upscaler").get_data(as_text=True)
    assert 'data-state="failed"' in text and "killed or crashed" in text and "Train the upscaler" in text


def test_upscaler_progress_is_a_region_for_htmx_polls_and_a_page_otherwise(client, instance_path):
    """Tried: the upscaler's progress address as a plain request, as htmx's poll (HX-Request) and as a boosted
    link (HX-Request and HX-Boosted). The poll gets only the panel it swaps; the other two get the whole page."""
    make_run(instance_path)
    url = f"/stickers/runs/{RUN_ID}/upscaler"
    region = client.get(url, headers=HX).get_data(as_text=True)
    assert region.startswith('<section id="upscaler"') and "<html" not in region and "not trained" in region
    for headers in ({}, {**HX, "HX-Boosted": "true"}):
        page = client.get(url, headers=headers).get_data(as_text=True)
        assert "<html" in page and 'id="upscaler"' in page and "Upscaler ·" in page, headers


def test_training_without_the_run_images_is_refused(client, instance_path):
    """Tried: training the upscaler of a run whose data folder is gone. 400 saying the images are not there;
    no process starts."""
    make_run(instance_path, data=instance_path / "gone")
    response = client.post(f"/stickers/runs/{RUN_ID}/upscaler/train", data={"minutes": "1"})
    assert response.status_code == 400 and "not on this machine" in response.get_data(as_text=True)
    assert upscaling.read(instance_path / "runs" / RUN_ID).state == "none"


def test_compare_shows_lanczos_and_learned_side_by_side(client, runner, instance_path, dataset):
    """Tried: a run whose upscaler was trained briefly (`upscaler train RUN --minutes 0.05`), then the compare page
    of a striped disc at x4: the learned upscale runs as a process while the page polls; once ready, both stickers are served,
    each RGBA 64x64 px, and they differ (the learned colour is not Lanczos)."""
    from trainer.cli import upscaler_group
    data = dataset({"cat": 3, "dog": 3}, size=64)
    make_run(instance_path, data=data)
    trained = runner.invoke(upscaler_group, ["train", RUN_ID, "--minutes", "0.05"])
    assert trained.exit_code == 0, trained.output
    rel = "samples/epoch_0001/cat/0.png"
    striped = Image.open(instance_path / "runs" / RUN_ID / rel).convert("RGB")
    for x in range(4, 12, 2):  # detail inside the disc, so the two upscalers have something to differ on
        for y in range(4, 12):
            striped.putpixel((x, y), (250, 220, 40))
    striped.save(instance_path / "runs" / RUN_ID / rel)
    first = client.get(f"/stickers/runs/{RUN_ID}/compare", query_string={"file": rel}).get_data(as_text=True)
    assert "sticker-lanczos" in first and ("learned-working" in first or "sticker-learned" in first)
    deadline = time.time() + 90
    while time.time() < deadline and "sticker-learned" not in (
            text := client.get(f"/stickers/runs/{RUN_ID}/compare", query_string={"file": rel}).get_data(as_text=True)):
        assert "failed" not in text, text
        time.sleep(0.5)
    assert 'id="sticker-learned"' in text
    images = {}
    for name in ("lanczos", "learned"):
        r = client.get(f"/stickers/runs/{RUN_ID}/sticker.png", query_string={"file": rel, "upscaler": name})
        assert r.status_code == 200
        images[name] = Image.open(io.BytesIO(r.data))
        assert images[name].mode == "RGBA" and images[name].size == (64, 64)
    assert images["lanczos"].tobytes() != images["learned"].tobytes()
