"""Who may do what on an app that requires logins (core/auth.py): each role on representative endpoints, and
requests without a login, which must change nothing at all."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core.auth import PUBLIC, required_role
from core.db import Base, db
from core.models import Comparison, Decision, Image
from tests.conftest import HX, PASSWORD, answer_form

pytestmark = pytest.mark.usefixtures("logins_required")


def everything(app) -> dict:
    """Every row of every table, to compare before and after."""
    with app.app_context():
        return {t.name: sorted(map(repr, db.session.execute(t.select()).all())) for t in Base.metadata.sorted_tables}


def files(app) -> set:
    from pathlib import Path
    root = Path(app.instance_path)
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not p.name.endswith(("-wal", "-shm", ".lock"))}


def answer(client):
    page = client.get("/rank/cat/").get_data(as_text=True)
    pair = answer_form(page, "left", "right")
    return client.post("/rank/cat/answer", data={**pair, "outcome": "left"})


# what each role may do: (label, request, allowed for these roles)
def requests(cats):
    return [
        ("read the dataset", lambda c: c.get("/gallery/cat"), {"viewer", "ranker", "curator", "admin"}),
        ("rank (answer)", answer, {"ranker", "curator", "admin"}),
        ("reject an image", lambda c: c.post(f"/image/{cats[0]}/status", data={"status": "rejected",
                                                                                 "reason": "blurry"}),
         {"curator", "admin"}),
        ("commit a merge", lambda c: c.post("/merge/999/commit"), {"curator", "admin"}),
        ("make a snapshot", lambda c: c.post("/train/snapshots", data={"image_size": "nonsense"}),
         {"curator", "admin"}),
        ("start training", lambda c: c.post("/train/runs", data={}), {"admin"}),
        ("see the accounts", lambda c: c.get("/users"), {"admin"}),
        ("add an account", lambda c: c.post("/users", data={"name": "zed", "role": "viewer",
                                                            "password": "long enough pw", "password2": "long enough pw"}),
         {"admin"}),
    ]


@pytest.mark.parametrize("role", ["viewer", "ranker", "curator", "admin"])
def test_each_role_may_do_its_work_and_no_more(app, cats, login, role):
    """Tried, logged in with each role: reading a gallery, a ranking answer, rejecting an image, committing a
    merge, making a snapshot, starting training, the accounts page and adding an account. What the role may do
    reaches the page (which may still refuse bad input: a merge that does not exist is 404, an empty training form
    400); what it may not do is 403 with the reason, and changes nothing."""
    client = app.test_client()
    name = login(client, role)
    for label, send, allowed in requests(cats):
        before = everything(app)
        response = send(client)
        if role in allowed:
            assert response.status_code not in (401, 403), (label, response.status_code)
        else:
            body = response.get_data(as_text=True)
            assert response.status_code == 403, (label, response.status_code)
            assert f"{name} is a {role}" in body and "Nothing was changed" in body, label
            assert everything(app) == before, label
    with app.app_context():
        rejected = db.session.get(Image, cats[0]).status == "rejected"
        decisions = [(d.kind, d.actor) for d in db.session.scalars(select(Decision))]
        answers = [c.actor for c in db.session.scalars(select(Comparison))]
    assert rejected == (role in ("curator", "admin"))
    assert answers == ([name] if role != "viewer" else [])
    assert [actor for _kind, actor in decisions] == ([name] if rejected else [])  # the reject, under the account


def test_forbidden_htmx_requests_get_the_reason_not_a_page(app, cats, login):
    """Tried: a viewer's answer sent by htmx into the ranking region: 403 with just the reason (no layout to nest
    inside the region); the same form boosted gets the whole page."""
    client = app.test_client()
    login(client, "viewer", "vera")
    data = {"left": str(cats[0]), "right": str(cats[1]), "outcome": "left"}
    region = client.post("/rank/cat/answer", data=data, headers=HX)
    assert region.status_code == 403 and "<html" not in region.get_data(as_text=True)
    assert "needs the ranker role; vera is a viewer" in region.get_data(as_text=True)
    boosted = client.post("/rank/cat/answer", data=data, headers={**HX, "HX-Boosted": "true"})
    assert boosted.status_code == 403 and "<html" in boosted.get_data(as_text=True)
    assert "answers need the ranker role" in client.get("/rank/cat/").get_data(as_text=True)  # said before trying


def test_the_nav_offers_users_to_admins_only(app, cats, login):
    """Tried: the page for a curator and for an admin: only the admin's nav links the accounts page."""
    curator, admin = app.test_client(), app.test_client()
    login(curator, "curator")
    login(admin, "admin")
    assert 'href="/users"' not in curator.get("/").get_data(as_text=True)
    assert 'href="/users"' in admin.get("/").get_data(as_text=True)



def test_the_login_page_offers_no_links_that_lead_back_to_it(app, account):
    """Tried: the login form of a served site, logged out: its nav holds only the brand (every other page would
    send the person back to this form); logged in, the nav is whole again."""
    account("ann", "admin")
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert 'href="/import"' not in page and 'href="/rank/"' not in page and "Menagerie</a>" in page
    client.post("/login", data={"name": "ann", "password": PASSWORD})
    assert 'href="/import"' in client.get("/").get_data(as_text=True)



def test_a_login_free_site_offers_no_log_in_link(app, account):
    """Tried: the same page with logins off (one person on loopback): nothing asks anyone to log in."""
    account("ann", "admin")
    app.config["AUTH_REQUIRED"] = False
    page = app.test_client().get("/").get_data(as_text=True)
    assert 'href="/login' not in page and 'href="/import"' in page


def _build(rule) -> str:
    from werkzeug.routing import IntegerConverter
    values = {arg: (1 if isinstance(rule._converters.get(arg), IntegerConverter) else "cat")
              for arg in rule.arguments}
    return rule.build(values, append_unknown=False)[1]


FORM = {"status": "rejected", "reason": "x", "class_name": "dog", "outcome": "left", "left": "1", "right": "2",
        "pick": "1", "shown": "1,2,3,4", "keeper": "1", "member": ["1", "2"], "k": "2", "mode": "top-k",
        "name": "mallory", "role": "admin", "password": "long enough pw", "password2": "long enough pw",
        "action": "disable", "folder": "cat", "path": "/", "image_size": "32", "epochs": "1", "snapshot": "new",
        "same": "1", "a": "1", "b": "2", "distance": "1"}


def test_requests_without_a_login_change_nothing(app, cats, account):
    """Tried: every POST endpoint of the app (url_map), with plausible form values, from a client that never logged
    in, as a plain form and as htmx. Each is 302 (to the login page) or 401 (htmx told to go there); no row of any
    table and no file of the instance changes. Only logging in and out are open to anyone."""
    account("admin", "admin")
    client = app.test_client()
    before, before_files = everything(app), files(app)
    open_to_all, tried = set(), []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods:
            continue
        if required_role(rule.endpoint, "POST") is None:
            open_to_all.add(rule.endpoint)
            continue
        url = _build(rule)
        plain = client.post(url, data=FORM)
        assert plain.status_code in (302, 401), (url, plain.status_code)
        if plain.status_code == 302:
            assert plain.location.startswith("/login"), url
        htmx = client.post(url, data=FORM, headers=HX)
        assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login"), url
        tried.append(rule.endpoint)
    assert open_to_all == {"accounts.login_post", "accounts.logout"} <= PUBLIC
    assert len(tried) >= 30 and {"ranking.rank_answer", "gallery.set_status", "launch.run_create",
                                 "merge.merge_commit", "accounts.users_add"} <= set(tried)
    assert everything(app) == before
    assert files(app) == before_files


def test_pages_without_a_login_go_to_the_login_form(app, cats, account):
    """Tried: every GET page (url_map, static files aside) without a login: each is sent to the login form with
    itself as `next`, and no image, original or thumbnail is served."""
    account("admin", "admin")
    client = app.test_client()
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint in PUBLIC:
            continue
        url = _build(rule)
        response = client.get(url)
        assert response.status_code == 302 and response.location.startswith("/login?next="), url
