"""Run pages and sample galleries on fake run folders (no training): labelled rows at a readable size, the
epoch in the URL, film strips, compare with figures, nearest training images, run names, and what a finished run
says about itself. Each test says what is tried; odd input gets a 4xx, never a 500."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from core.db import db
from core.models import Image, Run
from diffusion import rundir
from tests.conftest import HX
from tests.trainer.gallery_helpers import CLASSES, RUN_ID, make_gallery_run
from trainer.service import derived_name, film_epochs, tile_px

OTHER = "20260103-000000-othr"


@pytest.fixture
def run_dir(app) -> Path:
    return make_gallery_run(Path(app.instance_path))


def add_row(app, run_id: str = RUN_ID, name: str | None = None) -> None:
    with app.app_context():
        db.session.add(Run(id=run_id, device="cpu", name=name))
        db.session.commit()


def text(response) -> str:
    return response.get_data(as_text=True)


def tiles(html: str) -> list[str]:
    return re.findall(r'<div class="sample"[^>]*data-rel="([^"]+)"', html)


# --- galleries ----------------------------------------------------------------------------------------------

def test_epoch_gallery_has_a_labelled_row_per_class_of_large_pixelated_tiles(client, run_dir):
    html = text(client.get(f"/train/runs/{RUN_ID}/epochs?epoch=2"))
    rows = re.findall(r'<div class="sample-row" data-row="([^"]+)"', html)
    assert rows == list(CLASSES), "one row per class, in the run's class order"
    for name in CLASSES:
        assert re.search(rf'class="row-label">\s*<a href="[^"]*/classes/{name}"', html), f"{name} row is labelled"
    assert len(tiles(html)) == 12 and all("epoch_0002" in rel for rel in tiles(html))
    assert re.search(r'id="epoch-figures">loss 0\.2450 · accuracy 0\.700 · FID 30\.00', html), "the epoch's figures"
    sizes = set(re.findall(r'<img class="pixel" src="[^"]*" alt="[^"]*" width="(\d+)" height="\1"', html))
    assert sizes and all(int(s) >= 96 and int(s) % 32 == 0 for s in sizes), sizes


def test_tile_size_is_a_whole_multiple_of_the_sample_and_at_least_96_css_pixels():
    assert tile_px(32, 10) == 96  # ten 32 px samples: 3x
    assert tile_px(8, 10) == 96 and tile_px(16, 4) == 192  # 12x each: as wide as the row allows
    assert tile_px(64, 10) == 128  # never below 96: 2x
    assert tile_px(32, 2) == 192  # few samples: larger, up to the cap
    assert tile_px(None, 4) == 96


def test_slider_sends_the_index_and_the_answer_puts_the_epoch_in_the_address(client, run_dir):
    region = client.get(f"/train/runs/{RUN_ID}/epochs?i=0", headers={"HX-Request": "true", "HX-Target": "epoch-view"})
    assert region.headers["HX-Replace-Url"] == f"/train/runs/{RUN_ID}/epochs?epoch=1"
    assert 'id="epoch-view" data-epoch="1"' in text(region)
    plain = client.get(f"/train/runs/{RUN_ID}/epochs?i=1")  # the form without JavaScript
    assert plain.status_code == 302 and plain.headers["Location"].endswith("/epochs?epoch=2")
    page = text(client.get(f"/train/runs/{RUN_ID}/epochs?epoch=2"))
    assert 'value="1"' in page and 'data-epoch="2"' in page, "a reload of ?epoch=2 shows epoch 2 on the slider"


def test_odd_epochs_ids_and_names_get_4xx_never_500(client, run_dir):
    for url, expected in [
        (f"/train/runs/{RUN_ID}/epochs?epoch=abc", 400),  # not a number
        (f"/train/runs/{RUN_ID}/epochs?epoch=-5", 400),
        (f"/train/runs/{RUN_ID}/epochs?epoch=99999999999999999999", 400),
        (f"/train/runs/{RUN_ID}/epochs?i=99999999999999", 400),
        ("/train/runs/..%2F..%2Fetc/epochs", 404),  # a path, not an id
        ("/train/runs/nope/epochs", 404),
        (f"/train/runs/{RUN_ID}/classes/%00", 400),  # NUL: refused before any view
        (f"/train/runs/{RUN_ID}/classes/horse", 404),  # not a class of the run
        (f"/train/runs/{RUN_ID}/nearest?rel=../../etc/passwd", 404),
        (f"/train/runs/{RUN_ID}/nearest?rel=config.json", 404),  # not a picture
        (f"/train/runs/{RUN_ID}/nearest", 404),
        (f"/train/runs/{RUN_ID}/picture?rel=samples/epoch_0009/cat/0.png", 404),
        ("/train/compare?a=nope&b=..&epoch_a=zz", 400),
    ]:
        assert client.get(url).status_code == expected, url
    assert client.get(f"/train/runs/{RUN_ID}/epochs?epoch=7").status_code == 200  # nearest epoch that exists


def test_class_gallery_is_a_film_strip_oldest_first_with_epoch_labels(client, run_dir):
    html = text(client.get(f"/train/runs/{RUN_ID}/classes/dog"))
    assert re.findall(r'<div class="sample-row" data-row="(\d+)"', html) == ["1", "2", "3"]
    for epoch in (1, 2, 3):
        assert f">epoch {epoch}</a>" in html
    rels = tiles(html)
    assert rels[0] == "samples/epoch_0001/dog/0.png" and rels[4] == "samples/epoch_0002/dog/0.png", \
        "the same sample index lines up in one column across epochs"


def test_a_long_run_shows_an_even_spread_of_epochs_unless_all_are_asked_for(client, app):
    make_gallery_run(Path(app.instance_path), epochs=range(1, 31), n=2, classes=("cat",))
    assert film_epochs(list(range(1, 31)))[0] == 1 and film_epochs(list(range(1, 31)))[-1] == 30
    html = text(client.get(f"/train/runs/{RUN_ID}/classes/cat"))
    assert len(re.findall(r'class="sample-row"', html)) == 12 and "show all" in html
    html = text(client.get(f"/train/runs/{RUN_ID}/classes/cat?all=1"))
    assert len(re.findall(r'class="sample-row"', html)) == 30


def test_sample_tiles_carry_run_and_picture_and_work_as_links_without_javascript(client, run_dir):
    html = text(client.get(f"/train/runs/{RUN_ID}/epochs"))
    tile = re.search(r'<div class="sample" tabindex="0" data-run="([^"]+)" data-rel="([^"]+)"', html)
    assert tile and tile.group(1) == RUN_ID and tile.group(2) == "samples/epoch_0003/cat/0.png"
    link = re.search(r'<a class="sample-open" href="([^"]+)"', html).group(1)
    page = client.get(link.replace("&amp;", "&"))
    assert page.status_code == 200 and 'id="picture"' in text(page) and "cat · epoch 3 · #1" in text(page)


# --- the run page -------------------------------------------------------------------------------------------

def test_run_page_shows_the_newest_epoch_large_with_class_labels(client, app, run_dir):
    add_row(app)
    html = text(client.get(f"/train/runs/{RUN_ID}"))
    assert "Newest samples · epoch 3" in html
    newest = html[html.index('class="newest"'):html.index('class="live-grid"')]
    assert re.findall(r'data-row="([^"]+)"', newest) == list(CLASSES)
    assert all(int(s) >= 96 for s in re.findall(r'width="(\d+)"', newest))


def test_a_run_stopped_by_its_budget_reads_as_such(client, app):
    """The trainer stopped mid-epoch 16 after 15 whole epochs: the page says 15 epochs and the budget, and its last
    grid (written under epoch 16) is "15 epochs + 3 steps", never "epoch 16" nor "epoch 15 / 50"."""
    make_gallery_run(Path(app.instance_path), epochs=(5, 10, 15, 16), config={"epochs": 50, "minutes": 10},
                     status={"epoch": 15, "step": 153, "steps_per_epoch": 10, "total_steps": 153})
    add_row(app)
    html = text(client.get(f"/train/runs/{RUN_ID}"))
    assert "15 epochs · stopped by the 10-minute budget" in html
    assert "end of training · 15 epochs + 3 steps" in html
    assert "epoch 16" not in html.lower() and "15 / 50" not in html and "153 / 153" not in html


def test_the_trainers_own_words_are_shown_and_its_last_grid_is_labelled_by_the_step_it_was_made_at(client, app):
    """The trainer (issue 12) files the last grid under the epochs completed and writes why it stopped
    (status.json `stop_reason`, `stop_message`, `latest_grid_step`): the page uses them as they are."""
    make_gallery_run(Path(app.instance_path), epochs=(5, 10, 15), config={"epochs": None, "minutes": 10},
                     status={"epoch": 15, "step": 153, "steps_per_epoch": 10, "latest_grid_step": 153,
                             "stop_reason": "budget", "stop_message": "stopped by the time budget (10 min of "
                             "training) after 15 epochs done and 3 of 10 steps of epoch 16 (153 steps)"})
    add_row(app)
    html = text(client.get(f"/train/runs/{RUN_ID}"))
    assert "15 epochs · stopped by the 10-minute budget" in html and "Newest samples · end of training · 15 epochs + 3 steps" in html
    assert "Training stopped by the time budget (10 min of training) after 15 epochs done" in html
    assert ">epoch 10</a>" in text(client.get(f"/train/runs/{RUN_ID}/classes/cat"))


def test_the_preview_before_training_is_epoch_0_and_shown_as_such(client, app):
    make_gallery_run(Path(app.instance_path), epochs=(0, 1), status={"state": "running", "epoch": 1, "step": 10},
                     metrics=[])
    assert ">before training</a>" in text(client.get(f"/train/runs/{RUN_ID}/classes/cat"))
    page = text(client.get(f"/train/runs/{RUN_ID}/epochs?epoch=0"))
    assert 'data-epoch="0"' in page and "Before training" in page and len(tiles(page)) == 12


def test_a_run_that_did_all_its_epochs_says_so(client, app, run_dir):
    add_row(app)
    assert "3 epochs · complete" in text(client.get(f"/train/runs/{RUN_ID}"))


def test_the_poll_that_sees_a_new_state_removes_the_pages_old_messages(client, app, run_dir):
    """The "created and started" flash stayed on a finished run's page: the page never reloads, only its live
    region. The poll that first answers with another state than the page showed removes the messages."""
    add_row(app)
    changed = text(client.get(f"/train/runs/{RUN_ID}/live?was=running", headers=HX))
    assert 'hx-swap-oob="delete:main &gt; .flashes"' in changed or 'hx-swap-oob="delete:main > .flashes"' in changed
    same = text(client.get(f"/train/runs/{RUN_ID}/live?was=completed", headers=HX))
    assert "hx-swap-oob" not in same
    assert "hx-get" not in same.split(">", 2)[1], "a finished run's region stops polling"


# --- names --------------------------------------------------------------------------------------------------

def test_runs_show_a_derived_name_until_renamed_and_keep_the_id_in_the_url(client, app, run_dir):
    add_row(app)
    derived = derived_name(RUN_ID, {"preset": "tiny", "image_size": 32})
    assert derived == derived_name(RUN_ID, {"preset": "tiny", "image_size": 32}) and derived.endswith("tiny 32 px")
    assert derived in text(client.get("/train/")) and derived in text(client.get(f"/train/runs/{RUN_ID}"))
    response = client.post(f"/train/runs/{RUN_ID}/name", data={"name": "  Cats that look like cats  "})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/train/runs/{RUN_ID}")
    for url in ("/train/", f"/train/runs/{RUN_ID}", f"/train/runs/{RUN_ID}/epochs", "/train/compare"):
        assert "Cats that look like cats" in text(client.get(url)), url
    with app.app_context():
        assert db.session.get(Run, RUN_ID).name == "Cats that look like cats"


def test_rename_by_htmx_swaps_the_name_region(client, app, run_dir):
    add_row(app)
    response = client.post(f"/train/runs/{RUN_ID}/name", data={"name": "Otter 🦦 run"}, headers=HX)
    html = text(response)
    assert response.status_code == 200 and html.lstrip().startswith('<div id="run-name"')
    assert '<span id="run-title">Otter 🦦 run</span>' in html and "<html" not in html


@pytest.mark.parametrize("typed, says", [
    ("", "at least one character"),
    ("   ", "at least one character"),
    ("x" * 81, "at most 80 characters"),
    ("evil\u202egnp.exe", "U+202E"),  # right-to-left override: would read as another name
    ("two\nlines", "U+000A"),
    ("nul\x00byte", "NUL"),  # refused before any view (core.web)
    ("isolate\u2066x", "U+2066"),
])
def test_hostile_or_empty_names_are_refused_with_a_clear_400_and_nothing_changes(client, app, run_dir, typed, says):
    add_row(app, name="Kept name")
    for headers in ({}, HX):
        response = client.post(f"/train/runs/{RUN_ID}/name", data={"name": typed}, headers=headers)
        assert response.status_code == 400 and says in text(response), (typed, text(response)[:300])
        assert "\x00" in typed or 'aria-invalid="true"' in text(response), "the field is marked"
    with app.app_context():
        assert db.session.get(Run, RUN_ID).name == "Kept name"


def test_a_command_line_run_without_a_row_cannot_be_renamed_but_shows_a_name(client, run_dir):
    assert derived_name(RUN_ID, {"preset": "tiny", "image_size": 32}) in text(client.get(f"/train/runs/{RUN_ID}"))
    assert client.post(f"/train/runs/{RUN_ID}/name", data={"name": "x"}).status_code == 400


def test_created_runs_get_a_readable_name(app, client, dataset):
    from curator.snapshots.service import create_snapshot, manifest_path
    from trainer.service import create_run
    dataset({"cat": 3, "fish": 3}, kind="demo", imported="service")
    with app.app_context():
        snap = create_snapshot(db.session, Path(app.instance_path), image_size=8)
        row = create_run(db.session, Path(app.instance_path), {"preset": "micro", "image_size": 8, "epochs": 1,
                                                                  "data": str(manifest_path(app.instance_path, snap))},
                         snapshot=snap, class_names=["cat", "fish"])
        assert row.name == derived_name(row.id, {"preset": "micro", "image_size": 8})
        assert re.fullmatch(r"[A-Z][a-z]+ [a-z]+ · micro 8 px", row.name), row.name


# --- compare ------------------------------------------------------------------------------------------------

def test_compare_shows_each_sides_name_epoch_and_figures_with_class_rows_aligned(client, app, run_dir):
    make_gallery_run(Path(app.instance_path), run_id=OTHER, classes=("cat", "dog", "owl"), epochs=(2, 4),
                     metrics=[{"kind": "train", "epoch": 3, "step": 35, "loss": 0.25},
                              {"kind": "eval", "epoch": 4, "accuracy": 0.875, "fid": 12.5, "memorised_share": 0.05}])
    html = text(client.get(f"/train/compare?a={RUN_ID}&b={OTHER}&epoch_a=2&epoch_b=4"))
    a, b = html.index('id="side-a"'), html.index('id="side-b"')
    head_a, head_b = html[a:b], html[b:html.index("</thead>")]
    assert derived_name(RUN_ID, {"preset": "tiny", "image_size": 32}) in head_a and "Epoch 2" in head_a
    assert "0.2450" in head_a and "0.700" in head_a and "30.00" in head_a  # loss of epoch 2, accuracy, FID
    assert "Epoch 4" in head_b and "0.2500" in head_b and "0.875" in head_b and "12.50" in head_b and "5.0 %" in head_b
    assert re.findall(r'class="compare-row" data-row="([^"]+)"', html) == ["cat", "dog", "fish", "owl"]
    assert "no owl in this run" in html and "no fish in this run" in html


def test_one_run_compares_two_of_its_epochs(client, run_dir):
    html = text(client.get(f"/train/compare?a={RUN_ID}&b={RUN_ID}"))
    assert "Epoch 1" in html[html.index('id="side-a"'):html.index('id="side-b"')]
    assert "Epoch 3" in html[html.index('id="side-b"'):html.index("</thead>")]


def test_compare_without_figures_says_so(client, app):
    make_gallery_run(Path(app.instance_path), metrics=[])
    assert "none logged at this epoch" in text(client.get(f"/train/compare?a={RUN_ID}"))


# --- nearest training images --------------------------------------------------------------------------------

def import_training_image(app, client, tmp_path: Path) -> Image:
    from curator.imports.service import import_paths
    from curator.imports.storage import ImageStore
    from tests.trainer.gallery_helpers import picture
    folder = tmp_path / "train" / "cat"
    folder.mkdir(parents=True)
    picture((200, 60, 40), 32, 3, 0).save(folder / "a.png")
    with app.app_context():
        import_paths(db.session, ImageStore(app.instance_path), [tmp_path / "train"])
        return db.session.scalars(select(Image)).one()


def test_nearest_panel_shows_the_training_images_their_distances_and_a_memorised_badge(client, app, tmp_path):
    image = import_training_image(app, client, tmp_path)
    gone = hashlib.sha256(b"deleted since").hexdigest()
    make_gallery_run(Path(app.instance_path), nearest={(3, "cat"): {"threshold": 0.05, "pictures": {
        "0.png": {"memorised": True, "nearest": [{"sha256": image.sha256, "path": "/x/a.png", "distance": 0.012},
                                                 {"sha256": gone, "path": "/x/b.png", "distance": 0.2}]},
        "1.png": {"memorised": False, "nearest": [{"sha256": image.sha256, "path": "/x/a.png", "distance": 0.31},
                                                  {"sha256": None, "path": "/data/cat/tabby.png", "distance": 0.4}]},
    }}})
    url = f"/train/runs/{RUN_ID}/nearest?rel=samples/epoch_0003/cat/0.png"
    html = text(client.get(url, headers=HX))
    assert "<html" not in html and "memorised-badge" in html and ">memorised<" in html
    assert f'href="/image/{image.id}"' in html and f'src="/image/{image.id}/thumb"' in html
    assert "0.012" in html and "0.200" in html and "not in the dataset now" in html and gone[:10] in html
    assert re.search(r'<li class="close">\s*<a href="/image/', html), "the one below the threshold is marked"
    other = text(client.get(url.replace("0.png", "1.png"), headers=HX))
    assert "not memorised" in other and "0.310" in other
    assert "not a curator image" in other and "tabby.png" in other  # an ImageFolder file: named by its path
    page = client.get(url)  # without JavaScript: the picture's page with the same panel
    assert page.status_code == 200 and "<html" in text(page) and "memorised-badge" in text(page)


def test_nearest_panel_says_plainly_when_a_run_has_no_record(client, app, run_dir):
    html = text(client.get(f"/train/runs/{RUN_ID}/nearest?rel=samples/epoch_0001/dog/2.png",
                           headers=HX))
    assert "No nearest training images recorded" in html and "made before the nearest-image check" in html


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", json.dumps({"pictures": {"0.png": "x"}}),
                                     json.dumps({"pictures": {"0.png": {"nearest": [{"sha256": 5}, "x"]}}})])
def test_a_broken_nearest_record_is_reported_not_a_500(client, run_dir, content):
    rundir.nearest_path(rundir.epoch_samples_dir(run_dir, 1) / "cat").write_text(content)
    response = client.get(f"/train/runs/{RUN_ID}/nearest?rel=samples/epoch_0001/cat/0.png",
                          headers=HX)
    assert response.status_code == 200 and "nearest-panel" in text(response)


def test_every_tile_offers_its_nearest_images(client, run_dir):
    html = text(client.get(f"/train/runs/{RUN_ID}/epochs"))
    links = re.findall(r'class="nearest-link" href="[^"]+" hx-get="([^"]+)" hx-target="#([^"]+)"', html)
    assert len(links) == 12
    slots = set(re.findall(r'class="nearest-slot" id="([^"]+)"', html))
    assert {target for _, target in links} <= slots and len(slots) == 3


def test_run_page_shows_what_the_run_chose_by_measurement(client, app):
    """A finished run with a guidance sweep, a flip decision and its time split: the page shows the sweep as a
    table with a grid per setting and the chosen row marked, the evaluator's own accuracy on real images beside the
    samples', why flips are off, and the share of time previews took. A run without them shows none of it."""
    run_dir = make_gallery_run(Path(app.instance_path), status={
        "augmentation": {"flip": False, "setting": "auto", "why": "flips off: mirrored images are recognised less"},
        "train_s": 600.0, "preview_s": 45.0, "evaluator_fit_s": 9.0, "sweep_s": 40.0})
    (run_dir / "guidance").mkdir()
    rows = []
    for g, interval in ((1.5, None), (3.0, None), (3.0, [0.28, 5.42])):
        name = f"g{g}-{'int' if interval else 'all'}"
        PILImage.new("RGB", (64, 32), "white").save(run_dir / "guidance" / f"{name}.png")
        rows.append({"name": name, "guidance": g, "interval": interval, "accuracy": 0.8 + g / 20, "fid": g,
                     "memorised_share": 0.0, "grid": f"guidance/{name}.png"})
    rundir.write_json_atomic(run_dir / "guidance.json", {
        "rows": rows, "chosen": rows[2], "why": "lowest Fréchet distance among the most recognised",
        "real_accuracy": 0.9, "steps": 20, "sampler": "dpm++2m", "skipped": [{"guidance": 2.0, "interval": None}],
        "budget_s": 60.0})
    rundir.append_jsonl(run_dir / "metrics.jsonl", {"kind": "eval", "epoch": 3, "step": 30, "accuracy": 0.85,
                                                    "real_accuracy": 0.93, "chance": 0.33, "fid": 12.0})
    html = text(client.get(f"/train/runs/{RUN_ID}"))
    sweep = html[html.index('id="guidance-sweep"'):html.index("</table>", html.index('id="guidance-sweep"'))]
    assert sweep.count("<tr") == 4 and sweep.count('class="pixel sweep-grid"') == 3
    chosen = re.findall(r'<tr class="chosen">(.*?)</tr>', sweep, re.S)
    assert len(chosen) == 1 and "σ in (0.28, 5.42] only" in chosen[0]
    assert "Generation uses guidance 3.0 within that interval" in html
    assert "Not tried within the sweep" in html
    assert "flips off: mirrored images are recognised less" in html
    assert "previews and evaluation 45 s, guidance sweep 40 s (14.2 % of training)" in html
    assert re.search(r'id="evaluator-real"><th>evaluator on real images</th><td>0\.930', html)
    assert client.get(f"/train/runs/{RUN_ID}/files/guidance/g3.0-int.png").status_code == 200

    make_gallery_run(Path(app.instance_path), run_id=OTHER)
    plain = text(client.get(f"/train/runs/{OTHER}"))
    assert 'id="measured"' not in plain and "evaluator-real" not in plain


def test_a_class_whose_name_has_a_slash_shows_its_samples(client, app):
    """A class named "a/b" is saved by the trainer in the folder "a_b": the gallery finds its samples there."""
    run_dir = make_gallery_run(Path(app.instance_path), classes=("cat",))
    config = json.loads((run_dir / "config.json").read_text())
    rundir.write_json_atomic(run_dir / "config.json", {**config, "class_names": ["cat", "big/small"]})
    folder = rundir.epoch_samples_dir(run_dir, 3) / "big_small"
    folder.mkdir()
    PILImage.new("RGB", (32, 32), "white").save(folder / "0.png")
    html = text(client.get(f"/train/runs/{RUN_ID}/epochs?epoch=3"))
    assert "samples/epoch_0003/big_small/0.png" in html
