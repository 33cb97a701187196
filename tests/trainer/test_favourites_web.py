"""Favourites from any gallery: the star each tile carries (htmx swaps it in place, a plain form comes back), the
favourites page and its actions (zip download, send to the curator), and hostile input. Fake run folders."""
from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from core.db import db
from core.models import Batch
from tests.conftest import HX
from tests.trainer.sticker_helpers import GEN2_ID, GEN_ID, RUN_ID, make_run
from trainer import favourites

URL = f"/stickers/runs/{RUN_ID}/favourites"
SAMPLE = "samples/epoch_0001/dog/1.png"
GENERATED = f"generated/{GEN2_ID}/cat/1.png"


def test_the_star_swaps_in_place_with_htmx_and_keeps_the_count_true(client, instance_path):
    """Tried: starring a sample through htmx, then a generated picture, then unstarring the sample. Each answer is
    only the star's form (no page), showing its new state, the next action, and the run's count (1, 2, 1)."""
    run_dir = make_run(instance_path, checkpoints=True)
    steps = [(SAMPLE, "add", "on", "remove", 1), (GENERATED, "add", "on", "remove", 2), (SAMPLE, "remove", "", "add", 1)]
    for rel, action, state, next_action, count in steps:
        response = client.post(URL, data={"file": rel, "action": action, "next": "/train/"}, headers=HX)
        text = response.get_data(as_text=True)
        assert response.status_code == 200 and "<html" not in text
        assert re.search(r'<form method="post" [^>]*class="fav-toggle' + (" on" if state else "") + '"', text)
        assert f'data-rel="{rel}"' in text and f'data-count="{count}"' in text
        assert f'name="action" value="{next_action}"' in text and 'name="next" value="/train/"' in text
        assert ('aria-pressed="true"' in text) == bool(state)
    assert [f["png"] for f in favourites.read(run_dir)] == [GENERATED]


def test_without_javascript_the_star_comes_back_to_a_safe_page(client, instance_path):
    """Tried: a plain-form star with next set to a page of this site, to another host in several spellings, and
    with none. This site's page is honoured; another host never is (the favourites page instead)."""
    make_run(instance_path)
    for nxt, expected in (("/train/runs/x?epoch=1", "/train/runs/x?epoch=1"), ("//evil.example/", URL),
                          ("https://evil.example/", URL), ("/\\evil.example", URL), (None, URL)):
        data = {"file": SAMPLE, "action": "toggle"} | ({"next": nxt} if nxt else {})
        response = client.post(URL, data=data)
        assert response.status_code == 303 and response.headers["Location"] == expected, nxt


@pytest.mark.parametrize("rel", ["../../secret_key", "../20260101-000000-othr/samples/epoch_0001/cat/0.png",
                                 "/etc/passwd", "samples/epoch_0001/cat/0.png\x00.txt", "config.json",
                                 f"generated/{GEN_ID}/request.json", "samples/epoch_0001/cat/7.png", "",
                                 "samples/epoch_0001/../epoch_0001/cat/0.png", "x" * 5000])
@pytest.mark.parametrize("action", ["add", "remove", "toggle"])
def test_hostile_favourite_paths_are_a_400_and_nothing_is_lost(client, instance_path, rel, action):
    """Tried: paths that leave the run (.., another run's sample that exists there), absolute, NUL, a file that is
    no picture, a missing sample, empty, a detour through '..', 5,000 characters; to add, remove and toggle. Each
    is a 4xx (never a 500), and the favourite already marked is still there."""
    other = instance_path / "runs" / "20260101-000000-othr" / "samples" / "epoch_0001" / "cat"
    other.mkdir(parents=True)
    (other / "0.png").write_bytes(b"\x89PNG not really")
    run_dir = make_run(instance_path)
    favourites.add(run_dir, SAMPLE)
    response = client.post(URL, data={"file": rel, "action": action}, headers=HX)
    assert 400 <= response.status_code < 500
    assert [f["png"] for f in favourites.read(run_dir)] == [SAMPLE]


def test_favourites_page_lists_them_and_downloads_a_zip_that_regenerates_each(client, instance_path):
    """Tried: two favourites (an epoch sample and a generated picture), the favourites page and its zip link. The
    page shows both with stars and the actions; the zip (attachment, not boosted) holds both PNGs and a manifest
    with class, run, and the epoch or the generation's seed, steps, sampler, guidance and checkpoint."""
    run_dir = make_run(instance_path, checkpoints=True)
    favourites.add(run_dir, SAMPLE)
    favourites.add(run_dir, GENERATED)
    text = client.get(URL).get_data(as_text=True)
    assert text.count('class="fav-toggle on"') == 2 and 'id="favourites-send"' in text
    href = re.search(r'id="favourites-zip" href="([^"]+)" download hx-boost="false"', text).group(1)
    response = client.get(href)
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"] == f'attachment; filename="favourites-{RUN_ID}.zip"'
    z = zipfile.ZipFile(io.BytesIO(response.data))
    manifest = json.loads(z.read("manifest.json"))
    sample, generated = manifest["favourites"]
    assert (sample["file"], sample["class"], sample["epoch"], sample["run"]) == ("dog/epoch0001-1.png", "dog", 1, RUN_ID)
    assert (generated["file"], generated["seed"], generated["steps"], generated["sampler"], generated["guidance"],
            generated["which"]) == (f"cat/{GEN2_ID}-1.png", 11, 12, "ddim", 1.5, "last")
    assert PILImage.open(io.BytesIO(z.read(generated["file"]))).size == (16, 16)


def test_a_tampered_favourites_file_never_leaks_another_file(client, app, instance_path):
    """Tried: favourites.json edited by hand to name ../../secret_key and config.json beside a real favourite. The
    page still answers; the zip holds only the real picture; sending stages only it; with only bad entries the zip
    is a 404 and sending a 400 that says so."""
    run_dir = make_run(instance_path)
    (instance_path / "secret_key").write_text("s3cret")
    bad = [{"png": "../../secret_key", "class": "cat", "index": 0, "epoch": 1},
           {"png": "config.json", "class": "cat", "index": 1, "epoch": 1}]
    (run_dir / "favourites.json").write_text(json.dumps({"version": 1, "items": bad + [
        {"png": SAMPLE, "class": "dog", "index": 1, "epoch": 1}]}))
    assert client.get(URL).status_code == 200
    z = zipfile.ZipFile(io.BytesIO(client.get(URL + ".zip").data))
    assert sorted(z.namelist()) == ["dog/epoch0001-1.png", "manifest.json"]
    sent = client.post(URL + "/send")
    assert sent.status_code == 303
    with app.app_context():
        batch = db.session.scalars(select(Batch)).one()
        assert [i.filename for i in batch.items] == [f"{RUN_ID}/dog/epoch0001-1.png"]
    (run_dir / "favourites.json").write_text(json.dumps({"version": 1, "items": bad}))
    assert client.get(URL + ".zip").status_code == 404
    refused = client.post(URL + "/send")
    assert refused.status_code == 400 and "no favourites to send" in refused.get_data(as_text=True)


def test_sending_favourites_stages_a_generated_batch(client, app, instance_path):
    """Tried: sending three favourites (two generated, one epoch sample) to the curator. The answer is the merge
    preview of one staged batch of kind generated, whose items name the run and where each picture came from."""
    run_dir = make_run(instance_path, checkpoints=True)
    for rel in (SAMPLE, GENERATED, f"generated/{GEN2_ID}/dog/0.png"):
        favourites.add(run_dir, rel)
    sent = client.post(URL + "/send")
    assert sent.status_code == 303 and "/merge/" in sent.headers["Location"]
    assert 'id="generated-badge"' in client.get(sent.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        batch = db.session.scalars(select(Batch)).one()
        assert (batch.kind, batch.state) == ("generated", "staged")
        assert sorted(i.source_class for i in batch.items) == ["cat", "dog", "dog"]
        assert all(i.image is None or i.image.status == "staged" for i in batch.items)


def test_too_many_pictures_at_once_are_refused_whole(client, app, instance_path, monkeypatch):
    """Tried: sending three favourites with the limit set to two (the real one is 500). A 400 page that says how many
    is too many; no batch, nothing stored; the favourites are all still marked."""
    from trainer import generation_service
    monkeypatch.setattr(generation_service, "MAX_SEND", 2)
    run_dir = make_run(instance_path, checkpoints=True)
    for rel in (SAMPLE, GENERATED, f"generated/{GEN2_ID}/dog/0.png"):
        favourites.add(run_dir, rel)
    refused = client.post(URL + "/send")
    assert refused.status_code == 400 and "3 pictures are too many" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(Batch)).all() == []
    assert len(favourites.read(run_dir)) == 3
