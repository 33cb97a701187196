"""Favourites: one file per run, round-trips, and refuses anything that is not a picture of the run."""
from __future__ import annotations

import json

import pytest

from tests.trainer.sticker_helpers import make_run
from trainer import favourites


def test_add_remove_round_trip_keeps_what_regenerates_a_picture(tmp_path):
    """Tried: marking a training sample and a generated picture, marking one again, reading back, removing one.
    The file lists each once, with class, index and epoch (sample) or seed/steps (generation); removing leaves
    the picture itself in place."""
    run_dir = make_run(tmp_path)
    favourites.add(run_dir, "samples/epoch_0001/dog/1.png")
    favourites.add(run_dir, "generated/20260101-000100-ab12/cat/0.png")
    items = favourites.add(run_dir, "samples/epoch_0001/dog/1.png")
    assert [i["png"] for i in items] == ["samples/epoch_0001/dog/1.png", "generated/20260101-000100-ab12/cat/0.png"]
    sample, generated = favourites.read(run_dir)
    assert (sample["class"], sample["index"], sample["epoch"]) == ("dog", 1, 1)
    assert (generated["class"], generated["seed"], generated["steps"], generated["generation"]) == \
        ("cat", 7, 25, "20260101-000100-ab12")
    assert json.loads((run_dir / "favourites.json").read_text())["version"] == 1
    favourites.remove(run_dir, "samples/epoch_0001/dog/1.png")
    assert [i["png"] for i in favourites.read(run_dir)] == ["generated/20260101-000100-ab12/cat/0.png"]
    assert (run_dir / "samples/epoch_0001/dog/1.png").exists()
    assert favourites.is_favourite(run_dir, "generated/20260101-000100-ab12/cat/0.png")


@pytest.mark.parametrize("rel", ["../../secret_key", "samples/epoch_0001/cat/../../../x.png", "config.json",
                                 "samples/epoch_0001/cat/9.png", "samples/epoch_0001/cat/0.png\x00",
                                 "/etc/passwd", "", "samples\\epoch_0001\\cat\\0.png"])
def test_anything_but_a_picture_of_the_run_is_refused(tmp_path, rel):
    """Tried: paths outside the run, another kind of file, a missing sample, NUL, absolute, empty, backslashes.
    Each is a FavouriteError and the file is not written."""
    run_dir = make_run(tmp_path)
    with pytest.raises(favourites.FavouriteError):
        favourites.add(run_dir, rel)
    assert not (run_dir / "favourites.json").exists()


def test_an_unreadable_file_reads_as_no_favourites(tmp_path):
    """Tried: favourites.json holding broken JSON, then a list instead of an object. Both read as empty, and
    adding a favourite writes a fresh, valid file."""
    run_dir = make_run(tmp_path)
    for text in ("{not json", "[1, 2]"):
        (run_dir / "favourites.json").write_text(text)
        assert favourites.read(run_dir) == []
    favourites.add(run_dir, "samples/epoch_0001/cat/0.png")
    assert len(favourites.read(run_dir)) == 1
