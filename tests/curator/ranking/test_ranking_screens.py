"""Ranking with several images per screen ("pick the best of 4", optionally in order) and the class-done state,
through the web client; the stored answers, and the migration that makes room for them."""
from __future__ import annotations

import re
import sqlite3

import pytest
from sqlalchemy import func, select

from core.db import db
from core.models import Comparison, Decision, Image, ImageClass
from curator.ranking import service as rs
from tests.conftest import HX, answer_form
from tests.curator.ranking.test_ranking_web import class_ids, text


def screen_of(html: str) -> dict:
    """The screen on show (shown) and the prefetched one (next), as the page would post them."""
    return answer_form(html, "shown", "next")


def ids(value: str) -> list[int]:
    return [int(i) for i in value.split(",")]


def stored(app) -> list[tuple]:
    with app.app_context():
        return [(rs.shown_on(c), c.outcome, c.picks, c.actor, c.undone)
                for c in db.session.scalars(select(Comparison).order_by(Comparison.id))]


def counter(html: str, name: str) -> int:
    return int(re.search(rf'id="{name}">(\d+)<', html).group(1))


@pytest.fixture
def cats(app, dataset):
    """Eight distinct little cats and three dogs, imported in one batch: the cats' ids."""
    dataset({"cat": 8, "dog": 3}, size=16, imported="cli")
    return class_ids(app, "cat")


def test_best_of_four_page_answers_swap_in_the_prefetched_screen(client, app, cats):
    """Tried: the best-of-4 page, then four picks in a row through htmx. The page shows four images with keys 1-4
    on a form that also works without JavaScript, and preloads the next four; each pick is stored as one answer
    (the four shown, the one picked, who); the screen that comes next is the prefetched one; the counters match the
    database after every swap."""
    page = client.get("/rank/cat/best")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html
    for key in "1234":
        assert f'data-key="{key}"' in html
    assert 'method="post" action="/rank/cat/pick"' in html and 'hx-post="/rank/cat/pick"' in html
    shown = screen_of(html)
    assert len(ids(shown["shown"])) == 4 == len(set(ids(shown["shown"]))) and set(ids(shown["shown"])) <= set(cats)
    assert set(ids(shown["next"])) != set(ids(shown["shown"]))
    for image_id in ids(shown["next"]):
        assert f'data-prefetch="{image_id}"' in html
    answered = []
    for n in range(1, 5):
        pick = ids(shown["shown"])[n % 4]
        html = client.post("/rank/cat/pick", data={**shown, "pick": str(pick)}, headers=HX).get_data(as_text=True)
        assert "<html" not in html and 'id="rank-area"' in html
        with client.session_transaction() as session:  # this browser's own name (no login needed here)
            me = session["guest"]
        answered.append((ids(shown["shown"]), "best", [pick], me, False))
        assert screen_of(html)["shown"] == shown["next"]
        shown = screen_of(html)
        assert counter(html, "answer-count") == n == counter(html, "my-count") == len(stored(app))
    assert stored(app) == answered
    with app.app_context():
        row = db.session.scalars(select(Comparison)).first()
        assert (row.left_id, row.right_id, row.others) == (answered[0][0][0], answered[0][0][1], answered[0][0][2:])


def test_plain_form_pick_redirects_to_the_prefetched_screen(client, app, cats):
    """Tried: a pick without JavaScript (a plain POST). It redirects (post/redirect/get) to the best-of-4 page
    showing the prefetched screen."""
    shown = screen_of(client.get("/rank/cat/best").get_data(as_text=True))
    response = client.post("/rank/cat/pick", data={**shown, "pick": ids(shown["shown"])[0]})
    assert response.status_code == 302 and "/rank/cat/best" in response.location
    html = client.get(response.location).get_data(as_text=True)
    assert screen_of(html)["shown"] == shown["next"] and len(stored(app)) == 1


def test_putting_four_in_order_by_keys_or_by_places(client, app, cats):
    """Tried: the order mode (?order=1): with the keys (JavaScript fills `order` with three ids, the fourth is
    implied), and as a plain form (a place chosen per image, the last left blank). Both are stored as one answer
    holding the full order, best first."""
    html = client.get("/rank/cat/best?order=1").get_data(as_text=True)
    assert 'name="mode" value="order"' in html and html.count('<select name="place_') == 4
    shown = screen_of(html)
    a, b, c, d = ids(shown["shown"])
    html = client.post("/rank/cat/pick", data={**shown, "mode": "order", "order": f"{c},{a},{d}"},
                       headers=HX).get_data(as_text=True)
    assert 'name="mode" value="order"' in html  # still ordering
    with app.app_context():
        ratings = rs.recompute(db.session, rs.get_class(db.session, "cat").id).ratings()
    assert ratings[c].mu > ratings[a].mu > ratings[d].mu > ratings[b].mu
    shown = screen_of(html)
    e, f, g, h = ids(shown["shown"])
    response = client.post("/rank/cat/pick", data={**shown, "mode": "order", f"place_{e}": "2", f"place_{f}": "3",
                                                   f"place_{g}": "1", f"place_{h}": ""})
    assert response.status_code == 302 and "order=1" in response.location
    assert [(s[1], s[2]) for s in stored(app)] == [("order", [c, a, d, b]), ("order", [g, e, f, h])]


def test_undo_takes_back_a_pick_as_one_answer_and_shows_its_screen_again(client, app, cats):
    """Tried: two picks, then Backspace (undo) on the best-of-4 page, through htmx and as a plain form. Each undo
    marks exactly one whole answer undone (the row stays, for the record), shows that screen again, and keeps the
    screen that was on show for right after; the counters drop with it."""
    html = client.get("/rank/cat/best").get_data(as_text=True)
    first = screen_of(html)
    html = client.post("/rank/cat/pick", data={**first, "pick": ids(first["shown"])[1]}, headers=HX).get_data(
        as_text=True)
    second = screen_of(html)
    html = client.post("/rank/cat/pick", data={**second, "pick": ids(second["shown"])[2]}, headers=HX).get_data(
        as_text=True)
    on_show = screen_of(html)
    html = text(client.post("/rank/cat/undo", data={"view": "best", "shown": on_show["shown"]}, headers=HX))
    assert f"Undid your answer: #{ids(second['shown'])[2]} best of" in html
    assert screen_of(html) == {"shown": second["shown"], "next": on_show["shown"]}
    assert counter(html, "answer-count") == 1 and [s[4] for s in stored(app)] == [False, True]
    response = client.post("/rank/cat/undo", data={"view": "best", "shown": second["shown"]})
    assert response.status_code == 302 and f"shown={first['shown']}" in response.location
    assert [s[4] for s in stored(app)] == [True, True]
    with app.app_context():
        assert rs.class_ratings(db.session, rs.get_class(db.session, "cat").id).key.count == 0


def test_a_double_submitted_pick_is_stored_once(client, app, cats):
    """Tried: the same pick sent twice (a double click or key repeat), then the same screen with another pick. The
    first pick is stored once and the page says so; a different pick on the same screen is a new answer."""
    shown = screen_of(client.get("/rank/cat/best").get_data(as_text=True))
    pick = ids(shown["shown"])[3]
    client.post("/rank/cat/pick", data={**shown, "pick": pick}, headers=HX)
    again = client.post("/rank/cat/pick", data={**shown, "pick": pick}, headers=HX).get_data(as_text=True)
    assert "already stored" in again and len(stored(app)) == 1
    client.post("/rank/cat/pick", data={**shown, "pick": ids(shown["shown"])[0]}, headers=HX)
    assert len(stored(app)) == 2


BAD_PICKS = [  # (what is changed in a valid pick, the message expected)
    ({"shown": None}, "a screen shows 2 to 4 images, got 0"),
    ({"shown": "abc"}, "the images shown must be image numbers"),
    ({"shown": "FIRST"}, "a screen shows 2 to 4 images, got 1"),
    ({"shown": "FIVE"}, "a screen shows 2 to 4 images, got 5"),
    ({"shown": "TWICE"}, "an image was shown twice"),
    ({"shown": "WITH_DOG"}, "is not in class 'cat'"),
    ({"shown": "WITH_REJECTED"}, "rejected, not active"),
    ({"shown": "WITH_MISSING"}, "there is no image #99999"),
    ({"pick": None}, "pick the best image"),
    ({"pick": "x"}, "the picked images must be image numbers"),
    ({"pick": "99999"}, "image #99999 was not on the screen"),
    ({"pick": None, "order": "A,B"}, "put all 4 images in order, or pick only the best"),
    ({"pick": None, "order": "A,A,B"}, "an image was picked twice"),
    ({"pick": None, "mode": "order", "place_A": "1", "place_B": "1"}, "give each image its own place from 1 to 4"),
    ({"pick": None, "mode": "order", "place_A": "9"}, "give each image its own place from 1 to 4"),
    ({"pick": None, "mode": "order", "place_A": "first"}, "the place of #A must be a number from 1 to 4"),
]


def test_bad_picks_get_a_clear_message_and_change_nothing(client, app, cats):
    """Tried: every form value a pick has, broken: no screen, a non-number, one image, five images, an image twice,
    a dog among the cats, a rejected cat, an unknown image; no pick, a non-number pick, a pick that was not on the
    screen, an order of two of four, an image picked twice, two images in the same place, a place out of range or
    not a number. Each through a plain form (400 with the message, the same screen) and htmx (200: the message
    over a fresh screen, no page layout). Nothing is stored, never a server error."""
    dog = class_ids(app, "dog")[0]
    with app.app_context():
        db.session.get(Image, cats[-1]).status = "rejected"
        db.session.commit()
    a, b, c, d = cats[:4]
    good = {"shown": f"{a},{b},{c},{d}", "pick": str(b)}
    fill = {"FIRST": str(a), "FIVE": ",".join(map(str, cats[:5])), "TWICE": f"{a},{b},{a},{c}",
            "WITH_DOG": f"{a},{b},{c},{dog}", "WITH_REJECTED": f"{a},{b},{c},{cats[-1]}",
            "WITH_MISSING": f"{a},{b},{c},99999"}
    for change, expected in BAD_PICKS:
        data = dict(good)
        for key, value in change.items():
            key = key.replace("A", str(a)).replace("B", str(b)) if key.startswith("place_") else key
            if value is None:
                data.pop(key, None)
            else:
                data[key] = fill.get(value, value.replace("A", str(a)).replace("B", str(b)))
        expected = expected.replace("#A", f"#{a}")
        plain = client.post("/rank/cat/pick", data=data)
        assert plain.status_code == 400 and expected in text(plain), change
        htmx = client.post("/rank/cat/pick", data=data, headers=HX)
        body = text(htmx)
        assert htmx.status_code == 200 and expected in body and "Answer not stored" in body, change
        assert "<html" not in body and screen_of(body)["shown"]
        with app.app_context():
            assert db.session.scalar(select(func.count(Comparison.id))) == 0, change
            assert db.session.scalar(select(func.count(Decision.id))) == 0, change
    # Malformed values that only say which screen to show next are ignored, not refused.
    response = client.post("/rank/cat/pick", data={**good, "next": "x,y", "more": "maybe"}, headers=HX)
    assert response.status_code == 200 and len(stored(app)) == 1
    assert client.get("/rank/cat/best?shown=1,1,zz&order=yes").status_code == 200


def test_cached_ratings_with_picks_equal_a_recompute(client, app, cats):
    """Tried: picks, orders and pair answers mixed, and an undo, through the pages; after each the ratings the
    pages use (cached, folded in answer by answer) equal a recompute from the stored rows."""
    html = client.get("/rank/cat/best").get_data(as_text=True)
    cat_id = None
    for step in range(6):
        shown = screen_of(html)
        four = ids(shown["shown"])
        data = {**shown, "pick": four[step % 4]} if step % 3 else {**shown, "mode": "order",
                                                                   "order": ",".join(map(str, four[:3]))}
        html = client.post("/rank/cat/pick", data=data, headers=HX).get_data(as_text=True)
        if step == 3:
            client.post("/rank/cat/answer", data={"left": four[0], "right": four[1], "outcome": "tie"}, headers=HX)
            client.post("/rank/cat/undo", data={"view": "best"}, headers=HX)
        with app.app_context():
            cat_id = cat_id or rs.get_class(db.session, "cat").id
            assert rs.class_ratings(db.session, cat_id).state.ratings() == rs.recompute(db.session, cat_id).ratings()


def _settle(app, k: int, most: int):
    """Store picks in which the lowest-numbered images always win, until the class's top-k is settled (at most
    `most` of them)."""
    with app.app_context():
        cls = rs.get_class(db.session, "cat")
        rs.set_top_k(db.session, cls, k)
        for _ in range(most):
            progress = rs.standings(db.session, cls, limit=0).progress
            if progress.done:
                break
            screen = rs.next_screens(db.session, cls, size=4, count=1, rng=0)[0]
            rs.record_choice(db.session, cls, list(screen), [min(screen)], "simulated")
        return progress


def test_a_settled_class_says_so_instead_of_asking_more(client, app, cats):
    """Tried: a class whose top 2 is settled (each P > 0.95), on both compare pages. Each shows the class-done panel
    ("Top 2 settled with 95 % confidence") with links to the leaderboard and to keep going, instead of a screen;
    keeping going shows screens again, and answers given then keep going (the choice travels with the form)."""
    progress = _settle(app, 2, 150)
    assert progress.done, progress
    for url in ("/rank/cat/", "/rank/cat/best"):
        html = text(client.get(url))
        assert 'id="class-done"' in html and "Top 2 settled with 95 % confidence" in html
        assert 'id="answer-form"' not in html and 'id="pick-form"' not in html
        assert 'href="/rank/cat/leaderboard"' in html and f'href="{url}?more=1"' in html
    html = client.get("/rank/cat/best?more=1").get_data(as_text=True)
    assert 'id="pick-form"' in html and 'name="more" value="1"' in html
    shown = screen_of(html)
    html = client.post("/rank/cat/pick", data={**shown, "pick": min(ids(shown["shown"])), "more": "1"},
                       headers=HX).get_data(as_text=True)
    assert 'id="pick-form"' in html and 'id="class-done"' not in html
    html = client.post("/rank/cat/pick", data={**screen_of(html), "pick": min(ids(screen_of(html)["shown"]))},
                       headers=HX).get_data(as_text=True)
    assert 'id="class-done"' in html  # without `more`, a settled class says so again
    assert "✓ done" in text(client.get("/rank/"))


def test_a_small_class_gets_smaller_screens(client, app, dataset):
    """Tried: a class of three images on the best-of-4 page (a screen of three), and of one (nothing to compare)."""
    dataset({"owl": 3, "bat": 1}, size=16, imported="cli")
    html = client.get("/rank/owl/best").get_data(as_text=True)
    assert len(ids(screen_of(html)["shown"])) == 3 and 'data-key="4"' not in html
    assert 'id="no-pair"' in client.get("/rank/bat/best").get_data(as_text=True)


def test_an_index_at_0003_with_answers_upgrades(instance_path):
    """Tried: an index left at migration 0003 holding a class, two images and a pair answer, opened by the current
    app. It is upgraded to 0004 (two new columns on comparison), the answer keeps its values with the new columns
    empty, and ratings are computed from it as before."""
    from alembic import command
    from sqlalchemy import create_engine
    from sqlalchemy import text as sql

    from app import create_app
    from core.migrate import alembic_config
    instance_path.mkdir(parents=True)
    engine = create_engine(f"sqlite:///{instance_path / 'menagerie.sqlite3'}")
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0003")
        connection.execute(sql("insert into image_class (id, name, created) values (1, 'owl', '2026-01-01')"))
        for i in (1, 2):
            connection.execute(sql(
                "insert into image (id, sha256, path, format, width, height, has_alpha, file_size, class_id, status,"
                " status_reason, flagged, selected, original_filename, created) values (:i, :h, 'x.png', 'PNG', 8,"
                " 8, 0, 10, 1, 'active', '', 0, 0, 'x.png', '2026-01-01')"), {"i": i, "h": str(i) * 64})
        connection.execute(sql("insert into comparison (class_id, left_id, right_id, outcome, actor, created, undone)"
                               " values (1, 1, 2, 'left', 'ann', '2026-01-02', 0)"))
    engine.dispose()
    app = create_app({"TESTING": True}, instance_path=instance_path)
    with sqlite3.connect(instance_path / "menagerie.sqlite3") as conn:
        assert conn.execute("select version_num from alembic_version").fetchone()[0] >= "0004"
        assert conn.execute("select left_id, right_id, outcome, actor, others, picks from comparison").fetchall() == [
            (1, 2, "left", "ann", None, None)]
    with app.app_context():
        owl = db.session.scalar(select(ImageClass).where(ImageClass.name == "owl"))
        ratings = rs.class_ratings(db.session, owl.id)
        assert ratings.rating(1).mu > 0 > ratings.rating(2).mu and ratings.key.count == 1
        db.engine.dispose()

