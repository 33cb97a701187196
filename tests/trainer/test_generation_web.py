"""The generation pages of a run: downloads that download, a zip of a whole generation, the animation shown large,
the form that remembers the run's last settings and offers its checkpoints, and sending pictures to the curator as
a staged batch marked generated. Fake run folders (tests/trainer/sticker_helpers.py): no training, no sampling."""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

from PIL import Image as PILImage
from sqlalchemy import select

from core.db import db
from core.models import Batch, Image
from curator.snapshots.service import create_snapshot
from tests.trainer.sticker_helpers import GEN2_ID, GEN_ID, RUN_ID, make_run

PAGE = f"/train/runs/{RUN_ID}/generate/{GEN2_ID}"


def test_every_picture_link_downloads_and_the_animation_plays_large(client, instance_path):
    """Tried: the page of a finished generation with animations. Each PNG and GIF link carries `download` and
    hx-boost="false" (htmx must not take it over), and answers an attachment of its type; each animation is the
    card's main picture at 256 px, crisp (pixelated), not inside a collapsed box."""
    make_run(instance_path, checkpoints=True)
    text = client.get(PAGE).get_data(as_text=True)
    links = re.findall(r'<a class="dl-(png|gif)" href="([^"]+)" download hx-boost="false">', text)
    assert sorted(kind for kind, _ in links) == ["gif"] * 4 + ["png"] * 4
    for kind, href in links:
        response = client.get(href.replace("&amp;", "&"))
        assert response.status_code == 200 and response.mimetype == f"image/{kind}"
        assert response.headers["Content-Disposition"].startswith("attachment")
        assert response.data[:4] == ({"png": b"\x89PNG", "gif": b"GIF8"}[kind])
    assert "<details>" not in text
    mains = re.findall(r'<img class="pixel checker gen-main" src="([^"]+)" width="256" height="256"', text)
    assert len(mains) == 4 and all(src.endswith(".gif") for src in mains)


def test_the_whole_generation_downloads_as_one_zip(client, instance_path):
    """Tried: the zip link of the page. A zip attachment named after run and generation, holding each PNG and GIF by
    class, request.json, and manifest.json saying what regenerates each (run, checkpoint, seed, steps, sampler,
    guidance)."""
    make_run(instance_path, checkpoints=True)
    text = client.get(PAGE).get_data(as_text=True)
    href = re.search(r'id="generation-zip" href="([^"]+)" download hx-boost="false"', text).group(1)
    response = client.get(href)
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{RUN_ID}-{GEN2_ID}.zip"'
    z = zipfile.ZipFile(io.BytesIO(response.data))
    assert set(z.namelist()) == {"request.json", "manifest.json"} | {
        f"{c}/{i}.{ext}" for c in ("cat", "dog") for i in (0, 1) for ext in ("png", "gif")}
    manifest = json.loads(z.read("manifest.json"))
    assert (manifest["run"], manifest["generation"], manifest["which"], manifest["seed"], manifest["steps"],
            manifest["sampler"], manifest["guidance"]) == (RUN_ID, GEN2_ID, "last", 11, 12, "ddim", 1.5)
    assert len(manifest["pictures"]) == 4 and manifest["pictures"][0] == {
        "class": "cat", "index": 0, "png": "cat/0.png", "gif": "cat/0.gif"}
    assert PILImage.open(io.BytesIO(z.read("dog/1.png"))).size == (16, 16)


def test_the_form_remembers_the_runs_last_settings_and_offers_its_checkpoints(client, instance_path):
    """Tried: the Generate form of a run whose newest generation used the last checkpoint, ddim, 12 steps,
    guidance 1.5, seed 11. Those are the form's values; the checkpoint menu offers best, last and the kept epoch
    (epoch 1, as "epoch 1"); a run with no generation starts from the defaults."""
    run_dir = make_run(instance_path, checkpoints=True)
    text = client.get(f"/train/runs/{RUN_ID}/generate").get_data(as_text=True)
    assert 'id="remembered"' in text
    assert re.search(r'<option value="last" selected>', text) and '<option value="ddim" selected>' in text
    for name, value in (("steps", "12"), ("guidance", "1.5"), ("seed", "11")):
        assert re.search(rf'name="{name}"[^>]*value="{re.escape(value)}"', text), name
    offered = re.findall(r'<option value="([^"]+)"', text.split('id="g-which"')[1].split("</select>")[0])
    assert offered == ["best", "last", "1"] and ">epoch 1</option>" in text
    for gen in (run_dir / "generated").iterdir():
        (gen / "request.json").unlink()
    text = client.get(f"/train/runs/{RUN_ID}/generate").get_data(as_text=True)
    assert 'id="remembered"' not in text and re.search(r'name="steps"[^>]*value="25"', text)


def test_bad_generation_requests_get_clear_answers_and_start_nothing(client, instance_path):
    """Tried: a checkpoint the run does not keep (epoch 99, a path, NUL-free junk), an unknown class, a count of
    0; then generation ids that name nothing (unknown, '..', hidden) for the page, the zip and the send. Each is a
    4xx that says what was wrong (or a 404), never a 500, and no generation folder appears."""
    run_dir = make_run(instance_path, checkpoints=True)
    before = sorted(p.name for p in (run_dir / "generated").iterdir())
    for field, value, says in (("which", "99", "not kept"), ("which", "../../x", "not kept"),
                               ("class", "zebra", "Unknown class"), ("n", "0", "Count")):
        response = client.post(f"/train/runs/{RUN_ID}/generate", data={"n": "2", "steps": "3", "sampler": "ddim",
                                                                      "guidance": "1", "seed": "0", field: value})
        assert response.status_code == 400 and says in response.get_data(as_text=True), (field, value)
    assert sorted(p.name for p in (run_dir / "generated").iterdir()) == before
    for gen_id in ("nope", "..", ".hidden", "20260101-000100-ab12x"):
        assert client.get(f"/train/runs/{RUN_ID}/generate/{gen_id}").status_code == 404
        assert client.get(f"/train/runs/{RUN_ID}/generate/{gen_id}/generation.zip").status_code == 404
        assert client.post(f"/train/runs/{RUN_ID}/generate/{gen_id}/send", data={"pick": "x"}).status_code == 404


def staged_batches(app) -> list[Batch]:
    with app.app_context():
        batches = list(db.session.scalars(select(Batch).order_by(Batch.id)))
        db.session.expunge_all()
        return batches


def test_sending_bad_picks_is_refused_and_stages_nothing(client, app, instance_path):
    """Tried: sending with nothing ticked, with a picture of another generation of the run, with paths that leave
    the run ('../', absolute) and with 600 copies of a path. Each is a 400 page saying why; no batch is made."""
    make_run(instance_path, checkpoints=True)
    url = PAGE + "/send"
    cases = [([], "Tick the generated images"),
             ([f"generated/{GEN_ID}/cat/0.png"], "Not images of this generation"),
             (["../../secret_key"], "Not images of this generation"),
             (["/etc/passwd"], "Not images of this generation"),
             ([f"generated/{GEN2_ID}/cat/9.png"] * 600, "Not images of this generation")]
    for picks, says in cases:
        response = client.post(url, data={"pick": picks})
        assert response.status_code == 400 and says in response.get_data(as_text=True), picks[:1]
    assert staged_batches(app) == []


def test_sent_pictures_wait_staged_and_marked_generated_until_accepted(client, app, instance_path, dataset):
    """Tried: a dataset of cats and dogs, then two pictures of a generation sent to the curator. The answer leads
    to the merge preview, which marks the batch generated; the pictures are staged with no class (no gallery or
    snapshot has them); committing the preview makes them active in their classes, and a snapshot still leaves
    them out unless asked."""
    dataset({"cat": 3, "dog": 3}, size=24, name="{cls}{i}.png", imported="service")
    make_run(instance_path, checkpoints=True)
    picks = [f"generated/{GEN2_ID}/cat/0.png", f"generated/{GEN2_ID}/dog/1.png"]
    sent = client.post(PAGE + "/send", data={"pick": picks})
    assert sent.status_code == 303 and re.search(r"/merge/\d+$", sent.headers["Location"])
    preview = client.get(sent.headers["Location"]).get_data(as_text=True)
    assert 'id="generated-badge"' in preview and "not training data" in preview
    assert "Take the accepted into the dataset (2 accepted images)" in preview
    batch = staged_batches(app)[-1]
    assert (batch.kind, batch.state, batch.source) == ("generated", "staged", f"run {RUN_ID}")
    with app.app_context():
        staged = list(db.session.scalars(select(Image).where(Image.batch_id == batch.id)))
        assert [(i.status, i.class_id) for i in staged] == [("staged", None)] * 2
        assert sum(create_snapshot(db.session, Path(app.instance_path)).counts.values()) == 6
    committed = client.post(sent.headers["Location"] + "/commit")
    assert committed.status_code == 302
    with app.app_context():
        kept = list(db.session.scalars(select(Image).where(Image.batch_id == batch.id)))
        assert sorted((i.status, i.class_name) for i in kept) == [("active", "cat"), ("active", "dog")]
        assert sum(create_snapshot(db.session, Path(app.instance_path)).counts.values()) == 6
        assert create_snapshot(db.session, Path(app.instance_path), include_generated=True).counts == \
            {"cat": 4, "dog": 4}


def test_a_kept_epoch_is_passed_to_the_sampler_and_remembered(client, instance_path, monkeypatch):
    """Tried: generating from the kept epoch 1 (the sampling process replaced by a recorder). The command asks
    diffusion.generate for `--which 1`; request.json keeps the choice, so the form offers epoch 1 next time."""
    import types

    from trainer import generation_service
    make_run(instance_path, checkpoints=True)
    commands = []
    monkeypatch.setattr(generation_service, "spawn_recording_exit",
                        lambda cmd, folder, log: commands.append(cmd) or types.SimpleNamespace(pid=2**22 + 1))
    response = client.post(f"/train/runs/{RUN_ID}/generate", data={
        "which": "1", "class": "dog", "n": "3", "steps": "5", "sampler": "ddim", "guidance": "2", "seed": "4"})
    assert response.status_code == 302
    cmd = commands[0]
    assert cmd[cmd.index("--which") + 1] == "1" and cmd[cmd.index("--class") + 1] == "dog"
    text = client.get(f"/train/runs/{RUN_ID}/generate").get_data(as_text=True)
    assert '<option value="1" selected>' in text and '<option value="dog" selected>' in text
