"""Every answer and decision is stored under the account that made it; ranking undo is keyed on the account; and
without logins each browser is its own person (so concurrent rankers are never merged into one)."""
from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import select

from core.db import db
from core.models import Comparison, Decision
from tests.conftest import HX, answer_form, at_once


def answers(app) -> list[tuple]:
    with app.app_context():
        return [(c.actor, c.undone) for c in db.session.scalars(select(Comparison).order_by(Comparison.id))]


@pytest.mark.usefixtures("logins_required")
def test_answers_and_undo_belong_to_the_account(app, cats, login):
    """Tried: ann and bob (rankers, logged in) answer; the page names the account and has no name box; bob's undo
    takes back his own answer, never ann's, and once he has none left it says so and leaves ann's alone. ann logged
    in from a second browser is still ann: her undo there takes back her answer."""
    ann, bob, ann_again = app.test_client(), app.test_client(), app.test_client()
    login(ann, "ranker", "ann")
    login(bob, "ranker", "bob")
    page = ann.get("/rank/cat/").get_data(as_text=True)
    assert "Ranking as <strong>ann</strong>" in page and 'name="name"' not in page
    ann.post("/rank/cat/answer", data={**answer_form(page, "left", "right"), "outcome": "left"})
    for client, outcome in ((bob, "right"), (ann, "tie")):
        pair = answer_form(client.get("/rank/cat/").get_data(as_text=True), "left", "right")
        client.post("/rank/cat/answer", data={**pair, "outcome": outcome})
    assert answers(app) == [("ann", False), ("bob", False), ("ann", False)]
    assert "Undid your answer" in bob.post("/rank/cat/undo", headers=HX).get_data(as_text=True)
    assert "Nothing to undo" in bob.post("/rank/cat/undo", headers=HX).get_data(as_text=True)
    assert answers(app) == [("ann", False), ("bob", True), ("ann", False)]
    ann_again.post("/login", data={"name": "ann", "password": "correct horse battery", "next": "/"})
    assert "Undid your answer" in ann_again.post("/rank/cat/undo", headers=HX).get_data(as_text=True)
    assert answers(app) == [("ann", False), ("bob", True), ("ann", True)]


@pytest.mark.usefixtures("logins_required")
def test_decisions_name_the_account(app, cats, login):
    """Tried: a curator rejects and relabels through the gallery's forms, an admin undoes the relabel. Each
    decision in the history is stored under the account that made it, and the History page says who."""
    cora, adam = app.test_client(), app.test_client()
    login(cora, "curator", "cora")
    login(adam, "admin", "adam")
    cora.post(f"/image/{cats[0]}/status", data={"status": "rejected", "reason": "blurry"})
    cora.post(f"/image/{cats[1]}/relabel", data={"class_name": "dog"})
    with app.app_context():
        relabel = db.session.scalars(select(Decision).order_by(Decision.id)).all()[-1]
    assert adam.post(f"/decision/{relabel.id}/undo").status_code in (302, 303)
    with app.app_context():
        made = [(d.kind, d.actor) for d in db.session.scalars(select(Decision).order_by(Decision.id))]
    assert [actor for _, actor in made] == ["cora", "cora", "adam"] and made[-1][0] == "undo"
    rows = re.findall(r'<span class="who">([^<]*)</span>', adam.get("/decisions").get_data(as_text=True))
    assert rows == ["adam", "cora", "cora"]  # newest first


def test_without_logins_each_browser_is_its_own_ranker(app, cats):
    """Tried: without logins (one person's loopback mode), 12 browsers answer the very same pair the same way, all
    at once from threads. None is taken for a double click of another: 12 answers, under 12 different guest names,
    and each browser's undo takes back only its own."""
    clients = [app.test_client() for _ in range(12)]
    page = clients[0].get("/rank/cat/").get_data(as_text=True)
    pair = answer_form(page, "left", "right")
    for c in clients[1:]:
        c.get("/rank/cat/")  # each browser has been on the page (and so has its session)
    start = threading.Barrier(len(clients))

    def send(client):
        start.wait()
        assert client.post("/rank/cat/answer", data={**pair, "outcome": "left"}, headers=HX).status_code == 200

    at_once(send, [(c,) for c in clients])
    stored = answers(app)
    assert len(stored) == 12 and len({actor for actor, _ in stored}) == 12
    assert all(actor.startswith("guest-") for actor, _ in stored)
    clients[3].post("/rank/cat/undo", headers=HX)
    with clients[3].session_transaction() as session:
        mine = session["guest"]
    assert [actor for actor, undone in answers(app) if undone] == [mine]
