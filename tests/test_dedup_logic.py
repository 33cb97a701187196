"""curator.dedup (confirm stage, grouping, new-batch check, keeper) and curator.calibration maths."""
import io
import random
import sys
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from curator.calibration import calibrate, pairs_for_calibration
from curator.dedup import (DuplicateIndex, check_new, confirm_scores, find_duplicate_groups, suggest_keeper)
from curator.hashing import fingerprint_bytes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.near_dup_pairs import transform  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "demo" / "animal-emoji" / "images"  # the bundled copy


def fp_of(rel):
    return fingerprint_bytes((DEMO / rel).read_bytes(), rel)


def copies(rel, recipes, seed=0):
    rng = random.Random(seed)
    img = Image.open(DEMO / rel).convert("RGBA")
    return {r: fingerprint_bytes(transform(img, r, rng)[0], r) for r in recipes}


RECIPES = ["resize", "jpeg", "webp", "crop", "bright", "crop+resize", "bright+jpeg", "gif"]


def test_confirm_accepts_copies_and_rejects_hard_negatives():
    # tried: 8 transformed copies of a demo sticker vs the original; the same emoji in another style and
    # another emoji of the same class in the same style
    from curator.dedup import DEFAULT_CONFIRM_THRESHOLD as T
    orig = fp_of("cat/noto__cat.png")
    cps = copies("cat/noto__cat.png", RECIPES)
    scores = confirm_scores([orig.thumb] * len(cps), [c.thumb for c in cps.values()])
    assert all(s >= T for s in scores), dict(zip(cps, scores))
    hard = [fp_of("cat/noto-v1__cat.png"), fp_of("cat/twemoji__cat.png"), fp_of("cat/noto__cat-face.png"),
            fp_of("cat/noto__black-cat.png")]
    hs = confirm_scores([orig.thumb] * len(hard), [h.thumb for h in hard])
    assert all(s < T for s in hs), hs


def test_groups_label_exact_same_pixels_and_near():
    # tried: an exact byte copy, a lossless re-encoding, JPEG/crop copies, and an unrelated hard negative
    raw = (DEMO / "dog/twemoji__dog.png").read_bytes()
    buf = io.BytesIO()
    Image.open(io.BytesIO(raw)).save(buf, "WEBP", lossless=True)
    cps = copies("dog/twemoji__dog.png", ["jpeg", "crop"])
    fps = {"a": fingerprint_bytes(raw), "a-copy": fingerprint_bytes(raw), "a-webp": fingerprint_bytes(buf.getvalue()),
           "b": fp_of("horse/twemoji__horse.png"), "c": fp_of("dog/noto__dog.png")}
    groups = find_duplicate_groups(fps)
    assert [(g.kind, g.members) for g in groups] == [("same-pixels", ["a", "a-copy", "a-webp"])]
    assert {m.kind for m in groups[0].matches} == {"exact", "same-pixels"}
    fps.update({"a-jpeg": cps["jpeg"], "a-crop": cps["crop"]})
    groups = find_duplicate_groups(fps)
    assert len(groups) == 1 and groups[0].kind == "near"
    assert groups[0].members == ["a", "a-copy", "a-crop", "a-jpeg", "a-webp"]
    assert find_duplicate_groups([fps["a"]]) == []


def test_check_new_against_index_and_within_batch():
    # tried: existing set of 3; new batch with an exact copy, a near copy, a duplicate inside the batch,
    # and a genuinely new picture (another style of an existing emoji)
    existing = {10: fp_of("rabbit/twemoji__rabbit.png"), 11: fp_of("frog/noto__frog.png"),
                12: fp_of("turtle/openmoji__turtle.png")}
    index = DuplicateIndex()
    index.add(existing)
    near = copies("frog/noto__frog.png", ["resize+jpeg"])["resize+jpeg"]
    new_pic = fp_of("rabbit/noto__rabbit.png")
    batch = {"n1": fp_of("rabbit/twemoji__rabbit.png"), "n2": near, "n3": new_pic, "n4": new_pic}
    res = check_new(batch, index, existing)
    assert [(m.b, m.kind) for m in res["n1"]] == [(10, "exact")]
    assert [(m.b, m.kind) for m in res["n2"]] == [(11, "near")]
    assert res["n3"] == []
    assert [(m.b, m.kind) for m in res["n4"]] == [("n3", "exact")]
    assert len(index) == 3  # checking does not modify the index
    with pytest.raises(ValueError):
        index.add({10: existing[10]})


def test_suggest_keeper_resolution_then_rating_then_age():
    # tried: resolution wins over rating; rating breaks resolution ties (missing rating loses); age last
    old, new = datetime(2020, 1, 1), datetime(2024, 1, 1)
    big = {"id": 1, "width": 256, "height": 256, "rating": None, "created": new}
    small_rated = {"id": 2, "width": 128, "height": 128, "rating": 9.0, "created": old}
    assert suggest_keeper([small_rated, big])["id"] == 1
    a = {"id": 3, "width": 64, "height": 64, "rating": 1.0, "created": new}
    b = {"id": 4, "width": 64, "height": 64, "rating": 2.0, "created": new}
    c = {"id": 5, "width": 64, "height": 64, "rating": None, "created": old}
    assert suggest_keeper([a, b, c])["id"] == 4
    d = {"id": 6, "width": 64, "height": 64, "created": old}
    e = {"id": 7, "width": 64, "height": 64, "created": new}
    assert suggest_keeper([e, d])["id"] == 6
    with pytest.raises(ValueError):
        suggest_keeper([])


def test_calibration_maths_by_hand():
    # tried: 0,1 same; 2 same+different; 3 different; 5 same. Precision/recall computed by hand
    labels = [(0, True), (1, True), (2, True), (2, False), (3, False), (5, True)]
    cal = calibrate(labels)
    by_d = {r.distance: r for r in cal.rows}
    assert (by_d[1].precision, by_d[1].recall) == (1.0, 0.5)
    assert by_d[2].precision == pytest.approx(3 / 4) and by_d[2].recall == pytest.approx(3 / 4)
    assert by_d[5].precision == pytest.approx(4 / 6) and by_d[5].recall == 1.0
    assert cal.precise_threshold == 1 and cal.recommended == 1
    assert cal.best_f1_threshold == 5  # F1 0.8 at 5 beats 0.75 at 2 and 0.667 at 1
    assert calibrate([]).recommended is None
    assert calibrate([(3, False)]).recommended is None
    with pytest.raises(ValueError):
        calibrate([(-1, True)])


def test_pairs_for_calibration_spreads_over_distances():
    # tried: 100 pairs at each distance 0..29; 2 per 2-bit bucket up to 24, in increasing order
    pairs = [(i, i + 1, d) for d in range(30) for i in range(100)]
    chosen = pairs_for_calibration(pairs, per_bucket=2, max_distance=24, bucket_width=2)
    ds = [p[-1] for p in chosen]
    assert ds == sorted(ds) and max(ds) <= 24 and len(chosen) == 13 * 2
    assert {d // 2 for d in ds} == set(range(13))
    assert pairs_for_calibration(pairs, per_bucket=2) == chosen  # deterministic
